//! Command delivery to devices (issue 5): de-duplication of device retransmits, per-device
//! coalescing queues with overflow policies, and retry backoff.

pub mod backoff;
pub mod dedup;
pub mod queue;
