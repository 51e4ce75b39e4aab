//! `serve`'s Home Assistant side end to end, against a real Mosquitto and the simulator: the
//! exact topic, JSON, retain flag and QoS of discovery, state and availability for every entity
//! kind; commands published by a plain MQTT client reaching simulated devices and their confirmed
//! state coming back; wall changes; broker restart and HA birth; invalid payloads; relay loss;
//! a powered-off Bluetooth bulb; stale-config cleanup that never touches another integration.
//!
//! Expected values are computed from the simulator's own device state with the documented unit
//! mappings (brightness 0–100 as is, kelvin = 2000 + 50 × temperature), never copied from output.

mod common;
mod server_world;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cync_bridge::bridge::{self, Registry};
use cync_bridge::protocol::LightState;
use cync_bridge::server::{DeviceServer, Services};
use cync_bridge::sim::{HomeBuilder, SimConfig, SimDeviceKey, SimHandle, Simulator};
use cync_bridge::telemetry::{Health, Metrics};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use common::Mosquitto;

const HOME: u64 = 1_234_567_890;
const PATIENCE: Duration = Duration::from_secs(20);

/// Mesh ids of the test home.
const LAMP: u16 = 1; // Wi-Fi full colour bulb (type 137), relays 3 and 4
const PLUG: u16 = 2; // Wi-Fi plug (64)
const WHITE: u16 = 3; // Bluetooth tunable white (5), reached through 1 and 6
const BT_COLOR: u16 = 4; // Bluetooth full colour (21), reached through 1 only
const FAN: u16 = 5; // Wi-Fi fan controller (81)
const SWITCH: u16 = 6; // Wi-Fi switch (39), relays 3
const DIMMER: u16 = 7; // Wi-Fi dimmer (55)
const ROOM: u16 = 32769; // group of 1 and 3

const DEVICE_FILE: &str = r#"
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

fn sim_home() -> cync_bridge::sim::SimHome {
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

fn sim_key(mesh: u16) -> SimDeviceKey {
    SimDeviceKey {
        home: 0,
        mesh_id: mesh,
    }
}

fn key(mesh: u16) -> String {
    format!("{HOME}-{mesh}")
}

fn group_key(id: u16) -> String {
    format!("{HOME}-group-{id}")
}

// ---- an observer: a plain MQTT client recording everything ----------------------------------

/// One received publish: topic, payload, retain flag as delivered, QoS as delivered.
#[derive(Clone, Debug)]
struct Seen {
    topic: String,
    payload: String,
    retain: bool,
    qos: u8,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.topic, self.payload))
    }
}

#[derive(Clone)]
struct Observer {
    client: AsyncClient,
    seen: Arc<Mutex<Vec<Seen>>>,
    notify: Arc<Notify>,
}

impl Observer {
    /// Subscribes to `filter` at QoS 1, so a delivered QoS of 1 proves the bridge published at 1.
    async fn start(port: u16, filter: &str) -> Observer {
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

    fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The newest message on `topic`, if any.
    fn last(&self, topic: &str) -> Option<Seen> {
        self.all().into_iter().rev().find(|s| s.topic == topic)
    }

    /// Waits until the newest message on `topic` satisfies `want`.
    async fn wait(&self, topic: &str, want: impl Fn(&Seen) -> bool) -> Seen {
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

    async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }
}

// ---- the world: broker, bridge, simulator -----------------------------------------------------

struct BridgeProc {
    services: Services,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl BridgeProc {
    async fn start(port: u16, extra: &str, device_port: u16) -> BridgeProc {
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
        let transport = cync_bridge::transport::start(
            config.transport.mode,
            config.transport.reliable,
            &services,
            &tracker,
            shutdown.clone(),
        );
        let registry = Registry::load(&config.devices).unwrap();
        bridge::spawn(
            config.bridge_settings(),
            registry,
            &services,
            transport,
            &tracker,
            shutdown.clone(),
        )
        .unwrap();
        BridgeProc {
            services,
            shutdown,
            tracker,
            addr,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.tracker.wait()).await;
    }

    fn metric(&self, series: &str) -> f64 {
        self.services.metrics.sample_value(series).unwrap_or(0.0)
    }
}

struct World {
    broker: Mosquitto,
    bridge: BridgeProc,
    sim: SimHandle,
    /// Subscribed to everything since before the bridge started.
    live: Observer,
}

impl World {
    async fn start() -> Option<World> {
        Self::start_with("", |_| {}).await
    }

