//! Who decides which path a command takes: the configured rollout, runtime changes, and a latched
//! rollback, in that order of increasing precedence — latched rollback > runtime change >
//! environment > file > defaults (the last three are merged by the config layer into
//! [`Configured`]).
//!
//! Runtime changes and the latch are [`Persisted`] by the task, so a restart cannot silently
//! re-enable a canary that rolled back: the latch stays until someone resumes.

use std::fmt;
use std::str::FromStr;

use super::assign::{Cohort, Path, Share};
use crate::transport::RouteKey;

/// How commands are routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every command on the legacy path.
    Legacy,
    /// Every command on the legacy path, with the reliable engine watching what it would have
    /// done; never transmits anything of its own.
    Shadow,
    /// The cohort on the reliable path, everyone else on legacy.
    Canary,
    /// Every command on the reliable path (the default: what the bridge did before rollouts).
    Reliable,
}

impl Mode {
    #[allow(missing_docs)]
    pub const ALL: [Mode; 4] = [Mode::Legacy, Mode::Shadow, Mode::Canary, Mode::Reliable];

    /// The config, MQTT and CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Legacy => "legacy",
            Mode::Shadow => "shadow",
            Mode::Canary => "canary",
            Mode::Reliable => "reliable",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is none of the four.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a rollout mode (expected legacy, shadow, canary or reliable)")]
pub struct BadMode(pub String);

impl FromStr for Mode {
    type Err = BadMode;

    fn from_str(s: &str) -> Result<Mode, BadMode> {
        let t = s.trim();
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| BadMode(s.to_string()))
    }
}

/// The rollout as configuration (defaults, file, environment) describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Configured {
    #[allow(missing_docs)]
    pub mode: Mode,
    /// Who is reliable in canary mode.
    pub cohort: Cohort,
    /// Watch the legacy cohort in canary mode as shadow mode does.
    pub shadow_legacy: bool,
}

impl Default for Configured {
    fn default() -> Self {
        Configured {
            mode: Mode::Reliable,
            cohort: Cohort::default(),
            shadow_legacy: false,
        }
    }
}

/// Why every device went back to legacy.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Latch {
    /// When, in Unix milliseconds.
    pub at_unix_ms: u64,
    /// `manual`, or the `slo_name` of the failing check.
    pub reason: String,
    /// One sentence with the numbers that decided it.
    pub detail: String,
    /// The effective percentage before.
    pub from_percent: f64,
}

/// What runtime changes and rollbacks left behind; stored as JSON by the task.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Persisted {
    /// A mode set at runtime (MQTT, CLI).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// A percentage set at runtime, in hundredths of a percent.
    #[serde(default)]
    pub basis_points: Option<u16>,
    /// A latched rollback.
    #[serde(default)]
    pub latch: Option<Latch>,
    /// Every rollback so far, newest last, at most [`HISTORY`] (for `slo report`).
    #[serde(default)]
    pub history: Vec<Latch>,
}

/// Rollbacks remembered in [`Persisted::history`].
pub const HISTORY: usize = 100;

/// The routing in force right now.
#[derive(Clone, Debug, PartialEq)]
pub struct Effective {
    /// The mode after runtime changes (what HA's select shows).
    pub mode: Mode,
    /// The cohort after runtime changes.
    pub cohort: Cohort,
    /// Whether legacy commands are observed by the shadow engine.
    pub shadow: bool,
    /// Whether a rollback holds everyone on legacy.
    pub latched: bool,
}

impl Effective {
    /// The path of one command.
    pub fn path(&self, key: RouteKey) -> Path {
        if self.latched {
            return Path::Legacy;
        }
        match self.mode {
            Mode::Legacy | Mode::Shadow => Path::Legacy,
            Mode::Reliable => Path::Reliable,
            Mode::Canary => self.cohort.path_of(key),
        }
    }

    /// The share of devices on the reliable path as `tcp_comm_canary_percentage` shows it: 0
    /// after a rollback and in legacy or shadow mode, 100 in reliable mode.
    pub fn percent(&self) -> f64 {
        if self.latched {
            return 0.0;
        }
        match self.mode {
            Mode::Legacy | Mode::Shadow => 0.0,
            Mode::Reliable => 100.0,
            Mode::Canary => self.cohort.share.percent(),
        }
    }
}

/// Combines configuration and what was persisted.
pub fn effective(configured: &Configured, persisted: &Persisted) -> Effective {
    let mut cohort = configured.cohort.clone();
    if let Some(bp) = persisted.basis_points {
        cohort.share =
            Share::from_percent(f64::from(bp.min(10_000)) / 100.0).unwrap_or(Share::NONE);
    }
    let mode = persisted.mode.unwrap_or(configured.mode);
    Effective {
        mode,
        cohort,
        shadow: mode == Mode::Shadow || (mode == Mode::Canary && configured.shadow_legacy),
        latched: persisted.latch.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> RouteKey {
        RouteKey {
            home: 1000,
            id,
            group: false,
        }
    }

    #[test]
    fn a_latch_beats_a_runtime_change_which_beats_the_configuration() {
        let configured = Configured {
            mode: Mode::Canary,
            ..Configured::default()
        };
        let mut persisted = Persisted {
            basis_points: Some(10_000),
            ..Persisted::default()
        };
        let e = effective(&configured, &persisted);
        assert_eq!(e.percent(), 100.0);
        assert_eq!(e.path(key(1)), Path::Reliable);
        persisted.latch = Some(Latch {
            at_unix_ms: 1,
            reason: "manual".into(),
            detail: String::new(),
            from_percent: 100.0,
        });
        let e = effective(&configured, &persisted);
        assert_eq!(e.percent(), 0.0);
        assert_eq!(e.path(key(1)), Path::Legacy);
    }

    #[test]
    fn modes_parse_case_insensitively_and_anything_else_is_named() {
        assert_eq!("Canary".parse::<Mode>(), Ok(Mode::Canary));
        let err = "carrier-pigeon".parse::<Mode>().unwrap_err();
        assert!(err.to_string().contains("carrier-pigeon"), "{err}");
    }

    #[test]
    fn the_default_keeps_every_command_on_the_reliable_path() {
        let e = effective(&Configured::default(), &Persisted::default());
        assert_eq!(e.mode, Mode::Reliable);
        assert_eq!(e.path(key(7)), Path::Reliable);
        assert!(!e.shadow);
    }
}
