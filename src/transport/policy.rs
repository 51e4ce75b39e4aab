//! The delivery policy both command paths are made of: the reliable one, and the legacy one as
//! the same machine with no retries and no coalescing, so the two differ in numbers only.

use std::time::Duration;

use super::backoff::Backoff;
use super::queue::Overflow;

/// How commands are delivered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// Name used in metrics (`reliable` / `legacy`).
    pub name: &'static str,
    /// How long one attempt waits for confirmation.
    pub attempt_timeout: Duration,
    /// Retries after the first attempt (idempotent commands only).
    pub max_retries: u32,
    /// Delay before each retry.
    pub backoff: Backoff,
    /// Overall limit from submission to outcome.
    pub deadline: Duration,
    /// Supersede queued commands for the same attribute.
    pub coalesce: bool,
    /// Commands waiting per device behind the one in flight.
    pub queue_capacity: usize,
    /// What to do when that queue is full.
    pub overflow: Overflow,
}

impl Policy {
    /// The reliable path's defaults.
    pub fn reliable() -> Self {
        Policy {
            name: "reliable",
            attempt_timeout: Duration::from_millis(1500),
            max_retries: 3,
            backoff: Backoff {
                base: Duration::from_millis(250),
                cap: Duration::from_secs(5),
                jitter: 0.2,
            },
            deadline: Duration::from_secs(10),
            coalesce: true,
            queue_capacity: 16,
            overflow: Overflow::Reject,
        }
    }

    /// Write once, wait for the device, never retry.
    pub fn legacy() -> Self {
        Policy {
            name: "legacy",
            max_retries: 0,
            coalesce: false,
            deadline: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(5),
            ..Policy::reliable()
        }
    }
}
