//! The rollout controller's Home Assistant entities on the bridge device, its topics, and the
//! parsing of what arrives on them — so canary percentage, mode, rollback and resume can be
//! operated from a dashboard or with `mosquitto_pub` alone.
//!
//! - `<base>/bridge/rollout`: retained JSON state (mode, percentages, latch, budgets, last change);
//! - `<base>/bridge/rollout/event`: one non-retained JSON message per change of routing;
//! - `<base>/bridge/rollout/{percent,mode,rollback,resume}/set`: commands (a number, a mode name,
//!   and `PRESS` for the two buttons).
//!
//! Entities: number (canary %), select (mode), buttons (rollback, resume), sensors (reliable
//! share, last change, budget remaining per SLO) and a binary sensor (rollback latched). Each
//! takes the bridge's availability, like the bridge's other diagnostics.

use serde::Serialize;

use super::discovery::{
    bridge_device, Availability, Discovery, DiscoveryOptions, EntityBase, ORIGIN,
};
use super::topics::Topics;

/// One of the rollout's command topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutTopic {
    /// The canary percentage (0–100).
    Percent,
    /// The mode (`legacy`, `shadow`, `canary`, `reliable`).
    Mode,
    /// Roll back now (button).
    Rollback,
    /// Clear a latched rollback (button).
    Resume,
}

impl RolloutTopic {
    #[allow(missing_docs)]
    pub const ALL: [RolloutTopic; 4] = [
        RolloutTopic::Percent,
        RolloutTopic::Mode,
        RolloutTopic::Rollback,
        RolloutTopic::Resume,
    ];

    /// The topic segment.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutTopic::Percent => "percent",
            RolloutTopic::Mode => "mode",
            RolloutTopic::Rollback => "rollback",
            RolloutTopic::Resume => "resume",
        }
    }

    /// The topic named by `segment`.
    pub fn parse(segment: &str) -> Option<RolloutTopic> {
        RolloutTopic::ALL
            .into_iter()
            .find(|t| t.as_str() == segment)
    }
}

/// What a command payload asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum RolloutCommand {
    #[allow(missing_docs)]
    Percent(f64),
    /// A mode name, validated by the controller.
    Mode(String),
    #[allow(missing_docs)]
    Rollback,
    #[allow(missing_docs)]
    Resume,
}

/// The payload buttons send.
pub const PRESS: &str = "PRESS";

/// Parses a payload on `topic`; the error names the setting and what was wrong.
pub fn parse_command(topic: RolloutTopic, payload: &[u8]) -> Result<RolloutCommand, String> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| format!("rollout.{}: the payload is not text", topic.as_str()))?
        .trim();
    match topic {
        RolloutTopic::Percent => {
            let value: f64 = text.parse().map_err(|_| {
                format!("rollout.canary_percent: {text:?} is not a number from 0 to 100")
            })?;
            if !value.is_finite() || !(0.0..=100.0).contains(&value) {
                return Err(format!(
                    "rollout.canary_percent: {text} is not a percentage from 0 to 100"
                ));
            }
            Ok(RolloutCommand::Percent(value))
        }
        RolloutTopic::Mode => Ok(RolloutCommand::Mode(text.to_string())),
        RolloutTopic::Rollback | RolloutTopic::Resume => {
            if !text.eq_ignore_ascii_case(PRESS) {
                return Err(format!(
                    "rollout.{}: expected {PRESS:?}, got {text:?}",
                    topic.as_str()
                ));
            }
            Ok(if topic == RolloutTopic::Rollback {
                RolloutCommand::Rollback
            } else {
                RolloutCommand::Resume
            })
        }
    }
}

#[derive(Serialize)]
struct Number {
    #[serde(flatten)]
    base: EntityBase,
    command_topic: String,
    state_topic: String,
    value_template: &'static str,
    min: f64,
    max: f64,
    step: f64,
    mode: &'static str,
    unit_of_measurement: &'static str,
}

