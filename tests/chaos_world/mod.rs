//! World for tests/transport_chaos.rs: the real bridge (tests/server_world/) and the simulator
//! with chaos on its links, homes of relays and Bluetooth devices, the transports under test,
//! a closed-loop command driver with its tally, and readers of the metrics and of the commands
//! the devices received.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cync_bridge::capture::Direction;
use cync_bridge::protocol::{decode, Command, FrameDir, Packet};
use cync_bridge::sim::{
    Chaos, HomeBuilder, SimConfig, SimDeviceKey, SimHandle, SimHome, Simulator,
};
use cync_bridge::transport::reliable::Policy;
use cync_bridge::transport::service::ReliableTransport;
use cync_bridge::transport::{CommandOutcome, CommandReport, CommandRequest, LegacyTransport};
use tokio_util::sync::CancellationToken;

use crate::server_world::Bridge;

pub const ATTEMPT: Duration = Duration::from_millis(400);
pub const READY: Duration = Duration::from_secs(30);

/// `relays` Wi-Fi relays (mesh ids 1..=relays), each relaying `per_relay - 1` Bluetooth-only
/// devices of its own; with `shared`, every Bluetooth device is also reached by the next relay.
pub fn home(relays: u16, per_relay: u16, shared: bool) -> SimHome {
    let mut b = HomeBuilder::new("chaos", 5);
    let mut next = 100u16;
    let mut owned: Vec<Vec<u16>> = Vec::new();
    for r in 1..=relays {
        b = b.wifi(r, 137);
        let mut mine = Vec::new();
        for _ in 1..per_relay {
            while next == 0x7D || next == 0x7E {
                next += 1;
            }
            b = b.bluetooth(next, 21);
            mine.push(next);
            next += 1;
        }
        owned.push(mine);
    }
    for r in 1..=relays {
        let mut ids = owned[usize::from(r - 1)].clone();
        if shared {
            let prev = if r == 1 { relays } else { r - 1 };
            ids.extend(owned[usize::from(prev - 1)].iter().copied());
        }
        b = b.relays(r, &ids);
    }
    b.build().unwrap()
}

pub fn mesh_ids(spec: &SimHome) -> Vec<u16> {
    spec.devices.iter().map(|d| d.mesh_id).collect()
}

pub fn sim_key(mesh: u16) -> SimDeviceKey {
    SimDeviceKey {
        home: 0,
        mesh_id: mesh,
    }
}

pub struct World {
    pub bridge: Bridge,
    pub sim: SimHandle,
    pub meshes: Vec<u16>,
}

pub async fn world(seed: u64, spec: SimHome, chaos: Chaos, min_routes: usize) -> World {
    let bridge = Bridge::start("").await;
    let meshes = mesh_ids(&spec);
    // Chaos starts once every link is up and every route known: the handshake is not what
    // these checks are about.
    let mut config = SimConfig::new(seed, vec![spec]);
    // Room for every packet of the run in each relay's log.
    config.behaviour.log_capacity = 50_000;
    let sim = Simulator::start(config, bridge.addr).await.unwrap();
    sim.wait_ready(READY).await.unwrap();
    let all = meshes.clone();
    bridge
        .until("routes to every device", |b| {
            // Wi-Fi devices (ids below 100) are their own single route.
            all.iter().all(|m| {
                let want = if *m >= 100 { min_routes } else { 1 };
                b.routes().candidates(&Bridge::key(*m)).len() >= want
            })
        })
        .await;
    sim.set_chaos_all(chaos).await.unwrap();
    World {
        bridge,
        sim,
        meshes,
    }
}

pub fn reliable(bridge: &Bridge, attempt: Duration) -> ReliableTransport {
    let mut policy = Policy::reliable();
    policy.attempt_timeout = attempt;
    ReliableTransport::spawn(
        &bridge.services,
        policy,
        &bridge.tracker,
        bridge.shutdown.clone(),
    )
}

pub fn power(mesh: u16, on: bool, timeout: Duration) -> CommandRequest {
    CommandRequest::new(
        Bridge::key(mesh),
        Command::Power { target: mesh, on },
        timeout,
    )
}

