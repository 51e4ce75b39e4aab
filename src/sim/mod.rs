//! Simulated Cync devices: the client side of the same protocol, used by tests, benches and the
//! `sim` subcommand to exercise the bridge without real hardware.
//!
//! It behaves like the devices in the captures (`docs/protocol.md#evidence`) — their TLS quirks,
//! their connect sequences (`docs/protocol.md#what-devices-do-with-the-cloud`), their answers to
//! commands (`docs/protocol.md#command-responses`) — and like their bad days, through
//! deterministic chaos. It must never borrow code from `server/` to talk to the server: it
//! behaves like a device, as captured on the wire, so that the two sides cannot agree on a
//! mistake. Every byte it sends comes from `protocol::encode`.
//!
//! # Layout
//!
//! - [`home`]: what a home is (devices, relays, groups); [`home::HomeBuilder`]; `generate`:
//!   [`home::generate`], homes drawn from a seed.
//! - `state`: a home's live state, applied-command counts and events ([`AppliedEvent`]), replay
//!   cache, report fan-out.
//! - [`profile`]: the connect sequences real devices show.
//! - `packets`: the packets one device sends, built with the codec.
//! - `session`: one device's protocol behaviour, without I/O.
//! - `device`: one device's task: sockets, timers, reconnects, chaos application.
//! - [`chaos`]: the knobs; `engine` (per packet), `corrupt` (byte damage) and `behaviour`
//!   (receipts, link): the deterministic engines that apply them.
//! - [`config`], [`scenario`]: settings, from Rust, TOML or CLI flags.
//! - `runner` ([`Simulator`]), `handle` ([`SimHandle`], [`SessionHandle`]): starting a simulator
//!   and controlling it at runtime.
//! - [`recorder`], `stats` ([`SessionStats`]): packet logs, capture files, counters.
//! - [`tls`]: the device-shaped TLS client.
//!
//! # Driving it from a test
//!
//! ```no_run
//! # async fn demo(bridge: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
//! use cync_bridge::sim::{SimDeviceKey, HomeBuilder, SimConfig, Simulator};
//! let home = HomeBuilder::new("test", 1)
//!     .wifi(1, 137)
//!     .bluetooth(2, 21)
//!     .relays(1, &[2])
//!     .build()?;
//! let sim = Simulator::start(SimConfig::new(7, vec![home]), bridge).await?;
//! sim.wait_ready(std::time::Duration::from_secs(5)).await?;
//! let relay = SimDeviceKey { home: 0, mesh_id: 1 };
//! assert_eq!(sim.applied(relay), 0);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod behaviour;
pub mod chaos;
pub mod config;
mod corrupt;
mod device;
mod engine;
mod generate;
mod handle;
pub mod home;
mod packets;
pub mod profile;
pub mod recorder;
mod runner;
pub mod scenario;
mod session;
mod state;
mod stats;
pub mod tls;

pub use chaos::{Chaos, ChaosCounts, LinkChaos, Note, PacketChaos, Partition, ReceiptChaos};
pub use config::{Behaviour, CounterPolicy, FrameStuffing, SimConfig, SimDeviceKey, Timing};
pub use device::LinkState;
pub use handle::{SessionHandle, SimError, SimHandle};
pub use home::{generate, GenerateParams, HomeBuilder, SimDevice, SimGroup, SimHome, SimWifi};
pub use profile::ConnectProfile;
pub use recorder::LoggedPacket;
pub use runner::Simulator;
pub use state::{AppliedEvent, APPLIED_EVENTS};
pub use stats::SessionStats;
