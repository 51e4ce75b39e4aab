//! What a user sees from outside: the bridge's `/metrics` over plain HTTP, and the retained
//! messages on the broker, read by a fresh MQTT client exactly as Home Assistant would on start.

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::PATIENCE;

/// Pause between two looks at something that is not there yet (polling, not synchronisation:
/// every wait below ends on what it observes, and fails only at [`PATIENCE`]).
const POLL: Duration = Duration::from_millis(200);

/// The body of `GET path`, or why there is none.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    match reply.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") =>
        {
            Ok(body.to_owned())
        }
        _ => Err(format!("unexpected reply: {reply}")),
    }
}

/// The value of the unlabelled sample `name` in a Prometheus text exposition.
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (metric, value) = line.split_once(' ')?;
        (metric == name)
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// Scrapes `/metrics` until every `(name, value)` holds; the last scrape (or error) on failure.
pub async fn await_samples(
    telemetry: SocketAddr,
    expected: &[(&str, f64)],
) -> Result<String, String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let scrape = http_get(telemetry, "/metrics").await;
        if let Ok(body) = &scrape {
            if expected.iter().all(|(n, v)| sample(body, n) == Some(*v)) {
                return Ok(body.clone());
            }
        }
        if Instant::now() >= deadline {
            let seen = match scrape {
                Ok(body) => expected
                    .iter()
                    .map(|(n, _)| format!("{n} = {:?}", sample(&body, n)))
                    .collect::<Vec<_>>()
                    .join(", "),
                Err(e) => e,
            };
            return Err(format!("wanted {expected:?}, last scrape: {seen}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One retained message as a new subscriber receives it.
#[derive(Clone, Debug)]
pub struct Retained {
    pub topic: String,
    pub payload: String,
}

/// Every retained message under `filters`, as a client that subscribes now receives them.
///
/// Completeness without a timer: after the subscriptions are acknowledged the client publishes
/// to a private sentinel topic it also subscribed to; the broker queues retained messages on
/// subscribe, so by the time the sentinel comes back every retained message has arrived.
pub async fn retained(broker: SocketAddr, filters: &[&str]) -> Result<Vec<Retained>, String> {
    let id = format!("cync-test-{:016x}", rand::random::<u64>());
    let sentinel = format!("cync-test/sentinel/{id}");
    let mut options = MqttOptions::new(&id, broker.ip().to_string(), broker.port());
    options.set_keep_alive(Duration::from_secs(10));
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(options, 16);
    for filter in filters.iter().copied().chain([sentinel.as_str()]) {
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| format!("subscribe {filter}: {e}"))?;
    }
    let mut acks = 0;
    let mut out = Vec::new();
    let collected = tokio::time::timeout(PATIENCE, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    acks += 1;
                    if acks == filters.len() + 1 {
                        client
                            .publish(&sentinel, QoS::AtLeastOnce, false, "end")
                            .await
                            .map_err(|e| format!("publish sentinel: {e}"))?;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == sentinel => return Ok(()),
                Ok(Event::Incoming(Packet::Publish(p))) if p.retain => out.push(Retained {
                    topic: p.topic.clone(),
                    payload: String::from_utf8_lossy(&p.payload).into_owned(),
                }),
                Ok(_) => {}
                Err(e) => return Err(format!("broker {broker}: {e}")),
            }
        }
    })
    .await;
    let _ = client.try_disconnect();
    match collected {
        Ok(Ok(())) => Ok(out),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer from broker {broker}")),
    }
}

/// Looks at the retained messages under `filters` until `wanted` holds for them.
pub async fn await_retained(
    broker: SocketAddr,
    filters: &[&str],
    wanted: impl Fn(&[Retained]) -> bool,
) -> Result<Vec<Retained>, String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = retained(broker, filters).await;
        if let Ok(messages) = &seen {
            if wanted(messages) {
                return Ok(messages.clone());
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("retained under {filters:?}: {seen:?}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the broker accepts an MQTT session (a published port accepts TCP before the
/// process behind it listens, so a TCP connect proves nothing).
pub async fn await_broker(broker: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match retained(broker, &[]).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// The retained payload of `topic`, if any.
pub fn payload<'a>(messages: &'a [Retained], topic: &str) -> Option<&'a str> {
    messages
        .iter()
        .find(|m| m.topic == topic)
        .map(|m| m.payload.as_str())
}
