//! Recognising late reports of superseded commands.
//!
//! A device answers a set-state command at once (`f9`) and reports its new state ≈0.5 s later: a
//! `fa db 13` carrying the command's tx (`docs/protocol.md#late-reports`), followed in the same
//! write by a 0x43 self record with the same state and no tx. After quick successive commands to
//! one device (a dragged slider; brightness then colour) the report for an earlier command arrives
//! after the newer command's response has already set the newer state, and storing it would flick
//! Home Assistant back to an intermediate state for half a second.
//!
//! The tx says which command a `fa db 13` answers, so a report for a command that a later one to
//! the same target (with a different tx) has superseded is recognised exactly; the self record
//! that immediately follows it with the same state is its twin. A report nobody asked for (wall
//! switch, the phone app) carries the last tx the device received: one we never sent, or our
//! newest command to that target, and neither counts as superseded. The one loss: a physical change
//! reported after a newer command that never reached the device carries the older tx and is
//! dropped; that command gets no `f9`, so the reliable path retries it.
//! Relay records (Bluetooth-only devices) carry no tx and are not filtered.

use std::collections::VecDeque;

use crate::protocol::LightState;

/// How many recent commands are remembered.
const MEMORY: usize = 32;

/// The (target, tx) of a session's latest commands, and the last report recognised as late.
#[derive(Debug, Default)]
pub(super) struct SentCommands {
    sent: VecDeque<(u16, u32)>,
    skipped: Option<(u16, LightState)>,
}

impl SentCommands {
    /// A command to `target` went out with `tx`.
    pub(super) fn record(&mut self, target: u16, tx: u32) {
        if self.sent.len() == MEMORY {
            self.sent.pop_front();
        }
        self.sent.push_back((target, tx));
    }

    /// Whether a `fa db 13` about `target` with `tx` answers a superseded command; remembers it
    /// so its twin self record can be recognised.
    pub(super) fn is_late_report(&mut self, target: u16, tx: u32, state: LightState) -> bool {
        let mut found = false;
        let mut superseded = false;
        for &(t, sent) in &self.sent {
            if t != target {
                continue;
            }
            if sent == tx {
                found = true;
            } else if found {
                superseded = true;
                break;
            }
        }
        self.skipped = superseded.then_some((target, state));
        superseded
    }

    /// Whether a 0x43 self record is the twin of the late `fa db 13` just before it.
    pub(super) fn is_late_twin(&mut self, mesh: u16, state: LightState) -> bool {
        self.skipped.take() == Some((mesh, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lamp(brightness: u8) -> LightState {
        LightState {
            on: true,
            brightness,
            temperature: 50,
            rgb: [0; 3],
        }
    }

    #[test]
    fn only_reports_of_superseded_commands_to_the_same_target_are_late() {
        let mut s = SentCommands::default();
        s.record(5, 10);
        s.record(6, 11);
        s.record(5, 12);
        assert!(s.is_late_report(5, 10, lamp(20)), "10 was superseded by 12");
        assert!(s.is_late_twin(5, lamp(20)), "its self record");
        assert!(!s.is_late_twin(5, lamp(20)), "only once");
        assert!(
            !s.is_late_report(5, 12, lamp(40)),
            "the newest command's report"
        );
        assert!(!s.is_late_report(6, 11, lamp(40)), "another target");
        assert!(
            !s.is_late_report(5, 99, lamp(70)),
            "a tx we never sent (wall switch)"
        );
        // A retry with the same tx does not supersede itself.
        s.record(7, 13);
        s.record(7, 13);
        assert!(!s.is_late_report(7, 13, lamp(1)));
    }

    #[test]
    fn a_self_record_with_another_state_is_news() {
        let mut s = SentCommands::default();
        s.record(5, 1);
        s.record(5, 2);
        assert!(s.is_late_report(5, 1, lamp(20)));
        assert!(
            !s.is_late_twin(5, lamp(90)),
            "the wall switch moved it meanwhile"
        );
    }
}
