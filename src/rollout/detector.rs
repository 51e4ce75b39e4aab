//! The fast checks behind automatic rollback, judged like a statistician.
//!
//! Every evaluation looks at the reliable cohort over the longer of the last `min_window` and the
//! last `min_events` reliable commands (whole minutes), capped at `max_window`: a house sends a
//! few hundred commands a day, so a fixed 10-minute window would almost never hold 20. Fewer than
//! `min_events` even then is "insufficient data", which neither passes nor fails.
//!
//! A check that misses its threshold (success ≥ 99.5 %, confirmed within 1.5 s ≥ 99 %) is then
//! compared with the legacy cohort over the same minutes. At home scale one failure in twenty
//! commands already misses 99.5 %, and legacy fails about as often, so a threshold alone would
//! roll back healthy canaries every week. The comparison is Fisher's exact test, one-sided:
//! given all the bad commands of both cohorts in the window, how likely is it that the reliable
//! cohort holds at least this many of them if both paths were equally good? Only when that
//! probability is below `significance` is the evaluation a failure; otherwise the legacy cohort
//! fails as badly and it is a house-wide problem (a relay offline, Wi-Fi down) — paused, not
//! blamed on the new path. Without enough legacy commands in the window to compare with (after
//! widening legacy's own window up to `max_window`), the evaluation is insufficient data.
//!
//! [`Judge`] turns evaluations into a rollback: `consecutive` failing evaluations in a row trip
//! it; anything else (pass, pause, insufficient data) resets the count.

use std::time::Duration;

use super::ledger::{Ledger, Series, UnixMinute};
use super::slo::{good_and_total, minutes, Ratio, SloKind};

/// Thresholds and windows of the fast checks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FastChecks {
    /// Minimum success ratio, ppm (995 000 = 99.5 %).
    pub success_min_ppm: u32,
    /// Minimum ratio confirmed within `latency_limit_ms`, ppm.
    pub fast_min_ppm: u32,
    /// An edge of the ledger's latency histogram.
    pub latency_limit_ms: u32,
    /// Shortest window looked at.
    pub min_window: Duration,
    /// Longest window looked at.
    pub max_window: Duration,
    /// Reliable (and legacy) commands needed for a verdict.
    pub min_events: u64,
    /// One-sided p-value below which the reliable cohort is judged worse than legacy.
    pub significance: f64,
}

impl Default for FastChecks {
    fn default() -> Self {
        FastChecks {
            success_min_ppm: 995_000,
            fast_min_ppm: 990_000,
            latency_limit_ms: 1_500,
            min_window: Duration::from_secs(10 * 60),
            max_window: Duration::from_secs(24 * 3600),
            min_events: 20,
            significance: DEFAULT_SIGNIFICANCE,
        }
    }
}

/// Chosen with `benches/rollout_detector.rs` (the curves are in `docs/rollout.md`): low enough
/// that a reliable path exactly as good as legacy rolls back in well under 1 % of simulated
/// 30-day runs at 500 and 5 000 commands a day.
pub const DEFAULT_SIGNIFICANCE: f64 = 0.001;

/// Which fast check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Success ratio.
    Success,
    /// Confirmed-within-limit ratio.
    Latency,
}

impl Check {
    /// The `slo_name` a rollback is reported under.
    pub fn slo_name(self) -> &'static str {
        match self {
            Check::Success => "command_success",
            Check::Latency => "command_latency",
        }
    }
}

/// One check's numbers in one evaluation.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct CheckResult {
    #[allow(missing_docs)]
    pub check: Check,
    /// The reliable cohort over the window.
    pub reliable: Ratio,
    /// The legacy cohort over its comparison window.
    pub legacy: Ratio,
    /// The threshold, ppm.
    pub target_ppm: u32,
    /// Fisher's one-sided p-value, when the threshold was missed and legacy could be compared.
    pub p_value: Option<f64>,
}

/// What an evaluation concluded.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Both checks met their thresholds.
    Pass,
    /// Too few reliable (or legacy) commands even over the longest window.
    Insufficient {
        /// Reliable commands seen.
        reliable_events: u64,
        /// Legacy commands seen.
        legacy_events: u64,
    },
    /// A threshold was missed but legacy did as badly: a house-wide problem.
    HouseWide {
        /// The check that missed.
        check: Check,
    },
    /// The reliable cohort is worse than its threshold and worse than legacy.
    Fail {
        /// The check that failed.
        check: Check,
    },
}

/// One evaluation.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Evaluation {
    #[allow(missing_docs)]
    pub verdict: Verdict,
    /// Minutes of reliable evidence looked at.
    pub window_minutes: u32,
    /// Per check, in order success then latency.
    pub checks: Vec<CheckResult>,
}

impl Evaluation {
    /// The result of the check the verdict names, if it names one.
    pub fn deciding(&self) -> Option<&CheckResult> {
        let check = match self.verdict {
            Verdict::Fail { check } | Verdict::HouseWide { check } => check,
            _ => return None,
        };
        self.checks.iter().find(|c| c.check == check)
    }
}

