//! Device-facing TLS, checked against what real Cync devices send.
//!
//! The real ClientHellos come from `../shared/fixtures/captures/tls-clienthellos-20251106.txt`
//! (`docs/protocol.md#tls-parameters`: 54 hellos, three fingerprints of 144, 88 and 114 bytes). They are read in
//! place, never copied; without them the fixture tests say they skipped, unless
//! `CYNC_REQUIRE_SHARED_FIXTURES=1` makes that a failure.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use cync_bridge::server::tls::{
    accept, build_acceptor, TlsError, TlsSettings, GENERATED_CERT_FILE, GENERATED_KEY_FILE,
};
use cync_bridge::sim::tls::connect;
use openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslVerifyMode, SslVersion};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const HELLOS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/captures/tls-clienthellos-20251106.txt"
);

const TLS_HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 0x01;
const SERVER_HELLO: u8 = 0x02;
const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;
const TLS_RSA_WITH_AES_256_CBC_SHA256: u16 = 0x003d;

// ---------------------------------------------------------------- fixtures and parsing helpers

/// The DEV→CLOUD records of a capture text file, or `None` (after saying so) when the shared
/// fixtures are absent and not required. Kept tiny on purpose: the real capture parser lives in
/// `capture/`.
fn read_device_records(path: &str) -> Option<Vec<Vec<u8>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if std::env::var("CYNC_REQUIRE_SHARED_FIXTURES").as_deref() == Ok("1") => {
            panic!("shared fixture {path} is required but unreadable: {error}")
        }
        Err(error) => {
            eprintln!("skipped: shared fixture {path} not available ({error})");
            return None;
        }
    };
    let mut records = Vec::new();
    let mut lines = text.lines();
    while let Some(header) = lines.next() {
        if !header.contains("DEV→CLOUD") {
            continue;
        }
        let hex = lines.next().expect("a hex line follows each header");
        let bytes: Vec<u8> = hex
            .split_whitespace()
            .map(|pair| u8::from_str_radix(pair, 16).expect("hex byte"))
            .collect();
        let declared: usize = header
            .rsplit_once('(')
            .and_then(|(_, rest)| rest.split_once(' '))
            .and_then(|(n, _)| n.parse().ok())
            .expect("header ends with (N bytes)");
        assert_eq!(bytes.len(), declared, "record length in {header}");
        records.push(bytes);
    }
    Some(records)
}

/// The first occurrence of each distinct real ClientHello fingerprint, in file order.
fn real_fingerprints() -> Option<Vec<(Vec<u8>, ClientHello)>> {
    let records = read_device_records(HELLOS)?;
    assert_eq!(
        records.len(),
        54,
        "docs/protocol.md#tls-parameters counts 54 hellos"
    );
    let mut firsts: Vec<(Vec<u8>, ClientHello)> = Vec::new();
    for record in records {
        let hello = ClientHello::parse(&record).expect("every fixture record is a ClientHello");
        if !firsts.iter().any(|(_, seen)| *seen == hello) {
            firsts.push((record, hello));
        }
    }
    let sizes: Vec<usize> = firsts.iter().map(|(record, _)| record.len()).collect();
    assert_eq!(
        sizes,
        [144, 88, 114],
        "three fingerprints, docs/protocol.md#tls-parameters"
    );
    Some(firsts)
}

/// Big-endian reader over a byte slice; `None` when the input is too short.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

fn u16s(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect()
}

/// The fields of one TLS record holding a ClientHello that these tests care about. It leaves out
/// the random and session id, which change on every connection, so equal values mean equal
/// fingerprints.
#[derive(Debug, PartialEq)]
struct ClientHello {
    record_version: u16,
    client_version: u16,
    suites: Vec<u16>,
    extensions: Vec<(u16, Vec<u8>)>,
}

impl ClientHello {
    fn parse(record: &[u8]) -> Option<Self> {
        let mut r = Cursor(record);
        (r.u8()? == TLS_HANDSHAKE).then_some(())?;
        let record_version = r.u16()?;
        let mut body = Cursor(r.vec16()?);
        (body.u8()? == CLIENT_HELLO).then_some(())?;
        let len = body.u24()?;
        let mut hello = Cursor(body.take(len)?);
        let client_version = hello.u16()?;
        hello.take(32)?; // random
        hello.vec8()?; // session id
        let suites = u16s(hello.vec16()?);
        hello.vec8()?; // compression methods
        let mut extensions = Vec::new();
        if !hello.0.is_empty() {
            let mut list = Cursor(hello.vec16()?);
            while !list.0.is_empty() {
                let kind = list.u16()?;
                extensions.push((kind, list.vec16()?.to_vec()));
            }
        }
        Some(Self {
            record_version,
            client_version,
            suites,
            extensions,
        })
    }

