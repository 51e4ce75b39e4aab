//! The TLS acceptor that real Cync devices can talk to, and the certificate it presents.
//!
//! Why it exists: Cync devices speak TLS 1.2 with static-RSA CBC suites only, send no SNI and do
//! not check the certificate (`docs/protocol.md#tls-parameters`, from 54 ClientHellos of real
//! devices). Mainstream defaults (and rustls) refuse
//! those suites, so this module pins an OpenSSL configuration that accepts exactly them.
//!
//! What it owns: the OpenSSL server context (protocol range, cipher list, security level) and
//! the bridge's certificate — loaded from configured paths, or generated once per install into
//! the data directory and reused afterwards.
//!
//! What it must never do: offer anything a device cannot use (TLS 1.3, ECDHE), ask a device for
//! a client certificate, depend on SNI, overwrite a certificate the operator configured, or panic
//! on a bad file or a bad handshake.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{Ssl, SslAcceptor, SslMethod, SslOptions, SslVerifyMode, SslVersion};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509NameBuilder, X509};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// File name (inside the data directory) of the certificate generated on first start.
pub const GENERATED_CERT_FILE: &str = "cync-bridge-cert.pem";

/// File name (inside the data directory) of the private key generated on first start.
pub const GENERATED_KEY_FILE: &str = "cync-bridge-key.pem";

/// The only suites every captured device offers: TLS_RSA_WITH_AES_256_CBC_SHA256 (0x003D),
/// _AES_256_CBC_SHA (0x0035), _AES_128_CBC_SHA256 (0x003C), _AES_128_CBC_SHA (0x002F)
/// (`docs/protocol.md#tls-parameters`). Listed in the devices' own order, so with server preference
/// on every device type negotiates 0x003D.
const DEVICE_CIPHER_LIST: &str = "AES256-SHA256:AES256-SHA:AES128-SHA256:AES128-SHA";

/// Pinned rather than inherited from the host's `openssl.cnf`, so that a distribution default
/// cannot silently lock devices out. Level 2 still allows static-RSA key exchange and SHA-1
/// HMACs (it forbids RC4, SSLv3 and keys under 2048 bits); level 3 would forbid suites without
/// forward secrecy — i.e. every suite the devices offer. Lowering below 2 (`@SECLEVEL=0/1`) was
/// not needed: `tests/tls.rs` replays the real ClientHellos and negotiates all four suites.
const SECURITY_LEVEL: u32 = 2;

/// The generated certificate is named after the hosts devices resolve
/// (`docs/protocol.md#transport-and-tls`). Devices do not validate it; the names only help a human
/// reading a capture.
const CERT_COMMON_NAME: &str = "cm.gelighting.com";
const CERT_DNS_NAMES: [&str; 3] = [
    "cm.gelighting.com",
    "cm-sec.gelighting.com",
    "cm-ge.xlink.cn",
];
const CERT_RSA_BITS: u32 = 2048;
/// About ten years, like the legacy add-on's certificate (`docs/protocol.md#tls-parameters`).
const CERT_VALIDITY_DAYS: u32 = 3650;

/// Where the device-facing certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate (optionally followed by its chain) to present; `None` with `key_path`
    /// also `None` means "use the generated one".
    pub cert_path: Option<PathBuf>,
    /// PEM private key (unencrypted, RSA) matching `cert_path`.
    pub key_path: Option<PathBuf>,
    /// Directory holding the generated certificate and key ([`GENERATED_CERT_FILE`],
    /// [`GENERATED_KEY_FILE`]); created if missing.
    pub data_dir: PathBuf,
}

