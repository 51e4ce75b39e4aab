//! Home Assistant commands → Cync commands. Parses the JSON light schema, `ON`/`OFF` switch
//! payloads and fan percentage/preset payloads, validates them against what the device can do,
//! and translates them into [`Command`]s. Invalid payloads become a [`CommandError`] — the caller
//! logs it, counts it, and sends nothing. Valid fields we cannot honour exactly (`transition`,
//! `flash`) are accepted and ignored, never rejected.

use serde::Deserialize;

use super::units::{
    brightness_to_cync, fan_percentage_to_level, fan_preset_to_level, hs_to_rgb, ColorTempUnit,
    CYNC_MAX_KELVIN, CYNC_MIN_KELVIN,
};
use crate::device::catalog::{effect_by_name, effect_name, Capabilities, DeviceClass};
use crate::protocol::{Command, LightColor};

/// Which of an entity's command topics a message arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandTopic {
    /// `…/set`: the JSON light schema for lights and groups, `ON`/`OFF` for everything else.
    Set,
    /// `…/percentage/set` (fans).
    FanPercentage,
    /// `…/preset/set` (fans).
    FanPreset,
}

/// What translation needs to know about the commanded entity.
#[derive(Clone, Copy, Debug)]
pub struct CommandTarget<'a> {
    /// Mesh id of the device, or the group id (a group command is one mesh broadcast).
    pub id: u16,
    #[allow(missing_docs)]
    pub class: DeviceClass,
    #[allow(missing_docs)]
    pub caps: &'a Capabilities,
    /// Groups take the light schema whatever their members are.
    pub group: bool,
    /// The last confirmed power state: a light or fan known to be on gets no redundant power
    /// command before a level.
    pub currently_on: Option<bool>,
}

/// The Cync commands an MQTT command becomes, in the order they must be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translated {
    #[allow(missing_docs)]
    pub commands: Vec<Command>,
    /// The effect started, shown in the state payload until a report shows another colour.
    pub effect: Option<&'static str>,
}

/// The one place an MQTT command payload becomes Cync commands.
pub fn translate(
    topic: CommandTopic,
    target: &CommandTarget<'_>,
    payload: &[u8],
    unit: ColorTempUnit,
) -> Result<Translated, CommandError> {
    let id = target.id;
    let is_light = target.group || matches!(target.class, DeviceClass::Light | DeviceClass::Dimmer);
    let commands = match topic {
        CommandTopic::Set if is_light => {
            let request = parse_light(payload)?;
            light_commands(&request, target.caps, id, target.currently_on, unit)?
        }
        CommandTopic::Set => vec![Command::Power {
            target: id,
            on: parse_on_off(payload)?,
        }],
        CommandTopic::FanPercentage | CommandTopic::FanPreset => {
            if target.class != DeviceClass::Fan {
                return Err(CommandError::Unsupported("fan speed"));
            }
            let level = if topic == CommandTopic::FanPercentage {
                parse_fan_percentage(payload)?
            } else {
                parse_fan_preset(payload)?
            };
            fan_commands(id, level, target.currently_on)
        }
    };
    let effect = commands.iter().find_map(|c| match c {
        Command::Effect { effect, .. } => effect_name(*effect),
        _ => None,
    });
    Ok(Translated { commands, effect })
}

/// A fan's speed is its brightness level; level 0 is off, and a fan that is not known to be on
/// is powered on first.
fn fan_commands(target: u16, level: u8, currently_on: Option<bool>) -> Vec<Command> {
    if level == 0 {
        return vec![Command::Power { target, on: false }];
    }
    let mut commands = Vec::with_capacity(2);
    if currently_on != Some(true) {
        commands.push(Command::Power { target, on: true });
    }
    commands.push(light(target, Some(level), None));
    commands
}

