//! `[rollout]`, `[slo]` and `[rollback]`: parsing, the programme's environment aliases, and
//! validation into [`RolloutSettings`].
//!
//! `[transport] mode` names the rollout mode too (`legacy`, `shadow`, `canary`, `reliable`), so a
//! config written before rollouts existed keeps its path; `[rollout] mode`, when set, wins.
//! The original programme's variables are accepted as aliases, below the `CYNC_*` variables:
//! `CANARY_PERCENTAGE` (alone: canary mode at that percentage), `DARK_LAUNCH` (`true`: shadow
//! mode; with a percentage, shadow on the canary's legacy cohort) and `CANARY_COHORT` (comma
//! separated topic ids: an explicit cohort, canary mode).

use std::collections::BTreeSet;
use std::time::Duration;

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

use super::value::{parse_duration, DurationText};
use super::{Check, ConfigError};
use crate::mqtt::topics::EntityKey;
use crate::rollout::assign::{Cohort, Share};
use crate::rollout::control::{Configured, Mode};
use crate::rollout::controller::{RollbackSettings, RollbackTarget};
use crate::rollout::detector::FastChecks;
use crate::rollout::ledger::LATENCY_EDGES_MS;
use crate::rollout::settings::RolloutSettings;
use crate::rollout::slo::{Slo, SloKind, PPM};

/// `[rollout]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // documented key by key in config/cync-bridge.toml
pub struct RawRollout {
    pub mode: String,
    pub canary_percent: f64,
    pub cohort: Vec<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub hash_salt: String,
    pub shadow_legacy: bool,
    pub recent_commands: u64,
}

impl Default for RawRollout {
    fn default() -> Self {
        RawRollout {
            mode: String::new(),
            canary_percent: 0.0,
            cohort: Vec::new(),
            include: Vec::new(),
            exclude: Vec::new(),
            hash_salt: String::new(),
            shadow_legacy: false,
            recent_commands: 10_000,
        }
    }
}

/// `[slo]`: each objective's target is the percentage of good events.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // documented key by key in config/cync-bridge.toml
pub struct RawSlo {
    pub min_events: u64,
    pub success_target: f64,
    pub success_window: String,
    pub latency_target: f64,
    pub latency_limit: DurationText,
    pub latency_window: String,
    pub packet_loss_target: f64,
    pub packet_loss_window: String,
    pub decode_target: f64,
    pub decode_window: String,
    pub queue_full_target: f64,
    pub queue_full_window: String,
}

impl Default for RawSlo {
    fn default() -> Self {
        RawSlo {
            min_events: 20,
            success_target: 99.9,
            success_window: "30d".into(),
            latency_target: 99.0,
            latency_limit: "1500ms".into(),
            latency_window: "7d".into(),
            packet_loss_target: 99.0,
            packet_loss_window: "24h".into(),
            decode_target: 99.9,
            decode_window: "24h".into(),
            queue_full_target: 99.0,
            queue_full_window: "1h".into(),
        }
    }
}

/// `[rollback]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // documented key by key in config/cync-bridge.toml
pub struct RawRollback {
    pub enabled: bool,
    pub consecutive: u64,
    pub interval: DurationText,
    pub target: String,
    pub min_events: u64,
    pub window: DurationText,
    pub max_window: DurationText,
    pub success_min: f64,
    pub latency_min: f64,
    pub significance: f64,
}

impl Default for RawRollback {
    fn default() -> Self {
        RawRollback {
            enabled: true,
            consecutive: 3,
            interval: "60s".into(),
            target: "zero".into(),
            min_events: 20,
            window: "10m".into(),
            max_window: "24h".into(),
            success_min: 99.5,
            latency_min: 99.0,
            significance: crate::rollout::detector::DEFAULT_SIGNIFICANCE,
        }
    }
}

/// Name of the alias provider, as error messages show its origin.
pub(super) const ALIAS_ORIGIN: &str =
    "programme environment variables CANARY_PERCENTAGE / DARK_LAUNCH / CANARY_COHORT";

