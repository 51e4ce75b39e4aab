//! Simulated Cync devices: the client side of the same protocol, used by tests, benches and the
//! `sim` subcommand to exercise the bridge without real hardware.
//!
//! It owns the simulated device's connection (TLS connector today). It must never borrow code
//! from `server/` to talk to the server — it behaves like a device, as captured on the wire, so
//! that the two sides cannot agree on a mistake.

pub mod tls;
