//! The device-facing side of the bridge: the TLS listener that Cync Wi-Fi devices connect to in
//! place of the Cync cloud (port 23779, PROTOCOL.md §1.1).
//!
//! It owns the sockets and, later, one session task per device connection. It must never decode
//! bytes itself (that is `protocol/`), and never let one device's failure reach the listener or
//! another device's session.

pub mod tls;
