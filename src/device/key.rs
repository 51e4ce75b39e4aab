//! How the bridge names a device: `(home, mesh id)`.
//!
//! A mesh id is small and only unique within one Bluetooth mesh ("home"); a user may have several
//! homes, each numbering its devices from the same small range. Every map in the
//! bridge is therefore keyed by [`DeviceKey`], never by a bare mesh id.
//!
//! Home identity: until a resolver maps device ids to the homes of the device list (the
//! `cync_mesh.yaml` export, whose homes carry numeric `id`s), every session belongs to
//! [`HomeId::DEFAULT`]. Deriving a home per connected cluster from mesh-info records was
//! rejected: two homes reuse the same mesh ids, so clusters cannot be told apart from the
//! records alone, and a wrong guess would merge or split a home silently. One default home is
//! honest and correct for the common single-home install; real homes plug in through
//! `server::HomeResolver` without changing any key type.

use std::fmt;

/// A Bluetooth mesh ("home"). The number is the Cync home id from the account export when one
/// is configured, otherwise [`HomeId::DEFAULT`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct HomeId(pub u64);

impl HomeId {
    /// The home of every session while no device list says otherwise.
    pub const DEFAULT: HomeId = HomeId(0);
}

impl fmt::Display for HomeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A device's (or group's) address inside its mesh: the `dst` of commands
/// (`docs/protocol.md#mesh-messages`).
/// All observed values are below 256 (0x43 records carry one byte); commands encode LE16.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct MeshId(pub u16);

impl fmt::Display for MeshId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The bridge-wide name of one device: which home, which mesh id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
#[allow(missing_docs)]
pub struct DeviceKey {
    pub home: HomeId,
    pub mesh: MeshId,
}

impl DeviceKey {
    /// Takes a bare `u16` because that is what the decoders hand out.
    pub fn new(home: HomeId, mesh: u16) -> Self {
        DeviceKey {
            home,
            mesh: MeshId(mesh),
        }
    }
}

impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.home, self.mesh)
    }
}
