//! Every MQTT topic the bridge publishes or subscribes to, built in one place and parsed by one
//! function, so a topic is spelt in one place. Scoped by the configured base topic and discovery prefix, and by a
//! node id in discovery topics so stale-config cleanup can recognise this bridge's own configs
//! (the prefix is shared with zigbee2mqtt and others, whose entities must never be touched).

use super::command::CommandTopic;
use super::rollout::RolloutTopic;
use std::fmt;

/// What an entity addresses: one device or one Cync group, in one home.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct EntityKey {
    /// Cloud home id (or a derived id for homes not in the device file).
    pub home: u64,
    /// Device or group.
    pub kind: EntityKind,
    /// Mesh id or group id.
    pub id: u16,
}

/// Device or group.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum EntityKind {
    /// A mesh device.
    Device,
    /// A Cync group (room).
    Group,
    /// One output of a device with several (an outlet of a dual plug): `id` is the device's
    /// mesh id, the number is the endpoint. One Home Assistant device holds all of them.
    Endpoint(u8),
}

impl fmt::Display for EntityKey {
    /// The topic segment: `<home>-<mesh id>`, `<home>-group-<group id>` or
    /// `<home>-<mesh id>-<endpoint>`; only `[0-9a-z-]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            EntityKind::Device => write!(f, "{}-{}", self.home, self.id),
            EntityKind::Group => write!(f, "{}-group-{}", self.home, self.id),
            EntityKind::Endpoint(e) => write!(f, "{}-{}-{e}", self.home, self.id),
        }
    }
}

impl EntityKey {
    /// Parses the topic segment written by `Display`.
    pub fn parse(segment: &str) -> Option<Self> {
        let (home, rest) = segment.split_once('-')?;
        let home = home.parse().ok()?;
        let (kind, id) = match (rest.strip_prefix("group-"), rest.split_once('-')) {
            (Some(id), _) => (EntityKind::Group, id),
            (None, Some((id, endpoint))) => (EntityKind::Endpoint(endpoint.parse().ok()?), id),
            (None, None) => (EntityKind::Device, rest),
        };
        Some(EntityKey {
            home,
            kind,
            id: id.parse().ok()?,
        })
    }
}

/// A message arriving on a topic the bridge subscribes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Home Assistant's birth/will (`online` / `offline`).
    HaStatus,
    /// A command for an entity, and which of its command topics it came on.
    Command(EntityKey, CommandTopic),
    /// A command for the rollout controller.
    Rollout(RolloutTopic),
    /// One of this bridge's own retained discovery configs (seen at start-up for cleanup).
    OwnDiscovery {
        /// HA component (`light`, `switch`, …).
        component: String,
        /// Object id (our unique id).
        object_id: String,
    },
}

/// Topic builder and parser for one bridge instance.
#[derive(Clone, Debug)]
pub struct Topics {
    base: String,
    discovery_prefix: String,
    node_id: String,
}

impl Topics {
    /// `base` like `cync`, `discovery_prefix` like `homeassistant`, `node_id` like
    /// `cync_bridge` (identifies this instance's discovery configs).
    pub fn new(base: &str, discovery_prefix: &str, node_id: &str) -> Self {
        Topics {
            base: base.trim_end_matches('/').to_string(),
            discovery_prefix: discovery_prefix.trim_end_matches('/').to_string(),
            node_id: node_id.to_string(),
        }
    }

    /// Retained `online`/`offline` of the bridge itself (also the MQTT last will).
    pub fn bridge_state(&self) -> String {
        format!("{}/bridge/state", self.base)
    }

    /// Full JSON state snapshot of an entity.
    pub fn state(&self, key: EntityKey) -> String {
        format!("{}/{key}", self.base)
    }

    /// Commands for an entity.
    pub fn set(&self, key: EntityKey) -> String {
        format!("{}/{key}/set", self.base)
    }

    /// Retained per-entity availability.
    pub fn availability(&self, key: EntityKey) -> String {
        format!("{}/{key}/availability", self.base)
    }

    /// Diagnostics (relay, signal, firmware) as JSON attributes.
    pub fn attributes(&self, key: EntityKey) -> String {
        format!("{}/{key}/attributes", self.base)
    }

    /// Fan percentage commands.
    pub fn fan_percentage_set(&self, key: EntityKey) -> String {
        format!("{}/{key}/percentage/set", self.base)
    }

    /// Fan preset commands.
    pub fn fan_preset_set(&self, key: EntityKey) -> String {
        format!("{}/{key}/preset/set", self.base)
    }

    /// Bridge diagnostics (version, relays, devices online) as one JSON document.
    pub fn bridge_info(&self) -> String {
        format!("{}/bridge/info", self.base)
    }

    /// Retained JSON state of the rollout controller.
    pub fn rollout_state(&self) -> String {
        format!("{}/bridge/rollout", self.base)
    }

    /// One non-retained message per change of routing (rollback, resume, runtime change).
    pub fn rollout_event(&self) -> String {
        format!("{}/bridge/rollout/event", self.base)
    }

    /// A rollout command topic.
    pub fn rollout_set(&self, topic: RolloutTopic) -> String {
        format!("{}/bridge/rollout/{}/set", self.base, topic.as_str())
    }