#[derive(Default, Debug)]
pub struct Tally {
    pub sent: u64,
    pub success: u64,
    pub by_outcome: HashMap<String, u64>,
    pub worst_over_deadline: u64,
}

impl Tally {
    pub fn rate(&self) -> f64 {
        self.success as f64 / self.sent as f64
    }
}

/// Closed loop per device (the next command after the previous outcome), devices concurrently:
/// `per_device` power commands alternating on/off for each mesh id.
/// Either path, with `Send` futures (the trait's `async fn` makes no such promise).
pub enum Path {
    Reliable(ReliableTransport),
    Legacy(LegacyTransport),
}

impl Path {
    pub async fn execute(
        &self,
        request: CommandRequest,
        cancel: &CancellationToken,
    ) -> CommandReport {
        match self {
            Path::Reliable(t) => t.execute(request, cancel).await,
            Path::Legacy(t) => t.execute(request, cancel).await,
        }
    }
}

pub async fn closed_loop(
    transport: Arc<Path>,
    meshes: &[u16],
    per_device: usize,
    timeout: Duration,
) -> Tally {
    let mut tasks = Vec::new();
    for &mesh in meshes {
        let transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            let cancel = CancellationToken::new();
            let mut out = Vec::new();
            for i in 0..per_device {
                let report = transport
                    .execute(power(mesh, i % 2 == 0, timeout), &cancel)
                    .await;
                out.push(report);
            }
            out
        }));
    }
    let mut tally = Tally::default();
    for t in tasks {
        for r in t.await.expect("no panic") {
            tally.sent += 1;
            if r.outcome == CommandOutcome::Success {
                tally.success += 1;
            }
            *tally
                .by_outcome
                .entry(format!("{:?}", r.outcome))
                .or_default() += 1;
            let over = r.latency.saturating_sub(timeout).as_millis() as u64;
            tally.worst_over_deadline = tally.worst_over_deadline.max(over);
        }
    }
    tally
}

/// Sum of every series of a metric family.
pub fn family_sum(bridge: &Bridge, family: &str) -> f64 {
    bridge
        .metrics()
        .render()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

/// Every bridge→device command frame in the simulator's logs, as (when, command bytes without
/// the tx), sorted by time.
pub fn commands_sent(sim: &SimHandle) -> Vec<(tokio::time::Instant, u8, Vec<u8>)> {
    let mut out = Vec::new();
    for s in sim.sessions() {
        for entry in s.log() {
            if entry.dir != Direction::ServerToDevice {
                continue;
            }
            if let Ok(Packet::Data(f)) = decode(&entry.bytes) {
                if let Ok(fr) = &f.frame {
                    if fr.dir == FrameDir::Request {
                        out.push((entry.at, fr.op, fr.payload.to_vec()));
                    }
                }
            }
        }
    }
    out.sort_by_key(|e| e.0);
    out
}

/// The bridge sends a command a second time only as a retry after a timeout: two consecutive
/// copies of the same command to the same target (the tx and mesh sequence differ per attempt,
/// so commands are compared decoded) are at least `attempt` apart. Returns how many repeats
/// were seen.
pub fn assert_repeats_only_after_timeout(sim: &SimHandle, attempt: Duration) -> usize {
    let mut previous: HashMap<u16, (Command, tokio::time::Instant)> = HashMap::new();
    let mut repeats = 0;
    for (at, op, payload) in commands_sent(sim) {
        // Session housekeeping (0x52 mesh-info requests) addresses no device: not a command.
        let Some((command, _)) = Command::decode(op, &payload) else {
            continue;
        };
        let Some(target) = command.target() else {
            continue;
        };
        if let Some((before, when)) = previous.get(&target) {
            if *before == command {
                let gap = at - *when;
                // 5 ms of slack for timer granularity.
                assert!(
                    gap + Duration::from_millis(5) >= attempt,
                    "{command:?} repeated after {gap:?}, before the {attempt:?} attempt timeout"
                );
                repeats += 1;
            }
        }
        previous.insert(target, (command, at));
    }
    repeats
}
