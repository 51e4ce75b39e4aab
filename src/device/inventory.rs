//! The user's device list: homes, devices and groups with names, types and MAC addresses.
//!
//! Imports the `cync_mesh.yaml` export that users of the cync-lan / cync-controller add-ons
//! already have (top key `account data`, or `exported_homes` from cync-lan; keys we do not use
//! are ignored), and the same structure written by hand in TOML or YAML. Owns the parsed,
//! validated [`Inventory`]. Must never reject a whole file over one odd entry: a bad MAC or an
//! unknown type becomes a warning and a safe default, so one typo does not hide a whole house.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// A Bluetooth or Wi-Fi MAC address, normalised to lowercase `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

/// The export's stand-in for "no Wi-Fi" (never published: HA would merge every such device).
pub const PLACEHOLDER_MAC: Mac = Mac([0x00, 0x01, 0x02, 0x03, 0x04, 0x05]);

impl Mac {
    /// Parses `aa:bb:cc:dd:ee:ff`, `AA-BB-…` or `aabbccddeeff`.
    pub fn parse(text: &str) -> Option<Mac> {
        let hex: String = text
            .chars()
            .filter(|c| !matches!(c, ':' | '-' | '.'))
            .collect();
        if hex.len() != 12 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

/// One device of a home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Name shown in Home Assistant.
    pub name: String,
    /// Bluetooth MAC (the mesh node).
    pub ble_mac: Option<Mac>,
    /// Wi-Fi MAC; `None` for Bluetooth-only devices (placeholder MAC dropped).
    pub wifi_mac: Option<Mac>,
    /// Model type id ([`crate::device::catalog`]); `None` when the export lacks it.
    pub type_id: Option<u16>,
    /// Firmware version as exported.
    pub firmware: Option<String>,
    /// Export's own capability hints (used when the type id is unknown to the catalog).
    pub is_plug: bool,
    /// Export hint: tunable white.
    pub supports_temperature: bool,
    /// Export hint: full colour.
    pub supports_rgb: bool,
    /// Suggested area in Home Assistant.
    pub area: Option<String>,
    /// Hidden from Home Assistant and never commanded.
    pub disabled: bool,
    /// Separately named outputs of one node (a dual outlet), by endpoint number; empty for an
    /// ordinary device. cync-lan writes `{0: name}` for ordinary nodes, which reads as empty.
    pub endpoints: BTreeMap<u16, String>,
}

/// A Cync group (room): one mesh command addresses all members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSpec {
    /// Name shown in Home Assistant.
    pub name: String,
    /// Member mesh ids.
    pub members: Vec<u16>,
    /// Export flag; meaning for the mesh unclear, kept for completeness.
    pub is_subgroup: bool,
    /// Suggested area (the room a group is, or is inside of).
    pub area: Option<String>,
}

/// One home (Bluetooth mesh).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HomeSpec {
    /// Home name from the export.
    pub name: String,
    /// Cloud home id; part of every unique id so several homes never collide.
    pub id: u64,
    /// Devices by mesh id.
    pub devices: BTreeMap<u16, DeviceSpec>,
    /// Groups by group id.
    pub groups: BTreeMap<u16, GroupSpec>,
}

/// Everything the user told us about their devices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Homes in file order of their names.
    pub homes: Vec<HomeSpec>,
    /// Entries that were accepted with a safe default, one line each, for the log.
    pub warnings: Vec<String>,
}

/// Why a device file could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// Not valid YAML/TOML, or the wrong shape.
    #[error("cannot parse device file: {0}")]
    Syntax(String),
    /// Neither `account data` nor `exported_homes` nor `homes` at the top.
    #[error("device file has no `account data`, `exported_homes` or `homes` section")]
    NoHomes,
    /// A home without a usable numeric id.
    #[error("home {home:?}: `id` must be a number (the cloud home id), got {got:?}")]
    BadHomeId {
        #[allow(missing_docs)]
        home: String,
        /// The `id` value as written, for the error message.
        got: String,
    },
}

