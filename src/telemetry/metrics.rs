//! The bridge's metrics: every name, description, unit and bucket in one place, and one method per
//! thing worth counting.
//!
//! Why it exists: metric names are an interface (DESIGN.md) — dashboards, alert rules and the
//! rollout controller's SLOs query them — so they are spelled exactly once, here, and kept verbatim
//! from the original `tcp_comm_*` programme. Callers never see a name or a label *name*; they call
//! `metrics.packet_sent(device_id, "ok")` and cannot misspell a series into existence.
//!
//! It owns the [`Metrics`] registry (a cheap `Arc` handle: clone it into every task) and the text
//! exposition of all of it ([`Metrics::render`]). It must never slow the path it measures (see the
//! design note in `registry`), never grow without bound (see [`MAX_DEVICE_IDS`]), and never panic.
//!
//! Label values that are not device ids are `&'static str` on purpose: outcomes, reasons,
//! transports and queue types are a small fixed vocabulary chosen in code (e.g.
//! `CommandOutcome::as_str()`), never text from the wire, so those labels cannot explode.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::registry::{Counter, Desc, Family, Gauge, Histogram, Kind, LabelNames, Single};

/// Upper bounds (seconds, inclusive) of every latency histogram's buckets.
///
/// Includes the SLO edges named in issue 4's telemetry base — 25, 50, 100, 128, 250, 300, 500,
/// 800 ms and 1, 1.5, 2, 5 s — so any of them can be an exact `le` in a PromQL ratio; 1, 5 and
/// 10 ms resolve the loopback fast path (issue 5's benchmark targets p99 < 2 ms) and 10 s catches
/// the far tail beyond the largest overall deadline. Adding a bound adds one series per device
/// and histogram; removing one breaks any SLO query that uses it.
pub const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.128, 0.25, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 5.0, 10.0,
];

/// Maximum distinct `device_id` values per family; later newcomers are recorded as
/// `device_id="other"`.
///
/// Cardinality guard: a device id comes off the wire, so a buggy or hostile client cycling through
/// ids must not create unbounded series (memory here, and in Prometheus). 2,000 is several times
/// the largest install we plan for (issue 4's simulator home has 250 devices); the cap is per
/// family, and ids already seen keep their own series. A device whose id really is `other` shares
/// the overflow series — acceptable for a diagnostic bucket.
pub const MAX_DEVICE_IDS: usize = 2_000;

/// Close reason recorded when a [`SessionGuard`] is dropped without [`SessionGuard::close`]: the
/// session task ended without saying why (it panicked, or its future was dropped).
pub const SESSION_CLOSE_ABORTED: &str = "aborted";

