//! Home Assistant MQTT discovery payloads as serde types, so a field name cannot be misspelt: a shared base —
//! origin, device block, availability list, unique id — flattened into one struct per platform.
//! One constructor builds the base, so every entity carries the same contract:
//!
//! - retained at QoS 1 (the caller publishes them so), re-sent after HA's birth message;
//! - availability = bridge state topic + the entity's own topic, `availability_mode: all`, so the
//!   bridge's last will takes everything down at once while per-device availability still works;
//! - `unique_id` from (home, mesh id) only — stable across restarts and renames;
//! - device connections carry the Bluetooth MAC as `bluetooth` and a Wi-Fi MAC as `mac`, never
//!   the export's placeholder (HA would merge every Bluetooth-only device into one).

use serde::Serialize;

use super::state::{color_modes, ColorMode};
use super::topics::{EntityKey, EntityKind, Topics};
use super::units::{ColorTempUnit, FAN_PRESETS};
use crate::device::catalog::{DeviceClass, Model, EFFECTS};
use crate::device::inventory::{Mac, PLACEHOLDER_MAC};

/// `origin` block (https://www.home-assistant.io/integrations/mqtt/#adding-information-about-the-origin-of-a-discovery-message).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Origin {
    name: &'static str,
    sw_version: &'static str,
}

/// The origin every payload carries.
pub const ORIGIN: Origin = Origin {
    name: "cync-bridge",
    sw_version: env!("CARGO_PKG_VERSION"),
};

/// `device` block.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct DeviceInfo {
    identifiers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    connections: Vec<(&'static str, String)>,
    name: String,
    manufacturer: &'static str,
    /// Model name with the model id in brackets: HA 2024.3's device schema rejects the newer
    /// `model_id` key (seen with the ha-e2e harness), and one field reads fine in the UI.
    model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sw_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suggested_area: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    via_device: Option<String>,
}

/// One entry of the `availability` list.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Availability {
    pub(crate) topic: String,
}

/// Fields shared by every entity.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EntityBase {
    /// `null`: the entity is the device's main feature and takes the device's name.
    pub(crate) name: Option<String>,
    pub(crate) unique_id: String,
    pub(crate) default_entity_id: String,
    pub(crate) availability: Vec<Availability>,
    pub(crate) availability_mode: &'static str,
    pub(crate) device: DeviceInfo,
    pub(crate) origin: Origin,
    pub(crate) qos: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) json_attributes_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) entity_category: Option<&'static str>,
}

/// JSON-schema light (https://www.home-assistant.io/integrations/light.mqtt/#json-schema).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LightConfig {
    #[serde(flatten)]
    base: EntityBase,
    schema: &'static str,
    command_topic: String,
    state_topic: String,
    supported_color_modes: Vec<ColorMode>,
    /// Required by HA 2024.3 when `supported_color_modes` is set; deprecated and ignored later.
    #[serde(skip_serializing_if = "Option::is_none")]
    color_mode: Option<bool>,
    /// Defaults to false before HA 2024.4-ish: without it HA 2024.3 drops brightness from
    /// commands (seen with the ha-e2e harness).
    #[serde(skip_serializing_if = "Option::is_none")]
    brightness: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    brightness_scale: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    color_temp_kelvin: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_kelvin: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_kelvin: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_mireds: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_mireds: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effect: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effect_list: Option<Vec<&'static str>>,
}

/// Switch or plug (https://www.home-assistant.io/integrations/switch.mqtt/).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SwitchConfig {
    #[serde(flatten)]
    base: EntityBase,
    command_topic: String,
    state_topic: String,
    value_template: &'static str,
    payload_on: &'static str,
    payload_off: &'static str,
    state_on: &'static str,
    state_off: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_class: Option<&'static str>,
}

