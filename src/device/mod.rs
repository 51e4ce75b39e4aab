//! What a Cync device *is*, independent of how we talk to it, and what the bridge knows about it.
//!
//! Exists so that every other layer (MQTT discovery, the command path, the simulator) asks one
//! place what a device type can do, instead of matching on type bytes itself,
//! and reads device state from one store. Owns the model catalog ([`catalog`]): device-type id →
//! class, capabilities, Kelvin range, and the built-in light-show effects; the device key type
//! ([`key`]): `(home, mesh id)`; and the state store ([`state`]). Must never do network I/O,
//! never import `mqtt`, `server` or `transport`, and never fail on an unknown type id — unknown
//! devices get a safe generic model.

pub mod availability;
pub mod catalog;
pub mod inventory;
pub mod key;
pub mod state;

pub use catalog::{
    effect_by_name, effect_name, is_known, lookup, Capabilities, DeviceClass, KelvinRange, Model,
    EFFECTS,
};
pub use key::{DeviceKey, HomeId, MeshId};
pub use state::{
    Applied, Confirmation, DeviceState, Expectation, Report, ReportSource, StateChange, StateStore,
    StoreSettings, WaiterLimit,
};
