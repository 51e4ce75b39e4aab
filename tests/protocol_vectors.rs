//! Every real vector of `docs/protocol.md#test-vectors` decodes to its stated meaning (test `vNN`
//! is vector NN there), and every vector of `docs/protocol.md#synthetic-vectors` is produced
//! byte-for-byte by the encoders.

use bytes::BytesMut;
use cync_bridge::protocol::content::{FirmwareKind, NotificationKind, TEMP_RGB_MODE};
use cync_bridge::protocol::encode;
use cync_bridge::protocol::{
    decode, ClockTime, Command, FrameContent, FrameDir, InfoContent, LightColor, MsgId, Packet,
    PeerId,
};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect()
}

fn framed_content(packet: &Packet<'_>) -> (PeerId, MsgId, u32, FrameDir) {
    match packet {
        Packet::Data(f) | Packet::Status(f) => {
            let frame = f.frame.as_ref().expect("frame decodes");
            (f.peer, f.msg, frame.tx, frame.dir)
        }
        other => panic!("not framed: {other:?}"),
    }
}

fn content_of<R>(bytes: &[u8], check: impl FnOnce(FrameContent<'_>) -> R) -> R {
    let packet = decode(bytes).expect("decodes");
    match &packet {
        Packet::Data(f) | Packet::Status(f) => check(f.frame.as_ref().expect("frame").content()),
        other => panic!("not framed: {other:?}"),
    }
}

const PEER_4588: PeerId = PeerId([0x45, 0x88, 0x0f, 0x3a]);

#[test]
fn v01_hello_carries_device_id_and_auth_code() {
    let b = hex("23 00 00 00 1a 03 38 e8 cf 46 00 10 31 65 30 37 64 38 63 65 30 61 36 31 37 61 33 37 00 00 3c");
    let Packet::Hello(h) = decode(&b).unwrap() else {
        panic!()
    };
    assert_eq!(h.device_id, PeerId([0x38, 0xe8, 0xcf, 0x46]));
    assert_eq!(h.auth_code, b"1e07d8ce0a617a37");
    assert_eq!(h.version, 3);
    assert_eq!(h.trailer, &[0, 0, 0x3c]);
    let mut out = BytesMut::new();
    encode::hello(&mut out, h.device_id, h.auth_code);
    assert_eq!(&out[..], &b[..], "simulator hello is byte-identical");
}

#[test]
fn v02_hello_ack() {
    let b = hex("28 00 00 00 02 00 00");
    assert_eq!(decode(&b).unwrap(), Packet::HelloAck);
    let mut out = BytesMut::new();
    encode::hello_ack(&mut out);
    assert_eq!(&out[..], &b[..]);
}

#[test]
fn v03_connect_and_time_reply() {
    assert_eq!(
        decode(&hex("c3 00 00 00 01 0c")).unwrap(),
        Packet::Connect { payload: 0x0c }
    );
    let b = hex("c8 00 00 00 0b 0d 07 e9 0b 06 05 02 14 28 fd a8");
    let Packet::ConnectAck(t) = decode(&b).unwrap() else {
        panic!()
    };
    let expected = ClockTime {
        year: 2025,
        month: 11,
        day: 6,
        weekday: 5, // Thursday
        hour: 2,
        minute: 20,
        second: 40,
        utc_offset_hhmm: -600,
    };
    assert_eq!(t, expected);
    let mut out = BytesMut::new();
    encode::connect_ack(&mut out, &expected);
    assert_eq!(&out[..], &b[..]);
    assert_eq!(ClockTime::hhmm_from_seconds(-6 * 3600), -600);
    assert_eq!(ClockTime::hhmm_from_seconds(5 * 3600 + 1800), 530);
}

#[test]
fn v04_heartbeat_and_ack() {
    assert_eq!(decode(&hex("d3 00 00 00 00")).unwrap(), Packet::Heartbeat);
    assert_eq!(
        decode(&hex("d8 00 00 00 00")).unwrap(),
        Packet::HeartbeatAck
    );
    let mut out = BytesMut::new();
    encode::heartbeat_ack(&mut out);
    assert_eq!(&out[..], &hex("d8 00 00 00 00")[..]);
}

#[test]
fn v05_tlv_block_and_its_ack() {
    let b = hex("43 00 00 00 1e 32 5d 53 17 01 01 06 c6 20 02 00 ab c5 20 02 00 04 c4 20 02 00 01 c3 20 02 00 05 c2 90 00");
    let Packet::Info { peer, msg, content } = decode(&b).unwrap() else {
        panic!()
    };
    assert_eq!(peer, PeerId([0x32, 0x5d, 0x53, 0x17]));
    assert_eq!(msg, MsgId::INFO);
    let tlvs: Vec<_> = content.tlvs().map(|t| (t.key, t.value.to_vec())).collect();
    assert_eq!(
        tlvs,
        vec![
            (0xc6, vec![0x00, 0xab]),
            (0xc5, vec![0x00, 0x04]),
            (0xc4, vec![0x00, 0x01]),
            (0xc3, vec![0x00, 0x05]),
            (0xc2, vec![]),
        ]
    );
    let mut out = BytesMut::new();
    encode::info_ack(&mut out, msg);
    assert_eq!(&out[..], &hex("48 00 00 00 03 01 01 00")[..]);
}

#[test]
fn v06_v07_firmware_frames_and_their_acks() {
    let net = hex("83 00 00 00 32 32 5d 53 17 00 01 00 00 00 00 00 00 fa 00 20 00 00 00 00 00 00 00 00 ea 00 00 00 86 01 00 30 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 c1 7e");
    content_of(&net, |c| {
        let FrameContent::Firmware(fw) = c else {
            panic!("{c:?}")
        };
        assert_eq!(fw.kind, FirmwareKind::Network);
        assert_eq!(fw.digits, "0");
    });
    let dev = hex("83 00 00 00 32 32 5d 53 17 00 02 00 00 00 00 00 00 fa 00 20 00 00 00 00 00 00 00 00 ea 00 00 00 86 01 01 31 31 31 35 38 00 00 00 00 00 00 00 00 00 00 00 00 00 92 7e");
    content_of(&dev, |c| {
        let FrameContent::Firmware(fw) = c else {
            panic!("{c:?}")
        };
        assert_eq!(fw.kind, FirmwareKind::Device);
        assert_eq!(fw.version(), "1.1.158");
    });
    let (peer, msg, _, _) = framed_content(&decode(&dev).unwrap());
    let mut out = BytesMut::new();
    encode::status_ack(&mut out, msg);
    assert_eq!(&out[..], &hex("88 00 00 00 03 00 02 00")[..]);
    // The simulator's firmware frame is byte-identical.
    let mut out = BytesMut::new();
    encode::firmware(&mut out, peer, msg, 1, "11158");
    assert_eq!(&out[..], &dev[..]);
}

#[test]
fn v08_diagnostic_string_from_an_id_containing_7e() {
    let b = hex("43 00 00 00 34 60 b1 7e f1 01 01 06 c7 90 2a 32 30 32 35 31 31 30 36 3a 30 32 32 30 3a 2d 33 37 2c 30 30 30 30 36 2c 30 30 30 30 31 2c 30 30 30 30 31 2c 30 30 30 30 31 2c");
    let Packet::Info { peer, content, .. } = decode(&b).unwrap() else {
        panic!()
    };
    assert_eq!(peer, PeerId([0x60, 0xb1, 0x7e, 0xf1]));
    assert_eq!(
        content,
        InfoContent::Diagnostic("20251106:0220:-37,00006,00001,00001,00001,")
    );
    let mut out = BytesMut::new();
    encode::info_diagnostic(&mut out, peer, "20251106:0220:-37,00006,00001,00001,00001,");
    assert_eq!(&out[..], &b[..]);
}

#[test]
fn v09_v10_v11_state_reports() {
    let on = hex("83 00 00 00 25 45 88 0f 3a 00 09 00 7e 1f 00 00 00 fa db 13 00 72 25 11 50 00 50 00 db 11 02 01 01 0a 0a ff ff ff 00 00 37 7e");
    content_of(&on, |c| {
        let FrameContent::StateReport(r) = c else {
            panic!("{c:?}")
        };
        assert_eq!((r.src, r.dst), (80, 80));
        assert!(r.online && r.state.on);
        assert_eq!((r.state.brightness, r.state.temperature), (10, 10));
    });
    let off = hex("83 00 00 00 25 45 88 0f 3a 00 0c 00 7e 1f 00 00 00 fa db 13 00 74 25 11 50 00 50 00 db 11 02 01 00 18 0a ff ff ff 00 00 46 7e");
    content_of(&off, |c| {
        let FrameContent::StateReport(r) = c else {
            panic!("{c:?}")
        };
        assert!(!r.state.on);
        assert_eq!(r.state.brightness, 24, "brightness is retained while off");
    });
    let plain = hex("83 00 00 00 25 60 b1 8e 42 00 0e 00 7e 24 00 00 00 fa db 13 00 6d 25 11 2c 00 2c 00 db 11 02 01 01 0a 00 00 00 00 00 00 e3 7e");
    let (_, _, tx, dir) = framed_content(&decode(&plain).unwrap());
    assert_eq!((tx, dir), (0x24, FrameDir::Notify));
    content_of(&plain, |c| {
        let FrameContent::StateReport(r) = c else {
            panic!("{c:?}")
        };
        assert_eq!(r.src, 44);
        assert_eq!((r.state.temperature, r.state.rgb), (0, [0, 0, 0]));
    });
    // The simulator's state report is byte-identical to the real one.
    let mut out = BytesMut::new();
    encode::state_report(
        &mut out,
        PEER_4588,
        MsgId([0, 9, 0]),
        &encode::StateReportSpec {
            tx: 0x1f,
            counter: [0x72, 0x25, 0x11],
            mesh_id: 80,
            online: true,
            state: cync_bridge::protocol::LightState {
                on: true,
                brightness: 10,
                temperature: 10,
                rgb: [0xff; 3],
            },
        },
        cync_bridge::protocol::Stuffing::Raw,
    );
    assert_eq!(&out[..], &on[..]);
}

#[test]
fn v12_v13_status_records_self_and_relayed() {
    let b = hex("43 00 00 00 1a 38 e8 cf 46 01 01 06 05 00 10 ee 01 0a 0a ff ff ff 01 00 ee 00 00 00 00 00 00");
    let Packet::Info { content, peer, .. } = decode(&b).unwrap() else {
        panic!()
    };
    let recs: Vec<_> = content.records().collect();
    assert_eq!(recs.len(), 1);
    assert!(recs[0].is_self());
    assert_eq!((recs[0].mesh_id, recs[0].reporter), (238, 238));
    assert!(recs[0].state.on && recs[0].online);
    assert_eq!(
        (recs[0].state.brightness, recs[0].state.temperature),
        (10, 10)
    );
    let mut out = BytesMut::new();
    encode::info_records(&mut out, peer, &recs);
    assert_eq!(&out[..], &b[..]);

    let b = hex("43 00 00 00 2d 60 b1 7c 4a 01 01 06 06 00 10 2c 01 18 00 00 00 00 01 14 1a 00 00 00 00 00 00 07 00 10 7c 01 18 0a 00 00 00 01 14 1a 00 00 00 00 00 00");
    let Packet::Info { content, .. } = decode(&b).unwrap() else {
        panic!()
    };
    let recs: Vec<_> = content.records().collect();
    assert_eq!(recs.len(), 2);
    assert_eq!(
        (
            recs[0].mesh_id,
            recs[0].state.on,
            recs[0].state.brightness,
            recs[0].state.temperature
        ),
        (44, true, 24, 0)
    );
    assert_eq!(
        (
            recs[1].mesh_id,
            recs[1].state.on,
            recs[1].state.brightness,
            recs[1].state.temperature
        ),
        (124, true, 24, 10)
    );
    assert!(recs
        .iter()
        .all(|r| r.reporter == 26 && !r.is_self() && r.flags == 0x14));
}

#[test]
fn v14_v15_relayed_announcements_including_an_id_with_7e() {
    for b in [
        hex("83 00 00 00 26 3d 54 6d e6 00 09 00 7e 1f 00 00 00 fa db 14 00 95 2b 00 1a 00 ff ff ea 11 02 1a a1 01 0b 01 00 00 00 00 00 8c 7e"),
        hex("83 00 00 00 26 60 b1 7e f1 00 0c 00 7e 1f 00 00 00 fa db 14 00 0c 2e 00 1a 00 ff ff ea 11 02 1a a1 01 0b 01 00 00 00 00 00 06 7e"),
    ] {
        content_of(&b, |c| {
            let FrameContent::Notification(n) = c else { panic!("{c:?}") };
            assert_eq!((n.src, n.dst, n.node), (26, 0xffff, 26));
            assert_eq!(n.kind, NotificationKind::Announce);
        });
    }
}

#[test]
fn v16_stuffed_rgb_report() {
    let b = hex("83 00 00 00 26 37 96 24 69 00 5b 00 7e 25 00 00 00 fa db 13 00 7d 5d 22 11 07 00 07 00 db 11 02 01 01 64 fe f8 00 00 00 00 f6 7e");
    content_of(&b, |c| {
        let FrameContent::StateReport(r) = c else {
            panic!("{c:?}")
        };
        assert_eq!(r.counter, [0x7d, 0x22, 0x11]);
        assert_eq!(r.src, 7);
        assert!(r.state.on);
        assert_eq!(r.state.brightness, 100);
        assert_eq!(r.state.temperature, TEMP_RGB_MODE);
        assert_eq!(r.state.rgb, [0xf8, 0, 0]);
    });
}

#[test]
fn v17_session_open_and_its_1024_byte_reply() {
    let a3 = hex("a3 00 00 00 07 2d e4 b5 d2 15 2b 00");
    let peer = PeerId([0x2d, 0xe4, 0xb5, 0xd2]);
    let msg = MsgId([0x15, 0x2b, 0]);
    assert_eq!(decode(&a3).unwrap(), Packet::SessionOpen { peer, msg });
    let mut out = BytesMut::new();
    encode::session_open(&mut out, peer, msg);
    assert_eq!(&out[..], &a3[..]);

    let mut ab = hex("ab 00 00 03 fb 2d e4 b5 d2 15 2b 00 07 00 09 78 6c 69 6e 6b 5f 64 65 76");
    ab.extend(std::iter::repeat_n(0u8, 996));
    ab.extend(hex("e3 4f 02 10"));
    assert_eq!(ab.len(), 1024);
    let Packet::SessionReply {
        peer: p,
        msg: m,
        rest,
    } = decode(&ab).unwrap()
    else {
        panic!()
    };
    assert_eq!((p, m), (peer, msg));
    assert_eq!(&rest[3..12], b"xlink_dev");
    let mut out = BytesMut::new();
    encode::session_reply(&mut out, peer, msg);
    assert_eq!(&out[..], &ab[..]);
}

#[test]
fn v18_mesh_info_request() {
    let b = hex(
        "73 00 00 00 18 2d e4 b5 d2 15 2c 00 7e 1f 00 00 00 f8 52 06 00 00 00 ff ff 00 00 56 7e",
    );
    content_of(&b, |c| {
        assert_eq!(
            c,
            FrameContent::Command {
                command: Command::MeshInfoRequest,
                sno: None
            }
        );
    });
}

#[test]
fn v19_mesh_info_response_lists_four_devices() {
    let b = hex("73 00 00 00 78 37 96 24 69 00 00 00 7e 1f 00 00 00 f9 52 66 00 04 00 00 00 04 00 05 00 44 01 00 00 44 01 00 00 00 00 64 00 00 00 00 00 00 00 00 00 00 00 07 00 00 01 00 00 00 01 01 00 00 00 64 00 00 00 64 00 00 00 00 00 00 00 03 00 00 01 00 00 00 01 00 00 00 00 00 00 00 00 32 00 00 00 00 00 00 00 02 00 00 01 00 00 00 01 00 00 00 00 00 00 00 00 32 00 00 00 00 00 00 00 f2 7e");
    let records = content_of(&b, |c| {
        let FrameContent::MeshInfo(m) = c else {
            panic!("{c:?}")
        };
        assert_eq!(m.trailing(), 0);
        m.records().collect::<Vec<_>>()
    });
    let summary: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.mesh_id,
                r.device_type,
                r.state.on,
                r.state.brightness,
                r.state.temperature,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (5, 68, false, 100, 0),
            (7, 0, true, 100, 100),
            (3, 0, false, 0, 50),
            (2, 0, false, 0, 50)
        ]
    );
    let mut out = BytesMut::new();
    encode::mesh_info_response(
        &mut out,
        PeerId([0x37, 0x96, 0x24, 0x69]),
        MsgId([0, 0, 0]),
        0x1f,
        &records,
        cync_bridge::protocol::Stuffing::Raw,
    );
    assert_eq!(
        &out[..],
        &b[..],
        "simulator mesh-info response is byte-identical"
    );
}

