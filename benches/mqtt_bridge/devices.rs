//! The simulated home: 10 Wi-Fi relays (colour bulbs and plugs), each relaying for 9 Bluetooth
//! bulbs, and the topics of its devices.

use std::net::SocketAddr;
use std::time::Duration;

use cync_bridge::sim::{HomeBuilder, SimConfig, SimDeviceKey, SimHandle, Simulator};

use crate::{COLOR_BULB, HOME_ID, MESH_PER_RELAY, PLUG, RELAYS, TUNABLE_BT};

#[derive(Clone, Copy)]
pub struct Device {
    pub mesh: u16,
    pub type_id: u16,
    pub relay: Option<u16>,
}

impl Device {
    pub fn is_light(&self) -> bool {
        self.type_id != PLUG
    }
}

/// Relays 1..=10 (odd: colour bulbs, even: plugs), each relaying for 9 Bluetooth bulbs
/// (11..=100).
pub fn device_list() -> Vec<Device> {
    let mut devices = Vec::new();
    for r in 1..=RELAYS {
        let type_id = if r % 2 == 1 { COLOR_BULB } else { PLUG };
        devices.push(Device {
            mesh: r,
            type_id,
            relay: None,
        });
        for j in 1..=MESH_PER_RELAY {
            devices.push(Device {
                mesh: RELAYS + (r - 1) * MESH_PER_RELAY + j,
                type_id: TUNABLE_BT,
                relay: Some(r),
            });
        }
    }
    devices
}

pub async fn start_sim(devices: &[Device], bridge: SocketAddr) -> SimHandle {
    let mut b = HomeBuilder::new("bench", 11);
    for d in devices {
        b = match d.relay {
            None => b.wifi(d.mesh, d.type_id),
            Some(_) => b.bluetooth(d.mesh, d.type_id),
        };
    }
    for r in 1..=RELAYS {
        let reach: Vec<u16> = devices
            .iter()
            .filter(|d| d.relay == Some(r))
            .map(|d| d.mesh)
            .collect();
        b = b.relays(r, &reach);
    }
    let mut config = SimConfig::new(42, vec![b.build().expect("home")]);
    // Normal device behaviour (state report 0.5 s after each command); no packet log needed.
    config.behaviour.log_capacity = 0;
    let sim = Simulator::start(config, bridge).await.expect("sim");
    sim.wait_ready(Duration::from_secs(30))
        .await
        .expect("every relay connected");
    sim
}

pub fn key(mesh: u16) -> SimDeviceKey {
    SimDeviceKey {
        home: 0,
        mesh_id: mesh,
    }
}

/// The mesh id of `cync/<home>-<mesh>/set`.
pub fn command_mesh(topic: &str) -> Option<u16> {
    let entity = topic.strip_prefix("cync/")?.strip_suffix("/set")?;
    entity.strip_prefix(&format!("{HOME_ID}-"))?.parse().ok()
}

pub fn state_topic(mesh: u16) -> String {
    format!("cync/{HOME_ID}-{mesh}")
}
