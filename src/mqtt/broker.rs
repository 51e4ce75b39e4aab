//! A small MQTT 3.1.1 broker for `cync-bridge demo`, so a fresh machine can try the bridge with
//! no broker installed. It speaks what Home Assistant, `mosquitto_sub`/`mosquitto_pub` and our
//! own client use: CONNECT (with last will), PUBLISH at QoS 0/1/2 in and 0/1 out, retained
//! messages, SUBSCRIBE/UNSUBSCRIBE with `+` and `#`, keep-alive, DISCONNECT. Packet encoding is
//! rumqttc's (already a dependency), so only the routing is ours.
//!
//! Deliberately not a production broker: no authentication, no persistence, no sessions that
//! survive a reconnect (every session is clean), no redelivery of unacknowledged QoS 1
//! messages. Point the bridge at Mosquitto for real use. Behind the `embedded-broker` feature.
//!
//! Design: one task per connection owns its socket; a shared table (one `std::sync::Mutex`, held
//! only to copy out matching subscribers, never across an `.await`) maps subscriptions to each
//! connection's bounded outbox. A connection that cannot keep up loses messages (logged), it
//! never slows the publisher.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, Publish, SubAck,
    SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Largest packet accepted or sent.
const MAX_PACKET: usize = 256 * 1024;
/// Messages waiting per connection before newer ones are dropped for it.
const OUTBOX: usize = 4096;
/// A connection must send CONNECT within this time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Does `topic` match the subscription `filter` (MQTT 3.1.1 §4.7)?
pub fn matches(filter: &str, topic: &str) -> bool {
    // Wildcards at the first level never match topics starting with `$` (§4.7.2).
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A filter is valid when `#` is last and alone in its level and `+` is alone in its level.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, level)| match *level {
        "#" => i == levels.len() - 1,
        "+" => true,
        l => !l.contains(['#', '+']),
    })
}

struct Client {
    outbox: mpsc::Sender<Publish>,
    filters: Vec<(String, QoS)>,
    client_id: String,
    kick: CancellationToken,
}

#[derive(Default)]
struct Table {
    clients: HashMap<u64, Client>,
    retained: BTreeMap<String, (Bytes, QoS)>,
}

/// The broker's shared routing table.
#[derive(Clone, Default)]
struct Shared {
    table: Arc<Mutex<Table>>,
    next_id: Arc<AtomicU64>,
}

fn min_qos(a: QoS, b: QoS) -> QoS {
    let level = |q: QoS| match q {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    };
    // Outgoing QoS 2 is never used: QoS 1 gives every client here what it needs.
    match level(a).min(level(b)).min(1) {
        0 => QoS::AtMostOnce,
        _ => QoS::AtLeastOnce,
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores (or clears) a retained message and delivers `publish` to every matching
    /// subscription, with the retain flag clear (§3.3.1.3).
    fn route(&self, publish: &Publish) {
        let targets: Vec<(mpsc::Sender<Publish>, QoS)> = {
            let mut table = self.lock();
            if publish.retain {
                if publish.payload.is_empty() {
                    table.retained.remove(&publish.topic);
                } else {
                    table.retained.insert(
                        publish.topic.clone(),
                        (publish.payload.clone(), publish.qos),
                    );
                }
            }
            table
                .clients
                .values()
                .filter_map(|c| {
                    c.filters
                        .iter()
                        .filter(|(f, _)| matches(f, &publish.topic))
                        .map(|(_, q)| *q)
                        .max_by_key(|q| *q as u8)
                        .map(|q| (c.outbox.clone(), q))
                })
                .collect()
        };
        for (outbox, qos) in targets {
            let mut out =
                Publish::new(publish.topic.clone(), min_qos(publish.qos, qos), Vec::new());
            out.payload = publish.payload.clone();
            if outbox.try_send(out).is_err() {
                tracing::debug!(topic = %publish.topic, "embedded broker: a slow subscriber missed a message");
            }
        }
    }
}

/// Listens on `addr` and serves clients until `shutdown`; returns the bound address.
pub async fn start(
    addr: SocketAddr,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let shared = Shared::default();
    let connections = tracker.clone();
    tracker.spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve(stream, peer, shared.clone(), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "embedded broker: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(local)
}

/// Reads one packet, reading more bytes as needed. `None` on a clean EOF.
async fn read_packet(
    stream: &mut (impl AsyncReadExt + Unpin),
    buf: &mut BytesMut,
) -> Result<Option<Packet>, String> {
    loop {
        match Packet::read(buf, MAX_PACKET) {
            Ok(p) => return Ok(Some(p)),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => return Err(format!("malformed packet: {e}")),
        }
        let n = stream
            .read_buf(buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err("connection closed mid-packet".to_owned())
            };
        }
    }
}

async fn write_packet(
    stream: &mut (impl AsyncWriteExt + Unpin),
    packet: &Packet,
) -> Result<(), String> {
    let mut out = BytesMut::new();
    packet
        .write(&mut out, MAX_PACKET)
        .map_err(|e| format!("encode: {e}"))?;
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("write: {e}"))
}