#[test]
fn v20_mesh_ack() {
    let b = hex("73 00 00 00 14 2d e4 b5 d2 15 2d 00 7e 1e 00 00 00 f8 af 02 00 af 01 61 7e");
    content_of(&b, |c| {
        assert_eq!(
            c,
            FrameContent::Command {
                command: Command::MeshAck,
                sno: None
            }
        )
    });
}

#[test]
fn v21_v22_v23_power_on_response_receipt_and_new_state() {
    let cmd = hex("73 00 00 00 1f 2d e4 b5 d2 15 37 00 7e 21 00 00 00 f8 d0 0d 00 21 00 00 00 00 05 00 d0 11 02 01 00 00 e7 7e");
    content_of(&cmd, |c| {
        assert_eq!(
            c,
            FrameContent::Command {
                command: Command::Power {
                    target: 5,
                    on: true
                },
                sno: Some(0x21)
            }
        );
    });
    let mut out = BytesMut::new();
    encode::command(
        &mut out,
        PeerId([0x2d, 0xe4, 0xb5, 0xd2]),
        MsgId([0x15, 0x37, 0]),
        0x21,
        0x21,
        &Command::Power {
            target: 5,
            on: true,
        },
    );
    assert_eq!(&out[..], &cmd[..], "round trip of the real command");

    let read = hex("73 00 00 00 13 2d e4 b5 d2 00 02 00 7e 21 00 00 00 f9 d0 01 00 00 d1 7e 7b 00 00 00 07 2d e4 b5 d2 15 37 00");
    let (resp, receipt) = read.split_at(24);
    let p = decode(resp).unwrap();
    let (_, msg, tx, dir) = framed_content(&p);
    assert_eq!((msg, tx, dir), (MsgId([0, 2, 0]), 0x21, FrameDir::Response));
    content_of(resp, |c| {
        assert_eq!(
            c,
            FrameContent::Response {
                op: 0xd0,
                status: 0
            }
        )
    });
    assert_eq!(
        decode(receipt).unwrap(),
        Packet::Receipt {
            peer: PeerId([0x2d, 0xe4, 0xb5, 0xd2]),
            msg: MsgId([0x15, 0x37, 0])
        }
    );
    let mut out = BytesMut::new();
    encode::response(
        &mut out,
        PeerId([0x2d, 0xe4, 0xb5, 0xd2]),
        MsgId([0, 2, 0]),
        0x21,
        0xd0,
        cync_bridge::protocol::Stuffing::Raw,
    );
    encode::receipt(
        &mut out,
        PeerId([0x2d, 0xe4, 0xb5, 0xd2]),
        MsgId([0x15, 0x37, 0]),
    );
    assert_eq!(&out[..], &read[..]);

    let state = hex("83 00 00 00 25 37 96 24 69 00 05 00 7e 21 00 00 00 fa db 13 00 34 22 11 05 00 05 00 db 11 02 01 01 64 00 00 00 00 00 00 b3 7e");
    let (_, _, tx, _) = framed_content(&decode(&state).unwrap());
    assert_eq!(tx, 0x21, "the state report carries the command's tx");
    content_of(&state, |c| {
        let FrameContent::StateReport(r) = c else {
            panic!()
        };
        assert_eq!((r.src, r.state.on, r.state.brightness), (5, true, 100));
    });
}

