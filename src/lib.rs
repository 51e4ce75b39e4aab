//! cync-bridge: a local replacement for the GE Cync cloud that exposes Cync devices to Home
//! Assistant over MQTT.
//!
//! # Layout
//!
//! Data flows one way; each layer only imports the ones below it (bottom first; the test in
//! `tests/architecture.rs` fails on an import that runs the wrong way):
//!
//! - [`protocol`]: pure codec — bytes ⇄ typed packets, the 0x7E frame, the stream framer. No I/O.
//! - [`capture`]: reading and writing capture text files (real traffic and simulator recordings).
//! - [`telemetry`]: metric names, descriptions, buckets; `/metrics`, `/healthz` and the admin
//!   access rule for endpoints that change state.
//! - [`device`]: what a device *is* — the model catalog (type id → capabilities), the user's
//!   inventory, availability — and what the bridge knows about it: keys and the state store.
//! - [`sim`]: simulated Cync devices — the other side of the same protocol module.
//! - [`cloud`]: the Cync account API (login with an emailed code, homes, devices, rooms) and
//!   the device file an export writes.
//! - [`mqtt`]: the Home Assistant side — topics, discovery and state payloads, command translation.
//! - [`server`]: the device-facing TLS listener (OpenSSL, static-RSA CBC suites), one session
//!   task per device, the mesh routing registry.
//! - [`transport`]: the `CommandTransport` seam, its paths (legacy, reliable) and the bridge-wide
//!   `CommandOutcome`.
//! - [`rollout`]: the controller that routes each command to the legacy or the reliable path
//!   (sticky canary, shadow mode), keeps exact SLO counts and rolls back on its own.
//! - [`bridge`]: the Home Assistant bridge's event loop over MQTT and the command transport.
//! - [`config`]: the one typed config tree (defaults → TOML → `CYNC_*` env), validated once; it
//!   builds every lower layer's own settings type.
//! - [`cli`]: the subcommands of the binary (the only place besides `main` that uses `anyhow`).
#![warn(missing_docs)]
// Functions stay under 80 lines (clippy.toml); CI turns this warning into an error.
#![warn(clippy::too_many_lines)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bridge;
pub mod capture;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod device;
pub mod mqtt;
pub mod protocol;
pub mod rollout;
pub mod server;
pub mod sim;
pub mod telemetry;
pub mod transport;
