//! Commands at a fixed rate, paired with the simulator's applied events: publish → applied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cync_bridge::sim::SimHandle;
use rumqttc::QoS;
use tokio::sync::broadcast;

use crate::clients::{ClientGuard, Commander};
use crate::devices::{state_topic, Device};
use crate::GRACE;

/// Commands published this phase to one device: when, wanting on or off; when the observer
/// heard each; when the device applied each, showing on or off.
#[derive(Default)]
pub struct Track {
    pub sent: Vec<(Instant, bool)>,
    pub heard: Vec<Instant>,
    pub applied: Vec<(Instant, bool)>,
}

/// What became of the commands of one phase.
#[derive(Default)]
pub struct Pending {
    pub devices: HashMap<u16, Track>,
    /// Applied with nothing waiting (a retry applied twice, or a stray command).
    pub unexpected: u64,
    pub lagged: u64,
}

impl Pending {
    pub fn outstanding(&self) -> usize {
        self.devices
            .values()
            .map(|t| t.sent.len().saturating_sub(t.applied.len()))
            .sum()
    }

    pub fn on_applied(&mut self, mesh: u16, on: bool, at: Instant) {
        match self.devices.get_mut(&mesh) {
            Some(t) if t.applied.len() < t.sent.len() => t.applied.push((at, on)),
            _ => self.unexpected += 1,
        }
    }

    pub fn on_heard(&mut self, mesh: u16, at: Instant) {
        if let Some(t) = self.devices.get_mut(&mesh) {
            t.heard.push(at);
        }
    }
}

pub type Shared = Arc<Mutex<Pending>>;

pub fn lock(p: &Shared) -> std::sync::MutexGuard<'_, Pending> {
    p.lock().expect("lock")
}

/// Pairs the simulator's applied events with the commands published; ends when dropped.
pub fn match_applied(sim: &SimHandle, pending: &Shared) -> ClientGuard {
    let mut events = sim.subscribe_applied();
    let shared = Arc::clone(pending);
    ClientGuard(tokio::spawn(async move {
        loop {
            let event = events.recv().await;
            let mut p = lock(&shared);
            match event {
                Ok(e) => p.on_applied(e.key.mesh_id, e.state.on, e.at),
                Err(broadcast::error::RecvError::Lagged(n)) => p.lagged += n,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }))
}

pub struct RateReport {
    pub sent: usize,
    pub elapsed: Duration,
    /// Publish → applied.
    pub latencies: Vec<Duration>,
    /// Publish → a second subscriber got it: the broker's share (and the clients').
    pub hops: Vec<Duration>,
    /// That subscriber got it → applied: the bridge's share (and the simulator's), as near as
    /// the outside can tell.
    pub after_broker: Vec<Duration>,
    pub lost: usize,
    pub mismatched: u64,
    pub unexpected: u64,
    pub lagged: u64,
}

/// Publishes `rate` commands/s round-robin over `devices` for `phase`, each one flipping its
/// device, then waits for the stragglers.
pub async fn drive(
    commander: &Commander,
    pending: &Shared,
    devices: &[Device],
    rate: u32,
    phase: Duration,
) -> RateReport {
    *lock(pending) = Pending::default();
    let mut on: HashMap<u16, bool> = HashMap::new();
    let period = Duration::from_secs(1) / rate;
    let count = (phase.as_secs_f64() * f64::from(rate)).round() as usize;
    let started = tokio::time::Instant::now();
    for i in 0..count {
        tokio::time::sleep_until(started + period * i as u32).await;
        let d = devices[i % devices.len()];
        let want = !on.get(&d.mesh).copied().unwrap_or(false);
        on.insert(d.mesh, want);
        let word = if want { "ON" } else { "OFF" };
        let payload = if d.is_light() {
            format!(r#"{{"state":"{word}"}}"#)
        } else {
            word.to_owned()
        };
        let topic = format!("{}/set", state_topic(d.mesh));
        let now = Instant::now();
        lock(pending)
            .devices
            .entry(d.mesh)
            .or_default()
            .sent
            .push((now, want));
        commander
            .client
            .publish(topic, QoS::AtMostOnce, false, payload)
            .await
            .expect("publish queued");
    }
    let elapsed = started.elapsed();
    let deadline = tokio::time::Instant::now() + GRACE;
    while lock(pending).outstanding() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let p = lock(pending);
    let mut report = RateReport {
        sent: count,
        elapsed,
        latencies: Vec::new(),
        hops: Vec::new(),
        after_broker: Vec::new(),
        lost: p.outstanding(),
        mismatched: 0,
        unexpected: p.unexpected,
        lagged: p.lagged,
    };
    for t in p.devices.values() {
        for (i, (sent, want)) in t.sent.iter().enumerate() {
            let heard = t.heard.get(i);
            if let Some(heard) = heard {
                report.hops.push(heard.saturating_duration_since(*sent));
            }
            let Some((applied, on)) = t.applied.get(i) else {
                continue;
            };
            if on != want {
                report.mismatched += 1;
                continue;
            }
            report
                .latencies
                .push(applied.saturating_duration_since(*sent));
            if let Some(heard) = heard {
                report
                    .after_broker
                    .push(applied.saturating_duration_since(*heard));
            }
        }
    }
    report.latencies.sort();
    report.hops.sort();
    report.after_broker.sort();
    report
}
