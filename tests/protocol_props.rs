//! Property tests for the codec and the stream framer: round trips over every command's full
//! parameter range, split-invariance of the framer, recovery from junk, and no panic on any
//! input (100,000 arbitrary inputs each for the decoder and the framer).

use bytes::{Bytes, BytesMut};
use cync_bridge::protocol::content::{MeshRecord, StatusRecord};
use cync_bridge::protocol::encode::{self, StateReportSpec};
use cync_bridge::protocol::{
    decode, Command, FrameContent, Framer, FramingError, LightColor, LightState, MsgId, Packet,
    PacketType, PeerId, SeqAllocator, Stuffing,
};
use proptest::prelude::*;

fn light_color() -> impl Strategy<Value = Option<LightColor>> {
    prop_oneof![
        Just(None),
        // 0xFE and 0xFF are the RGB-mode and "unchanged" markers, so temperatures stop at 0xFD.
        (0u8..=0xFD).prop_map(|t| Some(LightColor::Temperature(t))),
        any::<[u8; 3]>().prop_map(|rgb| Some(LightColor::Rgb(rgb))),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (any::<u16>(), any::<bool>()).prop_map(|(target, on)| Command::Power { target, on }),
        // Brightness 0xFF means "unchanged", so it is the one value a level cannot take.
        (
            any::<u16>(),
            proptest::option::of(0u8..=0xFE),
            light_color()
        )
            .prop_map(|(target, brightness, color)| Command::Light {
                target,
                brightness,
                color
            }),
        (any::<u16>(), any::<[u8; 2]>())
            .prop_map(|(target, effect)| Command::Effect { target, effect }),
        (any::<u16>(), any::<u8>()).prop_map(|(target, mode)| Command::SwitchMode { target, mode }),
        (any::<u16>(), any::<u8>()).prop_map(|(target, param)| Command::Query { target, param }),
        Just(Command::MeshInfoRequest),
        Just(Command::MeshAck),
        Just(Command::ModeFollowUp),
    ]
}

fn light_state() -> impl Strategy<Value = LightState> {
    (any::<bool>(), any::<u8>(), any::<u8>(), any::<[u8; 3]>()).prop_map(
        |(on, brightness, temperature, rgb)| LightState {
            on,
            brightness,
            temperature,
            rgb,
        },
    )
}

fn stuffing() -> impl Strategy<Value = Stuffing> {
    prop_oneof![Just(Stuffing::Raw), Just(Stuffing::Escape)]
}

fn peer() -> impl Strategy<Value = PeerId> {
    any::<[u8; 4]>().prop_map(PeerId)
}

fn msg() -> impl Strategy<Value = MsgId> {
    any::<[u8; 3]>().prop_map(MsgId)
}

/// Any packet a device or the bridge sends, encoded.
fn wire_packet() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (peer(), msg(), any::<u32>(), command()).prop_map(|(p, m, tx, c)| {
            let mut out = BytesMut::new();
            encode::command(&mut out, p, m, tx, tx & 0xFF_FFFF, &c);
            out.to_vec()
        }),
        (
            peer(),
            msg(),
            any::<u32>(),
            any::<u16>(),
            light_state(),
            stuffing()
        )
            .prop_map(|(p, m, tx, mesh_id, state, s)| {
                let mut out = BytesMut::new();
                let spec = StateReportSpec {
                    tx,
                    counter: [1, 2, 3],
                    mesh_id,
                    online: true,
                    state,
                };
                encode::state_report(&mut out, p, m, &spec, s);
                out.to_vec()
            }),
        (
            peer(),
            proptest::collection::vec((any::<u8>(), light_state()), 0..8)
        )
            .prop_map(|(p, recs)| {
                let records: Vec<_> = recs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (id, state))| StatusRecord {
                        index: 5 + i as u8,
                        mesh_id: id,
                        state,
                        online: true,
                        flags: 0x14,
                        reporter: 1,
                    })
                    .collect();
                let mut out = BytesMut::new();
                encode::info_records(&mut out, p, &records);
                out.to_vec()
            }),
        (peer(), msg(), any::<u8>()).prop_map(|(p, m, kind)| {
            let mut out = BytesMut::new();
            match kind % 8 {
                0 => encode::hello(&mut out, p, b"1e07d8ce0a617a37"),
                1 => encode::connect(&mut out),
                2 => encode::heartbeat(&mut out),
                3 => encode::receipt(&mut out, p, m),
                4 => encode::status_ack(&mut out, m),
                5 => encode::session_reply(&mut out, p, m),
                6 => encode::firmware(&mut out, p, m, 1, "11158"),
                _ => encode::heartbeat_ack(&mut out),
            }
            out.to_vec()
        }),
    ]
}

