//! Shared world for the `mqtt_bridge*` integration tests: a real Mosquitto, `serve`'s bridge
//! (device server, transport, MQTT side) on port 0, the simulator with a seven-device test home,
//! and an observer (a plain MQTT client recording every publish with its retain flag and QoS).
//! Each test builds its own world, so tests share no state and run in parallel.
//!
//! Expected values are computed from the simulator's own device state with the documented unit
//! mappings (brightness 0–100 as is, kelvin = 2000 + 50 × temperature), never copied from output.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cync_bridge::bridge::{self, Registry};
use cync_bridge::protocol::LightState;
use cync_bridge::server::{DeviceServer, Services};
use cync_bridge::sim::{HomeBuilder, SimConfig, SimDeviceKey, SimHandle, Simulator};
use cync_bridge::telemetry::{Health, Metrics};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::common::{self, Mosquitto};
use crate::server_world;

pub const HOME: u64 = 1_234_567_890;
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Mesh ids of the test home.
pub const LAMP: u16 = 1; // Wi-Fi full colour bulb (type 137), relays 3 and 4
pub const PLUG: u16 = 2; // Wi-Fi plug (64)
pub const WHITE: u16 = 3; // Bluetooth tunable white (5), reached through 1 and 6
pub const BT_COLOR: u16 = 4; // Bluetooth full colour (21), reached through 1 only
pub const FAN: u16 = 5; // Wi-Fi fan controller (81)
pub const SWITCH: u16 = 6; // Wi-Fi switch (39), relays 3
pub const DIMMER: u16 = 7; // Wi-Fi dimmer (55)
pub const ROOM: u16 = 32769; // group of 1 and 3

pub const DEVICE_FILE: &str = r#"
homes:
  Test Home:
    id: 1234567890
    devices:
      1: {name: Living Lamp, mac: "a4:c1:38:00:00:01", wifi_mac: "a4:c1:38:10:00:01", type: 137, fw: 10}
      2: {name: Coffee Plug, mac: "a4:c1:38:00:00:02", wifi_mac: "a4:c1:38:10:00:02", type: 64}
      3: {name: Hall White, mac: "a4:c1:38:00:00:03", wifi_mac: "00:01:02:03:04:05", type: 5, area: Hall}
      4: {name: Desk Color, mac: "a4:c1:38:00:00:04", type: 21}
      5: {name: Ceiling Fan, mac: "a4:c1:38:00:00:05", wifi_mac: "a4:c1:38:10:00:05", type: 81}
      6: {name: Porch Switch, mac: "a4:c1:38:00:00:06", wifi_mac: "a4:c1:38:10:00:06", type: 39}
      7: {name: Stair Dimmer, mac: "a4:c1:38:00:00:07", wifi_mac: "a4:c1:38:10:00:07", type: 55}
    groups:
      32769: {name: Living Room, members: [1, 3]}
"#;

pub fn sim_home() -> cync_bridge::sim::SimHome {
    let lit = |brightness, temperature| LightState {
        on: true,
        brightness,
        temperature,
        rgb: [0, 0, 0],
    };
    HomeBuilder::new("Test Home", 7)
        .wifi(LAMP, 137)
        .wifi(PLUG, 64)
        .bluetooth(WHITE, 5)
        .bluetooth(BT_COLOR, 21)
        .wifi(FAN, 81)
        .wifi(SWITCH, 39)
        .wifi(DIMMER, 55)
        .relays(LAMP, &[WHITE, BT_COLOR])
        .relays(SWITCH, &[WHITE])
        .group(ROOM, &[LAMP, WHITE])
        .initial(LAMP, lit(80, 20))
        .initial(WHITE, lit(60, 50))
        .initial(FAN, lit(50, 0))
        .build()
        .expect("valid home")
}

pub fn sim_key(mesh: u16) -> SimDeviceKey {
    SimDeviceKey {
        home: 0,
        mesh_id: mesh,
    }
}

pub fn key(mesh: u16) -> String {
    format!("{HOME}-{mesh}")
}

pub fn group_key(id: u16) -> String {
    format!("{HOME}-group-{id}")
}

// ---- an observer: a plain MQTT client recording everything ----------------------------------

/// One received publish: topic, payload, retain flag as delivered, QoS as delivered.
#[derive(Clone, Debug)]
pub struct Seen {
    pub topic: String,
    pub payload: String,
    pub retain: bool,
    pub qos: u8,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.topic, self.payload))
    }
}

#[derive(Clone)]
pub struct Observer {
    pub client: AsyncClient,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub notify: Arc<Notify>,
}

