//! How the rest of the bridge talks to one device session: the session's command interface.
//!
//! A session task owns its socket; nobody else writes to it, so writes never interleave. Others
//! hold a cheap, cloneable [`SessionHandle`] and submit [`SessionCommand`]s into the session's
//! bounded queue. The session allocates the per-connection msg id and tx
//! (`docs/protocol.md#sequence-fields`), writes the command, and reports everything it can
//! correlate back to the submitter's own bounded sink as [`CommandUpdate`]s: `Sent` (with the
//! sequence values used), `Receipt` (the device's 0x7B, matched by msg id verbatim), `Response`
//! (the device's `f9`, matched by tx), `SessionClosed`.
//!
//! That split is what the transports need: the legacy path (write once, wait) gives each command
//! its own small sink; the reliable path gives all its commands one shared sink and
//! feeds the updates into its sans-I/O state machine (`on_receipt`, `on_response`,
//! `on_session_lost`), choosing per attempt which session to submit to. Sessions never retry,
//! never decide an outcome, and never block on a sink: a full sink loses the update (counted in
//! `tcp_comm_queue_full_total{queue_type="command_events"}`) and the submitter's deadline decides.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::device::HomeId;
use crate::protocol::{Command, MsgId, PeerId, Seq};
use crate::telemetry::Metrics;

/// Process-unique id of a session; larger ids are newer sessions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// A submitter-chosen id that tells a command's updates apart on a shared sink.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct CommandToken(pub u64);

/// One command for one session.
#[derive(Debug)]
pub struct SessionCommand {
    /// Sent with the session's own msg id and tx unless `seq` gives them.
    pub command: Command,
    /// Sequence values to use verbatim, for a transport that allocates per-session counters itself
    /// (the reliable path's state machine); `None` lets the session allocate. The session's own
    /// requests (0xA3, mesh info, mesh ack) and its own allocations use msg ids 0x8000–0xFFFF, so a
    /// caller counting up from 1 does not collide with them for 32,767 commands.
    pub seq: Option<Seq>,
    /// Echoed in every update.
    pub token: CommandToken,
    /// The command's correlation id, logged by the session with the packet it becomes.
    pub correlation: uuid::Uuid,
    /// Where updates go (bounded; see the module note).
    pub events: mpsc::Sender<CommandUpdate>,
}

/// Something the session learned about a submitted command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(missing_docs)]
pub struct CommandUpdate {
    pub token: CommandToken,
    /// The session reporting.
    pub session: SessionId,
    /// When the session saw it.
    pub at: Instant,
    pub event: CommandEvent,
}

/// What happened to a submitted command, as far as its session can tell.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(missing_docs)]
pub enum CommandEvent {
    /// Encoded into the session's send buffer with these sequence values.
    Sent {
        /// Msg id (echoed by the receipt) and tx (echoed by the response).
        seq: Seq,
    },
    /// The device's 0x7B receipt echoed the msg id: the packet arrived. It does not mean the
    /// command executed (`docs/protocol.md#receipts`).
    Receipt { msg: MsgId },
    /// The device's `f9` response carried the command's tx (`docs/protocol.md#command-responses`).
    Response {
        tx: u32,
        /// The frame op the device echoed.
        op: u8,
        /// The payload byte (`00` in every capture).
        status: u8,
    },
    /// The session closed before the command was answered.
    SessionClosed { reason: CloseReason },
}

/// Why a session ended; also the `reason` label of `tcp_comm_sessions_closed_total`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum CloseReason {
    /// The device closed the connection.
    Eof = 1,
    /// Reading failed (TLS error, connection reset).
    ReadError,
    /// A write returned an error (connection reset, TLS failure).
    WriteError,
    /// Pending writes made no progress within `server.write_timeout`.
    WriteTimeout,
    /// Nothing was received within `server.idle_timeout`.
    IdleTimeout,
    /// The same device connected again; this is the old, half-open session.
    Replaced,
    /// The bridge is shutting down.
    Shutdown,
    /// A phone app (0x13) connected; the bridge does not serve the app
    /// (`docs/protocol.md#phone-app-login`).
    AppLogin,
    /// The device is not in `server.allow_device_ids`.
    DeviceNotAllowed,
    /// Closed on request through [`SessionHandle::close`].
    Requested,
    /// TLS was set up but no hello (0x23) followed within `server.hello_timeout`: not a device,
    /// or a client holding a slot.
    NoHello,
}

