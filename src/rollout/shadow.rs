//! Shadow mode: what the reliable path would have decided about a command legacy sent, read off
//! legacy's own report. Nothing is transmitted for it — the bytes a device receives are those of
//! legacy alone — so shadow can run on every command and beside a canary on its legacy cohort.
//!
//! What can be known without sending: when the receipt and the confirmation came, and hence
//! whether the reliable path's attempt timeout would have expired first (it would have retried),
//! and whether another relay reached the device (the retry would have gone there). What cannot:
//! whether that retry would have succeeded where legacy failed — so the shadow series counts
//! legacy's outcome with the packets the reliable path would have sent, and says no more.

use std::time::Duration;

use super::ledger::Ended;
use crate::transport::reliable::Policy;
use crate::transport::{CommandOutcome, CommandReport};

/// What the reliable path would have done with one legacy command.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    /// Counted in the shadow series.
    pub ended: Ended,
    /// The first attempt's timeout would have expired before the outcome.
    pub would_retry: bool,
    /// The retry would have gone through another relay.
    pub would_failover: bool,
    /// When legacy's receipt came.
    pub receipt: Option<Duration>,
    /// When legacy's confirmation came (successes only).
    pub response: Option<Duration>,
}

/// Observes `report` (a legacy command) under the reliable `policy`, with `routes` relays
/// reaching the device when it was sent.
pub fn observe(report: &CommandReport, policy: &Policy, routes: usize) -> Observation {
    let outcome = report.outcome;
    let sent = report.attempts > 0;
    let confirmed_in_time =
        outcome == CommandOutcome::Success && report.latency <= policy.attempt_timeout;
    let retryable = sent
        && !confirmed_in_time
        && !matches!(
            outcome,
            CommandOutcome::Cancelled | CommandOutcome::Superseded
        );
    let would_retry = retryable && policy.max_retries > 0;
    let attempts = if would_retry {
        would_be_attempts(report.latency, policy)
    } else {
        report.attempts
    };
    Observation {
        ended: Ended {
            outcome,
            latency: report.latency,
            attempts,
            queue_full: report.queue_full,
        },
        would_retry,
        would_failover: would_retry && routes > 1,
        receipt: report.receipt_after,
        response: (outcome == CommandOutcome::Success).then_some(report.latency),
    }
}

/// Attempts the reliable path would have sent before `elapsed` (the outcome), using its attempt
/// timeout and the backoff's base delays without jitter, capped at `1 + max_retries`.
fn would_be_attempts(elapsed: Duration, policy: &Policy) -> u32 {
    let mut attempts = 1;
    let mut at = policy.attempt_timeout;
    while attempts <= policy.max_retries && at < elapsed {
        at += policy.backoff.base_delay(attempts - 1) + policy.attempt_timeout;
        attempts += 1;
    }
    attempts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{DeviceKey, HomeId};
    use crate::protocol::Command;
    use crate::transport::CommandRequest;

    fn report(outcome: CommandOutcome, latency_ms: u64) -> CommandReport {
        let request = CommandRequest::new(
            DeviceKey::new(HomeId::DEFAULT, 5),
            Command::Power {
                target: 5,
                on: true,
            },
            Duration::from_secs(5),
        );
        CommandReport {
            latency: Duration::from_millis(latency_ms),
            attempts: 1,
            receipt_after: Some(Duration::from_millis(20)),
            ..CommandReport::unsent(&request, outcome)
        }
    }

    #[test]
    fn a_fast_confirmation_would_not_have_been_retried() {
        let o = observe(
            &report(CommandOutcome::Success, 150),
            &Policy::reliable(),
            2,
        );
        assert!(!o.would_retry && !o.would_failover);
        assert_eq!(o.ended.attempts, 1);
        assert_eq!(o.response, Some(Duration::from_millis(150)));
    }

    #[test]
    fn a_timeout_would_have_been_retried_through_the_other_relay() {
        let policy = Policy::reliable();
        let o = observe(&report(CommandOutcome::Timeout, 5_000), &policy, 2);
        assert!(o.would_retry && o.would_failover);
        // Within legacy's 5 s: attempts at 0, 1.75 s (1.5 s timeout + 250 ms) and 3.75 s
        // (+ 1.5 s + 500 ms); the fourth would have been due at 5.75 s.
        assert_eq!(o.ended.attempts, 3);
        let alone = observe(&report(CommandOutcome::Timeout, 5_000), &policy, 1);
        assert!(
            alone.would_retry && !alone.would_failover,
            "one relay: nowhere else to go"
        );
    }

    #[test]
    fn a_command_that_never_left_would_not_have_been_retried() {
        let mut r = report(CommandOutcome::NoRoute, 0);
        r.attempts = 0;
        let o = observe(&r, &Policy::reliable(), 0);
        assert!(!o.would_retry);
        assert_eq!(o.ended.attempts, 0);
    }
}