    async fn start_with(extra: &str, before: impl FnOnce(u16)) -> Option<World> {
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

    fn port(&self) -> u16 {
        self.broker.port
    }

    /// A fresh subscriber's view of what is retained under `filter`: the messages delivered
    /// with the retain flag (live ones arriving meanwhile carry it clear and are left out).
    async fn retained(&self, filter: &str) -> Vec<Seen> {
        let o = Observer::start(self.port(), filter).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        o.all().into_iter().filter(|s| s.retain).collect()
    }

    async fn finish(self) {
        self.sim.shutdown().await;
        self.bridge.stop().await;
    }
}

fn find<'a>(seen: &'a [Seen], topic: &str) -> &'a Seen {
    seen.iter()
        .find(|s| s.topic == topic)
        .unwrap_or_else(|| panic!("nothing retained on {topic}"))
}

fn kelvin(temperature: u8) -> u64 {
    2000 + 50 * u64::from(temperature)
}

// ---- tests ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entity_kind_is_discovered_retained_at_qos_1_with_its_state_and_availability() {
    let Some(w) = World::start().await else {
        return;
    };
    // Everything below is looked up in what the broker retained, so each lookup also proves
    // the message was published with the retain flag.
    let retained = w.retained("#").await;
    for s in &retained {
        assert_eq!(s.qos, 1, "{} must be QoS 1", s.topic);
    }
    let config = |component: &str, object: &str| {
        find(
            &retained,
            &format!("homeassistant/{component}/cync_bridge/{object}/config"),
        )
        .json()
    };

    // Full-colour Wi-Fi bulb: JSON schema light with every mode and the effects.
    let lamp = config("light", &format!("cync_{HOME}_{LAMP}"));
    assert_eq!(lamp["schema"], "json");
    assert_eq!(lamp["unique_id"], format!("cync_{HOME}_{LAMP}"));
    assert_eq!(lamp["command_topic"], format!("cync/{}/set", key(LAMP)));
    assert_eq!(lamp["state_topic"], format!("cync/{}", key(LAMP)));
    assert_eq!(lamp["supported_color_modes"], json!(["color_temp", "rgb"]));
    assert_eq!(lamp["brightness_scale"], 100);
    assert_eq!(
        (lamp["min_kelvin"].clone(), lamp["max_kelvin"].clone()),
        (json!(2000), json!(7000))
    );
    assert!(lamp["effect_list"]
        .as_array()
        .is_some_and(|l| !l.is_empty()));
    assert_eq!(
        lamp["availability"],
        json!([{"topic": "cync/bridge/state"}, {"topic": format!("cync/{}/availability", key(LAMP))}])
    );
    assert_eq!(lamp["availability_mode"], "all");
    assert_eq!(lamp["origin"]["name"], "cync-bridge");
    assert_eq!(lamp["device"]["name"], "Living Lamp");
    assert_eq!(lamp["device"]["via_device"], "cync_bridge");
    assert_eq!(
        lamp["device"]["connections"],
        json!([
            ["bluetooth", "a4:c1:38:00:00:01"],
            ["mac", "a4:c1:38:10:00:01"]
        ])
    );
    assert_eq!(lamp["default_entity_id"], "light.living_lamp");

    // Tunable white Bluetooth bulb: the export's placeholder Wi-Fi MAC is never published.
    let white = config("light", &format!("cync_{HOME}_{WHITE}"));
    assert_eq!(white["supported_color_modes"], json!(["color_temp"]));
    assert_eq!(
        white["device"]["connections"],
        json!([["bluetooth", "a4:c1:38:00:00:03"]])
    );
    assert_eq!(white["device"]["suggested_area"], "Hall");
    assert!(white.get("effect_list").is_none());