/// Fan (https://www.home-assistant.io/integrations/fan.mqtt/).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FanConfig {
    #[serde(flatten)]
    base: EntityBase,
    command_topic: String,
    state_topic: String,
    state_value_template: &'static str,
    payload_on: &'static str,
    payload_off: &'static str,
    percentage_command_topic: String,
    percentage_state_topic: String,
    percentage_value_template: &'static str,
    preset_mode_command_topic: String,
    preset_mode_state_topic: String,
    preset_mode_value_template: &'static str,
    preset_modes: Vec<&'static str>,
    speed_range_min: u8,
    speed_range_max: u8,
}

/// Diagnostic sensor of the bridge device.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SensorConfig {
    #[serde(flatten)]
    base: EntityBase,
    state_topic: String,
    value_template: String,
}

/// A discovery config ready to publish (retained, QoS 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Discovery {
    /// HA component (`light`, `switch`, `fan`, `sensor`).
    pub component: &'static str,
    /// Object id in the topic (= unique id).
    pub object_id: String,
    /// The JSON document.
    pub payload: serde_json::Value,
}

/// What the bridge knows about one entity to describe it to HA.
#[derive(Clone, Debug)]
pub struct EntityDescription<'a> {
    /// Device or group key.
    pub key: EntityKey,
    /// Display name.
    pub name: &'a str,
    /// Catalog entry (for groups: the members' combined capabilities).
    pub model: Model,
    /// Bluetooth MAC, if known.
    pub ble_mac: Option<Mac>,
    /// Wi-Fi MAC, if any.
    pub wifi_mac: Option<Mac>,
    /// Firmware version.
    pub firmware: Option<&'a str>,
    /// Suggested area.
    pub area: Option<&'a str>,
    /// The entity's own name when the device has several (an endpoint's); `None`: the entity
    /// is the device and takes its name.
    pub part: Option<&'a str>,
}

/// Settings that shape every payload.
#[derive(Clone, Debug)]
pub struct DiscoveryOptions {
    /// Identifier of the bridge device (`via_device` of every device).
    pub bridge_id: String,
    /// Emit the `color_mode: true` flag HA 2024.3 requires. HA 2024.4–2025.2 warn about it and
    /// 2025.4 logs an error for it (the entity still works), so it is for old releases only.
    pub legacy_color_mode_flag: bool,
    /// Kelvin for HA 2025.1+, mireds for older releases.
    pub color_temp_unit: ColorTempUnit,
    /// The SLO names of the rollout controller's budget sensors; `None` publishes no rollout
    /// entities (no controller running, e.g. in tests of the device entities alone).
    pub rollout_slos: Option<Vec<&'static str>>,
}

/// The unique id of an entity: `cync_<home>_<id>` or `cync_<home>_group_<id>`.
pub fn unique_id(key: EntityKey) -> String {
    match key.kind {
        EntityKind::Device => format!("cync_{}_{}", key.home, key.id),
        EntityKind::Group => format!("cync_{}_group_{}", key.home, key.id),
        EntityKind::Endpoint(e) => format!("cync_{}_{}_{e}", key.home, key.id),
    }
}

/// The Home Assistant device an entity belongs to: an endpoint's is its device's.
fn device_identifier(key: EntityKey) -> String {
    match key.kind {
        EntityKind::Endpoint(_) => unique_id(EntityKey {
            kind: EntityKind::Device,
            ..key
        }),
        _ => unique_id(key),
    }
}

/// Lowercase `[a-z0-9_]` form of a name for `default_entity_id`.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    if trimmed.is_empty() {
        "cync".to_string()
    } else {
        trimmed.to_string()
    }
}

