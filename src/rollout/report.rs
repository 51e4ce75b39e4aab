//! `cync-bridge slo report`: per SLO and path, the target, what was achieved, the events, the
//! budget allowed, used and left, burn rates, and the rollbacks in the window — from the
//! evidence store alone, so it works with the bridge stopped and without Prometheus.

use std::fmt::Write as _;
use std::time::Duration;

use super::control::{Latch, Persisted};
use super::ledger::{Ledger, Series, UnixMinute};
use super::slo::{status, window_name, Slo, SloStatus};

/// One report.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Report {
    /// When it was made, Unix milliseconds.
    pub at_unix_ms: u64,
    /// The window every SLO was measured over (`None`: each SLO's own).
    pub window: Option<String>,
    /// Per SLO and path.
    pub slos: Vec<SloStatus>,
    /// Rollbacks that started within the longest window reported.
    pub rollbacks: Vec<Latch>,
    /// A rollback still latched.
    pub latched: Option<Latch>,
}

/// Builds the report at `now_unix_ms` from the store's ledger and control document; `window`
/// replaces every SLO's own window.
pub fn build(
    ledger: &Ledger,
    persisted: &Persisted,
    slos: &[Slo],
    min_events: u64,
    window: Option<Duration>,
    now_unix_ms: u64,
) -> Report {
    let now = UnixMinute::from_unix_ms(now_unix_ms);
    let mut statuses = Vec::new();
    for series in [Series::Reliable, Series::Legacy, Series::Shadow] {
        for slo in slos {
            let slo = Slo {
                window: window.unwrap_or(slo.window),
                ..slo.clone()
            };
            let s = status(ledger, &slo, series, now, min_events);
            if series != Series::Shadow || s.ratio.total > 0 {
                statuses.push(s);
            }
        }
    }
    let longest = statuses
        .iter()
        .map(|s| s.slo.window)
        .max()
        .unwrap_or_default();
    let since = now_unix_ms.saturating_sub(u64::try_from(longest.as_millis()).unwrap_or(0));
    Report {
        at_unix_ms: now_unix_ms,
        window: window.map(window_name),
        slos: statuses,
        rollbacks: persisted
            .history
            .iter()
            .filter(|l| l.at_unix_ms >= since)
            .cloned()
            .collect(),
        latched: persisted.latch.clone(),
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_string(), |v| format!("{:.3} %", v * 100.0))
}

/// The report as a Markdown document.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# SLO report\n");
    let _ = writeln!(
        out,
        "| SLO | path | window | target | actual | events | budget allowed | used | left | burn 1h / 5m | burn 6h / 30m | burn 3d / 6h | status |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in &report.slos {
        let burn = |i: usize| {
            let rate = |j: usize| s.burn.get(j).map_or(0.0, |b| b.rate);
            format!("{:.2} / {:.2}", rate(2 * i), rate(2 * i + 1))
        };
        let verdict = match s.compliant {
            Some(true) => "met",
            Some(false) => "VIOLATED",
            None => "insufficient data",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.3} % | {} | {} | {:.2} | {} | {:.1} % | {} | {} | {} | {} |",
            s.slo.name,
            s.series.as_str(),
            window_name(s.slo.window),
            s.slo.target() * 100.0,
            percent(s.ratio.fraction()),
            s.ratio.total,
            s.budget_allowed,
            s.budget_used,
            s.budget_remaining * 100.0,
            burn(0),
            burn(1),
            burn(2),
            verdict
        );
    }
    let _ = writeln!(out, "\nRollbacks in the window: {}", report.rollbacks.len());
    for r in &report.rollbacks {
        let _ = writeln!(
            out,
            "- {} ({} ms since epoch): {}",
            r.reason, r.at_unix_ms, r.detail
        );
    }
    if let Some(latch) = &report.latched {
        let _ = writeln!(
            out,
            "\nA rollback is latched ({}): every device is on the legacy path until `cync-bridge rollout resume`.",
            latch.reason
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::ledger::{Ended, MinuteCounts};
    use crate::transport::CommandOutcome;

    #[test]
    fn a_report_counts_budgets_per_path_and_lists_rollbacks_in_the_window() {
        let now_ms = 1_800_000_000_000;
        let now = UnixMinute::from_unix_ms(now_ms);
        let mut ledger = Ledger::default();
        for i in 0..1000u32 {
            let outcome = if i == 0 {
                CommandOutcome::Timeout
            } else {
                CommandOutcome::Success
            };
            let counts = MinuteCounts::of(&Ended {
                outcome,
                latency: Duration::from_millis(150),
                attempts: 1,
                queue_full: false,
            });
            ledger.add(Series::Reliable, now.minus(i % 600), &counts);
        }
        let old = Latch {
            at_unix_ms: now_ms - 40 * 86_400_000,
            reason: "manual".into(),
            detail: String::new(),
            from_percent: 10.0,
        };
        let recent = Latch {
            at_unix_ms: now_ms - 86_400_000,
            reason: "command_success".into(),
            ..old.clone()
        };
        let persisted = Persisted {
            history: vec![old, recent],
            ..Persisted::default()
        };
        let report = build(&ledger, &persisted, &Slo::defaults(), 20, None, now_ms);
        let success = report
            .slos
            .iter()
            .find(|s| s.slo.name == "command_success" && s.series == Series::Reliable)
            .unwrap();
        // 1 bad in 1 000 against a 0.1 % allowance: exactly the whole budget used.
        assert_eq!(success.ratio.total, 1000);
        assert_eq!(success.budget_used, 1);
        assert_eq!(success.budget_remaining, 0.0);
        assert_eq!(success.compliant, Some(true));
        assert_eq!(report.rollbacks.len(), 1, "only the one within 30 days");
        let md = markdown(&report);
        assert!(
            md.contains("| command_success | reliable | 30d | 99.900 % | 99.900 % | 1000 |"),
            "{md}"
        );
        assert!(
            !report.slos.iter().any(|s| s.series == Series::Shadow),
            "no shadow evidence"
        );
    }
}