    /// Discovery config topic of one entity.
    pub fn discovery(&self, component: &str, object_id: &str) -> String {
        format!(
            "{}/{component}/{}/{object_id}/config",
            self.discovery_prefix, self.node_id
        )
    }

    /// Home Assistant's birth/will topic.
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }

    /// Filters to subscribe to after every (re)connect.
    pub fn subscriptions(&self) -> Vec<String> {
        vec![
            self.ha_status(),
            format!("{}/+/set", self.base),
            format!("{}/+/percentage/set", self.base),
            format!("{}/+/preset/set", self.base),
            format!("{}/bridge/rollout/+/set", self.base),
            // Our own retained configs: stale-config cleanup learns from them what we
            // published before this start.
            self.own_discovery_filter(),
        ]
    }

    /// Filter matching this bridge's own discovery configs (subscribed briefly at start-up).
    pub fn own_discovery_filter(&self) -> String {
        format!("{}/+/{}/+/config", self.discovery_prefix, self.node_id)
    }

    /// Classifies an incoming topic; `None` for anything that is not ours.
    pub fn parse(&self, topic: &str) -> Option<Incoming> {
        if topic == self.ha_status() {
            return Some(Incoming::HaStatus);
        }
        if let Some(rest) = topic
            .strip_prefix(self.discovery_prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
        {
            let parts: Vec<&str> = rest.split('/').collect();
            if let [component, node, object_id, "config"] = parts[..] {
                if node == self.node_id {
                    return Some(Incoming::OwnDiscovery {
                        component: component.to_string(),
                        object_id: object_id.to_string(),
                    });
                }
            }
        }
        let rest = topic
            .strip_prefix(self.base.as_str())
            .and_then(|r| r.strip_prefix('/'))?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts[..] {
            ["bridge", "rollout", segment, "set"] => {
                RolloutTopic::parse(segment).map(Incoming::Rollout)
            }
            [key, "set"] => EntityKey::parse(key).map(|k| Incoming::Command(k, CommandTopic::Set)),
            [key, "percentage", "set"] => {
                EntityKey::parse(key).map(|k| Incoming::Command(k, CommandTopic::FanPercentage))
            }
            [key, "preset", "set"] => {
                EntityKey::parse(key).map(|k| Incoming::Command(k, CommandTopic::FanPreset))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAMP: EntityKey = EntityKey {
        home: 1234567890,
        kind: EntityKind::Device,
        id: 5,
    };
    const ROOM: EntityKey = EntityKey {
        home: 1234567890,
        kind: EntityKind::Group,
        id: 32769,
    };

    #[test]
    fn topics_are_built_under_the_base_and_prefix() {
        let t = Topics::new("cync", "homeassistant", "cync_bridge");
        assert_eq!(t.bridge_state(), "cync/bridge/state");
        assert_eq!(t.state(LAMP), "cync/1234567890-5");
        assert_eq!(t.set(ROOM), "cync/1234567890-group-32769/set");
        assert_eq!(t.availability(LAMP), "cync/1234567890-5/availability");
        assert_eq!(
            t.discovery("light", "cync_1234567890_5"),
            "homeassistant/light/cync_bridge/cync_1234567890_5/config"
        );
        assert_eq!(t.ha_status(), "homeassistant/status");
    }

    #[test]
    fn an_endpoint_key_round_trips_and_odd_segments_do_not_parse() {
        let outlet = EntityKey {
            home: 1234567890,
            kind: EntityKind::Endpoint(2),
            id: 3,
        };
        assert_eq!(outlet.to_string(), "1234567890-3-2");
        assert_eq!(EntityKey::parse("1234567890-3-2"), Some(outlet));
        assert_eq!(EntityKey::parse("1234567890-3-x"), None);
        assert_eq!(EntityKey::parse("1234567890-3-999"), None);
        assert_eq!(EntityKey::parse("1234567890-5"), Some(LAMP));
    }

    #[test]
    fn every_built_command_topic_parses_back() {
        let t = Topics::new("cync", "homeassistant", "cync_bridge");
        for key in [LAMP, ROOM] {
            let command = |topic| Some(Incoming::Command(key, topic));
            assert_eq!(t.parse(&t.set(key)), command(CommandTopic::Set));
            assert_eq!(
                t.parse(&t.fan_percentage_set(key)),
                command(CommandTopic::FanPercentage)
            );
            assert_eq!(
                t.parse(&t.fan_preset_set(key)),
                command(CommandTopic::FanPreset)
            );
        }
        assert_eq!(t.parse("homeassistant/status"), Some(Incoming::HaStatus));
        assert_eq!(
            t.parse("homeassistant/switch/cync_bridge/cync_1_2/config"),
            Some(Incoming::OwnDiscovery {
                component: "switch".into(),
                object_id: "cync_1_2".into()
            })
        );
    }

    #[test]
    fn foreign_and_malformed_topics_are_not_ours() {
        let t = Topics::new("cync", "homeassistant", "cync_bridge");
        for topic in [
            "homeassistant/light/zigbee2mqtt/0x1234/config",
            "zigbee2mqtt/lamp/set",
            "cync/1234567890-5",
            "cync/not-a-key/set",
            "cync/1-99999/set",
            "cync/1234567890-5/set/extra",
            "cyncx/1-5/set",
        ] {
            assert_eq!(t.parse(topic), None, "{topic}");
        }
    }
}
