//! The simulator's memory stays flat across repeated connect/disconnect cycles: every
//! connection's TLS session, buffers and queues are freed when it ends, and per-device logs are
//! bounded rings.
//!
//! Measured in-process from `/proc/self/statm` (Linux only; elsewhere the test says it skipped).
//! Its own test binary, because RSS is per process and other tests would add noise. No
//! wall-clock assertion: paused time, and the bound is on bytes.

mod common;

use std::time::Duration;

use common::server::{ServerOptions, TestServer};
use cync_bridge::sim::{generate, GenerateParams, LinkState, Partition, SimConfig, Simulator};

const DEVICES: usize = 20;
const CYCLES: usize = 20;
/// Allowed growth between the warmed-up cycle and the last one: leaking 3 KB per connection
/// (a read buffer pinned by a logged packet, say) would exceed it over the 340 measured
/// connections; a leaked TLS session (~40 KB) by far. The measured growth is zero pages.
const BOUND: u64 = 1024 * 1024;

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[tokio::test(start_paused = true)]
async fn rss_stays_flat_across_twenty_reconnect_cycles_of_twenty_devices() {
    let Some(_) = rss_bytes() else {
        eprintln!("skipped: /proc/self/statm not available on this platform");
        return;
    };
    let server = TestServer::start(ServerOptions::default()).await;
    let homes = generate(
        &GenerateParams {
            wifi_devices: DEVICES,
            mesh_per_device: 5,
            ..Default::default()
        },
        1,
    )
    .unwrap();
    let mut config = SimConfig::new(1, homes);
    config.behaviour.log_capacity = 64;
    let sim = Simulator::start(config, server.addr()).await.unwrap();
    sim.wait_ready(Duration::from_secs(60)).await.unwrap();

    let mut samples = Vec::new();
    for cycle in 0..CYCLES {
        for s in sim.sessions() {
            s.partition(Partition::Reset).await.unwrap();
        }
        for s in sim.sessions() {
            s.wait_link(LinkState::Ready, Duration::from_secs(60))
                .await
                .unwrap();
        }
        // Let each new connection finish its connect sequence and a heartbeat.
        tokio::time::sleep(Duration::from_secs(30)).await;
        // The test server's own records are not the simulator's memory.
        server.forget_closed();
        samples.push((cycle, rss_bytes().unwrap_or(0)));
    }
    let connects: u64 = sim.sessions().iter().map(|s| s.stats().connects).sum();
    assert_eq!(connects, (DEVICES * (CYCLES + 1)) as u64);
    assert_eq!(sim.panics(), 0);
    let warm = samples[2].1;
    let last = samples[CYCLES - 1].1;
    eprintln!("rss per cycle (bytes): {samples:?}");
    assert!(
        last <= warm + BOUND,
        "RSS grew from {warm} to {last} bytes over {} cycles",
        CYCLES - 3
    );
    sim.shutdown().await;
    server.shutdown().await;
}