/// Why an MQTT command payload was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    /// Not parseable as the expected payload.
    #[error("payload is not a valid command: {0}")]
    Malformed(String),
    /// `state` other than ON/OFF/TOGGLE.
    #[error("unknown state {0:?} (expected ON or OFF)")]
    UnknownState(String),
    /// A field the device cannot honour (`color_temp` on a non-tunable bulb, …).
    #[error("this device does not support {0}")]
    Unsupported(&'static str),
    /// An effect name not in the device's effect list.
    #[error("unknown effect {0:?}")]
    UnknownEffect(String),
    /// Nothing to do.
    #[error("command has no state, brightness, colour or effect")]
    Empty,
    /// A number outside the field's range (or not finite).
    #[error("{field} {value} is outside {min}–{max}")]
    #[allow(missing_docs)]
    OutOfRange {
        field: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
}

/// HA's JSON light command (https://www.home-assistant.io/integrations/light.mqtt/#json-schema).
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct LightRequest {
    /// `ON`, `OFF` (HA never sends anything else; `TOGGLE` is not part of the schema).
    pub state: Option<String>,
    /// 0–100 (we advertise `brightness_scale: 100`).
    pub brightness: Option<f64>,
    /// Kelvin or mireds, as configured ([`ColorTempUnit`]).
    pub color_temp: Option<f64>,
    /// `{r,g,b}`, or `{h,s}` / `{x,y}` from clients that ignore our supported modes.
    pub color: Option<ColorRequest>,
    /// Effect name from our `effect_list`.
    pub effect: Option<String>,
    /// Seconds; accepted and ignored (Cync has no transition command).
    pub transition: Option<f64>,
    /// `short`/`long`; accepted and ignored.
    pub flash: Option<String>,
}

/// The `color` object of a light command.
#[derive(Debug, Deserialize, PartialEq)]
pub struct ColorRequest {
    r: Option<f64>,
    g: Option<f64>,
    b: Option<f64>,
    h: Option<f64>,
    s: Option<f64>,
}

/// The one rule for numbers in a command: finite and inside the range Home Assistant's own schema
/// gives the field, or the whole command is refused (nothing is sent). Clamping would turn a typo
/// such as `-5` or `1e9` into a real change of the light; refusing says what was wrong.
fn in_range(field: &'static str, value: f64, min: f64, max: f64) -> Result<f64, CommandError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(CommandError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

impl ColorRequest {
    fn rgb(&self) -> Result<Option<[u8; 3]>, CommandError> {
        let channel = |name, v| in_range(name, v, 0.0, 255.0).map(|v| v.round() as u8);
        Ok(match (self.r, self.g, self.b, self.h, self.s) {
            (Some(r), Some(g), Some(b), _, _) => {
                Some([channel("r", r)?, channel("g", g)?, channel("b", b)?])
            }
            (_, _, _, Some(h), Some(s)) => Some(hs_to_rgb(
                in_range("h", h, 0.0, 360.0)?,
                in_range("s", s, 0.0, 100.0)?,
            )),
            _ => None,
        })
    }
}

/// Parses a light command payload.
pub fn parse_light(payload: &[u8]) -> Result<LightRequest, CommandError> {
    serde_json::from_slice(payload).map_err(|e| CommandError::Malformed(e.to_string()))
}

/// The Cync commands that carry out `req` on `target`, in order. `currently_on` is the last
/// confirmed power state: a light known to be on gets no redundant power command.
pub fn light_commands(
    req: &LightRequest,
    caps: &Capabilities,
    target: u16,
    currently_on: Option<bool>,
    unit: ColorTempUnit,
) -> Result<Vec<Command>, CommandError> {
    let on = match req.state.as_deref().map(str::trim) {
        None => None,
        Some(s) if s.eq_ignore_ascii_case("on") => Some(true),
        Some(s) if s.eq_ignore_ascii_case("off") => Some(false),
        Some(s) => return Err(CommandError::UnknownState(s.to_string())),
    };
    if on == Some(false) {
        return Ok(vec![Command::Power { target, on: false }]);
    }
    let mut rest = Vec::new();
    if let Some(b) = req.brightness {
        let b = in_range("brightness", b, 0.0, 100.0)?;
        if !caps.brightness {
            return Err(CommandError::Unsupported("brightness"));
        }
        let level = brightness_to_cync(b.round() as u32);
        if level == 0 {
            // HA's brightness 0 means off.
            return Ok(vec![Command::Power { target, on: false }]);
        }
        rest.push(light(target, Some(level), None));
    }
    if let Some(k) = req.color_temp {
        if !caps.color_temp {
            return Err(CommandError::Unsupported("colour temperature"));
        }
        let (min, max) = unit.range(CYNC_MIN_KELVIN, CYNC_MAX_KELVIN);
        let k = in_range("color_temp", k, f64::from(min), f64::from(max))?;
        let temp = unit
            .to_cync(k)
            .ok_or_else(|| CommandError::Malformed(format!("color_temp {k}")))?;
        rest.push(light(target, None, Some(LightColor::Temperature(temp))));
    }
    if let Some(color) = &req.color {
        if !caps.rgb {
            return Err(CommandError::Unsupported("colour"));
        }
        let rgb = color
            .rgb()?
            .ok_or_else(|| CommandError::Malformed("color needs r, g, b (or h, s)".into()))?;
        rest.push(light(target, None, Some(LightColor::Rgb(rgb))));
    }
    if let Some(name) = &req.effect {
        if !caps.effects {
            return Err(CommandError::Unsupported("effects"));
        }
        let effect =
            effect_by_name(name).ok_or_else(|| CommandError::UnknownEffect(name.clone()))?;
        rest.push(Command::Effect { target, effect });
    }
    // Power on first unless the light is known to be on already: whether a level or colour
    // command alone wakes a Cync light is not established by any capture. A bare ON is always
    // sent, even to a light believed on: it is harmless and re-confirms the state.
    let mut out = Vec::with_capacity(rest.len() + 1);
    match on {
        None if rest.is_empty() => return Err(CommandError::Empty),
        Some(true) if rest.is_empty() || currently_on != Some(true) => {
            out.push(Command::Power { target, on: true })
        }
        _ => {}
    }
    out.extend(rest);
    Ok(out)
}

fn light(target: u16, brightness: Option<u8>, color: Option<LightColor>) -> Command {
    Command::Light {
        target,
        brightness,
        color,
    }
}

/// `ON`/`OFF` (also `{"state":"ON"}`) for switches, plugs and the fan's power topic.
pub fn parse_on_off(payload: &[u8]) -> Result<bool, CommandError> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| CommandError::Malformed("not UTF-8".into()))?
        .trim();
    let word = if text.starts_with('{') {
        parse_light(text.as_bytes())?
            .state
            .ok_or_else(|| CommandError::Malformed("missing state".into()))?
    } else {
        text.to_string()
    };
    match word.to_ascii_uppercase().as_str() {
        "ON" => Ok(true),
        "OFF" => Ok(false),
        _ => Err(CommandError::UnknownState(word)),
    }
}

