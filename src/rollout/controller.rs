//! The controller's pure core: configuration, persisted changes and the judge, with time passed
//! in. The task around it does the I/O (store, metrics, MQTT) and calls [`Controller::evaluate`]
//! every `rollback.interval`.

use std::time::Duration;

use super::assign::Share;
use super::control::{effective, Configured, Effective, Latch, Mode, Persisted};
use super::detector::{evaluate, Evaluation, FastChecks, Judge, Verdict};
use super::ledger::{Ledger, UnixMinute};

/// Where a rollback sends devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackTarget {
    /// Every device to legacy.
    Zero,
    /// The previous stage of a staged plan; with no plan configured, the same as `zero`.
    PreviousStage,
}

/// `[rollback]`, validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RollbackSettings {
    /// Whether failing evaluations roll the canary back on their own.
    pub enabled: bool,
    /// Failing evaluations in a row that trip a rollback.
    pub consecutive: u32,
    /// Time between evaluations.
    pub interval: Duration,
    #[allow(missing_docs)]
    pub target: RollbackTarget,
    /// The fast checks evaluated.
    pub checks: FastChecks,
}

impl Default for RollbackSettings {
    fn default() -> Self {
        RollbackSettings {
            enabled: true,
            consecutive: 3,
            interval: Duration::from_secs(60),
            target: RollbackTarget::Zero,
            checks: FastChecks::default(),
        }
    }
}

/// A change asked for at runtime (Home Assistant, the CLI).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Request {
    /// Canary at this percentage (switches the mode to canary).
    SetPercent(f64),
    #[allow(missing_docs)]
    SetMode(Mode),
    /// Every device to legacy now, latched.
    Rollback,
    /// Clears a latched rollback.
    Resume,
}

/// A runtime change that cannot be applied.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// The percentage is not 0–100.
    #[error("rollout.canary_percent: {0}")]
    Percent(#[from] super::assign::BadPercent),
    /// Resume without a latched rollback.
    #[error("nothing to resume: no rollback is latched")]
    NotLatched,
}

/// A change of the effective routing, with the numbers that decided it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Transition {
    /// `rollback`, `resume`, `set_percent`, `set_mode`.
    pub kind: &'static str,
    /// `manual`, `runtime`, or the failing check's `slo_name`.
    pub reason: String,
    /// One sentence for people.
    pub detail: String,
    #[allow(missing_docs)]
    pub from_percent: f64,
    #[allow(missing_docs)]
    pub to_percent: f64,
    #[allow(missing_docs)]
    pub at_unix_ms: u64,
}

/// Why an evaluation did not count towards a rollback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// A rollback is latched; nothing is evaluated until resume.
    Latched,
    /// Only a canary has a reliable cohort to judge against a legacy one.
    NotCanary,
    /// `rollback.enabled = false`.
    Disabled,
    /// The evidence store is unavailable: no promotion, no rollback on missing evidence.
    NoEvidence,
}

impl Hold {
    #[allow(missing_docs)]
    pub fn as_str(self) -> &'static str {
        match self {
            Hold::Latched => "rollback latched",
            Hold::NotCanary => "not a canary",
            Hold::Disabled => "automatic rollback disabled",
            Hold::NoEvidence => "evidence store unavailable",
        }
    }
}

/// What one evaluation did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Step {
    #[allow(missing_docs)]
    pub evaluation: Evaluation,
    /// Set when the evaluation was not allowed to count.
    pub hold: Option<Hold>,
    /// Failing evaluations in a row after this one.
    pub failing: u32,
    /// A rollback this evaluation tripped.
    pub rollback: Option<Transition>,
}

/// The rollout controller's state.
#[derive(Clone, Debug)]
pub struct Controller {
    configured: Configured,
    persisted: Persisted,
    settings: RollbackSettings,
    judge: Judge,
}

impl Controller {
    /// A controller resuming from what was persisted.
    pub fn new(configured: Configured, persisted: Persisted, settings: RollbackSettings) -> Self {
        Controller {
            configured,
            persisted,
            judge: Judge::new(settings.consecutive),
            settings,
        }
    }

    /// The routing in force.
    pub fn effective(&self) -> Effective {
        effective(&self.configured, &self.persisted)
    }

    /// What the task stores.
    pub fn persisted(&self) -> &Persisted {
        &self.persisted
    }

    #[allow(missing_docs)]
    pub fn settings(&self) -> &RollbackSettings {
        &self.settings
    }

