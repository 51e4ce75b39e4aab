//! Wall switch → MQTT state: a device flipped in the simulator until the state message shows it.

use std::time::{Duration, Instant};

use cync_bridge::protocol::LightState;
use cync_bridge::sim::SimHandle;
use tokio::sync::mpsc;

use crate::clients::Seen;
use crate::devices::{key, state_topic, Device};

pub struct WallReport {
    pub latencies: Vec<Duration>,
    pub missed: usize,
}

/// One device at a time: flip it at the wall, wait for the state message showing it.
pub async fn wall_changes(
    sim: &SimHandle,
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    devices: &[Device],
    samples: usize,
) -> WallReport {
    let mut latencies = Vec::new();
    let mut missed = 0;
    for i in 0..samples {
        // A stride coprime with 100 visits relays and Bluetooth devices alike.
        let d = devices[(i * 37) % devices.len()];
        let current = sim.state(key(d.mesh)).expect("device");
        let wanted = LightState {
            on: !current.on,
            brightness: 20 + (i % 80) as u8,
            ..current
        };
        let topic = state_topic(d.mesh);
        let at = Instant::now();
        sim.wall_change(key(d.mesh), wanted).expect("wall change");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let arrived = loop {
            match tokio::time::timeout_at(deadline, seen.recv()).await {
                Ok(Some((t, payload, when))) => {
                    if t == topic && payload_on(&payload) == Some(wanted.on) {
                        break Some(when);
                    }
                }
                Ok(None) | Err(_) => break None,
            }
        };
        match arrived {
            Some(when) => latencies.push(when.saturating_duration_since(at)),
            None => missed += 1,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    latencies.sort();
    WallReport { latencies, missed }
}

/// The on/off a state payload shows (`{"state":"ON",…}`).
pub fn payload_on(payload: &[u8]) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    match v.get("state")?.as_str()? {
        "ON" => Some(true),
        "OFF" => Some(false),
        _ => None,
    }
}
