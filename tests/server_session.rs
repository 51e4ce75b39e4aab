//! A scripted device against the real bridge: every packet that expects an answer gets the
//! answer the real cloud gives (`docs/protocol.md#packet-types`, vectors from
//! `docs/protocol.md#test-vectors`), the session opens with
//! 0xA3 then the mesh-info request, and each mesh-info response is acknowledged with `f8 af`.

mod server_world;

use bytes::BytesMut;
use cync_bridge::device::{DeviceKey, HomeId};
use cync_bridge::protocol::content::MeshRecord;
use cync_bridge::protocol::encode;
use cync_bridge::protocol::{decode, Command, FrameContent, LightState, MsgId, Packet, Stuffing};
use cync_bridge::server::{CommandEvent, CommandToken, CommandUpdate, RouteKind, SessionCommand};
use server_world::{device_id, Bridge, Device};

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect()
}

/// Sends `request` and asserts the very next packet from the bridge is `reply`.
async fn answered(device: &mut Device, request: &str, reply: &str) {
    device.send(&hex(request)).await;
    assert_eq!(device.next().await, hex(reply), "answer to {request}");
}

#[tokio::test]
async fn every_device_packet_that_expects_an_answer_gets_the_clouds_answer() {
    // No 0xA3 during this test: only answers may arrive, in order.
    let bridge = Bridge::start("[server]\nsession_open_delay = \"1h\"").await;
    let mut device = Device::hello(bridge.addr, device_id(1)).await;

    // Test vectors 4 heartbeat, 5 TLV block, 8 diagnostic, 12 self record, 13 relay records.
    answered(&mut device, "d3 00 00 00 00", "d8 00 00 00 00").await;
    answered(&mut device, "43 00 00 00 1e 32 5d 53 17 01 01 06 c6 20 02 00 ab c5 20 02 00 04 c4 20 02 00 01 c3 20 02 00 05 c2 90 00", "48 00 00 00 03 01 01 00").await;
    answered(&mut device, "43 00 00 00 34 60 b1 7e f1 01 01 06 c7 90 2a 32 30 32 35 31 31 30 36 3a 30 32 32 30 3a 2d 33 37 2c 30 30 30 30 36 2c 30 30 30 30 31 2c 30 30 30 30 31 2c 30 30 30 30 31 2c", "48 00 00 00 03 01 01 00").await;
    answered(&mut device, "43 00 00 00 1a 38 e8 cf 46 01 01 06 05 00 10 ee 01 0a 0a ff ff ff 01 00 ee 00 00 00 00 00 00", "48 00 00 00 03 01 01 00").await;
    answered(&mut device, "43 00 00 00 2d 60 b1 7c 4a 01 01 06 06 00 10 2c 01 18 00 00 00 00 01 14 1a 00 00 00 00 00 00 07 00 10 7c 01 18 0a 00 00 00 01 14 1a 00 00 00 00 00 00", "48 00 00 00 03 01 01 00").await;
    answered(
        &mut device,
        "43 00 00 00 07 3d 54 66 a6 01 01 06",
        "48 00 00 00 03 01 01 00",
    )
    .await;
    // Test vectors 6 firmware frame, 9 state report, 14 node notification: 0x88 echoes the msg id.
    answered(&mut device, "83 00 00 00 32 32 5d 53 17 00 01 00 00 00 00 00 00 fa 00 20 00 00 00 00 00 00 00 00 ea 00 00 00 86 01 00 30 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 c1 7e", "88 00 00 00 03 00 01 00").await;
    answered(&mut device, "83 00 00 00 25 45 88 0f 3a 00 09 00 7e 1f 00 00 00 fa db 13 00 72 25 11 50 00 50 00 db 11 02 01 01 0a 0a ff ff ff 00 00 37 7e", "88 00 00 00 03 00 09 00").await;
    answered(&mut device, "83 00 00 00 26 3d 54 6d e6 00 0c 00 7e 1f 00 00 00 fa db 14 00 95 2b 00 1a 00 ff ff ea 11 02 1a a1 01 0b 01 00 00 00 00 00 8c 7e", "88 00 00 00 03 00 0c 00").await;
    // A damaged 0x83 (checksum 0x38 instead of 0x37) is still acknowledged, then counted.
    answered(&mut device, "83 00 00 00 25 45 88 0f 3a 00 0a 00 7e 1f 00 00 00 fa db 13 00 72 25 11 50 00 50 00 db 11 02 01 01 0a 0a ff ff ff 00 00 38 7e", "88 00 00 00 03 00 0a 00").await;
    // Test vector 22, docs/protocol.md#data-packets: a device 0x73 gets 0x7B echoing its bytes
    // 5..11.
    answered(
        &mut device,
        "73 00 00 00 13 2d e4 b5 d2 00 02 00 7e 21 00 00 00 f9 d0 01 00 00 d1 7e",
        "7b 00 00 00 07 2d e4 b5 d2 00 02 00",
    )
    .await;
    // A receipt and an 0xAB need no answer: the next packet is the heartbeat's.
    let mut quiet = hex("7b 00 00 00 07 2d e4 b5 d2 15 37 00");
    let mut reply = BytesMut::new();
    encode::session_reply(&mut reply, device.id, MsgId::from_counter(1));
    quiet.extend_from_slice(&reply);
    quiet.extend(hex("d3 00 00 00 00"));
    device.send(&quiet).await;
    assert_eq!(device.next().await, hex("d8 00 00 00 00"));

    // Test vector 3: 0xC3 gets the local time (timezone = "UTC" in the test config).
    device.send(&hex("c3 00 00 00 01 0c")).await;
    match decode(&device.next().await) {
        Ok(Packet::ConnectAck(time)) => {
            assert_eq!(time.utc_offset_hhmm, 0);
            assert!(
                (1..=7).contains(&time.weekday) && time.year >= 2025,
                "{time:?}"
            );
        }
        other => panic!("expected 0xC8, got {other:?}"),
    }
    assert_eq!(
        bridge.sample(&format!(
            "tcp_comm_decode_errors_total{{device_id=\"{}\",reason=\"checksum\"}}",
            device.id
        )),
        1.0
    );
}

