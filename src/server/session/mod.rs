//! One task per device connection: it owns the socket, answers everything the device expects,
//! learns routes and state, and writes the commands submitted through its [`SessionHandle`].
//!
//! Life cycle (`docs/protocol.md#what-the-bridge-does`): every packet that expects an answer gets
//! it at once, in any state, before or after the hello (`docs/protocol.md#packet-types`: 0x28, 0xC8
//! with local time, 0xD8, 0x48, 0x88 echoing the msg id, 0x7B for every device 0x73). The 0x23
//! hello names the device; the session then registers with the route registry (replacing a
//! half-open older session of the same device), sends 0xA3 after `server.session_open_delay`, and
//! the mesh-info request after `server.mesh_info_delay`; each mesh-info response is answered with
//! the `f8 af` mesh ack (`docs/protocol.md#mesh-info-request`). Commands are taken only after the
//! 0xA3 went out (the legacy add-on insists a device must receive one before it is asked anything,
//! `docs/protocol.md#session-open`). A phone app's 0x13 is refused by closing the connection.
//! Silence for `server.idle_timeout` closes the session.
//!
//! Never blocking the reader: packets are handled synchronously (a map update, a few encoded bytes)
//! and replies are appended to a bounded send buffer that one `select!` branch drains while the
//! read branch keeps running. Backpressure disables a branch instead of blocking: while the buffer
//! is over `server.send_buffer_bytes` no command is taken; a reply that does not fit is dropped and
//! counted; pending writes that make no progress for `server.write_timeout` end the session. A bad
//! packet is counted in `tcp_comm_decode_errors_total` and skipped; it never ends the session, let
//! alone another one.
//!
//! Closing is always visible: one log line with the reason, `tcp_comm_sessions_closed_total`,
//! the routes withdrawn, and a `SessionClosed` update to every command still waiting.

mod handle;
mod inbound;
mod inflight;
mod late;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub(crate) use handle::CloseSignal;
pub use handle::{
    CloseReason, CommandEvent, CommandToken, CommandUpdate, SessionCommand, SessionHandle,
    SessionId, SubmitError,
};
use inflight::{Entry, Inflight, Owner};

use super::codec::DeviceCodec;
use super::ServerContext;
use crate::device::HomeId;
use crate::protocol::{encode, Command, MsgId, PeerId, SeqAllocator};
use crate::server::dedup::Dedup;
use crate::telemetry::SessionGuard;

/// Label used for `device_id` before the hello names the device.
const UNKNOWN_DEVICE: &str = "unknown";

/// Lowest msg id counter of the session's own allocations.
const OWN_MSG_BASE: u16 = 0x8000;
/// Lowest tx of the session's own allocations. tx is LE32 but every observed value fits in 16 bits
/// (cloud `21 00 00 00`, `23 01 00 00`, `docs/protocol.md#sequence-fields`), so the session stays
/// in that range too.
const OWN_TX_BASE: u32 = 0x8000;

/// Read buffer reserved per connection; the framer caps a packet at 4 KiB
/// (`docs/protocol.md#stream-reassembly`).
const READ_BUFFER: usize = 4096;

/// Time allowed to flush the last bytes (an app refusal, shutdown) before the socket closes.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Runs one device session to its end. `close` is a child of the bridge's shutdown token.
pub(crate) async fn run<S>(
    ctx: Arc<ServerContext>,
    stream: S,
    addr: SocketAddr,
    close: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let id = ctx.next_session_id();
    let span = tracing::info_span!(
        "session",
        session = %id,
        peer_addr = %addr,
        device_id = tracing::field::Empty,
    );
    async move {
        let guard = ctx.metrics.session_opened();
        let (read, mut write) = tokio::io::split(stream);
        let reader = FramedRead::with_capacity(read, DeviceCodec::default(), READ_BUFFER);
        let (commands, queue) = mpsc::channel(ctx.config.command_queue.get());
        let close = Arc::new(CloseSignal::new(close));
        let mut session = Session::new(ctx, id, addr, commands, close);
        tracing::debug!("session opened");
        let reason = session.serve(reader, &mut write, queue).await;
        session.finish(reason, guard);
        session.linger(reason, write).await;
    }
    .instrument(span)
    .await;
}