impl CloseReason {
    /// Stable metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Eof => "eof",
            CloseReason::ReadError => "read_error",
            CloseReason::WriteError => "write_error",
            CloseReason::WriteTimeout => "write_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Replaced => "replaced",
            CloseReason::Shutdown => "shutdown",
            CloseReason::AppLogin => "app_login_refused",
            CloseReason::DeviceNotAllowed => "device_not_allowed",
            CloseReason::Requested => "requested",
            CloseReason::NoHello => "no_hello",
        }
    }

    fn from_u8(value: u8) -> Option<Self> {
        use CloseReason::*;
        [
            Eof,
            ReadError,
            WriteError,
            WriteTimeout,
            IdleTimeout,
            Replaced,
            Shutdown,
            AppLogin,
            DeviceNotAllowed,
            Requested,
            NoHello,
        ]
        .into_iter()
        .find(|r| *r as u8 == value)
    }
}

/// Why a command was not taken; the command is handed back so the caller can try elsewhere.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The session's command queue (`server.command_queue`) is full.
    #[error("session command queue is full")]
    Full(SessionCommand),
    /// The session has ended; the command was not sent on it and may go to another route.
    #[error("session is closed")]
    Closed(SessionCommand),
}

impl SubmitError {
    /// Hands the refused command back, so the caller can try another session.
    pub fn into_command(self) -> SessionCommand {
        match self {
            SubmitError::Full(c) | SubmitError::Closed(c) => c,
        }
    }
}

/// A request to close a session, shared by its handles: a token plus the reason to record.
#[derive(Debug, Default)]
pub(crate) struct CloseSignal {
    token: CancellationToken,
    reason: AtomicU8,
}

impl CloseSignal {
    pub(crate) fn new(token: CancellationToken) -> Self {
        CloseSignal {
            token,
            reason: AtomicU8::new(0),
        }
    }

    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The reason given to [`SessionHandle::close`]; `Shutdown` when the parent token (the
    /// bridge's shutdown) was cancelled instead.
    pub(crate) fn reason(&self) -> CloseReason {
        CloseReason::from_u8(self.reason.load(Ordering::Acquire)).unwrap_or(CloseReason::Shutdown)
    }
}

/// The cloneable address of one live session.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    pub(crate) id: SessionId,
    pub(crate) device: PeerId,
    pub(crate) addr: SocketAddr,
    pub(crate) home: HomeId,
    pub(crate) commands: mpsc::Sender<SessionCommand>,
    pub(crate) close: Arc<CloseSignal>,
    /// `tcp_comm_send_queue_size` counts commands between `try_submit` and the session taking
    /// them (or dropping them at its end).
    pub(crate) metrics: Metrics,
}

impl SessionHandle {
    /// Unique per bridge run, never reused, unlike the device id (a device reconnects).
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The device's own id (from its 0x23 hello).
    pub fn device(&self) -> PeerId {
        self.device
    }

    /// The device's IP address and port, as the listener accepted it.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Decided once, at the hello, by the server's `HomeResolver`.
    pub fn home(&self) -> HomeId {
        self.home
    }

    /// Queues a command without waiting: a full queue is refused at once (the reader of the
    /// session is never involved, so a slow device slows only its own submitters).
    pub fn try_submit(&self, command: SessionCommand) -> Result<(), SubmitError> {
        // Counted before the send, so the session's decrement can never come first.
        let queued = self.metrics.send_queue_size();
        queued.inc();
        self.commands.try_send(command).map_err(|e| {
            queued.dec();
            match e {
                mpsc::error::TrySendError::Full(c) => SubmitError::Full(c),
                mpsc::error::TrySendError::Closed(c) => SubmitError::Closed(c),
            }
        })
    }

    /// Asks the session to close with `reason`; the first reason given wins.
    pub fn close(&self, reason: CloseReason) {
        let _ = self.close.reason.compare_exchange(
            0,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.close.token.cancel();
    }

    /// True once the session has ended (or been asked to).
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed() || self.close.token.is_cancelled()
    }
}