fn ratio(ledger: &Ledger, series: Series, kind: SloKind, now: UnixMinute, mins: u32) -> Ratio {
    let (good, total) = good_and_total(kind, &ledger.window(series, now, mins));
    Ratio { good, total }
}

/// Evaluates the fast checks at `now`.
pub fn evaluate(ledger: &Ledger, now: UnixMinute, checks: &FastChecks) -> Evaluation {
    let max = minutes(checks.max_window);
    let min = minutes(checks.min_window).min(max);
    let needed = checks.min_events;
    let window = ledger
        .minutes_for_events(Series::Reliable, now, needed, max)
        .map(|m| m.max(min));
    let legacy_window = window.map(|w| {
        ledger
            .minutes_for_events(Series::Legacy, now, needed, max)
            .map_or(max, |m| m.max(w))
    });
    let (Some(window), Some(legacy_window)) = (window, legacy_window) else {
        return insufficient(ledger, now, max);
    };
    let kinds = [
        (Check::Success, SloKind::Success, checks.success_min_ppm),
        (
            Check::Latency,
            SloKind::Latency {
                limit_ms: checks.latency_limit_ms,
            },
            checks.fast_min_ppm,
        ),
    ];
    let mut results = Vec::with_capacity(2);
    for (check, kind, target_ppm) in kinds {
        let reliable = ratio(ledger, Series::Reliable, kind, now, window);
        let legacy = ratio(ledger, Series::Legacy, kind, now, legacy_window);
        let p_value = (!reliable.meets(target_ppm) && legacy.total >= needed)
            .then(|| fisher_worse(reliable, legacy));
        results.push(CheckResult {
            check,
            reliable,
            legacy,
            target_ppm,
            p_value,
        });
    }
    let verdict = verdict(&results, checks, needed);
    Evaluation {
        verdict,
        window_minutes: window,
        checks: results,
    }
}

fn insufficient(ledger: &Ledger, now: UnixMinute, max: u32) -> Evaluation {
    let events = |s| ledger.window(s, now, max).commands.events();
    Evaluation {
        verdict: Verdict::Insufficient {
            reliable_events: events(Series::Reliable),
            legacy_events: events(Series::Legacy),
        },
        window_minutes: max,
        checks: Vec::new(),
    }
}

fn verdict(results: &[CheckResult], checks: &FastChecks, needed: u64) -> Verdict {
    let missed: Vec<&CheckResult> = results
        .iter()
        .filter(|r| !r.reliable.meets(r.target_ppm))
        .collect();
    let Some(first) = missed.first() else {
        return Verdict::Pass;
    };
    if let Some(worse) = missed
        .iter()
        .find(|r| r.p_value.is_some_and(|p| p < checks.significance))
    {
        return Verdict::Fail { check: worse.check };
    }
    if missed.iter().any(|r| r.legacy.total < needed) {
        return Verdict::Insufficient {
            reliable_events: first.reliable.total,
            legacy_events: first.legacy.total,
        };
    }
    Verdict::HouseWide { check: first.check }
}

/// Fisher's exact test, one-sided: the probability that the reliable cohort holds at least its
/// observed number of bad events if the bad events of both cohorts fell on them at random.
pub fn fisher_worse(reliable: Ratio, legacy: Ratio) -> f64 {
    let n = reliable.total;
    let population = reliable.total + legacy.total;
    let bad_all = reliable.bad() + legacy.bad();
    let observed = reliable.bad();
    let top = bad_all.min(n);
    if observed == 0 {
        return 1.0;
    }
    let denominator = ln_choose(population, n);
    let mut p = 0.0;
    for x in observed..=top {
        if n - x > population - bad_all {
            continue;
        }
        p += (ln_choose(bad_all, x) + ln_choose(population - bad_all, n - x) - denominator).exp();
    }
    p.min(1.0)
}

fn ln_choose(n: u64, k: u64) -> f64 {
    if k > n {
        return f64::NEG_INFINITY;
    }
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

/// `ln(n!)`: summed exactly below 64, Stirling's series above (error below 1e-12 there).
fn ln_factorial(n: u64) -> f64 {
    if n < 64 {
        return (2..=n).map(|i| (i as f64).ln()).sum();
    }
    let x = n as f64;
    let series = 1.0 / (12.0 * x) - 1.0 / (360.0 * x.powi(3)) + 1.0 / (1260.0 * x.powi(5));
    x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + series
}

/// Counts failing evaluations in a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judge {
    required: u32,
    failing: u32,
}

impl Judge {
    /// A judge that trips after `required` (at least one) failing evaluations in a row.
    pub fn new(required: u32) -> Judge {
        Judge {
            required: required.max(1),
            failing: 0,
        }
    }

    /// Failing evaluations in a row so far.
    pub fn failing(&self) -> u32 {
        self.failing
    }

    /// Takes one evaluation; `true` when it trips (the count then starts again).
    pub fn observe(&mut self, verdict: &Verdict) -> bool {
        if matches!(verdict, Verdict::Fail { .. }) {
            self.failing += 1;
        } else {
            self.failing = 0;
        }
        if self.failing >= self.required {
            self.failing = 0;
            return true;
        }
        false
    }

