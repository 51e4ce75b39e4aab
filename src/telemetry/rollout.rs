//! The rollout controller's metrics: which path commands took, the effective canary share, SLO
//! compliance, error budgets, burn rates, rollbacks and what shadow mode observed.
//!
//! Names kept from the original programme: `tcp_comm_canary_percentage`,
//! `tcp_comm_routing_decision_total{transport}`, `tcp_comm_slo_compliance{slo_name}`,
//! `tcp_comm_error_budget_remaining{slo_name}`, `tcp_comm_rollback_total{reason}`. Every label is a
//! fixed vocabulary (modes, SLO names, windows, transports, verdicts); none is per device.
//! Float-valued gauges (budgets, burn rates, percentages) use the exporter's gauges directly.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, KeyName, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::PrometheusRecorder;

use super::families::{single, Family};
use super::vocabulary as vocab;

const CANARY_PERCENTAGE: &str = "tcp_comm_canary_percentage";
const ROLLOUT_MODE: &str = "tcp_comm_rollout_mode";
const ROUTING_DECISION: &str = "tcp_comm_routing_decision_total";
const SLO_COMPLIANCE: &str = "tcp_comm_slo_compliance";
const SLO_INSUFFICIENT: &str = "tcp_comm_slo_insufficient_data";
const BUDGET_REMAINING: &str = "tcp_comm_error_budget_remaining";
const BURN_RATE: &str = "tcp_comm_slo_burn_rate";
const ROLLBACK: &str = "tcp_comm_rollback_total";
const ROLLBACK_LATCHED: &str = "tcp_comm_rollback_latched";
const EVALUATIONS: &str = "tcp_comm_rollout_evaluations_total";
const FAILING_EVALUATIONS: &str = "tcp_comm_rollout_failing_evaluations";
const SHADOW_OBSERVED: &str = "tcp_comm_shadow_outcome_total";
const SHADOW_WOULD_RETRY: &str = "tcp_comm_shadow_would_retry_total";
const SHADOW_WOULD_FAILOVER: &str = "tcp_comm_shadow_would_failover_total";
const SHADOW_RECEIPT_LATENCY: &str = "tcp_comm_shadow_receipt_latency_seconds";
const SHADOW_RESPONSE_LATENCY: &str = "tcp_comm_shadow_response_latency_seconds";

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

const DESCRIPTIONS: [(&str, Kind, &str); 16] = [
    (CANARY_PERCENTAGE, Kind::Gauge, "Effective share of devices on the reliable path, 0-100 (0 after a rollback and in legacy or shadow mode, 100 in reliable mode)."),
    (ROLLOUT_MODE, Kind::Gauge, "1 for the rollout mode in force (legacy, shadow, canary, reliable), 0 for the others."),
    (ROUTING_DECISION, Kind::Counter, "Commands routed by the rollout controller, by the transport chosen."),
    (SLO_COMPLIANCE, Kind::Gauge, "1 when the SLO is met over its window, 0 when violated or without enough events, by SLO and transport."),
    (SLO_INSUFFICIENT, Kind::Gauge, "1 when the SLO's window holds fewer events than the minimum, by SLO and transport."),
    (BUDGET_REMAINING, Kind::Gauge, "Error budget left over the SLO's window, 0-1, by SLO and transport."),
    (BURN_RATE, Kind::Gauge, "Bad fraction over the window divided by the allowed fraction, reliable path, by SLO and window."),
    (ROLLBACK, Kind::Counter, "Rollbacks of the canary to legacy, by reason (manual, or the failing SLO)."),
    (ROLLBACK_LATCHED, Kind::Gauge, "1 while a rollback holds every device on the legacy path."),
    (EVALUATIONS, Kind::Counter, "Automatic-rollback evaluations, by verdict."),
    (FAILING_EVALUATIONS, Kind::Gauge, "Failing automatic-rollback evaluations in a row."),
    (SHADOW_OBSERVED, Kind::Counter, "Legacy commands observed by shadow mode, by outcome."),
    (SHADOW_WOULD_RETRY, Kind::Counter, "Legacy commands the reliable path would have retried (no confirmation within its attempt timeout)."),
    (SHADOW_WOULD_FAILOVER, Kind::Counter, "Legacy commands the reliable path would have retried through another relay."),
    (SHADOW_RECEIPT_LATENCY, Kind::Histogram, "Time from sending a legacy command to its 0x7B receipt, observed by shadow mode."),
    (SHADOW_RESPONSE_LATENCY, Kind::Histogram, "Time from sending a legacy command to its confirmation, observed by shadow mode."),
];

/// Handles of the rollout families; reached through `Metrics::rollout`.
pub struct RolloutMetrics {
    canary_percentage: Gauge,
    mode: Family<Gauge>,
    routing: Family<Counter>,
    compliance: Family<Gauge>,
    insufficient: Family<Gauge>,
    budget: Family<Gauge>,
    burn: Family<Gauge>,
    rollback: Family<Counter>,
    latched: Gauge,
    evaluations: Family<Counter>,
    failing: Gauge,
    shadow: Family<Counter>,
    would_retry: Counter,
    would_failover: Counter,
    receipt_latency: Histogram,
    response_latency: Histogram,
}

/// The rollout families with the recorder they register on; from `Metrics::rollout`.
pub struct Rollout<'a> {
    pub(crate) families: &'a RolloutMetrics,
    pub(crate) recorder: &'a PrometheusRecorder,
}

