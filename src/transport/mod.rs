//! Command paths: how a command for a device becomes packets on a session and ends in a
//! [`CommandOutcome`].
//!
//! Why it exists: "the toggle snapped back" — a command that silently did nothing — is the
//! complaint this bridge exists to fix, so every command ends in a named outcome that is
//! returned, logged with its correlation id, and counted (`tcp_comm_command_total`,
//! `tcp_comm_command_latency_seconds`). It owns the policy (which route, how long to wait, what
//! counts as confirmation); sessions own the sockets and only report what they see
//! (`server::CommandUpdate`), the state store only reports what devices say.
//!
//! - [`outcome`]: [`CommandOutcome`], the bridge-wide outcome type.
//! - [`legacy`]: write once on the preferred route, wait for the `f9` or a confirming report.
//! - [`reliable`]: the sans-I/O delivery state machine (retries across routes, coalescing),
//!   with [`queue`] and [`backoff`] as its parts.
//!
//! The transports must never write to a socket itself, hold a lock across an `.await`, or retry a command that is not
//! idempotent.

pub mod backoff;
mod ending;
mod expect;
pub mod legacy;
pub mod outcome;
mod policy;
pub mod queue;
pub mod reliable;
pub mod service;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use legacy::LegacyTransport;
pub use outcome::CommandOutcome;
pub use service::ReliableTransport;

use crate::device::{DeviceKey, ReportSource};
use crate::protocol::{Command, PeerId};
use crate::server::{CommandToken, Routes, Services, SessionCommand, SessionId};
use crate::telemetry::new_correlation_id;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The name a command is routed by: the topic id users see (`1000-10`, `1000-group-32769`), so
/// that a rollout cohort, include and exclude list are written in the ids of Home Assistant's
/// MQTT topics rather than in wire keys (every session is in the default home on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    /// The cloud home id (0 when no device file names one).
    pub home: u64,
    /// Mesh id or group id.
    pub id: u16,
    /// A Cync group rather than one device.
    pub group: bool,
}

impl RouteKey {
    /// The route key of a wire address, when nothing better is known (a device, never a group).
    pub fn of_device(key: DeviceKey) -> RouteKey {
        RouteKey {
            home: key.home.0,
            id: key.mesh.0,
            group: false,
        }
    }
}

impl std::fmt::Display for RouteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group {
            write!(f, "{}-group-{}", self.home, self.id)
        } else {
            write!(f, "{}-{}", self.home, self.id)
        }
    }
}

/// One command for one device.
#[derive(Clone, Copy, Debug)]
pub struct CommandRequest {
    /// The device (or group) addressed.
    pub key: DeviceKey,
    /// What a rollout routes it by.
    pub route: RouteKey,
    /// What to send. Its target should equal `key.mesh`.
    pub command: Command,
    /// Overall deadline, from submission to outcome.
    pub timeout: Duration,
    /// Correlation id carried through every log line of this command.
    pub correlation: uuid::Uuid,
}

impl CommandRequest {
    /// A request with a fresh UUIDv7 correlation id.
    pub fn new(key: DeviceKey, command: Command, timeout: Duration) -> Self {
        CommandRequest {
            key,
            route: RouteKey::of_device(key),
            command,
            timeout,
            correlation: new_correlation_id(),
        }
    }
}

/// What confirmed a successful command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConfirmedBy {
    /// The device's `f9` response.
    Response,
    /// A report showing the new state.
    Report(ReportSource),
}

/// How a command ended.
#[derive(Clone, Copy, Debug)]
pub struct CommandReport {
    /// The device.
    pub key: DeviceKey,
    #[allow(missing_docs)]
    pub outcome: CommandOutcome,
    /// From submission to outcome.
    pub latency: Duration,
    /// The request's correlation id.
    pub correlation: uuid::Uuid,
    /// The session the command went through, if it was sent.
    pub session: Option<SessionId>,
    /// That session's device id.
    pub via: Option<PeerId>,
    /// What confirmed it, on success.
    pub confirmed_by: Option<ConfirmedBy>,
    /// Packets written for it (0: it never left the bridge).
    pub attempts: u32,
    /// From submission to the first 0x7B receipt, if one came.
    pub receipt_after: Option<Duration>,
    /// A full queue on its way refused it (its outcome says how it ended).
    pub queue_full: bool,
}

