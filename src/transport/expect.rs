//! What confirms a command (the state a report must show) and which attribute it sets (for
//! coalescing): both derived from the command alone, so the transport stays protocol-aware
//! without knowing about devices.

use super::reliable::CommandId;
use crate::protocol::content::{TEMP_EFFECT, TEMP_RGB_MODE};
use crate::protocol::{Command, LightColor, LightState};

/// What confirms a command from a state report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Expectation {
    Power(bool),
    Brightness(u8),
    Temperature(u8),
    Rgb([u8; 3]),
    Effect,
    Nothing,
}

impl Expectation {
    pub(super) fn of(command: &Command) -> Self {
        match *command {
            Command::Power { on, .. } => Expectation::Power(on),
            Command::Light {
                color: Some(LightColor::Rgb(rgb)),
                ..
            } => Expectation::Rgb(rgb),
            Command::Light {
                color: Some(LightColor::Temperature(t)),
                ..
            } => Expectation::Temperature(t),
            Command::Light {
                brightness: Some(b),
                ..
            } => Expectation::Brightness(b),
            Command::Effect { .. } => Expectation::Effect,
            _ => Expectation::Nothing,
        }
    }

    pub(super) fn confirmed_by(&self, s: &LightState) -> bool {
        match *self {
            Expectation::Power(on) => s.on == on,
            Expectation::Brightness(b) => s.brightness == b,
            Expectation::Temperature(t) => s.temperature == t,
            Expectation::Rgb(rgb) => s.temperature == TEMP_RGB_MODE && s.rgb == rgb,
            Expectation::Effect => s.temperature == TEMP_EFFECT,
            Expectation::Nothing => false,
        }
    }
}

/// The attribute a command sets, for coalescing. Without coalescing every command gets its own
/// key, so nothing is ever superseded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Attribute {
    Power,
    Brightness,
    Color,
    Effect,
    Mode,
    Unique(CommandId),
}

pub(super) fn attribute(command: &Command, id: CommandId, coalesce: bool) -> Attribute {
    if !coalesce {
        return Attribute::Unique(id);
    }
    match command {
        Command::Power { .. } => Attribute::Power,
        Command::Light { color: Some(_), .. } => Attribute::Color,
        Command::Light { .. } => Attribute::Brightness,
        Command::Effect { .. } => Attribute::Effect,
        Command::SwitchMode { .. } => Attribute::Mode,
        _ => Attribute::Unique(id),
    }
}
