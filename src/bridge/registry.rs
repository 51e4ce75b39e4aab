//! The entities Home Assistant sees: every listed device and group, plus every device seen on the
//! wire but not listed. Owns the mapping between the wire's device keys and MQTT's entity keys.
//!
//! Names, areas and MACs come from the device file (a `cync_mesh.yaml` export or our own) and
//! the per-device overrides; capabilities from the model catalog, or from the export's hints when
//! the type id is unknown. A device seen only on the wire gets a generic name and on/off only —
//! the one capability every Cync device has — so a wrong guess can never send a command a device
//! does not understand.
//!
//! Homes: sessions are not yet mapped to cloud homes (every session is in [`HomeId::DEFAULT`]), so
//! a wire key is placed in the listed home that has its mesh id — the only home when there is
//! one. Unique ids therefore carry the real cloud home id and never collide across homes. Must
//! never do I/O beyond reading the device file at construction.

use std::collections::{BTreeMap, HashMap};

use super::settings::{DeviceOverride, DevicesSettings, EndpointAddress};
use crate::device::catalog::{Capabilities, DeviceClass, KelvinRange, Model, DEFAULT_KELVIN};
use crate::device::inventory::{DeviceSpec, HomeSpec, Inventory, InventoryError, Mac, Syntax};
use crate::device::{is_known, lookup, DeviceKey, HomeId, MeshId};
use crate::mqtt::discovery::EntityDescription;
use crate::mqtt::topics::{EntityKey, EntityKind};

/// Everything known about one entity.
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    /// MQTT identity.
    pub key: EntityKey,
    /// Display name.
    pub name: String,
    /// What it can do (groups: the union of their members).
    pub model: Model,
    /// Bluetooth MAC.
    pub ble_mac: Option<Mac>,
    /// Wi-Fi MAC.
    pub wifi_mac: Option<Mac>,
    /// Firmware as exported.
    pub firmware: Option<String>,
    /// Suggested area.
    pub area: Option<String>,
    /// Not published and never commanded.
    pub disabled: bool,
    /// Group members (mesh ids); empty for devices.
    pub members: Vec<u16>,
    /// From the device file (`false`: seen on the wire only).
    pub listed: bool,
    /// An endpoint's own name (`name` is then its device's).
    pub part: Option<String>,
    /// The mesh id commands for this entity go to (an endpoint's depends on the setting).
    pub wire_mesh: u16,
}

impl Entity {
    /// The discovery description of this entity.
    pub fn description(&self) -> EntityDescription<'_> {
        EntityDescription {
            key: self.key,
            name: &self.name,
            model: self.model,
            ble_mac: self.ble_mac,
            wifi_mac: self.wifi_mac,
            firmware: self.firmware.as_deref(),
            area: self.area.as_deref(),
            part: self.part.as_deref(),
        }
    }

    /// A device known only from the wire: a name that says how to get its real one, and the
    /// model its reported type gives, or on/off only when it reported none, so a wrong guess
    /// never sends a command the device does not understand.
    pub fn unlisted(key: EntityKey, model: Model) -> Self {
        Entity {
            key,
            name: unlisted_name(key),
            model,
            ble_mac: None,
            wifi_mac: None,
            firmware: None,
            area: None,
            disabled: false,
            members: Vec::new(),
            listed: false,
            part: None,
            wire_mesh: key.id,
        }
    }

    /// The key whose reports and routes this entity shows: the device's own mesh id, also for
    /// an endpoint (the mesh lists the device, not its outlets).
    pub fn state_key(&self) -> DeviceKey {
        DeviceKey {
            home: HomeId::DEFAULT,
            mesh: MeshId(self.key.id),
        }
    }

    /// The key commands for this entity are sent to (a group id is a mesh target too).
    pub fn wire_key(&self) -> DeviceKey {
        DeviceKey {
            home: HomeId::DEFAULT,
            mesh: MeshId(self.wire_mesh),
        }
    }

    /// Whether this is a Cync group.
    pub fn is_group(&self) -> bool {
        self.key.kind == EntityKind::Group
    }
}