/// A map key that may be written as a number (YAML) or a string (TOML).
#[derive(Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(untagged)]
enum Key {
    Num(u64),
    Text(String),
}

impl Key {
    fn number(&self) -> Option<u64> {
        match self {
            Key::Num(n) => Some(*n),
            Key::Text(t) => t.trim().parse().ok(),
        }
    }

    fn text(&self) -> String {
        match self {
            Key::Num(n) => n.to_string(),
            Key::Text(t) => t.clone(),
        }
    }
}

#[derive(Deserialize, Default)]
struct RawFile {
    #[serde(rename = "account data")]
    account_data: Option<BTreeMap<String, RawHome>>,
    exported_homes: Option<BTreeMap<String, RawHome>>,
    homes: Option<BTreeMap<String, RawHome>>,
}

#[derive(Deserialize)]
struct RawHome {
    id: Option<Key>,
    #[serde(default)]
    devices: BTreeMap<Key, RawDevice>,
    #[serde(default)]
    groups: BTreeMap<Key, RawGroup>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawDevice {
    name: Option<String>,
    mac: Option<String>,
    wifi_mac: Option<String>,
    #[serde(rename = "type")]
    type_id: Option<Key>,
    fw: Option<Key>,
    is_plug: bool,
    supports_temperature: bool,
    supports_rgb: bool,
    area: Option<String>,
    disabled: bool,
    endpoints: BTreeMap<Key, String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawGroup {
    name: Option<String>,
    members: Vec<Key>,
    is_subgroup: bool,
    area: Option<String>,
}

/// Which syntax a device file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// `cync_mesh.yaml` and hand-written YAML.
    Yaml,
    /// Hand-written TOML.
    Toml,
}

impl Inventory {
    /// Takes the first of `account data`, `exported_homes` and `homes` that is present.
    pub fn parse(text: &str, syntax: Syntax) -> Result<Inventory, InventoryError> {
        let raw: RawFile = match syntax {
            Syntax::Yaml => {
                serde_norway::from_str(text).map_err(|e| InventoryError::Syntax(e.to_string()))?
            }
            Syntax::Toml => {
                toml::from_str(text).map_err(|e| InventoryError::Syntax(e.to_string()))?
            }
        };
        let homes = raw
            .account_data
            .or(raw.exported_homes)
            .or(raw.homes)
            .ok_or(InventoryError::NoHomes)?;
        let mut inventory = Inventory::default();
        for (name, home) in homes {
            let home = inventory.convert_home(name, home)?;
            inventory.homes.push(home);
        }
        Ok(inventory)
    }

    /// The home with this cloud id.
    pub fn home(&self, id: u64) -> Option<&HomeSpec> {
        self.homes.iter().find(|h| h.id == id)
    }

    fn convert_home(&mut self, name: String, raw: RawHome) -> Result<HomeSpec, InventoryError> {
        let id = match raw.id.as_ref().and_then(Key::number) {
            Some(id) => id,
            None => {
                return Err(InventoryError::BadHomeId {
                    got: raw.id.map(|k| k.text()).unwrap_or_default(),
                    home: name,
                })
            }
        };
        let mut home = HomeSpec {
            name,
            id,
            devices: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        for (key, dev) in raw.devices {
            match key.number().and_then(|n| u16::try_from(n).ok()) {
                Some(mesh_id) => {
                    let spec = self.convert_device(&home.name, mesh_id, dev);
                    home.devices.insert(mesh_id, spec);
                }
                None => self.warn(format!(
                    "home {:?}: device key {:?} is not a mesh id; skipped",
                    home.name,
                    key.text()
                )),
            }
        }
        for (key, group) in raw.groups {
            match key.number().and_then(|n| u16::try_from(n).ok()) {
                Some(group_id) => {
                    let spec = self.convert_group(&home.name, group_id, group);
                    home.groups.insert(group_id, spec);
                }
                None => self.warn(format!(
                    "home {:?}: group key {:?} is not a group id; skipped",
                    home.name,
                    key.text()
                )),
            }
        }
        Ok(home)
    }

    fn convert_device(&mut self, home: &str, mesh_id: u16, raw: RawDevice) -> DeviceSpec {
        let mut mac = |field: &str, value: Option<String>| -> Option<Mac> {
            let text = value?;
            let parsed = Mac::parse(&text);
            if parsed.is_none() {
                self.warn(format!(
                    "home {home:?} device {mesh_id}: {field} {text:?} is not a MAC address; ignored"
                ));
            }
            parsed.filter(|m| *m != PLACEHOLDER_MAC)
        };
        let ble_mac = mac("mac", raw.mac);
        let wifi_mac = mac("wifi_mac", raw.wifi_mac);
        let type_id = match raw.type_id.as_ref().map(|k| (k, k.number())) {
            Some((_, Some(n))) => u16::try_from(n).ok(),
            Some((k, None)) => {
                self.warn(format!(
                    "home {home:?} device {mesh_id}: type {:?} is not a number; treated as unknown",
                    k.text()
                ));
                None
            }
            None => None,
        };
        DeviceSpec {
            name: raw
                .name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| format!("Cync device {mesh_id}")),
            ble_mac,
            wifi_mac,
            type_id,
            firmware: raw.fw.map(|k| k.text()),
            is_plug: raw.is_plug,
            supports_temperature: raw.supports_temperature,
            supports_rgb: raw.supports_rgb,
            area: raw.area,
            disabled: raw.disabled,
            endpoints: self.endpoints(home, mesh_id, raw.endpoints),
        }
    }

