//! `[devices]`, validated: where the entities come from and how availability is judged. Built by
//! `config/`; the bridge never reads the config file itself.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[devices]`: the device list and availability hysteresis.
#[derive(Clone, Debug)]
pub struct DevicesSettings {
    /// A `cync_mesh.yaml` export, or our own YAML/TOML device file.
    pub file: Option<PathBuf>,
    /// Where `cync-bridge export` writes (in `data_dir`): read instead when `file` is unset,
    /// and only if it exists, so a first start before any export still runs.
    pub exported_file: PathBuf,
    /// Devices listed in the config itself (`[devices.homes.<name>]`), as parsed JSON.
    pub homes: serde_json::Map<String, serde_json::Value>,
    /// Per-device name/area/disabled overrides keyed by `"<mesh>"` or `"<home>-<mesh>"`.
    pub overrides: std::collections::BTreeMap<String, DeviceOverride>,
    /// A device reported offline for this long becomes unavailable (one missed report never
    /// flaps it).
    pub offline_grace: Duration,
    /// A device no connected relay reaches for this long becomes unavailable.
    pub route_grace: Duration,
    /// After start, how long a device not yet seen may lack a route before it is unavailable
    /// (relays take a while to reconnect after a restart).
    pub startup_grace: Duration,
    /// How long a group command waits for its members to confirm.
    pub group_confirm_timeout: Duration,
    /// Where a command for one endpoint (an outlet of a dual plug) is sent.
    pub endpoint_address: EndpointAddress,
    /// How a command for a Cync group (room) is addressed.
    pub group_commands: GroupCommands,
}

/// Group addresses below this can be device mesh ids too; the simulator, like Bluetooth mesh
/// group addresses, uses 0x8000 and up.
pub const MESH_GROUP_BASE: u16 = 0x8000;

/// How a command for a Cync group is sent. No group packet was ever captured
/// (`docs/protocol.md#groups`): whether the mesh address of a room is its cloud id (1, 2, …) or
/// something else is unknown, and the cloud's room ids are small numbers that are also mesh ids
/// of devices. Sending a room command to such an address could switch one device instead of the
/// room, so the default sends each member its own command unless the id cannot be a device's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupCommands {
    /// The group address for ids of 0x8000 and up, one command per member below.
    #[default]
    Auto,
    /// One command per member, always (slower for large rooms; always reaches the right lights).
    Members,
    /// The group address, always (one mesh broadcast; only if your groups' ids are their mesh
    /// addresses).
    Group,
}

impl GroupCommands {
    /// Whether a command for group `id` is sent to each member instead of the group address.
    pub fn per_member(self, id: u16) -> bool {
        match self {
            GroupCommands::Members => true,
            GroupCommands::Group => false,
            GroupCommands::Auto => id < MESH_GROUP_BASE,
        }
    }
}

/// How a command for one endpoint of a multi-endpoint device is addressed on the mesh. No
/// capture shows a per-outlet command, so the default is the one address known to reach the
/// device, at the risk of switching all its outlets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndpointAddress {
    /// The device's own mesh id (may switch every endpoint of the device).
    #[default]
    Node,
    /// Mesh id + 256 × endpoint, the encoding another integration uses; unverified here.
    Packed,
}

impl EndpointAddress {
    /// The mesh id a command for endpoint `endpoint` of node `node` goes to.
    pub fn mesh_id(self, node: u16, endpoint: u8) -> u16 {
        match self {
            EndpointAddress::Node => node,
            EndpointAddress::Packed => node.saturating_add(256 * u16::from(endpoint)),
        }
    }
}

/// One per-device override.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // each key is documented in config/cync-bridge.toml
pub struct DeviceOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}
