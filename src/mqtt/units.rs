//! Conversions between Home Assistant units and Cync units (`docs/protocol.md#brightness-and-colour`, `#fan-speed`), each a small
//! total function so the edges are easy to test.
//!
//! - Brightness: HA discovery says `brightness_scale: 100`, so values pass through (clamped).
//! - Colour temperature: Cync 0 (warm) … 100 (cool) is fixed to 2000 … 7000 K whatever the bulb;
//!   50 K per step, rounding down toward warm like the legacy add-on does.
//! - Fan speed: a fan controller takes a brightness command; HA percentages snap to the four
//!   speeds the legacy mapping uses (25/50/75/100).

/// Warmest kelvin the Cync 0–100 scale maps to.
pub const CYNC_MIN_KELVIN: u16 = 2000;
/// Coolest kelvin the Cync 0–100 scale maps to.
pub const CYNC_MAX_KELVIN: u16 = 7000;

/// Kelvin → Cync temperature 0–100.
pub fn kelvin_to_cync(kelvin: u32) -> u8 {
    let k = kelvin.clamp(u32::from(CYNC_MIN_KELVIN), u32::from(CYNC_MAX_KELVIN));
    ((k - u32::from(CYNC_MIN_KELVIN)) / 50) as u8
}

/// Cync temperature 0–100 → kelvin (values above 100 are status codes; callers check first).
pub fn cync_to_kelvin(temp: u8) -> u16 {
    CYNC_MIN_KELVIN + 50 * u16::from(temp.min(100))
}

/// The unit Home Assistant uses for `color_temp` in JSON-light states and commands. HA learned
/// kelvin for MQTT lights in 2025.1 (`color_temp_kelvin: true`); older releases read and send
/// mireds whatever the config says, so the bridge can speak either.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorTempUnit {
    /// Kelvin (HA 2025.1 and later).
    #[default]
    Kelvin,
    /// Mireds (1,000,000 / K), for HA before 2025.1.
    Mired,
}

impl ColorTempUnit {
    /// An HA colour temperature → Cync 0–100. `None` for a non-positive or non-finite value.
    pub fn to_cync(self, value: f64) -> Option<u8> {
        if !value.is_finite() || value <= 0.0 {
            return None;
        }
        Some(match self {
            ColorTempUnit::Kelvin => kelvin_to_cync(value.round() as u32),
            // Mireds are coarse near the cool end; round to the nearest Cync step so every step
            // survives the trip through HA and back.
            ColorTempUnit::Mired => {
                let k = (1_000_000.0 / value)
                    .clamp(f64::from(CYNC_MIN_KELVIN), f64::from(CYNC_MAX_KELVIN));
                ((k - f64::from(CYNC_MIN_KELVIN)) / 50.0).round() as u8
            }
        })
    }

    /// Cync 0–100 → the HA value.
    pub fn from_cync(self, temp: u8) -> u16 {
        let k = cync_to_kelvin(temp);
        match self {
            ColorTempUnit::Kelvin => k,
            ColorTempUnit::Mired => (1_000_000.0 / f64::from(k)).round() as u16,
        }
    }

    /// The (min, max) to advertise for a kelvin range: mireds swap ends.
    pub fn range(self, min_kelvin: u16, max_kelvin: u16) -> (u16, u16) {
        match self {
            ColorTempUnit::Kelvin => (min_kelvin, max_kelvin),
            ColorTempUnit::Mired => (
                (1_000_000.0 / f64::from(max_kelvin.max(1))).round() as u16,
                (1_000_000.0 / f64::from(min_kelvin.max(1))).round() as u16,
            ),
        }
    }
}

/// HA brightness (scale 100) → Cync brightness 0–100.
pub fn brightness_to_cync(brightness: u32) -> u8 {
    brightness.min(100) as u8
}

/// Named fan speeds and the brightness each one sends (`docs/protocol.md#fan-speed`).
pub const FAN_PRESETS: [(&str, u8); 4] = [("low", 25), ("medium", 50), ("high", 75), ("max", 100)];

/// HA fan percentage → Cync level: 0 → 0, 1–25 → 25, 26–50 → 50, 51–75 → 75, above → 100.
pub fn fan_percentage_to_level(percentage: u32) -> u8 {
    match percentage {
        0 => 0,
        1..=25 => 25,
        26..=50 => 50,
        51..=75 => 75,
        _ => 100,
    }
}

