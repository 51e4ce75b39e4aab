//! The account's homes, devices and rooms turned into a device file the bridge reads (root key
//! `homes`, the shape [`crate::device::inventory`] parses).
//!
//! Ids: with home id `H` and row id `D`, the local id is `L = D mod H` and the mesh node is
//! `L mod 1000`; `L div 1000` is an endpoint number only for a type with several outputs
//! ([`crate::device::catalog::MULTI_ENDPOINT`]) or when several rows share a node. A single row
//! with a non-zero `L div 1000` is a thermostat's extra digit, not an endpoint. `mod H` rather
//! than cutting the first nine digits, because home ids of ten digits exist. Room members are
//! local ids too, so they reduce to nodes the same way (both outlets of a plug name the same
//! node once).
//!
//! Areas: a room's name is the suggested area of the room's group and of every device in it; a
//! group inside a room gets its room's name. Names: an unnamed home or one whose name another
//! home already has gets its id added, so no home hides another in the file.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::client::{Account, CloudHome};
use super::wire::{Bulb, Group};
use crate::device::catalog::endpoint_count;

/// The Wi-Fi MAC the cloud gives endpoint rows: a marker, not an address.
const ENDPOINT_WIFI_MAC: &str = "01:02:03:04:05:06";

/// The file as written.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct DeviceFile {
    /// Homes by (unique) name.
    pub homes: BTreeMap<String, FileHome>,
}

#[allow(missing_docs)]
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct FileHome {
    pub id: u64,
    /// By mesh node.
    pub devices: BTreeMap<u16, FileDevice>,
    /// By group id.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<u16, FileGroup>,
}

#[allow(missing_docs)]
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct FileDevice {
    pub name: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wifi_mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fw: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    /// Endpoint number → name, for nodes with several outputs.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<u16, String>,
}

#[allow(missing_docs)]
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct FileGroup {
    pub name: String,
    pub members: Vec<u16>,
    pub is_subgroup: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
}

/// What the export found, for the user to check before saving.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    #[allow(missing_docs)]
    pub homes: Vec<HomeSummary>,
    /// Entries and rows left out or repaired, one sentence each.
    pub notes: Vec<String>,
}

#[allow(missing_docs)]
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HomeSummary {
    pub name: String,
    pub id: u64,
    /// `name (area)` per device, endpoints as `name: endpoint`.
    pub devices: Vec<String>,
    pub groups: usize,
}

/// Converts the account; never fails (odd rows become notes).
pub fn device_file(account: &Account) -> (DeviceFile, Summary) {
    let mut file = DeviceFile::default();
    let mut summary = Summary {
        notes: account.skipped.clone(),
        ..Summary::default()
    };
    for home in &account.homes {
        let name = unique_name(&file, home);
        let (converted, notes) = convert_home(home);
        summary
            .notes
            .extend(notes.into_iter().map(|n| format!("{name}: {n}")));
        summary.homes.push(HomeSummary {
            name: name.clone(),
            id: home.id,
            devices: converted.devices.values().flat_map(describe).collect(),
            groups: converted.groups.len(),
        });
        file.homes.insert(name, converted);
    }
    (file, summary)
}

fn describe(device: &FileDevice) -> Vec<String> {
    let area = device
        .area
        .as_deref()
        .map(|a| format!(" ({a})"))
        .unwrap_or_default();
    if device.endpoints.is_empty() {
        return vec![format!("{}{area}", device.name)];
    }
    device
        .endpoints
        .values()
        .map(|e| format!("{}: {e}{area}", device.name))
        .collect()
}

fn unique_name(file: &DeviceFile, home: &CloudHome) -> String {
    let name = home.name.trim();
    if name.is_empty() {
        format!("Cync home {}", home.id)
    } else if file.homes.contains_key(name) {
        format!("{name} ({})", home.id)
    } else {
        name.to_owned()
    }
}

/// One parsed `bulbsArray` row.
struct Row {
    node: u16,
    upper: u64,
    bulb: Bulb,
    type_id: Option<u16>,
}