    fn extension_types(&self) -> Vec<u16> {
        self.extensions.iter().map(|(kind, _)| *kind).collect()
    }

    /// The signature_algorithms list (extension 13), empty when absent.
    fn sigalgs(&self) -> Vec<u16> {
        u16s(
            self.extension(EXT_SIGNATURE_ALGORITHMS)
                .and_then(|data| data.get(2..))
                .unwrap_or(&[]),
        )
    }

    fn extension(&self, kind: u16) -> Option<&[u8]> {
        self.extensions
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, data)| data.as_slice())
    }
}

/// Reads one whole TLS record (5-byte header + body) from a plain TCP stream.
async fn read_record(tcp: &mut TcpStream) -> Vec<u8> {
    let mut record = vec![0u8; 5];
    tcp.read_exact(&mut record).await.expect("record header");
    let len = usize::from(u16::from_be_bytes([record[3], record[4]]));
    record.resize(5 + len, 0);
    tcp.read_exact(&mut record[5..]).await.expect("record body");
    record
}

/// An acceptor with a certificate generated in a fresh temporary data directory.
fn generated_acceptor() -> (tempfile::TempDir, Arc<SslAcceptor>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let acceptor = build_acceptor(&generated_settings(dir.path())).expect("acceptor");
    (dir, Arc::new(acceptor))
}

/// The error `build_acceptor` returns for settings that must be refused.
fn refused(settings: &TlsSettings, why: &str) -> TlsError {
    match build_acceptor(settings) {
        Ok(_) => panic!("{why}: expected an error"),
        Err(error) => error,
    }
}

fn generated_settings(data_dir: &Path) -> TlsSettings {
    TlsSettings {
        cert_path: None,
        key_path: None,
        data_dir: data_dir.to_path_buf(),
    }
}

/// Listens on 127.0.0.1 (port 0) and runs the bridge's TLS accept on the first connection,
/// echoing back reversed whatever 4 bytes arrive once the handshake succeeds.
async fn spawn_bridge_side(
    acceptor: Arc<SslAcceptor>,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<(), TlsError>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut tls = accept(&acceptor, tcp).await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.expect("server read");
        buf.reverse();
        tls.write_all(&buf).await.expect("server write");
        tls.shutdown().await.ok();
        Ok(())
    });
    (addr, task)
}

// ---------------------------------------------------------------------------------- tests

#[tokio::test]
async fn every_real_device_hello_gets_a_server_hello_choosing_aes256_sha256() {
    let Some(fingerprints) = real_fingerprints() else {
        return;
    };
    let (_dir, acceptor) = generated_acceptor();
    for (record, _) in fingerprints {
        let (addr, server) = spawn_bridge_side(acceptor.clone()).await;
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(&record).await.expect("send real hello");

        let reply = read_record(&mut tcp).await;
        let mut r = Cursor(&reply);
        assert_eq!(
            r.u8(),
            Some(TLS_HANDSHAKE),
            "{}-byte hello: record type",
            record.len()
        );
        r.u16(); // record version
        let mut body = Cursor(r.vec16().expect("record body"));
        assert_eq!(
            body.u8(),
            Some(SERVER_HELLO),
            "{}-byte hello: first message",
            record.len()
        );
        body.u24();
        assert_eq!(
            body.u16(),
            Some(0x0303),
            "{}-byte hello: TLS 1.2",
            record.len()
        );
        body.take(32); // random
        body.vec8(); // session id
        assert_eq!(
            body.u16(),
            Some(TLS_RSA_WITH_AES_256_CBC_SHA256),
            "{}-byte hello: negotiated suite",
            record.len()
        );
        drop(tcp);
        // The replayed hello cannot finish the handshake; the server side must fail cleanly.
        let outcome = server.await.expect("server task");
        assert!(
            matches!(outcome, Err(TlsError::Handshake { .. })),
            "{outcome:?}"
        );
    }
}

#[tokio::test]
async fn simulated_device_completes_a_handshake_and_bytes_flow_both_ways() {
    let (_dir, acceptor) = generated_acceptor();
    let (addr, server) = spawn_bridge_side(acceptor).await;

    let mut tls = connect(TcpStream::connect(addr).await.expect("connect"))
        .await
        .expect("handshake");
    assert_eq!(tls.ssl().version_str(), "TLSv1.2");
    assert_eq!(
        tls.ssl().current_cipher().map(|c| c.name()),
        Some("AES256-SHA256")
    );
    tls.write_all(b"ping").await.expect("client write");
    let mut reply = [0u8; 4];
    tls.read_exact(&mut reply).await.expect("client read");
    assert_eq!(&reply, b"gnip");
    server.await.expect("server task").expect("server side");
}