impl std::fmt::Debug for RolloutMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutMetrics").finish_non_exhaustive()
    }
}

fn describe(recorder: &PrometheusRecorder) {
    for (name, kind, help) in DESCRIPTIONS {
        let (key, help) = (KeyName::from_const_str(name), SharedString::const_str(help));
        match kind {
            Kind::Counter => recorder.describe_counter(key, Some(Unit::Count), help),
            Kind::Gauge => recorder.describe_gauge(key, None, help),
            Kind::Histogram => recorder.describe_histogram(key, Some(Unit::Seconds), help),
        }
    }
}

impl RolloutMetrics {
    /// Registers every family on `recorder` (the bridge's own, per `Metrics`), fixed vocabularies
    /// at zero.
    pub(crate) fn new(recorder: &PrometheusRecorder) -> RolloutMetrics {
        describe(recorder);
        let r = recorder;
        let m = RolloutMetrics {
            canary_percentage: single(r, CANARY_PERCENTAGE),
            mode: Family::new(ROLLOUT_MODE, "mode", None, None),
            routing: Family::new(ROUTING_DECISION, "transport", None, None),
            compliance: Family::new(SLO_COMPLIANCE, "slo_name", Some("transport"), None),
            insufficient: Family::new(SLO_INSUFFICIENT, "slo_name", Some("transport"), None),
            budget: Family::new(BUDGET_REMAINING, "slo_name", Some("transport"), None),
            burn: Family::new(BURN_RATE, "slo_name", Some("window"), None),
            rollback: Family::new(ROLLBACK, "reason", None, None),
            latched: single(r, ROLLBACK_LATCHED),
            evaluations: Family::new(EVALUATIONS, "verdict", None, None),
            failing: single(r, FAILING_EVALUATIONS),
            shadow: Family::new(SHADOW_OBSERVED, "outcome", None, None),
            would_retry: single(r, SHADOW_WOULD_RETRY),
            would_failover: single(r, SHADOW_WOULD_FAILOVER),
            receipt_latency: single(r, SHADOW_RECEIPT_LATENCY),
            response_latency: single(r, SHADOW_RESPONSE_LATENCY),
        };
        m.mode.init(r, vocab::ROLLOUT_MODES, &[""]);
        m.routing.init(r, vocab::TRANSPORTS, &[""]);
        m.rollback.init(r, vocab::ROLLBACK_REASONS, &[""]);
        m.evaluations.init(r, vocab::ROLLOUT_VERDICTS, &[""]);
        m.shadow.init(r, vocab::COMMAND_OUTCOMES, &[""]);
        m
    }

    /// The family names, for the vocabulary and dashboard tests.
    pub fn family_names() -> impl Iterator<Item = &'static str> {
        DESCRIPTIONS.iter().map(|(name, _, _)| *name)
    }
}

impl Rollout<'_> {
    /// One command routed to `transport`.
    pub fn routed(&self, transport: &'static str) {
        self.families
            .routing
            .with(self.recorder, transport, "", |c| c.increment(1));
    }

    /// The effective share and mode.
    pub fn routing_state(&self, percent: f64, mode: &'static str, latched: bool) {
        self.families.canary_percentage.set(percent);
        for m in vocab::ROLLOUT_MODES {
            let value = if *m == mode { 1.0 } else { 0.0 };
            self.families
                .mode
                .with(self.recorder, m, "", |g| g.set(value));
        }
        self.families.latched.set(if latched { 1.0 } else { 0.0 });
    }

    /// One SLO's standing for one transport; `compliant` `None` = insufficient data.
    pub fn slo(
        &self,
        slo_name: &str,
        transport: &'static str,
        compliant: Option<bool>,
        budget: f64,
    ) {
        let r = self.recorder;
        let met = if compliant == Some(true) { 1.0 } else { 0.0 };
        let short = if compliant.is_none() { 1.0 } else { 0.0 };
        self.families
            .compliance
            .with(r, slo_name, transport, |g| g.set(met));
        self.families
            .insufficient
            .with(r, slo_name, transport, |g| g.set(short));
        self.families
            .budget
            .with(r, slo_name, transport, |g| g.set(budget));
    }

    /// One burn rate of the reliable path.
    pub fn burn_rate(&self, slo_name: &str, window: &'static str, rate: f64) {
        self.families
            .burn
            .with(self.recorder, slo_name, window, |g| g.set(rate));
    }

    /// One evaluation with its verdict, and the failing count after it.
    pub fn evaluated(&self, verdict: &'static str, failing: u32) {
        self.families
            .evaluations
            .with(self.recorder, verdict, "", |c| c.increment(1));
        self.families.failing.set(f64::from(failing));
    }

    /// One rollback.
    pub fn rolled_back(&self, reason: &str) {
        self.families
            .rollback
            .with(self.recorder, reason, "", |c| c.increment(1));
    }

    /// One legacy command observed by shadow mode.
    pub fn shadow(
        &self,
        outcome: &'static str,
        would_retry: bool,
        would_failover: bool,
        receipt: Option<Duration>,
        response: Option<Duration>,
    ) {
        self.families
            .shadow
            .with(self.recorder, outcome, "", |c| c.increment(1));
        if would_retry {
            self.families.would_retry.increment(1);
        }
        if would_failover {
            self.families.would_failover.increment(1);
        }
        if let Some(d) = receipt {
            self.families.receipt_latency.record(d.as_secs_f64());
        }
        if let Some(d) = response {
            self.families.response_latency.record(d.as_secs_f64());
        }
    }
}
