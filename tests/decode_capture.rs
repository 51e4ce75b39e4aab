//! The real 25-device capture decodes cleanly: per-type counts as `docs/protocol.md#packet-types`
//! states them, no checksum failures or framing errors, and sample device states as derived by
//! hand.

mod common;

use bytes::BytesMut;
use cync_bridge::capture;
use cync_bridge::capture::fixtures;
use cync_bridge::protocol::{decode, FrameContent, Framer, Packet, PeerId};

const HOME_25: &str = "captures/home-25-devices-20251106.txt";

#[test]
fn decode_subcommand_reports_the_documented_counts_and_no_errors() {
    let Some(path) = fixtures::locate(HOME_25).unwrap() else {
        return;
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cync-bridge"))
        .arg("decode")
        .arg("--summary")
        .arg(&path)
        .output()
        .expect("run cync-bridge");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "--summary prints the summary alone");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
    let s = &v["summary"];
    // docs/protocol.md#evidence and #packet-types: 2,251 reads split into 2,380 packets: D→S
    // 0x23 ×25, 0xC3 ×25, 0x43 ×381, 0x83 ×101, 0xD3 ×658; cloud→D 0x28 ×25, 0xC8 ×25,
    // 0x48 ×381, 0x88 ×101, 0xD8 ×658 (counted from the capture with an independent script).
    assert_eq!(s["records"], 2251);
    assert_eq!(s["packets"], 2380);
    let expected = serde_json::json!({
        "0x23": 25, "0xc3": 25, "0x43": 381, "0x83": 101, "0xd3": 658,
        "0x28": 25, "0xc8": 25, "0x48": 381, "0x88": 101, "0xd8": 658,
    });
    assert_eq!(s["by_type"], expected);
    assert_eq!(s["checksum_failures"], 0);
    assert_eq!(s["framing_errors"], 0);
    assert_eq!(s["junk_bytes"], 0);
}

#[test]
fn decode_prints_one_json_line_per_packet_with_state_fields() {
    let Some(path) = fixtures::locate(HOME_25).unwrap() else {
        return;
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cync-bridge"))
        .arg("decode")
        .arg(&path)
        .output()
        .expect("run cync-bridge");
    let text = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2381, "2,380 packets and the summary");
    // Line 1730 of the capture, decoded by hand with docs/protocol.md#state-report: mesh id 0x50 = 80,
    // online 01, state 01, brightness 0x0a, temperature 0x0a, rgb ff ff ff.
    let report = lines
        .iter()
        .find(|l| l["ts"] == "2025-11-06T08:23:57.743977" && l["type"] == "0x83")
        .expect("the 08:23:57.743977 report");
    assert_eq!(report["peer_id"], "45880f3a");
    assert_eq!(report["msg_id"], "000900");
    assert_eq!(report["kind"], "state_report");
    assert_eq!(report["checksum_ok"], true);
    assert_eq!(report["mesh_id"], 80);
    assert_eq!(report["on"], true);
    assert_eq!(report["brightness"], 10);
    assert_eq!(report["temperature"], 10);
    assert_eq!(report["rgb"], serde_json::json!([255, 255, 255]));
    for key in [
        "ts",
        "dir",
        "type",
        "len",
        "peer_id",
        "msg_id",
        "kind",
        "checksum_ok",
    ] {
        assert!(!report[key].is_null(), "{key} present");
    }
}

/// Finds the packets of the record at `ts` by framing it the way the decoder does.
fn packets_at(records: &[capture::Record], ts: &str) -> Vec<Vec<u8>> {
    let record = records.iter().find(|r| r.ts == ts).expect("record present");
    let framer = Framer::default();
    let mut buf = BytesMut::from(&record.bytes[..]);
    let mut out = Vec::new();
    while let Some(item) = framer.next_packet(&mut buf) {
        out.push(item.expect("clean record").to_vec());
    }
    assert!(buf.is_empty());
    out
}

#[test]
fn sample_device_states_match_a_hand_decoding() {
    let Some(path) = fixtures::locate(HOME_25).unwrap() else {
        return;
    };
    let records = capture::read_path(&path)
        .expect("read")
        .strict()
        .expect("clean");

    // Line 3995: a device whose id 3d 54 73 7d contains 0x7D reports mesh id 0x7c = 124 OFF,
    // brightness 0x18 = 24 retained, temperature 0x0a = 10.
    let p = packets_at(&records, "2025-11-06T08:24:37.164793");
    let Packet::Status(f) = decode(&p[0]).expect("decode") else {
        panic!()
    };
    assert_eq!(f.peer, PeerId([0x3d, 0x54, 0x73, 0x7d]));
    let frame = f.frame.expect("frame");
    let FrameContent::StateReport(r) = frame.content() else {
        panic!()
    };
    assert_eq!(
        (r.src, r.state.on, r.state.brightness, r.state.temperature),
        (124, false, 24, 10)
    );

    // Line 2243: reporter 0x1a = 26 relays two records: 0x2c = 44 on, bri 0x18, temp 0; and
    // 0x7c = 124 on, bri 0x18, temp 0x0a.
    let p = packets_at(&records, "2025-11-06T08:24:01.297902");
    let Packet::Info { content, .. } = decode(&p[0]).expect("decode") else {
        panic!()
    };
    let recs: Vec<_> = content
        .records()
        .map(|r| {
            (
                r.mesh_id,
                r.state.on,
                r.state.brightness,
                r.state.temperature,
                r.reporter,
            )
        })
        .collect();
    assert_eq!(recs, vec![(44, true, 24, 0, 26), (124, true, 24, 10, 26)]);
}
