//! Homes generated from a seed, for load and chaos runs that need many homes shaped like
//! real ones (the `[generate]` table of a scenario file, `sim --wifi-devices`).
//!
//! Apart from `home` because it is a policy — which models, how many relays reach each
//! Bluetooth-only device, how groups are drawn — on top of the description `home` defines
//! and validates; every home it returns has passed that validation. The same parameters and
//! seed give the same homes, device ids included.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::engine::stream_seed;
use super::home::{
    check_unique_device_ids, is_valid_mesh_id, wifi_identity, HomeError, SimDevice, SimGroup,
    SimHome, FIRST_GROUP_ID, MAX_DEVICES_PER_HOME, MAX_MESH_ID,
};
use super::profile::ALL_PROFILES;
use crate::device::catalog::{self, DeviceClass};
use crate::protocol::LightState;

/// What [`generate`] builds (the `[generate]` table of a scenario file).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateParams {
    /// Wi-Fi devices in total, spread evenly over the homes.
    pub wifi_devices: usize,
    /// Bluetooth-only devices per Wi-Fi device (each is relayed by that device).
    pub mesh_per_device: usize,
    /// Homes; `None` = as few as fit ([`MAX_DEVICES_PER_HOME`] devices each).
    pub homes: Option<usize>,
    /// Cync groups per home.
    pub groups_per_home: usize,
    /// How many Wi-Fi devices relay each Bluetooth-only device (1 = only its own relay).
    pub reach_redundancy: usize,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            wifi_devices: 1,
            mesh_per_device: 0,
            homes: None,
            groups_per_home: 1,
            reach_redundancy: 2,
        }
    }
}

/// Wi-Fi models cycled through, so every home has each device class the bridge maps to its own
/// Home Assistant entity: full-colour and tunable-white bulbs, a dimmer, a switch, a plug, a fan
/// controller (docs/protocol.md, "Device models"; `device::catalog` holds the table).
const WIFI_TYPES: [u16; 8] = [137, 129, 55, 39, 68, 81, 146, 135];
/// Bluetooth-only models: full-colour and tunable-white bulbs, the wire-free dimmer.
const BT_TYPES: [u16; 5] = [21, 26, 22, 5, 113];

/// Generates homes from a seed. The same seed and parameters always give the same homes.
pub fn generate(params: &GenerateParams, seed: u64) -> Result<Vec<SimHome>, HomeError> {
    let per_wifi = 1 + params.mesh_per_device;
    // Homes hold whole Wi-Fi devices with their Bluetooth-only devices, so the minimum count is
    // by Wi-Fi devices per home, not by total devices (1,000 × 11 needs 46 homes of ≤ 22, not 45).
    let wifi_per_home = (MAX_DEVICES_PER_HOME / per_wifi).max(1);
    let min_homes = params.wifi_devices.div_ceil(wifi_per_home).max(1);
    let homes = params.homes.unwrap_or(min_homes).max(1);
    if params.wifi_devices < homes {
        return Err(HomeError::Generate(format!(
            "{homes} homes need at least {homes} Wi-Fi devices, got {}",
            params.wifi_devices
        )));
    }
    let mut rng = StdRng::seed_from_u64(stream_seed(seed, u64::MAX, 1));
    let mut out = Vec::with_capacity(homes);
    for h in 0..homes {
        let wifi = params.wifi_devices / homes + usize::from(h < params.wifi_devices % homes);
        if wifi * per_wifi > MAX_DEVICES_PER_HOME {
            return Err(HomeError::TooManyDevices {
                home: format!("home-{h}"),
                count: wifi * per_wifi,
            });
        }
        out.push(generate_home(h, wifi, params, &mut rng));
    }
    check_unique_device_ids(&out)?;
    for home in &out {
        home.validate()?;
    }
    Ok(out)
}

fn generate_home(h: usize, wifi: usize, params: &GenerateParams, rng: &mut StdRng) -> SimHome {
    let mut ids = (1..=MAX_MESH_ID).filter(|id| is_valid_mesh_id(*id));
    let mut devices = Vec::new();
    let mut relay_ids = Vec::new();
    for w in 0..wifi {
        let (Some(mesh_id), type_id) = (ids.next(), WIFI_TYPES[(h + w) % WIFI_TYPES.len()]) else {
            break;
        };
        let profile = ALL_PROFILES[rng.gen_range(0..ALL_PROFILES.len())];
        let mut identity = wifi_identity(rng, profile);
        identity.firmware = format!("1{}{:03}", rng.gen_range(0..2), rng.gen_range(0..400));
        relay_ids.push(mesh_id);
        devices.push(SimDevice {
            mesh_id,
            type_id,
            initial: random_state(type_id, rng),
            wifi: Some(identity),
        });
    }
    let mut bt_by_relay: Vec<Vec<u16>> = vec![Vec::new(); relay_ids.len()];
    for (r, list) in bt_by_relay.iter_mut().enumerate() {
        for k in 0..params.mesh_per_device {
            let Some(mesh_id) = ids.next() else { break };
            let type_id = BT_TYPES[(r + k) % BT_TYPES.len()];
            list.push(mesh_id);
            devices.push(SimDevice {
                mesh_id,
                type_id,
                initial: random_state(type_id, rng),
                wifi: None,
            });
        }
    }
    assign_reach(
        &mut devices,
        &relay_ids,
        &bt_by_relay,
        params.reach_redundancy,
    );
    let groups = random_groups(&devices, params.groups_per_home, rng);
    devices.sort_by_key(|d| d.mesh_id);
    SimHome {
        name: format!("home-{h}"),
        devices,
        groups,
    }
}