    // Dimmer: brightness only.
    let dimmer = config("light", &format!("cync_{HOME}_{DIMMER}"));
    assert_eq!(dimmer["supported_color_modes"], json!(["brightness"]));

    // Plug and switch.
    let plug = config("switch", &format!("cync_{HOME}_{PLUG}"));
    assert_eq!(plug["device_class"], "outlet");
    assert_eq!(plug["payload_on"], "ON");
    let switch = config("switch", &format!("cync_{HOME}_{SWITCH}"));
    assert_eq!(switch["device_class"], "switch");

    // Fan: percentage and presets on their own topics.
    let fan = config("fan", &format!("cync_{HOME}_{FAN}"));
    assert_eq!(
        fan["percentage_command_topic"],
        format!("cync/{}/percentage/set", key(FAN))
    );
    assert_eq!(
        fan["preset_mode_command_topic"],
        format!("cync/{}/preset/set", key(FAN))
    );
    assert_eq!(fan["preset_modes"], json!(["low", "medium", "high", "max"]));

    // The group: a light with what its members can do.
    let room = config("light", &format!("cync_{HOME}_group_{ROOM}"));
    assert_eq!(
        room["command_topic"],
        format!("cync/{}/set", group_key(ROOM))
    );
    assert_eq!(room["supported_color_modes"], json!(["color_temp", "rgb"]));

    // The bridge device's diagnostics.
    let relays = config("sensor", "cync_bridge_relays");
    assert_eq!(relays["entity_category"], "diagnostic");
    assert_eq!(find(&retained, "cync/bridge/state").payload, "online");

    // State: full snapshots matching the simulated devices.
    let lamp_state = w.sim.state(sim_key(LAMP)).unwrap();
    assert_eq!(
        find(&retained, &format!("cync/{}", key(LAMP))).json(),
        json!({
            "state": "ON",
            "brightness": lamp_state.brightness,
            "color_mode": "color_temp",
            "color_temp": kelvin(lamp_state.temperature),
            "color": null,
            "effect": null,
        })
    );
    let white_state = w.sim.state(sim_key(WHITE)).unwrap();
    assert_eq!(
        find(&retained, &format!("cync/{}", key(WHITE))).json(),
        json!({
            "state": "ON",
            "brightness": white_state.brightness,
            "color_mode": "color_temp",
            "color_temp": kelvin(white_state.temperature),
        })
    );
    let plug_on = w.sim.state(sim_key(PLUG)).unwrap().on;
    assert_eq!(
        find(&retained, &format!("cync/{}", key(PLUG))).json(),
        json!({"state": if plug_on { "ON" } else { "OFF" }})
    );
    let fan_state = w.sim.state(sim_key(FAN)).unwrap();
    assert_eq!(
        find(&retained, &format!("cync/{}", key(FAN))).json(),
        json!({"state": "ON", "percentage": fan_state.brightness, "preset_mode": "medium"})
    );
    // The group is on because a member is, at the brightest member's level.
    let room_state = find(&retained, &format!("cync/{}", group_key(ROOM))).json();
    assert_eq!(room_state["state"], "ON");
    assert_eq!(
        room_state["brightness"],
        lamp_state.brightness.max(white_state.brightness)
    );

