//! The accept loop: admits device connections within limits, shakes hands, starts sessions.
//!
//! Limits, so that no number of devices or misbehaving clients can exhaust the bridge: the number
//! of sessions is bounded by a `Semaphore` (`server.max_connections`); a connection over the limit
//! — or from a network outside `server.allow_networks` — is *held* open unanswered for
//! `server.over_limit_hold` and then closed, because a device whose connection is closed at once
//! retries at once (54 hellos from 25 devices in 74 s, `docs/protocol.md#tls-parameters`; the
//! legacy server holds 14.75 s, `docs/protocol.md#timing`). Holds are bounded too
//! (`server.max_held_connections`); beyond that a connection is closed immediately. The TLS
//! handshake has a deadline (`server.handshake_timeout`), so a client that never finishes it costs
//! one slot for that long and nothing else.
//!
//! Accept errors (out of file descriptors, …) back off exponentially up to 2 s and never end the
//! loop; `/healthz` reports the listener failing meanwhile. No error of one connection ever
//! reaches the loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{ErrorCode, SslAcceptor};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use super::tls::{self, TlsError};
use super::{session, ServerContext};
use crate::telemetry::Liveness;

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What the accept loop needs.
pub(crate) struct Acceptor {
    pub(crate) listener: TcpListener,
    pub(crate) tls: Option<Arc<SslAcceptor>>,
    pub(crate) ctx: Arc<ServerContext>,
    pub(crate) tracker: TaskTracker,
}

impl Acceptor {
    /// Accepts until shutdown. `liveness` reports the loop on `/healthz`.
    pub(crate) async fn run(self, liveness: Liveness) {
        let slots = Arc::new(Semaphore::new(self.ctx.config.max_connections.get()));
        let holds = Arc::new(Semaphore::new(self.ctx.config.max_held_connections.get()));
        let mut backoff = ACCEPT_BACKOFF_MIN;
        let shutdown = self.ctx.shutdown.clone();
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                // cancel-safe: TcpListener::accept loses no connection when dropped (tokio docs).
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, addr)) => {
                    if backoff > ACCEPT_BACKOFF_MIN {
                        liveness.recover();
                        backoff = ACCEPT_BACKOFF_MIN;
                    }
                    self.admit(tcp, addr, &slots, &holds);
                }
                Err(error) => {
                    tracing::warn!(%error, backoff_ms = backoff.as_millis() as u64, "accepting a device connection failed; retrying");
                    liveness.fail(format!("device listener cannot accept: {error}"));
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
        liveness.retire();
    }

    fn admit(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
        slots: &Arc<Semaphore>,
        holds: &Arc<Semaphore>,
    ) {
        // Replies are small and latency matters more than packing (TCP_NODELAY).
        let _ = tcp.set_nodelay(true);
        let networks = &self.ctx.config.allow_networks;
        if !networks.is_empty() && !networks.iter().any(|n| n.contains(addr.ip())) {
            self.ctx.metrics.connection_rejected("network_not_allowed");
            tracing::debug!(peer_addr = %addr, "source not in server.allow_networks; holding, then closing");
            return self.hold(tcp, holds);
        }
        match Arc::clone(slots).try_acquire_owned() {
            Ok(permit) => {
                let ctx = Arc::clone(&self.ctx);
                let tls = self.tls.clone();
                self.tracker.spawn(connection(ctx, tcp, addr, tls, permit));
            }
            Err(_) => {
                self.ctx.metrics.connection_rejected("over_limit");
                tracing::warn!(
                    peer_addr = %addr,
                    max_connections = self.ctx.config.max_connections.get(),
                    "too many device connections (server.max_connections); holding, then closing"
                );
                self.hold(tcp, holds);
            }
        }
    }

    /// Keeps `tcp` open, unread, for `server.over_limit_hold`, then closes it; closes at once when
    /// the hold pool is full.
    fn hold(&self, tcp: TcpStream, holds: &Arc<Semaphore>) {
        let Ok(permit) = Arc::clone(holds).try_acquire_owned() else {
            self.ctx.metrics.connection_rejected("hold_pool_full");
            return;
        };
        let hold = self.ctx.config.over_limit_hold;
        let shutdown = self.ctx.shutdown.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(hold) => {}
                () = shutdown.cancelled() => {}
            }
            drop(tcp);
            drop(permit);
        });
    }
}

/// One admitted connection: TLS (unless the debug flag says plain TCP), then its session.
async fn connection(
    ctx: Arc<ServerContext>,
    tcp: TcpStream,
    addr: SocketAddr,
    tls: Option<Arc<SslAcceptor>>,
    _permit: OwnedSemaphorePermit,
) {
    let close = ctx.shutdown.child_token();
    let Some(acceptor) = tls else {
        return session::run(ctx, tcp, addr, close).await;
    };
    let handshake = tokio::time::timeout(ctx.config.handshake_timeout, tls::accept(&acceptor, tcp));
    let outcome = tokio::select! {
        () = close.cancelled() => return,
        // Not resumable, and need not be: dropping a half-done handshake at shutdown closes the
        // socket, which is the intent.
        outcome = handshake => outcome,
    };
    match outcome {
        Ok(Ok(stream)) => session::run(ctx, stream, addr, close).await,
        Ok(Err(error)) => {
            let reason = handshake_failure(&error);
            ctx.metrics.tls_handshake_failure(reason);
            tracing::debug!(peer_addr = %addr, reason, %error, "TLS handshake failed");
        }
        Err(_) => {
            ctx.metrics.tls_handshake_failure("timeout");
            tracing::debug!(peer_addr = %addr, "TLS handshake timed out (server.handshake_timeout)");
        }
    }
}

/// A small, fixed vocabulary for `tcp_comm_tls_handshake_failures_total{reason}`.
fn handshake_failure(error: &TlsError) -> &'static str {
    match error {
        TlsError::Handshake { source, .. } => match source.code() {
            ErrorCode::SYSCALL | ErrorCode::ZERO_RETURN => "closed",
            ErrorCode::SSL => "protocol",
            _ => "other",
        },
        _ => "setup",
    }
}