    fn convert_group(&mut self, home: &str, group_id: u16, raw: RawGroup) -> GroupSpec {
        let mut members = Vec::new();
        for m in raw.members {
            match m.number().and_then(|n| u16::try_from(n).ok()) {
                Some(id) => members.push(id),
                None => self.warn(format!(
                    "home {home:?} group {group_id}: member {:?} is not a mesh id; ignored",
                    m.text()
                )),
            }
        }
        GroupSpec {
            name: raw
                .name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| format!("Cync group {group_id}")),
            members,
            is_subgroup: raw.is_subgroup,
            area: raw.area.filter(|a| !a.trim().is_empty()),
        }
    }

    /// Endpoint numbers 1 and up; `0` alone (cync-lan's "the node itself") means none.
    fn endpoints(
        &mut self,
        home: &str,
        mesh_id: u16,
        raw: BTreeMap<Key, String>,
    ) -> BTreeMap<u16, String> {
        let mut out = BTreeMap::new();
        for (key, name) in raw {
            match key.number().and_then(|n| u16::try_from(n).ok()) {
                Some(0) => {}
                Some(n) => {
                    out.insert(n, name);
                }
                None => self.warn(format!(
                    "home {home:?} device {mesh_id}: endpoint {:?} is not a number; ignored",
                    key.text()
                )),
            }
        }
        out
    }