    // Availability: every device and the group online.
    for k in [LAMP, PLUG, WHITE, BT_COLOR, FAN, SWITCH, DIMMER] {
        assert_eq!(
            find(&retained, &format!("cync/{}/availability", key(k))).payload,
            "online"
        );
    }
    assert_eq!(
        find(&retained, &format!("cync/{}/availability", group_key(ROOM))).payload,
        "online"
    );
    // Diagnostics: which relay reaches the Bluetooth bulb.
    // (routes are learned from the relay's reports, so this may take one more tick).
    let attrs = w
        .live
        .wait(&format!("cync/{}/attributes", key(BT_COLOR)), |s| {
            s.json()["routes"] == 1
        })
        .await
        .json();
    assert_eq!(attrs["route"], "relay");
    assert_eq!(attrs["mesh_id"], BT_COLOR);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_from_a_plain_client_reach_the_devices_and_their_confirmed_state_comes_back() {
    let Some(w) = World::start().await else {
        return;
    };
    // Tunable white Bluetooth bulb through its relay: brightness and kelvin.
    w.live
        .publish(
            &format!("cync/{}/set", key(WHITE)),
            r#"{"state":"ON","brightness":40,"color_temp":2700}"#,
        )
        .await;
    let s = w
        .live
        .wait(&format!("cync/{}", key(WHITE)), |s| {
            s.json()["brightness"] == 40 && s.json()["color_temp"] == 2700
        })
        .await;
    assert_eq!(s.json()["state"], "ON");
    let dev = w.sim.state(sim_key(WHITE)).unwrap();
    assert_eq!((dev.on, dev.brightness, dev.temperature), (true, 40, 14));

    // Full colour: RGB.
    w.live
        .publish(
            &format!("cync/{}/set", key(LAMP)),
            r#"{"color":{"r":255,"g":20,"b":0}}"#,
        )
        .await;
    let s = w
        .live
        .wait(&format!("cync/{}", key(LAMP)), |s| {
            s.json()["color_mode"] == "rgb"
        })
        .await;
    assert_eq!(s.json()["color"], json!({"r": 255, "g": 20, "b": 0}));
    assert_eq!(w.sim.state(sim_key(LAMP)).unwrap().rgb, [255, 20, 0]);

    // Plug off.
    w.live
        .publish(&format!("cync/{}/set", key(PLUG)), "OFF")
        .await;
    w.live
        .wait(&format!("cync/{}", key(PLUG)), |s| {
            s.payload == r#"{"state":"OFF"}"#
        })
        .await;
    assert!(!w.sim.state(sim_key(PLUG)).unwrap().on);

    // Fan: percentage then preset.
    w.live
        .publish(&format!("cync/{}/percentage/set", key(FAN)), "80")
        .await;
    w.live
        .wait(&format!("cync/{}", key(FAN)), |s| {
            s.json()["percentage"] == 100
        })
        .await;
    assert_eq!(w.sim.state(sim_key(FAN)).unwrap().brightness, 100);
    w.live
        .publish(&format!("cync/{}/preset/set", key(FAN)), "low")
        .await;
    let s = w
        .live
        .wait(&format!("cync/{}", key(FAN)), |s| {
            s.json()["preset_mode"] == "low"
        })
        .await;
    assert_eq!(s.json()["percentage"], 25);

    // The group: both members change, and the group's own state follows.
    w.live
        .publish(
            &format!("cync/{}/set", group_key(ROOM)),
            r#"{"state":"OFF"}"#,
        )
        .await;
    w.live
        .wait(&format!("cync/{}", group_key(ROOM)), |s| {
            s.json()["state"] == "OFF"
        })
        .await;
    assert!(!w.sim.state(sim_key(LAMP)).unwrap().on);
    assert!(!w.sim.state(sim_key(WHITE)).unwrap().on);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_changes_reach_mqtt_without_any_command() {
    let Some(w) = World::start().await else {
        return;
    };
    // A Bluetooth-only bulb reported only by its single relay, and a Wi-Fi switch by itself.
    let new = LightState {
        on: true,
        brightness: 33,
        temperature: 0xFE, // RGB mode
        rgb: [10, 200, 30],
    };
    w.sim.wall_change(sim_key(BT_COLOR), new).unwrap();
    let s = w
        .live
        .wait(&format!("cync/{}", key(BT_COLOR)), |s| {
            s.json()["brightness"] == 33
        })
        .await;
    assert_eq!(s.json()["color"], json!({"r": 10, "g": 200, "b": 30}));
    let off = LightState {
        on: false,
        ..w.sim.state(sim_key(SWITCH)).unwrap()
    };
    w.sim.wall_change(sim_key(SWITCH), off).unwrap();
    w.live
        .wait(&format!("cync/{}", key(SWITCH)), |s| {
            s.payload == r#"{"state":"OFF"}"#
        })
        .await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_payloads_are_counted_and_send_nothing_while_valid_ones_still_work() {
    let Some(w) = World::start().await else {
        return;
    };
    let applied_before: u64 = [LAMP, PLUG, WHITE, FAN]
        .iter()
        .map(|m| w.sim.applied(sim_key(*m)))
        .sum();
    let bad = [
        (format!("cync/{}/set", key(LAMP)), "{not json"),
        (format!("cync/{}/set", key(LAMP)), r#"{"state":"MAYBE"}"#),
        (
            format!("cync/{}/set", key(LAMP)),
            r#"{"effect":"disco-inferno"}"#,
        ),
        (
            format!("cync/{}/set", key(WHITE)),
            r#"{"color":{"r":1,"g":2,"b":3}}"#,
        ),
        (format!("cync/{}/set", key(PLUG)), "SIDEWAYS"),
        (format!("cync/{}/percentage/set", key(FAN)), "lots"),
        (format!("cync/{}/preset/set", key(FAN)), "turbo"),
        (format!("cync/{}/percentage/set", key(PLUG)), "50"),
        ("cync/1234567890-200/set".to_owned(), "ON"),
    ];
    for (topic, payload) in &bad {
        w.live.publish(topic, payload).await;
    }
    // A valid command after them still works, and is the only thing applied.
    let want = if w.sim.state(sim_key(PLUG)).unwrap().on {
        "OFF"
    } else {
        "ON"
    };
    w.live
        .publish(&format!("cync/{}/set", key(PLUG)), want)
        .await;
    let expected = format!(r#"{{"state":"{want}"}}"#);
    w.live
        .wait(&format!("cync/{}", key(PLUG)), |s| s.payload == expected)
        .await;
    let applied_after: u64 = [LAMP, PLUG, WHITE, FAN]
        .iter()
        .map(|m| w.sim.applied(sim_key(*m)))
        .sum();
    assert_eq!(
        applied_after,
        applied_before + 1,
        "only the valid command was applied"
    );
    assert_eq!(
        w.bridge
            .metric(r#"tcp_comm_mqtt_commands_total{result="invalid"}"#),
        8.0
    );
    assert_eq!(
        w.bridge
            .metric(r#"tcp_comm_mqtt_commands_total{result="unknown_entity"}"#),
        1.0
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_and_a_home_assistant_birth_bring_everything_back() {
    let Some(mut w) = World::start().await else {
        return;
    };
    // The broker crashes and loses everything (no persistence); meanwhile the lamp is switched
    // at the wall, so the device side must keep running and keep that state for the reconnect.
    w.broker.stop();
    let wall = LightState {
        on: true,
        brightness: 17,
        temperature: 90,
        rgb: [0, 0, 0],
    };
    w.sim.wall_change(sim_key(LAMP), wall).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.broker.restart();
    let lamp_config = format!("homeassistant/light/cync_bridge/cync_{HOME}_{LAMP}/config");
    let lamp_state = format!("cync/{}", key(LAMP));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let r = w.retained("#").await;
        if r.iter().any(|s| s.topic == lamp_config) && r.iter().any(|s| s.topic == lamp_state) {
            assert_eq!(find(&r, "cync/bridge/state").payload, "online");
            let state = find(&r, &lamp_state).json();
            assert_eq!(state["brightness"], 17, "the state as it is now");
            assert_eq!(state["color_temp"], kelvin(90));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing republished after the restart"
        );
    }
    let o = Observer::start(w.port(), "#").await;
    // Someone (a user cleaning up) removes a config; HA's birth message brings it back.
    o.client
        .publish(&lamp_config, QoS::AtLeastOnce, true, Vec::<u8>::new())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!w
        .retained(&lamp_config)
        .await
        .iter()
        .any(|s| !s.payload.is_empty()));
    o.publish("homeassistant/status", "online").await;
    o.wait(&lamp_config, |s| !s.payload.is_empty()).await;
    o.wait(&lamp_state, |_| true).await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_relay_marks_only_the_devices_it_alone_reached_unavailable() {
    let Some(w) = World::start().await else {
        return;
    };
    let session = w.sim.session(sim_key(LAMP)).expect("lamp session");
    session.set_offline(true).await.unwrap();
    // The lamp itself and the bulb only it relays go offline...
    for k in [LAMP, BT_COLOR] {
        w.live
            .wait(&format!("cync/{}/availability", key(k)), |s| {
                s.payload == "offline"
            })
            .await;
    }
    // ...the bulb that a second relay reaches, and everything else, stay online.
    for k in [WHITE, PLUG, FAN, SWITCH, DIMMER] {
        assert_eq!(
            w.live
                .last(&format!("cync/{}/availability", key(k)))
                .unwrap()
                .payload,
            "online",
            "mesh id {k}"
        );
    }
    // The group stays available through its remaining member.
    assert_eq!(
        w.live
            .last(&format!("cync/{}/availability", group_key(ROOM)))
            .unwrap()
            .payload,
        "online"
    );
    // The relay comes back: so do its devices.
    session.set_offline(false).await.unwrap();
    for k in [LAMP, BT_COLOR] {
        w.live
            .wait(&format!("cync/{}/availability", key(k)), |s| {
                s.payload == "online"
            })
            .await;
    }
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bluetooth_bulb_switched_off_at_the_wall_goes_unavailable_behind_a_live_relay() {
    let Some(w) = World::start().await else {
        return;
    };
    w.sim.set_powered(sim_key(BT_COLOR), false).unwrap();
    w.live
        .wait(&format!("cync/{}/availability", key(BT_COLOR)), |s| {
            s.payload == "offline"
        })
        .await;
    assert_eq!(
        w.live
            .last(&format!("cync/{}/availability", key(LAMP)))
            .unwrap()
            .payload,
        "online",
        "its relay stays online"
    );
    w.sim.set_powered(sim_key(BT_COLOR), true).unwrap();
    w.live
        .wait(&format!("cync/{}/availability", key(BT_COLOR)), |s| {
            s.payload == "online"
        })
        .await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_configs_of_this_bridge_are_removed_and_other_integrations_are_untouched() {
    let stale = format!("homeassistant/light/cync_bridge/cync_{HOME}_99/config");
    let foreign = "homeassistant/light/zigbee2mqtt/0x00124b0001/config";
    let foreign_payload = r#"{"name":"z2m lamp"}"#;
    let Some(w) = World::start_with("", |port| {
        // Retained before the bridge starts: one of ours from an earlier run, one of z2m's.
        for (topic, payload) in [
            (stale.as_str(), r#"{"name":"gone"}"#),
            (foreign, foreign_payload),
        ] {
            let status = std::process::Command::new("mosquitto_pub")
                .args([
                    "-p",
                    &port.to_string(),
                    "-r",
                    "-q",
                    "1",
                    "-t",
                    topic,
                    "-m",
                    payload,
                ])
                .status()
                .expect("mosquitto_pub");
            assert!(status.success());
        }
    })
    .await
    else {
        return;
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let r = w.retained("homeassistant/#").await;
        if !r.iter().any(|s| s.topic == stale) {
            assert_eq!(
                find(&r, foreign).payload,
                foreign_payload,
                "z2m's config untouched"
            );
            assert!(r
                .iter()
                .any(|s| s.topic.ends_with(&format!("cync_{HOME}_{LAMP}/config"))));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stale config never removed"
        );
    }
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_command_republishes_the_confirmed_state() {
    let Some(w) = World::start_with(
        r#"
        [transport]
        command_timeout = "600ms"
        attempt_timeout = "200ms"
        max_retries = 1
        "#,
        |_| {},
    )
    .await
    else {
        return;
    };
    let topic = format!("cync/{}", key(PLUG));
    let before = w.live.last(&topic).unwrap().payload;
    let count = |w: &World| w.live.all().iter().filter(|s| s.topic == topic).count();
    let published_before = count(&w);
    // The plug's link goes silent: the command cannot be confirmed.
    w.sim
        .session(sim_key(PLUG))
        .unwrap()
        .partition(cync_bridge::sim::Partition::Blackhole)
        .await
        .unwrap();
    let flip = if before.contains("ON") { "OFF" } else { "ON" };
    w.live
        .publish(&format!("cync/{}/set", key(PLUG)), flip)
        .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while count(&w) == published_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no republish after the failure"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        w.live.last(&topic).unwrap().payload,
        before,
        "the confirmed state, again"
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_reports_of_superseded_commands_never_flick_the_state_back() {
    let Some(w) = World::start().await else {
        return;
    };
    let topic = format!("cync/{}", key(LAMP));
    let lamp = w.sim.session(sim_key(LAMP)).unwrap();
    // 0x83 packets (state reports) the lamp has written so far.
    let written = || {
        lamp.log()
            .iter()
            .filter(|p| {
                p.dir == cync_bridge::capture::Direction::DeviceToServer
                    && p.kind() == 0x83
                    && p.delivered()
            })
            .count()
    };
    let reports_before = written();
    let already = w.live.all().len();
    // Three quick commands: the device answers each at once and reports each ~0.5 s later.
    w.live
        .publish(
            &format!("{topic}/set"),
            r#"{"brightness":40,"color_temp":2700}"#,
        )
        .await;
    w.live
        .publish(
            &format!("{topic}/set"),
            r#"{"color":{"r":255,"g":0,"b":0}}"#,
        )
        .await;
    w.live
        .wait(&topic, |s| s.json()["color_mode"] == "rgb")
        .await;
    // Every late report has been written by the device...
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while written() < reports_before + 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the device never reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...and a wall change on the same connection comes after them.
    let wall = LightState {
        on: true,
        brightness: 7,
        temperature: 0xFE,
        rgb: [255, 0, 0],
    };
    w.sim.wall_change(sim_key(LAMP), wall).unwrap();
    w.live.wait(&topic, |s| s.json()["brightness"] == 7).await;
    let states: Vec<Value> = w.live.all()[already..]
        .iter()
        .filter(|s| s.topic == topic)
        .map(Seen::json)
        .collect();
    let first_rgb = states
        .iter()
        .position(|s| s["color_mode"] == "rgb")
        .unwrap();
    assert!(
        states[first_rgb..].iter().all(|s| s["color_mode"] == "rgb"),
        "the lamp flicked back to an earlier state: {states:#?}"
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_is_down_at_start_never_stops_the_device_side() {
    let Some(mut broker) = Mosquitto::start() else {
        return;
    };
    broker.stop();
    let bridge = BridgeProc::start(broker.port, "", common::free_port()).await;
    let sim = Simulator::start(SimConfig::new(7, vec![sim_home()]), bridge.addr)
        .await
        .unwrap();
    sim.wait_ready(PATIENCE).await.unwrap();
    // Devices connect and report while the broker is away; a wall change is kept too.
    let wall = LightState {
        on: true,
        brightness: 23,
        temperature: 0,
        rgb: [0, 0, 0],
    };
    sim.wall_change(sim_key(DIMMER), wall).unwrap();
    let dimmer = cync_bridge::device::DeviceKey::new(cync_bridge::device::HomeId::DEFAULT, DIMMER);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while bridge
        .services
        .state
        .get(&dimmer)
        .map(|s| s.light.brightness)
        != Some(23)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the device side stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bridge.metric("tcp_comm_connected_sessions"), 5.0);
    assert_eq!(bridge.metric("tcp_comm_mqtt_connected"), 0.0);
    // The broker comes up: everything is published, with the state as it is now.
    broker.restart();
    let live = Observer::start(broker.port, "#").await;
    let s = live.wait(&format!("cync/{}", key(DIMMER)), |_| true).await;
    assert_eq!(s.json()["brightness"], 23);
    live.wait("cync/bridge/state", |s| s.payload == "online")
        .await;
    sim.shutdown().await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_change_right_after_commands_is_never_lost() {
    let Some(w) = World::start().await else {
        return;
    };
    let topic = format!("cync/{}", key(SWITCH));
    // ON then OFF from Home Assistant; before the device's late reports arrive, someone presses
    // the wall switch back on. The late reports must not hide that.
    w.live.publish(&format!("{topic}/set"), "ON").await;
    w.live
        .wait(&topic, |s| s.payload == r#"{"state":"ON"}"#)
        .await;
    w.live.publish(&format!("{topic}/set"), "OFF").await;
    w.live
        .wait(&topic, |s| s.payload == r#"{"state":"OFF"}"#)
        .await;
    let on = LightState {
        on: true,
        ..w.sim.state(sim_key(SWITCH)).unwrap()
    };
    w.sim.wall_change(sim_key(SWITCH), on).unwrap();
    w.live
        .wait(&topic, |s| s.payload == r#"{"state":"ON"}"#)
        .await;
    // Whatever else the device still reports, the switch stays on.
    let switch = w.sim.session(sim_key(SWITCH)).unwrap();
    let written = || {
        switch
            .log()
            .iter()
            .filter(|p| {
                p.dir == cync_bridge::capture::Direction::DeviceToServer && p.kind() == 0x83
            })
            .count()
    };
    let settled = written() + 1;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while written() < settled {
        assert!(tokio::time::Instant::now() < deadline, "no further report");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A marker wall change after every late report: the last state before it was ON.
    let marker = LightState { on: false, ..on };
    w.sim.wall_change(sim_key(SWITCH), marker).unwrap();
    w.live
        .wait(&topic, |s| s.payload == r#"{"state":"OFF"}"#)
        .await;
    let states: Vec<String> = w
        .live
        .all()
        .iter()
        .filter(|s| s.topic == topic)
        .map(|s| s.payload.clone())
        .collect();
    assert_eq!(
        states[states.len() - 2],
        r#"{"state":"ON"}"#,
        "the wall change was undone: {states:?}"
    );
    assert!(w.sim.state(sim_key(SWITCH)).unwrap().on == marker.on);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_retained_message_on_a_command_topic_never_disconnects_the_bridge() {
    let Some(w) = World::start().await else {
        return;
    };
    let junk = "x".repeat(20 * 1024);
    let topic = format!("cync/{}/set", key(PLUG));
    w.live
        .client
        .publish(&topic, QoS::AtLeastOnce, true, junk.into_bytes())
        .await
        .unwrap();
    let invalid = r#"tcp_comm_mqtt_commands_total{result="invalid"}"#;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while w.bridge.metric(invalid) < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the 20 KB command was never read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Still connected: a valid command goes through and the bridge never published `offline`.
    let want = if w.sim.state(sim_key(PLUG)).unwrap().on {
        "OFF"
    } else {
        "ON"
    };
    w.live.publish(&topic, want).await;
    let expected = format!(r#"{{"state":"{want}"}}"#);
    w.live
        .wait(&format!("cync/{}", key(PLUG)), |s| s.payload == expected)
        .await;
    let states: Vec<String> = w
        .live
        .all()
        .into_iter()
        .filter(|s| s.topic == "cync/bridge/state")
        .map(|s| s.payload)
        .collect();
    assert!(
        !states.iter().any(|p| p == "offline"),
        "bridge state flapped: {states:?}"
    );
    assert_eq!(w.bridge.metric(invalid), 1.0);
    // Clear the retained junk so the broker's store is as the test found it.
    w.live
        .client
        .publish(&topic, QoS::AtLeastOnce, true, Vec::new())
        .await
        .unwrap();
    w.finish().await;
}
