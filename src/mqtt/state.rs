//! State payloads published to Home Assistant: a full snapshot of an entity every time (HA's
//! JSON light schema treats missing keys as "unchanged", so partial states drift). Keys the
//! entity supports are always present — `null` when they do not apply in the current mode — and
//! keys it does not support are absent.

use serde::{Serialize, Serializer};

use super::units::{fan_level_to_preset, ColorTempUnit};
use crate::device::catalog::Capabilities;
use crate::protocol::content::{TEMP_EFFECT, TEMP_RGB_MODE};
use crate::protocol::LightState;

/// A JSON field that is either left out, `null`, or a value.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Field<T> {
    /// Not serialised (the entity does not support it).
    #[default]
    Absent,
    /// Serialised as `null` (supported, but not meaningful in the current mode).
    Null,
    /// Serialised as the value.
    Value(T),
}

impl<T> Field<T> {
    fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    fn supported(supported: bool, value: Option<T>) -> Self {
        match (supported, value) {
            (false, _) => Field::Absent,
            (true, None) => Field::Null,
            (true, Some(v)) => Field::Value(v),
        }
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Value(v) => v.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

/// Home Assistant's spelling of a power state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub enum OnOff {
    #[serde(rename = "ON")]
    On,
    #[serde(rename = "OFF")]
    Off,
}

impl From<bool> for OnOff {
    fn from(on: bool) -> Self {
        if on {
            OnOff::On
        } else {
            OnOff::Off
        }
    }
}

/// HA colour modes (https://www.home-assistant.io/integrations/light.mqtt/#json-schema).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorMode {
    /// On/off only.
    Onoff,
    /// Dimmable, no colour.
    Brightness,
    /// Tunable white.
    ColorTemp,
    /// Full colour.
    Rgb,
}

/// The colour modes a device with these capabilities supports, for discovery and state.
pub fn color_modes(caps: &Capabilities) -> Vec<ColorMode> {
    match (caps.color_temp, caps.rgb, caps.brightness) {
        (true, true, _) => vec![ColorMode::ColorTemp, ColorMode::Rgb],
        (true, false, _) => vec![ColorMode::ColorTemp],
        (false, true, _) => vec![ColorMode::Rgb],
        (false, false, true) => vec![ColorMode::Brightness],
        (false, false, false) => vec![ColorMode::Onoff],
    }
}

/// `{"r","g","b"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rgb {
    r: u8,
    g: u8,
    b: u8,
}

/// JSON-schema light state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LightPayload {
    state: OnOff,
    #[serde(skip_serializing_if = "Field::is_absent")]
    brightness: Field<u8>,
    color_mode: ColorMode,
    #[serde(skip_serializing_if = "Field::is_absent")]
    color_temp: Field<u16>,
    #[serde(skip_serializing_if = "Field::is_absent")]
    color: Field<Rgb>,
    #[serde(skip_serializing_if = "Field::is_absent")]
    effect: Field<String>,
}

impl LightPayload {
    /// The snapshot for a light with `caps` in state `s`. `running_effect` is the name of the
    /// effect last started by us (devices report only "an effect is running", temperature 129).
    pub fn new(
        caps: &Capabilities,
        s: &LightState,
        running_effect: Option<&str>,
        unit: ColorTempUnit,
    ) -> Self {
        let modes = color_modes(caps);
        let rgb_mode = s.temperature == TEMP_RGB_MODE || s.temperature == TEMP_EFFECT;
        let mode = if rgb_mode && caps.rgb {
            ColorMode::Rgb
        } else {
            modes[0]
        };
        let white = mode == ColorMode::ColorTemp && s.temperature <= 100;
        LightPayload {
            state: s.on.into(),
            brightness: Field::supported(caps.brightness, Some(s.brightness.min(100))),
            color_mode: mode,
            color_temp: Field::supported(
                caps.color_temp,
                white.then(|| unit.from_cync(s.temperature)),
            ),
            color: Field::supported(
                caps.rgb,
                (mode == ColorMode::Rgb).then_some(Rgb {
                    r: s.rgb[0],
                    g: s.rgb[1],
                    b: s.rgb[2],
                }),
            ),
            effect: Field::supported(
                caps.effects,
                (s.temperature == TEMP_EFFECT)
                    .then_some(running_effect)
                    .flatten()
                    .map(str::to_string),
            ),
        }
    }
}

