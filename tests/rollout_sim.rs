//! The rollout controller end to end against the simulator, in virtual time (paused clock; the
//! controller's evaluations every 60 s and the commands' deadlines run in it too):
//!
//! - 100 Wi-Fi devices at a 10 % canary: while every device is healthy nothing rolls back; once
//!   the reliable path fails for its cohort only, everything is back on legacy within 120–180 s,
//!   latched, and the reliable path receives nothing more;
//! - shadow mode: the command bytes every device receives are identical with shadow on and off,
//!   while shadow's own counters move and the reliable path's stay at zero.

mod server_world;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cync_bridge::capture::Direction;
use cync_bridge::device::{DeviceKey, HomeId};
use cync_bridge::protocol::Command;
use cync_bridge::rollout::assign::{Cohort, Path, Share};
use cync_bridge::rollout::control::{Configured, Mode};
use cync_bridge::rollout::router::Clock;
use cync_bridge::rollout::settings::RolloutSettings;
use cync_bridge::rollout::task::{self, Started};
use cync_bridge::sim::{
    Chaos, HomeBuilder, PacketChaos, SimConfig, SimDeviceKey, SimHandle, Simulator,
};
use cync_bridge::transport::reliable::Policy;
use cync_bridge::transport::{CommandRequest, CommandTransport, RouteKey};
use server_world::Bridge;
use tokio_util::sync::CancellationToken;

const T0_UNIX_MS: u64 = 1_800_000_000_000;
const SEED: u64 = 20_261_204;

fn key(mesh: u16) -> DeviceKey {
    DeviceKey::new(HomeId::DEFAULT, mesh)
}

fn route(mesh: u16) -> RouteKey {
    RouteKey::of_device(key(mesh))
}

fn settings(bridge: &Bridge, mode: Mode, percent: f64) -> RolloutSettings {
    RolloutSettings {
        configured: Configured {
            mode,
            cohort: Cohort {
                share: Share::from_percent(percent).unwrap(),
                ..Cohort::default()
            },
            shadow_legacy: false,
        },
        store_path: bridge.config.data_dir.join("rollout.sqlite3"),
        ..RolloutSettings::default()
    }
}

/// `devices` Wi-Fi devices, mesh ids 1..=devices, each its own session; the bridge's sessions
/// count their msg ids and tx values from seeded starts, so two runs can be compared byte for byte.
async fn world(devices: u16, log: usize) -> (Bridge, SimHandle) {
    let bridge = Bridge::start_seeded("", Some(SEED)).await;
    let mut home = HomeBuilder::new("rollout", SEED);
    for mesh in 1..=devices {
        home = home.wifi(mesh, 137);
    }
    let mut config = SimConfig::new(SEED, vec![home.build().unwrap()]);
    config.behaviour.log_capacity = log;
    let sim = Simulator::start(config, bridge.addr).await.unwrap();
    sim.wait_ready(Duration::from_secs(120)).await.unwrap();
    bridge
        .until("a route to every device", |b| {
            (1..=devices).all(|m| b.routes().preferred(&key(m)).is_some())
        })
        .await;
    (bridge, sim)
}

fn start(bridge: &Bridge, settings: &RolloutSettings) -> Started {
    task::start_with_clock(
        settings,
        Policy::reliable(),
        &bridge.services,
        &bridge.tracker,
        bridge.shutdown.clone(),
        Clock::at(T0_UNIX_MS),
    )
}

fn power(mesh: u16, on: bool) -> CommandRequest {
    CommandRequest::new(
        key(mesh),
        Command::Power { target: mesh, on },
        Duration::from_secs(5),
    )
}

/// One command a second, round robin over `devices`, each on its own task so a slow failure
/// never lowers the rate; runs until `stop`.
fn drive(transport: Arc<dyn CommandTransport>, devices: u16, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut n: u32 = 0;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let mesh = u16::try_from(n % u32::from(devices)).unwrap() + 1;
            let on = (n / u32::from(devices)).is_multiple_of(2);
            n += 1;
            let (t, cancel) = (Arc::clone(&transport), stop.clone());
            tokio::spawn(async move { t.execute(power(mesh, on), &cancel).await });
        }
    });
}

fn evaluations(bridge: &Bridge) -> f64 {
    ["pass", "insufficient", "house_wide", "fail", "held"]
        .iter()
        .map(|v| {
            bridge.sample(&format!(
                "tcp_comm_rollout_evaluations_total{{verdict=\"{v}\"}}"
            ))
        })
        .sum()
}

const RELIABLE_ROUTED: &str = "tcp_comm_routing_decision_total{transport=\"reliable\"}";