#[tokio::test]
async fn each_suite_a_device_offers_can_be_negotiated_on_its_own() {
    // Proves the pinned security level does not forbid any of the four suites, including the
    // SHA-1 MAC ones.
    let (_dir, acceptor) = generated_acceptor();
    for suite in ["AES256-SHA256", "AES256-SHA", "AES128-SHA256", "AES128-SHA"] {
        let mut client = SslConnector::builder(SslMethod::tls_client()).expect("builder");
        client
            .set_max_proto_version(Some(SslVersion::TLS1_2))
            .expect("max");
        client.set_cipher_list(suite).expect("cipher");
        client.set_verify(SslVerifyMode::NONE);
        let ssl = client
            .build()
            .configure()
            .expect("configure")
            .use_server_name_indication(false)
            .verify_hostname(false)
            .into_ssl("")
            .expect("ssl");

        let (addr, server) = spawn_bridge_side(acceptor.clone()).await;
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut tls = tokio_openssl::SslStream::new(ssl, tcp).expect("stream");
        std::pin::Pin::new(&mut tls).connect().await.expect(suite);
        assert_eq!(tls.ssl().current_cipher().map(|c| c.name()), Some(suite));
        tls.write_all(b"abcd").await.expect("write");
        let mut reply = [0u8; 4];
        tls.read_exact(&mut reply).await.expect("read");
        assert_eq!(&reply, b"dcba");
        server.await.expect("server task").expect(suite);
    }
}

#[tokio::test]
async fn simulated_device_hello_looks_like_a_real_device_hello() {
    let Some(fingerprints) = real_fingerprints() else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let client = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        connect(tcp).await
    });
    let (mut raw, _) = listener.accept().await.expect("accept");
    let record = read_record(&mut raw).await;
    drop(raw);
    assert!(
        client.await.expect("client task").is_err(),
        "nobody answered the hello"
    );

    let sim = ClientHello::parse(&record).expect("simulator sends one ClientHello record");
    assert!(sim.extension(EXT_SERVER_NAME).is_none(), "no SNI: {sim:?}");
    assert!(sim.client_version <= 0x0303, "{sim:?}");
    if let Some(versions) = sim.extension(EXT_SUPPORTED_VERSIONS) {
        assert!(
            !u16s(versions.get(1..).unwrap_or(&[])).contains(&0x0304),
            "{sim:?}"
        );
    }
    // Some real device must offer everything the simulator offers: suites, extensions and
    // signature algorithms (OpenSSL may offer fewer, never others).
    let matching: Vec<usize> = fingerprints
        .iter()
        .filter(|(_, real)| {
            subset(&sim.suites, &real.suites)
                && subset(&sim.extension_types(), &real.extension_types())
                && subset(&sim.sigalgs(), &real.sigalgs())
        })
        .map(|(record, _)| record.len())
        .collect();
    assert!(
        !matching.is_empty(),
        "simulator hello is not covered by any real fingerprint: {sim:04x?}"
    );
}

fn subset(small: &[u16], big: &[u16]) -> bool {
    small.iter().all(|item| big.contains(item))
}

#[tokio::test]
async fn simulated_device_handshakes_with_openssl_s_server() {
    let (dir, _acceptor) = generated_acceptor();
    let spawned = tokio::process::Command::new("openssl")
        .arg("s_server")
        .args(["-accept", "127.0.0.1:0", "-naccept", "1", "-rev"])
        .args(["-tls1_2", "-cipher", "AES256-SHA256"])
        .arg("-cert")
        .arg(dir.path().join(GENERATED_CERT_FILE))
        .arg("-key")
        .arg(dir.path().join(GENERATED_KEY_FILE))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut s_server = match spawned {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: the `openssl` command is not installed (CI installs it)");
            return;
        }
        Err(error) => panic!("cannot start openssl s_server: {error}"),
    };
    // s_server binds port 0 and prints the real address: "ACCEPT 127.0.0.1:<port>".
    let mut stdout = BufReader::new(s_server.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = stdout
            .next_line()
            .await
            .expect("s_server output")
            .expect("s_server exited before printing ACCEPT");
        if let Some(addr) = line.strip_prefix("ACCEPT ") {
            break addr.to_owned();
        }
    };

    let mut tls = connect(TcpStream::connect(&addr).await.expect("connect"))
        .await
        .expect("handshake with s_server");
    assert_eq!(
        tls.ssl().current_cipher().map(|c| c.name()),
        Some("AES256-SHA256")
    );
    // -rev answers each line reversed.
    tls.write_all(b"cync\n").await.expect("write");
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\n") {
        tls.read_exact(&mut byte).await.expect("read");
        reply.push(byte[0]);
    }
    assert_eq!(reply, b"cnyc\n");
    drop(tls);
    s_server.kill().await.ok();
}