    /// Applies a runtime change. A latched rollback still wins over a new percentage or mode:
    /// they are kept and take effect on resume.
    pub fn apply(
        &mut self,
        request: Request,
        now_unix_ms: u64,
    ) -> Result<Transition, RequestError> {
        let before = self.effective().percent();
        let (kind, reason) = match request {
            Request::SetPercent(pct) => {
                let share = Share::from_percent(pct)?;
                self.persisted.basis_points = Some(share.basis_points());
                self.persisted.mode = Some(Mode::Canary);
                ("set_percent", "runtime".to_string())
            }
            Request::SetMode(mode) => {
                self.persisted.mode = Some(mode);
                ("set_mode", "runtime".to_string())
            }
            Request::Rollback => {
                self.latch(
                    "manual".into(),
                    "rolled back by hand".into(),
                    before,
                    now_unix_ms,
                );
                ("rollback", "manual".to_string())
            }
            Request::Resume => {
                if self.persisted.latch.take().is_none() {
                    return Err(RequestError::NotLatched);
                }
                ("resume", "manual".to_string())
            }
        };
        self.judge.reset();
        let after = self.effective().percent();
        let detail = self.describe(kind, before, after);
        Ok(Transition {
            kind,
            reason,
            detail,
            from_percent: before,
            to_percent: after,
            at_unix_ms: now_unix_ms,
        })
    }

    fn describe(&self, kind: &str, before: f64, after: f64) -> String {
        let e = self.effective();
        let latched = if e.latched {
            " (a rollback is latched: resume to apply)"
        } else {
            ""
        };
        format!(
            "{kind}: mode {}, reliable share {before} % → {after} %{latched}",
            e.mode
        )
    }

    fn latch(&mut self, reason: String, detail: String, from_percent: f64, now_unix_ms: u64) {
        if self.persisted.latch.is_some() {
            return;
        }
        let latch = Latch {
            at_unix_ms: now_unix_ms,
            reason,
            detail,
            from_percent,
        };
        let history = &mut self.persisted.history;
        history.push(latch.clone());
        if history.len() > super::control::HISTORY {
            history.remove(0);
        }
        self.persisted.latch = Some(latch);
    }

    /// Latches a canary on legacy when the evidence store could not say whether a rollback was
    /// latched before this start (its file missing, corrupt or locked): a restart must never
    /// silently re-enable a canary that rolled back. Outside canary mode there is nothing to
    /// protect and nothing changes.
    pub fn hold_unknown_latch(&mut self, now_unix_ms: u64) {
        let e = self.effective();
        if e.mode == Mode::Canary && !e.latched {
            tracing::warn!(
                "the rollout store could not be read: the canary stays on legacy until resumed"
            );
            self.latch(
                "evidence_lost".into(),
                "the evidence store could not be read at start, so an earlier rollback cannot be                  ruled out; resume to re-enable the canary"
                    .into(),
                e.percent(),
                now_unix_ms,
            );
        }
    }

    /// Evaluates the fast checks at `now_unix_ms`; `evidence_ok` is false when the store cannot
    /// keep the counts (then nothing may change on their account).
    pub fn evaluate(&mut self, ledger: &Ledger, now_unix_ms: u64, evidence_ok: bool) -> Step {
        let now = UnixMinute::from_unix_ms(now_unix_ms);
        let evaluation = evaluate(ledger, now, &self.settings.checks);
        let e = self.effective();
        let hold = if e.latched {
            Some(Hold::Latched)
        } else if e.mode != Mode::Canary {
            Some(Hold::NotCanary)
        } else if !self.settings.enabled {
            Some(Hold::Disabled)
        } else if !evidence_ok {
            Some(Hold::NoEvidence)
        } else {
            None
        };
        let mut rollback = None;
        if hold.is_some() {
            self.judge.reset();
        } else if self.judge.observe(&evaluation.verdict) {
            rollback = Some(self.trip(&evaluation, now_unix_ms));
        }
        Step {
            hold,
            failing: self.judge.failing(),
            rollback,
            evaluation,
        }
    }

