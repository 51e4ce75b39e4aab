//! Service-level objectives as ratios of good events to all events, so that every one has an exact
//! error budget, and the arithmetic of budgets and burn rates.
//!
//! Targets are kept in parts per million, not as floats: with a 99.9 % target, 5 failures in
//! 10 000 commands must leave exactly 50 % of the budget, and `1 − 0.999` is not exactly `0.001`
//! in binary floating point. Budget remaining = `max(0, 1 − bad fraction / allowed fraction)`;
//! burn rate = bad fraction / allowed fraction over a window (1 = spending the budget exactly as
//! fast as the window allows).

use std::time::Duration;

use super::ledger::{Ledger, Series, Totals, UnixMinute};

/// One million, the denominator of every target.
pub const PPM: u64 = 1_000_000;

/// What an SLO counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SloKind {
    /// Successful commands / commands.
    Success,
    /// Commands confirmed within the latency limit / commands (the programme's "p99 ≤ 1.5 s",
    /// counted rather than interpolated).
    Latency {
        /// An edge of the ledger's latency histogram.
        limit_ms: u32,
    },
    /// First attempts / packets sent (good = not a retransmission).
    PacketLoss,
    /// Frames decoded / frames received (bridge-wide: frames from devices belong to no path).
    DecodeErrors,
    /// Commands not refused by a full queue / commands.
    QueueFull,
}

/// One objective: at least `target_ppm` of events good over `window`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Slo {
    /// The `slo_name` label.
    pub name: &'static str,
    #[allow(missing_docs)]
    pub kind: SloKind,
    /// Good events required, in parts per million (999 000 = 99.9 %).
    pub target_ppm: u32,
    /// The compliance window.
    #[serde(serialize_with = "serialize_secs")]
    pub window: Duration,
}

fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

const DAY: Duration = Duration::from_secs(24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

impl Slo {
    /// The programme's five objectives with its targets and windows.
    pub fn defaults() -> Vec<Slo> {
        vec![
            Slo {
                name: "command_success",
                kind: SloKind::Success,
                target_ppm: 999_000,
                window: 30 * DAY,
            },
            Slo {
                name: "command_latency",
                kind: SloKind::Latency { limit_ms: 1_500 },
                target_ppm: 990_000,
                window: 7 * DAY,
            },
            Slo {
                name: "packet_loss",
                kind: SloKind::PacketLoss,
                target_ppm: 990_000,
                window: DAY,
            },
            Slo {
                name: "decode_errors",
                kind: SloKind::DecodeErrors,
                target_ppm: 999_000,
                window: DAY,
            },
            Slo {
                name: "queue_full",
                kind: SloKind::QueueFull,
                target_ppm: 990_000,
                window: HOUR,
            },
        ]
    }

    /// Bad fraction the target allows, in ppm (1 000 for 99.9 %).
    pub fn allowed_ppm(&self) -> u64 {
        PPM - u64::from(self.target_ppm).min(PPM)
    }

    /// The target as a fraction (0.999).
    pub fn target(&self) -> f64 {
        f64::from(self.target_ppm) / PPM as f64
    }
}

/// Good and total events of `kind` in `totals`.
pub fn good_and_total(kind: SloKind, totals: &Totals) -> (u64, u64) {
    let c = &totals.commands;
    match kind {
        SloKind::Success => (c.successes(), c.events()),
        SloKind::Latency { limit_ms } => (c.confirmed_within(limit_ms), c.events()),
        SloKind::PacketLoss => {
            let sent = u64::from(c.sent);
            (sent - u64::from(c.retransmits).min(sent), sent)
        }
        SloKind::DecodeErrors => {
            let received = u64::from(totals.wire.received);
            let bad = u64::from(totals.wire.decode_errors).min(received);
            (received - bad, received)
        }
        SloKind::QueueFull => {
            let ended = c.ended();
            (ended - u64::from(c.queue_full).min(ended), ended)
        }
    }
}

/// Good and total events over one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct Ratio {
    #[allow(missing_docs)]
    pub good: u64,
    #[allow(missing_docs)]
    pub total: u64,
}

impl Ratio {
    #[allow(missing_docs)]
    pub fn bad(&self) -> u64 {
        self.total - self.good.min(self.total)
    }

    /// Good fraction; `None` without events.
    pub fn fraction(&self) -> Option<f64> {
        (self.total > 0).then(|| self.good as f64 / self.total as f64)
    }

