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
mod expect;
pub mod legacy;
pub mod outcome;
pub mod queue;
pub mod reliable;
pub mod service;

use std::time::Duration;

pub use legacy::LegacyTransport;
pub use outcome::CommandOutcome;

use crate::device::{DeviceKey, ReportSource};
use crate::protocol::{Command, PeerId};
use crate::server::SessionId;
use crate::telemetry::new_correlation_id;
use tokio_util::sync::CancellationToken;

/// One command for one device.
#[derive(Clone, Copy, Debug)]
pub struct CommandRequest {
    /// The device (or group) addressed.
    pub key: DeviceKey,
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
    /// The outcome.
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
}

/// The command paths behind one interface: both share codec, sessions and routes and differ only
/// in policy (STYLE habit 20).
#[allow(async_fn_in_trait)]
pub trait CommandTransport {
    /// The `transport` label of this path's metrics.
    fn name(&self) -> &'static str;
    /// Delivers `request` and waits for its outcome; `cancel` ends the wait with `cancelled`.
    async fn execute(&self, request: CommandRequest, cancel: &CancellationToken) -> CommandReport;
}

impl CommandTransport for LegacyTransport {
    fn name(&self) -> &'static str {
        legacy::TRANSPORT_LABEL
    }

    async fn execute(&self, request: CommandRequest, cancel: &CancellationToken) -> CommandReport {
        LegacyTransport::execute(self, request, cancel).await
    }
}

impl CommandTransport for service::ReliableTransport {
    fn name(&self) -> &'static str {
        service::ReliableTransport::name(self)
    }

    async fn execute(&self, request: CommandRequest, cancel: &CancellationToken) -> CommandReport {
        service::ReliableTransport::execute(self, request, cancel).await
    }
}

/// The path chosen at run time (config `transport.mode`, or `toggle --transport`).
#[derive(Debug)]
pub enum SelectedTransport {
    /// Write once.
    Legacy(LegacyTransport),
    /// Retries, failover, coalescing.
    Reliable(service::ReliableTransport),
}

impl SelectedTransport {
    /// Starts the path for `mode` over the bridge's services (`policy`: the reliable path's).
    pub fn start(
        mode: crate::config::TransportMode,
        policy: reliable::Policy,
        services: &crate::server::Services,
        tracker: &tokio_util::task::TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        match mode {
            crate::config::TransportMode::Legacy => {
                SelectedTransport::Legacy(LegacyTransport::new(services))
            }
            crate::config::TransportMode::Reliable => SelectedTransport::Reliable(
                service::ReliableTransport::spawn(services, policy, tracker, shutdown),
            ),
        }
    }
}

impl CommandTransport for SelectedTransport {
    fn name(&self) -> &'static str {
        match self {
            SelectedTransport::Legacy(t) => CommandTransport::name(t),
            SelectedTransport::Reliable(t) => CommandTransport::name(t),
        }
    }

    async fn execute(&self, request: CommandRequest, cancel: &CancellationToken) -> CommandReport {
        match self {
            SelectedTransport::Legacy(t) => LegacyTransport::execute(t, request, cancel).await,
            SelectedTransport::Reliable(t) => t.execute(request, cancel).await,
        }
    }
}