/// The programme's variables as a figment layer (merged between the file and `CYNC_*`).
pub(super) struct Aliases {
    values: Dict,
}

impl Aliases {
    /// Reads the aliases out of `vars`; `mode_set_by_env` is whether `CYNC_ROLLOUT__MODE` is set
    /// (then it decides the mode and the aliases only set the percentage and cohort).
    pub(super) fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Aliases {
        let mut percent = None;
        let mut dark = None;
        let mut cohort = None;
        let mut mode_set_by_env = false;
        for (name, value) in vars {
            match name.as_str() {
                "CANARY_PERCENTAGE" => percent = Some(value),
                "DARK_LAUNCH" => dark = Some(value),
                "CANARY_COHORT" => cohort = Some(value),
                n if n.eq_ignore_ascii_case("CYNC_ROLLOUT__MODE") => mode_set_by_env = true,
                _ => {}
            }
        }
        let mut rollout = Dict::new();
        if let Some(p) = &percent {
            let value = p
                .trim()
                .parse::<f64>()
                .map_or_else(|_| Value::from(p.clone()), Value::from);
            rollout.insert("canary_percent".into(), value);
        }
        if let Some(c) = &cohort {
            let ids: Vec<String> = c
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            rollout.insert("cohort".into(), Value::from(ids));
        }
        let dark =
            dark.map(|d| matches!(d.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"));
        let canary = percent.is_some() || cohort.is_some();
        if !mode_set_by_env {
            match (dark, canary) {
                (Some(true), false) => {
                    rollout.insert("mode".into(), Value::from("shadow"));
                }
                (_, true) => {
                    rollout.insert("mode".into(), Value::from("canary"));
                }
                _ => {}
            }
        }
        if dark == Some(true) && canary {
            rollout.insert("shadow_legacy".into(), Value::from(true));
        }
        let mut values = Dict::new();
        if !rollout.is_empty() {
            values.insert("rollout".into(), Value::from(rollout));
        }
        Aliases { values }
    }
}

impl Provider for Aliases {
    fn metadata(&self) -> Metadata {
        Metadata::named(ALIAS_ORIGIN)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Map::from([(Profile::Default, self.values.clone())]))
    }
}

/// Longest SLO window: the evidence kept (35 days).
const MAX_WINDOW_DAYS: f64 = 35.0;

/// An SLO window: `"30d"` as well as everything `parse_duration` takes, up to 35 days.
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Some(days) = t.strip_suffix('d') {
        let days: f64 = days
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a window (e.g. \"30d\", \"24h\", \"10m\")"))?;
        if !days.is_finite() || days <= 0.0 || days > MAX_WINDOW_DAYS {
            return Err(format!("{text:?} is not a window between 1m and 35d"));
        }
        return Ok(Duration::from_secs_f64(days * 86_400.0));
    }
    match parse_duration(t)? {
        d if d < Duration::from_secs(60) => Err(format!("{text:?} is shorter than a minute")),
        d => Ok(d),
    }
}

