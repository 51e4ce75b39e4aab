//! One device's trouble stays its own: garbage, a client that never finishes TLS
//! and one that stops reading do not stop another session's command; 10,000 malformed packets
//! are counted without a crash; the real ClientHellos get a ServerHello from the running
//! listener.

mod server_world;

use std::time::Duration;

use bytes::BytesMut;
use cync_bridge::protocol::encode::{self, StateReportSpec};
use cync_bridge::protocol::{LightState, MsgId, PeerId, Stuffing};
use server_world::{device_id, Answer, AutoDevice, Bridge, Device, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HELLOS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/captures/tls-clienthellos-20251106.txt"
);

/// Deterministic junk (a xorshift stream), so a failure replays exactly.
fn junk(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// A device that says hello, then sends 0xC3 as fast as it can and never reads a reply, on a
/// socket with a tiny receive buffer so the bridge's writes stall quickly.
async fn stop_reading(addr: std::net::SocketAddr) -> tokio::task::JoinHandle<()> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let mut tls = cync_bridge::sim::tls::connect(tcp).await.unwrap();
    let mut hello = BytesMut::new();
    encode::hello(&mut hello, device_id(66), b"1e07d8ce0a617a37");
    tls.write_all(&hello).await.unwrap();
    let mut batch = BytesMut::new();
    for _ in 0..500 {
        encode::connect(&mut batch);
    }
    tokio::spawn(async move {
        while tls.write_all(&batch).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
}

#[tokio::test]
async fn garbage_a_stalled_handshake_and_a_device_that_stops_reading_do_not_affect_others() {
    let bridge = Bridge::start(
        "[server]\nhandshake_timeout = \"300ms\"\nwrite_timeout = \"1s\"\nsend_buffer_bytes = 4096",
    )
    .await;
    let _good = AutoDevice::start(bridge.addr, 1, 80, vec![], Answer::Full).await;
    bridge
        .until("a route to 80", |b| {
            b.routes().preferred(&Bridge::key(80)).is_some()
        })
        .await;

    let mut garbage = Device::connect(bridge.addr, device_id(2)).await;
    garbage.send(&junk(64 * 1024, 7)).await;
    let _silent_tcp = TcpStream::connect(bridge.addr).await.unwrap();
    let mut half_hello = TcpStream::connect(bridge.addr).await.unwrap();
    half_hello
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x58, 0x01])
        .await
        .unwrap();
    let flood = stop_reading(bridge.addr).await;

    for round in 0..6 {
        bridge.toggle_ok(80, round % 2 == 0).await;
    }
    bridge
        .until("both stalled handshakes time out", |b| {
            b.sample("tcp_comm_tls_handshake_failures_total{reason=\"timeout\"}") == 2.0
        })
        .await;
    bridge
        .until("the device that stopped reading is closed", |b| {
            b.sample("tcp_comm_sessions_closed_total{reason=\"write_timeout\"}") == 1.0
        })
        .await;
    let stalled = device_id(66);
    assert!(
        bridge.sample(&format!(
            "tcp_comm_queue_full_total{{device_id=\"{stalled}\",queue_type=\"send\"}}"
        )) > 0.0
    );
    assert!(
        bridge.sample("tcp_comm_decode_errors_total{device_id=\"unknown\",reason=\"junk\"}") > 0.0
    );
    bridge.toggle_ok(80, true).await;
    flood.abort();
}

/// Four kinds of damage the framer lets through and the decoder rejects, one counted error each.
fn malformed(i: usize, peer: PeerId) -> Vec<u8> {
    let mut out = BytesMut::new();
    let msg = MsgId::from_counter(i as u16);
    let state = LightState {
        on: true,
        brightness: 10,
        temperature: 10,
        rgb: [0xff; 3],
    };
    let spec = StateReportSpec {
        tx: 0x1f,
        counter: [0x72, 0x25, 0x11],
        mesh_id: 80,
        online: true,
        state,
    };
    match i % 4 {
        0 => {
            encode::state_report(&mut out, peer, msg, &spec, Stuffing::Raw);
            let at = out.len() - 2;
            out[at] = out[at].wrapping_add(1); // checksum
        }
        1 => {
            encode::response(&mut out, peer, msg, 0x21, 0xD0, Stuffing::Raw);
            let at = out.len() - 2;
            out[at] = out[at].wrapping_add(1); // checksum
        }
        2 => {
            encode::state_report(&mut out, peer, msg, &spec, Stuffing::Raw);
            out[19] = 0x12; // payload length N, one short
        }
        _ => out.extend_from_slice(&[0x93, 0, 0, 0, 4, 1, 2, 3, 4]), // unknown type
    }
    out.to_vec()
}

