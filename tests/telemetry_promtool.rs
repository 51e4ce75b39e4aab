//! A live scrape of `/metrics` must pass `promtool check metrics` with nothing to report — the
//! exposition is an interface (DESIGN.md), and promtool is the reference linter for it.
//!
//! promtool comes from the Debian/Ubuntu package `prometheus` (`/usr/bin/promtool`). Without it
//! the test prints that it skipped; CI sets `CYNC_REQUIRE_PROMTOOL=1` (and installs the package),
//! which turns a missing promtool into a failure.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use cync_bridge::telemetry::{serve, Health, Metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

fn record_a_bit_of_everything(metrics: &Metrics) {
    metrics.packet_sent("1a2b3c4d", "ok");
    metrics.packet_sent("weird \"id\"\\\n", "write_error");
    metrics.packet_recv("1a2b3c4d", "ok");
    for ms in [0, 3, 27, 128, 1_000, 60_000] {
        metrics.packet_latency("1a2b3c4d", Duration::from_millis(ms));
    }
    metrics.packet_retransmit("1a2b3c4d", "timeout");
    metrics.decode_error("1a2b3c4d", "bad_checksum");
    let _session = metrics.session_opened();
    metrics.session_opened().close("idle_timeout");
    metrics.mesh_routes().set(12);
    metrics.tls_handshake_failure("no_shared_cipher");
    metrics.connection_rejected("over_limit");
    metrics.ack_received("1a2b3c4d", "matched");
    metrics.ack_timeout("1a2b3c4d");
    metrics.idempotent_drop("1a2b3c4d");
    metrics.send_queue_size().add(2);
    metrics.recv_queue_size().set(1);
    metrics.queue_full("1a2b3c4d", "send");
    metrics.command("reliable", "success");
    metrics.command("legacy", "timeout");
    metrics.command_latency("reliable", Duration::from_millis(42));
    metrics.command_latency("legacy", Duration::from_secs(2));
}

async fn scrape() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (metrics, shutdown) = (Metrics::new(), CancellationToken::new());
    record_a_bit_of_everything(&metrics);
    let server = tokio::spawn(serve(listener, metrics, Health::new(), shutdown.clone()));

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    shutdown.cancel();
    server.await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    body.to_owned()
}

#[tokio::test]
async fn a_live_scrape_passes_promtool_check_metrics() {
    let required = std::env::var("CYNC_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
    let body = scrape().await;

    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            eprintln!(
                "SKIPPED: promtool not found (apt-get install prometheus); \
                 set CYNC_REQUIRE_PROMTOOL=1 to make this a failure"
            );
            return;
        }
        Err(e) => panic!("cannot run promtool (CYNC_REQUIRE_PROMTOOL={required}): {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && report.trim().is_empty(),
        "promtool check metrics ({}) reported:\n{report}\n--- scrape ---\n{body}",
        output.status
    );
}