/// The name of a device missing from the device list; short, because Home Assistant shows it
/// in lists, and it says the fix.
pub fn unlisted_name(key: EntityKey) -> String {
    format!("Cync {key} (run cync-bridge export to name it)")
}

/// The model of a device seen only on the wire: the catalog's for the type it reported itself
/// (a relay does, in its first mesh-info record), else on/off only.
fn wire_model(reported_type: Option<u16>) -> Model {
    match reported_type {
        Some(t) if t != 0 => lookup(t),
        _ => {
            let mut model = lookup(0);
            model.name = "Cync device (not in the device list)";
            model
        }
    }
}

/// The wire key of an entity. Every session is in [`HomeId::DEFAULT`] until sessions are mapped
/// to cloud homes, so the cloud home id does not travel to the wire.
pub fn wire_key(key: EntityKey) -> DeviceKey {
    DeviceKey {
        home: HomeId::DEFAULT,
        mesh: MeshId(key.id),
    }
}

/// Why the device list could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The file could not be read.
    #[error("cannot read device file {path}: {source}")]
    Read {
        /// The configured path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file or the `[devices.homes]` section is unusable.
    #[error("{origin}: {source}")]
    Inventory {
        /// Which list.
        origin: String,
        /// What is wrong.
        source: InventoryError,
    },
}

/// All entities, by key.
#[derive(Debug, Default)]
pub struct Registry {
    entities: BTreeMap<EntityKey, Entity>,
    /// Listed homes, in file order.
    homes: Vec<u64>,
    /// Mesh id → the listed homes that contain it.
    mesh_homes: HashMap<u16, Vec<u64>>,
    /// Device → the enabled groups it belongs to (looked up on every state change).
    groups_by_member: HashMap<EntityKey, Vec<EntityKey>>,
    /// Device mesh id → its endpoint entities, which all show that device's state.
    endpoints_by_node: HashMap<u16, Vec<EntityKey>>,
    /// Mesh ids of devices shown as endpoints and their endpoints' command addresses: never a
    /// device entity of their own.
    endpoint_ids: std::collections::HashSet<u16>,
    endpoint_address: EndpointAddress,
    overrides: BTreeMap<String, DeviceOverride>,
    /// Warnings for the log (odd entries accepted with safe defaults).
    pub warnings: Vec<String>,
    /// Where this list came from, to notice when the file changes (`None`: built in memory).
    origin: Option<Origin>,
}

/// The settings a registry was loaded from and what its file looked like then.
#[derive(Debug, Clone)]
struct Origin {
    settings: DevicesSettings,
    seen: Option<Fingerprint>,
}

/// Enough of a file's metadata to notice a replacement: an export renames a new file into
/// place, which changes the inode and the modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    path: std::path::PathBuf,
    modified: Option<std::time::SystemTime>,
    len: u64,
    inode: u64,
}

fn fingerprint(settings: &DevicesSettings) -> Option<Fingerprint> {
    let path = device_file(settings)?;
    let meta = std::fs::metadata(&path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Fingerprint {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
        path,
    })
}

impl Registry {
    /// Loads the device file and the config's own device list and applies the overrides.
    pub fn load(config: &DevicesSettings) -> Result<Self, RegistryError> {
        let seen = fingerprint(config);
        let mut registry = Self::read(config)?;
        registry.origin = Some(Origin {
            settings: config.clone(),
            seen,
        });
        Ok(registry)
    }

    /// The list loaded again when its file was replaced, changed, created or deleted since the
    /// last look; `None` when it was not (or the registry was not loaded from settings). A file
    /// that cannot be read is reported once per change, not on every call.
    pub fn reload_if_changed(&mut self) -> Option<Result<Registry, RegistryError>> {
        let origin = self.origin.as_mut()?;
        let now = fingerprint(&origin.settings);
        if now == origin.seen {
            return None;
        }
        origin.seen.clone_from(&now);
        let settings = origin.settings.clone();
        Some(Self::read(&settings).map(|mut registry| {
            registry.origin = Some(Origin {
                settings,
                seen: now,
            });
            registry
        }))
    }