fn encode_cmd(peer: [u8; 4], msg: [u8; 3], tx: u32, sno: u32, cmd: Command) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode::command(&mut out, PeerId(peer), MsgId(msg), tx, sno, &cmd);
    out.to_vec()
}

#[test]
fn v24_to_v27_app_commands_round_trip() {
    let p = [0x37, 0x96, 0x24, 0x69];
    let cases = [
        ("73 00 00 00 22 37 96 24 69 60 48 00 7e 17 00 00 00 f8 f0 10 00 17 00 00 00 00 07 00 f0 11 02 01 27 ff ff ff ff 45 7e",
         p, [0x60, 0x48, 0], 0x17, Command::Light { target: 7, brightness: Some(39), color: None }),
        ("73 00 00 00 22 37 96 24 69 60 8d 00 7e 36 00 00 00 f8 f0 10 00 36 00 00 00 00 07 00 f0 11 02 01 ff 48 00 00 00 88 7e",
         p, [0x60, 0x8d, 0], 0x36, Command::Light { target: 7, brightness: None, color: Some(LightColor::Temperature(72)) }),
        ("73 00 00 00 22 37 96 24 69 60 79 00 7e 2b 00 00 00 f8 f0 10 00 2b 00 00 00 00 07 00 f0 11 02 01 ff fe 00 fb ff 2d 7e",
         p, [0x60, 0x79, 0], 0x2b, Command::Light { target: 7, brightness: None, color: Some(LightColor::Rgb([0, 251, 255])) }),
        ("73 00 00 00 20 2d e4 b5 d2 29 c3 00 7e 07 00 00 00 f8 e2 0e 00 07 00 00 00 00 0a 00 e2 11 02 07 01 02 7a 7a 7e",
         [0x2d, 0xe4, 0xb5, 0xd2], [0x29, 0xc3, 0], 0x07, Command::Effect { target: 10, effect: [0x02, 0x7a] }),
    ];
    for (bytes, peer, msg, tx, cmd) in cases {
        let b = hex(bytes);
        content_of(&b, |c| {
            assert_eq!(
                c,
                FrameContent::Command {
                    command: cmd,
                    sno: Some(tx)
                }
            )
        });
        assert_eq!(encode_cmd(peer, msg, tx, tx, cmd), b, "{cmd:?}");
    }
}

