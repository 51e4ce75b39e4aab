//! Parsers for the config values that are not plain numbers, strings or booleans: durations with
//! a unit (`"500ms"`, `"10s"`, `"2m"`) and 4-byte device ids in hex (`"38e8cf46"`); source
//! networks are parsed by [`crate::server::IpNet`].
//!
//! Each parser returns a message that says what was expected, so the caller can put it next to
//! the key's name. They never panic on any input.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::protocol::PeerId;

/// A duration as written in the config file or environment, validated later by
/// [`parse_duration`]. Numbers are accepted by the deserializer (the environment provider turns
/// `10` into a number) only so that validation can reject them with a message that asks for a
/// unit, instead of a generic "invalid type".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DurationText(pub String);

impl From<&str> for DurationText {
    fn from(s: &str) -> Self {
        DurationText(s.to_owned())
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with a unit, e.g. \"500ms\", \"10s\" or \"2m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationText, E> {
                Ok(DurationText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationText, E> {
                Ok(DurationText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationText, E> {
                Ok(DurationText(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Longest duration any setting accepts: a day. Longer values are typos (`"65000s"` for
/// `"65s"`), and keeping durations small keeps `Instant + Duration` far from overflow.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses `"250ms"`, `"1.5s"`, `"10s"`, `"2m"` or `"1h"` (number, optional spaces, unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let expected = "expected a number with a unit ms, s, m or h, e.g. \"500ms\" or \"10s\"";
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration ({expected})"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "" => return Err(format!("{text:?} has no unit ({expected})")),
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit {unit:?} ({expected})"
            ))
        }
    };
    let seconds = value * scale;
    if !seconds.is_finite() || seconds > MAX_DURATION.as_secs_f64() {
        return Err(format!("{text:?} is longer than the maximum of 24h"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a 4-byte device id as 8 hex digits, as logs and metrics print it (`"38e8cf46"`);
/// `:`, `-` and spaces between bytes are ignored.
pub fn parse_device_id(text: &str) -> Result<PeerId, String> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | ' '))
        .collect();
    let bad = || format!("{text:?} is not a device id (expected 8 hex digits, e.g. \"38e8cf46\")");
    if digits.len() != 8 || !digits.is_ascii() {
        return Err(bad());
    }
    let mut id = [0u8; 4];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(PeerId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit_and_stay_below_a_day() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 2m "), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("10 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("25h").unwrap_err().contains("24h"));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn device_ids_are_eight_hex_digits_with_optional_separators() {
        assert_eq!(
            parse_device_id("38e8cf46"),
            Ok(PeerId([0x38, 0xe8, 0xcf, 0x46]))
        );
        assert_eq!(
            parse_device_id("60:b1:7e:f1"),
            Ok(PeerId([0x60, 0xb1, 0x7e, 0xf1]))
        );
        assert!(parse_device_id("38e8cf4").is_err());
        assert!(parse_device_id("zz e8 cf 46").is_err());
        assert!(parse_device_id("3é8cf46").is_err());
    }
}
