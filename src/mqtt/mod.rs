//! The Home Assistant side: MQTT topics, discovery payloads, state payloads and the translation
//! of HA commands into Cync commands. Everything here is pure (no broker I/O) so tests can
//! assert exact topics and payloads; the client task that talks to the broker builds on it.

pub mod client;
pub mod command;
pub mod discovery;
pub mod rollout;
pub mod state;
pub mod topics;
pub mod units;

#[cfg(feature = "embedded-broker")]
pub mod broker;
