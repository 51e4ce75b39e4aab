//! What a simulated home *is*: its devices (mesh id, model, Wi-Fi identity), which Wi-Fi devices
//! relay for which mesh ids, and its Cync groups. A static description, built by hand with
//! [`HomeBuilder`] or generated from a seed with [`generate`].
//!
//! Why it exists: tests and the load generator need homes shaped like real ones (PROTOCOL.md
//! §9.4): one Bluetooth mesh per home, addressed by one-byte mesh ids; several Wi-Fi devices that
//! can each reach the same Bluetooth-only devices; groups whose commands change every member.
//!
//! Rules it enforces (`validate`): mesh ids 1..=250 except 125/126 (0x7D/0x7E would need
//! stuffing in every frame that names them, §5.3; real homes are not known to use them), at most
//! [`MAX_DEVICES_PER_HOME`] devices — bigger set-ups are several homes —, group ids at or above
//! [`FIRST_GROUP_ID`] (legacy examples use 0x8001+, §6.9: the real range is UNKNOWN), relays are
//! Wi-Fi devices, and every id a relay or group names exists.
//!
//! Must never: hold runtime state (that is `state.rs`), or produce a home the validator rejects.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::engine::stream_seed;
use super::profile::{ConnectProfile, ALL_PROFILES};
use crate::device::catalog::{self, DeviceClass};
use crate::protocol::{LightState, PeerId};

/// Highest mesh id a home may use (status records carry one byte; 250 leaves room as real homes).
pub const MAX_MESH_ID: u16 = 250;
/// Mesh ids 1..=250 minus 0x7D and 0x7E.
pub const MAX_DEVICES_PER_HOME: usize = 248;
/// First Cync group id the generator uses.
pub const FIRST_GROUP_ID: u16 = 0x8001;

/// True for a mesh id a simulated device may have.
pub fn is_valid_mesh_id(id: u16) -> bool {
    (1..=MAX_MESH_ID).contains(&id) && id != 0x7D && id != 0x7E
}

/// The Wi-Fi side of a device that holds its own TLS session with the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimWifi {
    /// Its own id (sent in the 0x23, used in every 0x43/0x83). May contain 0x7E, like real ids.
    pub device_id: PeerId,
    /// 16 lower-case hex characters, like the real ones (`1e07d…`). A secret on real devices.
    pub auth_code: String,
    /// Device firmware digits for the 0x83 firmware frame (`11158` = 1.1.158).
    pub firmware: String,
    /// Its connect sequence.
    pub profile: ConnectProfile,
    /// Mesh ids (other than its own) it relays for: they appear in its mesh-info response, and
    /// their state changes go out as its 0x43 relay records when they are Bluetooth-only.
    pub reach: Vec<u16>,
}

/// One device of the mesh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimDevice {
    /// Mesh id, see [`is_valid_mesh_id`].
    pub mesh_id: u16,
    /// Model type id from the catalog (PROTOCOL.md §8).
    pub type_id: u16,
    /// State at start-up.
    pub initial: LightState,
    /// `Some` for a device with its own Wi-Fi session, `None` for a Bluetooth-only device.
    pub wifi: Option<SimWifi>,
}

/// A Cync group: a command to its id changes every member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimGroup {
    /// Group id (≥ 0x8000).
    pub id: u16,
    /// Member mesh ids.
    pub members: Vec<u16>,
}

/// One home (one Bluetooth mesh).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimHome {
    /// A name for logs.
    pub name: String,
    /// Devices in mesh-id order.
    pub devices: Vec<SimDevice>,
    /// Groups.
    pub groups: Vec<SimGroup>,
}

