//! Link and firmware chaos knobs, end to end against the test server: partitions (blackhole,
//! reset, FIN) by rate and from the handle, a relay taken offline, the slow reader, receipts
//! delayed / dropped / sent alone, and reconnect storms — at their configured rates (fixed seed),
//! survived (no task panics, the link comes back).
//!
//! Tolerances are about three standard deviations of each sample (stated per test); time is
//! paused (virtual), sockets are real.

mod common;

use std::time::Duration;

use common::rig::*;
use cync_bridge::capture::Direction;
use cync_bridge::protocol::Packet;
use cync_bridge::sim::{Chaos, LinkChaos, LinkState, Note, Partition, ReceiptChaos};
use tokio::time::Instant;

// --------------------------------------------------------------------------- partitions

async fn partition_rig(kind: Partition, rate: f64) -> Rig {
    let rig = Rig::new(chatty).await;
    rig.device()
        .set_chaos(Chaos {
            link: LinkChaos {
                partition: rate,
                partition_kind: kind,
                blackhole_ms: 1000,
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
    rig
}

#[tokio::test(start_paused = true)]
async fn reset_partitions_cut_the_link_at_the_configured_rate_and_it_comes_back() {
    // n ≥ 2,000 packets at 0.01: sd ≈ 0.0022; tolerance 0.007.
    let rig = partition_rig(Partition::Reset, 0.01).await;
    rig.run_until(Duration::from_secs(7200), |r| {
        r.device().stats().packets_sent >= 2000
    })
    .await;
    rig.calm_down().await;
    let s = rig.device().stats();
    assert_rate("partitions", s.partitions, s.packets_sent, 0.01, 0.007);
    assert_eq!(s.connects, s.partitions + 1, "{s:?}");
    assert_eq!(rig.server.totals().connections, s.connects);
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn fin_partitions_close_the_connection_cleanly() {
    let rig = partition_rig(Partition::Fin, 0.05).await;
    rig.run_until(Duration::from_secs(3600), |r| {
        r.device().stats().partitions >= 10
    })
    .await;
    rig.calm_down().await;
    let conns = rig.server.connections();
    let closed = conns.iter().filter(|c| c.is_closed()).count() as u64;
    assert!(closed >= rig.device().stats().partitions, "{closed}");
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_blackhole_silences_the_link_without_closing_it() {
    let rig = partition_rig(Partition::Blackhole, 0.02).await;
    rig.run_until(Duration::from_secs(3600), |r| {
        r.device().stats().partitions >= 10
    })
    .await;
    rig.stop_device().await;
    let s = rig.device().stats();
    assert_eq!(rig.server.totals().connections, 1, "no reconnect");
    assert!(rig.noted(Direction::DeviceToServer, Note::Blackholed, 0) > 0);
    assert_eq!(rig.server_packets().len() as u64, s.packets_sent);
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn partitions_and_heal_from_the_handle() {
    let rig = Rig::new(chatty).await;
    let dev = rig.device();
    dev.partition(Partition::Blackhole).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let silent_from = rig.conn.packets().len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        rig.conn.packets().len(),
        silent_from,
        "blackholed: nothing arrives"
    );
    dev.heal().await.unwrap();
    assert!(
        rig.conn.wait_count(silent_from + 5, WAIT).await,
        "heartbeats again"
    );
    dev.partition(Partition::Reset).await.unwrap();
    assert!(rig.conn.wait_closed(WAIT).await);
    rig.server.connection(1, WAIT).await;
    dev.wait_link(LinkState::Ready, WAIT).await.unwrap();
    dev.set_offline(true).await.unwrap();
    dev.wait_link(LinkState::Offline, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        rig.server.totals().connections,
        2,
        "an offline relay stays away"
    );
    dev.set_offline(false).await.unwrap();
    dev.wait_link(LinkState::Ready, WAIT).await.unwrap();
    assert_eq!(rig.server.totals().connections, 3);
    rig.finish().await;
}

// -------------------------------------------------------------------------- slow reader

#[tokio::test(start_paused = true)]
async fn a_slow_reader_takes_bytes_over_rate_seconds_to_read_a_burst() {
    let rig = Rig::new(|_| {}).await;
    let rate = 2000u64;
    rig.device()
        .set_chaos(Chaos {
            link: LinkChaos {
                slow_read_bytes_per_sec: rate,
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let from = rig.conn.packets().len();
    let start = Instant::now();
    let msgs = rig.commands(200).await;
    let bytes = 200 * 36; // a power command is 36 bytes (docs/protocol.md#power)
    let last = *msgs.last().unwrap();
    let (_, r) = rig
        .conn
        .wait_for(
            from,
            WAIT,
            |p| matches!(p, Packet::Receipt { msg, .. } if *msg == last),
        )
        .await
        .unwrap();
    let took = (r.at - start).as_secs_f64();
    let expected = bytes as f64 / rate as f64;
    // Reads are chunks of rate/10 bytes, so the last one may end up to 0.1 s early or late.
    assert!(
        (took - expected).abs() <= 0.25,
        "took {took:.2} s, expected {expected:.2} s"
    );
    rig.finish().await;
}

// ------------------------------------------------------------------------------ receipts

#[tokio::test(start_paused = true)]
async fn receipts_are_delayed_dropped_or_sent_alone_at_their_rates() {
    // 1,000 commands: sd ≤ 0.013; tolerance 0.04.
    let rig = Rig::new(|_| {}).await;
    rig.device()
        .set_chaos(Chaos {
            receipts: ReceiptChaos {
                delay: 0.2,
                delay_ms: 500,
                drop: 0.1,
                receipt_only: 0.1,
            },
            ..Default::default()
        })
        .await
        .unwrap();
    let from = rig.conn.packets().len();
    rig.commands(1000).await;
    rig.run_until(WAIT, |r| r.device().stats().commands == 1000)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = rig.device().stats();
    assert_rate("delayed", s.receipts_delayed, 1000, 0.2, 0.04);
    assert_rate("dropped", s.receipts_dropped, 1000, 0.1, 0.04);
    assert_rate("receipt only", s.receipt_only, 1000, 0.1, 0.04);
    let got = &rig.conn.packets()[from..];
    let receipts = got.iter().filter(|r| r.kind() == 0x7B).count() as u64;
    let responses = got.iter().filter(|r| r.kind() == 0x73).count() as u64;
    assert_eq!(receipts, 1000 - s.receipts_dropped);
    assert_eq!(
        responses,
        1000 - s.receipt_only,
        "receipt-only commands get no response"
    );
    assert_eq!(rig.sim.applied(KEY), 1000 - s.receipt_only);
    // A delayed receipt arrives 500 ms after its response, alone.
    let delayed = got
        .iter()
        .enumerate()
        .filter(|(i, r)| r.kind() == 0x7B && (*i == 0 || got[i - 1].kind() != 0x73))
        .count() as u64;
    assert!(delayed >= s.receipts_delayed, "{delayed}");
    rig.finish().await;
}

// ------------------------------------------------------------------------ reconnect storm

#[tokio::test(start_paused = true)]
async fn reconnect_storms_drop_connections_right_after_the_hello() {
    // ≥ 300 connections at 0.5: sd ≈ 0.029; tolerance 0.09.
    let rig = Rig::new(|_| {}).await;
    rig.device()
        .set_chaos(Chaos {
            link: LinkChaos {
                reconnect_storm: 0.5,
                storm_gap_ms: 34,
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
    let dev = rig.device();
    while dev.stats().connects < 300 {
        dev.wait_link(LinkState::Ready, WAIT).await.unwrap();
        dev.partition(Partition::Reset).await.unwrap();
        dev.wait_link(LinkState::Connecting, WAIT).await.unwrap();
    }
    dev.wait_link(LinkState::Ready, WAIT).await.unwrap();
    let s = dev.stats();
    // The first connection predates the chaos; count the ones after it.
    assert_rate("storms", s.storms, s.connects - 1, 0.5, 0.09);
    // Every connection either stormed (dropped right after its hello) or was accepted.
    assert_eq!(s.connects, s.storms + s.hello_acks, "{s:?}");
    assert_eq!(rig.server.totals().connections, s.connects);
    rig.finish().await;
}
