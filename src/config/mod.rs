//! One typed configuration tree for every subcommand, loaded once and validated once, so no
//! subcommand can read a setting differently from another.
//!
//! Layers, later ones winning: built-in defaults ([`RawConfig`]) → a TOML file (`--config`, default
//! [`DEFAULT_CONFIG_FILE`], optional when not given explicitly) → environment variables `CYNC_…`
//! with `__` between section and key (`CYNC_SERVER__LISTEN=0.0.0.0:23779`,
//! `CYNC_TELEMETRY__LISTEN=127.0.0.1:9464`, top-level keys without a section: `CYNC_DATA_DIR`,
//! `CYNC_TIMEZONE`). A variable with `__` whose section is unknown is an error naming it and the
//! closest valid name; variables without `__` that name no top-level key (test switches,
//! `CYNC_CONFIG`) are not config and are ignored; inside a known section an unknown key is an
//! error that suggests the nearest key.
//!
//! Validation turns strings into typed values (`SocketAddr`, `Duration`, `NonZeroUsize`, enums,
//! an IANA zone) in [`validate`]. Every failure is a [`ConfigError`] naming the key and where its
//! value came from (file, environment variable or default); the binary exits with status 2 on
//! one. Nothing downstream re-parses a config string.
//!
//! Adding a section: a `Raw…` struct with its defaults in
//! `raw.rs`, a typed struct and a `validate_…` function here, a field on [`Config`], the section's
//! name in [`SECTIONS`], and its keys documented in `config/cync-bridge.toml`.
//!
//! This module must never do I/O beyond reading the one file and the environment, never log
//! (logging is set up *from* this config), and never echo a secret in an error.

mod build;
mod env;
mod mqtt;
mod raw;
mod rollout;
pub use rollout::parse_window;
pub mod value;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;

pub use crate::bridge::{DeviceOverride, DevicesSettings};
pub use crate::device::StoreSettings;
pub use crate::rollout::settings::RolloutSettings;
pub use crate::server::IpNet;
pub use crate::server::{DeviceServerSettings, ServerSettings};
use crate::transport::backoff::Backoff;
use crate::transport::queue::Overflow;
use crate::transport::reliable::Policy;
pub use crate::transport::{TransportMode, TransportSettings};
pub use raw::RawConfig;
use raw::{RawCloud, RawDevices, RawServer, RawState, RawTelemetry, RawTransport};
use value::{parse_device_id, parse_duration, DurationText};

use crate::telemetry::LogFormat;

/// The file read when `--config` is not given (missing is fine: defaults and environment apply).
pub const DEFAULT_CONFIG_FILE: &str = "config/cync-bridge.toml";

/// Prefix of the environment variables read.
pub const ENV_PREFIX: &str = "CYNC_";

/// Top-level keys and sections; an environment variable is read only if its first segment is
/// one of these.
pub const SECTIONS: &[&str] = &[
    "data_dir",
    "timezone",
    "server",
    "tls",
    "telemetry",
    "transport",
    "state",
    "mqtt",
    "devices",
    "rollout",
    "slo",
    "rollback",
    "cloud",
];

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Directory for state kept between runs (the generated TLS certificate and key).
    pub data_dir: PathBuf,
    /// Zone of the local time sent in 0xC8 (`docs/protocol.md#connect-and-time`).
    pub timezone: TimeZoneSetting,
    /// `[server]`.
    pub server: ServerSettings,
    /// `[tls]`.
    pub tls: TlsConfig,
    /// `[telemetry]`.
    pub telemetry: TelemetryConfig,
    /// `[transport]`.
    pub transport: TransportSettings,
    /// `[state]`.
    pub state: StoreSettings,
    /// `[mqtt]`.
    pub mqtt: MqttConfig,
    /// `[devices]`.
    pub devices: DevicesSettings,
    /// `[rollout]`, `[slo]`, `[rollback]` (and `[transport] mode`).
    pub rollout: RolloutSettings,
    /// `[cloud]`.
    pub cloud: crate::cloud::CloudSettings,
}

