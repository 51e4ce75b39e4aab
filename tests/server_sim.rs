//! The bridge against the simulator at the scale it must handle: one home, 50 Wi-Fi devices
//! relaying the rest of a 200-device mesh. A home holds at most 248 mesh ids (one-byte
//! ids minus 0x7D/0x7E, `sim::home`), so "200 mesh devices" is read as 200 in total: 50 Wi-Fi and
//! 150 Bluetooth-only, each of those reachable through two relays. Every device packet gets its
//! answer, toggles round-trip to Wi-Fi and Bluetooth-only devices, killing a relay moves its
//! devices to the other route, and a device sending garbage or barely reading stays alone with
//! its trouble.
//!
//! Time is paused: the simulator's real-device connect sequences (up to 22 s,
//! `sim::profile`) and heartbeats run in virtual time, so the test takes seconds, and nothing
//! asserts on a duration.

mod server_world;

use std::collections::BTreeSet;
use std::time::Duration;

use cync_bridge::capture::Direction;
use cync_bridge::device::{DeviceKey, HomeId};
use cync_bridge::protocol::LightState;
use cync_bridge::sim::{
    generate, Chaos, GenerateParams, PacketChaos, SimConfig, SimDeviceKey, SimHandle, SimHome,
    Simulator,
};
use cync_bridge::transport::CommandOutcome;
use server_world::Bridge;

const SEED: u64 = 20_251_106;
const WAIT: Duration = Duration::from_secs(120);

/// 50 Wi-Fi devices, three Bluetooth-only devices each, every one of those relayed by two.
fn home() -> SimHome {
    let params = GenerateParams {
        wifi_devices: 50,
        mesh_per_device: 3,
        homes: Some(1),
        groups_per_home: 0,
        reach_redundancy: 2,
    };
    let mut homes = generate(&params, SEED).expect("the home fits");
    assert_eq!(homes[0].devices.len(), 200);
    homes.remove(0)
}

fn key(mesh: u16) -> DeviceKey {
    DeviceKey::new(HomeId::DEFAULT, mesh)
}

/// The bridge and a simulator whose every device is connected and routed.
async fn world() -> (Bridge, SimHandle, SimHome) {
    let bridge = Bridge::start("").await;
    let home = home();
    let mut config = SimConfig::new(SEED, vec![home.clone()]);
    config.behaviour.log_capacity = 4096;
    let sim = Simulator::start(config, bridge.addr)
        .await
        .expect("simulator");
    sim.wait_ready(WAIT).await.expect("every device said hello");
    let all: Vec<u16> = home.devices.iter().map(|d| d.mesh_id).collect();
    bridge
        .until("a route to every device", |b| {
            all.iter().all(|m| b.routes().preferred(&key(*m)).is_some())
        })
        .await;
    (bridge, sim, home)
}

/// For one device's log: (requests that expect an answer, answers), per request type.
fn balance(sim: &SimHandle, wifi: SimDeviceKey) -> Vec<(u8, usize, usize)> {
    let log = sim.session(wifi).expect("wifi device").log();
    let count = |dir: Direction, kind: u8| {
        log.iter()
            .filter(|p| p.dir == dir && p.note.is_none() && p.kind() == kind)
            .count()
    };
    // docs/protocol.md#packet-types: request type → the bridge's answer.
    [
        (0x23, 0x28),
        (0xC3, 0xC8),
        (0x43, 0x48),
        (0x83, 0x88),
        (0xD3, 0xD8),
        (0x73, 0x7B),
    ]
    .into_iter()
    .map(|(ask, answer)| {
        let asked = count(Direction::DeviceToServer, ask);
        let answered = count(Direction::ServerToDevice, answer);
        (ask, asked, answered)
    })
    .collect()
}