#[tokio::test(start_paused = true)]
async fn a_reliable_path_failing_only_for_its_cohort_is_rolled_back_within_three_minutes() {
    let (bridge, sim) = world(100, 256).await;
    let settings = settings(&bridge, Mode::Canary, 10.0);
    let cohort: Vec<u16> = (1..=100)
        .filter(|m| settings.configured.cohort.path_of(route(*m)) == Path::Reliable)
        .collect();
    assert!(!cohort.is_empty() && cohort.len() < 100, "{cohort:?}");
    let started = start(&bridge, &settings);
    let stop = CancellationToken::new();
    drive(Arc::clone(&started.transport), 100, stop.clone());

    // Eleven healthy minutes: more than the 10-minute window and the 20 commands it needs.
    tokio::time::sleep(Duration::from_secs(11 * 60)).await;
    let status = started.handle.status();
    assert!(
        status.latch.is_none(),
        "a healthy canary is not rolled back"
    );
    assert!(bridge.sample(RELIABLE_ROUTED) > 0.0);
    assert!(bridge.sample("tcp_comm_rollout_evaluations_total{verdict=\"pass\"}") >= 1.0);

    // Onset just after an evaluation: every packet to the cohort's devices is lost from now on.
    let before = evaluations(&bridge);
    bridge
        .until("an evaluation", |b| evaluations(b) > before)
        .await;
    let lose_everything = Chaos {
        from_bridge: PacketChaos {
            loss: 1.0,
            loss_burst: 1,
            ..PacketChaos::default()
        },
        ..Chaos::default()
    };
    for mesh in &cohort {
        let session = sim
            .session(SimDeviceKey {
                home: 0,
                mesh_id: *mesh,
            })
            .unwrap();
        session.set_chaos(lose_everything.clone()).await.unwrap();
    }
    let onset = tokio::time::Instant::now();
    let mut rolled_back = None;
    while onset.elapsed() < Duration::from_secs(10 * 60) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if started.handle.status().latch.is_some() {
            rolled_back = Some(onset.elapsed());
            break;
        }
    }
    let after = rolled_back.expect("the canary was rolled back");
    assert!(
        (Duration::from_secs(120)..=Duration::from_secs(180)).contains(&after),
        "rolled back {after:?} after onset"
    );
    let status = started.handle.status();
    let latch = status.latch.clone().unwrap();
    assert_eq!(latch.reason, "command_success");
    assert_eq!(status.effective_percent, 0.0);
    assert_eq!(bridge.sample("tcp_comm_canary_percentage"), 0.0);
    assert_eq!(
        bridge.sample("tcp_comm_rollback_total{reason=\"command_success\"}"),
        1.0
    );
    // Commands keep flowing, all on legacy.
    let routed = bridge.sample(RELIABLE_ROUTED);
    let legacy = bridge.sample("tcp_comm_routing_decision_total{transport=\"legacy\"}");
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        bridge.sample(RELIABLE_ROUTED),
        routed,
        "nothing more on the reliable path"
    );
    assert!(
        bridge.sample("tcp_comm_routing_decision_total{transport=\"legacy\"}") > legacy + 100.0
    );
    stop.cancel();
    sim.shutdown().await;
}

/// Every command packet (0x73) each device received, as bytes, in order.
fn commands_received(sim: &SimHandle, devices: u16) -> BTreeMap<u16, Vec<Vec<u8>>> {
    (1..=devices)
        .map(|m| {
            let log = sim
                .session(SimDeviceKey {
                    home: 0,
                    mesh_id: m,
                })
                .unwrap()
                .log();
            let received = log
                .iter()
                .filter(|p| p.dir == Direction::ServerToDevice && p.kind() == 0x73)
                .map(|p| p.bytes.to_vec())
                .collect();
            (m, received)
        })
        .collect()
}

async fn run_sequence(mode: Mode) -> (BTreeMap<u16, Vec<Vec<u8>>>, Bridge) {
    let (bridge, sim) = world(8, 4096).await;
    let started = start(&bridge, &settings(&bridge, mode, 0.0));
    let cancel = CancellationToken::new();
    for round in 0..3 {
        for mesh in 1..=8 {
            let report = started
                .transport
                .execute(power(mesh, round % 2 == 0), &cancel)
                .await;
            assert_eq!(report.outcome.as_str(), "success", "{mode} mesh {mesh}");
        }
    }
    let received = commands_received(&sim, 8);
    sim.shutdown().await;
    (received, bridge)
}

#[tokio::test(start_paused = true)]
async fn shadow_mode_sends_devices_exactly_the_bytes_legacy_sends() {
    let (legacy, legacy_bridge) = run_sequence(Mode::Legacy).await;
    let (shadow, shadow_bridge) = run_sequence(Mode::Shadow).await;
    // The 24 power commands, plus the mesh-info requests a session start brings.
    assert!(
        legacy.values().map(Vec::len).sum::<usize>() >= 24,
        "{legacy:?}"
    );
    assert_eq!(legacy, shadow, "shadow transmitted something of its own");
    // Shadow observed every command; the reliable path was never used.
    assert_eq!(
        shadow_bridge.sample("tcp_comm_shadow_outcome_total{outcome=\"success\"}"),
        24.0
    );
    assert_eq!(
        legacy_bridge.sample("tcp_comm_shadow_outcome_total{outcome=\"success\"}"),
        0.0
    );
    for bridge in [&legacy_bridge, &shadow_bridge] {
        assert_eq!(bridge.sample(RELIABLE_ROUTED), 0.0);
        assert_eq!(
            bridge.sample("tcp_comm_command_total{transport=\"reliable\",outcome=\"success\"}"),
            0.0
        );
        assert_eq!(
            bridge.sample("tcp_comm_command_total{transport=\"legacy\",outcome=\"success\"}"),
            24.0
        );
    }
}