#[tokio::test]
async fn ten_thousand_malformed_packets_are_counted_and_the_bridge_carries_on() {
    let bridge = Bridge::start("").await;
    let _good = AutoDevice::start(bridge.addr, 1, 80, vec![], Answer::Full).await;
    let device = Device::hello(bridge.addr, device_id(3)).await;
    let peer = device.id;
    let (mut read, mut write) = device.into_split();
    // Keep reading (acks keep coming) until the heartbeat's answer shows all input was handled.
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.ends_with(&[0xd8, 0, 0, 0, 0]) {
            let n = read.read(&mut buf).await.unwrap();
            assert!(n > 0, "bridge closed the connection");
            seen.extend_from_slice(&buf[..n]);
        }
    });
    for chunk in (0..10_000).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<u8> = chunk.iter().flat_map(|i| malformed(*i, peer)).collect();
        write.write_all(&batch).await.unwrap();
    }
    write.write_all(&[0xd3, 0, 0, 0, 0]).await.unwrap();
    tokio::time::timeout(PATIENCE, reader)
        .await
        .unwrap()
        .unwrap();

    let errors = |reason: &str| {
        bridge.sample(&format!(
            "tcp_comm_decode_errors_total{{device_id=\"{peer}\",reason=\"{reason}\"}}"
        ))
    };
    assert_eq!(errors("checksum"), 5_000.0);
    assert_eq!(errors("frame_length_mismatch"), 2_500.0);
    assert_eq!(errors("unknown_type"), 2_500.0);
    bridge.toggle_ok(80, true).await;
}

#[tokio::test]
async fn every_real_device_client_hello_gets_a_server_hello_from_the_running_listener() {
    let capture = match cync_bridge::capture::read_path(std::path::Path::new(HELLOS)) {
        Ok(capture) => capture.strict().expect("fixture parses"),
        Err(error) if std::env::var("CYNC_REQUIRE_SHARED_FIXTURES").as_deref() != Ok("1") => {
            eprintln!("skipped: shared fixture {HELLOS} not available ({error})");
            return;
        }
        Err(error) => panic!("shared fixture {HELLOS} is required: {error}"),
    };
    // The first hello of each of the three fingerprints (144, 88, 114 bytes,
    // docs/protocol.md#tls-parameters).
    let mut hellos: Vec<Vec<u8>> = Vec::new();
    for record in capture {
        if !hellos.iter().any(|h| h.len() == record.bytes.len()) {
            hellos.push(record.bytes);
        }
    }
    assert_eq!(
        hellos.iter().map(Vec::len).collect::<Vec<_>>(),
        [144, 88, 114]
    );

    let bridge = Bridge::start("").await;
    for hello in &hellos {
        let mut tcp = TcpStream::connect(bridge.addr).await.unwrap();
        tcp.write_all(hello).await.unwrap();
        let mut head = [0u8; 6];
        tokio::time::timeout(PATIENCE, tcp.read_exact(&mut head))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            head[0],
            0x16,
            "{}-byte hello: a handshake record",
            hello.len()
        );
        assert_eq!(
            head[1..3],
            [0x03, 0x03],
            "{}-byte hello: TLS 1.2",
            hello.len()
        );
        assert_eq!(
            head[5],
            0x02,
            "{}-byte hello: ServerHello first",
            hello.len()
        );
    }
    // Each replayed hello was abandoned (the capture has no key to finish it): counted as a
    // failed handshake, never as a session.
    bridge
        .until("the abandoned handshakes are counted", |b| {
            b.sample("tcp_comm_tls_handshake_failures_total{reason=\"closed\"}") == 3.0
        })
        .await;
    assert_eq!(bridge.sample("tcp_comm_sessions_opened_total"), 0.0);
}
