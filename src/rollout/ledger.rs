//! Exact per-minute counts of what each command path did, the evidence every SLO, budget and
//! rollback decision is computed from.
//!
//! One [`MinuteCounts`] per (series, minute) that saw anything: minutes without commands take no
//! room, so a house sending a few hundred commands a day keeps a few hundred entries a day. The
//! worst case is bounded by [`Ledger::retention`]: at most one entry per minute per series
//! (35 days × 1 440 minutes × 3 command series ≈ 151 000 entries of 120 bytes ≈ 18 MB, only for a
//! house that commands something every single minute for five weeks), plus 8 bytes a minute of
//! wire counts. Counts are integers, never sampled: a window's numbers are sums of whole minutes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::transport::CommandOutcome;

/// Minutes since the Unix epoch (UTC); the unit every window is counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMinute(pub u32);

impl UnixMinute {
    /// The minute containing `unix_ms`.
    pub fn from_unix_ms(unix_ms: u64) -> UnixMinute {
        UnixMinute(u32::try_from(unix_ms / 60_000).unwrap_or(u32::MAX))
    }

    /// The minute `minutes` before this one (never before the epoch).
    pub fn minus(self, minutes: u32) -> UnixMinute {
        UnixMinute(self.0.saturating_sub(minutes))
    }
}

/// Upper edges (inclusive) of the latency histogram of confirmed commands, in milliseconds; the
/// last bin holds everything slower. Fine where devices answer (their `f9` after 14–240 ms, their
/// report after 0.1–1 s, `docs/protocol.md#timing`) and with an edge exactly at the 1.5 s SLO, so
/// "confirmed within 1.5 s" is counted, not interpolated.
pub const LATENCY_EDGES_MS: [u32; 19] = [
    25, 50, 75, 100, 128, 150, 200, 250, 300, 400, 500, 650, 800, 1_000, 1_250, 1_500, 2_000,
    3_000, 5_000,
];

/// Bins of the histogram: one per edge plus the overflow bin.
pub const LATENCY_BINS: usize = LATENCY_EDGES_MS.len() + 1;

/// Which stream of evidence a count belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Series {
    /// Commands sent on the legacy path.
    Legacy,
    /// Commands sent on the reliable path.
    Reliable,
    /// What the reliable path would have done with commands legacy sent (shadow mode). Never
    /// mixed into the reliable series: nothing was transmitted for it.
    Shadow,
}

impl Series {
    #[allow(missing_docs)]
    pub const ALL: [Series; 3] = [Series::Legacy, Series::Reliable, Series::Shadow];

    /// The `transport` label and the stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Series::Legacy => "legacy",
            Series::Reliable => "reliable",
            Series::Shadow => "shadow",
        }
    }

    /// The series named `name` ([`Self::as_str`]).
    pub fn parse(name: &str) -> Option<Series> {
        Series::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// One minute of one series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MinuteCounts {
    /// Ended commands by outcome, indexed like [`CommandOutcome::ALL`].
    pub outcomes: [u32; CommandOutcome::ALL.len()],
    /// Latency of successful commands by [`LATENCY_EDGES_MS`] bin.
    pub latency: [u32; LATENCY_BINS],
    /// Packets written for these commands (one per attempt).
    pub sent: u32,
    /// Of those, attempts after the first.
    pub retransmits: u32,
    /// Commands refused because a queue on their way was full.
    pub queue_full: u32,
}

/// One ended command as the ledger counts it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ended {
    #[allow(missing_docs)]
    pub outcome: CommandOutcome,
    /// Submission to outcome.
    pub latency: Duration,
    /// Packets written (0 when it never left the bridge).
    pub attempts: u32,
    /// A full queue refused it.
    pub queue_full: bool,
}

impl MinuteCounts {
    /// The counts of a single ended command.
    pub fn of(ended: &Ended) -> MinuteCounts {
        let mut counts = MinuteCounts::default();
        counts.outcomes[outcome_index(ended.outcome)] = 1;
        if ended.outcome == CommandOutcome::Success {
            counts.latency[latency_bin(ended.latency)] = 1;
        }
        counts.sent = ended.attempts;
        counts.retransmits = ended.attempts.saturating_sub(1);
        counts.queue_full = u32::from(ended.queue_full);
        counts
    }

