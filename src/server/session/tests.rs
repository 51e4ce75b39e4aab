//! Session timing on the paused clock, so the tests are fast and deterministic: an in-memory stream
//! stands in for the socket, so every delay is virtual and exact.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::device::StateStore;
use crate::protocol::{decode, encode, Framer, Packet, PeerId};
use crate::server::{Routes, ServerContext, ServerSettings, SingleHome};
use crate::telemetry::Metrics;

/// The shipped `[server]` defaults (config/cync-bridge.toml), written out: this layer's tests
/// never load the config tree.
fn settings() -> ServerSettings {
    let n = |v: usize| std::num::NonZeroUsize::new(v).unwrap();
    ServerSettings {
        listen: "0.0.0.0:23779".parse().unwrap(),
        handshake_timeout: Duration::from_secs(10),
        hello_timeout: Duration::from_secs(10),
        max_connections: n(256),
        over_limit_hold: Duration::from_secs(15),
        max_held_connections: n(64),
        idle_timeout: Duration::from_secs(65),
        session_open_delay: Duration::from_millis(500),
        mesh_info_delay: Duration::from_millis(1500),
        write_timeout: Duration::from_secs(5),
        send_buffer_bytes: n(64 * 1024),
        command_queue: n(64),
        max_inflight: n(256),
        allow_device_ids: Vec::new(),
        allow_networks: Vec::new(),
        plain_tcp_debug: false,
        counter_seed: None,
    }
}

fn context() -> Arc<ServerContext> {
    let metrics = Metrics::new();
    Arc::new(ServerContext {
        config: Arc::new(settings()),
        timezone: chrono_tz::UTC,
        routes: Arc::new(Routes::new(metrics.clone())),
        state: Arc::new(StateStore::new(16, 16)),
        homes: Arc::new(SingleHome),
        shutdown: CancellationToken::new(),
        next_session: AtomicU64::new(1),
        metrics,
    })
}

/// A session on one end of an in-memory pipe; the test is the device on the other end.
fn start(ctx: &Arc<ServerContext>) -> DuplexStream {
    let (device, bridge) = tokio::io::duplex(64 * 1024);
    let addr = "192.0.2.1:40000".parse().unwrap();
    TaskTracker::new().spawn(super::run(
        Arc::clone(ctx),
        bridge,
        addr,
        ctx.shutdown.child_token(),
    ));
    device
}

async fn next_packet(device: &mut DuplexStream, buf: &mut BytesMut) -> Option<Vec<u8>> {
    loop {
        if let Some(packet) = Framer::default().next_packet(buf) {
            return Some(packet.unwrap().to_vec());
        }
        if device.read_buf(buf).await.unwrap() == 0 {
            return None;
        }
    }
}

async fn say_hello(device: &mut DuplexStream) {
    let mut hello = BytesMut::new();
    encode::hello(&mut hello, PeerId([1, 2, 3, 4]), b"1e07d8ce0a617a37");
    device.write_all(&hello).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_0xa3_follows_the_hello_by_half_a_second_and_the_mesh_request_1_5_s_later() {
    let ctx = context();
    let mut device = start(&ctx);
    let mut buf = BytesMut::new();
    say_hello(&mut device).await;
    let hello_at = Instant::now();
    assert_eq!(next_packet(&mut device, &mut buf).await.unwrap()[0], 0x28);
    assert_eq!(hello_at.elapsed(), Duration::ZERO, "the 0x28 is immediate");

    let open = next_packet(&mut device, &mut buf).await.unwrap();
    assert!(matches!(decode(&open), Ok(Packet::SessionOpen { .. })));
    assert_eq!(hello_at.elapsed(), Duration::from_millis(500));

    let request = next_packet(&mut device, &mut buf).await.unwrap();
    assert_eq!(request[0], 0x73);
    assert_eq!(hello_at.elapsed(), Duration::from_millis(2000));
}

#[tokio::test(start_paused = true)]
async fn a_session_that_hears_nothing_for_the_idle_timeout_is_closed_then() {
    let ctx = context();
    let mut device = start(&ctx);
    let mut buf = BytesMut::new();
    say_hello(&mut device).await;
    let hello_at = Instant::now();
    // Keep reading what the bridge sends (0x28, 0xA3, mesh request) until it hangs up.
    while next_packet(&mut device, &mut buf).await.is_some() {}
    assert_eq!(hello_at.elapsed(), Duration::from_secs(65));
    assert_eq!(
        ctx.metrics
            .sample_value("tcp_comm_sessions_closed_total{reason=\"idle_timeout\"}"),
        Some(1.0)
    );
    assert_eq!(ctx.routes.session_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_keeps_the_session_open() {
    let ctx = context();
    let mut device = start(&ctx);
    let mut buf = BytesMut::new();
    say_hello(&mut device).await;
    let start = Instant::now();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(60)).await;
        device.write_all(&[0xd3, 0, 0, 0, 0]).await.unwrap();
    }
    let mut answers = 0;
    while let Some(packet) = next_packet(&mut device, &mut buf).await {
        answers += usize::from(packet[0] == 0xd8);
    }
    assert_eq!(answers, 5, "every heartbeat answered");
    assert_eq!(start.elapsed(), Duration::from_secs(5 * 60 + 65));
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_says_hello_is_closed_after_the_hello_timeout() {
    let ctx = context();
    let mut device = start(&ctx);
    let mut buf = BytesMut::new();
    let connected = Instant::now();
    // Silent: the bridge sends nothing before a hello, and hangs up at the hello deadline,
    // long before the 65 s idle timeout.
    assert_eq!(next_packet(&mut device, &mut buf).await, None);
    assert_eq!(connected.elapsed(), Duration::from_secs(10));
    assert_eq!(
        ctx.metrics
            .sample_value("tcp_comm_sessions_closed_total{reason=\"no_hello\"}"),
        Some(1.0)
    );
}

#[tokio::test(start_paused = true)]
async fn the_send_queue_gauge_counts_commands_until_the_session_takes_or_drops_them() {
    use crate::server::{CommandToken, SessionCommand};
    let ctx = context();
    let mut device = start(&ctx);
    say_hello(&mut device).await;
    let gauge = || {
        ctx.metrics
            .sample_value("tcp_comm_send_queue_size")
            .unwrap_or(f64::NAN)
    };
    let handle = loop {
        if let Some(h) = ctx.routes.session_of(PeerId([1, 2, 3, 4])) {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let (events, _updates) = tokio::sync::mpsc::channel(16);
    let command = |n| SessionCommand {
        command: crate::protocol::Command::Power {
            target: n,
            on: true,
        },
        seq: None,
        token: CommandToken(u64::from(n)),
        correlation: uuid::Uuid::nil(),
        events: events.clone(),
    };
    // Before the 0xA3 the session takes no commands: they wait in its queue.
    handle.try_submit(command(1)).unwrap();
    handle.try_submit(command(2)).unwrap();
    assert_eq!(gauge(), 2.0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(gauge(), 0.0, "taken once the session opened");
    // Commands queued when the session ends are dropped, and leave the gauge too.
    drop(device);
    // Accepted or refused depending on whether the session has noticed the EOF yet: either way
    // nothing may stay counted once it has ended.
    let _ = handle.try_submit(command(3));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(handle.is_closed());
    assert_eq!(gauge(), 0.0);
}
