//! The reliable transport's acceptance checks: the REAL bridge (listener, sessions, routes, state
//! store, transports) driven against the REAL simulator on loopback, fixed seeds.
//!
//! Time is real (sockets and TLS are real), so nothing asserts on how long a step took except
//! where the check is about time (deadlines, "a repeat only after a timeout"). Attempts use a
//! 400 ms `attempt_timeout` instead of the default 1.5 s: the simulator answers in well under a
//! millisecond on loopback, so the behaviour (retry on silence, failover) is the same and the
//! file runs in seconds instead of minutes.

mod chaos_world;
mod server_world;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cync_bridge::sim::{Chaos, PacketChaos, Partition};
use cync_bridge::transport::reliable::Policy;
use cync_bridge::transport::service::ReliableTransport;
use cync_bridge::transport::{CommandOutcome, LegacyTransport};
use server_world::Bridge;
use tokio_util::sync::CancellationToken;

use chaos_world::{
    assert_repeats_only_after_timeout, closed_loop, family_sum, home, power, reliable, sim_key,
    world, Path, ATTEMPT, READY,
};

// ------------------------------------------------------------------------------- no chaos

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_chaos_a_thousand_commands_to_a_hundred_devices_all_succeed() {
    let w = world(1, home(10, 10, false), Chaos::default(), 1).await;
    assert_eq!(w.meshes.len(), 100);
    let t = Arc::new(Path::Reliable(reliable(&w.bridge, ATTEMPT)));
    let tally = closed_loop(t, &w.meshes, 10, Duration::from_secs(10)).await;
    eprintln!("no chaos: {tally:?}");
    assert_eq!(tally.sent, 1000);
    assert_eq!(tally.success, 1000, "{tally:?}");
    let repeats = assert_repeats_only_after_timeout(&w.sim, ATTEMPT);
    assert_eq!(repeats, 0, "nothing lost, nothing resent");
    assert_eq!(w.sim.panics(), 0);
}

// ------------------------------------------------------------------------------- 10 % loss

fn lossy() -> Chaos {
    let loss = PacketChaos {
        loss: 0.10,
        loss_burst: 1,
        ..Default::default()
    };
    Chaos {
        to_bridge: loss.clone(),
        from_bridge: loss,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_loss_reliable_succeeds_where_legacy_does_not() {
    let w = world(2, home(10, 10, false), lossy(), 1).await;
    let timeout = Duration::from_secs(10);
    let t = Arc::new(Path::Reliable(reliable(&w.bridge, ATTEMPT)));
    let rel = closed_loop(t, &w.meshes, 20, timeout).await;
    let repeats = assert_repeats_only_after_timeout(&w.sim, ATTEMPT);
    eprintln!(
        "10% loss both ways: reliable {:.2}% success over {} ({:?}), {repeats} retries",
        rel.rate() * 100.0,
        rel.sent,
        rel.by_outcome
    );
    assert!(rel.sent >= 2000);
    assert!(rel.rate() >= 0.999, "{rel:?}");

    // Legacy on the same scenario (a fresh world with the same seed), with a 2 s wait per
    // command: plenty for an answer that comes in milliseconds when it comes at all.
    drop(w);
    let w = world(2, home(10, 10, false), lossy(), 1).await;
    let legacy = Arc::new(Path::Legacy(LegacyTransport::new(&w.bridge.services)));
    let leg = closed_loop(legacy, &w.meshes, 20, Duration::from_secs(2)).await;
    eprintln!(
        "10% loss both ways: legacy {:.2}% success over {} ({:?})",
        leg.rate() * 100.0,
        leg.sent,
        leg.by_outcome
    );
    assert_eq!(
        assert_repeats_only_after_timeout(&w.sim, ATTEMPT),
        0,
        "legacy never resends"
    );
    assert!(
        leg.rate() < rel.rate(),
        "legacy {leg:?} vs reliable {rel:?}"
    );
}

// ------------------------------------------------------------ duplication and reordering

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_reordered_device_traffic_never_reaches_the_store_twice() {
    dup_and_reorder().await;
}

async fn dup_and_reorder() {
    let chaos = Chaos {
        to_bridge: PacketChaos {
            duplicate: 0.05,
            reorder: 0.05,
            reorder_window: 3,
            ..Default::default()
        },
        ..Default::default()
    };
    let w = world(3, home(10, 10, false), chaos, 1).await;
    let mut changes = w.bridge.state().subscribe();
    let collector = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            match changes.recv().await {
                Ok(c) => seen.push(c),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    panic!("state subscriber lagged by {n}")
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return seen,
            }
        }
    });
    let t = Arc::new(Path::Reliable(reliable(&w.bridge, ATTEMPT)));
    let tally = closed_loop(t, &w.meshes, 10, Duration::from_secs(10)).await;
    // Held-back packets are released within REORDER_MAX_HOLD; reports follow 0.5 s after.
    tokio::time::sleep(cync_bridge::sim::chaos::REORDER_MAX_HOLD + Duration::from_secs(1)).await;
    let repeats = assert_repeats_only_after_timeout(&w.sim, ATTEMPT);
    let dropped = family_sum(&w.bridge, "tcp_comm_idempotent_drop_total");
    eprintln!(
        "dup+reorder: {tally:?}, {repeats} retries, {dropped} retransmits dropped, sim {:?}",
        w.sim
            .sessions()
            .iter()
            .map(|s| s.chaos_to_bridge())
            .fold((0u64, 0u64), |(d, r), c| (
                d + c.duplicated,
                r + c.reordered
            ))
    );
    assert_eq!(tally.success, tally.sent, "{tally:?}");
    assert!(
        dropped > 0.0,
        "duplicated 0x83s reached the bridge and were dropped as retransmits"
    );

    let sim = w.sim;
    let bridge = w.bridge;
    let store = bridge.state().clone();
    bridge.shutdown.cancel();
    bridge.tracker.close();
    bridge.tracker.wait().await;
    drop(bridge);
    drop(store);
    let seen = collector.await.expect("no panic");
    let mut last: HashMap<_, cync_bridge::device::DeviceState> = HashMap::new();
    for c in &seen {
        assert_ne!(
            c.previous,
            Some(c.current),
            "a change that changes nothing: {c:?}"
        );
        if let Some(prev) = last.get(&c.key) {
            assert_ne!(*prev, c.current, "the same change published twice: {c:?}");
        }
        last.insert(c.key, c.current);
    }
    sim.shutdown().await;
}