/// Cync level → the preset it corresponds to, if any.
pub fn fan_level_to_preset(level: u8) -> Option<&'static str> {
    FAN_PRESETS
        .iter()
        .find(|(_, l)| *l == level)
        .map(|(name, _)| *name)
}

/// Preset name → Cync level.
pub fn fan_preset_to_level(preset: &str) -> Option<u8> {
    FAN_PRESETS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(preset.trim()))
        .map(|(_, l)| *l)
}

/// HS colour (hue degrees, saturation percent) at full value → RGB, for HA clients that send
/// `{"h","s"}` although we advertise `rgb`.
pub fn hs_to_rgb(hue: f64, saturation: f64) -> [u8; 3] {
    let h = hue.rem_euclid(360.0) / 60.0;
    let s = (saturation / 100.0).clamp(0.0, 1.0);
    let c = s;
    let x = c * (1.0 - ((h % 2.0) - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = 1.0 - c;
    [r, g, b].map(|v| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kelvin_edges_follow_protocol_6_4() {
        assert_eq!(kelvin_to_cync(0), 0);
        assert_eq!(kelvin_to_cync(1999), 0);
        assert_eq!(kelvin_to_cync(2000), 0);
        assert_eq!(kelvin_to_cync(2049), 0);
        assert_eq!(kelvin_to_cync(2050), 1);
        assert_eq!(kelvin_to_cync(4500), 50);
        assert_eq!(kelvin_to_cync(6999), 99);
        assert_eq!(kelvin_to_cync(7000), 100);
        assert_eq!(kelvin_to_cync(u32::MAX), 100);
        assert_eq!(cync_to_kelvin(0), 2000);
        assert_eq!(cync_to_kelvin(72), 5600);
        assert_eq!(cync_to_kelvin(100), 7000);
        assert_eq!(cync_to_kelvin(254), 7000);
        for t in 0..=100u8 {
            assert_eq!(
                kelvin_to_cync(u32::from(cync_to_kelvin(t))),
                t,
                "round trip {t}"
            );
        }
    }

    #[test]
    fn every_cync_step_survives_a_round_trip_through_either_unit() {
        for unit in [ColorTempUnit::Kelvin, ColorTempUnit::Mired] {
            for t in 0..=100u8 {
                assert_eq!(
                    unit.to_cync(f64::from(unit.from_cync(t))),
                    Some(t),
                    "{unit:?} {t}"
                );
            }
            assert_eq!(unit.to_cync(0.0), None);
            assert_eq!(unit.to_cync(f64::NAN), None);
        }
        assert_eq!(ColorTempUnit::Mired.from_cync(0), 500);
        assert_eq!(ColorTempUnit::Mired.from_cync(100), 143);
        assert_eq!(ColorTempUnit::Mired.range(2000, 7000), (143, 500));
        assert_eq!(
            ColorTempUnit::Mired.to_cync(10.0),
            Some(100),
            "beyond 7000 K clamps"
        );
    }

    #[test]
    fn fan_percentages_snap_to_the_four_speeds() {
        let got: Vec<u8> = [0, 1, 25, 26, 50, 51, 75, 76, 100, 1000]
            .map(fan_percentage_to_level)
            .to_vec();
        assert_eq!(got, vec![0, 25, 25, 50, 50, 75, 75, 100, 100, 100]);
        assert_eq!(fan_preset_to_level("Medium"), Some(50));
        assert_eq!(fan_preset_to_level("turbo"), None);
        assert_eq!(fan_level_to_preset(75), Some("high"));
        assert_eq!(fan_level_to_preset(60), None);
    }

    #[test]
    fn brightness_is_clamped_to_the_cync_range() {
        assert_eq!(brightness_to_cync(0), 0);
        assert_eq!(brightness_to_cync(100), 100);
        assert_eq!(brightness_to_cync(255), 100);
    }

    #[test]
    fn hs_primaries_map_to_rgb_primaries() {
        assert_eq!(hs_to_rgb(0.0, 100.0), [255, 0, 0]);
        assert_eq!(hs_to_rgb(120.0, 100.0), [0, 255, 0]);
        assert_eq!(hs_to_rgb(240.0, 100.0), [0, 0, 255]);
        assert_eq!(hs_to_rgb(77.0, 0.0), [255, 255, 255]);
    }
}