async fn serve(stream: TcpStream, peer: SocketAddr, shared: Shared, shutdown: CancellationToken) {
    let (mut reader, mut writer) = stream.into_split();
    let mut buf = BytesMut::with_capacity(4096);
    let connect =
        match tokio::time::timeout(CONNECT_TIMEOUT, read_packet(&mut reader, &mut buf)).await {
            Ok(Ok(Some(Packet::Connect(c)))) => c,
            Ok(Ok(_)) | Err(_) => return,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "embedded broker: bad CONNECT");
                return;
            }
        };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Publish>(OUTBOX);
    let kick = CancellationToken::new();
    {
        let mut table = shared.lock();
        // A second connection with the same client id takes over (§3.1.4).
        for c in table.clients.values() {
            if c.client_id == connect.client_id && !connect.client_id.is_empty() {
                c.kick.cancel();
            }
        }
        table.clients.insert(
            id,
            Client {
                outbox: tx,
                filters: Vec::new(),
                client_id: connect.client_id.clone(),
                kick: kick.clone(),
            },
        );
    }
    let ack = Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false));
    let mut clean = false;
    let keep_alive = Duration::from_secs(u64::from(connect.keep_alive));
    let idle_limit = if keep_alive.is_zero() {
        Duration::from_secs(24 * 3600)
    } else {
        keep_alive.mul_f32(1.5)
    };
    let mut pkid: u16 = 0;
    let result: Result<(), String> = async {
        write_packet(&mut writer, &ack).await?;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => { clean = true; return Ok(()) }
                () = kick.cancelled() => return Ok(()),
                out = rx.recv() => {
                    let Some(mut out) = out else { return Ok(()) };
                    if out.qos != QoS::AtMostOnce {
                        pkid = if pkid == u16::MAX { 1 } else { pkid + 1 };
                        out.pkid = pkid;
                    }
                    write_packet(&mut writer, &Packet::Publish(out)).await?;
                }
                read = tokio::time::timeout(idle_limit, read_packet(&mut reader, &mut buf)) => {
                    let packet = match read {
                        Err(_) => return Err("keep-alive expired".to_owned()),
                        Ok(Ok(Some(p))) => p,
                        Ok(Ok(None)) => return Err("connection closed".to_owned()),
                        Ok(Err(e)) => return Err(e),
                    };
                    if handle(packet, id, &shared, &mut writer, &mut clean).await? {
                        return Ok(());
                    }
                }
            }
        }
    }
    .await;
    // `read_packet` is not cancel-safe across the select; a lost partial read only ever ends
    // this connection, which the next iteration would do anyway.
    shared.lock().clients.remove(&id);
    if let Err(e) = &result {
        tracing::debug!(%peer, error = %e, "embedded broker: connection ended");
    }
    if !clean {
        if let Some(will) = connect.last_will {
            let mut publish = Publish::new(will.topic, will.qos, Vec::new());
            publish.payload = will.message;
            publish.retain = will.retain;
            shared.route(&publish);
        }
    }
}

