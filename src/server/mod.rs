//! The device-facing side of the bridge: the TLS listener that Cync Wi-Fi devices connect to in
//! place of the Cync cloud (port 23779, `docs/protocol.md#transport-and-tls`), one session task per
//! connection, and the mesh routing registry.
//!
//! It owns the sockets (the accept loop, [`session`]) and the map of which session reaches which
//! device ([`routes`]); it writes every device state it hears into the shared
//! [`StateStore`]. Other layers reach a device only through a
//! [`SessionHandle`] found in [`Routes`]. It must never decode bytes itself (that is `protocol/`),
//! never decide a command's outcome (that is `transport/`), and never let one device's failure
//! reach the listener or another device's session.
//!
//! - [`DeviceServer`]: binds, builds TLS, and spawns the accept loop on the caller's tracker.
//! - [`Services`]: the shared registry, state store and metrics that later layers use too.

mod clock;
pub mod codec;
pub mod dedup;
mod ipnet;
mod listener;
pub mod routes;
pub mod session;
mod settings;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openssl::ssl::SslAcceptor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use routes::{RouteInfo, RouteKind, Routes};
pub use session::{
    CloseReason, CommandEvent, CommandToken, CommandUpdate, SessionCommand, SessionHandle,
    SessionId, SubmitError,
};

pub use ipnet::IpNet;
pub use settings::{DeviceServerSettings, ServerSettings};

use crate::device::{HomeId, StateStore, StoreSettings};
use crate::protocol::PeerId;
use crate::telemetry::{Health, Metrics};
use tls::TlsError;

/// Decides which home a device's session belongs to.
///
/// The plug-in point for homes: a resolver that reads the device list would map devices to the Cync
/// home ids of the account export. Until one exists [`SingleHome`] puts every session in
/// [`HomeId::DEFAULT`] (see `device::key` for why clusters are not guessed).
pub trait HomeResolver: Send + Sync + std::fmt::Debug {
    /// The home of the device that said hello with `device`.
    fn home_of(&self, device: PeerId) -> HomeId;
}

/// Every device in one home, [`HomeId::DEFAULT`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SingleHome;

impl HomeResolver for SingleHome {
    fn home_of(&self, _device: PeerId) -> HomeId {
        HomeId::DEFAULT
    }
}

/// The shared parts of the bridge that sessions write and later layers (transport, MQTT) read.
#[derive(Clone, Debug)]
pub struct Services {
    #[allow(missing_docs)]
    pub metrics: Metrics,
    /// Which session reaches which device.
    pub routes: Arc<Routes>,
    /// Last reported state of every device.
    pub state: Arc<StateStore>,
    /// Home of each device.
    pub homes: Arc<dyn HomeResolver>,
}

impl Services {
    /// Fresh services, one home for every device.
    pub fn new(store: &StoreSettings, metrics: Metrics) -> Self {
        Services {
            routes: Arc::new(Routes::new(metrics.clone())),
            state: Arc::new(StateStore::new(
                store.event_queue.get(),
                store.max_waiters.get(),
            )),
            homes: Arc::new(SingleHome),
            metrics,
        }
    }
}

/// What every session shares.
#[derive(Debug)]
pub(crate) struct ServerContext {
    pub(crate) config: Arc<ServerSettings>,
    pub(crate) timezone: chrono_tz::Tz,
    pub(crate) metrics: Metrics,
    pub(crate) routes: Arc<Routes>,
    pub(crate) state: Arc<StateStore>,
    pub(crate) homes: Arc<dyn HomeResolver>,
    pub(crate) shutdown: CancellationToken,
    next_session: AtomicU64,
}

impl ServerContext {
    pub(crate) fn next_session_id(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }
}

/// Why the device server could not start.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen for devices on {addr}: {source}. {hint}")]
    Bind {
        addr: SocketAddr,
        source: io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The TLS acceptor could not be built (certificate, key, OpenSSL).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The blocking TLS set-up task did not finish.
    #[error("TLS set-up did not finish: {0}")]
    TlsTask(String),
}

/// A bound, not yet running device listener.
pub struct DeviceServer {
    listener: TcpListener,
    tls: Option<Arc<SslAcceptor>>,
    ctx: Arc<ServerContext>,
}

impl std::fmt::Debug for DeviceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceServer")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl DeviceServer {
    /// Builds the TLS acceptor (generating the certificate on first start, off the async
    /// threads) and binds `server.listen`. Nothing is accepted until [`spawn`](Self::spawn).
    pub async fn bind(
        config: &DeviceServerSettings,
        services: &Services,
        shutdown: CancellationToken,
    ) -> Result<Self, ServerError> {
        let tls = if config.server.plain_tcp_debug {
            tracing::warn!(
                "server.plain_tcp_debug is on: serving plain TCP, which real devices cannot use"
            );
            None
        } else {
            let settings = config.tls.clone();
            let acceptor = tokio::task::spawn_blocking(move || tls::build_acceptor(&settings))
                .await
                .map_err(|e| ServerError::TlsTask(e.to_string()))??;
            Some(Arc::new(acceptor))
        };
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr,
                hint: bind_hint(&source),
                source,
            })?;
        let ctx = ServerContext {
            config: Arc::new(config.server.clone()),
            timezone: config.timezone,
            metrics: services.metrics.clone(),
            routes: Arc::clone(&services.routes),
            state: Arc::clone(&services.state),
            homes: Arc::clone(&services.homes),
            shutdown,
            next_session: AtomicU64::new(1),
        };
        Ok(DeviceServer {
            listener,
            tls,
            ctx: Arc::new(ctx),
        })
    }

    /// The address actually bound (the port, when `server.listen` asked for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts the accept loop on `tracker`; it and every session end when the shutdown token
    /// given to [`bind`](Self::bind) is cancelled. The loop reports on `/healthz` as
    /// `device_listener`.
    pub fn spawn(self, tracker: &TaskTracker, health: &Health) {
        let liveness = health.register("device_listener");
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(addr = %addr, tls = self.tls.is_some(), "listening for devices");
        }
        let acceptor = listener::Acceptor {
            listener: self.listener,
            tls: self.tls,
            ctx: self.ctx,
            tracker: tracker.clone(),
        };
        tracker.spawn(acceptor.run(liveness));
    }
}

fn bind_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::AddrInUse => {
            "The port is taken: is `cync-bridge serve` (or `toggle`) or the legacy Cync add-on \
             already running? Stop it, or set server.listen / CYNC_SERVER__LISTEN"
        }
        io::ErrorKind::PermissionDenied => {
            "Not allowed to bind this address (ports below 1024 need privileges); set \
             server.listen / CYNC_SERVER__LISTEN"
        }
        io::ErrorKind::AddrNotAvailable => {
            "This host has no such address; set server.listen / CYNC_SERVER__LISTEN"
        }
        _ => "Check server.listen / CYNC_SERVER__LISTEN",
    }
}
