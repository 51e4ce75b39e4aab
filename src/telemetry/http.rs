//! The telemetry listener: accepts connections and drives each through hyper's HTTP/1 server,
//! answering with an axum [`Router`] (`/metrics`, `/healthz`, and any admin routes mounted
//! behind [`access`](super::access)).
//!
//! Why axum on hyper's connection builder rather than `axum::serve`: axum gives the routing, the
//! method handling (405 with `Allow`) and the middleware/extractor model the admin access rule is
//! written in; hyper's `http1::Builder` gives what `axum::serve` hides and the endpoint must
//! guarantee — a header-read deadline and a cap on the request head — and driving connections
//! ourselves gives the write deadline, the connection cap and the peer address (the access rule
//! recognises Home Assistant's ingress by it). hyper + hyper-util alone would mean hand-written
//! routing and method handling again.
//!
//! What it must never do: let one client affect another or the bridge. Every connection has a
//! header-read deadline (a slow-loris client is cut off), a request-head cap (431, no unbounded
//! buffer), a total deadline covering the response (a client that stops reading is dropped), and
//! the number of connections is capped. Over the cap the *oldest* connection is shed, never the
//! new one: idle or slow connections cannot starve `/healthz`, because the supervisor's probe,
//! being newest, is always admitted. One request per connection (`connection: close`): scrapers
//! reconnect every interval anyway, and it removes keep-alive state. It shares nothing with the
//! device port (own listener, own tasks). The accept loop never gives up; it backs off on errors.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use super::{endpoints, Health, Metrics};

/// Per-connection limits of the telemetry endpoint.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Deadline for receiving the whole request head, from accept; then the connection is closed.
    pub read_timeout: Duration,
    /// Deadline for handling the request and writing the whole response, after the head.
    pub write_timeout: Duration,
    /// Largest request head accepted (request line plus headers); larger gets 431. The read
    /// buffer is this size, but never under hyper's minimum of 8 KiB.
    pub max_request_bytes: usize,
    /// Connections served at once; a new one beyond it closes the oldest.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    /// 5 s to send a request (a scraper sends ~200 bytes at once), 10 s to take a response of up
    /// to a few MB (2,000 devices), 8 KiB of request head (curl and Prometheus send < 512 B),
    /// 32 connections (one Prometheus and one supervisor need 2).
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_request_bytes: 8 * 1024,
            max_connections: 32,
        }
    }
}

/// hyper refuses (panics on) a smaller read buffer limit.
const MIN_READ_BUFFER: usize = 8 * 1024;

/// Backoff after a failed `accept` (e.g. out of file descriptors): starts here, doubles, capped.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Serves `/metrics` and `/healthz` on `listener` with [`HttpLimits::default`] until `shutdown`
/// is cancelled, then waits for in-flight connections (each bounded by its deadlines) to end.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    health: Health,
    shutdown: CancellationToken,
) {
    serve_with_limits(listener, metrics, health, shutdown, HttpLimits::default()).await;
}

/// [`serve`] with explicit limits.
pub async fn serve_with_limits(
    listener: TcpListener,
    metrics: Metrics,
    health: Health,
    shutdown: CancellationToken,
    limits: HttpLimits,
) {
    let router = endpoints::router(metrics, health);
    serve_router(listener, router, shutdown, limits).await;
}

/// Serves any router under the endpoint's limits: [`endpoints::router`] merged with admin routes
/// behind [`AccessRule::protect`](super::access::AccessRule::protect). Handlers can extract
/// `ConnectInfo<SocketAddr>` (the TCP peer).
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    limits: HttpLimits,
) {
    let tracker = TaskTracker::new();
    let table = Arc::new(ConnectionTable::default());
    let limits = Arc::new(limits);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            // cancel-safe: `TcpListener::accept` loses no connection when the branch is dropped.
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF_MIN;
                accepted
            }
            Err(error) => {
                tracing::warn!(%error, ?backoff, "telemetry endpoint: accept failed; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        next_id = next_id.wrapping_add(1);
        let id = next_id;
        let cancel = shutdown.child_token();
        if table.admit(id, cancel.clone(), limits.max_connections) {
            tracing::debug!(%peer, "telemetry endpoint: connection limit reached; shed the oldest");
        }
        let (table, limits, router) = (Arc::clone(&table), Arc::clone(&limits), router.clone());
        tracker.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = serve_connection(stream, peer, router, &limits) => {}
            }
            table.remove(id);
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// One request on one connection, within the read deadline (hyper's) and the total deadline.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: &HttpLimits,
) {
    let service = router.map_request(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_buf_size(limits.max_request_bytes.max(MIN_READ_BUFFER))
        .max_header_size(limits.max_request_bytes)
        .keep_alive(false);
    let connection =
        builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    let total = limits.read_timeout.saturating_add(limits.write_timeout);
    match tokio::time::timeout(total, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%peer, %error, "telemetry endpoint: connection error"),
        Err(_elapsed) => tracing::debug!(%peer, "telemetry endpoint: connection deadline passed"),
    }
}

/// Open connections, oldest first, each with the token that ends it.
#[derive(Default)]
struct ConnectionTable {
    open: Mutex<VecDeque<(u64, CancellationToken)>>,
}

impl ConnectionTable {
    /// Adds a connection; if that makes more than `max`, cancels the oldest ones and says so.
    fn admit(&self, id: u64, cancel: CancellationToken, max: usize) -> bool {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.push_back((id, cancel));
        let mut shed = false;
        while open.len() > max.max(1) {
            if let Some((_, oldest)) = open.pop_front() {
                oldest.cancel();
                shed = true;
            }
        }
        shed
    }

    fn remove(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|(open_id, _)| *open_id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_sheds_oldest_first_and_never_the_newcomer() {
        let table = ConnectionTable::default();
        let tokens: Vec<CancellationToken> = (0..4).map(|_| CancellationToken::new()).collect();
        for (id, token) in tokens.iter().enumerate() {
            table.admit(id as u64, token.clone(), 2);
        }
        let cancelled: Vec<bool> = tokens.iter().map(CancellationToken::is_cancelled).collect();
        assert_eq!(cancelled, [true, true, false, false]);
        table.remove(2);
        assert!(!table.admit(9, CancellationToken::new(), 2));
        assert!(!tokens[3].is_cancelled());
    }
}
