//! The config tree as figment reads it: every key with its built-in default, before validation.
//!
//! Field names are the keys of `config/cync-bridge.toml` and, upper-cased with `__` between
//! section and key, of the `CYNC_…` environment variables. Every section denies unknown keys so
//! that a typo (`listn = …`) is an error naming the key instead of a silently ignored setting.
//! Types here are what a person writes (strings with units, lists of strings); [`super::Config`]
//! holds the validated, typed values. The defaults are documented key by key in
//! `config/cync-bridge.toml`, and a test keeps that file and these defaults in agreement.

use serde::{Deserialize, Serialize};

use super::value::DurationText;

/// The whole file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    /// Directory for state the bridge keeps between runs (the generated TLS certificate).
    pub data_dir: String,
    /// IANA time zone for the 0xC8 clock; empty = the host's.
    pub timezone: String,
    /// `[server]`.
    pub server: RawServer,
    /// `[tls]`.
    pub tls: RawTls,
    /// `[telemetry]`.
    pub telemetry: RawTelemetry,
    /// `[transport]`.
    pub transport: RawTransport,
    /// `[state]`.
    pub state: RawState,
    /// `[mqtt]`.
    pub mqtt: RawMqtt,
    /// `[devices]`.
    pub devices: RawDevices,
    /// `[rollout]`.
    pub rollout: super::rollout::RawRollout,
    /// `[slo]`.
    pub slo: super::rollout::RawSlo,
    /// `[rollback]`.
    pub rollback: super::rollout::RawRollback,
    /// `[cloud]`.
    pub cloud: RawCloud,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            data_dir: "data".to_owned(),
            timezone: String::new(),
            server: RawServer::default(),
            tls: RawTls::default(),
            telemetry: RawTelemetry::default(),
            transport: RawTransport::default(),
            state: RawState::default(),
            mqtt: RawMqtt::default(),
            devices: RawDevices::default(),
            rollout: Default::default(),
            slo: Default::default(),
            rollback: Default::default(),
            cloud: RawCloud::default(),
        }
    }
}

/// `[server]`: the device-facing listener and its sessions.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // documented key by key in config/cync-bridge.toml
pub struct RawServer {
    pub listen: String,
    pub handshake_timeout: DurationText,
    pub hello_timeout: DurationText,
    pub max_connections: u64,
    pub over_limit_hold: DurationText,
    pub max_held_connections: u64,
    pub idle_timeout: DurationText,
    pub session_open_delay: DurationText,
    pub mesh_info_delay: DurationText,
    pub write_timeout: DurationText,
    pub send_buffer_bytes: u64,
    pub command_queue: u64,
    pub max_inflight: u64,
    pub allow_device_ids: Vec<String>,
    pub allow_networks: Vec<String>,
    pub plain_tcp_debug: bool,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "0.0.0.0:23779".to_owned(),
            handshake_timeout: "10s".into(),
            hello_timeout: "10s".into(),
            max_connections: 256,
            over_limit_hold: "15s".into(),
            max_held_connections: 64,
            idle_timeout: "65s".into(),
            session_open_delay: "500ms".into(),
            mesh_info_delay: "1500ms".into(),
            write_timeout: "5s".into(),
            send_buffer_bytes: 64 * 1024,
            command_queue: 64,
            max_inflight: 256,
            allow_device_ids: Vec::new(),
            allow_networks: Vec::new(),
            plain_tcp_debug: false,
        }
    }
}

/// `[tls]`: the certificate presented to devices.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // documented key by key in config/cync-bridge.toml
pub struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// `[telemetry]`: `/metrics`, `/healthz` and logs.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // documented key by key in config/cync-bridge.toml
pub struct RawTelemetry {
    pub listen: String,
    pub log_format: String,
    pub log_filter: String,
    pub allowed_hosts: Vec<String>,
    pub ingress_peers: Vec<String>,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            listen: "127.0.0.1:9464".to_owned(),
            log_format: "json".to_owned(),
            log_filter: "info".to_owned(),
            allowed_hosts: Vec::new(),
            ingress_peers: vec!["auto".to_owned()],
        }
    }
}

