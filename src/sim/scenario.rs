//! Scenario files: a whole simulator run in TOML — homes to generate, timing, behaviour, chaos
//! for every device and per device.
//!
//! Why it exists: a chaos run worth repeating must be writable down and shareable; the CLI
//! flags then override a few values of it. Unknown keys are errors (`deny_unknown_fields`), so a
//! typo in a knob fails loudly instead of silently running without chaos.
//!
//! ```toml
//! seed = 42
//! record = "fixtures/sim-example.txt"   # optional capture-text recording
//!
//! [generate]            # what home::generate builds
//! wifi_devices = 4
//! mesh_per_device = 3
//! groups_per_home = 1
//! reach_redundancy = 2
//!
//! [timing]              # milliseconds
//! heartbeat_idle_ms = 21000
//! reconnect_ms = 2600
//!
//! [behaviour]
//! relay_responds = true
//! stuffing = "raw"      # or "escape"
//! counters = "random"   # "reset", "continue"
//!
//! [chaos.to_bridge]     # device → bridge
//! loss = 0.05
//! loss_burst = 3
//! [chaos.from_bridge]   # bridge → device
//! duplicate = 0.01
//! [chaos.link]
//! partition = 0.001
//! partition_kind = "reset"
//! [chaos.receipts]
//! delay = 0.1
//! delay_ms = 2000
//!
//! [[device]]            # per-device chaos, replacing [chaos] for that device
//! home = 0
//! mesh_id = 1
//! [device.chaos.to_bridge]
//! loss = 0.5
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::chaos::Chaos;
use super::config::{Behaviour, ConfigError, SimConfig, SimDeviceKey, Timing};
use super::home::{generate, GenerateParams, HomeError};

/// Per-device chaos in a scenario.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceOverride {
    /// Home index.
    pub home: usize,
    /// Mesh id of a Wi-Fi device in that home.
    pub mesh_id: u16,
    /// Replaces the scenario's `chaos` for this device (absent: a perfect device).
    #[serde(default)]
    pub chaos: Chaos,
}

/// A parsed scenario file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Seed (the CLI `--seed` wins).
    pub seed: Option<u64>,
    /// Homes to generate.
    pub generate: GenerateParams,
    #[allow(missing_docs)]
    pub timing: Timing,
    #[allow(missing_docs)]
    pub behaviour: Behaviour,
    /// Chaos for every device without a `[[device]]` override.
    pub chaos: Chaos,
    /// `[[device]]` tables: each replaces `chaos` for one Wi-Fi device.
    pub device: Vec<DeviceOverride>,
    /// Capture-text file to record to.
    pub record: Option<PathBuf>,
}

/// Why a scenario could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[allow(missing_docs)]
    #[error("cannot read scenario {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not valid TOML for a scenario (unknown keys included).
    #[error("scenario {where_}: {source}")]
    Parse {
        /// The file, or "text".
        where_: String,
        /// The TOML error, naming the key and line.
        source: Box<toml::de::Error>,
    },
    /// Homes could not be generated.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The resulting configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Scenario {
    /// Parses scenario text.
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        toml::from_str(text).map_err(|source| ScenarioError::Parse {
            where_: "text".to_owned(),
            source: Box::new(source),
        })
    }

    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ScenarioError::Parse {
            where_: path.display().to_string(),
            source: Box::new(source),
        })
    }

    /// Generates the homes and builds a validated configuration (seed 0 when none is given).
    pub fn into_config(self) -> Result<SimConfig, ScenarioError> {
        let seed = self.seed.unwrap_or(0);
        let homes = generate(&self.generate, seed)?;
        let config = SimConfig {
            seed,
            homes,
            timing: self.timing,
            behaviour: self.behaviour,
            chaos: self.chaos,
            device_chaos: self
                .device
                .into_iter()
                .map(|d| {
                    (
                        SimDeviceKey {
                            home: d.home,
                            mesh_id: d.mesh_id,
                        },
                        d.chaos,
                    )
                })
                .collect(),
            record: self.record,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::chaos::Partition;

    #[test]
    fn the_documented_example_parses_into_a_valid_config() {
        let text = include_str!("scenario.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let scenario = Scenario::from_toml(&text).unwrap();
        assert_eq!(scenario.seed, Some(42));
        assert_eq!(scenario.chaos.to_bridge.loss_burst, 3);
        assert_eq!(scenario.chaos.link.partition_kind, Partition::Reset);
        let config = scenario.into_config().unwrap();
        assert_eq!(config.homes[0].wifi_devices().count(), 4);
        let key = SimDeviceKey {
            home: 0,
            mesh_id: 1,
        };
        assert_eq!(config.chaos_for(key).to_bridge.loss, 0.5);
    }

    #[test]
    fn a_misspelt_knob_is_an_error_naming_it() {
        let err = Scenario::from_toml("[chaos.to_bridge]\nlos = 0.1\n").unwrap_err();
        assert!(err.to_string().contains("los"), "{err}");
    }

    #[test]
    fn an_out_of_range_rate_is_refused() {
        let scenario = Scenario::from_toml("[chaos.to_bridge]\nloss = 2.0\n").unwrap();
        let err = scenario.into_config().unwrap_err();
        assert!(err.to_string().contains("to_bridge.loss"), "{err}");
    }
}