#[test]
fn v28_v29_switch_mode_command_and_report() {
    let b = hex("73 00 00 00 1e 1b dc da 3e 00 3a 00 7e 3d 01 00 00 f8 8e 0c 00 3e 01 00 00 00 a0 00 f7 11 02 01 01 85 7e");
    let cmd = Command::SwitchMode {
        target: 160,
        mode: 1,
    };
    content_of(&b, |c| {
        assert_eq!(
            c,
            FrameContent::Command {
                command: cmd,
                sno: Some(0x13e)
            }
        )
    });
    // tx 0x13d with sno tx+1, as the cloud did.
    assert_eq!(
        encode_cmd([0x1b, 0xdc, 0xda, 0x3e], [0, 0x3a, 0], 0x13d, 0x13e, cmd),
        b
    );

    let report = hex("73 00 00 00 26 1b dc da 3e 01 3a 00 7e 36 01 00 00 fa 8e 14 00 7e 04 00 a0 00 4c 00 ea 11 02 a0 81 b0 00 00 00 00 00 00 14 f2 7e");
    content_of(&report, |c| {
        let FrameContent::Notification(n) = c else {
            panic!("{c:?}")
        };
        assert_eq!(n.src, 160);
        assert_eq!(n.kind, NotificationKind::SwitchMode { config: 0xb0 });
    });
}