#[test]
fn generated_certificate_is_reused_and_its_key_is_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = generated_settings(dir.path());
    let cert_path = dir.path().join(GENERATED_CERT_FILE);
    let key_path = dir.path().join(GENERATED_KEY_FILE);

    build_acceptor(&settings).expect("first start");
    let first = (
        std::fs::read(&cert_path).expect("cert"),
        std::fs::read(&key_path).expect("key"),
    );
    build_acceptor(&settings).expect("second start");
    let second = (
        std::fs::read(&cert_path).expect("cert"),
        std::fs::read(&key_path).expect("key"),
    );
    assert!(
        first == second,
        "second start must reuse the generated pair"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path)
            .expect("key metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let cert = openssl::x509::X509::from_pem(&first.0).expect("PEM certificate");
    let cn: Vec<_> = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .map(|e| e.data().to_string().expect("utf8"))
        .collect();
    assert_eq!(cn, ["cm.gelighting.com"]);
    let dns: Vec<_> = cert
        .subject_alt_names()
        .expect("SAN")
        .iter()
        .filter_map(|name| name.dnsname().map(str::to_owned))
        .collect();
    assert_eq!(
        dns,
        [
            "cm.gelighting.com",
            "cm-sec.gelighting.com",
            "cm-ge.xlink.cn"
        ]
    );
    assert_eq!(
        cert.signature_algorithm().object().nid(),
        openssl::nid::Nid::SHA256WITHRSAENCRYPTION
    );
    assert_eq!(
        cert.public_key().expect("key").rsa().expect("RSA").size() * 8,
        2048
    );
    let validity = cert.not_before().diff(cert.not_after()).expect("validity");
    assert!((3600..=3700).contains(&validity.days), "{validity:?}");
}

#[test]
fn configured_certificate_files_are_used_and_named_in_errors() {
    let generated = tempfile::tempdir().expect("tempdir");
    build_acceptor(&generated_settings(generated.path())).expect("generate a pair");
    let cert = generated.path().join(GENERATED_CERT_FILE);
    let key = generated.path().join(GENERATED_KEY_FILE);

    let elsewhere = tempfile::tempdir().expect("tempdir");
    let configured = TlsSettings {
        cert_path: Some(cert.clone()),
        key_path: Some(key.clone()),
        data_dir: elsewhere.path().to_path_buf(),
    };
    build_acceptor(&configured).expect("configured pair");
    assert!(
        !elsewhere.path().join(GENERATED_CERT_FILE).exists(),
        "configured files must not trigger generation"
    );

    let missing = elsewhere.path().join("missing-cert.pem");
    let error = refused(
        &TlsSettings {
            cert_path: Some(missing.clone()),
            ..configured.clone()
        },
        "missing certificate",
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot read certificate {}: ", missing.display())),
        "{message}"
    );

    let error = refused(
        &TlsSettings {
            key_path: None,
            ..configured.clone()
        },
        "certificate without key",
    );
    assert!(matches!(error, TlsError::IncompletePaths { .. }), "{error}");

    let other = tempfile::tempdir().expect("tempdir");
    build_acceptor(&generated_settings(other.path())).expect("another pair");
    let error = refused(
        &TlsSettings {
            key_path: Some(other.path().join(GENERATED_KEY_FILE)),
            ..configured
        },
        "key from another pair",
    );
    assert_eq!(
        error.to_string(),
        format!(
            "private key {} does not belong to certificate {} (their public keys differ)",
            other.path().join(GENERATED_KEY_FILE).display(),
            cert.display()
        )
    );
}

#[test]
fn a_half_written_generated_pair_is_replaced_by_a_fresh_matching_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = generated_settings(dir.path());
    let key_path = dir.path().join(GENERATED_KEY_FILE);
    build_acceptor(&settings).expect("first start");
    let old_key = std::fs::read(&key_path).expect("key");
    // As if a crash happened before the certificate was written.
    std::fs::remove_file(dir.path().join(GENERATED_CERT_FILE)).expect("remove cert");

    build_acceptor(&settings).expect("start after the crash");
    assert_ne!(std::fs::read(&key_path).expect("key"), old_key);
    build_acceptor(&settings).expect("the new pair matches and is reused");
}