fn convert_home(home: &CloudHome) -> (FileHome, Vec<String>) {
    let mut notes = Vec::new();
    let mut by_node: BTreeMap<u16, Vec<Row>> = BTreeMap::new();
    for value in &home.properties.bulbs {
        match row(home.id, value) {
            Ok(row) => by_node.entry(row.node).or_default().push(row),
            Err(why) => notes.push(why),
        }
    }
    let mut out = FileHome {
        id: home.id,
        ..FileHome::default()
    };
    for (node, rows) in by_node {
        out.devices.insert(node, device(node, rows));
    }
    let groups = parse_groups(&home.properties.groups, &mut notes);
    place_groups(&mut out, &groups, &mut notes);
    (out, notes)
}

fn row(home_id: u64, value: &serde_json::Value) -> Result<Row, String> {
    let bulb: Bulb = serde_json::from_value(value.clone())
        .map_err(|e| format!("a device row was left out ({e})"))?;
    let d = bulb
        .device_id
        .get()
        .ok_or_else(|| "a device row without a numeric deviceID was left out".to_owned())?;
    let local = if home_id == 0 { d } else { d % home_id };
    let type_id = bulb
        .device_type
        .as_ref()
        .and_then(|t| t.get())
        .and_then(|t| u16::try_from(t).ok());
    Ok(Row {
        node: u16::try_from(local % 1000).unwrap_or(0),
        upper: local / 1000,
        bulb,
        type_id,
    })
}

