//! The embedded broker behind `cync-bridge demo` (rumqttd), driven by rumqttc — the client
//! library the bridge itself uses: retained messages (and their removal), wildcard
//! subscriptions, QoS 1 delivery and acknowledgement, last wills on an unclean drop and none on
//! a clean disconnect. `tests/demo_cli.rs` runs the bridge and mosquitto's clients against it.
#![cfg(feature = "embedded-broker")]

mod common;

use std::time::Duration;

use cync_bridge::mqtt::broker;
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

const PATIENCE: Duration = Duration::from_secs(10);

/// (topic, payload, retain flag as delivered, QoS as delivered).
type Received = (String, String, bool, u8);

async fn start() -> u16 {
    let addr = broker::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    addr.port()
}

fn client(port: u16, id: &str, will: Option<LastWill>) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    if let Some(w) = will {
        o.set_last_will(w);
    }
    AsyncClient::new(o, 32)
}

/// Drives `ev` and forwards every publish as (topic, payload, retain, qos).
fn pump(
    mut ev: EventLoop,
) -> (
    mpsc::UnboundedReceiver<Received>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok(e) = ev.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = e {
                let _ = tx.send((
                    p.topic.clone(),
                    String::from_utf8_lossy(&p.payload).into_owned(),
                    p.retain,
                    p.qos as u8,
                ));
            }
        }
    });
    (rx, task)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("a message")
        .expect("open")
}

#[tokio::test]
async fn retained_messages_wildcards_and_qos_1_work_as_clients_expect() {
    let port = start().await;
    let (publisher, ev) = client(port, "pub", None);
    let (_prx, _pt) = pump(ev);
    publisher
        .publish("cync/bridge/state", QoS::AtLeastOnce, true, "online")
        .await
        .unwrap();
    publisher
        .publish(
            "homeassistant/light/cync_bridge/x/config",
            QoS::AtLeastOnce,
            true,
            "{}",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (sub, ev) = client(port, "sub", None);
    let (mut rx, _st) = pump(ev);
    sub.subscribe("cync/#", QoS::AtLeastOnce).await.unwrap();
    assert_eq!(
        next(&mut rx).await,
        ("cync/bridge/state".into(), "online".into(), true, 1)
    );

    // Live messages arrive with the retain flag clear. rumqttd delivers at the subscription's
    // QoS, not the lower of the two as MQTT 3.1.1 has it: a QoS 0 message may come as QoS 1,
    // which costs the client one PUBACK and changes nothing else, so only its arrival counts.
    publisher
        .publish("cync/1-2", QoS::AtMostOnce, false, "a")
        .await
        .unwrap();
    let (topic, payload, retain, _qos) = next(&mut rx).await;
    assert_eq!(
        (topic.as_str(), payload.as_str(), retain),
        ("cync/1-2", "a", false)
    );
    publisher
        .publish("cync/1-2", QoS::AtLeastOnce, true, "b")
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx).await,
        ("cync/1-2".into(), "b".into(), false, 1)
    );
    // Not subscribed: nothing.
    publisher
        .publish("other/topic", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();

    // An empty retained message removes what was retained.
    publisher
        .publish(
            "homeassistant/light/cync_bridge/x/config",
            QoS::AtLeastOnce,
            true,
            Vec::<u8>::new(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (late, ev) = client(port, "late", None);
    let (mut late_rx, _lt) = pump(ev);
    late.subscribe("homeassistant/+/cync_bridge/+/config", QoS::AtLeastOnce)
        .await
        .unwrap();
    late.subscribe("cync/+", QoS::AtLeastOnce).await.unwrap();
    assert_eq!(
        next(&mut late_rx).await,
        ("cync/1-2".into(), "b".into(), true, 1)
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), late_rx.recv())
            .await
            .is_err(),
        "the removed config is not retained any more"
    );
}

#[tokio::test]
async fn a_client_that_vanishes_leaves_its_will_one_that_says_goodbye_does_not() {
    let port = start().await;
    let (watcher, ev) = client(port, "watcher", None);
    let (mut rx, _wt) = pump(ev);
    watcher
        .subscribe("bridge/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Vanishes: the event loop is dropped without DISCONNECT.
    let will = LastWill::new("bridge/a", "offline", QoS::AtLeastOnce, true);
    let (_a, ev) = client(port, "a", Some(will));
    let (_arx, a_task) = pump(ev);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a_task.abort();
    assert_eq!(
        next(&mut rx).await,
        ("bridge/a".into(), "offline".into(), false, 1)
    );

    // Says goodbye: no will.
    let will = LastWill::new("bridge/b", "offline", QoS::AtLeastOnce, true);
    let (b, ev) = client(port, "b", Some(will));
    let (_brx, _bt) = pump(ev);
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.disconnect().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err(),
        "a clean disconnect publishes no will"
    );
}

#[tokio::test]
async fn a_qos_1_publish_is_acknowledged_to_its_publisher_and_delivered_with_an_id() {
    let port = start().await;
    let (sub, ev) = client(port, "qos-sub", None);
    let (mut rx, _st) = pump(ev);
    sub.subscribe("cync/+/set", QoS::AtLeastOnce).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Driven by hand, not by `pump`: the PUBACK is what is under test.
    let (publisher, mut ev) = client(port, "qos-pub", None);
    publisher
        .publish("cync/1-10/set", QoS::AtLeastOnce, false, "ON")
        .await
        .unwrap();
    let acked = tokio::time::timeout(PATIENCE, async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::PubAck(ack))) => return ack.pkid,
                Ok(_) => {}
                Err(e) => panic!("publisher connection failed: {e}"),
            }
        }
    })
    .await
    .expect("a PUBACK");
    assert_ne!(acked, 0, "QoS 1 acknowledgements carry the packet id");
    assert_eq!(
        next(&mut rx).await,
        ("cync/1-10/set".into(), "ON".into(), false, 1)
    );
}