    /// Whether the good fraction is at least `target_ppm` (exact integer comparison).
    pub fn meets(&self, target_ppm: u32) -> bool {
        u128::from(self.good) * u128::from(PPM) >= u128::from(self.total) * u128::from(target_ppm)
    }

    /// Budget remaining against an allowed bad fraction: `max(0, 1 − bad/total ÷ allowed)`; a
    /// window without events has spent nothing.
    pub fn budget_remaining(&self, allowed_ppm: u64) -> f64 {
        if self.total == 0 {
            return 1.0;
        }
        if allowed_ppm == 0 {
            return if self.bad() == 0 { 1.0 } else { 0.0 };
        }
        // bad/total ÷ allowed/1e6 = bad·1e6 / (total·allowed): one division, exact for the
        // programme's worked numbers.
        let spent = (self.bad() as f64 * PPM as f64) / (self.total as f64 * allowed_ppm as f64);
        (1.0 - spent).max(0.0)
    }

    /// Burn rate against an allowed bad fraction (0 without events).
    pub fn burn_rate(&self, allowed_ppm: u64) -> f64 {
        if self.total == 0 || allowed_ppm == 0 {
            return 0.0;
        }
        (self.bad() as f64 * PPM as f64) / (self.total as f64 * allowed_ppm as f64)
    }
}

/// The window pairs whose burn rates are reported (long, short): 1 h/5 m, 6 h/30 m, 3 d/6 h, as
/// in multiwindow burn-rate alerting.
pub const BURN_WINDOWS: [(Duration, Duration); 3] = [
    (HOUR, Duration::from_secs(5 * 60)),
    (Duration::from_secs(6 * 3600), Duration::from_secs(30 * 60)),
    (
        Duration::from_secs(3 * 24 * 3600),
        Duration::from_secs(6 * 3600),
    ),
];

/// Minutes in `d` (at least one).
pub fn minutes(d: Duration) -> u32 {
    u32::try_from(d.as_secs() / 60).unwrap_or(u32::MAX).max(1)
}

/// One burn rate.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Burn {
    /// `1h`, `5m`, …
    pub window: String,
    #[allow(missing_docs)]
    pub rate: f64,
    #[allow(missing_docs)]
    pub events: u64,
}

/// Where one SLO stands for one series.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SloStatus {
    #[allow(missing_docs)]
    pub slo: Slo,
    /// The series counted.
    pub series: Series,
    /// Good and total over the SLO's window.
    pub ratio: Ratio,
    /// Bad events the target allows over the window (total × allowed fraction).
    pub budget_allowed: f64,
    /// Bad events so far.
    pub budget_used: u64,
    /// `max(0, 1 − used/allowed)`.
    pub budget_remaining: f64,
    /// `Some(true)` when met, `None` with fewer than `min_events` events (insufficient data is
    /// neither met nor violated).
    pub compliant: Option<bool>,
    /// Burn rates over [`BURN_WINDOWS`], long then short.
    pub burn: Vec<Burn>,
}

/// `1h`, `30m`, `3d`.
pub fn window_name(d: Duration) -> String {
    let m = d.as_secs() / 60;
    if m.is_multiple_of(24 * 60) {
        format!("{}d", m / (24 * 60))
    } else if m.is_multiple_of(60) {
        format!("{}h", m / 60)
    } else {
        format!("{m}m")
    }
}

/// The ratio of `slo` for `series` over `window` ending at `now`.
pub fn ratio(
    ledger: &Ledger,
    slo: &Slo,
    series: Series,
    now: UnixMinute,
    window: Duration,
) -> Ratio {
    let totals = ledger.window(series, now, minutes(window));
    let (good, total) = good_and_total(slo.kind, &totals);
    Ratio { good, total }
}

/// The status of `slo` for `series` at `now`.
pub fn status(
    ledger: &Ledger,
    slo: &Slo,
    series: Series,
    now: UnixMinute,
    min_events: u64,
) -> SloStatus {
    let r = ratio(ledger, slo, series, now, slo.window);
    let allowed = slo.allowed_ppm();
    let burn = BURN_WINDOWS
        .iter()
        .flat_map(|(long, short)| [*long, *short])
        .map(|w| {
            let wr = ratio(ledger, slo, series, now, w);
            Burn {
                window: window_name(w),
                rate: wr.burn_rate(allowed),
                events: wr.total,
            }
        })
        .collect();
    SloStatus {
        slo: slo.clone(),
        series,
        ratio: r,
        budget_allowed: r.total as f64 * allowed as f64 / PPM as f64,
        budget_used: r.bad(),
        budget_remaining: r.budget_remaining(allowed),
        compliant: (r.total >= min_events).then(|| r.meets(slo.target_ppm)),
        burn,
    }
}