#[tokio::test(start_paused = true)]
async fn in_a_home_of_50_relays_and_200_devices_every_device_packet_is_answered() {
    let (bridge, sim, home) = world().await;
    // Let every connect sequence (up to 22.5 s after the hello) and a heartbeat round happen.
    tokio::time::sleep(Duration::from_secs(45)).await;
    let wifi: Vec<SimDeviceKey> = sim.sessions().iter().map(|s| s.key()).collect();
    assert_eq!(wifi.len(), 50);
    let mut unbalanced = Vec::new();
    bridge
        .until("every request answered", |_| {
            unbalanced = wifi
                .iter()
                .flat_map(|k| balance(&sim, *k).into_iter().map(move |b| (k.mesh_id, b)))
                .filter(|(_, (_, asked, answered))| asked != answered)
                .collect();
            unbalanced.is_empty()
        })
        .await;
    let totals = sim.totals();
    assert!(totals.heartbeats >= 50, "{totals:?}");
    assert_eq!(totals.session_opens, 50, "every device got its 0xA3");
    assert_eq!(
        totals.decode_errors + totals.frame_errors + totals.unexpected,
        0,
        "{totals:?}"
    );
    assert_eq!(sim.panics(), 0);
    assert_eq!(bridge.sample("tcp_comm_connected_sessions"), 50.0);
    assert!(bridge
        .metrics()
        .render()
        .lines()
        .all(|l| !l.starts_with("tcp_comm_decode_errors_total{")));
    assert_eq!(
        bridge.state().len(),
        home.devices.len(),
        "a state for every device"
    );
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn toggles_round_trip_to_wifi_and_bluetooth_devices() {
    let (bridge, sim, home) = world().await;
    let wifi: BTreeSet<u16> = sim.sessions().iter().map(|s| s.key().mesh_id).collect();
    let ble: Vec<u16> = home
        .devices
        .iter()
        .map(|d| d.mesh_id)
        .filter(|m| !wifi.contains(m))
        .collect();
    let sample: Vec<u16> = wifi
        .iter()
        .copied()
        .step_by(10)
        .chain(ble.iter().copied().step_by(15))
        .collect();
    for mesh in sample {
        let sim_key = SimDeviceKey {
            home: 0,
            mesh_id: mesh,
        };
        let on = !sim.state(sim_key).expect("known device").on;
        bridge.toggle_ok(mesh, on).await;
        assert_eq!(
            sim.state(sim_key).unwrap().on,
            on,
            "mesh id {mesh} switched"
        );
        // The f9 confirms first; the device's report follows ≈0.5 s later
        // (docs/protocol.md#late-reports).
        bridge
            .until("the report of the new state", |b| {
                b.state().get(&key(mesh)).is_some_and(|s| s.light.on == on)
            })
            .await;
    }
    assert_eq!(sim.panics(), 0);
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn killing_a_relay_moves_its_mesh_devices_to_another_route() {
    let (bridge, sim, home) = world().await;
    let relay = sim.sessions()[7].clone();
    let relayed: Vec<u16> = home
        .device(relay.key().mesh_id)
        .and_then(|d| d.wifi.as_ref())
        .map(|w| w.reach.clone())
        .expect("a relay with reach");
    assert!(!relayed.is_empty());
    // Make the relay the preferred route of at least the devices only it and one other reach.
    let before: Vec<_> = relayed
        .iter()
        .map(|m| bridge.routes().routes_to(&key(*m)))
        .collect();
    assert!(before
        .iter()
        .all(|r| r.iter().any(|r| r.device == relay.device_id())));

    relay.set_offline(true).await.expect("relay goes dark");
    bridge
        .until("the relay's session is closed", |b| {
            b.routes().session_of(relay.device_id()).is_none()
        })
        .await;
    for mesh in &relayed {
        let routes = bridge.routes().routes_to(&key(*mesh));
        assert!(!routes.is_empty(), "mesh id {mesh} still reachable");
        assert!(
            routes.iter().all(|r| r.device != relay.device_id()),
            "mesh id {mesh}"
        );
        let report = bridge.toggle(*mesh, true, Duration::from_secs(5)).await;
        assert_eq!(
            report.outcome,
            CommandOutcome::Success,
            "mesh id {mesh}: {report:?}"
        );
        assert_ne!(report.via, Some(relay.device_id()));
    }
    assert_eq!(sim.panics(), 0);
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_device_sending_garbage_and_one_that_barely_reads_do_not_affect_the_others() {
    let (bridge, sim, _home) = world().await;
    let garbage = sim.sessions()[3].clone();
    let slow = sim.sessions()[4].clone();
    let noisy = Chaos {
        to_bridge: PacketChaos {
            bogus: 0.5,
            corrupt_checksum: 0.3,
            corrupt_header: 0.2,
            ..PacketChaos::default()
        },
        ..Chaos::default()
    };
    garbage.set_chaos(noisy).await.expect("chaos accepted");
    let mut sluggish = Chaos::default();
    sluggish.link.slow_read_bytes_per_sec = 8;
    slow.set_chaos(sluggish).await.expect("chaos accepted");

    let healthy: Vec<u16> = sim.sessions()[10..20]
        .iter()
        .map(|s| s.key().mesh_id)
        .collect();
    for (round, mesh) in healthy.iter().enumerate() {
        let on = round % 2 == 0;
        // Traffic from the troubled devices: wall changes make the garbage device report, and a
        // command makes the bridge write to the slow reader (its outcome is not asserted).
        let state = LightState {
            on,
            brightness: 40,
            temperature: 20,
            rgb: [0; 3],
        };
        let _ = sim.wall_change(garbage.key(), state);
        let _ = bridge
            .toggle(slow.key().mesh_id, on, Duration::from_secs(1))
            .await;
        let report = bridge.toggle(*mesh, on, Duration::from_secs(5)).await;
        assert_eq!(
            report.outcome,
            CommandOutcome::Success,
            "mesh id {mesh}: {report:?}"
        );
    }
    let garbage_errors: f64 = bridge
        .metrics()
        .render()
        .lines()
        .filter(|l| {
            l.starts_with("tcp_comm_decode_errors_total{")
                && l.contains(&format!("device_id=\"{}\"", garbage.device_id()))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert!(garbage_errors > 0.0, "the garbage was counted");
    assert_eq!(sim.panics(), 0);
    sim.shutdown().await;
}
