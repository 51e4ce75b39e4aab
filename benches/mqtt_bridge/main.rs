//! The whole Home Assistant path against a real Mosquitto: the bridge (`cync-bridge serve`, the
//! release binary, as a *separate process* so its CPU and memory are its own), the in-process
//! simulator (one home, 100 devices: 10 Wi-Fi relays, each relaying for 9 Bluetooth-only
//! devices) and two plain MQTT clients standing in for Home Assistant.
//!
//! Measures, for 5, 50 and 400 commands/s spread round-robin over the 100 devices (open loop,
//! `ON`/`OFF` for plugs, `{"state": …}` for lights, each command flipping its device):
//! - publish → applied: from just before the client's publish to the simulated device applying
//!   the command ([`cync_bridge::sim::SimHandle::subscribe_applied`]); p50/p95/p99/max, and
//!   commands never applied ("lost"). A second subscriber of the command topics splits it into
//!   the broker's delivery and the rest (bridge + device);
//! - the bridge's CPU (% of one core, `/proc/<pid>/stat` utime+stime over the phase) and RSS
//!   (`/proc/<pid>/status` VmRSS at the end, VmHWM peak), idle and under each rate;
//! - wall switch → MQTT state: `SimHandle::wall_change`, then until the state message showing it
//!   reaches the subscriber (p50/p99).
//!
//! Everything shares the machine (broker, bridge, simulator, clients, and whatever else runs), so
//! the latencies include run-queue waits: the load average is printed before and after. On a
//! busy host, `chrt -f 10 <bench binary> --bench` (root) shows what the path does when it gets
//! the CPU it asks for. Targets (bridge alone): p99 ≤ 1 ms at every rate, ≤ 20 % of a core at
//! 400/s, ≤ 20 MB RSS.
//!
//! Run: `cargo bench --bench mqtt_bridge` (about 1.5 minutes). `CYNC_BENCH_QUICK=1`: 3 s per
//! rate; `CYNC_BENCH_RATES=400`: only these rates (comma-separated), e.g. while profiling the
//! bridge's pid with `perf record -p`. Needs `mosquitto` (`apt-get install mosquitto`); without
//! it the bench says so and ends.

mod bridge;
mod broker;
mod clients;
mod commands;
mod devices;
mod report;
mod wall;

use std::time::Duration;

use bridge::{clock_ticks, load_average, BridgeProcess};
use broker::Mosquitto;
use clients::{commander, observer, wait_all_online};
use commands::{drive, match_applied, Shared};
use devices::{device_list, start_sim};
use report::print_table;
use wall::wall_changes;

/// Cloud home id the device list gives the simulated home (topics are `cync/<id>-<mesh id>`).
const HOME_ID: u64 = 4_200_000_001;
const RELAYS: u16 = 10;
const MESH_PER_RELAY: u16 = 9;
const RATES: [u32; 3] = [5, 50, 400];
/// How long after the last publish a command may still be applied before it counts as lost.
const GRACE: Duration = Duration::from_secs(5);
/// Type ids: Full Color A19 (Wi-Fi), Indoor Plug (Wi-Fi), Tunable White A19 (Bluetooth).
const COLOR_BULB: u16 = 137;
const PLUG: u16 = 64;
const TUNABLE_BT: u16 = 5;

/// The Python add-on's figures on the same kind of load, for comparison.
const PYTHON: &str = "python add-on (cync-lan): p99 ≈ 2.8 ms at 5/s and 4.7 ms at 400/s, \
                      80% of a core, 64 MB RSS";

fn main() {
    // `cargo test --benches` runs this without `--bench`: the minute-long run only when benching.
    if !std::env::args().any(|a| a == "--bench") {
        println!("mqtt_bridge: run with `cargo bench --bench mqtt_bridge`");
        return;
    }
    let quick = std::env::var("CYNC_BENCH_QUICK").as_deref() == Ok("1");
    let Some(broker) = Mosquitto::start() else {
        println!("mqtt_bridge: SKIPPED: mosquitto is not installed (apt-get install mosquitto)");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(&broker, quick));
}

// ------------------------------------------------------------------------------ the run

struct Plan {
    phase: Duration,
    idle: Duration,
    wall_samples: usize,
}

async fn run(broker: &Mosquitto, quick: bool) {
    let plan = if quick {
        Plan {
            phase: Duration::from_secs(3),
            idle: Duration::from_secs(2),
            wall_samples: 50,
        }
    } else {
        Plan {
            phase: Duration::from_secs(10),
            idle: Duration::from_secs(10),
            wall_samples: 200,
        }
    };
    let devices = device_list();
    let bridge = BridgeProcess::start(broker.port, &devices);
    let sim = start_sim(&devices, bridge.device_addr).await;

    // Home Assistant's two roles: one client listening to state and availability, one commanding.
    let pending = Shared::default();
    let (observer, mut seen) = observer(broker.port, &pending).await;
    wait_all_online(&mut seen, devices.len()).await;
    let commander = commander(broker.port).await;
    // Let start-up publishing (discovery, retained state) and the first reports settle.
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!(
        "mqtt_bridge bench: 100 devices ({RELAYS} Wi-Fi relays × {MESH_PER_RELAY} Bluetooth + \
         themselves), real mosquitto, bridge = `cync-bridge serve` pid {} (separate process), \
         {:.0} s per rate; load average before: {}",
        bridge.child.id(),
        plan.phase.as_secs_f64(),
        load_average()
    );
    let clk_tck = clock_ticks();
    let mut rows = Vec::new();
    let before = bridge.usage(clk_tck);
    tokio::time::sleep(plan.idle).await;
    let idle = bridge.usage(clk_tck).since(&before);

    let matcher = match_applied(&sim, &pending);
    for rate in rates() {
        let before = bridge.usage(clk_tck);
        let report = drive(&commander, &pending, &devices, rate, plan.phase).await;
        let usage = bridge.usage(clk_tck).since(&before);
        rows.push((rate, report, usage));
        // The delayed state reports of the last commands, then a clean slate.
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    while seen.try_recv().is_ok() {}
    let wall = wall_changes(&sim, &mut seen, &devices, plan.wall_samples).await;

    print_table(&bridge, &idle, &rows, &wall);
    drop(matcher);
    drop(observer);
    drop(commander);
    sim.shutdown().await;
    bridge.stop();
}

/// `CYNC_BENCH_RATES=400` (comma-separated) runs only those rates, e.g. while profiling.
fn rates() -> Vec<u32> {
    match std::env::var("CYNC_BENCH_RATES") {
        Ok(list) => list
            .split(',')
            .map(|r| r.trim().parse().expect("CYNC_BENCH_RATES: numbers"))
            .collect(),
        Err(_) => RATES.to_vec(),
    }
}
