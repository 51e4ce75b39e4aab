//! One HTTP/1.1 request per connection to the account API: TCP, then TLS through OpenSSL (the
//! project's one TLS stack; the system's CA store, host name verified) unless the URL is
//! loopback `http://`, then hyper's client connection. A handful of calls per export does not
//! need connection pooling. The whole exchange runs under one deadline and the body is
//! size-capped, so a stuck or hostile server can neither hang the caller nor exhaust memory.

use std::time::Duration;

use axum::http::{header, Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use openssl::ssl::{SslConnector, SslMethod};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::settings::ApiUrl;

/// Largest answer read; a home with a few hundred devices is well under 1 MiB.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    #[allow(missing_docs)]
    pub status: StatusCode,
    #[allow(missing_docs)]
    pub body: Bytes,
}

/// Why no answer arrived.
#[derive(Debug)]
pub enum Failure {
    /// DNS, TCP, TLS or HTTP failed; the text says which.
    Unreachable(String),
    /// The deadline passed.
    Timeout,
}

/// One call. `token` goes into the `Access-Token` header (no "Bearer": the API wants it bare).
pub async fn call(
    api: &ApiUrl,
    method: Method,
    path: &str,
    token: Option<&str>,
    json: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Answer, Failure> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, api.authority())
        .header(header::ACCEPT, "application/json")
        .header(
            header::USER_AGENT,
            concat!("cync-bridge/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(token) = token {
        builder = builder.header("Access-Token", token);
    }
    if json.is_some() {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    let request = builder
        .body(Full::new(Bytes::from(json.unwrap_or_default())))
        .map_err(|e| Failure::Unreachable(format!("cannot build the request: {e}")))?;
    match tokio::time::timeout(timeout, exchange(api, request)).await {
        Ok(answer) => answer,
        Err(_elapsed) => Err(Failure::Timeout),
    }
}

async fn exchange(api: &ApiUrl, request: Request<Full<Bytes>>) -> Result<Answer, Failure> {
    let tcp = TcpStream::connect((api.host.as_str(), api.port))
        .await
        .map_err(|e| Failure::Unreachable(format!("connect: {e}")))?;
    if !api.tls {
        return over(tcp, request).await;
    }
    let connector = SslConnector::builder(SslMethod::tls_client())
        .map_err(|e| Failure::Unreachable(format!("TLS set-up: {e}")))?
        .build();
    let ssl = connector
        .configure()
        .and_then(|c| c.into_ssl(&api.host))
        .map_err(|e| Failure::Unreachable(format!("TLS set-up: {e}")))?;
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp)
        .map_err(|e| Failure::Unreachable(format!("TLS set-up: {e}")))?;
    std::pin::Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| Failure::Unreachable(format!("TLS handshake: {e}")))?;
    over(stream, request).await
}

async fn over<S>(stream: S, request: Request<Full<Bytes>>) -> Result<Answer, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let broken = |what: &str, e: hyper::Error| Failure::Unreachable(format!("{what}: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| broken("HTTP handshake", e))?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| broken("send", e));
    let result = match response {
        Ok(response) => {
            let status = response.status();
            Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map(|body| Answer {
                    status,
                    body: body.to_bytes(),
                })
                .map_err(|e| Failure::Unreachable(format!("read: {e}")))
        }
        Err(e) => Err(e),
    };
    driver.abort();
    result
}
