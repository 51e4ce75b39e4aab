//! The two plain MQTT clients standing in for Home Assistant: an observer of state, availability
//! and command topics, and a commander.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::sync::mpsc;

use crate::commands::{lock, Shared};
use crate::devices::command_mesh;

pub fn mqtt_options(id: &str, port: u16) -> MqttOptions {
    let mut opts = MqttOptions::new(format!("{id}-{}", std::process::id()), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts
}

pub fn nodelay(eventloop: &mut EventLoop) {
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
}

/// What the observer saw: topic, payload, when.
pub type Seen = (String, Bytes, Instant);

/// Ends its poll task when dropped.
pub struct ClientGuard(pub tokio::task::JoinHandle<()>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Subscribes to state, availability and (to time the broker's share) the command topics.
pub async fn observer(port: u16, pending: &Shared) -> (ClientGuard, mpsc::UnboundedReceiver<Seen>) {
    let (client, mut eventloop) = AsyncClient::new(mqtt_options("bench-observer", port), 64);
    nodelay(&mut eventloop);
    client
        .subscribe("cync/+", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    client
        .subscribe("cync/+/availability", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    client
        .subscribe("cync/+/set", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let (tx, rx) = mpsc::unbounded_channel();
    let pending = Arc::clone(pending);
    let task = tokio::spawn(async move {
        let _client = client;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let at = Instant::now();
                    if let Some(mesh) = command_mesh(&p.topic) {
                        lock(&pending).on_heard(mesh, at);
                    } else {
                        let _ = tx.send((p.topic, p.payload, at));
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("observer lost the broker: {e}"),
            }
        }
    });
    (ClientGuard(task), rx)
}

pub struct Commander {
    pub client: AsyncClient,
    _poll: ClientGuard,
}

pub async fn commander(port: u16) -> Commander {
    let (client, mut eventloop) = AsyncClient::new(mqtt_options("bench-commander", port), 1024);
    nodelay(&mut eventloop);
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut connected_tx = Some(connected_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("commander lost the broker: {e}"),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), connected)
        .await
        .expect("commander connected in time")
        .expect("commander connected");
    Commander {
        client,
        _poll: ClientGuard(task),
    }
}

/// Waits until the bridge has said `online` for every device (it has routes to all of them).
pub async fn wait_all_online(seen: &mut mpsc::UnboundedReceiver<Seen>, count: usize) {
    let mut online: HashMap<String, bool> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while online.values().filter(|v| **v).count() < count {
        let next = tokio::time::timeout_at(deadline, seen.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {count} devices became available in 60 s",
                    online.values().filter(|v| **v).count()
                )
            })
            .expect("observer running");
        if let Some(entity) = next.0.strip_suffix("/availability") {
            online.insert(entity.to_owned(), &next.1[..] == b"online");
        }
    }
}
