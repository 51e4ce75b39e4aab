//! A live scrape of `/metrics` must pass `promtool check metrics` with nothing to report — the
//! exposition is an interface, and promtool is the reference linter for it (see
//! `common/promtool.rs` for how a missing promtool is handled).

// By path, like `server_world` does, so a binary including both gets it once (clippy
// `duplicate_mod`) and this one does not compile all of `common`.
#[path = "common/promtool.rs"]
mod promtool;

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
    let body = scrape().await;
    promtool::check(&body);
}