fn base(
    d: &EntityDescription<'_>,
    component: &str,
    topics: &Topics,
    opts: &DiscoveryOptions,
) -> EntityBase {
    let uid = unique_id(d.key);
    let mut connections = Vec::new();
    // The export's placeholder is dropped on import too; checked again here because publishing
    // it once would merge every Bluetooth-only device into one HA device.
    let real = |mac: Option<Mac>| mac.filter(|m| *m != PLACEHOLDER_MAC);
    if let Some(mac) = real(d.ble_mac) {
        connections.push(("bluetooth", mac.to_string()));
    }
    if let Some(mac) = real(d.wifi_mac) {
        connections.push(("mac", mac.to_string()));
    }
    let slugged = match d.part {
        Some(part) => slug(&format!("{} {part}", d.name)),
        None => slug(d.name),
    };
    EntityBase {
        name: d.part.map(str::to_string),
        default_entity_id: format!("{component}.{slugged}"),
        availability: vec![
            Availability {
                topic: topics.bridge_state(),
            },
            Availability {
                topic: topics.availability(d.key),
            },
        ],
        availability_mode: "all",
        device: DeviceInfo {
            identifiers: vec![device_identifier(d.key)],
            connections,
            name: d.name.to_string(),
            manufacturer: "GE Cync",
            model: match d.model.model_id {
                Some(id) => format!("{} ({id})", d.model.name),
                None => d.model.name.to_string(),
            },
            sw_version: d.firmware.map(str::to_string),
            suggested_area: d.area.map(str::to_string),
            via_device: Some(opts.bridge_id.clone()),
        },
        origin: ORIGIN,
        qos: 1,
        json_attributes_topic: Some(topics.attributes(d.key)),
        entity_category: None,
        unique_id: uid,
    }
}

/// The discovery config(s) for one device or group; empty for classes HA cannot control here
/// (thermostats have no protocol support).
pub fn entity_configs(
    d: &EntityDescription<'_>,
    topics: &Topics,
    opts: &DiscoveryOptions,
) -> Vec<Discovery> {
    let (component, payload) = match d.model.class {
        DeviceClass::Thermostat => return Vec::new(),
        DeviceClass::Light | DeviceClass::Dimmer => ("light", light(d, topics, opts)),
        _ if d.key.kind == EntityKind::Group => ("light", light(d, topics, opts)),
        DeviceClass::Fan => ("fan", fan(d, topics, opts)),
        DeviceClass::Switch | DeviceClass::Plug | DeviceClass::Unknown => {
            ("switch", switch(d, topics, opts))
        }
    };
    vec![Discovery {
        component,
        object_id: unique_id(d.key),
        payload,
    }]
}