// ------------------------------------------------------------------------------ partition

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_relay_is_failed_over_within_the_deadline() {
    // Relays 1 and 2 both reach every Bluetooth device (100..=117).
    let w = world(4, home(2, 10, true), Chaos::default(), 2).await;
    let bluetooth: Vec<u16> = w.meshes.iter().copied().filter(|m| *m >= 100).collect();
    assert_eq!(bluetooth.len(), 18);
    let deadline = Duration::from_secs(10);
    let t = Arc::new(Path::Reliable(reliable(&w.bridge, ATTEMPT)));
    // Blackhole the relay the bridge prefers for these devices, so every command first goes
    // into the void and has to fail over.
    let preferred = w.bridge.routes().candidates(&Bridge::key(bluetooth[0]))[0].device();
    let (cut, other) = if w.sim.session(sim_key(1)).unwrap().device_id() == preferred {
        (1, 2)
    } else {
        (2, 1)
    };
    let bluetooth: Vec<u16> = bluetooth
        .into_iter()
        .filter(|m| w.bridge.routes().candidates(&Bridge::key(*m))[0].device() == preferred)
        .collect();
    assert!(!bluetooth.is_empty());
    w.sim
        .session(sim_key(cut))
        .unwrap()
        .partition(Partition::Blackhole)
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    let n = bluetooth.len();
    for mesh in bluetooth {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let cancel = CancellationToken::new();
            let mut out = Vec::new();
            let mut on = true;
            while started.elapsed() < Duration::from_secs(5) {
                out.push(t.execute(power(mesh, on, deadline), &cancel).await);
                on = !on;
            }
            out
        }));
    }
    let mut reports = Vec::new();
    for task in tasks {
        reports.extend(task.await.expect("no panic"));
    }
    w.sim.session(sim_key(cut)).unwrap().heal().await.unwrap();
    let via_2 = reports
        .iter()
        .filter(|r| r.via == w.sim.session(sim_key(other)).map(|s| s.device_id()))
        .count();
    let worst = reports.iter().map(|r| r.latency).max().unwrap();
    let failovers = reports.iter().filter(|r| r.latency >= ATTEMPT).count();
    eprintln!(
        "partition: {} commands to {} devices during a 5 s blackhole of their preferred relay {cut}, \
         {via_2} via relay {other}, worst latency {worst:?}, {failovers} failed over",
        reports.len(),
        n
    );
    for r in &reports {
        assert_eq!(r.outcome, CommandOutcome::Success, "{r:?}");
        assert!(r.latency <= deadline, "{r:?}");
    }
    assert!(via_2 > 0);
    assert!(
        failovers > 0,
        "the first commands waited out an attempt on the dead relay"
    );
    assert_repeats_only_after_timeout(&w.sim, ATTEMPT);
}