#[tokio::test]
async fn the_clock_in_0xc8_is_local_time_of_the_configured_zone() {
    let bridge = Bridge::start("timezone = \"Asia/Kolkata\"").await;
    let mut device = Device::hello(bridge.addr, device_id(2)).await;
    device.send(&hex("c3 00 00 00 01 0c")).await;
    match decode(&device.next_of(0xC8).await) {
        Ok(Packet::ConnectAck(time)) => assert_eq!(time.utc_offset_hhmm, 530),
        other => panic!("expected 0xC8, got {other:?}"),
    }
}

fn command_of(packet: &[u8]) -> (Command, u32, MsgId) {
    let Ok(Packet::Data(framed)) = decode(packet) else {
        panic!("expected a 0x73, got {packet:02x?}")
    };
    let frame = framed.frame.expect("valid frame");
    match frame.content() {
        FrameContent::Command { command, .. } => (command, frame.tx, framed.msg),
        other => panic!("expected a request, got {other:?}"),
    }
}

fn record(mesh_id: u16, device_type: u8, on: bool) -> MeshRecord {
    MeshRecord {
        mesh_id,
        device_type,
        state: LightState {
            on,
            brightness: 100,
            temperature: 50,
            rgb: [0; 3],
        },
    }
}

/// A mesh-info response (`docs/protocol.md#mesh-info-records`) answering the request with `tx`.
fn mesh_answer(device: &Device, counter: u16, tx: u32, records: &[MeshRecord]) -> BytesMut {
    let mut out = BytesMut::new();
    let msg = MsgId::from_counter(counter);
    encode::mesh_info_response(&mut out, device.id, msg, tx, records, Stuffing::Raw);
    out
}