fn to_value(v: impl Serialize) -> serde_json::Value {
    // Serialising these plain structs cannot fail (no maps with non-string keys).
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn light(d: &EntityDescription<'_>, topics: &Topics, opts: &DiscoveryOptions) -> serde_json::Value {
    let caps = d.model.caps;
    let modes = color_modes(&caps);
    let unit = opts.color_temp_unit;
    let kelvin = caps.color_temp && unit == ColorTempUnit::Kelvin;
    let mired = caps.color_temp && unit == ColorTempUnit::Mired;
    let (min_mireds, max_mireds) = unit.range(d.model.kelvin.min, d.model.kelvin.max);
    to_value(LightConfig {
        base: base(d, "light", topics, opts),
        schema: "json",
        command_topic: topics.set(d.key),
        state_topic: topics.state(d.key),
        color_mode: opts.legacy_color_mode_flag.then_some(true),
        supported_color_modes: modes,
        brightness: caps.brightness.then_some(true),
        brightness_scale: caps.brightness.then_some(100),
        color_temp_kelvin: kelvin.then_some(true),
        min_kelvin: kelvin.then_some(d.model.kelvin.min),
        max_kelvin: kelvin.then_some(d.model.kelvin.max),
        min_mireds: mired.then_some(min_mireds),
        max_mireds: mired.then_some(max_mireds),
        effect: caps.effects.then_some(true),
        effect_list: caps
            .effects
            .then(|| EFFECTS.iter().map(|(name, _)| *name).collect()),
    })
}

fn switch(
    d: &EntityDescription<'_>,
    topics: &Topics,
    opts: &DiscoveryOptions,
) -> serde_json::Value {
    to_value(SwitchConfig {
        base: base(d, "switch", topics, opts),
        command_topic: topics.set(d.key),
        state_topic: topics.state(d.key),
        value_template: "{{ value_json.state }}",
        payload_on: "ON",
        payload_off: "OFF",
        state_on: "ON",
        state_off: "OFF",
        device_class: Some(if d.model.class == DeviceClass::Plug {
            "outlet"
        } else {
            "switch"
        }),
    })
}

fn fan(d: &EntityDescription<'_>, topics: &Topics, opts: &DiscoveryOptions) -> serde_json::Value {
    let state = topics.state(d.key);
    to_value(FanConfig {
        base: base(d, "fan", topics, opts),
        command_topic: topics.set(d.key),
        state_topic: state.clone(),
        state_value_template: "{{ value_json.state }}",
        payload_on: "ON",
        payload_off: "OFF",
        percentage_command_topic: topics.fan_percentage_set(d.key),
        percentage_state_topic: state.clone(),
        percentage_value_template: "{{ value_json.percentage }}",
        preset_mode_command_topic: topics.fan_preset_set(d.key),
        preset_mode_state_topic: state,
        preset_mode_value_template: "{{ value_json.preset_mode }}",
        preset_modes: FAN_PRESETS.iter().map(|(name, _)| *name).collect(),
        speed_range_min: 1,
        speed_range_max: 100,
    })
}

/// Identifier of the bridge device in HA (`via_device` of every Cync device).
/// The node id already names this bridge instance uniquely among discovery configs.
pub fn bridge_device_id(node_id: &str) -> String {
    node_id.to_string()
}

/// The device block of the bridge itself, shared by its diagnostics and the rollout entities.
pub(crate) fn bridge_device(opts: &DiscoveryOptions) -> DeviceInfo {
    DeviceInfo {
        identifiers: vec![opts.bridge_id.clone()],
        connections: Vec::new(),
        name: "Cync Bridge".to_string(),
        manufacturer: "cync-bridge",
        model: "Local Cync bridge".to_string(),
        sw_version: Some(ORIGIN.sw_version.to_string()),
        suggested_area: None,
        via_device: None,
    }
}

/// The bridge's own device: diagnostic sensors for version, connected relays and devices
/// online, read from the retained JSON on `<base>/bridge/info`.
pub fn bridge_configs(topics: &Topics, opts: &DiscoveryOptions) -> Vec<Discovery> {
    let mut configs = bridge_sensors(topics, opts);
    if let Some(slos) = &opts.rollout_slos {
        configs.extend(super::rollout::rollout_configs(topics, opts, slos));
    }
    configs
}

fn bridge_sensors(topics: &Topics, opts: &DiscoveryOptions) -> Vec<Discovery> {
    let sensors = [
        ("version", "Version", "{{ value_json.version }}"),
        ("relays", "Connected relays", "{{ value_json.relays }}"),
        (
            "devices_online",
            "Devices online",
            "{{ value_json.devices_online }}",
        ),
    ];
    sensors
        .iter()
        .map(|(id, name, template)| {
            let uid = format!("{}_{id}", opts.bridge_id);
            let config = SensorConfig {
                base: EntityBase {
                    name: Some((*name).to_string()),
                    unique_id: uid.clone(),
                    default_entity_id: format!("sensor.{uid}"),
                    availability: vec![Availability {
                        topic: topics.bridge_state(),
                    }],
                    availability_mode: "all",
                    device: bridge_device(opts),
                    origin: ORIGIN,
                    qos: 1,
                    json_attributes_topic: None,
                    entity_category: Some("diagnostic"),
                },
                state_topic: topics.bridge_info(),
                value_template: (*template).to_string(),
            };
            Discovery {
                component: "sensor",
                object_id: uid,
                payload: to_value(config),
            }
        })
        .collect()
}