/// Runs the framer over `chunks`, returning packets and errors in order.
fn frame_all(chunks: &[&[u8]]) -> (Vec<Bytes>, Vec<FramingError>) {
    let framer = Framer::default();
    let mut buf = BytesMut::new();
    let (mut packets, mut errors) = (Vec::new(), Vec::new());
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(item) = framer.next_packet(&mut buf) {
            match item {
                Ok(p) => packets.push(p),
                Err(e) => errors.push(e),
            }
        }
    }
    errors.extend(framer.finish(&mut buf));
    (packets, errors)
}

/// Cuts `bytes` at the given (sorted, deduplicated) positions.
fn split_at<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for c in cuts {
        out.push(&bytes[last..c]);
        last = c;
    }
    out.push(&bytes[last..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    /// The device decodes exactly what the bridge meant; the only deliberate change is the RGB
    /// nudge away from 0x7D/0x7E (`Command::avoiding_markers`).
    #[test]
    fn every_command_round_trips(p in peer(), m in msg(), tx in any::<u32>(), cmd in command()) {
        let mut out = BytesMut::new();
        let sno = tx & 0xFF_FFFF;
        encode::command(&mut out, p, m, tx, sno, &cmd);
        let packet = decode(&out).expect("decodes");
        let Packet::Data(framed) = packet else { panic!("not 0x73") };
        prop_assert_eq!((framed.peer, framed.msg), (p, m));
        let frame = framed.frame.expect("frame");
        prop_assert_eq!(frame.tx, tx);
        let expected_sno = cmd.has_sno().then_some(sno);
        prop_assert_eq!(frame.content(), FrameContent::Command { command: cmd.avoiding_markers(), sno: expected_sno });
    }

    /// With counters from the allocator, frames need no stuffing unless the parameters
    /// themselves hold a marker byte (a mesh id of 125/126, or a marker in an effect code).
    #[test]
    fn allocated_sequences_keep_frames_unstuffed(start in any::<u32>(), cmd in command()) {
        let mut seq = SeqAllocator::starting_at(1, start);
        let s = seq.next_for(&cmd);
        let mut out = BytesMut::new();
        encode::command(&mut out, PeerId([0x7e, 0x7d, 1, 2]), s.msg, s.tx, s.sno, &cmd);
        let marker_in_params = {
            let mut buf = [0u8; 16];
            let len = cmd.avoiding_markers().write_payload(0, &mut buf);
            let params = if cmd.has_sno() { &buf[3..len] } else { &buf[..len] };
            params.iter().any(|b| *b == 0x7e || *b == 0x7d)
        };
        let frame = &out[12..];
        let inner_markers = frame[1..frame.len() - 1].iter().any(|b| *b == 0x7e || *b == 0x7d);
        if !marker_in_params {
            prop_assert!(!inner_markers, "frame {:02x?}", frame);
        }
    }

    #[test]
    fn state_reports_round_trip_raw_or_stuffed(p in peer(), m in msg(), tx in any::<u32>(), id in any::<u16>(), state in light_state(), s in stuffing()) {
        let mut out = BytesMut::new();
        let spec = StateReportSpec { tx, counter: [0x7d, 0x7e, 0x11], mesh_id: id, online: true, state };
        encode::state_report(&mut out, p, m, &spec, s);
        let Packet::Status(framed) = decode(&out).expect("decodes") else { panic!() };
        let frame = framed.frame.expect("frame");
        let FrameContent::StateReport(r) = frame.content() else { panic!("{:?}", frame.content()) };
        prop_assert_eq!((r.src, r.dst, r.state, r.counter), (id, id, state, [0x7d, 0x7e, 0x11]));
    }

    #[test]
    fn mesh_info_records_round_trip(recs in proptest::collection::vec((any::<u16>(), any::<u8>(), light_state()), 0..=10)) {
        let records: Vec<_> = recs.into_iter().map(|(mesh_id, device_type, state)| MeshRecord { mesh_id, device_type, state }).collect();
        let mut out = BytesMut::new();
        encode::mesh_info_response(&mut out, PeerId([1, 2, 3, 4]), MsgId([0, 1, 0]), 0x1f, &records, Stuffing::Escape);
        let Packet::Data(framed) = decode(&out).expect("decodes") else { panic!() };
        let frame = framed.frame.expect("frame");
        let FrameContent::MeshInfo(info) = frame.content() else { panic!() };
        prop_assert_eq!(info.records().collect::<Vec<_>>(), records);
    }

    /// However TCP splits a valid stream, the framer yields the same packets and no errors.
    #[test]
    fn any_split_of_a_valid_stream_yields_the_same_packets(
        packets in proptest::collection::vec(wire_packet(), 1..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let stream: Vec<u8> = packets.concat();
        let (got, errors) = frame_all(&split_at(&stream, &cuts));
        prop_assert!(errors.is_empty(), "{:?}", errors);
        prop_assert_eq!(got.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), packets);
    }

    /// Stray bytes between packets are reported as junk and every good packet still arrives.
    #[test]
    fn junk_between_packets_never_costs_a_good_packet(
        packets in proptest::collection::vec(wire_packet(), 1..8),
        junk in proptest::collection::vec(proptest::collection::vec(junk_byte(), 0..6), 8),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut stream = Vec::new();
        let mut junk_total = 0;
        for (p, j) in packets.iter().zip(&junk) {
            stream.extend_from_slice(j);
            junk_total += j.len();
            stream.extend_from_slice(p);
        }
        let (got, errors) = frame_all(&split_at(&stream, &cuts));
        prop_assert_eq!(got.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), packets);
        prop_assert_eq!(errors.iter().map(FramingError::discarded).sum::<usize>(), junk_total);
    }
}