/// A fan percentage payload (`0`–`100`) → the brightness level to send (0 turns the fan off).
pub fn parse_fan_percentage(payload: &[u8]) -> Result<u8, CommandError> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| CommandError::Malformed("not UTF-8".into()))?
        .trim();
    let value: f64 = text
        .parse()
        .map_err(|_| CommandError::Malformed(format!("percentage {text:?}")))?;
    let value = in_range("percentage", value, 0.0, 100.0)?;
    Ok(fan_percentage_to_level(value.round() as u32))
}

/// A fan preset payload (`low`, `medium`, `high`, `max`) → the brightness level to send.
pub fn parse_fan_preset(payload: &[u8]) -> Result<u8, CommandError> {
    let text =
        std::str::from_utf8(payload).map_err(|_| CommandError::Malformed("not UTF-8".into()))?;
    fan_preset_to_level(text).ok_or_else(|| CommandError::Malformed(format!("preset {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::catalog::lookup;

    fn cmds(json: &str, type_id: u16, on: Option<bool>) -> Result<Vec<Command>, CommandError> {
        light_commands(
            &parse_light(json.as_bytes())?,
            &lookup(type_id).caps,
            5,
            on,
            ColorTempUnit::Kelvin,
        )
    }

    fn lvl(b: u8) -> Command {
        light(5, Some(b), None)
    }

    const ON: Command = Command::Power {
        target: 5,
        on: true,
    };
    const OFF: Command = Command::Power {
        target: 5,
        on: false,
    };

    fn tr(
        type_id: u16,
        topic: CommandTopic,
        payload: &str,
        on: Option<bool>,
    ) -> Result<Translated, CommandError> {
        let model = lookup(type_id);
        let target = CommandTarget {
            id: 5,
            class: model.class,
            caps: &model.caps,
            group: false,
            currently_on: on,
        };
        translate(topic, &target, payload.as_bytes(), ColorTempUnit::Kelvin)
    }

    fn only(commands: Vec<Command>) -> Result<Translated, CommandError> {
        Ok(Translated {
            commands,
            effect: None,
        })
    }

    #[test]
    fn fan_speeds_power_the_fan_as_needed_and_zero_turns_it_off() {
        use CommandTopic::{FanPercentage, FanPreset, Set};
        assert_eq!(
            tr(81, FanPercentage, "60", Some(false)),
            only(vec![ON, lvl(75)])
        );
        assert_eq!(tr(81, FanPercentage, "60", Some(true)), only(vec![lvl(75)]));
        assert_eq!(tr(81, FanPreset, "max", None), only(vec![ON, lvl(100)]));
        assert_eq!(tr(81, FanPercentage, "0", Some(true)), only(vec![OFF]));
        assert_eq!(tr(81, Set, "OFF", Some(true)), only(vec![OFF]));
        assert_eq!(
            tr(64, FanPercentage, "50", None),
            Err(CommandError::Unsupported("fan speed")),
            "a plug has no speed"
        );
    }

    #[test]
    fn switches_take_on_off_lights_take_json_and_an_effect_is_named_once() {
        use CommandTopic::Set;
        assert_eq!(tr(64, Set, "ON", None), only(vec![ON]));
        assert!(tr(64, Set, r#"{"brightness":5}"#, None).is_err());
        let rainbow = tr(137, Set, r#"{"effect":"rainbow"}"#, Some(true)).unwrap();
        assert_eq!(rainbow.effect, Some("rainbow"));
        assert_eq!(
            rainbow.commands,
            vec![Command::Effect {
                target: 5,
                effect: effect_by_name("rainbow").unwrap()
            }]
        );
        // HA's transition and flash are accepted and ignored.
        let off = r#"{"state":"OFF","transition":2,"flash":"short"}"#;
        assert_eq!(tr(137, Set, off, Some(true)), only(vec![OFF]));
    }

    #[test]
    fn ha_light_commands_translate_to_cync_commands() {
        assert_eq!(cmds(r#"{"state":"ON"}"#, 137, None), Ok(vec![ON]));
        assert_eq!(cmds(r#"{"state":"ON"}"#, 137, Some(true)), Ok(vec![ON]));
        assert_eq!(
            cmds(r#"{"brightness":30}"#, 137, Some(false)),
            Ok(vec![lvl(30)])
        );
        assert_eq!(
            cmds(r#"{"state":"OFF","brightness":50}"#, 137, Some(true)),
            Ok(vec![OFF])
        );
        assert_eq!(
            cmds(r#"{"state":"ON","brightness":39}"#, 137, Some(false)),
            Ok(vec![ON, lvl(39)])
        );
        assert_eq!(
            cmds(r#"{"state":"ON","brightness":39}"#, 137, Some(true)),
            Ok(vec![lvl(39)])
        );
        assert_eq!(
            cmds(r#"{"state":"ON","brightness":0}"#, 137, Some(true)),
            Ok(vec![OFF])
        );
        assert_eq!(
            cmds(r#"{"state":"ON","brightness":100}"#, 137, Some(true)),
            Ok(vec![lvl(100)])
        );
        assert_eq!(
            cmds(r#"{"state":"ON","color_temp":5600}"#, 137, Some(true)),
            Ok(vec![light(5, None, Some(LightColor::Temperature(72)))])
        );
        assert_eq!(
            cmds(
                r#"{"state":"ON","color":{"r":0,"g":251,"b":255}}"#,
                137,
                Some(true)
            ),
            Ok(vec![light(5, None, Some(LightColor::Rgb([0, 251, 255])))])
        );
        assert_eq!(
            cmds(r#"{"state":"ON","effect":"rainbow"}"#, 137, Some(true)),
            Ok(vec![Command::Effect {
                target: 5,
                effect: [0x02, 0x7a]
            }])
        );
    }

    #[test]
    fn transition_and_flash_are_accepted_and_ignored() {
        assert_eq!(
            cmds(
                r#"{"state":"ON","brightness":20,"transition":2.5,"flash":"short"}"#,
                137,
                Some(true)
            ),
            Ok(vec![lvl(20)])
        );
    }

    #[test]
    fn invalid_payloads_are_refused_with_a_reason_and_produce_no_command() {
        assert!(matches!(
            cmds("not json", 137, None),
            Err(CommandError::Malformed(_))
        ));
        assert!(matches!(
            cmds(r#"{"state":"MAYBE"}"#, 137, None),
            Err(CommandError::UnknownState(_))
        ));
        // One rule for numbers: outside the field's range is refused, never clamped.
        for out_of_range in [
            r#"{"brightness":-4}"#,
            r#"{"brightness":255}"#,
            r#"{"brightness":1e9}"#,
            r#"{"color_temp":1000}"#,
            r#"{"color_temp":1e9}"#,
            r#"{"color":{"r":300,"g":0,"b":0}}"#,
            r#"{"color":{"r":-1,"g":0,"b":0}}"#,
            r#"{"color":{"h":400,"s":50}}"#,
        ] {
            assert!(
                matches!(
                    cmds(out_of_range, 137, None),
                    Err(CommandError::OutOfRange { .. })
                ),
                "{out_of_range}"
            );
        }
        for percentage in ["-5", "101", "1e9", "NaN", "inf"] {
            assert!(
                matches!(
                    parse_fan_percentage(percentage.as_bytes()),
                    Err(CommandError::OutOfRange { .. } | CommandError::Malformed(_))
                ),
                "{percentage}"
            );
        }
        assert!(matches!(
            parse_fan_percentage(b"101"),
            Err(CommandError::OutOfRange { .. })
        ));
        assert_eq!(
            cmds(r#"{"color_temp":3000}"#, 148, None),
            Err(CommandError::Unsupported("colour temperature"))
        );
        assert_eq!(
            cmds(r#"{"color":{"r":1,"g":2,"b":3}}"#, 19, None),
            Err(CommandError::Unsupported("colour"))
        );
        assert_eq!(
            cmds(r#"{"brightness":3}"#, 68, None),
            Err(CommandError::Unsupported("brightness"))
        );
        assert_eq!(
            cmds(r#"{"effect":"disco"}"#, 137, None),
            Err(CommandError::UnknownEffect("disco".into()))
        );
        assert_eq!(cmds(r#"{}"#, 137, None), Err(CommandError::Empty));
        assert!(matches!(
            cmds(r#"{"color":{"x":0.3,"y":0.3}}"#, 137, None),
            Err(CommandError::Malformed(_))
        ));
    }

    #[test]
    fn switch_and_fan_payloads() {
        assert_eq!(parse_on_off(b"ON"), Ok(true));
        assert_eq!(parse_on_off(b" off\n"), Ok(false));
        assert_eq!(parse_on_off(br#"{"state":"ON"}"#), Ok(true));
        assert!(parse_on_off(b"1").is_err());
        assert!(parse_on_off(&[0xff, 0xfe]).is_err());
        assert_eq!(parse_fan_percentage(b"33"), Ok(50));
        assert_eq!(parse_fan_percentage(b"0"), Ok(0));
        assert!(parse_fan_percentage(b"-1").is_err());
        assert!(parse_fan_percentage(b"fast").is_err());
        assert_eq!(parse_fan_preset(b"high"), Ok(75));
        assert!(parse_fan_preset(b"warp").is_err());
    }
}
