//! The bridge's metrics: every name, description, unit and bucket in one place, and one method per
//! thing worth counting.
//!
//! Why it exists: metric names are an interface — dashboards, alert rules and the rollout
//! controller's SLOs query them — so they are spelled exactly once, here, and kept verbatim from
//! the original `tcp_comm_*` programme. Callers never see a name or a label *name*; they call
//! `metrics.packet_sent(device_id, "ok")` and cannot misspell a series into existence.
//!
//! Storage and the text exposition are the `metrics-exporter-prometheus` crate's, through a
//! recorder of our own per [`Metrics`] (never the process-global one: two `Metrics` in one test
//! binary stay independent). The exporter renders a histogram as a *summary* unless buckets are
//! set, so [`LATENCY_BUCKETS_SECONDS`] is set for all of them. Handles are cached per label
//! combination (see `families`) so recording stays a few atomics; it never grows without bound
//! (see [`MAX_DEVICE_IDS`]) and never panics.
//!
//! The exporter keeps histogram samples in a lock-free queue until they are folded into buckets
//! ("upkeep"); a scrape does that, and so does every [`UPKEEP_EVERY`]th observation, so memory
//! stays bounded when nobody scrapes.
//!
//! Label values that are not device ids are `&'static str` on purpose: outcomes, reasons,
//! transports and queue types are a small fixed vocabulary chosen in code (e.g.
//! `CommandOutcome::as_str()`), never text from the wire, so those labels cannot explode. Those
//! families are created at zero from the lists in `vocabulary`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Histogram, KeyName, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::families::{single, Family, Gauge, Handle};
use super::rollout::{Rollout, RolloutMetrics};
use super::vocabulary as vocab;

/// Upper bounds (seconds, inclusive) of every latency histogram's buckets.
///
/// Includes the SLO edges of the rollout controller — 25, 50, 100, 128, 250, 300, 500, 800 ms and
/// 1, 1.5, 2, 5 s — so any of them can be an exact `le` in a PromQL ratio; 1, 5 and 10 ms resolve
/// the loopback fast path (the transport benchmark targets p99 < 2 ms) and 10 s catches the far
/// tail beyond the largest overall deadline. Adding a bound adds one series per device and
/// histogram; removing one breaks any SLO query that uses it.
pub const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.128, 0.25, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 5.0, 10.0,
];

/// Maximum distinct `device_id` values per family; later newcomers are recorded as
/// `device_id="other"`.
///
/// Cardinality guard: a device id comes off the wire, so a buggy or hostile client cycling through
/// ids must not create unbounded series (memory here, and in Prometheus). 2,000 is several times
/// the largest install we plan for (the simulator home has 250 devices); the cap is per family,
/// and ids already seen keep their own series. A device whose id really is `other` shares the
/// overflow series — acceptable for a diagnostic bucket.
pub const MAX_DEVICE_IDS: usize = 2_000;

/// Close reason recorded when a [`SessionGuard`] is dropped without [`SessionGuard::close`]: the
/// session task ended without saying why (it panicked, or its future was dropped).
pub const SESSION_CLOSE_ABORTED: &str = "aborted";

/// Histogram observations between two upkeeps when nobody scrapes: bounds the exporter's pending
/// samples to about this many, at an amortised cost of a few nanoseconds per observation.
pub const UPKEEP_EVERY: u64 = 4_096;

