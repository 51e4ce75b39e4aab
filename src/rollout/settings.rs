//! `[rollout]`, `[slo]` and `[rollback]`, validated (the config layer parses and builds them).

use std::path::PathBuf;

use super::control::Configured;
use super::controller::RollbackSettings;
use super::slo::Slo;

/// Everything the rollout controller is started with.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutSettings {
    /// Mode and cohort from defaults, file and environment (runtime changes come on top).
    pub configured: Configured,
    #[allow(missing_docs)]
    pub rollback: RollbackSettings,
    /// The objectives reported and budgeted.
    pub slos: Vec<Slo>,
    /// Events an SLO's window needs before it is called met or violated.
    pub slo_min_events: u64,
    /// The evidence database (`<data_dir>/rollout.sqlite3`).
    pub store_path: PathBuf,
    /// Most recent commands kept one row each for drill-down.
    pub recent_commands: usize,
}

impl Default for RolloutSettings {
    fn default() -> Self {
        RolloutSettings {
            configured: Configured::default(),
            rollback: RollbackSettings::default(),
            slos: Slo::defaults(),
            slo_min_events: 20,
            store_path: PathBuf::from("data/rollout.sqlite3"),
            recent_commands: 10_000,
        }
    }
}

/// The database file under `data_dir`.
pub fn store_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("rollout.sqlite3")
}
