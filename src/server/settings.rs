//! The device side's validated settings. `config/` builds them from the file and the
//! environment; this layer never reads either.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use super::tls::TlsSettings;
use super::IpNet;
use crate::protocol::PeerId;

/// `[server]`: the device listener, its limits and the session timing
/// (`docs/protocol.md#timing`, `docs/protocol.md#what-the-bridge-does`).
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Address devices connect to (their DNS override points here; port 23779,
    /// `docs/protocol.md#transport-and-tls`).
    pub listen: SocketAddr,
    /// Deadline for a connecting device to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// Deadline for the device's hello (0x23) once TLS is up; real devices send it at once.
    pub hello_timeout: Duration,
    /// Device sessions served at once; a connection beyond this is held for `over_limit_hold`,
    /// then closed.
    pub max_connections: NonZeroUsize,
    /// How long a connection over the limit (or from a source that is not allowed) is held open
    /// before it is closed: devices retry at once when closed
    /// (`docs/protocol.md#tls-parameters` point 4; the legacy add-on holds 14.75 s,
    /// `docs/protocol.md#timing`).
    pub over_limit_hold: Duration,
    /// Connections held at once; beyond this, extra connections are closed immediately.
    pub max_held_connections: NonZeroUsize,
    /// Silence after which a session is considered dead (≈ 3 missed 21-s heartbeats,
    /// `docs/protocol.md#what-the-bridge-does`).
    pub idle_timeout: Duration,
    /// Delay from the hello to the 0xA3 session open (legacy: 0.5 s,
    /// `docs/protocol.md#session-open`).
    pub session_open_delay: Duration,
    /// Delay from the 0xA3 to the mesh-info request (legacy: 1.5 s,
    /// `docs/protocol.md#mesh-info-request`).
    pub mesh_info_delay: Duration,
    /// A session whose pending writes make no progress for this long is closed.
    pub write_timeout: Duration,
    /// Bytes a session may have waiting to be written before it stops taking commands.
    pub send_buffer_bytes: NonZeroUsize,
    /// Commands queued per session before submitters are refused.
    pub command_queue: NonZeroUsize,
    /// Commands per session whose receipt/response is still being matched.
    pub max_inflight: NonZeroUsize,
    /// Devices allowed to connect (empty: all).
    pub allow_device_ids: Vec<PeerId>,
    /// Source networks allowed to connect (empty: all).
    pub allow_networks: Vec<IpNet>,
    /// Serve plain TCP instead of TLS (debugging with socat or a capture tool only).
    pub plain_tcp_debug: bool,
    /// Start every session's msg-id and tx counters from values derived from this seed and
    /// the session id instead of random ones, so two runs send byte-identical packets (the
    /// shadow-mode test compares devices' byte logs). `None` everywhere but in tests: random
    /// starts keep a receipt from an earlier connection from matching a new command.
    pub counter_seed: Option<u64>,
}

/// Everything [`super::DeviceServer::bind`] needs.
#[derive(Clone, Debug)]
pub struct DeviceServerSettings {
    #[allow(missing_docs)]
    pub server: ServerSettings,
    #[allow(missing_docs)]
    pub tls: TlsSettings,
    /// The zone whose local time the 0xC8 time answer carries.
    pub timezone: chrono_tz::Tz,
}
