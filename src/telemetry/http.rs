//! The telemetry endpoint: `GET /metrics` and `GET /healthz` over a minimal HTTP/1.1 responder.
//!
//! Why it exists: Prometheus scrapes `/metrics` and supervisors poll `/healthz`; two fixed routes
//! do not justify an HTTP framework. It owns the telemetry listener and one short-lived task per
//! connection (spawned on a `TaskTracker`, all ended by the shutdown token).
//!
//! What it must never do: let one client affect another or the bridge. Every connection has a
//! total read deadline (a slow-loris client is cut off, not waited for), a request-size cap (no
//! unbounded buffer), a write deadline (a client that stops reading is dropped), and the number of
//! connections is capped; over the cap a new connection is closed at once rather than queued. One
//! request per connection (`Connection: close`): scrapers reconnect every interval anyway, and
//! it removes keep-alive state. The accept loop never gives up; it backs off on errors.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Health, Metrics};

/// Per-connection limits of the telemetry endpoint.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Deadline for receiving the whole request head, from accept.
    pub read_timeout: Duration,
    /// Deadline for writing the whole response.
    pub write_timeout: Duration,
    /// Largest request head accepted (request line plus headers); larger gets 431.
    pub max_request_bytes: usize,
    /// Connections served at once; more are closed immediately.
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
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    let mut backoff = ACCEPT_BACKOFF_MIN;
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
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, "telemetry endpoint: connection limit reached; closing");
            continue; // dropping `stream` closes it
        };
        let connection = Connection {
            metrics: metrics.clone(),
            health: health.clone(),
            limits: Arc::clone(&limits),
        };
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = connection.handle(stream) => {}
            }
            drop(slot);
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// What one connection task needs.
struct Connection {
    metrics: Metrics,
    health: Health,
    limits: Arc<HttpLimits>,
}

/// Why no complete request head was read.
enum ReadError {
    /// The peer closed or the socket failed; nothing to answer.
    Gone,
    /// The head grew past the limit.
    TooLarge,
    /// The request line is not `METHOD SP TARGET SP HTTP/1.x`.
    Malformed,
}

/// A parsed request line; headers are read (to drain them) but not interpreted.
struct Request {
    head_only: bool,
    method_allowed: bool,
    path: String,
}

struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
    allow: bool,
}

impl Response {
    fn text(status: &'static str, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            allow: false,
        }
    }
}

impl Connection {
    async fn handle(self, mut stream: TcpStream) {
        let deadline = self.limits.read_timeout;
        let max = self.limits.max_request_bytes;
        let request = tokio::time::timeout(deadline, read_request(&mut stream, max)).await;
        let (response, head_only) = match request {
            Ok(Ok(request)) => (self.route(&request), request.head_only),
            Ok(Err(ReadError::Gone)) => return,
            Ok(Err(ReadError::TooLarge)) => (
                Response::text("431 Request Header Fields Too Large", "request too large\n"),
                false,
            ),
            Ok(Err(ReadError::Malformed)) => {
                (Response::text("400 Bad Request", "bad request\n"), false)
            }
            Err(_elapsed) => (
                Response::text("408 Request Timeout", "request timeout\n"),
                false,
            ),
        };
        let write = write_response(&mut stream, &response, head_only);
        match tokio::time::timeout(self.limits.write_timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%error, "telemetry endpoint: write failed"),
            Err(_elapsed) => {
                tracing::debug!("telemetry endpoint: client did not take the response")
            }
        }
    }

    fn route(&self, request: &Request) -> Response {
        if !request.method_allowed {
            let mut response = Response::text("405 Method Not Allowed", "method not allowed\n");
            response.allow = true;
            return response;
        }
        match request.path.as_str() {
            "/metrics" => Response {
                status: "200 OK",
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: self.metrics.render(),
                allow: false,
            },
            "/healthz" => match self.health.check() {
                Ok(()) => Response::text("200 OK", "ok\n"),
                Err(unhealthy) => Response::text(
                    "503 Service Unavailable",
                    format!("unhealthy: {unhealthy}\n"),
                ),
            },
            _ => Response::text("404 Not Found", "not found\n"),
        }
    }
}

/// Reads until the end of the request head (an empty line), at most `max` bytes. The request line
/// is checked as soon as it is complete, so garbage is rejected without waiting for more.
async fn read_request(stream: &mut TcpStream, max: usize) -> Result<Request, ReadError> {
    let mut buf = vec![0u8; max];
    let mut filled = 0;
    let mut request = None;
    loop {
        let Some(free) = buf.get_mut(filled..).filter(|free| !free.is_empty()) else {
            return Err(ReadError::TooLarge);
        };
        let n = stream.read(free).await.map_err(|_| ReadError::Gone)?;
        if n == 0 {
            return Err(ReadError::Gone);
        }
        let scan_from = filled.saturating_sub(3);
        filled += n;
        let head = buf.get(..filled).unwrap_or_default();
        if request.is_none() {
            if let Some(end) = head.iter().position(|&b| b == b'\n') {
                let line = head.get(..end).unwrap_or_default();
                request = Some(parse_request_line(line).ok_or(ReadError::Malformed)?);
            }
        }
        let tail = head.get(scan_from..).unwrap_or_default();
        if tail.windows(4).any(|w| w == b"\r\n\r\n") || tail.windows(2).any(|w| w == b"\n\n") {
            return request.ok_or(ReadError::Malformed);
        }
    }
}

fn parse_request_line(line: &[u8]) -> Option<Request> {
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return None;
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Some(Request {
        head_only: method == "HEAD",
        method_allowed: matches!(method, "GET" | "HEAD"),
        path: path.to_owned(),
    })
}

async fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    head_only: bool,
) -> std::io::Result<()> {
    let allow = if response.allow {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len(),
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(response.body.as_bytes()).await?;
    }
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_parsed_strictly() {
        let ok = parse_request_line(b"GET /metrics?x=1 HTTP/1.1\r").unwrap();
        assert_eq!(ok.path, "/metrics");
        assert!(ok.method_allowed && !ok.head_only);
        let head = parse_request_line(b"HEAD /healthz HTTP/1.0").unwrap();
        assert!(head.head_only && head.method_allowed);
        assert!(
            !parse_request_line(b"POST / HTTP/1.1")
                .unwrap()
                .method_allowed
        );
        for bad in [
            &b"GET /metrics"[..],
            b"GET /metrics HTTP/2 extra",
            b"GET metrics HTTP/1.1",
            b"\x16\x03\x01\x02\x00",
            b"GET /metrics SPDY/3",
        ] {
            assert!(parse_request_line(bad).is_none(), "{bad:?}");
        }
    }
}
