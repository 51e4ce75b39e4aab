//! What a simulated home *is*: its devices (mesh id, model, Wi-Fi identity), which Wi-Fi devices
//! relay for which mesh ids, and its Cync groups. A static description, built by hand with
//! [`HomeBuilder`] or generated from a seed with [`generate`] (the generator lives in its own
//! module; its names are re-exported here).
//!
//! Why it exists: tests and the load generator need homes shaped like real ones
//! (`docs/protocol.md#mesh-and-relays`): one Bluetooth mesh per home, addressed by one-byte mesh
//! ids; several Wi-Fi devices that can each reach the same Bluetooth-only devices; groups whose
//! commands change every member.
//!
//! Rules it enforces (`validate`): mesh ids 1..=250 except 125/126 (0x7D/0x7E would need stuffing
//! in every frame that names them, `docs/protocol.md#escaping`; real homes are not known to use
//! them), at most [`MAX_DEVICES_PER_HOME`] devices — bigger set-ups are several homes —, group ids
//! at or above [`FIRST_GROUP_ID`] (legacy examples use 0x8001+; `docs/protocol.md#groups`: the real
//! range is UNKNOWN), relays are Wi-Fi devices, and every id a relay or group names exists.
//!
//! Must never: hold runtime state (that is `state.rs`), or produce a home the validator rejects.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use super::generate::{generate, GenerateParams};
use super::profile::ConnectProfile;
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
    /// Model type id from the catalog (`docs/protocol.md#device-models`).
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
    #[allow(missing_docs)]
    pub groups: Vec<SimGroup>,
}

/// Why a home description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HomeError {
    /// A mesh id outside 1..=250 or equal to 125/126.
    #[allow(missing_docs)]
    #[error("home {home:?}: mesh id {id} is not usable (1..=250, not 125 or 126)")]
    BadMeshId { home: String, id: u16 },
    /// Two devices with the same mesh id.
    #[allow(missing_docs)]
    #[error("home {home:?}: mesh id {id} is used twice")]
    DuplicateMeshId { home: String, id: u16 },
    /// More devices than a one-byte id space allows.
    #[error("home {home:?} has {count} devices; at most {MAX_DEVICES_PER_HOME} fit one mesh, use several homes")]
    #[allow(missing_docs)]
    TooManyDevices { home: String, count: usize },
    /// A relay, reach list or group names something that does not exist or cannot relay.
    #[error("home {home:?}: {what}")]
    #[allow(missing_docs)]
    BadReference { home: String, what: String },
    /// Two Wi-Fi devices (in any home) share a device id.
    #[error("device id {id} is used by two Wi-Fi devices")]
    #[allow(missing_docs)]
    DuplicateDeviceId { id: PeerId },
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
pub(super) fn wifi_identity(rng: &mut StdRng, profile: ConnectProfile) -> SimWifi {
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