const PACKET_SENT: &str = "tcp_comm_packet_sent_total";
const PACKET_RECV: &str = "tcp_comm_packet_recv_total";
const PACKET_LATENCY: &str = "tcp_comm_packet_latency_seconds";
const PACKET_RETRANSMIT: &str = "tcp_comm_packet_retransmit_total";
const DECODE_ERRORS: &str = "tcp_comm_decode_errors_total";
const CONNECTED_SESSIONS: &str = "tcp_comm_connected_sessions";
const MESH_ROUTES: &str = "tcp_comm_mesh_routes";
const SESSIONS_OPENED: &str = "tcp_comm_sessions_opened_total";
const SESSIONS_CLOSED: &str = "tcp_comm_sessions_closed_total";
const TLS_HANDSHAKE_FAILURES: &str = "tcp_comm_tls_handshake_failures_total";
const CONNECTIONS_REJECTED: &str = "tcp_comm_connections_rejected_total";
const ACK_RECEIVED: &str = "tcp_comm_ack_received_total";
const ACK_TIMEOUT: &str = "tcp_comm_ack_timeout_total";
const IDEMPOTENT_DROP: &str = "tcp_comm_idempotent_drop_total";
const SEND_QUEUE_SIZE: &str = "tcp_comm_send_queue_size";
const RECV_QUEUE_SIZE: &str = "tcp_comm_recv_queue_size";
const QUEUE_FULL: &str = "tcp_comm_queue_full_total";
const COMMAND: &str = "tcp_comm_command_total";
const COMMAND_LATENCY: &str = "tcp_comm_command_latency_seconds";
const MQTT_CONNECTED: &str = "tcp_comm_mqtt_connected";
const MQTT_PUBLISHED: &str = "tcp_comm_mqtt_published_total";
const MQTT_COMMANDS: &str = "tcp_comm_mqtt_commands_total";
const DEVICES_AVAILABLE: &str = "tcp_comm_devices_available";
const ROLLOUT_STORE_HEALTHY: &str = "tcp_comm_rollout_store_healthy";
const ROLLOUT_STORE_ERRORS: &str = "tcp_comm_rollout_store_errors_total";
const ROLLOUT_STORE_WRITES: &str = "tcp_comm_rollout_store_writes_total";

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every family with its kind and HELP text; the unit follows from the kind (histograms measure
/// seconds, the rest are counts).
const DESCRIPTIONS: [(&str, Kind, &str); 26] = [
    (PACKET_SENT, Kind::Counter, "Packets written to device sessions, by device and outcome."),
    (PACKET_RECV, Kind::Counter, "Packets read from device sessions, by device and outcome."),
    (PACKET_LATENCY, Kind::Histogram, "Time from sending a device packet that expects an answer to receiving the answer, by device."),
    (PACKET_RETRANSMIT, Kind::Counter, "Packets sent to a device again, by device and reason."),
    (DECODE_ERRORS, Kind::Counter, "Frames from devices that could not be decoded, by device and reason."),
    (CONNECTED_SESSIONS, Kind::Gauge, "Device sessions currently open."),
    (MESH_ROUTES, Kind::Gauge, "Mesh routes currently known (a route is a session that can reach a mesh device)."),
    (SESSIONS_OPENED, Kind::Counter, "Device sessions opened since the bridge started."),
    (SESSIONS_CLOSED, Kind::Counter, "Device sessions closed since the bridge started, by reason."),
    (TLS_HANDSHAKE_FAILURES, Kind::Counter, "TLS handshakes with connecting devices that failed, by reason."),
    (CONNECTIONS_REJECTED, Kind::Counter, "Device connections held then closed, or closed at once, without a session, by reason."),
    (ACK_RECEIVED, Kind::Counter, "Receipts (0x7B) received for commands, by device and outcome."),
    (ACK_TIMEOUT, Kind::Counter, "Commands whose answer did not arrive within the response timeout, by device."),
    (IDEMPOTENT_DROP, Kind::Counter, "Retransmitted device packets (same peer and msg id within the TTL) acknowledged then dropped, by device."),
    (SEND_QUEUE_SIZE, Kind::Gauge, "Packets waiting in session send queues, summed over sessions."),
    (RECV_QUEUE_SIZE, Kind::Gauge, "Events waiting in the inbound device event queue."),
    (QUEUE_FULL, Kind::Counter, "Items that met a full bounded queue, by device and queue type."),
    (COMMAND, Kind::Counter, "Commands finished, by transport and outcome."),
    (COMMAND_LATENCY, Kind::Histogram, "Time from command submission to its final outcome, by transport."),
    (MQTT_CONNECTED, Kind::Gauge, "1 while the bridge is connected to the MQTT broker."),
    (MQTT_PUBLISHED, Kind::Counter, "Messages handed to the MQTT client, by kind (discovery, state, availability, attributes, bridge)."),
    (MQTT_COMMANDS, Kind::Counter, "Commands received over MQTT, by result (accepted, superseded, invalid, unknown_entity, disabled)."),
    (DEVICES_AVAILABLE, Kind::Gauge, "Devices currently available in Home Assistant."),
    (ROLLOUT_STORE_HEALTHY, Kind::Gauge, "1 while the rollout evidence store's last flush reached the disk."),
    (ROLLOUT_STORE_ERRORS, Kind::Counter, "Failed rollout store opens and flushes, and records dropped at its full queue, by kind."),
    (ROLLOUT_STORE_WRITES, Kind::Counter, "Rollout evidence records (command counts and wire counts) committed to the store."),
];

/// A shared handle on all of the bridge's metrics. Clone it freely (one `Arc`); every method takes
/// `&self`, is synchronous, and costs a few atomic operations.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    observations: AtomicU64,
    packet_sent: Family<Counter>,
    packet_recv: Family<Counter>,
    packet_latency: Family<Histogram>,
    packet_retransmit: Family<Counter>,
    decode_errors: Family<Counter>,
    connected_sessions: Gauge,
    mesh_routes: Gauge,
    sessions_opened: Counter,
    sessions_closed: Family<Counter>,
    tls_handshake_failures: Family<Counter>,
    connections_rejected: Family<Counter>,
    ack_received: Family<Counter>,
    ack_timeout: Family<Counter>,
    idempotent_drop: Family<Counter>,
    send_queue_size: Gauge,
    recv_queue_size: Gauge,
    queue_full: Family<Counter>,
    command: Family<Counter>,
    command_latency: Family<Histogram>,
    mqtt_connected: Gauge,
    mqtt_published: Family<Counter>,
    mqtt_commands: Family<Counter>,
    devices_available: Gauge,
    rollout_store_healthy: Gauge,
    rollout_store_errors: Family<Counter>,
    rollout_store_writes: Counter,
    rollout: RolloutMetrics,
    /// Frames read and frames that failed to decode, over all devices: the decode-error SLO's
    /// counts, read by the rollout controller without walking the device-labelled families.
    frames_received: AtomicU64,
    frames_undecodable: AtomicU64,
}

