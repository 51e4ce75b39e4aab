//! What the bridge publishes, as [`Outgoing`] messages with their exact topic, retain flag and
//! QoS — pure functions, so tests assert the contract without a broker (zigbee2mqtt's habit).
//!
//! Every message is QoS 1. Discovery, availability, attributes, state and bridge info are
//! retained: Home Assistant (re)subscribing at any time gets the current picture at once, and
//! the bridge's last will (`offline`, retained) covers the case where what is retained goes
//! stale because the bridge died.

use bytes::Bytes;
use serde::Serialize;

use super::registry::Entity;
use crate::device::catalog::DeviceClass;
use crate::mqtt::client::Outgoing;
use crate::mqtt::discovery::{entity_configs, Discovery, DiscoveryOptions};
use crate::mqtt::state::{FanPayload, LightPayload, SwitchPayload};
use crate::mqtt::topics::{EntityKey, Topics};
use crate::mqtt::units::ColorTempUnit;
use crate::protocol::LightState;

fn retained(topic: String, payload: impl Into<Bytes>) -> Outgoing {
    Outgoing {
        topic,
        payload: payload.into(),
        qos: 1,
        retain: true,
    }
}

fn json(value: &impl Serialize) -> Bytes {
    // Plain structs and maps with string keys: serialisation cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// The discovery messages of one entity (empty for entities HA cannot control).
pub fn discovery(entity: &Entity, topics: &Topics, opts: &DiscoveryOptions) -> Vec<Outgoing> {
    entity_configs(&entity.description(), topics, opts)
        .iter()
        .map(|d| config(d, topics))
        .collect()
}

/// One discovery config as a retained message.
pub fn config(d: &Discovery, topics: &Topics) -> Outgoing {
    retained(
        topics.discovery(d.component, &d.object_id),
        json(&d.payload),
    )
}

/// The empty retained message that removes a discovery config from HA and the broker.
pub fn removal(topics: &Topics, component: &str, object_id: &str) -> Outgoing {
    retained(topics.discovery(component, object_id), Bytes::new())
}

/// `online` / `offline` of one entity.
pub fn availability(topics: &Topics, key: EntityKey, available: bool) -> Outgoing {
    retained(
        topics.availability(key),
        if available { "online" } else { "offline" },
    )
}

/// The full state snapshot of an entity in `state` (`effect`: the effect we last started).
pub fn state(
    topics: &Topics,
    entity: &Entity,
    state: &LightState,
    effect: Option<&str>,
    unit: ColorTempUnit,
) -> Outgoing {
    let payload = if entity.is_group() {
        json(&LightPayload::new(&entity.model.caps, state, effect, unit))
    } else {
        match entity.model.class {
            DeviceClass::Light | DeviceClass::Dimmer => {
                json(&LightPayload::new(&entity.model.caps, state, effect, unit))
            }
            DeviceClass::Fan => json(&FanPayload::new(state)),
            _ => json(&SwitchPayload::new(state)),
        }
    };
    retained(topics.state(entity.key), payload)
}

/// Per-device diagnostics for `json_attributes_topic`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attributes {
    /// Mesh id (group id for groups).
    pub mesh_id: u16,
    /// Device id (hex) of the Wi-Fi device on the preferred route, if any.
    pub relay: Option<String>,
    /// `direct` (its own Wi-Fi) or `relay` (Bluetooth mesh through another device).
    pub route: Option<&'static str>,
    /// How many connected Wi-Fi devices reach it.
    pub routes: usize,
    /// Firmware as listed.
    pub firmware: Option<String>,
    /// Listed in the device file (`false`: only seen on the wire).
    pub listed: bool,
    /// Signal strength is not reported per device by any captured packet: always `null`
    /// until one is found, so dashboards do not show an invented number.
    pub signal: Option<i32>,
}

/// The attributes message.
pub fn attributes(topics: &Topics, key: EntityKey, attributes: &Attributes) -> Outgoing {
    retained(topics.attributes(key), json(attributes))
}

/// The bridge's own diagnostics document (`<base>/bridge/info`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BridgeInfo {
    /// cync-bridge version.
    pub version: &'static str,
    /// Wi-Fi devices connected (sessions).
    pub relays: usize,
    /// Devices available.
    pub devices_online: usize,
    /// Devices known (listed or seen).
    pub devices: usize,
}

/// The bridge info message.
pub fn bridge_info(topics: &Topics, info: &BridgeInfo) -> Outgoing {
    retained(topics.bridge_info(), json(info))
}