#[derive(Serialize)]
struct Select {
    #[serde(flatten)]
    base: EntityBase,
    command_topic: String,
    state_topic: String,
    value_template: &'static str,
    options: [&'static str; 4],
}

#[derive(Serialize)]
struct Button {
    #[serde(flatten)]
    base: EntityBase,
    command_topic: String,
    payload_press: &'static str,
}

#[derive(Serialize)]
struct Sensor {
    #[serde(flatten)]
    base: EntityBase,
    state_topic: String,
    value_template: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit_of_measurement: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    json_attributes_template: Option<&'static str>,
}

#[derive(Serialize)]
struct BinarySensor {
    #[serde(flatten)]
    base: EntityBase,
    state_topic: String,
    value_template: &'static str,
    device_class: &'static str,
}

fn entity_base(
    topics: &Topics,
    opts: &DiscoveryOptions,
    id: &str,
    component: &str,
    name: &str,
    category: Option<&'static str>,
) -> EntityBase {
    let uid = format!("{}_rollout_{id}", opts.bridge_id);
    EntityBase {
        name: Some(name.to_string()),
        default_entity_id: format!("{component}.{uid}"),
        unique_id: uid,
        availability: vec![Availability {
            topic: topics.bridge_state(),
        }],
        availability_mode: "all",
        device: bridge_device(opts),
        origin: ORIGIN,
        qos: 1,
        json_attributes_topic: None,
        entity_category: category,
    }
}

fn discovery(component: &'static str, base: &EntityBase, payload: impl Serialize) -> Discovery {
    Discovery {
        component,
        object_id: base.unique_id.clone(),
        payload: serde_json::to_value(payload).unwrap_or_default(),
    }
}

/// The discovery configs of the rollout entities, with one budget sensor per name in
/// `slo_names`.
pub fn rollout_configs(
    topics: &Topics,
    opts: &DiscoveryOptions,
    slo_names: &[&'static str],
) -> Vec<Discovery> {
    let state = topics.rollout_state();
    let set = |t: RolloutTopic| topics.rollout_set(t);
    let b = |id: &str, component: &str, name: &str, category| {
        entity_base(topics, opts, id, component, name, category)
    };
    let mut out = Vec::new();
    let base = b("percent", "number", "Canary percentage", Some("config"));
    out.push(discovery(
        "number",
        &base.clone(),
        Number {
            base,
            command_topic: set(RolloutTopic::Percent),
            state_topic: state.clone(),
            value_template: "{{ value_json.canary_percent }}",
            min: 0.0,
            max: 100.0,
            step: 0.01,
            mode: "box",
            unit_of_measurement: "%",
        },
    ));
    let base = b("mode", "select", "Rollout mode", Some("config"));
    out.push(discovery(
        "select",
        &base.clone(),
        Select {
            base,
            command_topic: set(RolloutTopic::Mode),
            state_topic: state.clone(),
            value_template: "{{ value_json.mode }}",
            options: ["legacy", "shadow", "canary", "reliable"],
        },
    ));
    for (topic, name) in [
        (RolloutTopic::Rollback, "Roll back canary"),
        (RolloutTopic::Resume, "Resume canary"),
    ] {
        let base = b(topic.as_str(), "button", name, Some("config"));
        out.push(discovery(
            "button",
            &base.clone(),
            Button {
                base,
                command_topic: set(topic),
                payload_press: PRESS,
            },
        ));
    }
    let base = b(
        "latched",
        "binary_sensor",
        "Rollback latched",
        Some("diagnostic"),
    );
    out.push(discovery(
        "binary_sensor",
        &base.clone(),
        BinarySensor {
            base,
            state_topic: state.clone(),
            value_template: "{{ 'ON' if value_json.latched else 'OFF' }}",
            device_class: "problem",
        },
    ));
    out.extend(sensors(topics, opts, slo_names));
    out
}

fn sensors(topics: &Topics, opts: &DiscoveryOptions, slo_names: &[&'static str]) -> Vec<Discovery> {
    let state = topics.rollout_state();
    let mut sensors = vec![
        (
            "effective_percent".to_string(),
            "Reliable share".to_string(),
            "{{ value_json.effective_percent }}".to_string(),
            Some("%"),
            None,
        ),
        (
            "last_change".to_string(),
            "Last rollout change".to_string(),
            "{{ value_json.last_change }}".to_string(),
            None,
            // An object even before the first change: HA warns on attributes that are not one.
            Some("{{ (value_json.last_change_detail or {}) | tojson }}"),
        ),
    ];
    for name in slo_names {
        sensors.push((
            format!("budget_{name}"),
            format!("Error budget {}", name.replace('_', " ")),
            format!("{{{{ value_json.budgets.{name} }}}}"),
            Some("%"),
            None,
        ));
    }
    sensors
        .into_iter()
        .map(|(id, name, template, unit, attributes)| {
            let mut base = entity_base(topics, opts, &id, "sensor", &name, Some("diagnostic"));
            if attributes.is_some() {
                base.json_attributes_topic = Some(state.clone());
            }
            discovery(
                "sensor",
                &base.clone(),
                Sensor {
                    base,
                    state_topic: state.clone(),
                    value_template: template,
                    unit_of_measurement: unit,
                    json_attributes_template: attributes,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_refused_with_the_setting_named() {
        for bad in ["-1", "101", "NaN", "inf", "ten", ""] {
            let err = parse_command(RolloutTopic::Percent, bad.as_bytes()).unwrap_err();
            assert!(err.starts_with("rollout.canary_percent"), "{bad}: {err}");
        }
        assert_eq!(
            parse_command(RolloutTopic::Percent, b" 12.5 "),
            Ok(RolloutCommand::Percent(12.5))
        );
        assert_eq!(
            parse_command(RolloutTopic::Rollback, b"PRESS"),
            Ok(RolloutCommand::Rollback)
        );
        assert!(parse_command(RolloutTopic::Resume, b"yes").is_err());
        assert!(parse_command(RolloutTopic::Mode, &[0xff, 0xfe]).is_err());
    }
}
