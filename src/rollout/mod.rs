//! Moving devices between the legacy and the reliable command path by evidence.
//!
//! The bridge hands every command to one [`crate::transport::CommandTransport`]; the rollout
//! controller is the implementation that chooses, per command, which path carries it, counts how
//! every command ended, and rolls the canary back by itself when the reliable path is worse.
//!
//! - [`assign`]: the sticky, cache-free cohort: a fixed hash of a device's topic id.
//! - [`ledger`]: exact per-minute counts per path, the evidence behind every number.
//!
//! Everything except the task and the store is a pure function of its inputs with time passed
//! in, so the detector can be replayed over simulated months in a bench.

pub mod admin;
pub mod assign;
pub mod control;
pub mod controller;
pub mod detector;
pub mod ledger;
pub mod report;
pub mod router;
pub mod settings;
pub mod shadow;
pub mod slo;
pub mod status;
pub mod store;
pub mod task;