    fn read(config: &DevicesSettings) -> Result<Self, RegistryError> {
        let mut inventory = Inventory::default();
        if let Some(path) = device_file(config) {
            let path = &path;
            let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let syntax = match path.extension().and_then(|e| e.to_str()) {
                Some("toml") => Syntax::Toml,
                _ => Syntax::Yaml,
            };
            inventory =
                Inventory::parse(&text, syntax).map_err(|source| RegistryError::Inventory {
                    origin: format!("device file {}", path.display()),
                    source,
                })?;
        }
        if !config.homes.is_empty() {
            let doc = serde_json::json!({ "homes": config.homes });
            // JSON is a subset of YAML, so the same parser reads the config's own section.
            let own = Inventory::parse(&doc.to_string(), Syntax::Yaml).map_err(|source| {
                RegistryError::Inventory {
                    origin: "[devices.homes]".to_owned(),
                    source,
                }
            })?;
            inventory.homes.extend(own.homes);
            inventory.warnings.extend(own.warnings);
        }
        Ok(Self::from_inventory_with(
            &inventory,
            config.overrides.clone(),
            config.endpoint_address,
        ))
    }

    /// Builds the registry from a parsed device list.
    pub fn from_inventory(
        inventory: &Inventory,
        overrides: BTreeMap<String, DeviceOverride>,
    ) -> Self {
        Self::from_inventory_with(inventory, overrides, EndpointAddress::default())
    }

    /// [`Registry::from_inventory`] with endpoint commands addressed as `endpoint_address` says.
    pub fn from_inventory_with(
        inventory: &Inventory,
        overrides: BTreeMap<String, DeviceOverride>,
        endpoint_address: EndpointAddress,
    ) -> Self {
        let mut registry = Registry {
            overrides,
            warnings: inventory.warnings.clone(),
            endpoint_address,
            ..Registry::default()
        };
        for home in &inventory.homes {
            registry.add_home(home);
        }
        for group in registry
            .entities
            .values()
            .filter(|e| e.is_group() && !e.disabled)
        {
            for member in registry.member_keys(group) {
                registry
                    .groups_by_member
                    .entry(member)
                    .or_default()
                    .push(group.key);
            }
        }
        registry
    }

    fn add_home(&mut self, home: &HomeSpec) {
        if self.homes.contains(&home.id) {
            self.warnings.push(format!(
                "home id {} is listed twice; the second is ignored",
                home.id
            ));
            return;
        }
        self.homes.push(home.id);
        for (&mesh, spec) in &home.devices {
            self.add_device(home.id, mesh, spec);
        }
        for (&id, group) in &home.groups {
            let key = EntityKey {
                home: home.id,
                kind: EntityKind::Group,
                id,
            };
            let members: Vec<u16> = group
                .members
                .iter()
                .copied()
                .filter(|m| home.devices.contains_key(m))
                .collect();
            let model = group_model(members.iter().filter_map(|m| {
                let member = EntityKey {
                    home: home.id,
                    kind: EntityKind::Device,
                    id: *m,
                };
                self.entities
                    .get(&self.presence_key(member))
                    .map(|e| e.model)
            }));
            let entity = Entity {
                key,
                name: group.name.clone(),
                model,
                ble_mac: None,
                wifi_mac: None,
                firmware: None,
                area: group.area.clone(),
                disabled: members.is_empty(),
                members,
                listed: true,
                part: None,
                wire_mesh: id,
            };
            self.insert(entity);
        }
    }

