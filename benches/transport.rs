//! Reliable-path throughput and end-to-end latency: the real bridge and the real simulator on
//! loopback, no chaos (the simulator answers at once), many devices driven concurrently in a
//! closed loop (the next command after the previous outcome) for about 10 s.
//!
//! Prints commands/s and latency p50/p99/max (submitted → `success`, from
//! `CommandReport.latency`). Target: ≥ 1,000 commands/s with p99 < 2 ms on 2 cores.
//!
//! Run: `cargo bench --bench transport`

#[path = "../tests/server_world/mod.rs"]
mod server_world;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cync_bridge::protocol::Command;
use cync_bridge::sim::{HomeBuilder, SimConfig, Simulator};
use cync_bridge::transport::reliable::Policy;
use cync_bridge::transport::service::ReliableTransport;
use cync_bridge::transport::{CommandOutcome, CommandRequest};
use server_world::Bridge;
use tokio_util::sync::CancellationToken;

const RUN: Duration = Duration::from_secs(10);
const RELAYS: u16 = 10;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let bridge = Bridge::start("").await;
    let mut b = HomeBuilder::new("bench", 9);
    for r in 1..=RELAYS {
        b = b.wifi(r, 137);
    }
    let spec = b.build().expect("home");
    let mut config = SimConfig::new(42, vec![spec]);
    // Normal device behaviour (state report 0.5 s after each command); no packet log needed.
    config.behaviour.log_capacity = 0;
    let sim = Simulator::start(config, bridge.addr).await.expect("sim");
    sim.wait_ready(Duration::from_secs(30))
        .await
        .expect("ready");
    let meshes: Vec<u16> = (1..=RELAYS).collect();
    let all = meshes.clone();
    bridge
        .until("routes", |b| {
            all.iter()
                .all(|m| !b.routes().candidates(&Bridge::key(*m)).is_empty())
        })
        .await;
    let transport = Arc::new(ReliableTransport::spawn(
        &bridge.services,
        Policy::reliable(),
        &bridge.tracker,
        bridge.shutdown.clone(),
    ));

    let started = Instant::now();
    let mut tasks = Vec::new();
    for mesh in meshes {
        let t = transport.clone();
        tasks.push(tokio::spawn(async move {
            let cancel = CancellationToken::new();
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            let mut on = true;
            while started.elapsed() < RUN {
                let request = CommandRequest::new(
                    Bridge::key(mesh),
                    Command::Power { target: mesh, on },
                    Duration::from_secs(10),
                );
                let report = t.execute(request, &cancel).await;
                on = !on;
                if report.outcome == CommandOutcome::Success {
                    latencies.push(report.latency);
                } else {
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for t in tasks {
        let (l, f) = t.await.expect("no panic");
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "transport bench: {} devices closed loop, {:.1} s: {} success, {failures} other",
        RELAYS,
        elapsed.as_secs_f64(),
        latencies.len()
    );
    println!(
        "throughput {:.0} commands/s; latency p50 {:?} p99 {:?} max {:?}",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or_default()
    );
    sim.shutdown().await;
}