/// Switch and plug state (`value_template: {{ value_json.state }}`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SwitchPayload {
    state: OnOff,
}

impl SwitchPayload {
    /// Snapshot of a switch.
    pub fn new(s: &LightState) -> Self {
        SwitchPayload { state: s.on.into() }
    }
}

/// Fan state: power, percentage and preset in one document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FanPayload {
    state: OnOff,
    percentage: u8,
    preset_mode: Option<&'static str>,
}

impl FanPayload {
    /// Snapshot of a fan controller; its speed is the brightness byte (`docs/protocol.md#fan-speed`).
    pub fn new(s: &LightState) -> Self {
        let level = if s.on { s.brightness.min(100) } else { 0 };
        FanPayload {
            state: s.on.into(),
            percentage: level,
            preset_mode: fan_level_to_preset(level),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::catalog::lookup;
    use serde_json::json;

    fn state(on: bool, brightness: u8, temperature: u8, rgb: [u8; 3]) -> LightState {
        LightState {
            on,
            brightness,
            temperature,
            rgb,
        }
    }

    fn light(type_id: u16, s: LightState, effect: Option<&str>) -> serde_json::Value {
        serde_json::to_value(LightPayload::new(
            &lookup(type_id).caps,
            &s,
            effect,
            ColorTempUnit::Kelvin,
        ))
        .unwrap()
    }

    #[test]
    fn full_colour_light_snapshots_in_each_mode() {
        assert_eq!(
            light(137, state(true, 10, 10, [255; 3]), None),
            json!({"state":"ON","brightness":10,"color_mode":"color_temp","color_temp":2500,"color":null,"effect":null})
        );
        assert_eq!(
            light(137, state(true, 100, 0xfe, [0xf8, 0, 0]), None),
            json!({"state":"ON","brightness":100,"color_mode":"rgb","color_temp":null,"color":{"r":248,"g":0,"b":0},"effect":null})
        );
        assert_eq!(
            light(137, state(false, 24, 129, [1, 2, 3]), Some("rainbow")),
            json!({"state":"OFF","brightness":24,"color_mode":"rgb","color_temp":null,"color":{"r":1,"g":2,"b":3},"effect":"rainbow"})
        );
    }

    #[test]
    fn mired_mode_reports_mireds() {
        let s = state(true, 10, 10, [255; 3]);
        let v = serde_json::to_value(LightPayload::new(
            &lookup(137).caps,
            &s,
            None,
            ColorTempUnit::Mired,
        ))
        .unwrap();
        assert_eq!(v["color_temp"], 400);
    }

    #[test]
    fn lesser_lights_only_carry_what_they_support() {
        assert_eq!(
            light(19, state(true, 50, 100, [0; 3]), None),
            json!({"state":"ON","brightness":50,"color_mode":"color_temp","color_temp":7000})
        );
        assert_eq!(
            light(148, state(true, 50, 0, [0; 3]), None),
            json!({"state":"ON","brightness":50,"color_mode":"brightness"})
        );
        assert_eq!(
            light(53, state(false, 0, 0, [0; 3]), None),
            json!({"state":"OFF","color_mode":"onoff"})
        );
    }

    #[test]
    fn switch_and_fan_snapshots() {
        assert_eq!(
            serde_json::to_value(SwitchPayload::new(&state(true, 0, 0, [0; 3]))).unwrap(),
            json!({"state":"ON"})
        );
        assert_eq!(
            serde_json::to_value(FanPayload::new(&state(true, 75, 0, [0; 3]))).unwrap(),
            json!({"state":"ON","percentage":75,"preset_mode":"high"})
        );
        assert_eq!(
            serde_json::to_value(FanPayload::new(&state(false, 75, 0, [0; 3]))).unwrap(),
            json!({"state":"OFF","percentage":0,"preset_mode":null})
        );
    }
}