    fn add_device(&mut self, home: u64, mesh: u16, spec: &DeviceSpec) {
        self.mesh_homes.entry(mesh).or_default().push(home);
        let key = EntityKey {
            home,
            kind: EntityKind::Device,
            id: mesh,
        };
        let model = model_for(
            spec.type_id,
            spec.is_plug,
            spec.supports_temperature,
            spec.supports_rgb,
        );
        if let Some(t) = spec.type_id.filter(|t| !is_known(*t)) {
            self.warnings.push(format!(
                "{:?} (mesh id {mesh}) has type {t}, unknown to the catalog; using the \
                 export's hints (please report the type)",
                spec.name
            ));
        }
        let entity = Entity {
            key,
            name: spec.name.clone(),
            model,
            ble_mac: spec.ble_mac,
            wifi_mac: spec.wifi_mac,
            firmware: spec.firmware.clone(),
            area: spec.area.clone(),
            disabled: spec.disabled,
            members: Vec::new(),
            listed: true,
            part: None,
            wire_mesh: mesh,
        };
        if spec.endpoints.is_empty() {
            self.insert(entity);
        } else {
            self.add_endpoints(entity, &spec.endpoints);
        }
    }

    /// One entity per endpoint of `device`, all of one Home Assistant device.
    fn add_endpoints(&mut self, device: Entity, endpoints: &BTreeMap<u16, String>) {
        let node = device.key.id;
        self.endpoint_ids.insert(node);
        for (&number, name) in endpoints {
            let Ok(endpoint) = u8::try_from(number) else {
                self.warnings.push(format!(
                    "{:?} (mesh id {node}): endpoint {number} is out of range; left out",
                    device.name
                ));
                continue;
            };
            let entity = Entity {
                key: EntityKey {
                    kind: EntityKind::Endpoint(endpoint),
                    ..device.key
                },
                part: Some(name.clone()),
                wire_mesh: self.endpoint_address.mesh_id(node, endpoint),
                ..device.clone()
            };
            self.endpoint_ids.insert(entity.wire_mesh);
            self.endpoints_by_node
                .entry(node)
                .or_default()
                .push(entity.key);
            self.insert(entity);
        }
    }

    fn insert(&mut self, mut entity: Entity) {
        let specific = format!("{}-{}", entity.key.home, entity.key.id);
        let by_mesh = entity.key.id.to_string();
        if matches!(
            entity.key.kind,
            EntityKind::Device | EntityKind::Endpoint(_)
        ) {
            for key in [by_mesh, specific] {
                if let Some(o) = self.overrides.get(&key) {
                    if let Some(name) = &o.name {
                        entity.name = name.clone();
                    }
                    if let Some(area) = &o.area {
                        entity.area = Some(area.clone());
                    }
                    if let Some(disabled) = o.disabled {
                        entity.disabled = disabled;
                    }
                }
            }
        }
        self.entities.insert(entity.key, entity);
    }

    /// The entity key of a device seen on the wire.
    pub fn entity_key(&self, key: DeviceKey) -> EntityKey {
        let mesh = key.mesh.0;
        let home = if key.home != HomeId::DEFAULT {
            key.home.0
        } else {
            match self.mesh_homes.get(&mesh).and_then(|h| h.first()) {
                Some(home) => *home,
                None => self.homes.first().copied().unwrap_or(HomeId::DEFAULT.0),
            }
        };
        EntityKey {
            home,
            kind: EntityKind::Device,
            id: mesh,
        }
    }

    /// Registers a device seen on the wire. Returns its key when it is new (not listed and not
    /// seen before), so the caller can announce it.
    pub fn observe(&mut self, key: DeviceKey, reported_type: Option<u16>) -> Option<EntityKey> {
        let entity_key = self.entity_key(key);
        if self.entities.contains_key(&entity_key)
            || self.is_group_id(entity_key)
            || self.endpoint_ids.contains(&key.mesh.0)
        {
            return None;
        }
        self.insert(Entity::unlisted(entity_key, wire_model(reported_type)));
        Some(entity_key)
    }

    /// A device seen only on the wire has now reported its type: it becomes that kind of
    /// entity. Returns the entity as it was, so the caller can withdraw what it published for
    /// it; `None` when nothing changes (listed devices keep the device file's type).
    pub fn learn_type(&mut self, key: EntityKey, type_id: u16) -> Option<Entity> {
        let entity = self.entities.get_mut(&key)?;
        if entity.listed || type_id == 0 || entity.model.type_id == type_id {
            return None;
        }
        let old = entity.clone();
        entity.model = wire_model(Some(type_id));
        Some(old)
    }