/// Everything that can go wrong while setting up TLS or shaking hands with one device.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)]
pub enum TlsError {
    /// Only one of the certificate and key paths was configured.
    #[error(
        "a TLS {given_what} is configured ({}) but no {missing_what}; configure both, \
         or neither to use a generated certificate",
        given.display()
    )]
    IncompletePaths {
        given: PathBuf,
        /// What that path is ("certificate" or "private key").
        given_what: &'static str,
        /// What is missing.
        missing_what: &'static str,
    },
    /// A certificate or key file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    ReadFile {
        /// "certificate" or "private key".
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The certificate file holds no usable PEM certificate.
    #[error("certificate {} is not a PEM X.509 certificate: {source}", path.display())]
    BadCertificate { path: PathBuf, source: ErrorStack },
    /// The certificate file parsed but holds no certificate at all.
    #[error("certificate {} contains no PEM certificate (no BEGIN CERTIFICATE block)", path.display())]
    NoCertificate { path: PathBuf },
    /// The key file holds no usable PEM private key.
    #[error("private key {} is not an unencrypted PEM private key: {source}", path.display())]
    BadKey { path: PathBuf, source: ErrorStack },
    /// The certificate's key is not RSA, but devices only offer static-RSA suites.
    #[error(
        "certificate {} does not hold an RSA key; Cync devices only offer static-RSA \
         cipher suites, so the bridge needs an RSA certificate",
        path.display()
    )]
    NotRsa { path: PathBuf },
    /// OpenSSL refused to use the certificate or key (e.g. a key too small for the pinned
    /// security level).
    #[error(
        "OpenSSL refused {what} {} (an RSA key of at least 2048 bits signed with SHA-256 \
         works): {source}",
        path.display()
    )]
    Refused {
        /// "certificate" or "private key".
        what: &'static str,
        path: PathBuf,
        source: ErrorStack,
    },
    /// Certificate and key do not belong together.
    #[error(
        "private key {} does not belong to certificate {} (their public keys differ)",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// The data directory for the generated certificate could not be created.
    #[error("cannot create data directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    /// A generated certificate or key could not be written.
    #[error("cannot write {}: {source}", path.display())]
    WriteFile {
        /// The file (its final name; it is written under a temporary name first).
        path: PathBuf,
        source: io::Error,
    },
    /// Key or certificate generation failed inside OpenSSL.
    #[error("cannot generate the bridge's RSA key and self-signed certificate: {source}")]
    Generate { source: ErrorStack },
    /// OpenSSL rejected the fixed server settings (e.g. a build without the static-RSA suites).
    #[error(
        "OpenSSL rejected the device TLS settings (TLS 1.2, ciphers {DEVICE_CIPHER_LIST}): \
         {source}"
    )]
    Configure { source: ErrorStack },
    /// A per-connection TLS object could not be created.
    #[error("cannot start TLS for {}: {source}", Peer(*.peer))]
    Session {
        /// The device's address, if the socket still knew it.
        peer: Option<SocketAddr>,
        source: ErrorStack,
    },
    /// The handshake with a device failed (bad hello, no shared cipher, connection closed).
    #[error("TLS handshake with {} failed: {source}", Peer(*.peer))]
    Handshake {
        /// The device's address, if the socket still knew it.
        peer: Option<SocketAddr>,
        source: openssl::ssl::Error,
    },
}

/// Displays an optional peer address for error messages.
struct Peer(Option<SocketAddr>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("an unknown peer"),
        }
    }
}

/// Builds the acceptor every device connection goes through: TLS 1.2 only, the four static-RSA
/// CBC suites with the server's order winning, an RSA certificate, no client certificate
/// request, no SNI handling.
///
/// Blocking: reads files and, on first start, generates a 2048-bit RSA key (a noticeable
/// fraction of a second). Call it once at startup, outside the async runtime or through
/// `tokio::task::spawn_blocking`.
pub fn build_acceptor(settings: &TlsSettings) -> Result<SslAcceptor, TlsError> {
    let identity = load_or_generate(settings)?;
    let configure = |source| TlsError::Configure { source };

    // mozilla_intermediate_v5 is the only way to get an SslAcceptorBuilder (sane base options:
    // no compression, no SSLv2/3); every setting that matters to devices is overridden below.
    let mut builder =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(configure)?;
    builder.set_security_level(SECURITY_LEVEL);
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(configure)?;
    builder
        .set_max_proto_version(Some(SslVersion::TLS1_2))
        .map_err(configure)?;
    builder
        .set_cipher_list(DEVICE_CIPHER_LIST)
        .map_err(configure)?;
    builder.set_options(SslOptions::CIPHER_SERVER_PREFERENCE);
    // Devices have no client certificate (docs/protocol.md#tls-parameters); never ask for one.
    builder.set_verify(SslVerifyMode::NONE);

    builder
        .set_certificate(&identity.cert)
        .map_err(|source| TlsError::Refused {
            what: "certificate",
            path: identity.cert_path.clone(),
            source,
        })?;
    for extra in identity.chain {
        builder
            .add_extra_chain_cert(extra)
            .map_err(|source| TlsError::Refused {
                what: "certificate",
                path: identity.cert_path.clone(),
                source,
            })?;
    }
    builder
        .set_private_key(&identity.key)
        .map_err(|source| TlsError::Refused {
            what: "private key",
            path: identity.key_path.clone(),
            source,
        })?;
    Ok(builder.build())
}