const fn counter(name: &'static str, help: &'static str, labels: LabelNames) -> Desc {
    Desc {
        name,
        help,
        kind: Kind::Counter,
        unit: None,
        labels,
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Desc {
    Desc {
        name,
        help,
        kind: Kind::Gauge,
        unit: None,
        labels: LabelNames::None,
    }
}

const fn seconds_histogram(name: &'static str, help: &'static str, label: &'static str) -> Desc {
    Desc {
        name,
        help,
        kind: Kind::Histogram,
        unit: Some("seconds"),
        labels: LabelNames::One(label),
    }
}

const DEVICE_OUTCOME: LabelNames = LabelNames::Two("device_id", "outcome");
const DEVICE_REASON: LabelNames = LabelNames::Two("device_id", "reason");
const DEVICE: LabelNames = LabelNames::One("device_id");
const REASON: LabelNames = LabelNames::One("reason");

/// A shared handle on all of the bridge's metrics. Clone it freely (one `Arc`); every method takes
/// `&self`, is synchronous, and costs a few atomic operations.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    packet_sent: Family<Counter>,
    packet_recv: Family<Counter>,
    packet_latency: Family<Histogram>,
    packet_retransmit: Family<Counter>,
    decode_errors: Family<Counter>,
    connected_sessions: Single<Gauge>,
    mesh_routes: Single<Gauge>,
    sessions_opened: Single<Counter>,
    sessions_closed: Family<Counter>,
    tls_handshake_failures: Family<Counter>,
    connections_rejected: Family<Counter>,
    ack_received: Family<Counter>,
    ack_timeout: Family<Counter>,
    idempotent_drop: Family<Counter>,
    send_queue_size: Single<Gauge>,
    recv_queue_size: Single<Gauge>,
    queue_full: Family<Counter>,
    command: Family<Counter>,
    command_latency: Family<Histogram>,
    mqtt_connected: Single<Gauge>,
    mqtt_published: Family<Counter>,
    mqtt_commands: Family<Counter>,
    devices_available: Single<Gauge>,
}

impl Inner {
    fn new() -> Self {
        let devices = Some(MAX_DEVICE_IDS);
        Self {
            packet_sent: Family::new(
                counter(
                    "tcp_comm_packet_sent_total",
                    "Packets written to device sessions, by device and outcome.",
                    DEVICE_OUTCOME,
                ),
                devices,
            ),
            packet_recv: Family::new(
                counter(
                    "tcp_comm_packet_recv_total",
                    "Packets read from device sessions, by device and outcome.",
                    DEVICE_OUTCOME,
                ),
                devices,
            ),
            packet_latency: Family::new(
                seconds_histogram(
                    "tcp_comm_packet_latency_seconds",
                    "Time from sending a device packet that expects an answer to receiving the answer, by device.",
                    "device_id",
                ),
                devices,
            ),
            packet_retransmit: Family::new(
                counter(
                    "tcp_comm_packet_retransmit_total",
                    "Packets sent to a device again, by device and reason.",
                    DEVICE_REASON,
                ),
                devices,
            ),
            decode_errors: Family::new(
                counter(
                    "tcp_comm_decode_errors_total",
                    "Frames from devices that could not be decoded, by device and reason.",
                    DEVICE_REASON,
                ),
                devices,
            ),
            connected_sessions: Single::new(gauge(
                "tcp_comm_connected_sessions",
                "Device sessions currently open.",
            )),
            mesh_routes: Single::new(gauge(
                "tcp_comm_mesh_routes",
                "Mesh routes currently known (a route is a session that can reach a mesh device).",
            )),
            sessions_opened: Single::new(counter(
                "tcp_comm_sessions_opened_total",
                "Device sessions opened since the bridge started.",
                LabelNames::None,
            )),
            sessions_closed: Family::new(
                counter(
                    "tcp_comm_sessions_closed_total",
                    "Device sessions closed since the bridge started, by reason.",
                    REASON,
                ),
                None,
            ),
            tls_handshake_failures: Family::new(
                counter(
                    "tcp_comm_tls_handshake_failures_total",
                    "TLS handshakes with connecting devices that failed, by reason.",
                    REASON,
                ),
                None,
            ),
            connections_rejected: Family::new(
                counter(
                    "tcp_comm_connections_rejected_total",
                    "Device connections held then closed, or closed at once, without a session, by reason.",
                    REASON,
                ),
                None,
            ),
            ack_received: Family::new(
                counter(
                    "tcp_comm_ack_received_total",
                    "Receipts (0x7B) received for commands, by device and outcome.",
                    DEVICE_OUTCOME,
                ),
                devices,
            ),
            ack_timeout: Family::new(
                counter(
                    "tcp_comm_ack_timeout_total",
                    "Commands whose answer did not arrive within the response timeout, by device.",
                    DEVICE,
                ),
                devices,
            ),
            idempotent_drop: Family::new(
                counter(
                    "tcp_comm_idempotent_drop_total",
                    "Retransmitted device packets (same peer and msg id within the TTL) acknowledged then dropped, by device.",
                    DEVICE,
                ),
                devices,
            ),
            send_queue_size: Single::new(gauge(
                "tcp_comm_send_queue_size",
                "Packets waiting in session send queues, summed over sessions.",
            )),
            recv_queue_size: Single::new(gauge(
                "tcp_comm_recv_queue_size",
                "Events waiting in the inbound device event queue.",
            )),
            queue_full: Family::new(
                counter(
                    "tcp_comm_queue_full_total",
                    "Items that met a full bounded queue, by device and queue type.",
                    LabelNames::Two("device_id", "queue_type"),
                ),
                devices,
            ),
            command: Family::new(
                counter(
                    "tcp_comm_command_total",
                    "Commands finished, by transport and outcome.",
                    LabelNames::Two("transport", "outcome"),
                ),
                None,
            ),
            command_latency: Family::new(
                seconds_histogram(
                    "tcp_comm_command_latency_seconds",
                    "Time from command submission to its final outcome, by transport.",
                    "transport",
                ),
                None,
            ),
            mqtt_connected: Single::new(gauge(
                "tcp_comm_mqtt_connected",
                "1 while the bridge is connected to the MQTT broker.",
            )),
            mqtt_published: Family::new(
                counter(
                    "tcp_comm_mqtt_published_total",
                    "Messages handed to the MQTT client, by kind (discovery, state, availability, attributes, bridge).",
                    LabelNames::One("kind"),
                ),
                None,
            ),
            mqtt_commands: Family::new(
                counter(
                    "tcp_comm_mqtt_commands_total",
                    "Commands received over MQTT, by result (accepted, invalid, unknown_entity, disabled, dropped).",
                    LabelNames::One("result"),
                ),
                None,
            ),
            devices_available: Single::new(gauge(
                "tcp_comm_devices_available",
                "Devices currently available in Home Assistant.",
            )),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with every family present and no samples.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner::new()),
        }
    }

    /// Counts a packet written to `device_id`'s session (`tcp_comm_packet_sent_total`).
    pub fn packet_sent(&self, device_id: &str, outcome: &'static str) {
        self.inner
            .packet_sent
            .with(device_id, outcome, Counter::inc);
    }

    /// Counts a packet read from `device_id`'s session (`tcp_comm_packet_recv_total`).
    pub fn packet_recv(&self, device_id: &str, outcome: &'static str) {
        self.inner
            .packet_recv
            .with(device_id, outcome, Counter::inc);
    }

    /// Records the time between a packet and its answer (`tcp_comm_packet_latency_seconds`).
    pub fn packet_latency(&self, device_id: &str, latency: Duration) {
        self.inner
            .packet_latency
            .with(device_id, "", |h| h.observe(latency));
    }

    /// Counts a packet sent again (`tcp_comm_packet_retransmit_total`).
    pub fn packet_retransmit(&self, device_id: &str, reason: &'static str) {
        self.inner
            .packet_retransmit
            .with(device_id, reason, Counter::inc);
    }

    /// Counts a frame that could not be decoded (`tcp_comm_decode_errors_total`).
    pub fn decode_error(&self, device_id: &str, reason: &'static str) {
        self.inner
            .decode_errors
            .with(device_id, reason, Counter::inc);
    }

    /// Counts a session opening (`tcp_comm_sessions_opened_total`, `tcp_comm_connected_sessions`)
    /// and returns the guard that records its closing. Tying both to one guard keeps the gauge
    /// honest even when a session task panics or is dropped.
    pub fn session_opened(&self) -> SessionGuard {
        self.inner.sessions_opened.get().inc();
        self.inner.connected_sessions.get().inc();
        SessionGuard {
            metrics: self.clone(),
            open: true,
        }
    }

    /// The number of mesh routes known (`tcp_comm_mesh_routes`); the route registry `set`s it.
    pub fn mesh_routes(&self) -> &Gauge {
        self.inner.mesh_routes.get()
    }

    /// Counts a failed TLS handshake (`tcp_comm_tls_handshake_failures_total`).
    pub fn tls_handshake_failure(&self, reason: &'static str) {
        self.inner
            .tls_handshake_failures
            .with(reason, "", Counter::inc);
    }

    /// Counts a connection turned away before its session (`tcp_comm_connections_rejected_total`):
    /// over `server.max_connections`, outside `server.allow_networks`, or the hold pool full.
    pub fn connection_rejected(&self, reason: &'static str) {
        self.inner
            .connections_rejected
            .with(reason, "", Counter::inc);
    }

    /// Counts a command receipt (`tcp_comm_ack_received_total`).
    pub fn ack_received(&self, device_id: &str, outcome: &'static str) {
        self.inner
            .ack_received
            .with(device_id, outcome, Counter::inc);
    }

    /// Counts a command whose answer timed out (`tcp_comm_ack_timeout_total`).
    pub fn ack_timeout(&self, device_id: &str) {
        self.inner.ack_timeout.with(device_id, "", Counter::inc);
    }

    /// Counts a retransmitted device packet dropped by de-duplication
    /// (`tcp_comm_idempotent_drop_total`).
    pub fn idempotent_drop(&self, device_id: &str) {
        self.inner.idempotent_drop.with(device_id, "", Counter::inc);
    }

    /// Items in all session send queues (`tcp_comm_send_queue_size`); sessions `add` and
    /// subtract as they enqueue and dequeue.
    pub fn send_queue_size(&self) -> &Gauge {
        self.inner.send_queue_size.get()
    }

    /// Items in the inbound event queue (`tcp_comm_recv_queue_size`).
    pub fn recv_queue_size(&self) -> &Gauge {
        self.inner.recv_queue_size.get()
    }

    /// Counts an item that met a full queue (`tcp_comm_queue_full_total`), whatever the queue's
    /// overflow policy then did with it.
    pub fn queue_full(&self, device_id: &str, queue_type: &'static str) {
        self.inner
            .queue_full
            .with(device_id, queue_type, Counter::inc);
    }

    /// Counts a finished command (`tcp_comm_command_total`).
    pub fn command(&self, transport: &'static str, outcome: &'static str) {
        self.inner.command.with(transport, outcome, Counter::inc);
    }

    /// Records a command's submission-to-outcome time (`tcp_comm_command_latency_seconds`).
    pub fn command_latency(&self, transport: &'static str, latency: Duration) {
        self.inner
            .command_latency
            .with(transport, "", |h| h.observe(latency));
    }

    /// Whether the broker connection is up (`tcp_comm_mqtt_connected`).
    pub fn mqtt_connected(&self) -> &Gauge {
        self.inner.mqtt_connected.get()
    }

    /// Counts a message queued for the broker (`tcp_comm_mqtt_published_total`).
    pub fn mqtt_published(&self, kind: &'static str) {
        self.inner.mqtt_published.with(kind, "", Counter::inc);
    }

    /// Counts an MQTT command by what became of it (`tcp_comm_mqtt_commands_total`).
    pub fn mqtt_command(&self, result: &'static str) {
        self.inner.mqtt_commands.with(result, "", Counter::inc);
    }

    /// Devices available in Home Assistant (`tcp_comm_devices_available`).
    pub fn devices_available(&self) -> &Gauge {
        self.inner.devices_available.get()
    }

    /// The Prometheus text exposition (format 0.0.4) of every family, in a fixed order, series
    /// sorted by label values. Families without samples still show their HELP and TYPE.
    pub fn render(&self) -> String {
        let i = &*self.inner;
        let mut out = String::with_capacity(16 * 1024);
        i.packet_sent.encode(&mut out);
        i.packet_recv.encode(&mut out);
        i.packet_latency.encode(&mut out);
        i.packet_retransmit.encode(&mut out);
        i.decode_errors.encode(&mut out);
        i.connected_sessions.encode(&mut out);
        i.mesh_routes.encode(&mut out);
        i.sessions_opened.encode(&mut out);
        i.sessions_closed.encode(&mut out);
        i.tls_handshake_failures.encode(&mut out);
        i.connections_rejected.encode(&mut out);
        i.ack_received.encode(&mut out);
        i.ack_timeout.encode(&mut out);
        i.idempotent_drop.encode(&mut out);
        i.send_queue_size.encode(&mut out);
        i.recv_queue_size.encode(&mut out);
        i.queue_full.encode(&mut out);
        i.command.encode(&mut out);
        i.command_latency.encode(&mut out);
        i.mqtt_connected.encode(&mut out);
        i.mqtt_published.encode(&mut out);
        i.mqtt_commands.encode(&mut out);
        i.devices_available.encode(&mut out);
        out
    }

    /// The value of one series as it appears in [`render`](Self::render), e.g.
    /// `tcp_comm_command_total{transport="reliable",outcome="success"}` (labels in family order,
    /// values escaped). `None` if no such series exists yet.
    ///
    /// For tests and diagnostics (`doctor`), not hot paths: it renders everything.
    pub fn sample_value(&self, series: &str) -> Option<f64> {
        self.render()
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.rsplit_once(' '))
            .find(|(name, _)| *name == series)
            .and_then(|(_, value)| value.parse().ok())
    }
}