/// `[mqtt]`: the broker connection and the shape of what Home Assistant sees.
#[derive(Clone, Debug)]
pub struct MqttConfig {
    /// `false` runs the device side only (no broker connection at all).
    pub enabled: bool,
    /// The URL as configured (for messages; never contains the password).
    pub url: String,
    /// Connection settings, validated.
    pub settings: crate::mqtt::client::MqttSettings,
    /// Discovery prefix shared with every other integration (`homeassistant`).
    pub discovery_prefix: String,
    /// Root of this bridge's own topics (`cync`).
    pub base_topic: String,
    /// Names this bridge instance inside discovery topics; stale-config cleanup only ever
    /// touches configs under it.
    pub node_id: String,
    /// Wait after Home Assistant's birth message before re-publishing (HA subscribes first).
    pub birth_delay: Duration,
    /// Wait after start before removing retained discovery configs of devices that are no
    /// longer known (gives devices seen only on the wire time to connect).
    pub cleanup_delay: Duration,
    /// Kelvin (HA 2025.1+) or mireds (older releases) in discovery, state and commands.
    pub color_temp_unit: crate::mqtt::units::ColorTempUnit,
    /// Emit `color_mode: true` in light discovery (HA 2024.3 requires it; later releases warn).
    pub legacy_color_mode_flag: bool,
}

/// The 0xC8 time zone and how it was chosen (so the caller can log a fallback once logging is
/// up; this module never logs).
#[derive(Clone, Debug)]
pub struct TimeZoneSetting {
    /// The zone.
    pub tz: chrono_tz::Tz,
    /// `None` when configured or detected; otherwise why UTC was used instead of the host's zone.
    pub fallback_reason: Option<String>,
}

/// `[tls]`: the certificate presented to devices; both `None` = generated into `data_dir`.
#[derive(Clone, Debug, Default)]
pub struct TlsConfig {
    /// PEM certificate.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
}

/// `[telemetry]`.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// Address of `/metrics` and `/healthz`.
    pub listen: SocketAddr,
    /// JSON lines or human-readable logs.
    pub log_format: LogFormat,
    /// `tracing` filter directives (checked here, applied by `telemetry::logging::init`).
    pub log_filter: String,
    /// Host names (besides IP literals and `localhost`) state-changing requests may be addressed
    /// to; anything else is refused as a DNS-rebinding attempt.
    pub allowed_hosts: Vec<String>,
    /// Peers whose requests come through Home Assistant's ingress.
    pub ingress_peers: IngressPeers,
}

/// Who may reach the admin endpoints as Home Assistant's ingress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngressPeers {
    /// The Supervisor's address when running as an add-on, nobody otherwise.
    Auto,
    /// Exactly these addresses.
    Only(Vec<std::net::IpAddr>),
}

impl IngressPeers {
    /// The addresses in force on this machine.
    pub fn resolve(&self) -> Vec<std::net::IpAddr> {
        match self {
            IngressPeers::Auto => crate::telemetry::access::default_ingress_peers(),
            IngressPeers::Only(peers) => peers.clone(),
        }
    }
}

/// Which config file to read.
#[derive(Clone, Debug)]
pub enum ConfigFile {
    /// [`DEFAULT_CONFIG_FILE`] if it exists.
    Default,
    /// A file named on the command line; it must exist.
    Explicit(PathBuf),
}

/// A configuration problem, naming the key and where its value came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A `CYNC_<SECTION>__KEY` variable names no section.
    #[error("environment variable {variable} names no config section{}", suggestion.as_ref().map(|s| format!("; did you mean {s}?")).unwrap_or_default())]
    UnknownEnvSection {
        /// The variable as set.
        variable: String,
        /// The nearest valid variable name, when one is close.
        suggestion: Option<String>,
    },
    /// `--config` named a file that does not exist.
    #[error("config file {} does not exist (named by --config)", path.display())]
    MissingFile {
        /// The path given.
        path: PathBuf,
    },
    /// The file is not valid TOML.
    #[error("cannot read {origin}: {message}")]
    Syntax {
        /// Where the bad text is.
        origin: String,
        /// The parser's message (line and column included).
        message: String,
    },
    /// A key has a value that cannot be used.
    #[error("invalid value for {key} ({origin}): {message}")]
    Invalid {
        /// Dotted key, e.g. `server.listen`.
        key: String,
        /// `file config/cync-bridge.toml`, `environment variable CYNC_SERVER__LISTEN` or
        /// `built-in default`.
        origin: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl ConfigError {
    /// The key at fault, if the error is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// The layered figment for `file`: defaults, the TOML file, then the environment.
pub fn figment(file: &ConfigFile) -> Result<Figment, ConfigError> {
    let path = match file {
        ConfigFile::Default => PathBuf::from(DEFAULT_CONFIG_FILE),
        ConfigFile::Explicit(path) => {
            if !path.is_file() {
                return Err(ConfigError::MissingFile { path: path.clone() });
            }
            path.clone()
        }
    };
    env::check_sections(std::env::vars())?;
    let env = Env::prefixed(ENV_PREFIX).split("__").filter(|key| {
        let root = key.as_str().split('.').next().unwrap_or_default();
        SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(root))
    });
    Ok(Figment::from(figment::providers::Serialized::defaults(
        RawConfig::default(),
    ))
    .merge(Toml::file(path))
    .merge(rollout::Aliases::from_vars(std::env::vars()))
    .merge(env))
}

/// Loads and validates the configuration: [`figment()`] then [`validate`].
pub fn load(file: &ConfigFile) -> Result<Config, ConfigError> {
    validate(&figment(file)?)
}

/// The built-in defaults with `text` (a config file's contents) on top, validated; no
/// environment. For checking a file's text on its own, and for fuzzing the loader.
pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
    let figment = Figment::from(figment::providers::Serialized::defaults(
        RawConfig::default(),
    ))
    .merge(Toml::string(text));
    validate(&figment)
}

