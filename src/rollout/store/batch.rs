//! Everything received since the last successful flush, merged per key.
//!
//! Merging is what keeps a failing disk harmless: a batch holds at most one entry per
//! (minute, series) and per wire minute however many records arrive, the newest
//! `recent_commands` rows (older ones would be deleted in the same transaction anyway) and one
//! control document. So while the disk is locked or full the writer keeps the batch, memory grows
//! by at most ~200 bytes per minute of outage, and the next successful flush writes exact counts.

use std::collections::{BTreeMap, VecDeque};

use super::CommandRow;
use crate::rollout::ledger::{MinuteCounts, Series, UnixMinute, WireCounts};

#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) rollups: BTreeMap<(UnixMinute, Series), MinuteCounts>,
    pub(super) wire: BTreeMap<UnixMinute, WireCounts>,
    pub(super) commands: VecDeque<CommandRow>,
    pub(super) control: Option<String>,
    /// `record` and `record_wire` calls merged in (the writes metric's unit).
    pub(super) records: u64,
    keep_commands: usize,
}

impl Batch {
    pub(super) fn new(keep_commands: usize) -> Batch {
        Batch {
            keep_commands,
            ..Batch::default()
        }
    }

    pub(super) fn add(
        &mut self,
        minute: UnixMinute,
        series: Series,
        counts: &MinuteCounts,
        row: Option<CommandRow>,
    ) {
        self.records += 1;
        self.rollups
            .entry((minute, series))
            .or_default()
            .add(counts);
        if let Some(row) = row {
            if self.keep_commands > 0 {
                if self.commands.len() == self.keep_commands {
                    self.commands.pop_front();
                }
                self.commands.push_back(row);
            }
        }
    }

    pub(super) fn add_wire(&mut self, minute: UnixMinute, counts: &WireCounts) {
        self.records += 1;
        self.wire.entry(minute).or_default().add(counts);
    }

    /// Forgets minutes before `oldest`: they would be deleted by the same flush.
    pub(super) fn prune(&mut self, oldest: UnixMinute) {
        self.rollups = self.rollups.split_off(&(oldest, Series::Legacy));
        self.wire = self.wire.split_off(&oldest);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.records == 0 && self.control.is_none()
    }

    /// Worth writing before the flush interval: enough rows to make one transaction sizeable.
    pub(super) fn is_large(&self) -> bool {
        self.records >= 8_192 || self.commands.len() >= 4_096
    }

    /// Empties the batch after it was committed.
    pub(super) fn clear(&mut self) {
        *self = Batch::new(self.keep_commands);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::CommandOutcome;

    fn one(outcome: CommandOutcome) -> MinuteCounts {
        let mut c = MinuteCounts::default();
        c.outcomes[CommandOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap()] = 1;
        c.sent = 1;
        c
    }

    fn row(at: u64) -> CommandRow {
        CommandRow {
            at_unix_ms: at,
            device: "1000-10".into(),
            series: Series::Reliable,
            outcome: CommandOutcome::Success,
            latency_ms: 90,
            attempts: 1,
        }
    }

    #[test]
    fn a_batch_keeps_one_entry_per_key_and_the_newest_rows() {
        let mut batch = Batch::new(3);
        for i in 0..10 {
            batch.add(
                UnixMinute(5),
                Series::Reliable,
                &one(CommandOutcome::Success),
                Some(row(i)),
            );
        }
        batch.add(
            UnixMinute(5),
            Series::Legacy,
            &one(CommandOutcome::Timeout),
            None,
        );
        assert_eq!(batch.rollups.len(), 2);
        let reliable = batch.rollups[&(UnixMinute(5), Series::Reliable)];
        assert_eq!(reliable.count(CommandOutcome::Success), 10);
        assert_eq!(reliable.sent, 10);
        let kept: Vec<u64> = batch.commands.iter().map(|r| r.at_unix_ms).collect();
        assert_eq!(kept, [7, 8, 9]);
        assert_eq!(batch.records, 11);
    }

    #[test]
    fn pruning_drops_only_minutes_before_the_oldest_kept() {
        let mut batch = Batch::new(0);
        for m in [1, 2, 3] {
            for s in Series::ALL {
                batch.add(UnixMinute(m), s, &one(CommandOutcome::Success), None);
            }
            batch.add_wire(
                UnixMinute(m),
                &WireCounts {
                    received: 1,
                    decode_errors: 0,
                },
            );
        }
        batch.prune(UnixMinute(2));
        assert_eq!(batch.rollups.len(), 6);
        assert!(batch.rollups.keys().all(|(m, _)| m.0 >= 2));
        assert_eq!(batch.wire.len(), 2);
        assert!(batch.commands.is_empty());
    }
}
