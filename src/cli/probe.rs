//! Probes the operator tools (`healthcheck`, `doctor`) share: which address reaches a listener
//! configured as `0.0.0.0:…`, and a raw HTTP/1.0 GET against the bridge's own telemetry
//! endpoint. Raw on purpose: the endpoint serves two fixed plain-text routes and closes after
//! one response, so a client crate would add weight to minimal images for nothing.
//!
//! Must never wait without a deadline: a Docker HEALTHCHECK that hangs is worse than one that
//! fails.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response larger than this is not from our endpoint (a full `/metrics` is tens of KiB).
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// The address a local client uses to reach a listener bound to `listen`: a wildcard address
/// (`0.0.0.0`, `::`) becomes the loopback address of the same family.
pub fn reachable_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Parses a `--timeout` in seconds (fractions allowed), for clap.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{text:?} is not a positive number of seconds"))
}

/// Status and body of one HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct HttpReply {
    /// The status code (200, 503, …).
    pub status: u16,
    pub body: String,
}

/// Why a probe got no HTTP answer.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)]
pub enum ProbeError {
    /// Nothing accepted the connection (usually: the bridge is not running there).
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    /// Connected, but the exchange did not finish in time.
    #[error("no answer from {addr} within {after:?}")]
    Timeout { addr: SocketAddr, after: Duration },
    /// The connection broke mid-exchange.
    #[error("connection to {addr} failed: {source}")]
    Io { addr: SocketAddr, source: io::Error },
    /// The peer answered something that is not HTTP.
    #[error("{addr} did not answer with HTTP")]
    NotHttp { addr: SocketAddr },
}

/// `GET path` over HTTP/1.0 with one deadline for connect, request and response together.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<HttpReply, ProbeError> {
    match tokio::time::timeout(timeout, exchange(addr, path)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Timeout {
            addr,
            after: timeout,
        }),
    }
}

async fn exchange(addr: SocketAddr, path: &str) -> Result<HttpReply, ProbeError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|source| ProbeError::Connect { addr, source })?;
    let io = |source| ProbeError::Io { addr, source };
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut raw)
        .await
        .map_err(io)?;
    parse_reply(&raw).ok_or(ProbeError::NotHttp { addr })
}

fn parse_reply(raw: &[u8]) -> Option<HttpReply> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some(HttpReply {
        status,
        body: body.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_is_reached_on_loopback_of_its_family() {
        let v4: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        assert_eq!(reachable_addr(v4), "127.0.0.1:9464".parse().unwrap());
        let v6: SocketAddr = "[::]:9464".parse().unwrap();
        assert_eq!(reachable_addr(v6), "[::1]:9464".parse().unwrap());
        let lan: SocketAddr = "192.168.1.10:23779".parse().unwrap();
        assert_eq!(reachable_addr(lan), lan);
    }

    #[test]
    fn replies_are_split_into_status_and_body_and_garbage_is_not_http() {
        let reply =
            parse_reply(b"HTTP/1.1 503 Service Unavailable\r\nA: b\r\n\r\nlistener: ended\n");
        assert_eq!(
            reply,
            Some(HttpReply {
                status: 503,
                body: "listener: ended\n".to_owned()
            })
        );
        assert_eq!(parse_reply(b"\x16\x03\x01garbage"), None);
        assert_eq!(parse_reply(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
    }

    #[test]
    fn timeouts_must_be_positive_seconds() {
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