/// Proof that a device session is open; records its closing exactly once.
///
/// Returned by [`Metrics::session_opened`]. Call [`close`](Self::close) with the reason; if the
/// guard is dropped instead, the session is recorded as closed with reason
/// [`SESSION_CLOSE_ABORTED`].
#[derive(Debug)]
#[must_use = "dropping the guard records the session as closed (reason \"aborted\")"]
pub struct SessionGuard {
    metrics: Metrics,
    open: bool,
}

impl SessionGuard {
    /// Records the session as closed (`tcp_comm_sessions_closed_total{reason}`) and decrements
    /// `tcp_comm_connected_sessions`.
    pub fn close(mut self, reason: &'static str) {
        self.finish(reason);
    }

    fn finish(&mut self, reason: &'static str) {
        if std::mem::take(&mut self.open) {
            let inner = &self.metrics.inner;
            inner.sessions_closed.with(reason, "", Counter::inc);
            inner.connected_sessions.get().dec();
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.finish(SESSION_CLOSE_ABORTED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_strictly_increasing_and_include_every_slo_edge() {
        assert!(LATENCY_BUCKETS_SECONDS.windows(2).all(|w| w[0] < w[1]));
        let slo_edges = [
            0.025, 0.05, 0.1, 0.128, 0.25, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 5.0,
        ];
        for edge in slo_edges {
            assert!(LATENCY_BUCKETS_SECONDS.contains(&edge), "missing {edge}");
        }
    }

    #[test]
    fn every_family_name_carries_its_unit_or_total_suffix() {
        let text = Metrics::new().render();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(name.starts_with("tcp_comm_"), "{name}");
                match kind {
                    "counter" => assert!(name.ends_with("_total"), "{name}"),
                    "histogram" => assert!(name.ends_with("_seconds"), "{name}"),
                    "gauge" => assert!(!name.ends_with("_total"), "{name}"),
                    other => panic!("unexpected type {other}"),
                }
            }
            if let Some(rest) = line.strip_prefix("# UNIT ") {
                let (name, unit) = rest.split_once(' ').unwrap();
                assert!(name.ends_with(&format!("_{unit}")), "{name} {unit}");
            }
        }
    }

    #[test]
    fn a_dropped_session_guard_counts_as_aborted_and_close_counts_once() {
        let metrics = Metrics::new();
        let first = metrics.session_opened();
        let second = metrics.session_opened();
        assert_eq!(
            metrics.sample_value("tcp_comm_connected_sessions"),
            Some(2.0)
        );
        first.close("idle_timeout");
        drop(second);
        let closed = |reason: &str| {
            metrics.sample_value(&format!(
                "tcp_comm_sessions_closed_total{{reason=\"{reason}\"}}"
            ))
        };
        assert_eq!(closed("idle_timeout"), Some(1.0));
        assert_eq!(closed(SESSION_CLOSE_ABORTED), Some(1.0));
        assert_eq!(
            metrics.sample_value("tcp_comm_connected_sessions"),
            Some(0.0)
        );
        assert_eq!(
            metrics.sample_value("tcp_comm_sessions_opened_total"),
            Some(2.0)
        );
    }

    #[test]
    fn an_observation_on_a_bucket_edge_counts_in_that_bucket() {
        let metrics = Metrics::new();
        metrics.command_latency("reliable", Duration::from_millis(128));
        let bucket = |le: &str| {
            metrics.sample_value(&format!(
                "tcp_comm_command_latency_seconds_bucket{{transport=\"reliable\",le=\"{le}\"}}"
            ))
        };
        assert_eq!(bucket("0.1"), Some(0.0));
        assert_eq!(bucket("0.128"), Some(1.0));
        assert_eq!(bucket("+Inf"), Some(1.0));
    }
}
