//! What a Cync device *is*, independent of how we talk to it.
//!
//! Exists so that every other layer (MQTT discovery, the command path, the simulator) asks one
//! place what a device type can do, instead of matching on type bytes itself (STYLE habit 18).
//! Owns the model catalog ([`catalog`]): device-type id → class, capabilities, Kelvin range, and
//! the built-in light-show effects. Must never do I/O, never import `mqtt`, `server` or
//! `transport`, and never fail on an unknown type id — unknown devices get a safe generic model.

pub mod availability;
pub mod catalog;
pub mod inventory;

pub use catalog::{
    effect_by_name, effect_name, is_known, lookup, Capabilities, DeviceClass, KelvinRange, Model,
    EFFECTS,
};