impl Check<'_> {
    fn percent_ppm(&self, key: &str, value: f64) -> Result<u32, ConfigError> {
        if !value.is_finite() || !(0.0..=100.0).contains(&value) {
            return Err(self.fail(key, format!("{value} is not a percentage from 0 to 100")));
        }
        // In range 0..=1 000 000 after the check.
        Ok((value * (PPM as f64) / 100.0).round() as u32)
    }

    fn window(&self, key: &str, text: &str) -> Result<Duration, ConfigError> {
        parse_window(text).map_err(|m| self.fail(key, m))
    }

    fn topic_ids(&self, key: &str, ids: &[String]) -> Result<BTreeSet<String>, ConfigError> {
        ids.iter()
            .map(|id| match EntityKey::parse(id.trim()) {
                Some(k) => Ok(k.to_string()),
                None => Err(self.fail(
                    key,
                    format!(
                        "{id:?} is not a device or group id as in the MQTT topics \
                         (e.g. \"1000-10\" or \"1000-group-32769\")"
                    ),
                )),
            })
            .collect()
    }

    pub(super) fn rollout(
        &self,
        r: &RawRollout,
        transport_mode: &str,
    ) -> Result<Configured, ConfigError> {
        let (key, text) = if r.mode.trim().is_empty() {
            ("transport.mode", transport_mode)
        } else {
            ("rollout.mode", r.mode.as_str())
        };
        let mode: Mode = text
            .parse()
            .map_err(|e: crate::rollout::control::BadMode| self.fail(key, e.to_string()))?;
        let share = Share::from_percent(r.canary_percent)
            .map_err(|e| self.fail("rollout.canary_percent", e.to_string()))?;
        Ok(Configured {
            mode,
            cohort: Cohort {
                share,
                salt: r.hash_salt.clone(),
                include: self.topic_ids("rollout.include", &r.include)?,
                exclude: self.topic_ids("rollout.exclude", &r.exclude)?,
                explicit: self.topic_ids("rollout.cohort", &r.cohort)?,
            },
            shadow_legacy: r.shadow_legacy,
        })
    }

    pub(super) fn slos(&self, r: &RawSlo) -> Result<Vec<Slo>, ConfigError> {
        let limit = self.duration("slo.latency_limit", &r.latency_limit)?;
        let limit_ms = u32::try_from(limit.as_millis()).unwrap_or(u32::MAX);
        if !LATENCY_EDGES_MS.contains(&limit_ms) {
            return Err(self.fail(
                "slo.latency_limit",
                format!(
                    "{limit_ms} ms is not an edge of the latency histogram (one of {:?} ms), so \
                     it could only be interpolated, not counted",
                    LATENCY_EDGES_MS
                ),
            ));
        }
        let slo = |name, kind, target_key: &str, target, window_key: &str, window: &str| {
            Ok(Slo {
                name,
                kind,
                target_ppm: self.percent_ppm(target_key, target)?,
                window: self.window(window_key, window)?,
            })
        };
        Ok(vec![
            slo(
                "command_success",
                SloKind::Success,
                "slo.success_target",
                r.success_target,
                "slo.success_window",
                &r.success_window,
            )?,
            slo(
                "command_latency",
                SloKind::Latency { limit_ms },
                "slo.latency_target",
                r.latency_target,
                "slo.latency_window",
                &r.latency_window,
            )?,
            slo(
                "packet_loss",
                SloKind::PacketLoss,
                "slo.packet_loss_target",
                r.packet_loss_target,
                "slo.packet_loss_window",
                &r.packet_loss_window,
            )?,
            slo(
                "decode_errors",
                SloKind::DecodeErrors,
                "slo.decode_target",
                r.decode_target,
                "slo.decode_window",
                &r.decode_window,
            )?,
            slo(
                "queue_full",
                SloKind::QueueFull,
                "slo.queue_full_target",
                r.queue_full_target,
                "slo.queue_full_window",
                &r.queue_full_window,
            )?,
        ])
    }

    pub(super) fn rollback(
        &self,
        r: &RawRollback,
        latency_limit_ms: u32,
    ) -> Result<RollbackSettings, ConfigError> {
        let target = match r.target.trim() {
            "zero" => RollbackTarget::Zero,
            "previous_stage" => RollbackTarget::PreviousStage,
            other => {
                return Err(self.fail(
                    "rollback.target",
                    format!(
                    "{other:?} is not a rollback target (expected \"zero\" or \"previous_stage\")"
                ),
                ))
            }
        };
        let consecutive = u32::try_from(r.consecutive)
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                self.fail(
                    "rollback.consecutive",
                    format!("{} is not a count from 1 to 100", r.consecutive),
                )
            })?;
        let interval = self.positive_duration("rollback.interval", &r.interval)?;
        if interval < Duration::from_secs(1) {
            return Err(self.fail("rollback.interval", "must be at least 1s"));
        }
        if !(r.significance > 0.0 && r.significance < 1.0) {
            return Err(self.fail(
                "rollback.significance",
                format!(
                    "{} is not a probability between 0 and 1 (exclusive)",
                    r.significance
                ),
            ));
        }
        let min_window = self.positive_duration("rollback.window", &r.window)?;
        let max_window = self.positive_duration("rollback.max_window", &r.max_window)?;
        if max_window < min_window {
            return Err(self.fail(
                "rollback.max_window",
                "must not be shorter than rollback.window",
            ));
        }
        Ok(RollbackSettings {
            enabled: r.enabled,
            consecutive,
            interval,
            target,
            checks: FastChecks {
                success_min_ppm: self.percent_ppm("rollback.success_min", r.success_min)?,
                fast_min_ppm: self.percent_ppm("rollback.latency_min", r.latency_min)?,
                latency_limit_ms,
                min_window,
                max_window,
                min_events: self.count("rollback.min_events", r.min_events)?.get() as u64,
                significance: r.significance,
            },
        })
    }

    pub(super) fn rollout_settings(
        &self,
        raw: &super::raw::RawConfig,
    ) -> Result<RolloutSettings, ConfigError> {
        let data_dir = std::path::Path::new(&raw.data_dir);
        let slos = self.slos(&raw.slo)?;
        let limit_ms = slos
            .iter()
            .find_map(|s| match s.kind {
                SloKind::Latency { limit_ms } => Some(limit_ms),
                _ => None,
            })
            .unwrap_or(1_500);
        Ok(RolloutSettings {
            configured: self.rollout(&raw.rollout, &raw.transport.mode)?,
            rollback: self.rollback(&raw.rollback, limit_ms)?,
            slos,
            slo_min_events: self.count("slo.min_events", raw.slo.min_events)?.get() as u64,
            store_path: crate::rollout::settings::store_path(data_dir),
            recent_commands: self
                .count("rollout.recent_commands", raw.rollout.recent_commands)?
                .get(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn rollout_of(a: &Aliases) -> Option<&Dict> {
        a.values.get("rollout").and_then(Value::as_dict)
    }

    #[test]
    fn canary_percentage_alone_means_canary_mode_and_dark_launch_means_shadow() {
        let a = Aliases::from_vars(vars(&[("CANARY_PERCENTAGE", "10")]));
        let r = rollout_of(&a).unwrap();
        assert_eq!(r.get("mode").and_then(Value::as_str), Some("canary"));
        assert_eq!(r.get("canary_percent").and_then(Value::to_f64), Some(10.0));
        let a = Aliases::from_vars(vars(&[("DARK_LAUNCH", "true")]));
        assert_eq!(
            rollout_of(&a).unwrap().get("mode").and_then(Value::as_str),
            Some("shadow")
        );
        let a = Aliases::from_vars(vars(&[("DARK_LAUNCH", "true"), ("CANARY_PERCENTAGE", "5")]));
        let r = rollout_of(&a).unwrap();
        assert_eq!(r.get("mode").and_then(Value::as_str), Some("canary"));
        assert_eq!(r.get("shadow_legacy").and_then(Value::to_bool), Some(true));
        let a = Aliases::from_vars(vars(&[("DARK_LAUNCH", "false")]));
        assert!(rollout_of(&a).is_none(), "nothing to say");
    }

    #[test]
    fn a_cync_mode_variable_wins_over_the_alias_mode() {
        let a = Aliases::from_vars(vars(&[
            ("CANARY_PERCENTAGE", "10"),
            ("CYNC_ROLLOUT__MODE", "legacy"),
        ]));
        let r = rollout_of(&a).unwrap();
        assert_eq!(r.get("mode"), None);
        let a = Aliases::from_vars(vars(&[("CANARY_COHORT", "1000-10, 1000-group-32769,")]));
        let cohort = rollout_of(&a).unwrap().get("cohort").unwrap();
        assert_eq!(cohort.as_array().map(|a| a.len()), Some(2));
    }

    #[test]
    fn windows_take_days_and_refuse_what_the_evidence_cannot_cover() {
        assert_eq!(parse_window("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_window("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse_window("36d").is_err());
        assert!(parse_window("30s").is_err());
        assert!(parse_window("soon").is_err());
    }
}
