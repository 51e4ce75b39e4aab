//! The settings each layer owns, built from the validated tree: the layers below `config/` take
//! their own settings types and never see [`Config`].

use super::Config;
use crate::bridge::BridgeSettings;
use crate::device::availability::AvailabilityPolicy;
use crate::mqtt::discovery::{bridge_device_id, DiscoveryOptions};
use crate::mqtt::topics::Topics;
use crate::server::tls::TlsSettings;
use crate::server::DeviceServerSettings;

impl Config {
    /// Where the device-facing certificate comes from.
    pub fn tls_settings(&self) -> TlsSettings {
        TlsSettings {
            cert_path: self.tls.cert.clone(),
            key_path: self.tls.key.clone(),
            data_dir: self.data_dir.clone(),
        }
    }

    /// The device listener's settings.
    pub fn device_server(&self) -> DeviceServerSettings {
        DeviceServerSettings {
            server: self.server.clone(),
            tls: self.tls_settings(),
            timezone: self.timezone.tz,
        }
    }

    /// What the Home Assistant bridge publishes and how long it waits.
    pub fn bridge_settings(&self) -> BridgeSettings {
        let m = &self.mqtt;
        BridgeSettings {
            mqtt: m.settings.clone(),
            topics: Topics::new(&m.base_topic, &m.discovery_prefix, &m.node_id),
            discovery: DiscoveryOptions {
                bridge_id: bridge_device_id(&m.node_id),
                legacy_color_mode_flag: m.legacy_color_mode_flag,
                color_temp_unit: m.color_temp_unit,
                rollout_slos: Some(self.rollout.slos.iter().map(|s| s.name).collect()),
            },
            birth_delay: m.birth_delay,
            cleanup_delay: m.cleanup_delay,
            availability: AvailabilityPolicy {
                offline_grace: self.devices.offline_grace,
                route_grace: self.devices.route_grace,
                startup_grace: self.devices.startup_grace,
            },
            command_timeout: self.transport.command_timeout,
            group_confirm_timeout: self.devices.group_confirm_timeout,
            group_commands: self.devices.group_commands,
        }
    }
}
