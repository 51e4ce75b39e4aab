//! The simulator against the minimal test server: connect sequences as real devices show them,
//! every byte decodable, heartbeats, session open and mesh info, reconnects.
//!
//! Paused tokio time throughout: the devices' timers (21 s heartbeats, 2.6 s backoff, the
//! connect-sequence steps) run in virtual time while the sockets are real (127.0.0.1, port 0).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::server::{ServerOptions, TestServer};
use cync_bridge::capture::{fixtures, parse_socat, parse_text, Direction};
use cync_bridge::protocol::content::{FirmwareKind, InfoContent, SELF_RECORD_INDEX};
use cync_bridge::protocol::{decode, FrameContent, Framer, Packet};
use cync_bridge::sim::{
    ConnectProfile, HomeBuilder, LinkState, SimConfig, SimDeviceKey, SimHome, Simulator,
};

const WAIT: Duration = Duration::from_secs(60);

/// One Wi-Fi device per connect profile, a relay for 14 Bluetooth-only devices (more than one
/// mesh-info frame holds), and a group.
fn home() -> SimHome {
    let bt: Vec<u16> = (10..24).collect();
    let mut b = HomeBuilder::new("profiles", 3)
        .wifi_with(1, 137, ConnectProfile::Quiet)
        .wifi_with(2, 68, ConnectProfile::Diagnostic)
        .wifi_with(3, 55, ConnectProfile::Firmware)
        .wifi_with(4, 81, ConnectProfile::Plug2024);
    for id in &bt {
        b = b.bluetooth(*id, 21);
    }
    b.relays(4, &bt)
        .relays(1, &[10, 11])
        .group(0x8001, &[1, 2, 10])
        .build()
        .unwrap()
}

/// A coarse name for a device packet, enough to compare connect sequences.
fn kind(bytes: &[u8]) -> String {
    match decode(bytes) {
        Ok(Packet::Info { content, .. }) => match content {
            InfoContent::Ping => "43ping".into(),
            InfoContent::Diagnostic(_) => "43diag".into(),
            InfoContent::Tlv(_) => "43tlv".into(),
            InfoContent::Records(r) if r.first() == Some(&SELF_RECORD_INDEX) => "43self".into(),
            InfoContent::Records(_) => "43relay".into(),
            InfoContent::Other(_) => "43other".into(),
        },
        Ok(Packet::Status(f)) => match f.frame.as_ref().map(|fr| fr.content()) {
            Ok(FrameContent::Firmware(fw)) => match fw.kind {
                FirmwareKind::Network => "83fw0".into(),
                _ => "83fw1".into(),
            },
            Ok(FrameContent::StateReport(_)) => "83report".into(),
            Ok(FrameContent::Notification(_)) => "83notify".into(),
            _ => "83other".into(),
        },
        Ok(p) => format!("{:02x}", p.kind()),
        Err(_) => format!("bad{:02x}", bytes.first().copied().unwrap_or(0)),
    }
}

#[tokio::test(start_paused = true)]
async fn every_device_completes_its_connect_sequence_and_every_byte_decodes() {
    let server = TestServer::start(ServerOptions {
        open_session: true,
        ..Default::default()
    })
    .await;
    let sim = Simulator::start(SimConfig::new(1, vec![home()]), server.addr())
        .await
        .unwrap();
    sim.wait_ready(WAIT).await.unwrap();
    // The longest connect phase (22.5 s) plus two heartbeat intervals.
    tokio::time::sleep(Duration::from_secs(70)).await;

    for s in sim.sessions() {
        let conn = server.connection_of(s.device_id()).unwrap();
        let packets = conn.packets();
        let kinds: Vec<u8> = packets.iter().map(|r| r.kind()).collect();
        assert_eq!(kinds[0], 0x23, "{:?}: hello first", s.key());
        let Packet::Hello(h) = packets[0].packet() else {
            panic!()
        };
        assert_eq!(h.device_id, s.device_id());
        assert_eq!(h.auth_code.len(), 16);
        assert_eq!(kinds.iter().filter(|k| **k == 0xC3).count(), 1);
        assert_eq!(
            kinds.iter().filter(|k| **k == 0xAB).count(),
            1,
            "0xA3 answered"
        );
        assert!(
            kinds.iter().filter(|k| **k == 0xD3).count() >= 2,
            "heartbeats"
        );
        // The mesh-info request got f9 52 record lists: self first with its type, then reach.
        let mut ids = Vec::new();
        for r in &packets {
            if let Packet::Data(f) = r.packet() {
                if let Ok(FrameContent::MeshInfo(info)) = f.frame.as_ref().map(|fr| fr.content()) {
                    assert!(info.records().count() <= 10);
                    ids.extend(info.records().map(|rec| (rec.mesh_id, rec.device_type)));
                }
            }
        }
        let spec = sim.home(0).unwrap().device(s.key().mesh_id).unwrap();
        assert_eq!(ids[0], (spec.mesh_id, spec.type_id as u8));
        let reach = &spec.wifi.as_ref().unwrap().reach;
        assert_eq!(ids.len(), 1 + reach.len());
        assert!(ids[1..].iter().all(|(id, t)| reach.contains(id) && *t == 0));
    }
    let t = server.totals();
    assert_eq!(
        (t.junk_events, t.decode_errors, t.frame_errors),
        (0, 0, 0),
        "{t:?}"
    );
    let s = sim.totals();
    assert_eq!(
        (s.junk_events, s.decode_errors, s.frame_errors, s.unexpected),
        (0, 0, 0, 0),
        "{s:?}"
    );
    sim.shutdown().await;
    server.shutdown().await;
}

