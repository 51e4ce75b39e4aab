//! The simulated device's TLS client, shaped like the real devices' ClientHello.
//!
//! Why it exists: a simulator that offered modern suites, TLS 1.3 or SNI would pass against a
//! server that real devices cannot use. This connector offers only what the captured devices
//! offer (`docs/protocol.md#tls-parameters`; `tests/tls.rs` checks its hello against the TLS
//! hellos fixture, `../shared/fixtures/captures/tls-clienthellos-20251106.txt`).
//!
//! What it owns: the OpenSSL client context of a simulated device.
//!
//! What it must never do: send SNI, offer TLS 1.3 or a suite no real device offers, or verify the
//! server's certificate (devices do not, `docs/protocol.md#tls-parameters` point 3).

use std::net::SocketAddr;
use std::pin::Pin;

use openssl::error::ErrorStack;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// The suites of the 88-byte real fingerprint (0x003D, 0x0035, 0x003C, 0x002F; OpenSSL adds the
/// 0x00FF renegotiation SCSV itself), in the same order. Every captured device offers these.
const DEVICE_CIPHER_LIST: &str = "AES256-SHA256:AES256-SHA:AES128-SHA256:AES128-SHA";

/// The signature_algorithms of the same 88-byte fingerprint (0x0601 0x0501 0x0401 0x0301
/// 0x0201: RSA PKCS#1 with SHA-512 down to SHA-1). OpenSSL's default list would add ECDSA,
/// RSA-PSS and EdDSA, which no device offers; a server relying on them would pass the simulator
/// and fail real devices.
const DEVICE_SIGALGS_LIST: &str = "RSA+SHA512:RSA+SHA384:RSA+SHA256:RSA+SHA224:RSA+SHA1";

/// What can go wrong when a simulated device opens TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsConnectError {
    /// OpenSSL rejected the fixed client settings.
    #[error(
        "OpenSSL rejected the simulated device's TLS settings (TLS 1.2, ciphers \
         {DEVICE_CIPHER_LIST}): {source}"
    )]
    Configure {
        /// OpenSSL's reason.
        source: ErrorStack,
    },
    /// The handshake with the server failed.
    #[error("simulated device's TLS handshake with {} failed: {source}", server_name(*.server))]
    Handshake {
        /// The server's address, if the socket still knew it.
        server: Option<SocketAddr>,
        /// OpenSSL's reason.
        source: openssl::ssl::Error,
    },
}

fn server_name(server: Option<SocketAddr>) -> String {
    server.map_or_else(|| "an unknown server".to_owned(), |addr| addr.to_string())
}

/// Builds the device-like client context. Cheap enough per connection, but a simulator with
/// many devices can build it once and use [`connect_with`].
pub fn build_connector() -> Result<SslConnector, TlsConnectError> {
    let configure = |source| TlsConnectError::Configure { source };
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(configure)?;
    // Capping the version also keeps OpenSSL 3 from offering its TLS 1.3 suites and from
    // sending supported_versions; no real device does either.
    builder
        .set_max_proto_version(Some(SslVersion::TLS1_2))
        .map_err(configure)?;
    builder
        .set_cipher_list(DEVICE_CIPHER_LIST)
        .map_err(configure)?;
    builder
        .set_sigalgs_list(DEVICE_SIGALGS_LIST)
        .map_err(configure)?;
    builder.set_verify(SslVerifyMode::NONE);
    Ok(builder.build())
}

/// Opens TLS on `tcp` the way a Cync device does. Applies no timeout: the caller decides.
pub async fn connect(tcp: TcpStream) -> Result<SslStream<TcpStream>, TlsConnectError> {
    connect_with(&build_connector()?, tcp).await
}

/// Like [`connect`], with a connector from [`build_connector`].
pub async fn connect_with(
    connector: &SslConnector,
    tcp: TcpStream,
) -> Result<SslStream<TcpStream>, TlsConnectError> {
    let server = tcp.peer_addr().ok();
    let configure = |source| TlsConnectError::Configure { source };
    // No SNI and no host name check: devices send neither (docs/protocol.md#tls-parameters), so the
    // name given to into_ssl is never used.
    let ssl = connector
        .configure()
        .map_err(configure)?
        .use_server_name_indication(false)
        .verify_hostname(false)
        .into_ssl("")
        .map_err(configure)?;
    let mut stream = SslStream::new(ssl, tcp).map_err(configure)?;
    Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|source| TlsConnectError::Handshake { server, source })?;
    Ok(stream)
}