/// Each Bluetooth-only device is relayed by its own Wi-Fi device and by the next
/// `redundancy - 1` ones (wrapping), so several bridges reach the same mesh ids.
fn assign_reach(devices: &mut [SimDevice], relays: &[u16], bt: &[Vec<u16>], redundancy: usize) {
    let n = relays.len();
    for (r, list) in bt.iter().enumerate() {
        for extra in 0..redundancy.clamp(1, n.max(1)) {
            let relay = relays[(r + extra) % n];
            if let Some(w) = devices
                .iter_mut()
                .find(|d| d.mesh_id == relay)
                .and_then(|d| d.wifi.as_mut())
            {
                w.reach.extend_from_slice(list);
            }
        }
    }
}

/// Groups of up to 16 devices, each device joining a group with probability 0.3 (at least one
/// member per group).
fn random_groups(devices: &[SimDevice], count: usize, rng: &mut StdRng) -> Vec<SimGroup> {
    let all: Vec<u16> = devices.iter().map(|d| d.mesh_id).collect();
    (0..count)
        .map(|g| {
            let mut members: Vec<u16> = all
                .iter()
                .copied()
                .filter(|_| rng.gen_bool(0.3))
                .take(16)
                .collect();
            if members.is_empty() {
                members.extend(all.first());
            }
            SimGroup {
                id: FIRST_GROUP_ID + g as u16,
                members,
            }
        })
        .collect()
}

fn random_state(type_id: u16, rng: &mut StdRng) -> LightState {
    let model = catalog::lookup(type_id);
    let rgb_mode = model.caps.rgb && rng.gen_bool(0.2);
    let state = LightState {
        on: rng.gen_bool(0.5),
        brightness: rng.gen_range(1..=100),
        temperature: if rgb_mode {
            crate::protocol::content::TEMP_RGB_MODE
        } else {
            rng.gen_range(0..=100)
        },
        rgb: if rgb_mode { rng.gen() } else { [0, 0, 0] },
    };
    if model.class == DeviceClass::Fan {
        // Fan speed presets (docs/protocol.md#fan-speed).
        return super::state::normalize(
            type_id,
            LightState {
                brightness: [25, 50, 75, 100][rng.gen_range(0..4)],
                ..state
            },
        );
    }
    super::state::normalize(type_id, state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_homes_respect_the_mesh_rules_and_are_reproducible() {
        let params = GenerateParams {
            wifi_devices: 30,
            mesh_per_device: 10,
            homes: None,
            groups_per_home: 2,
            reach_redundancy: 2,
        };
        let homes = generate(&params, 9).unwrap();
        assert_eq!(homes.len(), 2, "330 devices need two homes of at most 248");
        assert_eq!(homes, generate(&params, 9).unwrap());
        assert_ne!(homes, generate(&params, 10).unwrap());
        let wifi: usize = homes.iter().map(|h| h.wifi_devices().count()).sum();
        assert_eq!(wifi, 30);
        for home in &homes {
            assert!(home.devices.iter().all(|d| is_valid_mesh_id(d.mesh_id)));
            // Every Bluetooth-only device is reachable by two relays.
            for d in home.devices.iter().filter(|d| d.wifi.is_none()) {
                let relays = home
                    .wifi_devices()
                    .filter(|(_, w)| w.reach.contains(&d.mesh_id))
                    .count();
                assert_eq!(relays, 2, "mesh id {}", d.mesh_id);
            }
            let classes: Vec<DeviceClass> = home
                .wifi_devices()
                .map(|(d, _)| catalog::lookup(d.type_id).class)
                .collect();
            for class in [
                DeviceClass::Light,
                DeviceClass::Dimmer,
                DeviceClass::Switch,
                DeviceClass::Plug,
                DeviceClass::Fan,
            ] {
                assert!(classes.contains(&class), "{class:?} missing");
            }
        }
    }

    #[test]
    fn generated_types_match_their_wifi_flag_in_the_catalog() {
        for t in WIFI_TYPES {
            assert!(catalog::lookup(t).wifi, "{t}");
        }
        for t in BT_TYPES {
            assert!(!catalog::lookup(t).wifi, "{t}");
        }
    }

    #[test]
    fn the_default_home_count_fits_every_home_even_when_the_split_is_uneven() {
        let params = GenerateParams {
            wifi_devices: 1000,
            mesh_per_device: 10,
            groups_per_home: 0,
            ..Default::default()
        };
        let homes = generate(&params, 3).unwrap();
        assert_eq!(homes.len(), 46);
        assert!(homes
            .iter()
            .all(|h| h.devices.len() <= MAX_DEVICES_PER_HOME));
        let total: usize = homes.iter().map(|h| h.devices.len()).sum();
        assert_eq!(total, 11_000);
    }

    #[test]
    fn a_home_too_big_for_one_mesh_is_refused() {
        let params = GenerateParams {
            wifi_devices: 30,
            mesh_per_device: 10,
            homes: Some(1),
            ..Default::default()
        };
        assert!(matches!(
            generate(&params, 1),
            Err(HomeError::TooManyDevices { .. })
        ));
    }
}