#[test]
fn v30_receipt_and_cloud_notice() {
    assert_eq!(
        decode(&hex("7b 00 00 00 07 45 88 0f 3a 00 10 00")).unwrap(),
        Packet::Receipt {
            peer: PEER_4588,
            msg: MsgId([0, 0x10, 0])
        }
    );
    assert_eq!(
        decode(&hex("78 00 00 00 07 45 88 0f 3a 00 10 05")).unwrap(),
        Packet::Notice {
            peer: PEER_4588,
            msg: [0, 0x10],
            status: 5
        }
    );
}

// ---- docs/protocol.md#synthetic-vectors: what the legacy encoder produces ----

#[test]
fn synthetic_legacy_commands_are_reproduced_byte_for_byte() {
    let p = [0x45, 0x88, 0x0f, 0x3a];
    let cases = [
        (1, Command::Power { target: 80, on: true }, "73 00 00 00 1f 45 88 0f 3a 00 00 00 7e 01 00 00 00 f8 d0 0d 00 01 00 00 00 00 50 00 d0 11 02 01 00 00 12 7e"),
        (2, Command::Power { target: 80, on: false }, "73 00 00 00 1f 45 88 0f 3a 00 00 00 7e 02 00 00 00 f8 d0 0d 00 02 00 00 00 00 50 00 d0 11 02 00 00 00 12 7e"),
        (3, Command::Light { target: 80, brightness: Some(50), color: None }, "73 00 00 00 22 45 88 0f 3a 00 00 00 7e 03 00 00 00 f8 f0 10 00 03 00 00 00 00 50 00 f0 11 02 01 32 ff ff ff ff 85 7e"),
        (4, Command::Light { target: 80, brightness: None, color: Some(LightColor::Temperature(50)) }, "73 00 00 00 22 45 88 0f 3a 00 00 00 7e 04 00 00 00 f8 f0 10 00 04 00 00 00 00 50 00 f0 11 02 01 ff 32 00 00 00 89 7e"),
        (5, Command::Light { target: 80, brightness: None, color: Some(LightColor::Rgb([255, 0, 0])) }, "73 00 00 00 22 45 88 0f 3a 00 00 00 7e 05 00 00 00 f8 f0 10 00 05 00 00 00 00 50 00 f0 11 02 01 ff fe ff 00 00 55 7e"),
        (6, Command::Effect { target: 80, effect: [0x02, 0x7a] }, "73 00 00 00 20 45 88 0f 3a 00 00 00 7e 06 00 00 00 f8 e2 0e 00 06 00 00 00 00 50 00 e2 11 02 07 01 02 7a bf 7e"),
        (7, Command::Power { target: 0x8001, on: true }, "73 00 00 00 1f 45 88 0f 3a 00 00 00 7e 07 00 00 00 f8 d0 0d 00 07 00 00 00 00 01 80 d0 11 02 01 00 00 49 7e"),
        (0x1f, Command::MeshInfoRequest, "73 00 00 00 18 45 88 0f 3a 00 00 00 7e 1f 00 00 00 f8 52 06 00 00 00 ff ff 00 00 56 7e"),
        (0x1e, Command::MeshAck, "73 00 00 00 14 45 88 0f 3a 00 00 00 7e 1e 00 00 00 f8 af 02 00 af 01 61 7e"),
    ];
    for (cmsg, cmd, bytes) in cases {
        assert_eq!(
            encode_cmd(p, [0, 0, 0], cmsg, cmsg, cmd),
            hex(bytes),
            "{cmd:?}"
        );
    }
    let mut out = BytesMut::new();
    encode::session_open(&mut out, PeerId(p), MsgId([0x12, 0x34, 0]));
    assert_eq!(&out[..], &hex("a3 00 00 00 07 45 88 0f 3a 12 34 00")[..]);
}

#[test]
fn unknown_packet_types_are_values_not_errors() {
    let b = hex("55 00 00 00 02 ab cd");
    assert_eq!(
        decode(&b).unwrap(),
        Packet::Unknown {
            kind: 0x55,
            body: &[0xab, 0xcd]
        }
    );
}

#[test]
fn a_damaged_frame_still_yields_its_addressing_so_it_can_be_acknowledged() {
    let mut b = hex("83 00 00 00 25 45 88 0f 3a 00 09 00 7e 1f 00 00 00 fa db 13 00 72 25 11 50 00 50 00 db 11 02 01 01 0a 0a ff ff ff 00 00 37 7e");
    b[40] ^= 0xff;
    let Packet::Status(f) = decode(&b).unwrap() else {
        panic!()
    };
    assert_eq!((f.peer, f.msg), (PEER_4588, MsgId([0, 9, 0])));
    assert_eq!(f.frame.unwrap_err().reason(), "checksum");
}