impl Observer {
    /// Subscribes to `filter` at QoS 1, so a delivered QoS of 1 proves the bridge published at 1.
    pub async fn start(port: u16, filter: &str) -> Observer {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut opts = MqttOptions::new(format!("observer-{port}-{id}"), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        // Large enough for the oversized payloads some tests publish (rumqttc's default is 10 KiB).
        opts.set_max_packet_size(4 << 20, 4 << 20);
        let (client, mut ev) = AsyncClient::new(opts, 256);
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let notify = Arc::new(Notify::new());
        let (s, n) = (Arc::clone(&seen), Arc::clone(&notify));
        tokio::spawn(async move {
            loop {
                match ev.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        s.lock().unwrap().push(Seen {
                            topic: p.topic.clone(),
                            payload: String::from_utf8_lossy(&p.payload).into_owned(),
                            retain: p.retain,
                            qos: p.qos as u8,
                        });
                        n.notify_waiters();
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Observer {
            client,
            seen,
            notify,
        }
    }

    pub fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The newest message on `topic`, if any.
    pub fn last(&self, topic: &str) -> Option<Seen> {
        self.all().into_iter().rev().find(|s| s.topic == topic)
    }

    /// Waits until the newest message on `topic` satisfies `want`.
    pub async fn wait(&self, topic: &str, want: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let notified = self.notify.notified();
            if let Some(s) = self.last(topic).filter(|s| want(s)) {
                return s;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "{topic}: never satisfied; last seen: {:?}",
                    self.last(topic)
                );
            }
        }
    }

    pub async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }
}

// ---- the world: broker, bridge, simulator -----------------------------------------------------

pub struct BridgeProc {
    pub services: Services,
    pub rollout: cync_bridge::rollout::task::RolloutHandle,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl BridgeProc {
    pub async fn start(port: u16, extra: &str, device_port: u16) -> BridgeProc {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("devices.yaml");
        std::fs::write(&file, DEVICE_FILE).unwrap();
        let config = server_world::test_config(
            dir.path(),
            &format!(
                r#"
                [server]
                listen = "127.0.0.1:{device_port}"
                [mqtt]
                url = "mqtt://127.0.0.1:{port}"
                birth_delay = "200ms"
                cleanup_delay = "1s"
                reconnect_min = "100ms"
                reconnect_max = "300ms"
                [devices]
                file = "{}"
                offline_grace = "1s"
                route_grace = "1s"
                group_confirm_timeout = "3s"
                {extra}
                "#,
                file.display()
            ),
        );
        let services = Services::new(&config.state, Metrics::new());
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let server = DeviceServer::bind(&config.device_server(), &services, shutdown.clone())
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        server.spawn(&tracker, &Health::new());
        let rollout = cync_bridge::rollout::task::start(
            &config.rollout,
            config.transport.reliable,
            &services,
            &tracker,
            shutdown.clone(),
        );
        let registry = Registry::load(&config.devices).unwrap();
        let commands = bridge::Commands {
            transport: rollout.transport,
            rollout: Some(rollout.handle.clone()),
        };
        bridge::spawn(
            config.bridge_settings(),
            registry,
            &services,
            commands,
            &tracker,
            shutdown.clone(),
        )
        .unwrap();
        BridgeProc {
            services,
            rollout: rollout.handle,
            shutdown,
            tracker,
            addr,
            _dir: dir,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.tracker.wait()).await;
    }

    pub fn metric(&self, series: &str) -> f64 {
        self.services.metrics.sample_value(series).unwrap_or(0.0)
    }
}

pub struct World {
    pub broker: Mosquitto,
    pub bridge: BridgeProc,
    pub sim: SimHandle,
    /// Subscribed to everything since before the bridge started.
    pub live: Observer,
}

impl World {
    pub async fn start() -> Option<World> {
        Self::start_with("", |_| {}).await
    }

    pub async fn start_with(extra: &str, before: impl FnOnce(u16)) -> Option<World> {
        let broker = Mosquitto::start()?;
        before(broker.port);
        let live = Observer::start(broker.port, "#").await;
        let bridge = BridgeProc::start(broker.port, extra, common::free_port()).await;
        let sim = Simulator::start(SimConfig::new(7, vec![sim_home()]), bridge.addr)
            .await
            .unwrap();
        sim.wait_ready(PATIENCE).await.unwrap();
        let world = World {
            broker,
            bridge,
            sim,
            live,
        };
        // Every device's state has reached MQTT.
        for mesh in [LAMP, PLUG, WHITE, BT_COLOR, FAN, SWITCH, DIMMER] {
            world
                .live
                .wait(&format!("cync/{}", key(mesh)), |_| true)
                .await;
        }
        Some(world)
    }

    pub fn port(&self) -> u16 {
        self.broker.port
    }

    /// A fresh subscriber's view of what is retained under `filter`: the messages delivered
    /// with the retain flag (live ones arriving meanwhile carry it clear and are left out).
    pub async fn retained(&self, filter: &str) -> Vec<Seen> {
        let o = Observer::start(self.port(), filter).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        o.all().into_iter().filter(|s| s.retain).collect()
    }

    pub async fn finish(self) {
        self.sim.shutdown().await;
        self.bridge.stop().await;
    }
}

pub fn find<'a>(seen: &'a [Seen], topic: &str) -> &'a Seen {
    seen.iter()
        .find(|s| s.topic == topic)
        .unwrap_or_else(|| panic!("nothing retained on {topic}"))
}

pub fn kelvin(temperature: u8) -> u64 {
    2000 + 50 * u64::from(temperature)
}