/// Everything one session task owns.
struct Session {
    ctx: Arc<ServerContext>,
    id: SessionId,
    addr: SocketAddr,
    /// The device's own id, from its hello.
    device: Option<PeerId>,
    /// `device_id` metric label.
    label: String,
    home: HomeId,
    handle: Option<SessionHandle>,
    commands: mpsc::Sender<SessionCommand>,
    close: Arc<CloseSignal>,
    seq: SeqAllocator,
    /// Recently seen (peer id, msg id) of counter-carrying packets, to drop retransmits.
    dedup: Dedup,
    inflight: Inflight,
    out: BytesMut,
    /// Set by a handler to end the session after the current packet.
    stop: Option<CloseReason>,
    timers: Timers,
    /// Unknown packet types already logged (each is logged once per session).
    unknown_logged: Vec<u8>,
    /// True once undecodable input was logged at warn (further ones go to debug).
    bad_logged: bool,
    /// Late reports of superseded commands (see [`late::SentCommands`]).
    sent: late::SentCommands,
}

/// The session's deadlines; `None` = not armed.
#[derive(Debug)]
struct Timers {
    /// Last time anything was read.
    last_read: Instant,
    /// A device must have said hello by then; cleared by the hello.
    hello_by: Option<Instant>,
    /// When to send the 0xA3.
    open_at: Option<Instant>,
    /// When to send the mesh-info request.
    mesh_info_at: Option<Instant>,
    /// Since when pending writes have made no progress.
    write_stalled_since: Option<Instant>,
    /// True once the 0xA3 went out (commands are taken from then on).
    opened: bool,
}

/// The session's own msg-id and tx allocator, starting from `msg` and `tx` (upper half of 16
/// bits, clear of a transport's ids from 1).
pub(super) fn own_counters(msg: u16, tx: u16) -> SeqAllocator {
    SeqAllocator::in_range(
        OWN_MSG_BASE,
        u16::MAX,
        OWN_MSG_BASE | (msg >> 2),
        OWN_TX_BASE | u32::from(tx >> 2),
    )
}

/// With `server.counter_seed`: the counters a device's sessions start from, a function of the
/// seed and the device id alone (so two runs agree whatever order devices connect in).
pub(super) fn seeded_counters(seed: u64, device: crate::protocol::PeerId) -> SeqAllocator {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ u64::from(u32::from_be_bytes(device.0)));
    own_counters(rng.gen(), rng.gen())
}

impl Session {
    fn new(
        ctx: Arc<ServerContext>,
        id: SessionId,
        addr: SocketAddr,
        commands: mpsc::Sender<SessionCommand>,
        close: Arc<CloseSignal>,
    ) -> Self {
        let inflight = Inflight::new(ctx.config.max_inflight.get());
        let hello_by = Instant::now() + ctx.config.hello_timeout;
        // Random starting counters make a receipt from an earlier connection unlikely to match a
        // new command (docs/protocol.md#msg-id: devices do not reset their counters either). The
        // session's msg ids and tx values start in the upper half of 16 bits, clear of a transport
        // that allocates its own from 1 (see `SessionCommand::seq`); they stay there when they
        // wrap.
        let seq = own_counters(rand::random(), rand::random());
        Session {
            ctx,
            id,
            addr,
            device: None,
            label: UNKNOWN_DEVICE.to_owned(),
            dedup: Dedup::default(),
            home: HomeId::DEFAULT,
            handle: None,
            commands,
            close,
            seq,
            inflight,
            out: BytesMut::with_capacity(1024),
            sent: late::SentCommands::default(),
            stop: None,
            timers: Timers {
                last_read: Instant::now(),
                hello_by: Some(hello_by),
                open_at: None,
                mesh_info_at: None,
                write_stalled_since: None,
                opened: false,
            },
            unknown_logged: Vec::new(),
            bad_logged: false,
        }
    }

    /// The event loop: read, write, take commands, fire timers — until a reason to stop.
    async fn serve<R, W>(
        &mut self,
        mut reader: FramedRead<R, DeviceCodec>,
        write: &mut WriteHalf<W>,
        mut queue: mpsc::Receiver<SessionCommand>,
    ) -> CloseReason
    where
        R: AsyncRead + Unpin,
        W: AsyncRead + AsyncWrite,
    {
        let token = self.close.token().clone();
        let reason = loop {
            if let Some(reason) = self.stop.take() {
                break reason;
            }
            let wake = self.next_deadline();
            let take_commands = self.accepts_commands();
            tokio::select! {
                // cancel-safe: waiting on a token has no state.
                () = token.cancelled() => break self.close.reason(),
                // cancel-safe: write_buf writes nothing when dropped before it completes, and the
                // unwritten bytes stay in `out`.
                written = write.write_buf(&mut self.out), if !self.out.is_empty() => {
                    self.on_written(written);
                }
                // cancel-safe: FramedRead keeps a partial packet in its own buffer.
                item = reader.next() => self.on_read(item),
                // cancel-safe: recv only removes a command when it returns it. Disabled while the
                // send buffer is full, so commands wait in the bounded queue.
                Some(command) = queue.recv(), if take_commands => {
                    self.ctx.metrics.send_queue_size().dec();
                    self.on_command(command);
                }
                // cancel-safe: a sleep has no state; deadlines are recomputed every turn.
                () = sleep_until(wake) => self.on_timer(Instant::now()),
            }
        };
        // Commands still queued never reach the device.
        queue.close();
        while let Ok(command) = queue.try_recv() {
            self.ctx.metrics.send_queue_size().dec();
            self.notify(
                &Owner {
                    token: command.token,
                    events: command.events,
                },
                CommandEvent::SessionClosed { reason },
            );
        }
        reason
    }

