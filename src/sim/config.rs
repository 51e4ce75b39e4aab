//! Everything that shapes a simulator run except the homes: timing, device behaviour where real
//! devices are not known to agree, default and per-device chaos, observability settings.
//!
//! Why it exists: one typed value that the TOML scenario, the CLI flags and Rust tests all
//! produce, validated once ([`SimConfig::validate`]) before anything starts. Defaults are the
//! measured real values: heartbeat (`docs/protocol.md#heartbeat`), reconnect delay
//! (`docs/protocol.md#timing`), report delay (`docs/protocol.md#command-responses`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::chaos::{Chaos, ChaosError};
use super::home::{HomeError, SimHome};
use super::recorder::DEFAULT_LOG_CAPACITY;
use crate::protocol::Stuffing;

/// Timers of a simulated device. Durations are milliseconds in TOML (`*_ms` keys).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timing {
    /// Transmit-idle time before a 0xD3 heartbeat (`docs/protocol.md#heartbeat`: ≈ 21 s).
    pub heartbeat_idle_ms: u64,
    /// Base reconnect delay after a connection ends (`docs/protocol.md#timing`: 2.6 s on average).
    pub reconnect_ms: u64,
    /// Reconnect delay is multiplied by a factor drawn from `1 ± reconnect_jitter`.
    pub reconnect_jitter: f64,
    /// Upper bound of the delay after repeated failures to connect (it doubles each time).
    pub reconnect_max_ms: u64,
    /// Time allowed for TCP connect plus TLS handshake.
    pub connect_timeout_ms: u64,
    /// Time allowed for the 0x28 after the hello before the device gives up and reconnects
    /// (what real devices do is UNKNOWN; they are not known to wait forever).
    pub hello_timeout_ms: u64,
    /// Time a socket write may block before the connection is treated as dead.
    pub write_timeout_ms: u64,
    /// Delay between a command's response/receipt and the state report
    /// (`docs/protocol.md#command-responses`: ≈ 0.5 s).
    pub report_delay_ms: u64,
    /// First connections are spread over this long (0 = all at once, like after a bridge
    /// restart).
    pub connect_spread_ms: u64,
    /// Interval of scheduled wall-switch changes per home (0 = none); jittered ±50 %.
    pub wall_change_every_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_idle_ms: 21_000,
            reconnect_ms: 2_600,
            reconnect_jitter: 0.25,
            reconnect_max_ms: 30_000,
            connect_timeout_ms: 10_000,
            hello_timeout_ms: 30_000,
            write_timeout_ms: 10_000,
            report_delay_ms: 500,
            connect_spread_ms: 0,
            wall_change_every_ms: 0,
        }
    }
}

impl Timing {
    pub(crate) fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
}

/// Whether per-connection message counters restart on reconnect (`docs/protocol.md#msg-id`: both
/// were seen, so "do not assume a reset").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterPolicy {
    /// Restart at 1 (0x83) / 0 (0x73) on every connection.
    Reset,
    /// Continue where the last connection stopped.
    Continue,
    /// Decide per connection from the seed (the default: the bridge must cope with both).
    #[default]
    Random,
}

/// How frames are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameStuffing {
    /// Raw, like every device frame captured (`docs/protocol.md#escaping`).
    #[default]
    Raw,
    /// HDLC-stuffed (`7D 5D` / `7D 5E`), as seen on the cloud→app leg, to test the bridge's
    /// un-stuffing.
    Escape,
}

impl From<FrameStuffing> for Stuffing {
    fn from(s: FrameStuffing) -> Stuffing {
        match s {
            FrameStuffing::Raw => Stuffing::Raw,
            FrameStuffing::Escape => Stuffing::Escape,
        }
    }
}

/// Device behaviour the captures leave open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Whether a relay sends the `f9` response for a command aimed at another mesh device
    /// (Bluetooth-only or another Wi-Fi device). Not captured (`docs/protocol.md#command-responses`
    /// shows a device's own command only); on by default because legacy's routing relies on any
    /// bridge answering.
    pub relay_responds: bool,
    #[allow(missing_docs)]
    pub stuffing: FrameStuffing,
    /// Message counters across reconnects.
    pub counters: CounterPolicy,
    /// Packet-log ring size per device (0 = no log).
    pub log_capacity: usize,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            relay_responds: true,
            stuffing: FrameStuffing::Raw,
            counters: CounterPolicy::Random,
            log_capacity: DEFAULT_LOG_CAPACITY,
        }
    }
}

/// Addresses one Wi-Fi device: its home (index) and mesh id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SimDeviceKey {
    /// Index of the home in [`SimConfig::homes`].
    pub home: usize,
    /// Mesh id inside that home.
    pub mesh_id: u16,
}

/// A complete simulator configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Seed for every random decision (ids, profiles, chaos, backoff jitter, wall changes).
    pub seed: u64,
    #[allow(missing_docs)]
    pub homes: Vec<SimHome>,
    #[allow(missing_docs)]
    pub timing: Timing,
    #[allow(missing_docs)]
    pub behaviour: Behaviour,
    /// Chaos for every device without an override.
    pub chaos: Chaos,
    /// Per-device chaos replacing `chaos` for that device.
    pub device_chaos: Vec<(SimDeviceKey, Chaos)>,
    /// Write every session to this capture-text file.
    pub record: Option<PathBuf>,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A home is invalid.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// A chaos knob is out of range.
    #[error("{0}")]
    Chaos(#[from] ChaosError),
    /// A per-device override names no Wi-Fi device.
    #[allow(missing_docs)]
    #[error("per-device chaos names home {home} mesh id {mesh_id}, which is not a Wi-Fi device")]
    UnknownDevice { home: usize, mesh_id: u16 },
    /// No Wi-Fi device at all.
    #[error("nothing to simulate: no Wi-Fi device in any home")]
    Empty,
    /// A timing value that cannot work.
    #[error("timing.{0} must be greater than zero")]
    ZeroTiming(&'static str),
}

impl SimConfig {
    /// A configuration with default timing, behaviour and no chaos.
    pub fn new(seed: u64, homes: Vec<SimHome>) -> Self {
        SimConfig {
            seed,
            homes,
            timing: Timing::default(),
            behaviour: Behaviour::default(),
            chaos: Chaos::default(),
            device_chaos: Vec::new(),
            record: None,
        }
    }

    /// The chaos a device starts with.
    pub fn chaos_for(&self, key: SimDeviceKey) -> &Chaos {
        self.device_chaos
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(&self.chaos, |(_, c)| c)
    }

    /// Checks homes, device-id uniqueness, chaos ranges, overrides and timers.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for home in &self.homes {
            home.validate()?;
        }
        super::home::check_unique_device_ids(&self.homes)?;
        if self.homes.iter().all(|h| h.wifi_devices().next().is_none()) {
            return Err(ConfigError::Empty);
        }
        self.chaos.validate()?;
        for (key, chaos) in &self.device_chaos {
            chaos.validate()?;
            let is_wifi = self
                .homes
                .get(key.home)
                .and_then(|h| h.device(key.mesh_id))
                .is_some_and(|d| d.wifi.is_some());
            if !is_wifi {
                return Err(ConfigError::UnknownDevice {
                    home: key.home,
                    mesh_id: key.mesh_id,
                });
            }
        }
        let t = &self.timing;
        for (name, value) in [
            ("heartbeat_idle_ms", t.heartbeat_idle_ms),
            ("connect_timeout_ms", t.connect_timeout_ms),
            ("hello_timeout_ms", t.hello_timeout_ms),
            ("write_timeout_ms", t.write_timeout_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroTiming(name));
            }
        }
        Ok(())
    }
}
