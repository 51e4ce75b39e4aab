//! What the controller shows: one document for Home Assistant's sensors, `rollout status`, the
//! admin endpoint and `slo report` — mode, effective share, latch, the last evaluation with its
//! numbers, every SLO's budget and burn rates per path, and whether the evidence is being kept.

use super::control::{Latch, Mode};
use super::controller::{Controller, Hold, Step, Transition};
use super::detector::Evaluation;
use super::ledger::{Ledger, Series, UnixMinute};
use super::settings::RolloutSettings;
use super::slo::{latency_quantile, minutes, status, SloStatus};

/// Latency percentiles of confirmed commands over the latency SLO's window, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    #[allow(missing_docs)]
    pub series: Option<Series>,
    #[allow(missing_docs)]
    pub p50_ms: Option<f64>,
    #[allow(missing_docs)]
    pub p95_ms: Option<f64>,
    #[allow(missing_docs)]
    pub p99_ms: Option<f64>,
}

/// Whether the evidence store is keeping counts.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct StoreView {
    #[allow(missing_docs)]
    pub healthy: bool,
    /// What is wrong and what to do, when not healthy.
    pub reason: Option<String>,
}

/// The controller's state for people.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Status {
    /// The mode in force (after runtime changes).
    pub mode: Option<Mode>,
    /// The mode configuration asks for.
    pub configured_mode: Option<Mode>,
    /// Share of devices on the reliable path now (0 after a rollback).
    pub effective_percent: f64,
    /// The canary percentage set (what resume returns to).
    pub canary_percent: f64,
    /// Whether legacy commands are observed by the shadow engine.
    pub shadow: bool,
    /// Whether failing evaluations roll back on their own.
    pub rollback_enabled: bool,
    /// A latched rollback.
    pub latch: Option<Latch>,
    /// Why evaluations do not count right now.
    pub hold: Option<&'static str>,
    /// Failing evaluations in a row, and how many trip a rollback.
    pub failing: u32,
    #[allow(missing_docs)]
    pub consecutive: u32,
    /// The last evaluation of the fast checks.
    pub evaluation: Option<Evaluation>,
    /// The last change of routing.
    pub last_transition: Option<Transition>,
    /// Every SLO for each path that has evidence.
    pub slos: Vec<SloStatus>,
    /// Latency percentiles per path.
    pub latency: Vec<Percentiles>,
    #[allow(missing_docs)]
    pub store: StoreView,
}

/// What a status is built from.
pub struct Inputs<'a> {
    #[allow(missing_docs)]
    pub settings: &'a RolloutSettings,
    #[allow(missing_docs)]
    pub controller: &'a Controller,
    #[allow(missing_docs)]
    pub ledger: &'a Ledger,
    #[allow(missing_docs)]
    pub now: UnixMinute,
    #[allow(missing_docs)]
    pub last_step: Option<&'a Step>,
    #[allow(missing_docs)]
    pub last_transition: Option<&'a Transition>,
    #[allow(missing_docs)]
    pub store: StoreView,
}

impl Status {
    /// The status at `inputs.now`.
    pub fn build(inputs: &Inputs<'_>) -> Status {
        let effective = inputs.controller.effective();
        let persisted = inputs.controller.persisted();
        let series = reported_series(inputs.ledger, inputs.now, inputs.settings);
        let slos = series
            .iter()
            .flat_map(|s| {
                inputs.settings.slos.iter().map(|slo| {
                    status(
                        inputs.ledger,
                        slo,
                        *s,
                        inputs.now,
                        inputs.settings.slo_min_events,
                    )
                })
            })
            .collect();
        let latency_window = inputs
            .settings
            .slos
            .iter()
            .find(|s| s.name == "command_latency")
            .map_or(7 * 24 * 60, |s| minutes(s.window));
        let latency = series
            .iter()
            .map(|s| {
                let totals = inputs.ledger.window(*s, inputs.now, latency_window);
                let q = |p| latency_quantile(&totals, p).map(|d| d.as_secs_f64() * 1000.0);
                Percentiles {
                    series: Some(*s),
                    p50_ms: q(0.5),
                    p95_ms: q(0.95),
                    p99_ms: q(0.99),
                }
            })
            .collect();
        let hold = inputs.last_step.and_then(|s| s.hold).map(Hold::as_str);
        Status {
            mode: Some(effective.mode),
            configured_mode: Some(inputs.settings.configured.mode),
            effective_percent: effective.percent(),
            canary_percent: effective.cohort.share.percent(),
            shadow: effective.shadow && !effective.latched,
            rollback_enabled: inputs.settings.rollback.enabled,
            latch: persisted.latch.clone(),
            hold,
            failing: inputs.last_step.map_or(0, |s| s.failing),
            consecutive: inputs.settings.rollback.consecutive,
            evaluation: inputs.last_step.map(|s| s.evaluation.clone()),
            last_transition: inputs.last_transition.cloned(),
            slos,
            latency,
            store: inputs.store.clone(),
        }
    }

    /// The remaining budget of `slo_name` on `series`, if reported.
    pub fn budget(&self, slo_name: &str, series: Series) -> Option<f64> {
        self.slos
            .iter()
            .find(|s| s.slo.name == slo_name && s.series == series)
            .map(|s| s.budget_remaining)
    }
}

/// Legacy and reliable always (so a dashboard never loses a series); shadow once it has evidence.
fn reported_series(ledger: &Ledger, now: UnixMinute, settings: &RolloutSettings) -> Vec<Series> {
    let longest = settings
        .slos
        .iter()
        .map(|s| minutes(s.window))
        .max()
        .unwrap_or(1);
    let mut series = vec![Series::Legacy, Series::Reliable];
    if ledger.window(Series::Shadow, now, longest).commands.ended() > 0 {
        series.push(Series::Shadow);
    }
    series
}

/// The static label of a burn-rate window name.
pub fn burn_label(window: &str) -> Option<&'static str> {
    ["5m", "30m", "1h", "6h", "3d"]
        .into_iter()
        .find(|w| *w == window)
}