    /// Group ids are mesh targets too: a command response for a group is stored under its id,
    /// which must not turn into a phantom device. Cync group ids start at 0x8000.
    fn is_group_id(&self, key: EntityKey) -> bool {
        key.id >= 0x8000
            || self.entities.contains_key(&EntityKey {
                kind: EntityKind::Group,
                ..key
            })
    }

    /// The entities whose state a wire report for `key` carries: the device's endpoints, else
    /// the one device entity.
    pub fn entities_for(&self, key: DeviceKey) -> Vec<EntityKey> {
        match self.endpoints_by_node.get(&key.mesh.0) {
            Some(endpoints) => endpoints.clone(),
            None => vec![self.entity_key(key)],
        }
    }

    /// The entity whose availability stands for group member `member`: the member itself, or
    /// its first endpoint when it is shown as endpoints.
    pub fn presence_key(&self, member: EntityKey) -> EntityKey {
        if !self.endpoints_by_node.contains_key(&member.id) {
            return member;
        }
        self.entities
            .range(member..)
            .map(|(key, _)| *key)
            .find(|key| {
                key.home == member.home
                    && key.id == member.id
                    && matches!(key.kind, EntityKind::Endpoint(_))
            })
            .unwrap_or(member)
    }

    /// Listed, wire-only or disabled alike; `None` for a key this bridge never had.
    pub fn get(&self, key: &EntityKey) -> Option<&Entity> {
        self.entities.get(key)
    }

    /// Every entity that is published (not disabled).
    pub fn active(&self) -> impl Iterator<Item = &Entity> {
        self.entities.values().filter(|e| !e.disabled)
    }

    /// The enabled groups that contain device `member`.
    pub fn groups_of(&self, member: EntityKey) -> &[EntityKey] {
        self.groups_by_member
            .get(&member)
            .map_or(&[], Vec::as_slice)
    }

    /// The device keys of a group's members.
    pub fn member_keys(&self, group: &Entity) -> Vec<EntityKey> {
        group
            .members
            .iter()
            .map(|id| EntityKey {
                home: group.key.home,
                kind: EntityKind::Device,
                id: *id,
            })
            .collect()
    }
}

/// The device file to read: the configured one, else the exported one when it exists.
pub fn device_file(config: &DevicesSettings) -> Option<std::path::PathBuf> {
    match &config.file {
        Some(path) => Some(path.clone()),
        None => config
            .exported_file
            .is_file()
            .then(|| config.exported_file.clone()),
    }
}

/// The model of a listed device: the catalog's when it knows the type, otherwise one built from
/// the export's hints (plug, tunable white, colour) — never more than the export claims.
fn model_for(type_id: Option<u16>, is_plug: bool, temperature: bool, rgb: bool) -> Model {
    match type_id {
        Some(t) if is_known(t) => lookup(t),
        _ => {
            let mut model = lookup(type_id.unwrap_or(0));
            if is_plug {
                model.class = DeviceClass::Plug;
            } else if temperature || rgb {
                model.class = DeviceClass::Light;
                model.caps.brightness = true;
                model.caps.color_temp = temperature;
                model.caps.rgb = rgb;
            }
            model
        }
    }
}