/// `[transport]`: how the bridge's own commands travel.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // documented key by key in config/cync-bridge.toml
pub struct RawTransport {
    pub mode: String,
    pub command_timeout: DurationText,
    pub attempt_timeout: DurationText,
    pub max_retries: u64,
    pub backoff_base: DurationText,
    pub backoff_cap: DurationText,
    pub backoff_jitter: f64,
    pub device_queue: u64,
    pub overflow: String,
}

impl Default for RawTransport {
    fn default() -> Self {
        RawTransport {
            mode: "reliable".to_owned(),
            command_timeout: "5s".into(),
            attempt_timeout: "1500ms".into(),
            max_retries: 3,
            backoff_base: "250ms".into(),
            backoff_cap: "5s".into(),
            backoff_jitter: 0.2,
            device_queue: 16,
            overflow: "reject".to_owned(),
        }
    }
}

/// `[state]`: the device state store.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // documented key by key in config/cync-bridge.toml
pub struct RawState {
    pub event_queue: u64,
    pub max_waiters: u64,
}

impl Default for RawState {
    fn default() -> Self {
        RawState {
            event_queue: 1024,
            max_waiters: 4096,
        }
    }
}

/// `[mqtt]`: the broker and the Home Assistant discovery contract.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // documented key by key in config/cync-bridge.toml
pub struct RawMqtt {
    pub enabled: bool,
    pub url: String,
    pub username: String,
    pub password: String,
    pub client_id: String,
    pub keep_alive: DurationText,
    pub max_payload: u64,
    pub ca_file: String,
    pub client_cert: String,
    pub client_key: String,
    pub reconnect_min: DurationText,
    pub reconnect_max: DurationText,
    pub discovery_prefix: String,
    pub base_topic: String,
    pub node_id: String,
    pub birth_delay: DurationText,
    pub cleanup_delay: DurationText,
    pub color_temp_unit: String,
    pub legacy_color_mode_flag: bool,
}

impl Default for RawMqtt {
    fn default() -> Self {
        RawMqtt {
            enabled: true,
            url: "mqtt://127.0.0.1:1883".to_owned(),
            username: String::new(),
            password: String::new(),
            client_id: String::new(),
            keep_alive: "30s".into(),
            max_payload: 1024 * 1024,
            ca_file: String::new(),
            client_cert: String::new(),
            client_key: String::new(),
            reconnect_min: "1s".into(),
            reconnect_max: "5s".into(),
            discovery_prefix: "homeassistant".to_owned(),
            base_topic: "cync".to_owned(),
            node_id: "cync_bridge".to_owned(),
            birth_delay: "2s".into(),
            cleanup_delay: "60s".into(),
            color_temp_unit: "kelvin".to_owned(),
            legacy_color_mode_flag: false,
        }
    }
}

/// `[devices]`: which devices exist, what they are called, and when they count as unavailable.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // documented key by key in config/cync-bridge.toml
pub struct RawDevices {
    pub file: String,
    pub offline_grace: DurationText,
    pub route_grace: DurationText,
    pub startup_grace: DurationText,
    pub group_confirm_timeout: DurationText,
    pub endpoint_address: String,
    pub group_commands: String,
    /// Native device list, same shape as the file's `homes` section.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub homes: std::collections::BTreeMap<String, serde_json::Value>,
    /// Per-device overrides keyed by mesh id (`"12"`) or home and mesh id (`"1234-12"`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub overrides: std::collections::BTreeMap<String, crate::bridge::DeviceOverride>,
}

impl Default for RawDevices {
    fn default() -> Self {
        RawDevices {
            file: String::new(),
            offline_grace: "10s".into(),
            route_grace: "10s".into(),
            startup_grace: "90s".into(),
            group_confirm_timeout: "5s".into(),
            endpoint_address: "node".to_owned(),
            group_commands: "auto".to_owned(),
            homes: Default::default(),
            overrides: Default::default(),
        }
    }
}

/// `[cloud]`: the Cync account API that `cync-bridge export` and the setup page read.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // documented key by key in config/cync-bridge.toml
pub struct RawCloud {
    pub api_url: String,
    pub timeout: DurationText,
}

impl Default for RawCloud {
    fn default() -> Self {
        RawCloud {
            api_url: crate::cloud::settings::DEFAULT_API_URL.to_owned(),
            timeout: "15s".into(),
        }
    }
}