    fn accepts_commands(&self) -> bool {
        self.timers.opened && self.out.len() < self.ctx.config.send_buffer_bytes.get()
    }

    fn next_deadline(&self) -> Instant {
        let cfg = &self.ctx.config;
        let mut next = self.timers.last_read + cfg.idle_timeout;
        let candidates = [
            self.timers.hello_by,
            self.timers.open_at,
            self.timers.mesh_info_at,
            self.timers
                .write_stalled_since
                .map(|t| t + cfg.write_timeout),
            self.inflight.next_expiry(),
        ];
        for at in candidates.into_iter().flatten() {
            next = next.min(at);
        }
        next
    }

    fn on_timer(&mut self, now: Instant) {
        let cfg = Arc::clone(&self.ctx.config);
        if now >= self.timers.last_read + cfg.idle_timeout {
            self.stop = Some(CloseReason::IdleTimeout);
            return;
        }
        if self.timers.hello_by.is_some_and(|t| now >= t) {
            self.stop = Some(CloseReason::NoHello);
            return;
        }
        if self
            .timers
            .write_stalled_since
            .is_some_and(|t| now >= t + cfg.write_timeout)
        {
            self.stop = Some(CloseReason::WriteTimeout);
            return;
        }
        if self.timers.open_at.is_some_and(|t| now >= t) {
            self.timers.open_at = None;
            self.send_session_open(now);
            self.timers.mesh_info_at = Some(now + cfg.mesh_info_delay);
        }
        if self.timers.mesh_info_at.is_some_and(|t| now >= t) {
            self.timers.mesh_info_at = None;
            self.send_own_command(Command::MeshInfoRequest, now);
        }
        self.inflight.expire(now);
    }

    fn on_written(&mut self, written: std::io::Result<usize>) {
        match written {
            Ok(0) | Err(_) => {
                if let Err(e) = written {
                    tracing::debug!(error = %e, "write failed");
                }
                self.stop = Some(CloseReason::WriteError);
            }
            Ok(_) => {
                self.timers.write_stalled_since = (!self.out.is_empty()).then(Instant::now);
            }
        }
    }

    /// Appends one outbound packet built by `build` (an `encode::*` call) unless the send buffer
    /// is full; returns whether it was queued. `msg` is the packet's msg id, for the log.
    fn push(&mut self, kind: u8, msg: Option<MsgId>, build: impl FnOnce(&mut BytesMut)) -> bool {
        if self.out.len() >= self.ctx.config.send_buffer_bytes.get() {
            self.ctx.metrics.queue_full(&self.label, "send");
            self.ctx.metrics.packet_sent(&self.label, "dropped");
            tracing::warn!(
                kind = format_args!("{kind:#04x}"),
                "send buffer full; packet dropped"
            );
            return false;
        }
        if self.out.is_empty() {
            self.timers.write_stalled_since = Some(Instant::now());
        }
        let before = self.out.len();
        build(&mut self.out);
        self.ctx.metrics.packet_sent(&self.label, "ok");
        let len = self.out.len() - before;
        let kind = format_args!("{kind:#04x}");
        match (self.device, msg) {
            (Some(peer), Some(msg)) => {
                tracing::debug!(dir = "tx", kind, len, peer_id = %peer, msg_id = %msg, "packet");
            }
            _ => tracing::debug!(dir = "tx", kind, len, "packet"),
        }
        true
    }

    fn send_session_open(&mut self, now: Instant) {
        let Some(device) = self.device else {
            return;
        };
        let msg = self.seq.next_msg();
        if self.push(0xA3, Some(msg), |out| {
            encode::session_open(out, device, msg)
        }) {
            self.inflight.insert(msg, Entry::new(None, now, None));
        }
        self.timers.opened = true;
    }