/// Runs the server side of the TLS handshake on a freshly accepted device connection.
///
/// This applies no timeout of its own: the caller wraps it in `tokio::time::timeout` with the
/// configured handshake timeout. Dropping the future (on timeout or shutdown) drops the socket,
/// which closes the connection; nothing else is left behind.
pub async fn accept(
    acceptor: &SslAcceptor,
    tcp: TcpStream,
) -> Result<SslStream<TcpStream>, TlsError> {
    let peer = tcp.peer_addr().ok();
    let session = |source| TlsError::Session { peer, source };
    let ssl = Ssl::new(acceptor.context()).map_err(session)?;
    let mut stream = SslStream::new(ssl, tcp).map_err(session)?;
    Pin::new(&mut stream)
        .accept()
        .await
        .map_err(|source| TlsError::Handshake { peer, source })?;
    Ok(stream)
}

/// A certificate, its chain and key, with the files they came from (for error messages).
struct Identity {
    cert: X509,
    chain: Vec<X509>,
    key: PKey<Private>,
    cert_path: PathBuf,
    key_path: PathBuf,
}

fn load_or_generate(settings: &TlsSettings) -> Result<Identity, TlsError> {
    match (&settings.cert_path, &settings.key_path) {
        (Some(cert), Some(key)) => load(cert, key),
        (Some(cert), None) => Err(TlsError::IncompletePaths {
            given: cert.clone(),
            given_what: "certificate",
            missing_what: "private key",
        }),
        (None, Some(key)) => Err(TlsError::IncompletePaths {
            given: key.clone(),
            given_what: "private key",
            missing_what: "certificate",
        }),
        (None, None) => load_or_generate_in(&settings.data_dir),
    }
}