// ---------------------------------------------------------------------------------- burst

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ten_times_the_queue_capacity_is_bounded_counted_and_survived() {
    // One relay and ten Bluetooth devices behind it.
    let w = world(5, home(1, 11, false), Chaos::default(), 1).await;
    let mut policy = Policy::reliable();
    policy.attempt_timeout = ATTEMPT;
    // Coalescing would fold a burst of power commands into one; off, so the per-device queue
    // itself is what gets overrun.
    policy.coalesce = false;
    let capacity = policy.queue_capacity;
    let t = Arc::new(ReliableTransport::spawn(
        &w.bridge.services,
        policy,
        &w.bridge.tracker,
        w.bridge.shutdown.clone(),
    ));
    let submitters = capacity * 10;
    let rss_before = rss_bytes();
    let rss_peak = Arc::new(AtomicU64::new(rss_before));
    // The issue asks for 30 s; 4 s of the same pressure keeps CI time reasonable and already
    // cycles the queues thousands of times.
    let burst = Duration::from_secs(4);
    let started = tokio::time::Instant::now();
    let tally = Arc::new(BurstTally::default());
    let tasks = spawn_submitters(&t, &w.meshes, submitters, (started, burst), &tally);
    let sampler = spawn_rss_sampler(&rss_peak, started, burst);
    let outstanding = tasks.len();
    for task in tasks {
        task.await.expect("no panic");
    }
    sampler.await.unwrap();
    let full = family_sum(&w.bridge, "tcp_comm_queue_full_total");
    let grew = rss_peak.load(Ordering::Relaxed).saturating_sub(rss_before);
    eprintln!(
        "burst: {outstanding} submitters ({submitters} per device, queue {capacity}) for {burst:?}: \
         {} success, {} cancelled (overflow), {} other; queue_full_total {full}; RSS +{} KiB",
        tally.ok.load(Ordering::Relaxed),
        tally.cancelled.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed),
        grew / 1024
    );
    assert!(full > 0.0, "overflow is counted");
    assert!(tally.cancelled.load(Ordering::Relaxed) > 0);
    assert!(grew < 256 * 1024 * 1024, "RSS grew by {grew} bytes");
    // Normal service resumes.
    for &mesh in w.meshes.iter().filter(|m| **m >= 100) {
        let r = t
            .execute(
                power(mesh, true, Duration::from_secs(10)),
                &CancellationToken::new(),
            )
            .await;
        assert_eq!(r.outcome, CommandOutcome::Success, "{r:?}");
    }
    assert_eq!(w.sim.panics(), 0);
}

/// What the burst's submitters got back.
#[derive(Default)]
struct BurstTally {
    ok: AtomicU64,
    /// Refused at once: the queue was full.
    cancelled: AtomicU64,
    other: AtomicU64,
}

/// `submitters` tasks per Bluetooth device (mesh id 100 and up), each flipping its device as
/// fast as it is answered until the burst (`started`, length) is over.
fn spawn_submitters(
    t: &Arc<ReliableTransport>,
    meshes: &[u16],
    submitters: usize,
    (started, burst): (tokio::time::Instant, Duration),
    tally: &Arc<BurstTally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for &mesh in meshes.iter().filter(|m| **m >= 100) {
        for i in 0..submitters {
            let (t, tally) = (Arc::clone(t), Arc::clone(tally));
            tasks.push(tokio::spawn(async move {
                let cancel = CancellationToken::new();
                let mut on = i % 2 == 0;
                while started.elapsed() < burst {
                    let r = t
                        .execute(power(mesh, on, Duration::from_secs(10)), &cancel)
                        .await;
                    on = !on;
                    match r.outcome {
                        CommandOutcome::Success => tally.ok.fetch_add(1, Ordering::Relaxed),
                        CommandOutcome::Cancelled => {
                            // Refused at once: back off a little instead of spinning.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            tally.cancelled.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => tally.other.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
    }
    tasks
}

/// Keeps the process's peak RSS in `peak` until the burst is over.
fn spawn_rss_sampler(
    peak: &Arc<AtomicU64>,
    started: tokio::time::Instant,
    burst: Duration,
) -> tokio::task::JoinHandle<()> {
    let peak = Arc::clone(peak);
    tokio::spawn(async move {
        while started.elapsed() < burst {
            peak.fetch_max(rss_bytes(), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

// ----------------------------------------------------------------------------- corruption

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_percent_corruption_is_counted_and_never_corrupts_state() {
    let chaos = Chaos {
        to_bridge: PacketChaos {
            corrupt_checksum: 0.005,
            corrupt_header: 0.005,
            ..Default::default()
        },
        ..Default::default()
    };
    let w = world(6, home(10, 10, false), chaos, 1).await;
    let t = Arc::new(Path::Reliable(reliable(&w.bridge, ATTEMPT)));
    let tally = closed_loop(t, &w.meshes, 10, Duration::from_secs(10)).await;
    w.sim.set_chaos_all(Chaos::default()).await.unwrap();
    let errors = family_sum(&w.bridge, "tcp_comm_decode_errors_total");
    eprintln!(
        "1% corruption: {tally:?}, {errors} decode errors, sim {:?}",
        w.sim.totals()
    );
    assert!(errors > 0.0, "decode errors are counted");
    // A quiet period: reports in flight land (they follow a command by 0.5 s), links that were
    // reset come back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.sim.wait_ready(READY).await.unwrap();
    let snapshot = w.bridge.state().snapshot();
    assert!(!snapshot.is_empty());
    for (key, state) in snapshot {
        assert_eq!(
            Some(state.light),
            w.sim.state(sim_key(key.mesh.0)),
            "device {key:?}"
        );
    }
}
