//! cync-bridge: a local replacement for the GE Cync cloud that exposes Cync devices to Home
//! Assistant over MQTT.
//!
//! # Layout
//!
//! Data flows one way; each layer only imports the ones below it.
//!
//! - [`protocol`]: pure codec — bytes ⇄ typed packets, the 0x7E frame, the stream framer. No I/O.
//! - [`config`]: the one typed config tree (defaults → TOML → `CYNC_*` env), validated once.
//! - [`device`]: what a device *is* — the model catalog (type id → capabilities), the user's
//!   inventory, availability — and what the bridge knows about it: keys and the state store.
//! - [`mqtt`]: the Home Assistant side — topics, discovery and state payloads, command translation.
//! - [`capture`]: reading and writing capture text files (real traffic and simulator recordings).
//! - [`cli`]: the subcommands of the binary (the only place besides `main` that uses `anyhow`).
//! - [`server`]: the device-facing TLS listener (OpenSSL, static-RSA CBC suites), one session
//!   task per device, the mesh routing registry.
//! - [`transport`]: command paths (legacy, reliable) and the bridge-wide `CommandOutcome`.
//! - [`sim`]: simulated Cync devices — the other side of the same protocol module.
//! - [`telemetry`]: metric names, descriptions, buckets; `/metrics` and `/healthz`.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bridge;
pub mod capture;
pub mod cli;
pub mod config;
pub mod device;
pub mod mqtt;
pub mod protocol;
pub mod server;
pub mod sim;
pub mod telemetry;
pub mod transport;
