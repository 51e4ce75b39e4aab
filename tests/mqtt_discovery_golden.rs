//! Golden discovery payloads: the exact JSON Home Assistant receives for each entity kind,
//! compared as JSON values (key order never matters). The files under `fixtures/discovery/`
//! were reviewed field by field against HA's MQTT light/switch/fan/sensor documentation; a
//! change to any of them is a change to the HA contract and must be deliberate.
//!
//! `CYNC_UPDATE_GOLDEN=1 cargo test --test mqtt_discovery_golden` rewrites them.

use cync_bridge::device::catalog::{lookup, DeviceClass};
use cync_bridge::device::inventory::Mac;
use cync_bridge::mqtt::discovery::{
    bridge_configs, bridge_device_id, entity_configs, Discovery, DiscoveryOptions,
    EntityDescription,
};
use cync_bridge::mqtt::topics::{EntityKey, EntityKind, Topics};
use cync_bridge::mqtt::units::ColorTempUnit;

fn topics() -> Topics {
    Topics::new("cync", "homeassistant", "cync_bridge")
}

fn opts() -> DiscoveryOptions {
    DiscoveryOptions {
        bridge_id: bridge_device_id("cync_bridge"),
        legacy_color_mode_flag: false,
        color_temp_unit: ColorTempUnit::Kelvin,
        rollout_slos: None,
    }
}

fn device(id: u16, name: &str, type_id: u16, wifi: Option<&str>) -> Vec<Discovery> {
    let desc = EntityDescription {
        key: EntityKey {
            home: 1234567890,
            kind: EntityKind::Device,
            id,
        },
        name,
        model: lookup(type_id),
        ble_mac: Mac::parse("78:6D:EB:28:EA:30"),
        wifi_mac: wifi.and_then(Mac::parse),
        firmware: Some("1.1.158"),
        area: Some("Living Room"),
        part: None,
    };
    entity_configs(&desc, &topics(), &opts())
}

fn check(name: &str, configs: &[Discovery]) {
    let actual: Vec<serde_json::Value> = configs
        .iter()
        .map(|d| {
            serde_json::json!({
                "topic": topics().discovery(d.component, &d.object_id),
                "payload": d.payload,
            })
        })
        .collect();
    let path = format!(
        "{}/fixtures/discovery/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var("CYNC_UPDATE_GOLDEN").as_deref() == Ok("1") {
        let text = serde_json::to_string_pretty(&actual).unwrap();
        std::fs::write(&path, text + "\n").unwrap();
    }
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("golden file")).unwrap();
    assert_eq!(
        serde_json::Value::Array(actual),
        golden,
        "{name} differs from {path}"
    );
}

#[test]
fn full_colour_bulb_is_a_json_light_with_kelvin_rgb_and_effects() {
    check(
        "light-full-colour",
        &device(5, "Living Room Lamp", 137, Some("34:13:43:70:D8:C7")),
    );
}

#[test]
fn tunable_white_bluetooth_bulb_has_no_wifi_connection() {
    check(
        "light-tunable-white",
        &device(7, "Hall Bulb", 26, Some("00:01:02:03:04:05")),
    );
}

#[test]
fn dimmer_switch_is_a_brightness_light() {
    check("light-dimmer", &device(12, "Stairs Dimmer", 55, None));
}

#[test]
fn plug_is_an_outlet_switch() {
    check("switch-plug", &device(20, "Coffee Maker", 68, None));
}

#[test]
fn fan_controller_has_percentage_and_presets() {
    check("fan", &device(30, "Bedroom Fan", 81, None));
}

#[test]
fn unknown_type_is_a_plain_switch_and_thermostat_is_skipped() {
    check("switch-unknown-type", &device(40, "Mystery", 53, None));
    assert_eq!(lookup(224).class, DeviceClass::Thermostat);
    assert!(device(41, "Thermostat", 224, None).is_empty());
}

#[test]
fn cync_group_is_a_light() {
    let mut model = lookup(137);
    model.name = "Cync group";
    model.model_id = None;
    let desc = EntityDescription {
        key: EntityKey {
            home: 1234567890,
            kind: EntityKind::Group,
            id: 32769,
        },
        name: "Living Room",
        model,
        ble_mac: None,
        wifi_mac: None,
        firmware: None,
        area: Some("Living Room"),
        part: None,
    };
    check("light-group", &entity_configs(&desc, &topics(), &opts()));
}

#[test]
fn bridge_device_has_diagnostic_sensors() {
    check("bridge", &bridge_configs(&topics(), &opts()));
}

/// A full-colour lamp with nothing optional known, for the option tests.
fn bare_lamp() -> EntityDescription<'static> {
    EntityDescription {
        key: EntityKey {
            home: 1,
            kind: EntityKind::Device,
            id: 5,
        },
        name: "Lamp",
        model: lookup(137),
        ble_mac: None,
        wifi_mac: None,
        firmware: None,
        area: None,
        part: None,
    }
}

#[test]
fn legacy_color_mode_flag_is_only_for_old_home_assistant() {
    let desc = bare_lamp();
    let mut o = opts();
    assert!(entity_configs(&desc, &topics(), &o)[0]
        .payload
        .get("color_mode")
        .is_none());
    o.legacy_color_mode_flag = true;
    assert_eq!(
        entity_configs(&desc, &topics(), &o)[0].payload["color_mode"],
        true
    );
}

#[test]
fn mired_mode_advertises_a_mired_range_for_ha_before_2025_1() {
    let desc = bare_lamp();
    let mut o = opts();
    o.color_temp_unit = ColorTempUnit::Mired;
    let p = &entity_configs(&desc, &topics(), &o)[0].payload;
    assert_eq!(
        (p["min_mireds"].as_u64(), p["max_mireds"].as_u64()),
        (Some(143), Some(500))
    );
    for absent in ["color_temp_kelvin", "min_kelvin", "max_kelvin"] {
        assert!(p.get(absent).is_none(), "{absent}");
    }
}