    fn trip(&mut self, evaluation: &Evaluation, now_unix_ms: u64) -> Transition {
        let before = self.effective().percent();
        let (reason, detail) = match (evaluation.verdict, evaluation.deciding()) {
            (Verdict::Fail { check }, Some(c)) => (
                check.slo_name().to_string(),
                format!(
                    "{} failing evaluations in a row: reliable {}/{} good ({:.2} %, target {:.2} %) \
                     over {} min against legacy {}/{} ({:.2} %), p = {:.2e}",
                    self.settings.consecutive,
                    c.reliable.good,
                    c.reliable.total,
                    c.reliable.fraction().unwrap_or(0.0) * 100.0,
                    f64::from(c.target_ppm) / 10_000.0,
                    evaluation.window_minutes,
                    c.legacy.good,
                    c.legacy.total,
                    c.legacy.fraction().unwrap_or(0.0) * 100.0,
                    c.p_value.unwrap_or(1.0),
                ),
            ),
            _ => ("unknown".to_string(), "failing evaluations".to_string()),
        };
        self.latch(reason.clone(), detail.clone(), before, now_unix_ms);
        Transition {
            kind: "rollback",
            reason,
            detail,
            from_percent: before,
            to_percent: self.effective().percent(),
            at_unix_ms: now_unix_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::assign::Cohort;
    use crate::rollout::ledger::{Ended, MinuteCounts, Series};
    use crate::transport::CommandOutcome;

    const MINUTE_MS: u64 = 60_000;
    const T0: u64 = 1_800_000_000_000;

    fn canary(percent: f64) -> Controller {
        let configured = Configured {
            mode: Mode::Canary,
            cohort: Cohort {
                share: Share::from_percent(percent).unwrap(),
                ..Cohort::default()
            },
            shadow_legacy: false,
        };
        Controller::new(
            configured,
            Persisted::default(),
            RollbackSettings::default(),
        )
    }

    fn add(ledger: &mut Ledger, series: Series, at_ms: u64, outcome: CommandOutcome, n: u32) {
        let counts = MinuteCounts::of(&Ended {
            outcome,
            latency: Duration::from_millis(200),
            attempts: 1,
            queue_full: false,
        });
        for _ in 0..n {
            ledger.add(series, UnixMinute::from_unix_ms(at_ms), &counts);
        }
    }

    /// Each minute: `reliable_bad` failing reliable commands (and one good), 10 good legacy.
    fn minute(ledger: &mut Ledger, at_ms: u64, reliable_bad: u32) {
        add(ledger, Series::Reliable, at_ms, CommandOutcome::Success, 1);
        add(
            ledger,
            Series::Reliable,
            at_ms,
            CommandOutcome::Timeout,
            reliable_bad,
        );
        add(ledger, Series::Legacy, at_ms, CommandOutcome::Success, 10);
    }

    #[test]
    fn rollback_comes_exactly_at_the_third_failing_evaluation() {
        let mut c = canary(10.0);
        let mut ledger = Ledger::default();
        for m in 0..30 {
            minute(&mut ledger, T0 + m * MINUTE_MS, 0);
        }
        let mut now = T0 + 30 * MINUTE_MS;
        for expected_failing in [1, 2] {
            minute(&mut ledger, now, 5);
            let step = c.evaluate(&ledger, now, true);
            assert_eq!(step.hold, None);
            assert!(matches!(step.evaluation.verdict, Verdict::Fail { .. }));
            assert_eq!(step.failing, expected_failing);
            assert!(step.rollback.is_none(), "not after {expected_failing}");
            now += MINUTE_MS;
        }
        minute(&mut ledger, now, 5);
        let step = c.evaluate(&ledger, now, true);
        let rollback = step.rollback.expect("third failing evaluation rolls back");
        assert_eq!(rollback.reason, "command_success");
        assert_eq!((rollback.from_percent, rollback.to_percent), (10.0, 0.0));
        assert!(c.effective().latched);
        assert_eq!(
            c.evaluate(&ledger, now + MINUTE_MS, true).hold,
            Some(Hold::Latched)
        );
        c.apply(Request::Resume, now).unwrap();
        assert_eq!(
            c.effective().percent(),
            10.0,
            "resume restores the percentage"
        );
    }

    #[test]
    fn missing_evidence_and_a_disabled_rollback_hold() {
        let mut ledger = Ledger::default();
        let mut now = T0;
        let mut c = canary(10.0);
        for _ in 0..5 {
            minute(&mut ledger, now, 5);
            let step = c.evaluate(&ledger, now, false);
            assert_eq!(step.hold, Some(Hold::NoEvidence));
            assert!(step.rollback.is_none());
            now += MINUTE_MS;
        }
        let settings = RollbackSettings {
            enabled: false,
            ..RollbackSettings::default()
        };
        let mut off = Controller::new(c.configured.clone(), Persisted::default(), settings);
        for _ in 0..5 {
            minute(&mut ledger, now, 5);
            assert!(off.evaluate(&ledger, now, true).rollback.is_none());
            now += MINUTE_MS;
        }
    }

    #[test]
    fn a_latch_survives_being_persisted_and_loaded() {
        let mut c = canary(25.0);
        c.apply(Request::Rollback, T0).unwrap();
        let json = serde_json::to_string(c.persisted()).unwrap();
        let loaded: Persisted = serde_json::from_str(&json).unwrap();
        let restarted = Controller::new(c.configured.clone(), loaded, RollbackSettings::default());
        assert!(restarted.effective().latched);
        assert_eq!(restarted.effective().percent(), 0.0);
    }

    #[test]
    fn a_bad_percentage_is_refused_with_the_key_named() {
        let mut c = canary(10.0);
        for bad in [-1.0, 101.0, f64::NAN] {
            let err = c.apply(Request::SetPercent(bad), T0).unwrap_err();
            assert!(
                err.to_string().starts_with("rollout.canary_percent"),
                "{err}"
            );
        }
        assert_eq!(c.effective().percent(), 10.0, "unchanged");
        assert_eq!(c.apply(Request::Resume, T0), Err(RequestError::NotLatched));
    }
}