/// Hello, then the 0xA3 (answered with 0xAB) and the mesh request; returns the request's tx.
async fn opened(device: &mut Device) -> u32 {
    let open = device.next().await;
    let Ok(Packet::SessionOpen { peer, msg }) = decode(&open) else {
        panic!("first after the hello: 0xA3, got {open:02x?}")
    };
    assert_eq!(
        peer, device.id,
        "session id = the device's own id (docs/protocol.md#session-open)"
    );
    let (request, tx, request_msg) = command_of(&device.next().await);
    assert_eq!(request, Command::MeshInfoRequest);
    let mut out = BytesMut::new();
    encode::session_reply(&mut out, device.id, msg);
    encode::receipt(&mut out, device.id, request_msg);
    device.send(&out).await;
    tx
}

#[tokio::test]
async fn after_the_hello_come_0xa3_then_the_mesh_request_and_each_mesh_answer_is_acked() {
    let bridge = Bridge::start("").await;
    let mut device = Device::hello(bridge.addr, device_id(3)).await;
    let tx = opened(&mut device).await;

    let first = [record(5, 0x44, false), record(7, 0, true)];
    device.send(&mesh_answer(&device, 2, tx, &first)).await;
    let receipt = device.next().await;
    assert_eq!(
        receipt[..5],
        [0x7B, 0, 0, 0, 7],
        "the response gets its receipt first"
    );
    assert_eq!(receipt[9..12], MsgId::from_counter(2).0);
    assert_eq!(command_of(&device.next().await).0, Command::MeshAck);

    device
        .send(&mesh_answer(&device, 3, tx, &[record(9, 0, true)]))
        .await;
    let ack = device.next_of(0x73).await;
    assert_eq!(command_of(&ack).0, Command::MeshAck, "one ack per response");
}

#[tokio::test]
async fn mesh_info_teaches_routes_and_state_and_a_repeat_changes_nothing() {
    let bridge = Bridge::start("").await;
    let mut device = Device::hello(bridge.addr, device_id(5)).await;
    let tx = opened(&mut device).await;
    let records = [
        record(5, 0x44, false),
        record(7, 0, true),
        record(9, 0, true),
    ];
    device.send(&mesh_answer(&device, 2, tx, &records)).await;
    device.next_of(0x73).await;

    let key = |m| DeviceKey::new(HomeId::DEFAULT, m);
    bridge
        .until("three routes", |b| b.routes().route_count() == 3)
        .await;
    assert_eq!(
        bridge.routes().routes_to(&key(5))[0].kind,
        RouteKind::Direct
    );
    assert_eq!(bridge.routes().routes_to(&key(9))[0].kind, RouteKind::Relay);
    assert!(
        bridge
            .state()
            .get(&key(7))
            .expect("state from mesh info")
            .light
            .on
    );

    let mut changes = bridge.state().subscribe();
    device.send(&mesh_answer(&device, 3, tx, &records)).await;
    device.next_of(0x73).await;
    assert!(
        changes.try_recv().is_err(),
        "a repeated mesh answer changes no state"
    );
}

#[tokio::test]
async fn a_phone_app_login_is_refused_by_closing_its_connection() {
    let bridge = Bridge::start("").await;
    let mut app = Device::connect(bridge.addr, device_id(4)).await;
    // 0x13 (docs/protocol.md#phone-app-login): 03, app id, 00 10, 16-char authorize code, 20 more bytes (L = 0x2b).
    let mut login = hex("13 00 00 00 2b 03 2d e4 b5 d2 00 10");
    login.extend_from_slice(b"2207a1b2c3d4e5f6");
    login.extend([0u8; 20]);
    app.send(&login).await;
    assert_eq!(app.try_next().await, None, "closed without a 0x18");
    bridge
        .until("the refusal is counted", |b| {
            b.sample("tcp_comm_sessions_closed_total{reason=\"app_login_refused\"}") == 1.0
        })
        .await;
}

/// Submits `command` straight to the device's session, as a transport does.
fn submit(
    bridge: &Bridge,
    device: &Device,
    command: Command,
    seq: Option<cync_bridge::protocol::Seq>,
) -> tokio::sync::mpsc::Receiver<CommandUpdate> {
    let session = bridge
        .routes()
        .session_of(device.id)
        .expect("registered after the hello");
    let (events, updates) = tokio::sync::mpsc::channel(8);
    let command = SessionCommand {
        command,
        seq,
        token: CommandToken(42),
        correlation: cync_bridge::telemetry::new_correlation_id(),
        events,
    };
    session.try_submit(command).expect("queue has room");
    updates
}