/// Bytes that can never start a packet header (not a known type, not an `x3/x8/xB` type).
fn junk_byte() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("not a plausible type byte", |b| {
        PacketType::from_byte(*b).is_none() && !(*b >= 0x10 && matches!(b & 0x0f, 3 | 8 | 0xb))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100_000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(Packet::Data(f) | Packet::Status(f)) = decode(&bytes) {
            if let Ok(frame) = f.frame {
                let _ = frame.content();
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_framer_and_nothing_is_lost(
        bytes in proptest::collection::vec(any::<u8>(), 0..96),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let (packets, errors) = frame_all(&split_at(&bytes, &cuts));
        let accounted: usize = packets.iter().map(Bytes::len).sum::<usize>()
            + errors.iter().map(FramingError::discarded).sum::<usize>();
        prop_assert_eq!(accounted, bytes.len(), "every byte is a packet or reported junk");
        for p in &packets {
            let _ = decode(p);
        }
    }
}

#[test]
fn a_header_claiming_a_huge_body_is_junk_not_a_reason_to_buffer() {
    let framer = Framer::default();
    // 0x43 claiming 65,535 bytes: over the 4 KiB cap, so rejected before anything is buffered.
    let mut buf = BytesMut::from(&[0x43, 0, 0, 0xff, 0xff, 0xd3, 0, 0, 0, 0][..]);
    let first = framer.next_packet(&mut buf).expect("an answer");
    assert!(
        matches!(first, Err(FramingError::Junk { skipped: 5, .. })),
        "{first:?}"
    );
    let heartbeat = framer.next_packet(&mut buf).expect("packet").expect("ok");
    assert_eq!(&heartbeat[..], &[0xd3, 0, 0, 0, 0]);
}

#[test]
fn a_truncated_packet_followed_by_good_ones_is_skipped_and_they_survive() {
    let mut report = BytesMut::new();
    encode::state_report(
        &mut report,
        PeerId([1, 2, 3, 4]),
        MsgId([0, 1, 0]),
        &StateReportSpec {
            tx: 1,
            counter: [1, 0, 0],
            mesh_id: 9,
            online: true,
            state: LightState::default(),
        },
        Stuffing::Raw,
    );
    let mut good = BytesMut::new();
    encode::heartbeat(&mut good);
    encode::info(&mut good, PeerId([9, 9, 9, 9]), &[]);
    encode::connect(&mut good);
    encode::heartbeat(&mut good);
    encode::heartbeat(&mut good);
    encode::heartbeat(&mut good);
    let mut stream = report[..20].to_vec();
    stream.extend_from_slice(&good);
    let (packets, errors) = frame_all(&[&stream]);
    assert_eq!(
        errors.iter().map(FramingError::discarded).sum::<usize>(),
        20
    );
    assert_eq!(packets.concat(), good.to_vec());
}

#[test]
fn a_packet_ending_mid_stream_is_reported_as_truncated() {
    let mut buf = BytesMut::new();
    encode::heartbeat(&mut buf);
    let (packets, errors) = frame_all(&[&buf[..], &[0x83, 0, 0, 0, 0x25, 1, 2]]);
    assert_eq!(packets.len(), 1);
    assert!(
        matches!(errors[..], [FramingError::Truncated { len: 7, .. }]),
        "{errors:?}"
    );
}