    fn warn(&mut self, line: String) {
        self.warnings.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = r#"
account data:
  My Home:
    id: 1234567890
    access_key: 123456
    mac: 1A2B3C4D5E6F
    hvac: {}
    devices:
      5:
        name: Living Room Lamp
        mac: 78:6D:EB:28:EA:30
        wifi_mac: 34:13:43:70:D8:C7
        type: 137
        fw: 1.1.158
        is_plug: false
        supports_temperature: true
        supports_rgb: true
        enabled: true
      7:
        name: Hall Bulb
        mac: 78:6D:EB:28:EA:31
        wifi_mac: 00:01:02:03:04:05
        type: 21
      9:
        name: Mystery
        mac: not-a-mac
        type: 999
    groups:
      32769: {name: Living Room, members: [5, 7], is_subgroup: false}
"#;

    #[test]
    fn the_cync_lan_export_imports_as_is() {
        let inv = Inventory::parse(EXPORT, Syntax::Yaml).unwrap();
        assert_eq!(inv.homes.len(), 1);
        let home = &inv.homes[0];
        assert_eq!((home.name.as_str(), home.id), ("My Home", 1234567890));
        let lamp = &home.devices[&5];
        assert_eq!(lamp.name, "Living Room Lamp");
        assert_eq!(lamp.ble_mac.unwrap().to_string(), "78:6d:eb:28:ea:30");
        assert_eq!(lamp.wifi_mac.unwrap().to_string(), "34:13:43:70:d8:c7");
        assert_eq!(lamp.type_id, Some(137));
        assert_eq!(lamp.firmware.as_deref(), Some("1.1.158"));
        assert!(lamp.supports_rgb && lamp.supports_temperature && !lamp.is_plug);
        assert_eq!(
            home.devices[&7].wifi_mac, None,
            "placeholder MAC is never kept"
        );
        assert_eq!(home.devices[&9].ble_mac, None);
        assert_eq!(home.devices[&9].type_id, Some(999));
        assert!(
            !crate::device::catalog::is_known(999),
            "kept, and the catalog falls back"
        );
        assert_eq!(inv.warnings.len(), 1, "{:?}", inv.warnings);
        assert_eq!(home.groups[&32769].members, vec![5, 7]);
    }

    #[test]
    fn exported_homes_and_a_hand_written_toml_file_are_accepted() {
        let yaml = EXPORT.replace("account data:", "exported_homes:");
        assert_eq!(
            Inventory::parse(&yaml, Syntax::Yaml).unwrap().homes.len(),
            1
        );
        let toml = r#"
[homes."Cabin"]
id = "42"
[homes."Cabin".devices.3]
name = "Porch"
type = 68
area = "Outside"
[homes."Cabin".groups.32770]
members = [3, "x"]
"#;
        let inv = Inventory::parse(toml, Syntax::Toml).unwrap();
        let cabin = inv.home(42).unwrap();
        assert_eq!(cabin.devices[&3].area.as_deref(), Some("Outside"));
        assert_eq!(cabin.groups[&32770].name, "Cync group 32770");
        assert_eq!(cabin.groups[&32770].members, vec![3]);
        assert_eq!(inv.warnings.len(), 1);
    }

    /// cync-lan's current layout: no capability flags, an `endpoints` map on every device.
    const CYNC_LAN: &str = r#"
exported_homes:
  Home:
    access_key: 777
    devices:
      1:
        endpoints:
          0: Office Lamp
        fw: 1.3.160
        mac: 78:6D:EB:28:EA:A4
        name: Office Lamp
        type: 147
        wifi_mac: 78:6D:EB:28:EA:A5
      3:
        endpoints:
          1: Left Outlet
          2: Right Outlet
          x: Nothing
        fw: 1.0.298
        mac: 34:13:43:70:D7:5E
        name: Porch Plug
        type: 67
        wifi_mac: 34:13:43:78:D9:2E
    id: 123456789
"#;

    #[test]
    fn cync_lans_endpoint_maps_and_flagless_devices_are_read() {
        let inv = Inventory::parse(CYNC_LAN, Syntax::Yaml).unwrap();
        let home = inv.home(123456789).unwrap();
        let lamp = &home.devices[&1];
        assert!(lamp.endpoints.is_empty(), "endpoint 0 is the node itself");
        assert!(
            !lamp.is_plug && !lamp.supports_rgb,
            "no flags: the type decides"
        );
        assert_eq!(lamp.type_id, Some(147));
        let plug = &home.devices[&3];
        assert_eq!(
            plug.endpoints
                .values()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["Left Outlet", "Right Outlet"]
        );
        assert_eq!(plug.endpoints.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(inv.warnings.len(), 1, "{:?}", inv.warnings);
        assert!(inv.warnings[0].contains("\"x\""), "{:?}", inv.warnings);
    }

    #[test]
    fn a_file_without_homes_or_with_a_bad_home_id_says_so() {
        assert!(matches!(
            Inventory::parse("something: 1", Syntax::Yaml),
            Err(InventoryError::NoHomes)
        ));
        let err = Inventory::parse("account data:\n  H:\n    id: abc\n", Syntax::Yaml).unwrap_err();
        assert!(err.to_string().contains("home \"H\""), "{err}");
        assert!(matches!(
            Inventory::parse("account data: [", Syntax::Yaml),
            Err(InventoryError::Syntax(_))
        ));
    }
}
