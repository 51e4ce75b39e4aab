//! Helpers shared by the integration tests: a minimal bridge-like server built only from the
//! codec and `server::tls::build_acceptor` ([`server`]), and access to the real captures in
//! `../shared/fixtures` ([`fixtures`]).
//!
//! Each test binary uses a different subset, so unused helpers are expected here.
#![allow(dead_code)]

pub mod fixtures;
pub mod rig;
pub mod server;