#[tokio::test]
async fn a_transport_may_choose_msg_id_and_tx_and_gets_receipt_and_response_back() {
    let bridge = Bridge::start("").await;
    let mut device = Device::hello(bridge.addr, device_id(6)).await;
    let tx = opened(&mut device).await;
    device
        .send(&mesh_answer(&device, 2, tx, &[record(6, 0x44, false)]))
        .await;
    device.next_of(0x73).await; // mesh ack

    let seq = cync_bridge::protocol::Seq {
        msg: MsgId::from_counter(1),
        tx: 0x21,
        sno: 0x21,
    };
    let mut updates = submit(
        &bridge,
        &device,
        Command::Power {
            target: 6,
            on: true,
        },
        Some(seq),
    );
    let sent = device.next_of(0x73).await;
    let (command, sent_tx, sent_msg) = command_of(&sent);
    assert_eq!(
        (command, sent_tx, sent_msg),
        (
            Command::Power {
                target: 6,
                on: true
            },
            0x21,
            seq.msg
        )
    );

    let mut out = BytesMut::new();
    encode::response(
        &mut out,
        device.id,
        MsgId::from_counter(9),
        0x21,
        0xD0,
        Stuffing::Raw,
    );
    encode::receipt(&mut out, device.id, seq.msg);
    device.send(&out).await;
    let events: Vec<CommandEvent> = [
        updates.recv().await.unwrap(),
        updates.recv().await.unwrap(),
        updates.recv().await.unwrap(),
    ]
    .iter()
    .inspect(|u| assert_eq!(u.token, CommandToken(42)))
    .map(|u| u.event)
    .collect();
    assert_eq!(
        events,
        [
            CommandEvent::Sent { seq },
            CommandEvent::Response {
                tx: 0x21,
                op: 0xD0,
                status: 0
            },
            CommandEvent::Receipt { msg: seq.msg },
        ]
    );
}

#[tokio::test]
async fn a_command_submitted_before_the_session_opens_waits_for_the_0xa3() {
    let bridge = Bridge::start("[server]\nsession_open_delay = \"200ms\"").await;
    let mut device = Device::hello(bridge.addr, device_id(7)).await;
    let _updates = submit(
        &bridge,
        &device,
        Command::Power {
            target: 7,
            on: false,
        },
        None,
    );
    assert_eq!(device.next().await[0], 0xA3, "the session opens first");
    let (command, _, msg) = command_of(&device.next_of(0x73).await);
    let command = if command == Command::MeshInfoRequest {
        command_of(&device.next_of(0x73).await).0
    } else {
        command
    };
    assert_eq!(
        command,
        Command::Power {
            target: 7,
            on: false
        },
        "not lost"
    );
    assert!(
        msg.counter() >= 0x8000,
        "the session's own msg ids are in the upper half"
    );
}

#[tokio::test]
async fn plain_tcp_is_served_only_behind_the_debug_flag() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut hello = BytesMut::new();
    encode::hello(&mut hello, device_id(8), b"1e07d8ce0a617a37");

    let debug = Bridge::start("[server]\nplain_tcp_debug = true").await;
    let mut tcp = tokio::net::TcpStream::connect(debug.addr).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    let mut ack = [0u8; 7];
    tcp.read_exact(&mut ack).await.unwrap();
    assert_eq!(ack, [0x28, 0, 0, 0, 2, 0, 0]);

    // Without the flag the same bytes are a failed TLS handshake, never a session.
    let tls = Bridge::start("").await;
    let mut tcp = tokio::net::TcpStream::connect(tls.addr).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest).await;
    assert!(!rest.starts_with(&[0x28]), "{rest:02x?}");
    assert_eq!(tls.sample("tcp_comm_sessions_opened_total"), 0.0);
}