    /// Adds `other` into `self` (saturating: a counter never wraps to a small number).
    pub fn add(&mut self, other: &MinuteCounts) {
        for (a, b) in self.outcomes.iter_mut().zip(other.outcomes) {
            *a = a.saturating_add(b);
        }
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a = a.saturating_add(b);
        }
        self.sent = self.sent.saturating_add(other.sent);
        self.retransmits = self.retransmits.saturating_add(other.retransmits);
        self.queue_full = self.queue_full.saturating_add(other.queue_full);
    }

    /// Commands with `outcome`.
    pub fn count(&self, outcome: CommandOutcome) -> u32 {
        self.outcomes[outcome_index(outcome)]
    }

    /// Commands that count as events for the success and latency SLOs: every ended command
    /// except those superseded by a newer command for the same thing (the user changed their
    /// mind, not a failure) and those cancelled by shutdown.
    pub fn events(&self) -> u64 {
        CommandOutcome::ALL
            .into_iter()
            .filter(|o| counts_as_event(*o))
            .map(|o| u64::from(self.count(o)))
            .sum()
    }

    /// Every ended command, events or not (the denominator of the queue-full ratio).
    pub fn ended(&self) -> u64 {
        self.outcomes.iter().map(|c| u64::from(*c)).sum()
    }

    #[allow(missing_docs)]
    pub fn successes(&self) -> u64 {
        u64::from(self.count(CommandOutcome::Success))
    }

    /// Successful commands confirmed within `limit_ms`, which must be one of
    /// [`LATENCY_EDGES_MS`] (an edge that is not one is rounded down to the nearest edge, so
    /// the count never overstates).
    pub fn confirmed_within(&self, limit_ms: u32) -> u64 {
        LATENCY_EDGES_MS
            .iter()
            .zip(self.latency)
            .take_while(|(edge, _)| **edge <= limit_ms)
            .map(|(_, c)| u64::from(c))
            .sum()
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == MinuteCounts::default()
    }
}

/// Whether commands ending with `outcome` are SLO events.
pub fn counts_as_event(outcome: CommandOutcome) -> bool {
    !matches!(
        outcome,
        CommandOutcome::Superseded | CommandOutcome::Cancelled
    )
}

fn outcome_index(outcome: CommandOutcome) -> usize {
    CommandOutcome::ALL
        .iter()
        .position(|o| *o == outcome)
        .unwrap_or(0)
}

/// The histogram bin of `latency`: the first edge it does not exceed.
pub fn latency_bin(latency: Duration) -> usize {
    let ms = latency.as_secs_f64() * 1000.0;
    LATENCY_EDGES_MS
        .iter()
        .position(|edge| ms <= f64::from(*edge))
        .unwrap_or(LATENCY_EDGES_MS.len())
}

/// Inbound frames and decode errors on every session in one minute. Not per path: a frame from a
/// device is not sent by either path, so the decode-error SLO is bridge-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WireCounts {
    /// Frames received.
    pub received: u32,
    /// Frames that could not be decoded.
    pub decode_errors: u32,
}

impl WireCounts {
    #[allow(missing_docs)]
    pub fn add(&mut self, other: &WireCounts) {
        self.received = self.received.saturating_add(other.received);
        self.decode_errors = self.decode_errors.saturating_add(other.decode_errors);
    }
}

/// Sums over a run of minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Totals {
    #[allow(missing_docs)]
    pub commands: MinuteCounts,
    #[allow(missing_docs)]
    pub wire: WireCounts,
}

/// The in-memory evidence: every series' minutes within the retention.
#[derive(Clone, Debug)]
pub struct Ledger {
    retention: u32,
    series: [BTreeMap<UnixMinute, MinuteCounts>; 3],
    wire: BTreeMap<UnixMinute, WireCounts>,
}

/// Longest SLO window (30 days) plus five days of history for reports.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(35 * 24 * 3600);

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new(DEFAULT_RETENTION)
    }
}

impl Ledger {
    /// A ledger keeping `retention` of minutes (at least one).
    pub fn new(retention: Duration) -> Ledger {
        let minutes = u32::try_from(retention.as_secs() / 60).unwrap_or(u32::MAX);
        Ledger {
            retention: minutes.max(1),
            series: Default::default(),
            wire: BTreeMap::new(),
        }
    }

    /// Minutes kept.
    pub fn retention(&self) -> u32 {
        self.retention
    }

    fn index(series: Series) -> usize {
        match series {
            Series::Legacy => 0,
            Series::Reliable => 1,
            Series::Shadow => 2,
        }
    }

    /// Adds `counts` to `series` at `minute`.
    pub fn add(&mut self, series: Series, minute: UnixMinute, counts: &MinuteCounts) {
        self.series[Self::index(series)]
            .entry(minute)
            .or_default()
            .add(counts);
    }

    /// Adds wire counts at `minute`.
    pub fn add_wire(&mut self, minute: UnixMinute, counts: &WireCounts) {
        if counts.received > 0 || counts.decode_errors > 0 {
            self.wire.entry(minute).or_default().add(counts);
        }
    }