/// The latency at quantile `q` (0–1) of successful commands, interpolated within a histogram bin
/// the way Prometheus' `histogram_quantile` does (linear, the overflow bin reports its lower
/// edge); `None` without successes.
pub fn latency_quantile(totals: &Totals, q: f64) -> Option<Duration> {
    use super::ledger::LATENCY_EDGES_MS;
    let bins = &totals.commands.latency;
    let total: u64 = bins.iter().map(|c| u64::from(*c)).sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, count) in bins.iter().enumerate() {
        let count = u64::from(*count);
        if count > 0 && (below + count) as f64 >= rank {
            let lower = if i == 0 { 0 } else { LATENCY_EDGES_MS[i - 1] };
            let Some(upper) = LATENCY_EDGES_MS.get(i) else {
                return Some(Duration::from_millis(u64::from(lower)));
            };
            let into = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
            let ms = f64::from(lower) + into * f64::from(upper - lower);
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
        below += count;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::ledger::{Ended, MinuteCounts};
    use crate::transport::CommandOutcome;

    fn success_slo() -> Slo {
        Slo::defaults().remove(0)
    }

    fn ledger_with(commands: u32, failures: u32) -> Ledger {
        let mut ledger = Ledger::default();
        for i in 0..commands {
            let outcome = if i < failures {
                CommandOutcome::Timeout
            } else {
                CommandOutcome::Success
            };
            let counts = MinuteCounts::of(&Ended {
                outcome,
                latency: Duration::from_millis(200),
                attempts: 1,
                queue_full: false,
            });
            // Spread over the last week, a few commands a minute.
            ledger.add(Series::Reliable, UnixMinute(1_000_000 - i / 3), &counts);
        }
        ledger
    }

    #[test]
    fn ten_thousand_commands_with_five_failures_leave_half_the_budget() {
        let slo = success_slo();
        let now = UnixMinute(1_000_000);
        for (failures, remaining) in [(0, 1.0), (5, 0.5), (10, 0.0), (11, 0.0)] {
            let s = status(
                &ledger_with(10_000, failures),
                &slo,
                Series::Reliable,
                now,
                20,
            );
            assert_eq!(s.ratio.total, 10_000);
            assert_eq!(s.budget_remaining, remaining, "{failures} failures");
            assert_eq!(s.budget_used, u64::from(failures));
            assert_eq!(s.compliant, Some(failures <= 10), "{failures}");
        }
    }

    #[test]
    fn fewer_events_than_the_minimum_is_insufficient_not_violated() {
        let s = status(
            &ledger_with(19, 19),
            &success_slo(),
            Series::Reliable,
            UnixMinute(1_000_000),
            20,
        );
        assert_eq!(s.compliant, None);
        assert_eq!(s.budget_remaining, 0.0, "the budget is still honest");
    }

    #[test]
    fn burn_rate_is_the_bad_fraction_over_the_allowed_one() {
        // 0.5 % bad against a 0.1 % allowance is a 5× burn.
        let r = Ratio {
            good: 995,
            total: 1000,
        };
        assert!((r.burn_rate(1000) - 5.0).abs() < 1e-12);
        assert_eq!(window_name(Duration::from_secs(300)), "5m");
        assert_eq!(window_name(Duration::from_secs(6 * 3600)), "6h");
        assert_eq!(window_name(3 * DAY), "3d");
    }

    #[test]
    fn quantiles_interpolate_inside_a_bin_like_prometheus() {
        let mut totals = Totals::default();
        // 100 successes, all in the 100–128 ms bin.
        totals.commands.latency[crate::rollout::ledger::latency_bin(Duration::from_millis(110))] =
            100;
        let p50 = latency_quantile(&totals, 0.5).unwrap();
        assert!((p50.as_secs_f64() - 0.114).abs() < 1e-9, "{p50:?}");
        assert_eq!(latency_quantile(&Totals::default(), 0.5), None);
    }
}
