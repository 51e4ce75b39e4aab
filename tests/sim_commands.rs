//! Commands from the test server to simulated devices: what comes back
//! (`docs/protocol.md#command-responses` — response then receipt in one write, then the state
//! report with the command's tx and the 0x43 self record), relays and groups, duplicates and
//! retries, wall switches, garbage.

mod common;

use std::time::Duration;

use common::server::{Conn, ServerOptions, TestServer};
use cync_bridge::protocol::content::{StateReport, StatusRecord, TEMP_EFFECT, TEMP_RGB_MODE};
use cync_bridge::protocol::{
    decode, Command, FrameContent, FrameDir, LightColor, LightState, MsgId, Packet, Seq,
};
use cync_bridge::sim::{
    CounterPolicy, FrameStuffing, HomeBuilder, LinkState, SimConfig, SimDeviceKey, SimHandle,
    SimHome, Simulator,
};

const WAIT: Duration = Duration::from_secs(30);

/// Relays 1 and 2 (Wi-Fi) both reach Bluetooth-only 10 and 11; 3 is a Wi-Fi plug nobody
/// relays; group 0x8001 = {1, 3, 10}.
fn home() -> SimHome {
    HomeBuilder::new("cmds", 11)
        .wifi(1, 137)
        .wifi(2, 129)
        .wifi(3, 68)
        .bluetooth(10, 21)
        .bluetooth(11, 26)
        .relays(1, &[10, 11])
        .relays(2, &[10, 11])
        .group(0x8001, &[1, 3, 10])
        .build()
        .unwrap()
}

fn key(mesh_id: u16) -> SimDeviceKey {
    SimDeviceKey { home: 0, mesh_id }
}

async fn start(config: SimConfig) -> (TestServer, SimHandle) {
    let server = TestServer::start(ServerOptions::default()).await;
    let sim = Simulator::start(config, server.addr()).await.unwrap();
    sim.wait_ready(WAIT).await.unwrap();
    (server, sim)
}

/// Sends a power command to `target` through `conn`.
async fn power(conn: &Conn, target: u16, on: bool) -> Seq {
    conn.send_command(Command::Power { target, on }).await
}

async fn conn_of(server: &TestServer, sim: &SimHandle, mesh_id: u16) -> Conn {
    let id = sim.session(key(mesh_id)).unwrap().device_id();
    let conn = server.wait_connection_of(id, None, WAIT).await;
    assert_eq!(sim.session_by_device_id(id).unwrap().key(), key(mesh_id));
    conn
}

fn response_tx(p: &Packet<'_>) -> Option<(u32, u8)> {
    match p {
        Packet::Data(f) => match &f.frame {
            Ok(fr) if fr.dir == FrameDir::Response => Some((fr.tx, fr.op)),
            _ => None,
        },
        _ => None,
    }
}

fn receipt_msg(p: &Packet<'_>) -> Option<MsgId> {
    match p {
        Packet::Receipt { msg, .. } => Some(*msg),
        _ => None,
    }
}

fn report(p: &Packet<'_>) -> Option<(u32, StateReport)> {
    let Packet::Status(f) = p else { return None };
    let fr = f.frame.as_ref().ok()?;
    match fr.content() {
        FrameContent::StateReport(r) => Some((fr.tx, r)),
        _ => None,
    }
}

fn records(p: &Packet<'_>) -> Vec<StatusRecord> {
    match p {
        Packet::Info { content, .. } => content.records().collect(),
        _ => Vec::new(),
    }
}

/// Waits for the response to `seq` and checks the receipt follows it in the same read.
async fn expect_answer(conn: &Conn, from: usize, seq: Seq, op: u8) -> usize {
    let (i, resp) = conn
        .wait_for(from, WAIT, |p| response_tx(p) == Some((seq.tx, op)))
        .await
        .expect("response");
    let Packet::Data(f) = resp.packet() else {
        unreachable!()
    };
    assert_eq!(
        Some(f.peer),
        conn.peer(),
        "response uses the request's peer id"
    );
    let Ok(fr) = &f.frame else { unreachable!() };
    assert_eq!(&fr.payload[..], &[0], "f9 <op> 01 00 00");
    let next = &conn.packets()[i + 1];
    assert_eq!(
        receipt_msg(&next.packet()),
        Some(seq.msg),
        "receipt right after"
    );
    assert_eq!(next.read, resp.read, "response and receipt in one write");
    i + 2
}

