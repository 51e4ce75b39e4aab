//! Command delivery to devices (issue 5): the reliable and legacy policies over one sans-I/O
//! state machine, de-duplication of device retransmits, per-device coalescing queues with
//! overflow policies, retry backoff, and the one outcome type every command ends with.

pub mod backoff;
pub mod dedup;
mod expect;
pub mod outcome;
pub mod queue;
pub mod reliable;

pub use outcome::CommandOutcome;