fn recorder() -> PrometheusRecorder {
    // `set_buckets` fails only for an empty list, and ours is a non-empty constant; the fallback
    // (summaries) is unreachable and the tests on `_bucket` series would catch it.
    PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS_SECONDS)
        .unwrap_or_else(|_| PrometheusBuilder::new())
        .build_recorder()
}

fn describe(recorder: &PrometheusRecorder) {
    for (name, kind, help) in DESCRIPTIONS {
        let (key, help) = (KeyName::from_const_str(name), SharedString::const_str(help));
        match kind {
            Kind::Counter => recorder.describe_counter(key, Some(Unit::Count), help),
            Kind::Gauge => recorder.describe_gauge(key, Some(Unit::Count), help),
            Kind::Histogram => recorder.describe_histogram(key, Some(Unit::Seconds), help),
        }
    }
}

/// A family labelled by `device_id` (capped) and optionally a static second label.
fn by_device<M: Handle>(name: &'static str, second: Option<&'static str>) -> Family<M> {
    Family::new(name, "device_id", second, Some(MAX_DEVICE_IDS))
}

/// A family with one static label.
fn fixed<M: Handle>(name: &'static str, label: &'static str) -> Family<M> {
    Family::new(name, label, None, None)
}

impl Inner {
    fn new() -> Self {
        let recorder = recorder();
        describe(&recorder);
        let r = &recorder;
        let inner = Self {
            handle: recorder.handle(),
            observations: AtomicU64::new(0),
            packet_sent: by_device(PACKET_SENT, Some("outcome")),
            packet_recv: by_device(PACKET_RECV, Some("outcome")),
            packet_latency: by_device(PACKET_LATENCY, None),
            packet_retransmit: by_device(PACKET_RETRANSMIT, Some("reason")),
            decode_errors: by_device(DECODE_ERRORS, Some("reason")),
            connected_sessions: Gauge::register(r, CONNECTED_SESSIONS),
            mesh_routes: Gauge::register(r, MESH_ROUTES),
            sessions_opened: single(r, SESSIONS_OPENED),
            sessions_closed: fixed(SESSIONS_CLOSED, "reason"),
            tls_handshake_failures: fixed(TLS_HANDSHAKE_FAILURES, "reason"),
            connections_rejected: fixed(CONNECTIONS_REJECTED, "reason"),
            ack_received: by_device(ACK_RECEIVED, Some("outcome")),
            ack_timeout: by_device(ACK_TIMEOUT, None),
            idempotent_drop: by_device(IDEMPOTENT_DROP, None),
            send_queue_size: Gauge::register(r, SEND_QUEUE_SIZE),
            recv_queue_size: Gauge::register(r, RECV_QUEUE_SIZE),
            queue_full: by_device(QUEUE_FULL, Some("queue_type")),
            command: Family::new(COMMAND, "transport", Some("outcome"), None),
            command_latency: fixed(COMMAND_LATENCY, "transport"),
            mqtt_connected: Gauge::register(r, MQTT_CONNECTED),
            mqtt_published: fixed(MQTT_PUBLISHED, "kind"),
            mqtt_commands: fixed(MQTT_COMMANDS, "result"),
            devices_available: Gauge::register(r, DEVICES_AVAILABLE),
            rollout_store_healthy: Gauge::register(r, ROLLOUT_STORE_HEALTHY),
            rollout_store_errors: fixed(ROLLOUT_STORE_ERRORS, "kind"),
            rollout_store_writes: single(r, ROLLOUT_STORE_WRITES),
            rollout: RolloutMetrics::new(r),
            frames_received: AtomicU64::new(0),
            frames_undecodable: AtomicU64::new(0),
            recorder,
        };
        inner.init_fixed_vocabularies();
        inner
    }