/// Why a home description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HomeError {
    /// A mesh id outside 1..=250 or equal to 125/126.
    #[error("home {home:?}: mesh id {id} is not usable (1..=250, not 125 or 126)")]
    BadMeshId {
        /// Home name.
        home: String,
        /// The id.
        id: u16,
    },
    /// Two devices with the same mesh id.
    #[error("home {home:?}: mesh id {id} is used twice")]
    DuplicateMeshId {
        /// Home name.
        home: String,
        /// The id.
        id: u16,
    },
    /// More devices than a one-byte id space allows.
    #[error("home {home:?} has {count} devices; at most {MAX_DEVICES_PER_HOME} fit one mesh, use several homes")]
    TooManyDevices {
        /// Home name.
        home: String,
        /// Devices asked for.
        count: usize,
    },
    /// A relay, reach list or group names something that does not exist or cannot relay.
    #[error("home {home:?}: {what}")]
    BadReference {
        /// Home name.
        home: String,
        /// What is wrong.
        what: String,
    },
    /// Two Wi-Fi devices (in any home) share a device id.
    #[error("device id {id} is used by two Wi-Fi devices")]
    DuplicateDeviceId {
        /// The id.
        id: PeerId,
    },
    /// The generator was asked for something impossible.
    #[error("cannot generate homes: {0}")]
    Generate(String),
}

impl SimHome {
    /// The device with this mesh id.
    pub fn device(&self, mesh_id: u16) -> Option<&SimDevice> {
        self.devices.iter().find(|d| d.mesh_id == mesh_id)
    }

    /// The group with this id.
    pub fn group(&self, id: u16) -> Option<&SimGroup> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// Wi-Fi devices, in mesh-id order.
    pub fn wifi_devices(&self) -> impl Iterator<Item = (&SimDevice, &SimWifi)> {
        self.devices
            .iter()
            .filter_map(|d| d.wifi.as_ref().map(|w| (d, w)))
    }

    /// Checks the rules in the module docs.
    pub fn validate(&self) -> Result<(), HomeError> {
        let home = || self.name.clone();
        if self.devices.len() > MAX_DEVICES_PER_HOME {
            return Err(HomeError::TooManyDevices {
                home: home(),
                count: self.devices.len(),
            });
        }
        let mut seen = [false; 256];
        for d in &self.devices {
            if !is_valid_mesh_id(d.mesh_id) {
                return Err(HomeError::BadMeshId {
                    home: home(),
                    id: d.mesh_id,
                });
            }
            let slot = &mut seen[usize::from(d.mesh_id)];
            if *slot {
                return Err(HomeError::DuplicateMeshId {
                    home: home(),
                    id: d.mesh_id,
                });
            }
            *slot = true;
        }
        let bad = |what: String| HomeError::BadReference { home: home(), what };
        for (d, w) in self.wifi_devices() {
            for id in &w.reach {
                if *id == d.mesh_id || self.device(*id).is_none() {
                    return Err(bad(format!(
                        "relay {} lists mesh id {id}, which is itself or absent",
                        d.mesh_id
                    )));
                }
            }
        }
        for g in &self.groups {
            if g.id < 0x8000 {
                return Err(bad(format!("group id {:#06x} is below 0x8000", g.id)));
            }
            if let Some(m) = g.members.iter().find(|m| self.device(**m).is_none()) {
                return Err(bad(format!("group {:#06x} lists absent member {m}", g.id)));
            }
        }
        Ok(())
    }
}

/// Builds a home by hand, for tests that need exact ids. Device ids and auth codes come from
/// the seed; connect profiles default to [`ConnectProfile::Quiet`].
#[derive(Debug)]
pub struct HomeBuilder {
    home: SimHome,
    rng: StdRng,
}