/// The connect phases of real devices, as [`kind`] names, taking only the packets that carry
/// the device's id (0xC3/0xD3 carry none, so connections cannot be told apart by them in a
/// capture without connection tags): the 2025 home capture by peer id within 30 s of each hello,
/// and the 2024 plug log (`docs/protocol.md#evidence`).
fn real_sequences() -> Option<BTreeSet<Vec<String>>> {
    let a1 = fixtures::load("captures/home-25-devices-20251106.txt").unwrap()?;
    let plug = fixtures::load("socat-2024/Plug.md").unwrap()?;
    let mut sequences = BTreeSet::new();
    let capture = parse_text(&a1);
    let framer = Framer::default();
    let mut by_peer: Vec<(Vec<u8>, chrono::NaiveDateTime, Vec<String>)> = Vec::new();
    for record in capture
        .records
        .iter()
        .filter(|r| r.dir == Direction::DeviceToServer)
    {
        let at = chrono::NaiveDateTime::parse_from_str(&record.ts, "%Y-%m-%dT%H:%M:%S%.f").unwrap();
        let mut buf = bytes::BytesMut::from(&record.bytes[..]);
        while let Some(Ok(p)) = framer.next_packet(&mut buf) {
            let id = match p[0] {
                0x23 => p[6..10].to_vec(),
                0x43 | 0x83 | 0x73 => p[5..9].to_vec(),
                _ => continue,
            };
            if p[0] == 0x23 {
                by_peer.push((id, at, vec!["23".into()]));
            } else if let Some((_, start, seq)) = by_peer.iter_mut().rev().find(|(i, ..)| *i == id)
            {
                if (at - *start).num_seconds() < 30 {
                    seq.push(kind(&p));
                }
            }
        }
    }
    sequences.extend(by_peer.into_iter().map(|(_, _, s)| s));
    // The socat hello was shortened by hand (19 of 31 bytes): recognise it by its type byte.
    let mut seq = Vec::new();
    for record in parse_socat(&plug)
        .records
        .iter()
        .filter(|r| r.dir == Direction::DeviceToServer)
    {
        let mut buf = bytes::BytesMut::from(&record.bytes[..]);
        if record.bytes.first() == Some(&0x23) {
            seq.push("23".to_string());
            continue;
        }
        while let Some(Ok(p)) = framer.next_packet(&mut buf) {
            if matches!(p[0], 0x43 | 0x83) {
                seq.push(kind(&p));
            }
        }
        if record.bytes.first() == Some(&0xD3) {
            break; // idle: the connect phase is over
        }
    }
    sequences.insert(seq);
    Some(sequences)
}