    /// Creates every series whose labels all come from a fixed vocabulary, at zero.
    fn init_fixed_vocabularies(&self) {
        let r = &self.recorder;
        self.sessions_closed
            .init(r, vocab::SESSION_CLOSE_REASONS, &[""]);
        self.tls_handshake_failures
            .init(r, vocab::HANDSHAKE_FAILURE_REASONS, &[""]);
        self.connections_rejected
            .init(r, vocab::REJECTION_REASONS, &[""]);
        self.command
            .init(r, vocab::TRANSPORTS, vocab::COMMAND_OUTCOMES);
        self.command_latency.init(r, vocab::TRANSPORTS, &[""]);
        self.mqtt_published
            .init(r, vocab::MQTT_PUBLISH_KINDS, &[""]);
        self.mqtt_commands
            .init(r, vocab::MQTT_COMMAND_RESULTS, &[""]);
        self.rollout_store_errors
            .init(r, vocab::ROLLOUT_STORE_ERROR_KINDS, &[""]);
    }

    fn observe(&self, family: &Family<Histogram>, first: &str, latency: Duration) {
        family.with(&self.recorder, first, "", |h| {
            h.record(latency.as_secs_f64())
        });
        let seen = self.observations.fetch_add(1, Ordering::Relaxed);
        if seen % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.handle.run_upkeep();
        }
    }

    fn count(&self, family: &Family<Counter>, first: &str, second: &'static str) {
        family.with(&self.recorder, first, second, |c| c.increment(1));
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
    /// A fresh, independent registry: every unlabelled series and every series of a fixed
    /// vocabulary present at zero, device-labelled families empty.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner::new()),
        }
    }

    /// The name of every family the bridge exports, whether or not it has a series yet (a
    /// device-labelled family appears in [`render`](Self::render) only after its first device):
    /// for checking that dashboards and alert rules query only what exists.
    pub fn family_names() -> impl Iterator<Item = &'static str> {
        DESCRIPTIONS
            .iter()
            .map(|(name, _, _)| *name)
            .chain(RolloutMetrics::family_names())
    }

    /// The rollout controller's families.
    pub fn rollout(&self) -> Rollout<'_> {
        Rollout {
            families: &self.inner.rollout,
            recorder: &self.inner.recorder,
        }
    }

    /// Frames read from devices and, of those, frames that could not be decoded, since start.
    pub fn frame_totals(&self) -> (u64, u64) {
        (
            self.inner.frames_received.load(Ordering::Relaxed),
            self.inner.frames_undecodable.load(Ordering::Relaxed),
        )
    }

    /// Counts a packet written to `device_id`'s session (`tcp_comm_packet_sent_total`).
    pub fn packet_sent(&self, device_id: &str, outcome: &'static str) {
        self.inner
            .count(&self.inner.packet_sent, device_id, outcome);
    }

    /// Counts a packet read from `device_id`'s session (`tcp_comm_packet_recv_total`).
    pub fn packet_recv(&self, device_id: &str, outcome: &'static str) {
        self.inner.frames_received.fetch_add(1, Ordering::Relaxed);
        self.inner
            .count(&self.inner.packet_recv, device_id, outcome);
    }

    /// Records the time between a packet and its answer (`tcp_comm_packet_latency_seconds`).
    pub fn packet_latency(&self, device_id: &str, latency: Duration) {
        self.inner
            .observe(&self.inner.packet_latency, device_id, latency);
    }

    /// Counts a packet sent again (`tcp_comm_packet_retransmit_total`).
    pub fn packet_retransmit(&self, device_id: &str, reason: &'static str) {
        self.inner
            .count(&self.inner.packet_retransmit, device_id, reason);
    }

    /// Counts a frame that could not be decoded (`tcp_comm_decode_errors_total`).
    pub fn decode_error(&self, device_id: &str, reason: &'static str) {
        self.inner
            .frames_undecodable
            .fetch_add(1, Ordering::Relaxed);
        self.inner
            .count(&self.inner.decode_errors, device_id, reason);
    }

    /// Counts a session opening (`tcp_comm_sessions_opened_total`, `tcp_comm_connected_sessions`)
    /// and returns the guard that records its closing. Tying both to one guard keeps the gauge
    /// honest even when a session task panics or is dropped.
    pub fn session_opened(&self) -> SessionGuard {
        self.inner.sessions_opened.increment(1);
        self.inner.connected_sessions.inc();
        SessionGuard {
            metrics: self.clone(),
            open: true,
        }
    }

    /// The number of mesh routes known (`tcp_comm_mesh_routes`); the route registry `set`s it.
    pub fn mesh_routes(&self) -> &Gauge {
        &self.inner.mesh_routes
    }

    /// Counts a failed TLS handshake (`tcp_comm_tls_handshake_failures_total`).
    pub fn tls_handshake_failure(&self, reason: &'static str) {
        self.inner
            .count(&self.inner.tls_handshake_failures, reason, "");
    }

    /// Counts a connection turned away before its session (`tcp_comm_connections_rejected_total`):
    /// over `server.max_connections`, outside `server.allow_networks`, or the hold pool full.
    pub fn connection_rejected(&self, reason: &'static str) {
        self.inner
            .count(&self.inner.connections_rejected, reason, "");
    }

    /// Counts a command receipt (`tcp_comm_ack_received_total`).
    pub fn ack_received(&self, device_id: &str, outcome: &'static str) {
        self.inner
            .count(&self.inner.ack_received, device_id, outcome);
    }

    /// Counts a command whose answer timed out (`tcp_comm_ack_timeout_total`).
    pub fn ack_timeout(&self, device_id: &str) {
        self.inner.count(&self.inner.ack_timeout, device_id, "");
    }

    /// Counts a retransmitted device packet dropped by de-duplication
    /// (`tcp_comm_idempotent_drop_total`).
    pub fn idempotent_drop(&self, device_id: &str) {
        self.inner.count(&self.inner.idempotent_drop, device_id, "");
    }

    /// Items in all session send queues (`tcp_comm_send_queue_size`); sessions `add` and
    /// subtract as they enqueue and dequeue.
    pub fn send_queue_size(&self) -> &Gauge {
        &self.inner.send_queue_size
    }

    /// Items in the inbound event queue (`tcp_comm_recv_queue_size`).
    pub fn recv_queue_size(&self) -> &Gauge {
        &self.inner.recv_queue_size
    }

    /// Counts an item that met a full queue (`tcp_comm_queue_full_total`), whatever the queue's
    /// overflow policy then did with it.
    pub fn queue_full(&self, device_id: &str, queue_type: &'static str) {
        self.inner
            .count(&self.inner.queue_full, device_id, queue_type);
    }

    /// Counts a finished command (`tcp_comm_command_total`).
    pub fn command(&self, transport: &'static str, outcome: &'static str) {
        self.inner.count(&self.inner.command, transport, outcome);
    }

    /// Records a command's submission-to-outcome time (`tcp_comm_command_latency_seconds`).
    pub fn command_latency(&self, transport: &'static str, latency: Duration) {
        self.inner
            .observe(&self.inner.command_latency, transport, latency);
    }

    /// Whether the broker connection is up (`tcp_comm_mqtt_connected`).
    pub fn mqtt_connected(&self) -> &Gauge {
        &self.inner.mqtt_connected
    }

    /// Counts a message queued for the broker (`tcp_comm_mqtt_published_total`).
    pub fn mqtt_published(&self, kind: &'static str) {
        self.inner.count(&self.inner.mqtt_published, kind, "");
    }

    /// Counts an MQTT command by what became of it (`tcp_comm_mqtt_commands_total`).
    pub fn mqtt_command(&self, result: &'static str) {
        self.inner.count(&self.inner.mqtt_commands, result, "");
    }

    /// Devices available in Home Assistant (`tcp_comm_devices_available`).
    pub fn devices_available(&self) -> &Gauge {
        &self.inner.devices_available
    }

    /// Whether the rollout store's last flush reached the disk (`tcp_comm_rollout_store_healthy`).
    pub fn rollout_store_healthy(&self) -> &Gauge {
        &self.inner.rollout_store_healthy
    }

    /// Counts a failed rollout store operation or a dropped record
    /// (`tcp_comm_rollout_store_errors_total`).
    pub fn rollout_store_error(&self, kind: &'static str) {
        self.inner.count(&self.inner.rollout_store_errors, kind, "");
    }

    /// Counts records committed by one flush (`tcp_comm_rollout_store_writes_total`).
    pub fn rollout_store_written(&self, records: u64) {
        self.inner.rollout_store_writes.increment(records);
    }

    /// The Prometheus text exposition (format 0.0.4) of every series that exists, as the exporter
    /// writes it: each family in one block after its HELP and TYPE lines, blocks separated by an
    /// empty line, families and series in no particular order.
    pub fn render(&self) -> String {
        self.inner.handle.render()
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
            inner.count(&inner.sessions_closed, reason, "");
            inner.connected_sessions.dec();
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
        }
        for (name, kind, _) in DESCRIPTIONS {
            match kind {
                Kind::Counter => assert!(name.ends_with("_total"), "{name}"),
                Kind::Histogram => assert!(name.ends_with("_seconds"), "{name}"),
                Kind::Gauge => assert!(!name.ends_with("_total"), "{name}"),
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