impl HomeBuilder {
    /// An empty home; `seed` decides device ids and auth codes.
    pub fn new(name: impl Into<String>, seed: u64) -> Self {
        HomeBuilder {
            home: SimHome {
                name: name.into(),
                devices: Vec::new(),
                groups: Vec::new(),
            },
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A Wi-Fi device with the quiet connect profile.
    pub fn wifi(self, mesh_id: u16, type_id: u16) -> Self {
        self.wifi_with(mesh_id, type_id, ConnectProfile::Quiet)
    }

    /// A Wi-Fi device with a chosen connect profile.
    pub fn wifi_with(mut self, mesh_id: u16, type_id: u16, profile: ConnectProfile) -> Self {
        let wifi = wifi_identity(&mut self.rng, profile);
        self.home.devices.push(SimDevice {
            mesh_id,
            type_id,
            initial: default_state(type_id),
            wifi: Some(wifi),
        });
        self
    }

    /// A Bluetooth-only device (reachable only through relays).
    pub fn bluetooth(mut self, mesh_id: u16, type_id: u16) -> Self {
        self.home.devices.push(SimDevice {
            mesh_id,
            type_id,
            initial: default_state(type_id),
            wifi: None,
        });
        self
    }

    /// Makes the Wi-Fi device `relay` relay for `ids` (an absent relay is reported by `build`).
    pub fn relays(mut self, relay: u16, ids: &[u16]) -> Self {
        match self
            .home
            .devices
            .iter_mut()
            .find(|d| d.mesh_id == relay)
            .and_then(|d| d.wifi.as_mut())
        {
            Some(w) => w.reach.extend_from_slice(ids),
            None => self.home.groups.push(SimGroup {
                // Recorded as an impossible group so that `build` names the mistake.
                id: 0,
                members: vec![relay],
            }),
        }
        self
    }

    /// A Cync group.
    pub fn group(mut self, id: u16, members: &[u16]) -> Self {
        self.home.groups.push(SimGroup {
            id,
            members: members.to_vec(),
        });
        self
    }

    /// Sets a device's state at start-up.
    pub fn initial(mut self, mesh_id: u16, state: LightState) -> Self {
        if let Some(d) = self.home.devices.iter_mut().find(|d| d.mesh_id == mesh_id) {
            d.initial = state;
        }
        self
    }

    /// The home, validated.
    pub fn build(mut self) -> Result<SimHome, HomeError> {
        self.home.devices.sort_by_key(|d| d.mesh_id);
        self.home.validate()?;
        Ok(self.home)
    }
}

/// A fresh Wi-Fi identity: random device id, auth code like the real ones, firmware 1.1.158.
fn wifi_identity(rng: &mut StdRng, profile: ConnectProfile) -> SimWifi {
    let auth: String = (0..11)
        .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
        .collect();
    SimWifi {
        device_id: PeerId(rng.gen()),
        auth_code: format!("1e07d{auth}"),
        firmware: "11158".to_owned(),
        profile,
        reach: Vec::new(),
    }
}

/// Off, full brightness, mid white — what the builder gives unless told otherwise.
fn default_state(type_id: u16) -> LightState {
    super::state::normalize(
        type_id,
        LightState {
            on: false,
            brightness: 100,
            temperature: 50,
            rgb: [0, 0, 0],
        },
    )
}

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

/// Wi-Fi models cycled through, so every home has each class the issue names: full-colour and
/// tunable-white bulbs, a dimmer, a switch, a plug, a fan controller (PROTOCOL.md §8).
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
        // Fan speed presets (§6.8).
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

/// Device ids must be unique across every home of one simulator (they key sessions).
pub(crate) fn check_unique_device_ids(homes: &[SimHome]) -> Result<(), HomeError> {
    let mut ids: Vec<PeerId> = homes
        .iter()
        .flat_map(|h| h.wifi_devices().map(|(_, w)| w.device_id))
        .collect();
    ids.sort();
    match ids.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(HomeError::DuplicateDeviceId { id: w[0] }),
        None => Ok(()),
    }
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

    #[test]
    fn builder_names_bad_ids_and_references() {
        let err = HomeBuilder::new("h", 1).wifi(125, 137).build().unwrap_err();
        assert!(matches!(err, HomeError::BadMeshId { id: 125, .. }));
        let err = HomeBuilder::new("h", 1)
            .wifi(1, 137)
            .relays(1, &[9])
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("mesh id 9"), "{err}");
        let err = HomeBuilder::new("h", 1)
            .bluetooth(2, 21)
            .relays(2, &[2])
            .build()
            .unwrap_err();
        assert!(matches!(err, HomeError::BadReference { .. }), "{err}");
    }
}