/// Handles one packet from a client; `Ok(true)` ends the connection cleanly.
async fn handle(
    packet: Packet,
    id: u64,
    shared: &Shared,
    writer: &mut (impl AsyncWriteExt + Unpin),
    clean: &mut bool,
) -> Result<bool, String> {
    match packet {
        Packet::Publish(p) => {
            if p.topic.is_empty() || p.topic.contains(['+', '#']) {
                return Err(format!("invalid topic name {:?}", p.topic));
            }
            match p.qos {
                QoS::AtMostOnce => {}
                QoS::AtLeastOnce => {
                    write_packet(writer, &Packet::PubAck(PubAck::new(p.pkid))).await?
                }
                QoS::ExactlyOnce => {
                    write_packet(writer, &Packet::PubRec(PubRec::new(p.pkid))).await?
                }
            }
            shared.route(&p);
        }
        Packet::PubRel(rel) => {
            write_packet(writer, &Packet::PubComp(PubComp::new(rel.pkid))).await?
        }
        Packet::Subscribe(sub) => {
            let mut codes = Vec::with_capacity(sub.filters.len());
            let mut retained = Vec::new();
            {
                let mut table = shared.lock();
                let mut granted = Vec::new();
                for f in &sub.filters {
                    if valid_filter(&f.path) {
                        let qos = min_qos(f.qos, QoS::AtLeastOnce);
                        codes.push(SubscribeReasonCode::Success(qos));
                        granted.push((f.path.clone(), qos));
                        for (topic, (payload, stored)) in &table.retained {
                            if matches(&f.path, topic) {
                                let mut p =
                                    Publish::new(topic.clone(), min_qos(*stored, qos), Vec::new());
                                p.payload = payload.clone();
                                p.retain = true;
                                retained.push(p);
                            }
                        }
                    } else {
                        codes.push(SubscribeReasonCode::Failure);
                    }
                }
                if let Some(c) = table.clients.get_mut(&id) {
                    for (path, qos) in granted {
                        c.filters.retain(|(p, _)| *p != path);
                        c.filters.push((path, qos));
                    }
                }
            }
            write_packet(writer, &Packet::SubAck(SubAck::new(sub.pkid, codes))).await?;
            // Retained messages go through the outbox, after the SUBACK and in order with
            // live ones.
            if let Some(tx) = shared.lock().clients.get(&id).map(|c| c.outbox.clone()) {
                for p in retained {
                    if tx.try_send(p).is_err() {
                        break;
                    }
                }
            }
        }
        Packet::Unsubscribe(unsub) => {
            if let Some(c) = shared.lock().clients.get_mut(&id) {
                c.filters.retain(|(p, _)| !unsub.topics.contains(p));
            }
            write_packet(writer, &Packet::UnsubAck(UnsubAck::new(unsub.pkid))).await?;
        }
        Packet::PingReq => write_packet(writer, &Packet::PingResp).await?,
        Packet::Disconnect => {
            *clean = true;
            return Ok(true);
        }
        // Acknowledgements of what we sent: nothing is redelivered, so nothing to track.
        Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_) => {}
        other => return Err(format!("unexpected packet {other:?}")),
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters_match_as_mqtt_says() {
        assert!(matches("cync/#", "cync/1-2/set"));
        assert!(matches("cync/#", "cync"), "# includes the parent level");
        assert!(matches("cync/+/set", "cync/1-2/set"));
        assert!(!matches("cync/+/set", "cync/1-2/percentage/set"));
        assert!(matches(
            "homeassistant/+/cync_bridge/+/config",
            "homeassistant/light/cync_bridge/x/config"
        ));
        assert!(!matches(
            "homeassistant/+/cync_bridge/+/config",
            "homeassistant/light/z2m/x/config"
        ));
        assert!(matches("#", "a/b"));
        assert!(!matches("#", "$SYS/uptime"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
    }

    #[test]
    fn filters_with_misplaced_wildcards_are_refused() {
        for ok in ["#", "a/#", "+/b", "a/+/c", "+"] {
            assert!(valid_filter(ok), "{ok}");
        }
        for bad in ["", "a/#/c", "a#", "a/b+", "#/a"] {
            assert!(!valid_filter(bad), "{bad}");
        }
    }
}