    /// The session's own requests (mesh info, mesh ack): device answers are handled by the
    /// session itself, so the entry only serves receipt matching and latency.
    fn send_own_command(&mut self, command: Command, now: Instant) {
        let Some(device) = self.device else {
            return;
        };
        let seq = self.seq.next_for(&command);
        let queued = self.push(0x73, Some(seq.msg), |out| {
            encode::command(out, device, seq.msg, seq.tx, seq.sno, &command)
        });
        if queued {
            self.inflight.insert(seq.msg, Entry::new(None, now, None));
            tracing::debug!(msg_id = %seq.msg, tx = seq.tx, ?command, "session request sent");
        }
    }

    fn on_command(&mut self, submitted: SessionCommand) {
        let now = Instant::now();
        let owner = Owner {
            token: submitted.token,
            events: submitted.events,
        };
        let Some(device) = self.device else {
            // Handles exist only after the hello, so this cannot happen; refuse rather than guess.
            self.notify(
                &owner,
                CommandEvent::SessionClosed {
                    reason: CloseReason::Requested,
                },
            );
            return;
        };
        let command = submitted.command;
        let seq = submitted.seq.unwrap_or_else(|| self.seq.next_for(&command));
        self.push(0x73, Some(seq.msg), |out| {
            encode::command(out, device, seq.msg, seq.tx, seq.sno, &command)
        });
        tracing::info!(
            correlation_id = %submitted.correlation,
            peer_id = %device,
            msg_id = %seq.msg,
            tx = seq.tx,
            ?command,
            "command sent"
        );
        self.notify(&owner, CommandEvent::Sent { seq });
        if let Some(target) = command.target() {
            self.sent.record(target, seq.tx);
        }
        if let Some(forgotten) = self
            .inflight
            .insert(seq.msg, Entry::new(Some(seq.tx), now, Some(owner)))
        {
            tracing::debug!(
                token = forgotten.token.0,
                "inflight table full; oldest command forgotten"
            );
        }
    }

    /// Sends an update to a command's submitter without ever waiting.
    fn notify(&self, owner: &Owner, event: CommandEvent) {
        let update = CommandUpdate {
            token: owner.token,
            session: self.id,
            at: Instant::now(),
            event,
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = owner.events.try_send(update) {
            self.ctx.metrics.queue_full(&self.label, "command_events");
        }
    }

    /// Makes the session visible in the route registry once the hello named the device.
    fn register(&mut self, device: PeerId) {
        let handle = SessionHandle {
            id: self.id,
            device,
            addr: self.addr,
            home: self.home,
            commands: self.commands.clone(),
            close: Arc::clone(&self.close),
            metrics: self.ctx.metrics.clone(),
        };
        if let Some(old) = self.ctx.routes.register(handle.clone()) {
            tracing::info!(old_session = %old.id(), old_addr = %old.addr(), "device reconnected; closing its old session");
            old.close(CloseReason::Replaced);
        }
        self.handle = Some(handle);
    }

    /// The last bytes, then the close: a final flush when the session ended deliberately, a hold
    /// for a device that is not allowed, a clean TLS close_notify where the peer still listens.
    async fn linger<W: AsyncWrite>(&mut self, reason: CloseReason, mut write: WriteHalf<W>) {
        match reason {
            CloseReason::AppLogin | CloseReason::Shutdown | CloseReason::Requested => {
                flush(&mut write, &mut self.out).await;
            }
            CloseReason::DeviceNotAllowed => {
                // Hold the connection before closing, like one over the limit: devices retry
                // at once when closed (docs/protocol.md#tls-parameters).
                tokio::select! {
                    () = tokio::time::sleep(self.ctx.config.over_limit_hold) => {}
                    () = self.close.token().cancelled() => {}
                }
            }
            _ => {}
        }
        // A dead peer must not hold us up.
        let _ = tokio::time::timeout(CLOSE_FLUSH, write.shutdown()).await;
    }

    /// Makes the end visible: routes withdrawn, waiting commands told, metric, one log line.
    fn finish(&mut self, reason: CloseReason, guard: SessionGuard) {
        let withdrawn = if self.handle.is_some() {
            self.ctx.routes.withdraw(self.id)
        } else {
            0
        };
        for owner in self.inflight.drain_owners() {
            self.notify(&owner, CommandEvent::SessionClosed { reason });
        }
        guard.close(reason.as_str());
        tracing::info!(
            reason = reason.as_str(),
            routes_withdrawn = withdrawn,
            "session closed"
        );
    }
}

/// Writes what is left in `out`, bounded by [`CLOSE_FLUSH`].
async fn flush<W: AsyncWrite>(write: &mut WriteHalf<W>, out: &mut BytesMut) {
    let _ = tokio::time::timeout(CLOSE_FLUSH, async {
        while !out.is_empty() {
            match write.write_buf(out).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests;
