//! The client side of the access rule, for `cync-bridge` subcommands calling an admin endpoint of
//! a bridge on the same machine: reads the token from `data_dir`, sends it as
//! `Authorization: Bearer …`, adds the CSRF header when the body is a form, and returns the
//! status and (size-capped) body. The token appears in no error it returns.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::http::{header, Method, Request};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{token::AdminToken, TokenError, CSRF_HEADER};

/// Largest answer body read; admin endpoints answer with a short status text or a small JSON.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// What an admin endpoint answered.
#[derive(Debug, Clone)]
pub struct AdminReply {
    #[allow(missing_docs)]
    pub status: u16,
    /// Body as text (invalid UTF-8 replaced).
    pub body: String,
}

/// Why no answer was obtained; no variant carries the token or a header value.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // fields: where the request went and what its message says
pub enum ClientError {
    /// The token file could not be read (is `data_dir` the bridge's?).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Connecting, sending or reading failed.
    #[error("admin request to {addr}: {message}")]
    Http { addr: SocketAddr, message: String },
    /// No complete answer within the timeout.
    #[error("admin request to {addr}: no answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
}

/// A request body and its content type.
#[derive(Debug, Clone)]
pub struct AdminBody {
    /// e.g. `application/json`, `application/x-www-form-urlencoded`.
    pub content_type: &'static str,
    /// Sent as is; a form must already be urlencoded.
    pub bytes: Vec<u8>,
}

/// Sends `method path` to the bridge at `addr` with the token from `data_dir`.
pub async fn admin_request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    data_dir: &Path,
    body: Option<AdminBody>,
    timeout: Duration,
) -> Result<AdminReply, ClientError> {
    let token = AdminToken::read(data_dir)?;
    let request = build(addr, method, path, &token, body)?;
    match tokio::time::timeout(timeout, exchange(addr, request)).await {
        Ok(reply) => reply,
        Err(_elapsed) => Err(ClientError::Timeout { addr, timeout }),
    }
}

fn build(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: &AdminToken,
    body: Option<AdminBody>,
) -> Result<Request<Full<Bytes>>, ClientError> {
    let http = |message: String| ClientError::Http { addr, message };
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr.to_string())
        .header(header::AUTHORIZATION, token.bearer());
    let bytes = match body {
        Some(body) => {
            builder = builder.header(header::CONTENT_TYPE, body.content_type);
            if !body.content_type.starts_with("application/json") {
                builder = builder.header(CSRF_HEADER, token.csrf_token()?);
            }
            body.bytes
        }
        None => Vec::new(),
    };
    // The error names the part that is wrong (e.g. the path), never the header values.
    builder
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|e| http(format!("cannot build request: {e}")))
}

async fn exchange(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<AdminReply, ClientError> {
    let http = |message: String| ClientError::Http { addr, message };
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| http(format!("connect: {e}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(format!("handshake: {e}")))?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| http(format!("send: {e}")))?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_REPLY_BYTES)
        .collect()
        .await
        .map_err(|e| http(format!("read: {e}")))?
        .to_bytes();
    driver.abort();
    Ok(AdminReply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