    /// Forgets every minute older than the retention before `now`.
    pub fn prune(&mut self, now: UnixMinute) {
        let oldest = now.minus(self.retention - 1);
        for map in &mut self.series {
            *map = map.split_off(&oldest);
        }
        self.wire = self.wire.split_off(&oldest);
    }

    /// Sums of `series` over the `minutes` minutes ending with `now` (inclusive).
    pub fn window(&self, series: Series, now: UnixMinute, minutes: u32) -> Totals {
        let from = now.minus(minutes.saturating_sub(1));
        let mut totals = Totals::default();
        for counts in self.series[Self::index(series)]
            .range(from..=now)
            .map(|(_, c)| c)
        {
            totals.commands.add(counts);
        }
        for counts in self.wire.range(from..=now).map(|(_, c)| c) {
            totals.wire.add(counts);
        }
        totals
    }

    /// How many minutes back from `now` (inclusive) it takes for `series` to hold at least
    /// `events` SLO events, searching at most `max_minutes`; `None` when even that holds fewer.
    pub fn minutes_for_events(
        &self,
        series: Series,
        now: UnixMinute,
        events: u64,
        max_minutes: u32,
    ) -> Option<u32> {
        let from = now.minus(max_minutes.saturating_sub(1));
        let mut seen = 0u64;
        for (minute, counts) in self.series[Self::index(series)].range(from..=now).rev() {
            seen += counts.events();
            if seen >= events {
                return Some(now.0 - minute.0 + 1);
            }
        }
        None
    }

    /// Every stored minute of `series`, oldest first (for reports and persistence checks).
    pub fn minutes(&self, series: Series) -> impl Iterator<Item = (UnixMinute, &MinuteCounts)> {
        self.series[Self::index(series)]
            .iter()
            .map(|(m, c)| (*m, c))
    }

    /// Every stored minute of wire counts, oldest first (for reports and persistence checks).
    pub fn wire_minutes(&self) -> impl Iterator<Item = (UnixMinute, &WireCounts)> {
        self.wire.iter().map(|(m, c)| (*m, c))
    }

    /// Entries held, over all series and the wire counts (the memory bound's unit).
    pub fn entries(&self) -> usize {
        self.series.iter().map(BTreeMap::len).sum::<usize>() + self.wire.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(outcome: CommandOutcome, ms: u64) -> MinuteCounts {
        MinuteCounts::of(&Ended {
            outcome,
            latency: Duration::from_millis(ms),
            attempts: 1,
            queue_full: false,
        })
    }

    #[test]
    fn exactly_one_and_a_half_seconds_is_within_the_slo_and_a_millisecond_more_is_not() {
        let mut c = ended(CommandOutcome::Success, 1500);
        assert_eq!(c.confirmed_within(1500), 1);
        c.add(&ended(CommandOutcome::Success, 1501));
        assert_eq!(c.confirmed_within(1500), 1);
        assert_eq!(c.successes(), 2);
        c.add(&ended(CommandOutcome::Timeout, 5000));
        assert_eq!(c.events(), 3);
        assert_eq!(c.confirmed_within(1500), 1, "a failure is never fast");
    }

    #[test]
    fn superseded_and_cancelled_commands_are_not_events() {
        let mut c = ended(CommandOutcome::Superseded, 0);
        c.add(&ended(CommandOutcome::Cancelled, 0));
        assert_eq!(c.events(), 0);
        assert_eq!(c.ended(), 2);
    }

    #[test]
    fn windows_sum_whole_minutes_and_age_out_exactly_at_their_end() {
        let mut ledger = Ledger::new(Duration::from_secs(60 * 60));
        let ok = ended(CommandOutcome::Success, 100);
        for m in 100..110 {
            ledger.add(Series::Reliable, UnixMinute(m), &ok);
        }
        let now = UnixMinute(109);
        assert_eq!(
            ledger.window(Series::Reliable, now, 10).commands.events(),
            10
        );
        assert_eq!(ledger.window(Series::Reliable, now, 5).commands.events(), 5);
        assert_eq!(ledger.window(Series::Legacy, now, 10).commands.events(), 0);
        // Minute 100 is in a 10-minute window ending at 109, not in one ending at 110.
        let later = UnixMinute(110);
        assert_eq!(
            ledger.window(Series::Reliable, later, 10).commands.events(),
            9
        );
        assert_eq!(
            ledger.minutes_for_events(Series::Reliable, now, 3, 60),
            Some(3)
        );
        assert_eq!(
            ledger.minutes_for_events(Series::Reliable, now, 11, 60),
            None
        );
        ledger.prune(UnixMinute(100 + 60));
        assert_eq!(ledger.entries(), 9, "minute 100 is past the hour kept");
    }
}