/// Reuses the generated pair when both files exist; otherwise generates a fresh pair. Devices do
/// not validate or pin the certificate (`docs/protocol.md#tls-parameters`), so replacing a
/// half-written pair costs nothing, while refusing to start would.
fn load_or_generate_in(data_dir: &Path) -> Result<Identity, TlsError> {
    let cert_path = data_dir.join(GENERATED_CERT_FILE);
    let key_path = data_dir.join(GENERATED_KEY_FILE);
    match (cert_path.try_exists(), key_path.try_exists()) {
        (Ok(true), Ok(true)) => return load(&cert_path, &key_path),
        (Ok(false), Ok(false)) => {}
        (Ok(cert_exists), Ok(key_exists)) => tracing::warn!(
            cert = %cert_path.display(),
            cert_exists,
            key = %key_path.display(),
            key_exists,
            "only one of the generated certificate and key exists; generating a new pair"
        ),
        (Err(source), _) => {
            return Err(TlsError::ReadFile {
                what: "certificate",
                path: cert_path,
                source,
            })
        }
        (_, Err(source)) => {
            return Err(TlsError::ReadFile {
                what: "private key",
                path: key_path,
                source,
            })
        }
    }

    fs::create_dir_all(data_dir).map_err(|source| TlsError::CreateDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let (cert, key) = generate().map_err(|source| TlsError::Generate { source })?;
    let cert_pem = cert
        .to_pem()
        .map_err(|source| TlsError::Generate { source })?;
    let key_pem = key
        .private_key_to_pem_pkcs8()
        .map_err(|source| TlsError::Generate { source })?;
    // Certificate out first, key next, certificate last: whatever step a crash interrupts, the
    // certificate is missing and the next start generates again, never pairing a new key with
    // an old certificate.
    match fs::remove_file(&cert_path) {
        Err(source) if source.kind() != io::ErrorKind::NotFound => {
            return Err(TlsError::WriteFile {
                path: cert_path,
                source,
            })
        }
        _ => {}
    }
    write_replacing(&key_path, &key_pem, 0o600)?;
    write_replacing(&cert_path, &cert_pem, 0o644)?;
    tracing::info!(
        cert = %cert_path.display(),
        key = %key_path.display(),
        "generated a self-signed device certificate"
    );
    Ok(Identity {
        cert,
        chain: Vec::new(),
        key,
        cert_path,
        key_path,
    })
}

fn load(cert_path: &Path, key_path: &Path) -> Result<Identity, TlsError> {
    let read = |what, path: &Path| {
        fs::read(path).map_err(|source| TlsError::ReadFile {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_pem = read("certificate", cert_path)?;
    let key_pem = read("private key", key_path)?;

    let mut certs = X509::stack_from_pem(&cert_pem)
        .map_err(|source| TlsError::BadCertificate {
            path: cert_path.to_path_buf(),
            source,
        })?
        .into_iter();
    let cert = certs.next().ok_or_else(|| TlsError::NoCertificate {
        path: cert_path.to_path_buf(),
    })?;
    let key = PKey::private_key_from_pem(&key_pem).map_err(|source| TlsError::BadKey {
        path: key_path.to_path_buf(),
        source,
    })?;
    let public = cert
        .public_key()
        .map_err(|source| TlsError::BadCertificate {
            path: cert_path.to_path_buf(),
            source,
        })?;
    if public.id() != Id::RSA {
        return Err(TlsError::NotRsa {
            path: cert_path.to_path_buf(),
        });
    }
    // Checked here rather than left to OpenSSL's set_private_key, whose "key values mismatch"
    // does not say which two files disagree.
    if !public.public_eq(&key) {
        return Err(TlsError::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        });
    }
    Ok(Identity {
        cert,
        chain: certs.collect(),
        key,
        cert_path: cert_path.to_path_buf(),
        key_path: key_path.to_path_buf(),
    })
}

/// A self-signed RSA-2048 / SHA-256 server certificate for the Cync cloud host names.
fn generate() -> Result<(X509, PKey<Private>), ErrorStack> {
    let key = PKey::from_rsa(Rsa::generate(CERT_RSA_BITS)?)?;

    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, CERT_COMMON_NAME)?;
    let name = name.build();

    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;

    let mut builder = X509::builder()?;
    builder.set_version(2)?; // X.509 v3, needed for the extensions below
    let serial = serial.to_asn1_integer()?;
    let not_before = Asn1Time::days_from_now(0)?;
    let not_after = Asn1Time::days_from_now(CERT_VALIDITY_DAYS)?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(&key)?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    builder.append_extension(BasicConstraints::new().critical().build()?)?;
    // keyEncipherment: static-RSA key exchange encrypts the premaster secret to this key.
    builder.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    builder.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let mut alt_names = SubjectAlternativeName::new();
    for dns in CERT_DNS_NAMES {
        alt_names.dns(dns);
    }
    let alt_names = alt_names.build(&builder.x509v3_context(None, None))?;
    builder.append_extension(alt_names)?;
    builder.sign(&key, MessageDigest::sha256())?;
    Ok((builder.build(), key))
}

/// Writes `bytes` to `path` through a temporary file created with `mode` (so a private key is
/// never readable by others, not even for an instant) and renamed into place.
fn write_replacing(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let write_error = |source| TlsError::WriteFile {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    // A leftover from a crash may have any mode; never reuse it.
    match fs::remove_file(&tmp) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(write_error(error)),
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(write_error)?;
    file.write_all(bytes).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    drop(file);
    fs::rename(&tmp, path).map_err(write_error)
}
