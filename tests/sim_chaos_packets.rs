//! Packet-level chaos knobs, end to end against the test server: loss (with bursts),
//! duplication, reordering, latency and jitter, corruption (checksum broken, checksum fixed up,
//! header broken) and bogus packets — each in the direction(s) it applies to, at the configured
//! rate (fixed seed), visible on the wire where it should be, and survived (no task panics, the
//! link keeps working).
//!
//! Rates are checked as |measured − configured| ≤ tolerance, with the tolerance about three
//! standard deviations of the sample (stated per test). Chaos is switched on through the runtime
//! handle once the device is ready, so that path is exercised too; time is paused (virtual),
//! sockets are real.

mod common;

use std::time::Duration;

use common::rig::*;
use cync_bridge::capture::Direction;
use cync_bridge::protocol::Packet;
use cync_bridge::sim::{Chaos, Note, PacketChaos};
use tokio::time::Instant;

// ------------------------------------------------------------------------------- loss

#[tokio::test(start_paused = true)]
async fn loss_to_the_bridge_in_bursts_drops_the_expected_fraction() {
    // n ≥ 4,000, bursts of 3: sd ≈ 0.009; tolerance 0.03.
    let rig = Rig::new(chatty).await;
    let (p, burst) = (0.05, 3);
    rig.offer_to_bridge(
        PacketChaos {
            loss: p,
            loss_burst: burst,
            ..Default::default()
        },
        4000,
    )
    .await;
    let c = rig.device().chaos_to_bridge();
    let b = f64::from(burst);
    assert_rate(
        "lost",
        c.dropped,
        c.offered,
        p * b / (1.0 - p + p * b),
        0.03,
    );
    // What was not lost reached the server, and nothing else did.
    assert_eq!(c.offered - c.dropped, rig.device().stats().packets_sent);
    assert_eq!(rig.server_packets().len() as u64, c.offered - c.dropped);
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn loss_from_the_bridge_hides_packets_from_the_device() {
    // n ≥ 3,000 independent losses at 0.1: sd ≈ 0.0055; tolerance 0.02.
    let rig = Rig::new(chatty).await;
    let knobs = PacketChaos {
        loss: 0.1,
        ..Default::default()
    };
    rig.chaos_until(from_bridge(knobs), |r| {
        r.device().chaos_from_bridge().offered >= 3000
    })
    .await;
    rig.stop_device().await;
    let c = rig.device().chaos_from_bridge();
    assert_rate("lost", c.dropped, c.offered, 0.1, 0.02);
    // The device acted on exactly the heartbeat acks that were not lost.
    let log = rig.device().log();
    let delivered_acks = log
        .iter()
        .filter(|e| e.dir == Direction::ServerToDevice && e.kind() == 0xD8 && e.delivered())
        .count() as u64;
    let lost = log
        .iter()
        .filter(|e| e.dir == Direction::ServerToDevice && !e.delivered())
        .count() as u64;
    assert_eq!(rig.device().stats().heartbeat_acks, delivered_acks);
    assert_eq!(lost, c.dropped);
    rig.finish().await;
}

// -------------------------------------------------------------------------- duplication

#[tokio::test(start_paused = true)]
async fn duplicates_to_the_bridge_arrive_twice() {
    // n ≥ 3,000 at 0.1: sd ≈ 0.0055; tolerance 0.02.
    let rig = Rig::new(chatty).await;
    rig.offer_to_bridge(
        PacketChaos {
            duplicate: 0.1,
            ..Default::default()
        },
        3000,
    )
    .await;
    let c = rig.device().chaos_to_bridge();
    assert_rate("duplicated", c.duplicated, c.offered, 0.1, 0.02);
    // Every packet since the connection started went through the engine.
    let sent = rig.device().stats().packets_sent;
    assert_eq!(sent, c.offered + c.duplicated);
    assert_eq!(rig.server_packets().len() as u64, sent);
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn duplicated_commands_are_acknowledged_twice_and_applied_once() {
    // 600 commands (+ heartbeat acks) at 0.2: sd ≈ 0.015; tolerance 0.05.
    let rig = Rig::new(|_| {}).await;
    let knobs = PacketChaos {
        duplicate: 0.2,
        ..Default::default()
    };
    rig.commands_under(knobs, 600).await;
    let c = rig.device().chaos_from_bridge();
    assert_rate("duplicated", c.duplicated, c.offered, 0.2, 0.05);
    let dup_commands = rig.noted(Direction::ServerToDevice, Note::Duplicate, 0x73) as u64;
    let stats = rig.device().stats();
    assert_eq!(stats.duplicates, dup_commands);
    assert_eq!(stats.commands, 600 + dup_commands);
    assert_eq!(rig.sim.applied(KEY), 600, "no command applied twice");
    assert_eq!(rig.received(0x7B), 600 + dup_commands);
    rig.finish().await;
}

// --------------------------------------------------------------------------- reordering

#[tokio::test(start_paused = true)]
async fn reordered_reports_reach_the_bridge_out_of_order() {
    // n ≥ 3,000 at 0.05: sd ≈ 0.004; tolerance 0.015.
    let rig = Rig::new(reporting).await;
    rig.offer_to_bridge(
        PacketChaos {
            reorder: 0.05,
            reorder_window: 2,
            ..Default::default()
        },
        3000,
    )
    .await;
    let c = rig.device().chaos_to_bridge();
    assert_rate("reordered", c.reordered, c.offered, 0.05, 0.015);
    // 0x83 msg ids count up; a reordered 0x83 shows up as a step backwards at the server.
    let ids: Vec<u16> = rig
        .server_packets()
        .iter()
        .filter_map(|r| match r.packet() {
            Packet::Status(f) => Some(f.msg.counter()),
            _ => None,
        })
        .collect();
    let backwards = ids.windows(2).filter(|w| w[1] < w[0]).count();
    let reordered_83 = rig.noted(Direction::DeviceToServer, Note::Reordered, 0x83);
    assert!(
        backwards > 0 && backwards <= reordered_83,
        "{backwards} vs {reordered_83}"
    );
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn reordered_commands_are_all_applied() {
    let rig = Rig::new(|_| {}).await;
    let knobs = PacketChaos {
        reorder: 0.2,
        reorder_window: 3,
        ..Default::default()
    };
    rig.device().set_chaos(from_bridge(knobs)).await.unwrap();
    rig.commands(300).await;
    rig.run_until(WAIT, |r| r.sim.applied(KEY) == 300).await;
    assert!(rig.device().chaos_from_bridge().reordered > 30);
    rig.finish().await;
}

// ------------------------------------------------------------------------------ latency

async fn round_trips(rig: &Rig, n: usize) -> Vec<Duration> {
    let mut rtts = Vec::new();
    for _ in 0..n {
        let sent = Instant::now();
        rtts.push(rig.receipt_for_mesh_ack().await - sent);
    }
    rtts
}

fn check_latency(rtts: &[Duration], latency: Duration, jitter: Duration) {
    assert!(
        rtts.iter().all(|d| *d >= latency && *d < latency + jitter),
        "{rtts:?}"
    );
    // Mean of latency + U[0, jitter): sd of the mean over 100 ≈ 0.029·jitter; tolerance 0.1·jitter.
    let mean = rtts.iter().sum::<Duration>() / rtts.len() as u32;
    let expected = latency + jitter / 2;
    let diff = mean.abs_diff(expected);
    assert!(diff <= jitter / 10, "mean {mean:?}, expected {expected:?}");
}

#[tokio::test(start_paused = true)]
async fn latency_and_jitter_delay_each_direction() {
    let rig = Rig::new(|_| {}).await;
    let (latency, jitter) = (Duration::from_millis(200), Duration::from_millis(100));
    let knobs = PacketChaos {
        latency_ms: 200,
        jitter_ms: 100,
        ..Default::default()
    };
    rig.device()
        .set_chaos(to_bridge(knobs.clone()))
        .await
        .unwrap();
    check_latency(&round_trips(&rig, 100).await, latency, jitter);
    rig.device().set_chaos(from_bridge(knobs)).await.unwrap();
    check_latency(&round_trips(&rig, 100).await, latency, jitter);
    rig.finish().await;
}

// --------------------------------------------------------------------------- corruption

#[tokio::test(start_paused = true)]
async fn corrupt_checksums_fail_exactly_the_corrupted_frames_at_the_bridge() {
    // n ≥ 3,000 at 0.1: sd ≈ 0.0055; tolerance 0.02.
    let rig = Rig::new(reporting).await;
    rig.offer_to_bridge(
        PacketChaos {
            corrupt_checksum: 0.1,
            ..Default::default()
        },
        3000,
    )
    .await;
    let c = rig.device().chaos_to_bridge();
    assert_rate("corrupted", c.corrupt_checksum, c.offered, 0.1, 0.02);
    let framed = rig.noted(Direction::DeviceToServer, Note::CorruptChecksum, 0x83) as u64;
    assert!(framed > 0);
    assert_eq!(rig.server.totals().checksum_errors, framed);
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn corrupted_commands_get_a_receipt_and_are_not_applied() {
    let rig = Rig::new(|_| {}).await;
    let knobs = PacketChaos {
        corrupt_checksum: 0.2,
        ..Default::default()
    };
    rig.commands_under(knobs, 300).await;
    let broken = rig.noted(Direction::ServerToDevice, Note::CorruptChecksum, 0x73) as u64;
    assert_rate("corrupted", broken, 300, 0.2, 0.07);
    assert_eq!(rig.device().stats().frame_errors, broken);
    assert_eq!(rig.sim.applied(KEY), 300 - broken);
    assert_eq!(
        rig.received(0x7B),
        300,
        "every 0x73 gets a receipt, even a damaged one (docs/protocol.md#receipts)"
    );
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn corruption_with_fixed_checksum_passes_the_checksum_but_changes_content() {
    // n ≥ 3,000 at 0.1: sd ≈ 0.0055; tolerance 0.02.
    let rig = Rig::new(reporting).await;
    rig.offer_to_bridge(
        PacketChaos {
            corrupt_fixed: 0.1,
            ..Default::default()
        },
        3000,
    )
    .await;
    let c = rig.device().chaos_to_bridge();
    assert_rate("corrupted", c.corrupt_fixed, c.offered, 0.1, 0.02);
    assert!(rig.noted(Direction::DeviceToServer, Note::CorruptFixed, 0x83) > 0);
    let t = rig.server.totals();
    assert_eq!((t.frame_errors, t.junk_events), (0, 0), "{t:?}");
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn broken_headers_desynchronise_the_bridge_framer_and_the_device_carries_on() {
    // n ≥ 2,000 at 0.05: sd ≈ 0.005; tolerance 0.015.
    let rig = Rig::new(chatty).await;
    let knobs = PacketChaos {
        corrupt_header: 0.05,
        ..Default::default()
    };
    rig.chaos_until(to_bridge(knobs), |r| {
        r.device().chaos_to_bridge().offered >= 2000
    })
    .await;
    let c = rig.device().chaos_to_bridge();
    assert_rate("broken headers", c.corrupt_header, c.offered, 0.05, 0.015);
    assert!(rig.server.totals().junk_events > 0);
    // Without chaos the same connection still answers a command.
    rig.device().set_chaos(Chaos::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    rig.receipt_for_mesh_ack().await;
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn corruption_from_the_bridge_of_every_kind_is_counted_and_survived() {
    // 600 commands + acks, 0.1 each kind: sd ≈ 0.012; tolerance 0.04.
    let rig = Rig::new(|_| {}).await;
    let knobs = PacketChaos {
        corrupt_checksum: 0.1,
        corrupt_fixed: 0.1,
        corrupt_header: 0.1,
        ..Default::default()
    };
    rig.device().set_chaos(from_bridge(knobs)).await.unwrap();
    rig.commands(600).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let c = rig.device().chaos_from_bridge();
    assert_rate("checksum", c.corrupt_checksum, c.offered, 0.1, 0.04);
    assert_rate("fixed", c.corrupt_fixed, c.offered, 0.1, 0.04);
    assert_rate("header", c.corrupt_header, c.offered, 0.1, 0.04);
    let s = rig.device().stats();
    assert!(
        s.frame_errors > 0 && s.junk_events + s.decode_errors > 0,
        "{s:?}"
    );
    // Content changed under a valid checksum can still be a valid command (for another id,
    // or another state): some are applied, none twice, and the link survives.
    assert!(rig.sim.applied(KEY) < 600);
    rig.device().set_chaos(Chaos::default()).await.unwrap();
    rig.receipt_for_mesh_ack().await;
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn bogus_packets_are_injected_at_the_configured_rate() {
    // n ≥ 2,000 at 0.05: sd ≈ 0.005; tolerance 0.015.
    let rig = Rig::new(chatty).await;
    let knobs = PacketChaos {
        bogus: 0.05,
        ..Default::default()
    };
    let chaos = Chaos {
        to_bridge: knobs.clone(),
        from_bridge: knobs,
        ..Default::default()
    };
    rig.chaos_until(chaos, |r| r.device().chaos_to_bridge().offered >= 2000)
        .await;
    let (out, inb) = (
        rig.device().chaos_to_bridge(),
        rig.device().chaos_from_bridge(),
    );
    assert_rate("bogus out", out.bogus, out.offered, 0.05, 0.015);
    assert_rate("bogus in", inb.bogus, inb.offered, 0.05, 0.015);
    let t = rig.server.totals();
    assert!(t.junk_events + t.decode_errors > 0, "{t:?}");
    let s = rig.device().stats();
    assert!(s.junk_events + s.decode_errors + s.unexpected > 0, "{s:?}");
    rig.finish().await;
}

// -------------------------------------------------------------------------- determinism

#[tokio::test(start_paused = true)]
async fn the_same_seed_replays_the_same_chaos_byte_for_byte() {
    async fn run() -> Vec<bytes::Bytes> {
        let rig = Rig::new(reporting).await;
        rig.device()
            .set_chaos(to_bridge(PacketChaos {
                loss: 0.1,
                duplicate: 0.1,
                reorder: 0.05,
                reorder_window: 2,
                corrupt_checksum: 0.05,
                corrupt_fixed: 0.05,
                bogus: 0.02,
                ..Default::default()
            }))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(120)).await;
        rig.stop_device().await;
        let got = rig.server_packets().into_iter().map(|r| r.bytes).collect();
        rig.finish().await;
        got
    }
    let (first, second) = (run().await, run().await);
    assert!(first.len() > 1000, "{}", first.len());
    assert!(first == second, "two runs with one seed differ");
}
