//! `serve`'s Home Assistant side end to end, against a real Mosquitto and the simulator: the
//! exact topic, JSON, retain flag and QoS of discovery, state and availability for every entity
//! kind; commands published by a plain MQTT client reaching simulated devices and their confirmed
//! state coming back; wall changes; invalid payloads; a failed command; stale-config cleanup that
//! never touches another integration. Restarts, availability and races are in
//! tests/mqtt_bridge_resilience.rs; the world both share is tests/mqtt_world/.
//!
//! Expected values are computed from the simulator's own device state with the documented unit
//! mappings (brightness 0–100 as is, kelvin = 2000 + 50 × temperature), never copied from output.

mod common;
mod mqtt_world;
mod server_world;

use std::time::Duration;

use cync_bridge::protocol::LightState;
use serde_json::{json, Value};

use mqtt_world::{
    find, group_key, kelvin, key, sim_key, Seen, World, BT_COLOR, DIMMER, FAN, HOME, LAMP,
    PATIENCE, PLUG, ROOM, SWITCH, WHITE,
};

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
    full_colour_bulb_is_discovered(&retained);
    tunable_white_bulb_is_discovered(&retained);
    dimmer_is_discovered(&retained);
    plug_and_switch_are_discovered(&retained);
    fan_is_discovered(&retained);
    group_is_discovered(&retained);
    bridge_diagnostics_are_discovered(&retained);
    states_match_the_simulated_devices(&w, &retained);
    everything_is_available(&w, &retained).await;
    w.finish().await;
}

/// The retained discovery config of `object` under `component`, as JSON.
fn config(retained: &[Seen], component: &str, object: &str) -> Value {
    find(
        retained,
        &format!("homeassistant/{component}/cync_bridge/{object}/config"),
    )
    .json()
}

/// Full-colour Wi-Fi bulb: JSON schema light with every mode and the effects.
fn full_colour_bulb_is_discovered(retained: &[Seen]) {
    let lamp = config(retained, "light", &format!("cync_{HOME}_{LAMP}"));
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
}

/// Tunable white Bluetooth bulb: the export's placeholder Wi-Fi MAC is never published.
fn tunable_white_bulb_is_discovered(retained: &[Seen]) {
    let white = config(retained, "light", &format!("cync_{HOME}_{WHITE}"));
    assert_eq!(white["supported_color_modes"], json!(["color_temp"]));
    assert_eq!(
        white["device"]["connections"],
        json!([["bluetooth", "a4:c1:38:00:00:03"]])
    );
    assert_eq!(white["device"]["suggested_area"], "Hall");
    assert!(white.get("effect_list").is_none());
}

/// Dimmer: brightness only.
fn dimmer_is_discovered(retained: &[Seen]) {
    let dimmer = config(retained, "light", &format!("cync_{HOME}_{DIMMER}"));
    assert_eq!(dimmer["supported_color_modes"], json!(["brightness"]));
}

/// Plug and switch.
fn plug_and_switch_are_discovered(retained: &[Seen]) {
    let plug = config(retained, "switch", &format!("cync_{HOME}_{PLUG}"));
    assert_eq!(plug["device_class"], "outlet");
    assert_eq!(plug["payload_on"], "ON");
    let switch = config(retained, "switch", &format!("cync_{HOME}_{SWITCH}"));
    assert_eq!(switch["device_class"], "switch");
}

/// Fan: percentage and presets on their own topics.
fn fan_is_discovered(retained: &[Seen]) {
    let fan = config(retained, "fan", &format!("cync_{HOME}_{FAN}"));
    assert_eq!(
        fan["percentage_command_topic"],
        format!("cync/{}/percentage/set", key(FAN))
    );
    assert_eq!(
        fan["preset_mode_command_topic"],
        format!("cync/{}/preset/set", key(FAN))
    );
    assert_eq!(fan["preset_modes"], json!(["low", "medium", "high", "max"]));
}

/// The group: a light with what its members can do.
fn group_is_discovered(retained: &[Seen]) {
    let room = config(retained, "light", &format!("cync_{HOME}_group_{ROOM}"));
    assert_eq!(
        room["command_topic"],
        format!("cync/{}/set", group_key(ROOM))
    );
    assert_eq!(room["supported_color_modes"], json!(["color_temp", "rgb"]));
}

/// The bridge device's diagnostics.
fn bridge_diagnostics_are_discovered(retained: &[Seen]) {
    let relays = config(retained, "sensor", "cync_bridge_relays");
    assert_eq!(relays["entity_category"], "diagnostic");
    assert_eq!(find(retained, "cync/bridge/state").payload, "online");
}

/// State: full snapshots matching the simulated devices.
fn states_match_the_simulated_devices(w: &World, retained: &[Seen]) {
    let lamp_state = w.sim.state(sim_key(LAMP)).unwrap();
    assert_eq!(
        find(retained, &format!("cync/{}", key(LAMP))).json(),
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
        find(retained, &format!("cync/{}", key(WHITE))).json(),
        json!({
            "state": "ON",
            "brightness": white_state.brightness,
            "color_mode": "color_temp",
            "color_temp": kelvin(white_state.temperature),
        })
    );
    let plug_on = w.sim.state(sim_key(PLUG)).unwrap().on;
    assert_eq!(
        find(retained, &format!("cync/{}", key(PLUG))).json(),
        json!({"state": if plug_on { "ON" } else { "OFF" }})
    );
    let fan_state = w.sim.state(sim_key(FAN)).unwrap();
    assert_eq!(
        find(retained, &format!("cync/{}", key(FAN))).json(),
        json!({"state": "ON", "percentage": fan_state.brightness, "preset_mode": "medium"})
    );
    // The group is on because a member is, at the brightest member's level.
    let room_state = find(retained, &format!("cync/{}", group_key(ROOM))).json();
    assert_eq!(room_state["state"], "ON");
    assert_eq!(
        room_state["brightness"],
        lamp_state.brightness.max(white_state.brightness)
    );
}

/// Availability: every device and the group online, and the relay diagnostics.
async fn everything_is_available(w: &World, retained: &[Seen]) {
    for k in [LAMP, PLUG, WHITE, BT_COLOR, FAN, SWITCH, DIMMER] {
        assert_eq!(
            find(retained, &format!("cync/{}/availability", key(k))).payload,
            "online"
        );
    }
    assert_eq!(
        find(retained, &format!("cync/{}/availability", group_key(ROOM))).payload,
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
