//! The broker connection against a real Mosquitto: birth and will on the bridge state topic,
//! exact retain and QoS of what the outbox publishes, commands arriving as events, recovery
//! from a broker restart, and `offline` on clean shutdown.

mod common;

use std::time::Duration;

use bytes::Bytes;
use cync_bridge::mqtt::client::{spawn, MqttEvent, MqttSettings, Outgoing};
use cync_bridge::mqtt::topics::Topics;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn settings(port: u16) -> MqttSettings {
    MqttSettings {
        host: "127.0.0.1".into(),
        port,
        tls: None,
        username: None,
        password: None,
        client_id: format!("cync-bridge-test-{port}"),
        keep_alive: Duration::from_secs(5),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_millis(500),
        max_payload: 1024 * 1024,
        outbox_capacity: 64,
        events_capacity: 64,
    }
}

fn topics() -> Topics {
    Topics::new("cync", "homeassistant", "cync_bridge")
}

/// What an observer saw: (topic, payload, retain flag, qos).
type Seen = (String, String, bool, u8);

/// Subscribes a fresh observer to `filter` and collects what arrives for `window`.
/// Retained messages arrive with the retain flag set, so this reads the broker's retained set.
async fn observe(port: u16, filter: &str, window: Duration) -> Vec<Seen> {
    let mut opts = MqttOptions::new(format!("observer-{}", rand_id()), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut ev) = AsyncClient::new(opts, 16);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(window, async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = ev.poll().await {
                seen.push((
                    p.topic.clone(),
                    String::from_utf8_lossy(&p.payload).into_owned(),
                    p.retain,
                    p.qos as u8,
                ));
            }
        }
    })
    .await;
    seen
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn next_event(
    rx: &mut mpsc::Receiver<MqttEvent>,
    want: impl Fn(&MqttEvent) -> bool,
) -> MqttEvent {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = rx.recv().await.expect("event channel open");
            if want(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event within 10 s")
}

async fn publish_cmd(port: u16, topic: &str, payload: &str) {
    let mut opts = MqttOptions::new(format!("ha-{}", rand_id()), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut ev) = AsyncClient::new(opts, 16);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
        .await
        .unwrap();
    // Drive the connection until the publish is acknowledged.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Event::Incoming(Packet::PubAck(_))) = ev.poll().await {
                break;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn connects_says_online_and_publishes_with_the_requested_retain_and_qos() {
    let Some(broker) = common::Mosquitto::start() else {
        return;
    };
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (outbox, mut events) =
        spawn(&settings(broker.port), &topics(), &tracker, cancel.clone()).unwrap();
    assert_eq!(
        next_event(&mut events, |_| true).await,
        MqttEvent::Connected
    );

    outbox
        .publish(Outgoing {
            topic: "cync/1-5".into(),
            payload: Bytes::from_static(b"{\"state\":\"ON\"}"),
            qos: 1,
            retain: true,
        })
        .await;
    outbox
        .publish(Outgoing {
            topic: "cync/1-6".into(),
            payload: Bytes::from_static(b"x"),
            qos: 0,
            retain: false,
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut retained = observe(broker.port, "cync/#", Duration::from_millis(500)).await;
    retained.sort();
    assert_eq!(
        retained,
        vec![
            ("cync/1-5".into(), "{\"state\":\"ON\"}".into(), true, 1),
            ("cync/bridge/state".into(), "online".into(), true, 1),
        ],
        "exactly the retained messages, unretained ones are not kept"
    );
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
}

#[tokio::test]
async fn commands_arrive_as_events_and_survive_a_broker_restart() {
    let Some(mut broker) = common::Mosquitto::start() else {
        return;
    };
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (_outbox, mut events) =
        spawn(&settings(broker.port), &topics(), &tracker, cancel.clone()).unwrap();
    next_event(&mut events, |e| *e == MqttEvent::Connected).await;

    publish_cmd(broker.port, "cync/1-5/set", "{\"state\":\"ON\"}").await;
    let e = next_event(&mut events, |e| matches!(e, MqttEvent::Message { .. })).await;
    assert_eq!(
        e,
        MqttEvent::Message {
            topic: "cync/1-5/set".into(),
            payload: Bytes::from_static(b"{\"state\":\"ON\"}")
        }
    );

    broker.restart();
    next_event(&mut events, |e| matches!(e, MqttEvent::Disconnected { .. })).await;
    next_event(&mut events, |e| *e == MqttEvent::Connected).await;
    // Resubscribed after the reconnect: a new command still arrives, and the birth is back.
    publish_cmd(broker.port, "homeassistant/status", "online").await;
    let e = next_event(&mut events, |e| matches!(e, MqttEvent::Message { .. })).await;
    assert_eq!(
        e,
        MqttEvent::Message {
            topic: "homeassistant/status".into(),
            payload: Bytes::from_static(b"online")
        }
    );
    let state = observe(broker.port, "cync/bridge/state", Duration::from_millis(400)).await;
    assert_eq!(
        state,
        vec![("cync/bridge/state".into(), "online".into(), true, 1)]
    );
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
}

#[tokio::test]
async fn clean_shutdown_leaves_offline_retained() {
    let Some(broker) = common::Mosquitto::start() else {
        return;
    };
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (_outbox, mut events) =
        spawn(&settings(broker.port), &topics(), &tracker, cancel.clone()).unwrap();
    next_event(&mut events, |e| *e == MqttEvent::Connected).await;
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    let state = observe(broker.port, "cync/bridge/state", Duration::from_millis(400)).await;
    assert_eq!(
        state,
        vec![("cync/bridge/state".into(), "offline".into(), true, 1)]
    );
}

#[test]
fn a_bridge_that_dies_without_goodbye_is_marked_offline_by_its_will() {
    let Some(broker) = common::Mosquitto::start() else {
        return;
    };
    let port = broker.port;
    {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let tracker = TaskTracker::new();
            let (_o, mut events) = spawn(
                &settings(port),
                &topics(),
                &tracker,
                CancellationToken::new(),
            )
            .unwrap();
            next_event(&mut events, |e| *e == MqttEvent::Connected).await;
        });
        // Dropping the runtime kills the connection without a DISCONNECT, like a crash.
        rt.shutdown_background();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        observe(port, "cync/bridge/state", Duration::from_millis(400)).await
    });
    assert_eq!(
        state,
        vec![("cync/bridge/state".into(), "offline".into(), true, 1)]
    );
}