#[tokio::test(start_paused = true)]
async fn a_power_command_gets_response_receipt_then_state_report_and_self_record() {
    let (server, sim) = start(SimConfig::new(1, vec![home()])).await;
    let conn = conn_of(&server, &sim, 1).await;
    let from = conn.packets().len();
    let seq = power(&conn, 1, true).await;
    let next = expect_answer(&conn, from, seq, 0xD0).await;
    let (i, r) = conn
        .wait_for(next, WAIT, |p| report(p).is_some())
        .await
        .unwrap();
    let (tx, rep) = report(&r.packet()).unwrap();
    assert_eq!(tx, seq.tx, "the state report carries the command's tx");
    assert_eq!((rep.src, rep.dst), (1, 1));
    assert!(rep.state.on);
    let self_rec = records(&conn.packets()[i + 1].packet());
    assert_eq!(self_rec.len(), 1);
    assert_eq!((self_rec[0].index, self_rec[0].mesh_id), (5, 1));
    assert!(self_rec[0].state.on);
    assert_eq!(sim.applied(key(1)), 1);
    assert!(sim.state(key(1)).unwrap().on);
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn light_and_effect_commands_change_brightness_colour_and_mode() {
    let (server, sim) = start(SimConfig::new(2, vec![home()])).await;
    let conn = conn_of(&server, &sim, 1).await;
    let cases = [
        (
            Command::Light {
                target: 1,
                brightness: Some(40),
                color: Some(LightColor::Temperature(70)),
            },
            (true, 40, 70, None),
        ),
        (
            Command::Light {
                target: 1,
                brightness: None,
                color: Some(LightColor::Rgb([200, 10, 0])),
            },
            (true, 40, TEMP_RGB_MODE, Some([200, 10, 0])),
        ),
        (
            Command::Effect {
                target: 1,
                effect: [0x02, 0x7A],
            },
            (true, 40, TEMP_EFFECT, None),
        ),
        (
            Command::Light {
                target: 1,
                brightness: Some(0),
                color: None,
            },
            (false, 40, TEMP_EFFECT, None),
        ),
    ];
    for (cmd, (on, bri, temp, rgb)) in cases {
        let from = conn.packets().len();
        let seq = conn.send_command(cmd).await;
        let next = expect_answer(&conn, from, seq, cmd.frame_op()).await;
        let (_, r) = conn
            .wait_for(next, WAIT, |p| report(p).is_some())
            .await
            .unwrap();
        let (_, rep) = report(&r.packet()).unwrap();
        assert_eq!(
            (rep.state.on, rep.state.brightness, rep.state.temperature),
            (on, bri, temp),
            "{cmd:?}"
        );
        if let Some(rgb) = rgb {
            assert_eq!(rep.state.rgb, rgb);
        }
    }
    assert_eq!(sim.applied(key(1)), 4);
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_bluetooth_only_device_is_reported_by_every_relay_as_relay_records() {
    let (server, sim) = start(SimConfig::new(3, vec![home()])).await;
    let relay = conn_of(&server, &sim, 1).await;
    let other = conn_of(&server, &sim, 2).await;
    let (from, from_other) = (relay.packets().len(), other.packets().len());
    let seq = power(&relay, 10, true).await;
    let next = expect_answer(&relay, from, seq, 0xD0).await;
    for (conn, start, reporter) in [(&relay, next, 1u8), (&other, from_other, 2)] {
        let (_, r) = conn
            .wait_for(start, WAIT, |p| records(p).iter().any(|r| r.mesh_id == 10))
            .await
            .expect("relay records");
        let recs = records(&r.packet());
        let rec = recs.iter().find(|r| r.mesh_id == 10).unwrap();
        assert!(rec.index >= 6, "relay records start at index 6");
        assert_eq!((rec.flags, rec.reporter), (0x14, reporter));
        assert!(rec.state.on);
    }
    // The relay sent no own-state report: mesh id 10 is not its own.
    assert!(relay.packets()[next..]
        .iter()
        .all(|r| report(&r.packet()).is_none()));
    assert_eq!(sim.applied(key(10)), 1);
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_relay_can_be_set_to_send_only_the_receipt_for_other_devices() {
    let mut config = SimConfig::new(4, vec![home()]);
    config.behaviour.relay_responds = false;
    let (server, sim) = start(config).await;
    let relay = conn_of(&server, &sim, 1).await;
    let from = relay.packets().len();
    let seq = power(&relay, 11, true).await;
    relay
        .wait_for(from, WAIT, |p| receipt_msg(p) == Some(seq.msg))
        .await
        .expect("receipt");
    relay
        .wait_for(from, WAIT, |p| records(p).iter().any(|r| r.mesh_id == 11))
        .await
        .expect("relay records");
    assert!(relay.packets()[from..]
        .iter()
        .all(|r| response_tx(&r.packet()).is_none()));
    assert_eq!(sim.applied(key(11)), 1);
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_group_command_changes_every_member_and_each_reporter_reports() {
    let (server, sim) = start(SimConfig::new(5, vec![home()])).await;
    let relay = conn_of(&server, &sim, 1).await;
    let plug = conn_of(&server, &sim, 3).await;
    let (from, from_plug) = (relay.packets().len(), plug.packets().len());
    let seq = power(&relay, 0x8001, true).await;
    let next = expect_answer(&relay, from, seq, 0xD0).await;
    let (_, own) = relay
        .wait_for(next, WAIT, |p| report(p).is_some())
        .await
        .unwrap();
    assert_eq!(report(&own.packet()).unwrap().0, seq.tx);
    relay
        .wait_for(next, WAIT, |p| records(p).iter().any(|r| r.mesh_id == 10))
        .await
        .expect("relay records for the Bluetooth-only member");
    // The plug (mesh id 3) learnt of it over the mesh and reports for itself.
    let (_, r) = plug
        .wait_for(from_plug, WAIT, |p| report(p).is_some())
        .await
        .expect("plug's own report");
    assert!(report(&r.packet()).unwrap().1.state.on);
    for id in [1, 3, 10] {
        assert!(sim.state(key(id)).unwrap().on, "{id}");
        assert_eq!(sim.applied(key(id)), 1, "{id}");
    }
    assert_eq!(sim.applied(key(2)), 0);
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_delivery_is_acknowledged_again_but_applied_once() {
    let (server, sim) = start(SimConfig::new(6, vec![home()])).await;
    let conn = conn_of(&server, &sim, 1).await;
    let cmd = Command::Power {
        target: 1,
        on: true,
    };
    let from = conn.packets().len();
    let seq = conn.send_command(cmd).await;
    let next = expect_answer(&conn, from, seq, 0xD0).await;
    conn.send_raw(conn.command_bytes(seq, &cmd)).await;
    expect_answer(&conn, next, seq, 0xD0).await;
    let s = sim.session(key(1)).unwrap().stats();
    assert_eq!((s.commands, s.duplicates), (2, 1));
    assert_eq!(sim.applied(key(1)), 1);
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_retry_with_a_new_msg_id_and_the_same_tx_is_acknowledged_but_not_reapplied() {
    let (server, sim) = start(SimConfig::new(7, vec![home()])).await;
    let relay = conn_of(&server, &sim, 1).await;
    let other = conn_of(&server, &sim, 2).await;
    let cmd = Command::Power {
        target: 10,
        on: true,
    };
    let from = relay.packets().len();
    let seq = relay.send_command(cmd).await;
    let next = expect_answer(&relay, from, seq, 0xD0).await;
    // Same tx and sno, new msg id, on the same relay and then through the other relay.
    let retry = Seq {
        msg: MsgId::from_counter(0x7001),
        ..seq
    };
    relay.send_raw(relay.command_bytes(retry, &cmd)).await;
    expect_answer(&relay, next, retry, 0xD0).await;
    let from_other = other.packets().len();
    let via_other = Seq {
        msg: MsgId::from_counter(0x7002),
        ..seq
    };
    other.send_raw(other.command_bytes(via_other, &cmd)).await;
    expect_answer(&other, from_other, via_other, 0xD0).await;
    assert_eq!(sim.applied(key(10)), 1);
    let replays: u64 = sim.sessions().iter().map(|s| s.stats().replays).sum();
    assert_eq!(replays, 2);
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn commands_for_unknown_ids_and_mesh_acks_get_only_a_receipt() {
    let (server, sim) = start(SimConfig::new(8, vec![home()])).await;
    let conn = conn_of(&server, &sim, 1).await;
    for cmd in [
        Command::Power {
            target: 99,
            on: true,
        },
        Command::MeshAck,
    ] {
        let from = conn.packets().len();
        let seq = conn.send_command(cmd).await;
        let (i, _) = conn
            .wait_for(from, WAIT, |p| receipt_msg(p) == Some(seq.msg))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = conn.packets();
        assert!(after[from..i]
            .iter()
            .all(|r| response_tx(&r.packet()).is_none()));
        assert!(after[i + 1..].iter().all(|r| r.kind() == 0xD3), "{cmd:?}");
    }
    assert_eq!(sim.session(key(1)).unwrap().stats().unknown_targets, 1);
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn mesh_info_is_split_into_frames_of_ten_records_then_the_receipt() {
    let ids: Vec<u16> = (20..45).collect();
    let mut b = HomeBuilder::new("big", 9).wifi(1, 137);
    for id in &ids {
        b = b.bluetooth(*id, 26);
    }
    let home = b.relays(1, &ids).build().unwrap();
    let (server, sim) = start(SimConfig::new(9, vec![home])).await;
    let conn = conn_of(&server, &sim, 1).await;
    let from = conn.packets().len();
    let seq = conn.send_command(Command::MeshInfoRequest).await;
    let (i, _) = conn
        .wait_for(from, WAIT, |p| receipt_msg(p) == Some(seq.msg))
        .await
        .unwrap();
    let mut counts = Vec::new();
    let mut msgs = Vec::new();
    for r in &conn.packets()[from..i] {
        let Packet::Data(f) = r.packet() else {
            continue;
        };
        let fr = f.frame.as_ref().unwrap();
        assert_eq!((fr.dir, fr.op, fr.tx), (FrameDir::Response, 0x52, seq.tx));
        let FrameContent::MeshInfo(info) = fr.content() else {
            panic!()
        };
        counts.push(info.records().count());
        msgs.push(f.msg);
    }
    assert_eq!(counts, [10, 10, 6], "26 records over three frames");
    msgs.dedup();
    assert_eq!(msgs.len(), 3, "each frame has its own msg id");
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_switch_mode_command_is_reported_as_a_mode_notification() {
    let home = HomeBuilder::new("sw", 10).wifi(160, 55).build().unwrap();
    let (server, sim) = start(SimConfig::new(10, vec![home])).await;
    let conn = conn_of(&server, &sim, 160).await;
    let from = conn.packets().len();
    let seq = conn
        .send_command(Command::SwitchMode {
            target: 160,
            mode: 2,
        })
        .await;
    let next = expect_answer(&conn, from, seq, 0x8E).await;
    let (_, r) = conn
        .wait_for(next, WAIT, |p| matches!(p, Packet::Status(_)))
        .await
        .unwrap();
    let Packet::Status(f) = r.packet() else {
        unreachable!()
    };
    let FrameContent::Notification(n) = f.frame.as_ref().unwrap().content() else {
        panic!()
    };
    assert_eq!((n.node, n.params[1], n.params[2]), (160, 0x81, 0xB0));
    assert_eq!(sim.switch_mode(key(160)), 2);
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn wall_switch_changes_are_reported_on_demand_and_on_a_schedule() {
    let mut config = SimConfig::new(12, vec![home()]);
    config.timing.wall_change_every_ms = 60_000;
    let (server, sim) = start(config).await;
    let plug = conn_of(&server, &sim, 3).await;
    let relay = conn_of(&server, &sim, 2).await;
    let (from_plug, from_relay) = (plug.packets().len(), relay.packets().len());
    let on = LightState {
        on: true,
        brightness: 30,
        temperature: 0,
        rgb: [0, 0, 0],
    };
    sim.wall_change(key(3), on).unwrap();
    sim.wall_change(key(11), on).unwrap();
    plug.wait_for(from_plug, WAIT, |p| {
        report(p).is_some_and(|(_, r)| r.dst == 3 && r.state.on)
    })
    .await
    .expect("the plug reports its own change");
    relay
        .wait_for(from_relay, WAIT, |p| {
            records(p).iter().any(|r| r.mesh_id == 11 && r.state.on)
        })
        .await
        .expect("relays report the Bluetooth-only change");
    assert_eq!(sim.applied(key(3)), 0, "a wall change is not a command");
    assert!(sim.wall_change(key(77), on).is_err());
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(sim.wall_changes(0) >= 2 + 5, "{}", sim.wall_changes(0));
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn garbage_from_the_server_is_counted_and_survived() {
    let (server, sim) = start(SimConfig::new(13, vec![home()])).await;
    let conn = conn_of(&server, &sim, 1).await;
    let good = Command::Power {
        target: 1,
        on: true,
    };
    let seq = conn.send_command(good).await;
    let mut bad_checksum = conn.command_bytes(seq, &good).to_vec();
    let n = bad_checksum.len();
    bad_checksum[n - 2] ^= 0x01;
    let garbage: Vec<Vec<u8>> = vec![
        vec![0xFF, 0x13, 0x37, 0x00],                                     // junk
        vec![0x93, 0x00, 0x00, 0x00, 0x02, 0xAA, 0xBB],                   // unknown type
        vec![0x23, 0x00, 0x00, 0x00, 0x09, 0x03, 1, 2, 3, 4, 0, 0, 0, 0], // device-only type
        vec![0x73, 0x00, 0x00, 0xFF, 0xFF],                               // oversize header
        bad_checksum,
    ];
    for g in garbage {
        conn.send_raw(g).await;
    }
    let from = conn.packets().len();
    let seq = power(&conn, 1, false).await;
    expect_answer(&conn, from, seq, 0xD0).await;
    let s = sim.session(key(1)).unwrap();
    assert_eq!(s.link(), LinkState::Ready);
    let st = s.stats();
    assert!(st.junk_events >= 2, "{st:?}");
    assert!(st.unexpected >= 2, "{st:?}");
    assert_eq!(st.frame_errors, 1, "{st:?}");
    assert_eq!(st.connects, 1, "never reconnected");
    sim.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn escape_stuffing_stuffs_marker_bytes_and_raw_sends_them_as_is() {
    for (stuffing, expect_stuffed) in [(FrameStuffing::Escape, true), (FrameStuffing::Raw, false)] {
        let mut config = SimConfig::new(14, vec![home()]);
        config.behaviour.stuffing = stuffing;
        let (server, sim) = start(config).await;
        let conn = conn_of(&server, &sim, 1).await;
        let from = conn.packets().len();
        // A colour with a 0x7E channel puts a marker byte inside the state report's frame.
        let state = LightState {
            on: true,
            brightness: 50,
            temperature: TEMP_RGB_MODE,
            rgb: [0x7E, 0x01, 0x7D],
        };
        sim.wall_change(key(1), state).unwrap();
        let (_, r) = conn
            .wait_for(from, WAIT, |p| report(p).is_some())
            .await
            .unwrap();
        let Ok(Packet::Status(f)) = decode(&r.bytes) else {
            panic!()
        };
        let fr = f.frame.unwrap();
        assert_eq!(fr.stuffed, expect_stuffed, "{stuffing:?}");
        assert_eq!(&fr.payload[14..17], &[0x7E, 0x01, 0x7D]);
        assert_eq!(server.totals().frame_errors, 0);
        sim.shutdown().await;
        server.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn message_counters_reset_or_continue_across_reconnects_as_configured() {
    for (policy, continues) in [
        (CounterPolicy::Reset, false),
        (CounterPolicy::Continue, true),
    ] {
        let home = HomeBuilder::new("c", 15).wifi(1, 137).build().unwrap();
        let mut config = SimConfig::new(15, vec![home]);
        config.behaviour.counters = policy;
        let (server, sim) = start(config).await;
        let first_msgs = async |conn: &Conn| {
            sim.wall_change(key(1), LightState::default()).unwrap();
            let (_, r) = conn
                .wait_for(0, WAIT, |p| report(p).is_some())
                .await
                .unwrap();
            let Packet::Status(f) = r.packet() else {
                unreachable!()
            };
            f.msg.counter()
        };
        let c0 = server.connection(0, WAIT).await;
        let m0 = first_msgs(&c0).await;
        c0.close().await;
        let c1 = server.connection(1, WAIT).await;
        sim.session(key(1))
            .unwrap()
            .wait_link(LinkState::Ready, WAIT)
            .await
            .unwrap();
        let m1 = first_msgs(&c1).await;
        assert_eq!(m0, 1, "first 0x83 of a fresh device is 00 01 00");
        assert_eq!(m1 > 1, continues, "{policy:?}: {m1}");
        sim.shutdown().await;
        server.shutdown().await;
    }
}
