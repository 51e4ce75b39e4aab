//! `[mqtt]` validation: the broker URL and TLS files, topic names, the node id and the colour
//! temperature unit, each failure naming its key.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawMqtt;
use super::{Check, ConfigError, MqttConfig};
use crate::mqtt::client::{parse_url, MqttSettings, MqttTls};
use crate::mqtt::units::ColorTempUnit;

/// Publishes the bridge may have queued before producers wait; states are snapshots, so a burst
/// only delays.
const OUTBOX_CAPACITY: usize = 4096;
/// Broker events queued towards the bridge's event loop.
const EVENTS_CAPACITY: usize = 1024;

impl Check<'_> {
    pub(super) fn mqtt(&self, r: &RawMqtt) -> Result<MqttConfig, ConfigError> {
        let (host, port, tls) =
            parse_url(r.url.trim()).map_err(|e| self.fail("mqtt.url", e.to_string()))?;
        let base_topic = self.topic("mqtt.base_topic", &r.base_topic)?;
        let discovery_prefix = self.topic("mqtt.discovery_prefix", &r.discovery_prefix)?;
        let node_id = self.node_id(&r.node_id)?;
        // The pairing is checked even for mqtt://, so a half-configured client cert is never
        // silently ignored.
        let tls = tls.then_some(self.mqtt_tls(r)?);
        let reconnect_min = self.positive_duration("mqtt.reconnect_min", &r.reconnect_min)?;
        let reconnect_max = self.positive_duration("mqtt.reconnect_max", &r.reconnect_max)?;
        let keep_alive = self.positive_duration("mqtt.keep_alive", &r.keep_alive)?;
        if keep_alive < Duration::from_secs(5) {
            return Err(self.fail("mqtt.keep_alive", "must be at least 5s"));
        }
        let non_empty = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        let client_id =
            non_empty(r.client_id.trim()).unwrap_or_else(|| format!("cync-bridge-{node_id}"));
        Ok(MqttConfig {
            enabled: r.enabled,
            url: r.url.trim().to_owned(),
            settings: MqttSettings {
                host,
                port,
                tls,
                username: non_empty(&r.username),
                password: non_empty(&r.password),
                client_id,
                keep_alive,
                reconnect_min,
                reconnect_max: reconnect_max.max(reconnect_min),
                max_payload: self.count("mqtt.max_payload", r.max_payload)?.get(),
                outbox_capacity: OUTBOX_CAPACITY,
                events_capacity: EVENTS_CAPACITY,
            },
            discovery_prefix,
            base_topic,
            node_id,
            birth_delay: self.duration("mqtt.birth_delay", &r.birth_delay)?,
            cleanup_delay: self.duration("mqtt.cleanup_delay", &r.cleanup_delay)?,
            color_temp_unit: self.color_temp_unit(&r.color_temp_unit)?,
            legacy_color_mode_flag: r.legacy_color_mode_flag,
        })
    }

    /// A topic prefix: no wildcards (they would subscribe to other integrations' topics), no
    /// leading `/`, a trailing `/` dropped.
    fn topic(&self, key: &str, value: &str) -> Result<String, ConfigError> {
        let v = value.trim().trim_end_matches('/');
        if v.is_empty() || v.contains(['+', '#']) || v.starts_with('/') {
            return Err(self.fail(
                key,
                format!("{value:?} must be a topic without wildcards, e.g. \"cync\""),
            ));
        }
        Ok(v.to_owned())
    }

    /// Part of every unique id and discovery topic, so only characters both allow.
    fn node_id(&self, raw: &str) -> Result<String, ConfigError> {
        let node_id = raw.trim().to_owned();
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if node_id.is_empty() || !node_id.chars().all(allowed) {
            return Err(self.fail(
                "mqtt.node_id",
                format!("{raw:?} must be letters, digits, _ or - only"),
            ));
        }
        Ok(node_id)
    }

    fn mqtt_tls(&self, r: &RawMqtt) -> Result<MqttTls, ConfigError> {
        let path = |v: &str| (!v.trim().is_empty()).then(|| PathBuf::from(v.trim()));
        let (client_cert, client_key) = (path(&r.client_cert), path(&r.client_key));
        if client_cert.is_some() != client_key.is_some() {
            return Err(self.fail(
                "mqtt.client_cert",
                "client_cert and client_key must be set together",
            ));
        }
        Ok(MqttTls {
            ca: path(&r.ca_file),
            client_cert,
            client_key,
        })
    }

    fn color_temp_unit(&self, raw: &str) -> Result<ColorTempUnit, ConfigError> {
        match raw {
            "kelvin" => Ok(ColorTempUnit::Kelvin),
            "mired" | "mireds" => Ok(ColorTempUnit::Mired),
            other => Err(self.fail(
                "mqtt.color_temp_unit",
                format!("{other:?} is not a unit (expected \"kelvin\" or \"mired\")"),
            )),
        }
    }
}
