//! `serve`'s Home Assistant side when things go wrong, against a real Mosquitto and the
//! simulator: broker restart and HA birth; a broker down at start; relay loss; a powered-off
//! Bluetooth bulb; late reports and wall changes racing commands; an oversized retained command.
//! Discovery, state and commands are in tests/mqtt_bridge.rs; the world both share is
//! tests/mqtt_world/.

mod common;
mod mqtt_world;
mod server_world;

use std::time::Duration;

use cync_bridge::protocol::LightState;
use cync_bridge::sim::{SimConfig, Simulator};
use rumqttc::QoS;
use serde_json::Value;

use common::Mosquitto;
use mqtt_world::{
    find, group_key, kelvin, key, sim_home, sim_key, BridgeProc, Observer, Seen, World, BT_COLOR,
    DIMMER, FAN, HOME, LAMP, PATIENCE, PLUG, ROOM, SWITCH, WHITE,
};

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
