//! The broker connection: one task drives rumqttc's event loop and only routes what arrives;
//! another forwards the outbox to the broker. Nothing slow ever runs inside
//! the poll loop, so keep-alives flow even while the bridge is busy.
//!
//! Owns: the MQTT session, its last will (`<base>/bridge/state` = `offline`, retained), the
//! `online` birth published on every connect, resubscription after every reconnect, and capped,
//! jittered, cancellable reconnect backoff. A broker that is down at start or goes away later
//! never stops anything else: the bridge keeps its devices and republishes on [`MqttEvent::Connected`].
//! Must never: block on the bridge, exit the process, or drop a command silently.

use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, NetworkOptions, Packet,
    QoS, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::topics::Topics;

/// One message to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    #[allow(missing_docs)]
    pub topic: String,
    /// Payload bytes.
    pub payload: Bytes,
    /// 0 or 1 (QoS 2 is never needed here).
    pub qos: u8,
    /// Retained on the broker.
    pub retain: bool,
}

/// What the connection tells the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MqttEvent {
    /// (Re)connected and subscribed: republish discovery, availability and state.
    Connected,
    /// Lost the broker; reconnecting with backoff.
    Disconnected {
        /// Why, for the log.
        reason: String,
    },
    /// A message on a subscribed topic.
    #[allow(missing_docs)]
    Message { topic: String, payload: Bytes },
}

/// Broker TLS material (PEM files).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MqttTls {
    /// CA bundle to trust; `None` uses the system roots.
    pub ca: Option<std::path::PathBuf>,
    /// Client certificate for mutual TLS.
    pub client_cert: Option<std::path::PathBuf>,
    /// Its private key.
    pub client_key: Option<std::path::PathBuf>,
}

/// Everything needed to reach the broker, already validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TLS when the URL is `mqtts://`.
    pub tls: Option<MqttTls>,
    /// User name.
    pub username: Option<String>,
    /// Password (never logged).
    pub password: Option<String>,
    /// MQTT client id.
    pub client_id: String,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
    /// Largest payload read from the broker. rumqttc's own default (10 KiB) makes one oversized
    /// retained message on a command topic drop the connection on every reconnect.
    pub max_payload: usize,
    /// Outbox capacity: publishers wait when it is full (states are snapshots, so a burst only
    /// delays; nothing is lost).
    pub outbox_capacity: usize,
    /// Capacity of the event channel towards the bridge.
    pub events_capacity: usize,
}

/// Why the MQTT settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MqttConfigError {
    /// URL not `mqtt://host[:port]` or `mqtts://host[:port]`.
    #[error("mqtt url {0:?} must look like mqtt://host:1883 or mqtts://host:8883")]
    BadUrl(String),
    /// A TLS file could not be read or parsed.
    #[error("mqtt tls: {what} {path}: {reason}")]
    #[allow(missing_docs)]
    Tls {
        /// `ca_file`, `client_cert` or `client_key`.
        what: &'static str,
        path: String,
        reason: String,
    },
}

/// Splits `mqtt://host:port` / `mqtts://host:port` into host, port and whether TLS is on.
pub fn parse_url(url: &str) -> Result<(String, u16, bool), MqttConfigError> {
    let bad = || MqttConfigError::BadUrl(url.to_string());
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            (h, p.parse::<u16>().map_err(|_| bad())?)
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    Ok((host.to_string(), port, tls))
}