#[tokio::test(start_paused = true)]
async fn each_profile_sends_the_packets_of_a_real_connect_sequence_in_order() {
    let Some(real) = real_sequences() else {
        return;
    };
    let server = TestServer::start(ServerOptions::default()).await;
    let sim = Simulator::start(SimConfig::new(2, vec![home()]), server.addr())
        .await
        .unwrap();
    sim.wait_ready(WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    for s in sim.sessions() {
        let conn = server.connection_of(s.device_id()).unwrap();
        let packets = conn.packets();
        let seq: Vec<String> = packets
            .iter()
            .filter(|r| matches!(r.kind(), 0x23 | 0x43 | 0x83 | 0x73))
            .map(|r| kind(&r.bytes))
            .collect();
        assert!(
            real.contains(&seq),
            "{:?} sent {seq:?}; real devices sent one of {real:#?}",
            s.key()
        );
        // 0xC3 goes out after the 0x28 (docs/protocol.md#connect-and-time) — the server answers the
        // hello at once, so it is in a later read than the hello — and before the first heartbeat.
        let c3 = packets.iter().position(|r| r.kind() == 0xC3).unwrap();
        assert!(packets[c3].read > packets[0].read);
        assert!(packets
            .iter()
            .position(|r| r.kind() == 0xD3)
            .is_none_or(|d| d > c3));
    }
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_follows_21_seconds_of_transmit_idleness() {
    let server = TestServer::start(ServerOptions::default()).await;
    let home = HomeBuilder::new("h", 4).wifi(1, 137).build().unwrap();
    let sim = Simulator::start(SimConfig::new(4, vec![home]), server.addr())
        .await
        .unwrap();
    sim.wait_ready(WAIT).await.unwrap();
    let conn = server.connection(0, WAIT).await;
    let (i, first) = conn
        .wait_for(0, WAIT, |p| matches!(p, Packet::Heartbeat))
        .await
        .unwrap();
    let (_, second) = conn
        .wait_for(i + 1, WAIT, |p| matches!(p, Packet::Heartbeat))
        .await
        .unwrap();
    let c3 = conn.packets().iter().find(|r| r.kind() == 0xC3).unwrap().at;
    assert_eq!(first.at - c3, Duration::from_secs(21));
    assert_eq!(second.at - first.at, Duration::from_secs(21));
    assert!(sim.sessions()[0].stats().heartbeat_acks >= 1);
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_connection_is_reestablished_after_the_backoff() {
    let server = TestServer::start(ServerOptions::default()).await;
    let home = HomeBuilder::new("h", 5).wifi(1, 137).build().unwrap();
    let mut config = SimConfig::new(5, vec![home]);
    config.timing.reconnect_jitter = 0.0;
    let sim = Simulator::start(config, server.addr()).await.unwrap();
    sim.wait_ready(WAIT).await.unwrap();
    let first = server.connection(0, WAIT).await;
    first.close().await;
    assert!(first.wait_closed(WAIT).await);
    let closed_at = tokio::time::Instant::now();
    let second = server.connection(1, WAIT).await;
    assert!(second.wait_count(1, WAIT).await);
    let hello = &second.packets()[0];
    assert_eq!(hello.kind(), 0x23);
    let gap = hello.at - closed_at;
    assert!(
        gap >= Duration::from_millis(2600) && gap < Duration::from_millis(2700),
        "{gap:?}"
    );
    let key = SimDeviceKey {
        home: 0,
        mesh_id: 1,
    };
    let session = sim.session(key).unwrap();
    session.wait_link(LinkState::Ready, WAIT).await.unwrap();
    assert_eq!(session.stats().connects, 2);
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_recorded_session_reads_back_with_the_decode_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim-recording.txt");
    let server = TestServer::start(ServerOptions {
        open_session: true,
        ..Default::default()
    })
    .await;
    let mut config = SimConfig::new(6, vec![home()]);
    config.record = Some(path.clone());
    let sim = Simulator::start(config, server.addr()).await.unwrap();
    sim.wait_ready(WAIT).await.unwrap();
    let conn = server.connection_of(sim.sessions()[0].device_id()).unwrap();
    conn.send_command(cync_bridge::protocol::Command::Power {
        target: 1,
        on: true,
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    sim.shutdown().await;
    server.shutdown().await;

    let mut out = Vec::new();
    let args = cync_bridge::cli::decode::DecodeArgs {
        files: vec![path],
        summary: true,
    };
    assert_eq!(cync_bridge::cli::decode::run(&args, &mut out).unwrap(), 0);
    let text = String::from_utf8(out).unwrap();
    let summary: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let s = &summary["summary"];
    assert_eq!(s["framing_errors"], 0, "{s}");
    assert_eq!(s["checksum_failures"], 0, "{s}");
    for kind in [
        "0x23", "0x28", "0xa3", "0xab", "0x73", "0x7b", "0x83", "0x43", "0xd3",
    ] {
        assert!(
            s["by_type"][kind].as_u64().unwrap_or(0) > 0,
            "{kind} in {s}"
        );
    }
}