    /// Forgets the count (after a resume or a change of cohort).
    pub fn reset(&mut self) {
        self.failing = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::ledger::{Ended, MinuteCounts};
    use crate::transport::CommandOutcome;

    fn add(ledger: &mut Ledger, series: Series, minute: u32, ok: u32, failed: u32) {
        for i in 0..ok + failed {
            let outcome = if i < failed {
                CommandOutcome::Timeout
            } else {
                CommandOutcome::Success
            };
            let counts = MinuteCounts::of(&Ended {
                outcome,
                latency: Duration::from_millis(300),
                attempts: 1,
                queue_full: false,
            });
            ledger.add(series, UnixMinute(minute), &counts);
        }
    }

    const NOW: UnixMinute = UnixMinute(10_000_000);

    #[test]
    fn fisher_matches_a_hand_computed_table() {
        // Reliable 2 bad of 3, legacy 0 bad of 3: P = C(2,2)C(4,1)/C(6,3) = 4/20.
        let p = fisher_worse(Ratio { good: 1, total: 3 }, Ratio { good: 3, total: 3 });
        assert!((p - 0.2).abs() < 1e-12, "{p}");
        assert_eq!(
            fisher_worse(Ratio { good: 5, total: 5 }, Ratio { good: 0, total: 5 }),
            1.0
        );
        // Stirling and the exact sum agree where they meet.
        let exact: f64 = (2..=64u64).map(|i| (i as f64).ln()).sum();
        assert!((ln_factorial(64) - exact).abs() < 1e-9);
    }

    #[test]
    fn too_few_commands_is_insufficient_data() {
        let mut ledger = Ledger::default();
        add(&mut ledger, Series::Reliable, NOW.0, 0, 19);
        add(&mut ledger, Series::Legacy, NOW.0, 200, 0);
        let e = evaluate(&ledger, NOW, &FastChecks::default());
        assert!(matches!(
            e.verdict,
            Verdict::Insufficient {
                reliable_events: 19,
                ..
            }
        ));
    }

    #[test]
    fn a_reliable_cohort_failing_alone_fails_and_one_failing_with_legacy_is_house_wide() {
        let checks = FastChecks::default();
        let mut ledger = Ledger::default();
        add(&mut ledger, Series::Reliable, NOW.0, 15, 5);
        add(&mut ledger, Series::Legacy, NOW.0, 200, 0);
        let e = evaluate(&ledger, NOW, &checks);
        assert_eq!(
            e.verdict,
            Verdict::Fail {
                check: Check::Success
            }
        );
        assert!(e.deciding().unwrap().p_value.unwrap() < 1e-4);

        let mut house = Ledger::default();
        add(&mut house, Series::Reliable, NOW.0, 15, 5);
        add(&mut house, Series::Legacy, NOW.0, 150, 50);
        let e = evaluate(&house, NOW, &checks);
        assert_eq!(
            e.verdict,
            Verdict::HouseWide {
                check: Check::Success
            }
        );
    }

    #[test]
    fn one_failure_in_twenty_is_not_blamed_on_the_path_when_legacy_fails_too() {
        let mut ledger = Ledger::default();
        add(&mut ledger, Series::Reliable, NOW.0, 19, 1);
        add(&mut ledger, Series::Legacy, NOW.0, 178, 2);
        let e = evaluate(&ledger, NOW, &FastChecks::default());
        assert_eq!(
            e.verdict,
            Verdict::HouseWide {
                check: Check::Success
            }
        );
    }

    #[test]
    fn the_window_widens_to_hold_min_events_and_never_below_ten_minutes() {
        let mut ledger = Ledger::default();
        // 20 reliable commands an hour apart: the window reaches back 19 hours.
        for h in 0..20 {
            add(&mut ledger, Series::Reliable, NOW.0 - h * 60, 1, 0);
        }
        add(&mut ledger, Series::Legacy, NOW.0, 50, 0);
        let e = evaluate(&ledger, NOW, &FastChecks::default());
        assert_eq!(e.verdict, Verdict::Pass);
        assert_eq!(e.window_minutes, 19 * 60 + 1);
        let mut busy = Ledger::default();
        add(&mut busy, Series::Reliable, NOW.0, 100, 0);
        add(&mut busy, Series::Legacy, NOW.0, 100, 0);
        assert_eq!(
            evaluate(&busy, NOW, &FastChecks::default()).window_minutes,
            10
        );
    }

    #[test]
    fn the_judge_trips_exactly_at_the_third_failure_in_a_row() {
        let fail = Verdict::Fail {
            check: Check::Success,
        };
        let mut judge = Judge::new(3);
        assert!(!judge.observe(&fail));
        assert!(!judge.observe(&fail));
        assert!(!judge.observe(&Verdict::Pass), "a pass resets");
        assert!(!judge.observe(&fail));
        assert!(!judge.observe(&fail));
        let insufficient = Verdict::Insufficient {
            reliable_events: 0,
            legacy_events: 0,
        };
        assert!(!judge.observe(&insufficient), "insufficient data resets");
        assert!(!judge.observe(&fail));
        assert!(!judge.observe(&fail));
        assert!(judge.observe(&fail), "third in a row");
    }
}