/// A group is a light with what any member can do: the mesh delivers one command to all
/// members, and a member that cannot show a colour simply ignores it.
fn group_model(members: impl Iterator<Item = Model>) -> Model {
    let mut caps = Capabilities {
        power: true,
        brightness: false,
        color_temp: false,
        rgb: false,
        effects: false,
        fan: false,
    };
    let mut kelvin: Option<KelvinRange> = None;
    for m in members {
        caps.brightness |= m.caps.brightness;
        caps.color_temp |= m.caps.color_temp;
        caps.rgb |= m.caps.rgb;
        caps.effects |= m.caps.effects;
        if m.caps.color_temp && kelvin.is_none() {
            kelvin = Some(m.kelvin);
        }
    }
    Model {
        type_id: 0,
        class: DeviceClass::Light,
        name: "Cync group",
        model_id: None,
        wifi: false,
        caps,
        kelvin: kelvin.unwrap_or(DEFAULT_KELVIN),
        source: crate::device::catalog::Source::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = r#"
account data:
  Home:
    id: 1234567890
    access_key: 1
    mac: "aa"
    devices:
      5: {name: Lamp, mac: "78:6D:EB:28:EA:30", wifi_mac: "00:01:02:03:04:05", type: 137, fw: 10}
      6: {name: Plug, mac: "78:6D:EB:28:EA:31", wifi_mac: "78:6D:EB:28:EA:32", type: 64}
      7: {name: Mystery, mac: "78:6D:EB:28:EA:33", type: 9999, supports_temperature: true}
    groups:
      32769: {name: Room, members: [5, 7, 99], is_subgroup: false}
"#;

    fn registry(overrides: &[(&str, DeviceOverride)]) -> Registry {
        let inv = Inventory::parse(EXPORT, Syntax::Yaml).unwrap();
        Registry::from_inventory(
            &inv,
            overrides
                .iter()
                .map(|(k, o)| ((*k).to_owned(), o.clone()))
                .collect(),
        )
    }

    fn dev(id: u16) -> EntityKey {
        EntityKey {
            home: 1234567890,
            kind: EntityKind::Device,
            id,
        }
    }

    #[test]
    fn listed_devices_take_catalog_or_export_hint_capabilities() {
        let r = registry(&[]);
        let lamp = r.get(&dev(5)).unwrap();
        assert_eq!(lamp.model.class, DeviceClass::Light);
        assert!(lamp.model.caps.rgb && lamp.model.caps.color_temp);
        assert_eq!(lamp.wifi_mac, None, "placeholder MAC dropped");
        assert_eq!(r.get(&dev(6)).unwrap().model.class, DeviceClass::Plug);
        let mystery = r.get(&dev(7)).unwrap();
        assert_eq!(mystery.model.class, DeviceClass::Light);
        assert!(mystery.model.caps.color_temp && !mystery.model.caps.rgb);
        assert!(r.warnings.iter().any(|w| w.contains("9999")));
    }

    #[test]
    fn groups_keep_only_listed_members_and_combine_their_capabilities() {
        let r = registry(&[]);
        let key = EntityKey {
            home: 1234567890,
            kind: EntityKind::Group,
            id: 32769,
        };
        let room = r.get(&key).unwrap();
        assert_eq!(room.members, vec![5, 7]);
        assert!(room.model.caps.rgb && room.model.caps.brightness);
        assert_eq!(r.groups_of(dev(7)), [key]);
        assert!(r.groups_of(dev(6)).is_empty());
    }

    #[test]
    fn wire_keys_land_in_the_listed_home_and_unknown_devices_get_a_safe_entity() {
        let mut r = registry(&[]);
        let wire = DeviceKey::new(HomeId::DEFAULT, 5);
        assert_eq!(r.entity_key(wire), dev(5));
        assert_eq!(r.observe(wire, Some(64)), None, "listed already");
        assert_eq!(
            r.learn_type(dev(5), 64),
            None,
            "the device file's type stays"
        );
        let stranger = DeviceKey::new(HomeId::DEFAULT, 42);
        assert_eq!(r.observe(stranger, None), Some(dev(42)));
        assert_eq!(r.observe(stranger, None), None, "only new once");
        let e = r.get(&dev(42)).unwrap();
        assert_eq!(
            e.name,
            "Cync 1234567890-42 (run cync-bridge export to name it)"
        );
        assert!(!e.model.caps.brightness, "on/off only");
        assert_eq!(wire_key(dev(42)), stranger);
        let group_target = DeviceKey::new(HomeId::DEFAULT, 32769);
        assert_eq!(
            r.observe(group_target, None),
            None,
            "a group id is not a device"
        );
    }

    #[test]
    fn overrides_rename_place_and_disable_devices() {
        let r = registry(&[
            (
                "5",
                DeviceOverride {
                    name: Some("Desk".into()),
                    area: Some("Office".into()),
                    disabled: None,
                },
            ),
            (
                "1234567890-6",
                DeviceOverride {
                    disabled: Some(true),
                    ..DeviceOverride::default()
                },
            ),
        ]);
        let lamp = r.get(&dev(5)).unwrap();
        assert_eq!(
            (lamp.name.as_str(), lamp.area.as_deref()),
            ("Desk", Some("Office"))
        );
        assert!(r.get(&dev(6)).unwrap().disabled);
        assert!(r.active().all(|e| e.key != dev(6)));
    }

    #[test]
    fn the_exported_file_is_read_only_when_no_file_is_configured_and_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let exported = dir.path().join("cync_devices.yaml");
        let mut settings = DevicesSettings {
            file: None,
            exported_file: exported.clone(),
            homes: serde_json::Map::new(),
            overrides: BTreeMap::new(),
            offline_grace: std::time::Duration::from_secs(1),
            route_grace: std::time::Duration::from_secs(1),
            startup_grace: std::time::Duration::from_secs(1),
            group_confirm_timeout: std::time::Duration::from_secs(1),
            endpoint_address: EndpointAddress::Node,
            group_commands: crate::bridge::GroupCommands::Auto,
        };
        assert_eq!(
            device_file(&settings),
            None,
            "no export yet: run without a list"
        );
        assert!(Registry::load(&settings).unwrap().active().next().is_none());
        std::fs::write(&exported, EXPORT).unwrap();
        assert_eq!(device_file(&settings), Some(exported));
        assert!(Registry::load(&settings).unwrap().get(&dev(5)).is_some());
        settings.file = Some(dir.path().join("mine.yaml"));
        assert!(
            Registry::load(&settings).is_err(),
            "a configured file must exist"
        );
    }

    #[test]
    fn a_replaced_created_or_deleted_device_file_is_noticed_once() {
        let dir = tempfile::tempdir().unwrap();
        let exported = dir.path().join("cync_devices.yaml");
        let settings = DevicesSettings {
            file: None,
            exported_file: exported.clone(),
            homes: serde_json::Map::new(),
            overrides: BTreeMap::new(),
            offline_grace: std::time::Duration::from_secs(1),
            route_grace: std::time::Duration::from_secs(1),
            startup_grace: std::time::Duration::from_secs(1),
            group_confirm_timeout: std::time::Duration::from_secs(1),
            endpoint_address: EndpointAddress::Node,
            group_commands: crate::bridge::GroupCommands::Auto,
        };
        let mut r = Registry::load(&settings).unwrap();
        assert!(r.reload_if_changed().is_none(), "nothing changed");
        std::fs::write(&exported, EXPORT).unwrap();
        let mut r = r.reload_if_changed().unwrap().unwrap();
        assert_eq!(r.get(&dev(5)).unwrap().name, "Lamp");
        assert!(r.reload_if_changed().is_none(), "only once");
        let temp = dir.path().join("new.yaml");
        std::fs::write(&temp, EXPORT.replace("Lamp", "Desk Lamp")).unwrap();
        std::fs::rename(&temp, &exported).unwrap();
        let mut r = r.reload_if_changed().unwrap().unwrap();
        assert_eq!(r.get(&dev(5)).unwrap().name, "Desk Lamp");
        std::fs::write(&exported, "account data: [").unwrap();
        assert!(r.reload_if_changed().unwrap().is_err(), "reported");
        assert!(r.reload_if_changed().is_none(), "once per change");
        std::fs::remove_file(&exported).unwrap();
        let r = r.reload_if_changed().unwrap().unwrap();
        assert!(
            r.active().next().is_none(),
            "the devices left with the file"
        );
        assert!(Registry::default().reload_if_changed().is_none());
    }

    #[test]
    fn without_a_device_list_every_device_is_in_home_zero() {
        let mut r = Registry::default();
        let key = DeviceKey::new(HomeId::DEFAULT, 3);
        assert_eq!(r.observe(key, None).map(|k| k.home), Some(0));
    }

    const DUAL: &str = r#"
homes:
  Home:
    id: 77
    devices:
      3: {name: Porch Plug, type: 67, endpoints: {1: Left Outlet, 2: Right Outlet}}
    groups:
      2: {name: Porch, members: [3]}
"#;

    fn dual(address: EndpointAddress) -> Registry {
        let inv = Inventory::parse(DUAL, Syntax::Yaml).unwrap();
        Registry::from_inventory_with(&inv, BTreeMap::new(), address)
    }

    fn outlet(e: u8) -> EntityKey {
        EntityKey {
            home: 77,
            kind: EntityKind::Endpoint(e),
            id: 3,
        }
    }

    #[test]
    fn a_dual_outlet_is_one_device_with_an_entity_per_outlet() {
        let mut r = dual(EndpointAddress::Node);
        let left = r.get(&outlet(1)).unwrap();
        assert_eq!(left.name, "Porch Plug");
        assert_eq!(left.part.as_deref(), Some("Left Outlet"));
        assert_eq!(left.model.class, DeviceClass::Plug);
        let node = EntityKey {
            home: 77,
            kind: EntityKind::Device,
            id: 3,
        };
        assert!(
            r.get(&node).is_none(),
            "no third entity for the device itself"
        );
        let wire = DeviceKey::new(HomeId::DEFAULT, 3);
        assert_eq!(r.entities_for(wire), [outlet(1), outlet(2)]);
        assert_eq!(r.get(&outlet(2)).unwrap().wire_key(), wire);
        assert_eq!(r.observe(wire, Some(67)), None, "no phantom device");
        assert_eq!(r.presence_key(node), outlet(1));
        let d1 = r.get(&outlet(1)).unwrap().description();
        assert_eq!(d1.part, Some("Left Outlet"));
    }

    #[test]
    fn packed_addressing_sends_each_outlet_to_its_own_mesh_id() {
        let r = dual(EndpointAddress::Packed);
        assert_eq!(r.get(&outlet(1)).unwrap().wire_mesh, 3 + 256);
        assert_eq!(r.get(&outlet(2)).unwrap().wire_mesh, 3 + 512);
        let outlet_2 = r.get(&outlet(2)).unwrap();
        assert_eq!(outlet_2.state_key(), DeviceKey::new(HomeId::DEFAULT, 3));
        assert_eq!(
            r.entities_for(DeviceKey::new(HomeId::DEFAULT, 3)),
            [outlet(1), outlet(2)],
            "both show the device's state"
        );
        let mut r = r;
        let packed = DeviceKey::new(HomeId::DEFAULT, 515);
        assert_eq!(
            r.observe(packed, None),
            None,
            "no phantom for a packed address"
        );
    }

    #[test]
    fn a_relay_that_reports_its_type_becomes_that_kind_of_entity() {
        let mut r = Registry::default();
        let relay = DeviceKey::new(HomeId::DEFAULT, 10);
        let key = r.observe(relay, Some(137)).unwrap();
        let bulb = r.get(&key).unwrap();
        assert_eq!(bulb.model.class, DeviceClass::Light);
        assert!(bulb.model.caps.rgb && bulb.model.caps.brightness);
        assert_eq!(bulb.name, "Cync 0-10 (run cync-bridge export to name it)");
        // Seen first through a plain report, typed later by its mesh info.
        let plug = r
            .observe(DeviceKey::new(HomeId::DEFAULT, 11), None)
            .unwrap();
        assert_eq!(r.get(&plug).unwrap().model.class, DeviceClass::Unknown);
        let old = r.learn_type(plug, 68).unwrap();
        assert_eq!(old.model.class, DeviceClass::Unknown);
        assert_eq!(r.get(&plug).unwrap().model.class, DeviceClass::Plug);
        assert_eq!(r.learn_type(plug, 68), None, "once");
    }
}