fn text(value: Option<&String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn device(node: u16, rows: Vec<Row>) -> FileDevice {
    let type_id = rows.iter().find_map(|r| r.type_id);
    let multi = rows.len() > 1 || type_id.is_some_and(|t| endpoint_count(t) > 1);
    let parent_index = rows
        .iter()
        .position(|r| r.upper == 0 || !multi)
        .unwrap_or(0);
    let Some(parent) = rows.get(parent_index) else {
        return FileDevice {
            name: format!("Cync device {node}"),
            ..FileDevice::default()
        };
    };
    let mut endpoints = BTreeMap::new();
    if multi {
        for r in rows.iter().filter(|r| r.upper > 0) {
            let name = text(r.bulb.name.as_ref()).unwrap_or_else(|| format!("Outlet {}", r.upper));
            endpoints.insert(u16::try_from(r.upper).unwrap_or(u16::MAX), name);
        }
    }
    let has_parent = rows.iter().any(|r| r.upper == 0) || !multi;
    let name = if has_parent {
        text(parent.bulb.name.as_ref())
    } else {
        Some(endpoints.values().cloned().collect::<Vec<_>>().join(" / "))
    }
    .filter(|n| !n.is_empty())
    .unwrap_or_else(|| format!("Cync device {node}"));
    FileDevice {
        name,
        type_id,
        mac: rows.iter().find_map(|r| text(r.bulb.mac.as_ref())),
        wifi_mac: rows
            .iter()
            .filter_map(|r| text(r.bulb.wifi_mac.as_ref()))
            .find(|m| !m.eq_ignore_ascii_case(ENDPOINT_WIFI_MAC)),
        fw: parent
            .bulb
            .firmware
            .as_ref()
            .and_then(|f| f.get())
            .filter(|f| !f.eq_ignore_ascii_case("unknown")),
        area: None,
        endpoints,
    }
}

/// A parsed room or sub-group.
struct ParsedGroup {
    id: u16,
    name: String,
    is_subgroup: bool,
    members: Vec<u64>,
    subgroups: Vec<u64>,
}

fn parse_groups(values: &[serde_json::Value], notes: &mut Vec<String>) -> Vec<ParsedGroup> {
    let mut out = Vec::new();
    for value in values {
        let Ok(group) = serde_json::from_value::<Group>(value.clone()) else {
            notes.push("a room row without a numeric groupID was left out".to_owned());
            continue;
        };
        let Some(id) = group.id.get().and_then(|id| u16::try_from(id).ok()) else {
            notes.push("a room whose id is not a mesh group id was left out".to_owned());
            continue;
        };
        out.push(ParsedGroup {
            id,
            name: text(group.name.as_ref()).unwrap_or_else(|| format!("Cync group {id}")),
            is_subgroup: group.is_subgroup.as_ref().is_some_and(|f| f.get()),
            members: group.members.iter().filter_map(|m| m.get()).collect(),
            subgroups: group.subgroups.iter().filter_map(|m| m.get()).collect(),
        });
    }
    out
}

fn place_groups(home: &mut FileHome, groups: &[ParsedGroup], notes: &mut Vec<String>) {
    let parent_room = |id: u16| {
        groups
            .iter()
            .find(|g| !g.is_subgroup && g.subgroups.contains(&u64::from(id)))
            .map(|g| g.name.clone())
    };
    // Rooms first, so a device's area is its room even when a sub-group lists it too.
    let order = groups
        .iter()
        .filter(|g| !g.is_subgroup)
        .chain(groups.iter().filter(|g| g.is_subgroup));
    for group in order {
        let area = if group.is_subgroup {
            parent_room(group.id)
        } else {
            Some(group.name.clone())
        };
        let mut members = Vec::new();
        let mut seen = BTreeSet::new();
        for local in &group.members {
            let node = u16::try_from(local % 1000).unwrap_or(0);
            match home.devices.get_mut(&node) {
                Some(device) if seen.insert(node) => {
                    members.push(node);
                    if device.area.is_none() {
                        device.area.clone_from(&area);
                    }
                }
                Some(_) => {}
                None => notes.push(format!(
                    "room {:?} lists device {local}, which the account does not have; left out",
                    group.name
                )),
            }
        }
        if members.is_empty() {
            notes.push(format!("room {:?} has no devices; left out", group.name));
            continue;
        }
        let group_file = FileGroup {
            name: group.name.clone(),
            members,
            is_subgroup: group.is_subgroup,
            area,
        };
        home.groups.insert(group.id, group_file);
    }
}

/// The file's text: a comment saying where it came from, then YAML.
pub fn render(file: &DeviceFile) -> Result<String, String> {
    let yaml = serde_norway::to_string(file).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Written by `cync-bridge export` from the Cync account; run it again to refresh.\n\
         # Edit names and areas here or in [devices.overrides] (the next export overwrites this\n\
         # file and keeps the previous one as .bak).\n{yaml}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::wire::Properties;
    use serde_json::json;

    fn home(bulbs: serde_json::Value) -> CloudHome {
        CloudHome {
            id: 169_573_386,
            name: "Cabin".to_owned(),
            properties: Properties {
                bulbs: bulbs.as_array().unwrap().clone(),
                groups: Vec::new(),
            },
        }
    }

    #[test]
    fn a_thermostats_extra_digit_is_not_an_endpoint() {
        // D = H·10^4 + 7·1000 + 9: one row, so node 9 with no endpoints.
        let (file, _) = convert_home(&home(json!([
            {"deviceID": 1_695_733_867_009_u64, "displayName": "Hall Thermostat", "deviceType": 224}
        ])));
        let device = &file.devices[&9];
        assert_eq!(device.name, "Hall Thermostat");
        assert!(device.endpoints.is_empty());
    }

    #[test]
    fn outlet_rows_without_a_parent_row_still_make_one_device() {
        // Only the two endpoint rows, as in pycync's fixture.
        let h: u64 = 169_573_386;
        let (file, _) = convert_home(&home(json!([
            {"deviceID": h * 1_000_000 + 1006, "displayName": "Left", "deviceType": 67,
             "firmwareVersion": ""},
            {"deviceID": h * 1_000_000 + 2006, "displayName": "Right", "deviceType": 67},
        ])));
        let device = &file.devices[&6];
        assert_eq!(device.name, "Left / Right");
        assert_eq!(device.endpoints.len(), 2);
        assert_eq!(device.fw, None, "an empty firmware is left out");
    }

    #[test]
    fn a_row_without_an_id_is_a_note_and_the_rest_stays() {
        let (file, notes) = convert_home(&home(json!([
            {"displayName": "Ghost"},
            {"deviceID": 169_573_386_001_u64, "displayName": "Lamp", "deviceType": "137"},
        ])));
        assert_eq!(file.devices.len(), 1);
        assert_eq!(file.devices[&1].type_id, Some(137));
        assert_eq!(notes.len(), 1, "{notes:?}");
    }
}