impl CommandReport {
    /// A report of `request` that has not been sent anywhere yet.
    pub fn unsent(request: &CommandRequest, outcome: CommandOutcome) -> CommandReport {
        CommandReport {
            key: request.key,
            outcome,
            latency: Duration::ZERO,
            correlation: request.correlation,
            session: None,
            via: None,
            confirmed_by: None,
            attempts: 0,
            receipt_after: None,
            queue_full: false,
        }
    }
}

/// A command's outcome, still to come; boxed so that the bridge can hold any path (legacy,
/// reliable, the rollout controller that chooses between them) behind one `dyn` seam. One small
/// allocation per command is noise next to the TLS write it leads to.
pub type PendingReport<'a> = Pin<Box<dyn Future<Output = CommandReport> + Send + 'a>>;

/// The one seam between the bridge and the device side: every command the bridge sends, and
/// every state query, goes through it. Implementations differ only in delivery policy; they
/// confirm, count and log a command the same way (`ending`).
pub trait CommandTransport: Send + Sync + std::fmt::Debug {
    /// The `transport` label of this path's metrics.
    fn name(&self) -> &'static str;

    /// Delivers `request` and waits for its outcome; `cancel` ends the wait with `cancelled`.
    fn execute<'a>(
        &'a self,
        request: CommandRequest,
        cancel: &'a CancellationToken,
    ) -> PendingReport<'a>;

    /// Asks the mesh behind `key`'s preferred route for every node's state (a mesh-info
    /// request), without waiting: the answer arrives as state reports. Read-only, so never
    /// retried and never counted as a command. `false` when nothing could be sent.
    fn refresh(&self, key: DeviceKey, correlation: uuid::Uuid) -> bool;
}

impl CommandTransport for LegacyTransport {
    fn name(&self) -> &'static str {
        legacy::TRANSPORT_LABEL
    }

    fn execute<'a>(
        &'a self,
        request: CommandRequest,
        cancel: &'a CancellationToken,
    ) -> PendingReport<'a> {
        Box::pin(LegacyTransport::execute(self, request, cancel))
    }

    fn refresh(&self, key: DeviceKey, correlation: uuid::Uuid) -> bool {
        request_mesh_info(self.routes(), key, correlation)
    }
}

impl CommandTransport for ReliableTransport {
    fn name(&self) -> &'static str {
        ReliableTransport::name(self)
    }

    fn execute<'a>(
        &'a self,
        request: CommandRequest,
        cancel: &'a CancellationToken,
    ) -> PendingReport<'a> {
        Box::pin(ReliableTransport::execute(self, request, cancel))
    }

    fn refresh(&self, key: DeviceKey, correlation: uuid::Uuid) -> bool {
        request_mesh_info(self.routes(), key, correlation)
    }
}

/// Sends one mesh-info request through the session that reaches `key` best. Nobody listens to
/// its command updates: the answer lists every node's state and arrives as state reports.
fn request_mesh_info(routes: &Routes, key: DeviceKey, correlation: uuid::Uuid) -> bool {
    let Some(session) = routes.preferred(&key) else {
        return false;
    };
    let (events, _) = mpsc::channel(1);
    let command = SessionCommand {
        command: Command::MeshInfoRequest,
        seq: None,
        token: CommandToken(0),
        correlation,
        events,
    };
    match session.try_submit(command) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "mesh-info refresh not sent");
            false
        }
    }
}

/// Which command path the bridge's own commands take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportMode {
    /// Receipts, retries across routes, de-duplication, coalescing.
    Reliable,
    /// Write once, no retry (what existing bridges do).
    Legacy,
}

impl TransportMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportMode::Reliable => "reliable",
            TransportMode::Legacy => "legacy",
        }
    }
}

/// `[transport]`, validated.
#[derive(Clone, Copy, Debug)]
pub struct TransportSettings {
    /// Overall deadline of one command, from submission to outcome.
    pub command_timeout: Duration,
    /// The reliable path's attempt timeout, retries, backoff and per-device queue.
    pub reliable: reliable::Policy,
}

/// Starts the path `mode` names over the bridge's services; the reliable one runs a service task
/// on `tracker` until `shutdown`.
pub fn start(
    mode: TransportMode,
    policy: reliable::Policy,
    services: &Services,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Arc<dyn CommandTransport> {
    match mode {
        TransportMode::Legacy => Arc::new(LegacyTransport::new(services)),
        TransportMode::Reliable => Arc::new(ReliableTransport::spawn(
            services, policy, tracker, shutdown,
        )),
    }
}