/// Extracts the raw tree from `figment` and validates every key into a [`Config`].
pub fn validate(figment: &Figment) -> Result<Config, ConfigError> {
    let raw: RawConfig = figment.extract().map_err(from_figment)?;
    let check = Check { figment };
    Ok(Config {
        data_dir: PathBuf::from(&raw.data_dir),
        timezone: check.timezone(&raw.timezone)?,
        server: check.server(&raw.server)?,
        tls: TlsConfig {
            cert: raw.tls.cert.as_deref().map(PathBuf::from),
            key: raw.tls.key.as_deref().map(PathBuf::from),
        },
        telemetry: check.telemetry(&raw.telemetry)?,
        transport: check.transport(&raw.transport)?,
        state: check.state(&raw.state)?,
        mqtt: check.mqtt(&raw.mqtt)?,
        devices: check.devices(&raw.devices, Path::new(&raw.data_dir))?,
        rollout: check.rollout_settings(&raw)?,
        cloud: check.cloud(&raw.cloud)?,
    })
}

/// Validation helpers that know where each value came from.
struct Check<'a> {
    figment: &'a Figment,
}

impl Check<'_> {
    fn fail(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let metadata = self.figment.find_metadata(key);
        let path: Vec<&str> = key.split('.').collect();
        ConfigError::Invalid {
            key: key.to_owned(),
            origin: origin(metadata, &path),
            message: message.into(),
        }
    }

    fn duration(&self, key: &str, text: &DurationText) -> Result<Duration, ConfigError> {
        parse_duration(&text.0).map_err(|m| self.fail(key, m))
    }

    fn positive_duration(&self, key: &str, text: &DurationText) -> Result<Duration, ConfigError> {
        match self.duration(key, text)? {
            d if d.is_zero() => Err(self.fail(key, "must be longer than 0")),
            d => Ok(d),
        }
    }

    fn count(&self, key: &str, value: u64) -> Result<NonZeroUsize, ConfigError> {
        usize::try_from(value)
            .ok()
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| self.fail(key, format!("{value} is not a positive count")))
    }

    fn addr(&self, key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
        text.trim().parse().map_err(|_| {
            self.fail(
                key,
                format!("{text:?} is not an address with a port, e.g. \"0.0.0.0:23779\""),
            )
        })
    }

    fn server(&self, r: &RawServer) -> Result<ServerSettings, ConfigError> {
        let device_ids = r
            .allow_device_ids
            .iter()
            .map(|id| parse_device_id(id).map_err(|m| self.fail("server.allow_device_ids", m)))
            .collect::<Result<_, _>>()?;
        let networks = r
            .allow_networks
            .iter()
            .map(|net| IpNet::parse(net).map_err(|m| self.fail("server.allow_networks", m)))
            .collect::<Result<_, _>>()?;
        Ok(ServerSettings {
            listen: self.addr("server.listen", &r.listen)?,
            handshake_timeout: self
                .positive_duration("server.handshake_timeout", &r.handshake_timeout)?,
            hello_timeout: self.positive_duration("server.hello_timeout", &r.hello_timeout)?,
            max_connections: self.count("server.max_connections", r.max_connections)?,
            over_limit_hold: self.duration("server.over_limit_hold", &r.over_limit_hold)?,
            max_held_connections: self
                .count("server.max_held_connections", r.max_held_connections)?,
            idle_timeout: self.positive_duration("server.idle_timeout", &r.idle_timeout)?,
            session_open_delay: self
                .duration("server.session_open_delay", &r.session_open_delay)?,
            mesh_info_delay: self.duration("server.mesh_info_delay", &r.mesh_info_delay)?,
            write_timeout: self.positive_duration("server.write_timeout", &r.write_timeout)?,
            send_buffer_bytes: self.count("server.send_buffer_bytes", r.send_buffer_bytes)?,
            command_queue: self.count("server.command_queue", r.command_queue)?,
            max_inflight: self.count("server.max_inflight", r.max_inflight)?,
            allow_device_ids: device_ids,
            allow_networks: networks,
            plain_tcp_debug: r.plain_tcp_debug,
            counter_seed: None,
        })
    }

    fn telemetry(&self, r: &RawTelemetry) -> Result<TelemetryConfig, ConfigError> {
        let log_format = LogFormat::from_str(&r.log_format)
            .map_err(|e| self.fail("telemetry.log_format", e.to_string()))?;
        tracing_subscriber::EnvFilter::try_new(&r.log_filter).map_err(|e| {
            self.fail(
                "telemetry.log_filter",
                format!(
                    "{:?} is not a log filter (e.g. \"info\" or \
                     \"info,cync_bridge::server=debug\"): {e}",
                    r.log_filter
                ),
            )
        })?;
        let ingress_peers = match r.ingress_peers.as_slice() {
            [auto] if auto == "auto" => IngressPeers::Auto,
            peers => IngressPeers::Only(
                peers
                    .iter()
                    .map(|p| {
                        p.trim().parse().map_err(|_| {
                            self.fail(
                                "telemetry.ingress_peers",
                                format!("{p:?} is not an IP address (or use [\"auto\"])"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        let allowed_hosts = r
            .allowed_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect::<Vec<_>>();
        if let Some(bad) = allowed_hosts.iter().find(|h| {
            h.is_empty()
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        }) {
            return Err(self.fail(
                "telemetry.allowed_hosts",
                format!("{bad:?} is not a host name (e.g. \"cync.lan\")"),
            ));
        }
        Ok(TelemetryConfig {
            listen: self.addr("telemetry.listen", &r.listen)?,
            log_format,
            log_filter: r.log_filter.clone(),
            allowed_hosts,
            ingress_peers,
        })
    }

    /// `[transport]`; its `mode` is the rollout mode and is validated with `[rollout]`.
    fn transport(&self, r: &RawTransport) -> Result<TransportSettings, ConfigError> {
        let command_timeout =
            self.positive_duration("transport.command_timeout", &r.command_timeout)?;
        let overflow = match r.overflow.as_str() {
            "reject" => Overflow::Reject,
            "drop_oldest" => Overflow::DropOldest,
            other => {
                return Err(self.fail(
                    "transport.overflow",
                    format!("{other:?} is not a policy (expected \"reject\" or \"drop_oldest\")"),
                ))
            }
        };
        if !(0.0..=1.0).contains(&r.backoff_jitter) {
            return Err(self.fail(
                "transport.backoff_jitter",
                format!("{} is not a fraction between 0 and 1", r.backoff_jitter),
            ));
        }
        let max_retries = u32::try_from(r.max_retries)
            .ok()
            .filter(|n| *n <= 10)
            .ok_or_else(|| {
                self.fail(
                    "transport.max_retries",
                    format!("{} is too many (at most 10)", r.max_retries),
                )
            })?;
        let reliable = Policy {
            name: "reliable",
            attempt_timeout: self
                .positive_duration("transport.attempt_timeout", &r.attempt_timeout)?,
            max_retries,
            backoff: Backoff {
                base: self.positive_duration("transport.backoff_base", &r.backoff_base)?,
                cap: self.positive_duration("transport.backoff_cap", &r.backoff_cap)?,
                jitter: r.backoff_jitter,
            },
            deadline: command_timeout,
            coalesce: true,
            queue_capacity: self.count("transport.device_queue", r.device_queue)?.get(),
            overflow,
        };
        Ok(TransportSettings {
            command_timeout,
            reliable,
        })
    }

    fn state(&self, r: &RawState) -> Result<StoreSettings, ConfigError> {
        Ok(StoreSettings {
            event_queue: self.count("state.event_queue", r.event_queue)?,
            max_waiters: self.count("state.max_waiters", r.max_waiters)?,
        })
    }

    fn cloud(&self, r: &RawCloud) -> Result<crate::cloud::CloudSettings, ConfigError> {
        Ok(crate::cloud::CloudSettings {
            api: crate::cloud::ApiUrl::parse(&r.api_url)
                .map_err(|message| self.fail("cloud.api_url", message))?,
            timeout: self.positive_duration("cloud.timeout", &r.timeout)?,
        })
    }

    fn devices(&self, r: &RawDevices, data_dir: &Path) -> Result<DevicesSettings, ConfigError> {
        for key in r.overrides.keys() {
            let ok = match key.split_once('-') {
                Some((home, mesh)) => home.parse::<u64>().is_ok() && mesh.parse::<u16>().is_ok(),
                None => key.parse::<u16>().is_ok(),
            };
            if !ok {
                return Err(self.fail(
                    &format!("devices.overrides.{key}"),
                    "override keys are a mesh id (\"12\") or home id and mesh id (\"1234-12\")",
                ));
            }
        }
        let file = r.file.trim();
        Ok(DevicesSettings {
            file: (!file.is_empty()).then(|| PathBuf::from(file)),
            exported_file: data_dir.join(crate::cloud::save::DEVICE_FILE),
            homes: r.homes.clone().into_iter().collect(),
            overrides: r.overrides.clone(),
            offline_grace: self.positive_duration("devices.offline_grace", &r.offline_grace)?,
            route_grace: self.positive_duration("devices.route_grace", &r.route_grace)?,
            startup_grace: self.duration("devices.startup_grace", &r.startup_grace)?,
            group_confirm_timeout: self
                .positive_duration("devices.group_confirm_timeout", &r.group_confirm_timeout)?,
            endpoint_address: match r.endpoint_address.trim() {
                "node" => crate::bridge::EndpointAddress::Node,
                "packed" => crate::bridge::EndpointAddress::Packed,
                _ => {
                    return Err(self.fail(
                        "devices.endpoint_address",
                        "must be \"node\" (the device's mesh id) or \"packed\" (mesh id + 256 × outlet)",
                    ))
                }
            },
            group_commands: match r.group_commands.trim() {
                "auto" => crate::bridge::GroupCommands::Auto,
                "members" => crate::bridge::GroupCommands::Members,
                "group" => crate::bridge::GroupCommands::Group,
                _ => {
                    return Err(self.fail(
                        "devices.group_commands",
                        "must be \"auto\", \"members\" or \"group\"",
                    ))
                }
            },
        })
    }

    fn timezone(&self, name: &str) -> Result<TimeZoneSetting, ConfigError> {
        if !name.trim().is_empty() {
            let tz = name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
                self.fail(
                    "timezone",
                    format!("{name:?} is not an IANA time zone (e.g. \"America/Chicago\")"),
                )
            })?;
            return Ok(TimeZoneSetting {
                tz,
                fallback_reason: None,
            });
        }
        let host = iana_time_zone::get_timezone().map_err(|e| e.to_string());
        Ok(
            match host.and_then(|h| h.parse::<chrono_tz::Tz>().map_err(|e| format!("{h}: {e}"))) {
                Ok(tz) => TimeZoneSetting {
                    tz,
                    fallback_reason: None,
                },
                Err(reason) => TimeZoneSetting {
                    tz: chrono_tz::UTC,
                    fallback_reason: Some(format!(
                        "the host's time zone could not be determined ({reason}); set `timezone`"
                    )),
                },
            },
        )
    }
}

/// Turns figment's error (a type or unknown-key problem found while extracting) into ours.
fn from_figment(error: figment::Error) -> ConfigError {
    // For an unknown key the path already ends with the key itself.
    let path: Vec<&str> = error.path.iter().map(String::as_str).collect();
    let origin = origin(error.metadata.as_ref(), &path);
    if path.is_empty() {
        return ConfigError::Syntax {
            origin,
            message: error.kind.to_string(),
        };
    }
    let mut message = error.kind.to_string();
    if let figment::error::Kind::UnknownField(field, expected) = &error.kind {
        if let Some(near) = env::closest(field, expected) {
            message.push_str(&format!("; did you mean `{near}`?"));
        }
    }
    ConfigError::Invalid {
        key: path.join("."),
        origin,
        message,
    }
}

/// Where a value came from, in words an operator can act on.
fn origin(metadata: Option<&figment::Metadata>, path: &[&str]) -> String {
    let Some(md) = metadata else {
        return "built-in default".to_owned();
    };
    if let Some(figment::Source::File(file)) = &md.source {
        return format!("file {}", file.display());
    }
    if md.name == rollout::ALIAS_ORIGIN {
        return md.name.to_string();
    }
    if md.name.contains("environment") {
        return format!(
            "environment variable {ENV_PREFIX}{}",
            path.join("__").to_ascii_uppercase()
        );
    }
    "built-in default".to_owned()
}

#[cfg(test)]
mod tests;