fn read(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, MqttConfigError> {
    std::fs::read(path).map_err(|e| MqttConfigError::Tls {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// The rumqttc TLS settings for `tls`; shared with `doctor`, which must connect exactly as the
/// bridge does.
pub fn tls_configuration(tls: &MqttTls) -> Result<TlsConfiguration, MqttConfigError> {
    let Some(ca_path) = &tls.ca else {
        return Ok(TlsConfiguration::Native);
    };
    let ca = read("ca", ca_path)?;
    let client_auth = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => Some(pkcs12(cert, key)?),
        _ => None,
    };
    Ok(TlsConfiguration::SimpleNative { ca, client_auth })
}

/// native-tls takes a client identity as PKCS#12; convert the PEM pair users actually have.
fn pkcs12(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<(Vec<u8>, String), MqttConfigError> {
    let tls_err =
        |what, path: &std::path::Path, e: openssl::error::ErrorStack| MqttConfigError::Tls {
            what,
            path: path.display().to_string(),
            reason: e.to_string(),
        };
    let cert_pem = read("client certificate", cert)?;
    let key_pem = read("client key", key)?;
    let x509 = openssl::x509::X509::from_pem(&cert_pem)
        .map_err(|e| tls_err("client certificate", cert, e))?;
    let pkey = openssl::pkey::PKey::private_key_from_pem(&key_pem)
        .map_err(|e| tls_err("client key", key, e))?;
    let der = openssl::pkcs12::Pkcs12::builder()
        .name("cync-bridge")
        .pkey(&pkey)
        .cert(&x509)
        .build2("")
        .and_then(|p| p.to_der())
        .map_err(|e| tls_err("client identity", cert, e))?;
    Ok((der, String::new()))
}

/// Sender half of the outbox; cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
}

impl Outbox {
    /// A handle over an existing channel (tests use this as a recording outbox).
    pub fn from_sender(tx: mpsc::Sender<Outgoing>) -> Self {
        Outbox { tx }
    }

    /// Queues a publish, waiting while the outbox is full. `false` once the client has stopped.
    pub async fn publish(&self, msg: Outgoing) -> bool {
        self.tx.send(msg).await.is_ok()
    }

    /// Queues a publish without waiting; `false` when the outbox is full or closed (the bridge
    /// then republishes everything later instead of blocking its event loop).
    pub fn try_publish(&self, msg: Outgoing) -> bool {
        self.tx.try_send(msg).is_ok()
    }
}

fn qos(level: u8) -> QoS {
    if level == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

/// Starts the connection and forwarder tasks on `tracker`; they end when `cancel` fires, after
/// publishing `offline` to the bridge state topic.
pub fn spawn(
    settings: &MqttSettings,
    topics: &Topics,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> Result<(Outbox, mpsc::Receiver<MqttEvent>), MqttConfigError> {
    let mut options = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    options.set_keep_alive(settings.keep_alive.max(Duration::from_secs(5)));
    options.set_clean_session(true);
    // Room for the largest topic (65,535 bytes) and the fixed header on top of the payload.
    let max_packet = settings.max_payload.saturating_add(65_540);
    options.set_max_packet_size(max_packet, max_packet);
    options.set_last_will(LastWill::new(
        topics.bridge_state(),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let (Some(user), password) = (&settings.username, &settings.password) {
        options.set_credentials(user, password.clone().unwrap_or_default());
    }
    if let Some(tls) = &settings.tls {
        options.set_transport(Transport::Tls(tls_configuration(tls)?));
    }
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(10);
    eventloop.set_network_options(network);

    let (out_tx, out_rx) = mpsc::channel(settings.outbox_capacity.max(1));
    let (ev_tx, ev_rx) = mpsc::channel(settings.events_capacity.max(1));
    let poll = PollLoop {
        client: client.clone(),
        topics: topics.clone(),
        events: ev_tx,
        backoff: (settings.reconnect_min, settings.reconnect_max),
    };
    let stop_poll = CancellationToken::new();
    tracker.spawn(poll.run(eventloop, stop_poll.clone()));
    tracker.spawn(forward(
        client,
        out_rx,
        topics.bridge_state(),
        cancel,
        stop_poll,
    ));
    Ok((Outbox { tx: out_tx }, ev_rx))
}

/// Doubling from `min`, capped at `max`, with ±20 % jitter so bridges that lost one broker do not
/// reconnect in step.
fn backoff_delay(min: Duration, max: Duration, failures: u32) -> Duration {
    let exp = min.saturating_mul(1u32 << failures.min(16)).min(max);
    let jitter = rand::thread_rng().gen_range(0.8..=1.2);
    exp.mul_f64(jitter).min(max)
}

struct PollLoop {
    client: AsyncClient,
    topics: Topics,
    events: mpsc::Sender<MqttEvent>,
    backoff: (Duration, Duration),
}

impl PollLoop {
    async fn run(self, mut eventloop: EventLoop, stop: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            let event = tokio::select! {
                // cancel-safe: `poll` keeps its state in the event loop between calls.
                e = eventloop.poll() => e,
                () = stop.cancelled() => return,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    failures = 0;
                    self.on_connected();
                    if self.events.send(MqttEvent::Connected).await.is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = p.topic;
                    let msg = MqttEvent::Message {
                        topic,
                        payload: p.payload,
                    };
                    // Waiting here is backpressure towards the broker; the bridge hands each
                    // command to its own task, so this channel drains quickly.
                    if self.events.send(msg).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if matches!(e, ConnectionError::RequestsDone) {
                        return;
                    }
                    let delay = self.delay(failures);
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "mqtt connection lost");
                    let reason = e.to_string();
                    let _ = self.events.try_send(MqttEvent::Disconnected { reason });
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        }
    }

    /// Subscriptions and the `online` birth go into the client's request queue without
    /// waiting (the queue is drained by this very loop, so awaiting could deadlock).
    fn on_connected(&self) {
        for filter in self.topics.subscriptions() {
            if let Err(e) = self.client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                tracing::error!(%filter, error = %e, "mqtt subscribe could not be queued");
            }
        }
        if let Err(e) =
            self.client
                .try_publish(self.topics.bridge_state(), QoS::AtLeastOnce, true, "online")
        {
            tracing::error!(error = %e, "mqtt birth could not be queued");
        }
    }

    fn delay(&self, failures: u32) -> Duration {
        let (min, max) = self.backoff;
        backoff_delay(min, max, failures)
    }
}

async fn forward(
    client: AsyncClient,
    mut outbox: mpsc::Receiver<Outgoing>,
    bridge_state: String,
    cancel: CancellationToken,
    stop_poll: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            // cancel-safe: `recv` loses nothing when the other branch wins.
            m = outbox.recv() => m,
            () = cancel.cancelled() => None,
        };
        let Some(msg) = msg else { break };
        if let Err(e) = client
            .publish(msg.topic, qos(msg.qos), msg.retain, msg.payload)
            .await
        {
            tracing::error!(error = %e, "mqtt publish dropped: client stopped");
            break;
        }
    }
    // Clean shutdown: say offline ourselves (the will only fires on an unclean drop), then
    // give the poll loop a moment to flush it before stopping it.
    let _ = client
        .publish(bridge_state, QoS::AtLeastOnce, true, "offline")
        .await;
    let _ = client.disconnect().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_poll.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_the_default_backoff_no_reconnect_wait_exceeds_five_seconds() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(5));
        for failures in 0..40 {
            let d = backoff_delay(min, max, failures);
            assert!(d <= max, "{failures} failures: {d:?}");
            assert!(d >= min.mul_f64(0.8), "{failures} failures: {d:?}");
        }
        assert!(
            backoff_delay(min, max, 30) >= max.mul_f64(0.8),
            "reaches the cap"
        );
    }

    #[test]
    fn broker_urls_parse_with_defaults() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883, false)
        );
        assert_eq!(
            parse_url("mqtt://broker").unwrap(),
            ("broker".into(), 1883, false)
        );
        assert_eq!(
            parse_url("mqtts://broker/").unwrap(),
            ("broker".into(), 8883, true)
        );
        assert_eq!(
            parse_url("mqtt://[::1]:1884").unwrap(),
            ("::1".into(), 1884, false)
        );
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://h:port",
            "broker:1883",
            "mqtt://a/b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
