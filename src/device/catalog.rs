//! The Cync model catalog: one declarative table from device-type id to what the device can do.
//!
//! Exists because the type id is the only thing a device tells us about itself, and every layer
//! above (HA discovery, command validation, the simulator) needs the same answer. Owns [`MODELS`]
//! (a transcription of the legacy add-on's model table, `metadata/model_info.py` in the public
//! `jslamartina/hass-addons` repository; `docs/protocol.md#device-models`) and [`EFFECTS`]
//! (`docs/protocol.md#effects`). Must never match on type ids anywhere else, never fail on an
//! unknown id (it gets a power-only fallback), and never guess capabilities beyond what a row says.

/// What kind of Home Assistant entity a device becomes. Finer than the legacy light/switch split
/// because HA needs different platforms for dimmers, plugs and fans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceClass {
    /// A bulb, strip or fixture (legacy class `light`).
    Light,
    /// A wall switch that only switches (legacy `switch` without dimmable/plug/fan).
    Switch,
    /// A wall switch with the `dimmable` capability.
    Dimmer,
    /// A switch with the `plug` capability (smart plugs, types 64–68).
    Plug,
    /// A switch with the `fan` capability (fan controller, type 81).
    Fan,
    /// The thermostat (type 224); no protocol support is known (`docs/protocol.md#device-models`).
    Thermostat,
    /// A type id missing from the table; treated as a plain on/off device.
    Unknown,
}

/// What a device accepts and reports. One flag per HA feature, so discovery can be built from
/// this struct alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capabilities {
    /// On/off (power command, `docs/protocol.md#power`).
    pub power: bool,
    /// Brightness 0–100 (`docs/protocol.md#brightness-and-colour`).
    pub brightness: bool,
    /// Colour temperature 0–100 mapped onto [`KelvinRange`].
    pub color_temp: bool,
    #[allow(missing_docs)]
    pub rgb: bool,
    /// Built-in light shows ([`EFFECTS`], `docs/protocol.md#effects`).
    pub effects: bool,
    /// Fan speed, carried in the brightness byte (`docs/protocol.md#fan-speed`).
    pub fan: bool,
}

/// The colour-temperature range advertised to Home Assistant, in Kelvin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KelvinRange {
    /// Warmest end (device value 0).
    pub min: u16,
    /// Coolest end (device value 100).
    pub max: u16,
}

/// The fixed scale every Cync device uses: device 0–100 maps onto 2000–7000 K regardless of the
/// bulb's real range (`docs/protocol.md#brightness-and-colour`, legacy `CYNC_MINK`/`CYNC_MAXK`).
pub const DEFAULT_KELVIN: KelvinRange = KelvinRange {
    min: 2000,
    max: 7000,
};

/// One row of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Model {
    /// The device-type id reported by the device / cloud (`deviceType`).
    pub type_id: u16,
    /// Which HA entity this becomes.
    pub class: DeviceClass,
    /// Human-readable model name, as in legacy (used for HA device info).
    pub name: &'static str,
    /// Retail SKU when legacy knows it.
    pub model_id: Option<&'static str>,
    /// Has Wi-Fi, i.e. can hold a TCP session with us (legacy `protocol.TCP`); `false` means
    /// Bluetooth-only, reachable only through a Wi-Fi relay in the same mesh.
    pub wifi: bool,
    /// What the device accepts.
    pub caps: Capabilities,
    /// Colour-temperature range (meaningful only when `caps.color_temp`).
    pub kelvin: KelvinRange,
    /// Where this row's facts come from.
    pub source: Source,
}

/// The public project a row's type id, class and capabilities were read from (facts only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The legacy add-on's model table (`metadata/model_info.py` of `jslamartina/hass-addons`):
    /// class, capabilities, Wi-Fi flag, names and SKUs.
    LegacyAddon,
    /// pycync's capability lists (`devices/capabilities.py` of `Kinachi249/pycync`, taken from
    /// the Android app 6.20.0): types the legacy table lacks. Only the capability is known, so
    /// such a row says Bluetooth-only and a generic name.
    Pycync,
    /// Not in any table: the power-only fallback of [`lookup`].
    None,
}

/// Nothing at all: the thermostat (no capability object in the legacy table), which we recognise
/// but cannot command.
const NO_CAPS: Capabilities = Capabilities {
    power: false,
    brightness: false,
    color_temp: false,
    rgb: false,
    effects: false,
    fan: false,
};
/// On/off only: switch "power (defaults)" or "—", plug "power, plug".
const ON_OFF: Capabilities = Capabilities {
    power: true,
    ..NO_CAPS
};
/// Light "dimmable only", switch "power, dimmable". Legacy gives dimmer switches brightness
/// only through its discovery code; here the table says it.
const DIM: Capabilities = Capabilities {
    brightness: true,
    ..ON_OFF
};
/// Light "dimmable, tunable".
const WHITE: Capabilities = Capabilities {
    color_temp: true,
    ..DIM
};
/// Light "dimmable, tunable, color". Effects are inferred, not listed in the legacy table: the
/// light shows are colour animations, so only full-colour lights get them; no capture shows which
/// device types actually accept the `e2` command.
const FULL: Capabilities = Capabilities {
    rgb: true,
    effects: true,
    ..WHITE
};
/// Switch "power, fan". Speed travels in the brightness command (`docs/protocol.md#fan-speed`) but
/// HA sees a fan, so `brightness` stays false.
const FAN_SPEED: Capabilities = Capabilities {
    fan: true,
    ..ON_OFF
};

/// A class plus its capabilities: the recurring "kinds" of the legacy table, so each row stays
/// one line.
type Kind = (DeviceClass, Capabilities);

const COLOR: Kind = (DeviceClass::Light, FULL);
const TUNABLE: Kind = (DeviceClass::Light, WHITE);
const DIMMABLE: Kind = (DeviceClass::Light, DIM);
const DIMMER: Kind = (DeviceClass::Dimmer, DIM);
const SWITCH: Kind = (DeviceClass::Switch, ON_OFF);
const PLUG: Kind = (DeviceClass::Plug, ON_OFF);
const FAN: Kind = (DeviceClass::Fan, FAN_SPEED);
const THERMOSTAT: Kind = (DeviceClass::Thermostat, NO_CAPS);

/// Wi-Fi column of the legacy table: "yes" (legacy `protocol.TCP = True`).
const WIFI: bool = true;
/// Wi-Fi column of the legacy table: "no" — Bluetooth only.
const BT: bool = false;

/// Builds one table row with the default Kelvin range.
const fn m(
    type_id: u16,
    kind: Kind,
    wifi: bool,
    name: &'static str,
    model_id: Option<&'static str>,
) -> Model {
    Model {
        type_id,
        class: kind.0,
        name,
        model_id,
        wifi,
        caps: kind.1,
        kelvin: DEFAULT_KELVIN,
        source: Source::LegacyAddon,
    }
}

/// A row known only from pycync's capability lists: Bluetooth-only (nothing more is known) and
/// a generic name.
const fn p(type_id: u16, kind: Kind, name: &'static str) -> Model {
    Model {
        source: Source::Pycync,
        ..m(type_id, kind, BT, name, None)
    }
}

impl Model {
    /// Overrides the warm end of the Kelvin range (legacy `min_kelvin`; it never sets a
    /// different `max_kelvin`, so the default cool end stays).
    const fn min_kelvin(self, min: u16) -> Model {
        Model {
            kelvin: KelvinRange {
                min,
                max: self.kelvin.max,
            },
            ..self
        }
    }
}

/// The legacy model table, row for row (`m`), and the types only pycync's lists know (`p`),
/// sorted by type id so [`lookup`] can binary-search (a unit test enforces order and
/// uniqueness). Name and SKU are split as in legacy `model_info.py`; each row names its
/// [`Source`].
#[rustfmt::skip]
pub const MODELS: &[Model] = &[
    m(5,   TUNABLE,    BT,   "Tunable White A19 Bulb", None),
    m(6,   COLOR,      BT,   "Full Color Light (Unknown)", None),
    m(7,   COLOR,      BT,   "Full Color Light (Unknown)", None),
    m(8,   COLOR,      BT,   "Full Color Light (Unknown)", None),
    m(10,  TUNABLE,    BT,   "Tunable White Light (Unknown)", None),
    m(11,  TUNABLE,    BT,   "Tunable White Light (Unknown)", None),
    m(14,  TUNABLE,    BT,   "Tunable White Light (Unknown)", None),
    m(15,  TUNABLE,    BT,   "Tunable White Light (Unknown)", None),
    m(19,  TUNABLE,    BT,   "Tunable White A19 Bulb", None),
    m(20,  TUNABLE,    BT,   "Tunable White Light (Unknown)", None),
    m(21,  COLOR,      BT,   "C by GE Full Color A19 Bulb (BTLE only)", Some("CLEDA1911C2")),
    m(22,  COLOR,      BT,   "C by GE Full Color BR30 Bulb (BTLE only)", Some("CLEDR3010C2")),
    m(23,  COLOR,      BT,   "Full Color Light (Unknown)", None),
    m(25,  TUNABLE,    BT,   "Tunable White Light (Unknown)", None),
    m(26,  TUNABLE,    BT,   "C by GE Tunable White BR30 Bulb (BTLE only)", Some("CLEDR309S2")),
    m(28,  TUNABLE,    BT,   "Tunable White Light (Unknown)", None),
    m(29,  TUNABLE,    BT,   "Tunable White Light (Unknown)", None),
    // 30 and 31 say "BTLE only" in their name but legacy marks them TCP; the flag wins.
    m(30,  COLOR,      WIFI, "C by GE Full Color A19 Bulb (BTLE only)", Some("CLEDA1911C2")),
    m(31,  COLOR,      WIFI, "C by GE Full Color A19 Bulb (BTLE only)", Some("CLEDA1911C2")),
    m(32,  COLOR,      BT,   "Full Color Light (Unknown)", None),
    m(33,  COLOR,      BT,   "Full Color Light (Unknown)", None),
    m(34,  COLOR,      BT,   "Full Color Light (Unknown)", None),
    m(35,  COLOR,      BT,   "Full Color Light (Unknown)", None),
    // 37 and 49 also have motion/ambient-light sensors; no protocol support is known
    // (docs/protocol.md#device-models).
    m(37,  DIMMER,     WIFI, "Dimmer Switch with Motion and Ambient Light", Some("CSWDMOCBWF1")),
    m(39,  SWITCH,     WIFI, "C by GE Smart Switch", None),
    p(41,  COLOR,  "Full Color Light (Unknown)"),
    m(42,  COLOR,      WIFI, "Reveal HD+ Full Color Under Cabinet Light - 18 Inch", None),
    m(43,  COLOR,      WIFI, "Reveal HD+ Full Color Under Cabinet Light - 24 Inch", None),
    p(44,  COLOR,  "Full Color Light (Unknown)"),
    p(46,  COLOR,  "Full Color Light (Unknown)"),
    p(47,  COLOR,  "Full Color Light (Unknown)"),
    m(48,  SWITCH,     WIFI, "C by GE (C Start Smart) Switch", Some("CSWDMBLBWF1")),
    m(49,  DIMMER,     WIFI, "C by GE (C Start Smart) Dimmer Switch with Motion and Ambient Light", Some("CSWDMOCBWF1")),
    m(52,  SWITCH,     WIFI, "Switch", None),
    m(55,  DIMMER,     WIFI, "Dimmer Switch - No Neutral", None),
    m(58,  SWITCH,     WIFI, "Switch - No Neutral", None),
    m(59,  SWITCH,     WIFI, "Switch", None),
    m(64,  PLUG,       WIFI, "Indoor Plug", None),
    m(65,  PLUG,       WIFI, "Indoor Plug (Unknown)", None),
    m(66,  PLUG,       WIFI, "Indoor Plug (Unknown)", None),
    m(67,  PLUG,       WIFI, "Indoor Plug (Unknown)", None),
    m(68,  PLUG,       WIFI, "Indoor Plug", None),
    p(69,  PLUG,   "Plug (Unknown)"),
    p(71,  COLOR,  "Full Color Light (Unknown)"),
    p(72,  COLOR,  "Full Color Light (Unknown)"),
    p(73,  COLOR,  "Full Color Light (Unknown)"),
    p(74,  COLOR,  "Full Color Light (Unknown)"),
    p(75,  COLOR,  "Full Color Light (Unknown)"),
    p(76,  COLOR,  "Full Color Light (Unknown)"),
    m(80,  TUNABLE,    WIFI, "Tunable White Light (Unknown)", None),
    m(81,  FAN,        WIFI, "Fan Controller", Some("CSWFSBLBWF1/ST-1P")),
    m(82,  TUNABLE,    BT,   "Tunable White Light (Unknown)", None),
    m(83,  TUNABLE,    BT,   "Tunable White Light (Unknown)", None),
    m(85,  TUNABLE,    BT,   "Tunable White Light (Unknown)", None),
    p(97,  COLOR,  "Full Color Light (Unknown)"),
    p(98,  COLOR,  "Full Color Light (Unknown)"),
    p(101, COLOR,  "Full Color Light (Unknown)"),
    p(102, COLOR,  "Full Color Light (Unknown)"),
    p(104, COLOR,  "Full Color Light (Unknown)"),
    p(105, COLOR,  "Full Color Light (Unknown)"),
    p(107, COLOR,  "Full Color Light (Unknown)"),
    p(108, COLOR,  "Full Color Light (Unknown)"),
    p(109, COLOR,  "Full Color Light (Unknown)"),
    p(110, COLOR,  "Full Color Light (Unknown)"),
    p(111, PLUG,   "Plug (Unknown)"),
    m(113, DIMMER,     BT,   "Wire-Free Dimmer with White Temperature Switch (BTLE only)", None),
    p(121, FAN,    "Fan Controller (Unknown)"),
    p(123, COLOR,  "Full Color Light (Unknown)"),
    m(129, TUNABLE,    WIFI, "Tunable White Light (Unknown)", None),
    m(130, TUNABLE,    WIFI, "Tunable White Light (Unknown)", None),
    m(131, COLOR,      WIFI, "Full Color A19 Bulb", None),
    m(132, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    m(133, COLOR,      WIFI, "Full Color LED Light Strip Controller", None),
    m(135, TUNABLE,    WIFI, "Tunable White Light (Unknown)", None),
    m(136, TUNABLE,    WIFI, "Tunable White Light (Unknown)", None),
    m(137, COLOR,      WIFI, "Full Color A19 Bulb", None),
    m(138, COLOR,      WIFI, "Full Color BR30 Floodlight", Some("CLEDR309CD1")),
    m(139, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    m(140, COLOR,      WIFI, "Full Color Outdoor PAR38 Floodlight", Some("CLEDP3815CD1")),
    m(141, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    m(142, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    m(143, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    m(144, TUNABLE,    WIFI, "Tunable White Light (Unknown)", None),
    m(145, TUNABLE,    WIFI, "Tunable White Light (Unknown)", None),
    m(146, COLOR,      WIFI, "Full Color Edison ST19 Bulb", Some("CLEDST196CDGS")),
    m(147, COLOR,      WIFI, "Full Color Edison G25 Bulb", Some("CLEDG256CDGS")),
    // 148/152: fixed-temperature whites; legacy records only min_kelvin = 2700.
    m(148, DIMMABLE,   WIFI, "White Edison ST19 Bulb", None).min_kelvin(2700),
    m(152, DIMMABLE,   WIFI, "Reveal HD+ White A19 Bulb", None).min_kelvin(2700),
    m(153, COLOR,      BT,   "Full Color Light (Unknown)", None),
    m(154, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    p(155, COLOR,  "Full Color Light (Unknown)"),
    m(156, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    p(157, COLOR,  "Full Color Light (Unknown)"),
    m(158, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    m(159, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    m(160, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    m(161, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    m(162, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    m(163, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    m(164, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    m(165, COLOR,      WIFI, "Full Color Light (Unknown)", None),
    p(166, COLOR,  "Full Color Light (Unknown)"),
    p(167, COLOR,  "Full Color Light (Unknown)"),
    p(168, COLOR,  "Full Color Light (Unknown)"),
    m(169, COLOR,      WIFI, "Reveal HD+ Full Color 4 Inch Wafer Downlight", Some("CFIXCNLR4CRVD")),
    p(170, COLOR,  "Full Color Light (Unknown)"),
    m(171, COLOR,      WIFI, "Cync Full Color Direct Connect A19 Bulb", Some("CLEDA1921C4")),
    p(172, PLUG,   "Plug (Unknown)"),
    p(173, COLOR,  "Full Color Light (Unknown)"),
    p(174, COLOR,  "Full Color Light (Unknown)"),
    p(175, COLOR,  "Full Color Light (Unknown)"),
    p(177, COLOR,  "Full Color Light (Unknown)"),
    p(180, COLOR,  "Full Color Light (Unknown)"),
    p(181, COLOR,  "Full Color Light (Unknown)"),
    p(182, COLOR,  "Full Color Light (Unknown)"),
    m(224, THERMOSTAT, WIFI, "Thermostat", None),
];

/// Name given to type ids missing from [`MODELS`].
pub const UNKNOWN_NAME: &str = "Unknown Cync device";

/// The model for `type_id`. Never fails: an unknown id yields class [`DeviceClass::Unknown`],
/// power only, Bluetooth-only (we assume nothing), named [`UNKNOWN_NAME`] — so a new product
/// still appears in HA as an on/off entity instead of breaking the session that reported it.
/// Returned by value so that the fallback carries the id that was asked for.
pub fn lookup(type_id: u16) -> Model {
    MODELS
        .binary_search_by_key(&type_id, |model| model.type_id)
        .ok()
        .and_then(|index| MODELS.get(index).copied())
        .unwrap_or(Model {
            type_id,
            class: DeviceClass::Unknown,
            name: UNKNOWN_NAME,
            model_id: None,
            wifi: false,
            caps: ON_OFF,
            kelvin: DEFAULT_KELVIN,
            source: Source::None,
        })
}

/// Whether `type_id` has a row in [`MODELS`] (for logging "unknown model, please report").
pub fn is_known(type_id: u16) -> bool {
    MODELS
        .binary_search_by_key(&type_id, |model| model.type_id)
        .is_ok()
}

/// Types whose one mesh node has several separately named outputs (endpoints), with how many.
/// Source: the cync_lights integration's `MULTIELEMENT` list (type 67, two outlets) and the
/// cloud's answers for that type, which carry one row per outlet beside the node's own row
/// (`D = H·10^6 + e·1000 + n`).
pub const MULTI_ENDPOINT: &[(u16, u8)] = &[(67, 2)];

/// How many endpoints a type has; 1 for everything not in [`MULTI_ENDPOINT`].
pub fn endpoint_count(type_id: u16) -> u8 {
    MULTI_ENDPOINT
        .iter()
        .find(|(t, _)| *t == type_id)
        .map_or(1, |(_, n)| *n)
}

/// The built-in light shows and the two parameter bytes of their `e2` command
/// (`docs/protocol.md#effects`), in the
/// order the Cync app lists them. Fireworks is `03 DA` as captured; legacy's constant `3A DA`
/// disagrees with the capture, and the capture wins.
pub const EFFECTS: &[(&str, [u8; 2])] = &[
    ("candle", [0x01, 0xf1]),
    ("cyber", [0x43, 0x9f]),
    ("rainbow", [0x02, 0x7a]),
    ("fireworks", [0x03, 0xda]),
    ("volcanic", [0x04, 0xf4]),
    ("aurora", [0x05, 0x1c]),
    ("happy_holidays", [0x06, 0x54]),
    ("red_white_blue", [0x07, 0x4f]),
    ("vegas", [0x08, 0xe3]),
    ("party_time", [0x09, 0x06]),
];

/// The command bytes for an effect name as offered to HA (exact, lower-case name).
pub fn effect_by_name(name: &str) -> Option<[u8; 2]> {
    EFFECTS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, bytes)| *bytes)
}

/// The effect name for two command bytes, e.g. when decoding a captured `e2` command.
pub fn effect_name(bytes: [u8; 2]) -> Option<&'static str> {
    EFFECTS
        .iter()
        .find(|(_, known)| *known == bytes)
        .map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected values below were read off the legacy model table by hand, not derived from the
    /// table, so a typo in a row shows up here.
    #[test]
    fn type_137_is_a_full_colour_wifi_bulb_with_effects() {
        let model = lookup(137);
        assert_eq!(model.class, DeviceClass::Light);
        assert_eq!(model.name, "Full Color A19 Bulb");
        assert!(model.wifi);
        assert_eq!(
            model.caps,
            Capabilities {
                power: true,
                brightness: true,
                color_temp: true,
                rgb: true,
                effects: true,
                fan: false
            }
        );
        assert_eq!(
            model.kelvin,
            KelvinRange {
                min: 2000,
                max: 7000
            }
        );
    }

    #[test]
    fn type_68_is_a_wifi_plug_with_power_only() {
        let model = lookup(68);
        assert_eq!(model.class, DeviceClass::Plug);
        assert_eq!(model.name, "Indoor Plug");
        assert!(model.wifi);
        assert!(model.caps.power);
        assert!(!model.caps.brightness && !model.caps.fan && !model.caps.rgb);
    }

    /// From pycync's lists, not the legacy table: read off those lists by hand.
    #[test]
    fn types_only_pycync_lists_have_their_class_and_say_so() {
        assert_eq!(lookup(172).class, DeviceClass::Plug);
        assert_eq!(lookup(172).source, Source::Pycync);
        assert_eq!(lookup(121).class, DeviceClass::Fan);
        let strip = lookup(170);
        assert!(strip.caps.rgb && strip.caps.color_temp && !strip.wifi);
        assert_eq!(lookup(137).source, Source::LegacyAddon);
        assert_eq!(lookup(9999).source, Source::None);
    }

    #[test]
    fn every_plug_type_64_to_68_is_a_plug() {
        for type_id in 64..=68 {
            assert_eq!(lookup(type_id).class, DeviceClass::Plug, "type {type_id}");
        }
    }

    #[test]
    fn type_81_is_the_fan_controller_with_its_sku() {
        let model = lookup(81);
        assert_eq!(model.class, DeviceClass::Fan);
        assert_eq!(model.model_id, Some("CSWFSBLBWF1/ST-1P"));
        assert!(model.caps.power && model.caps.fan);
        assert!(!model.caps.brightness);
    }

    #[test]
    fn type_55_is_a_dimmer_switch() {
        let model = lookup(55);
        assert_eq!(model.class, DeviceClass::Dimmer);
        assert_eq!(model.name, "Dimmer Switch - No Neutral");
        assert!(model.caps.power && model.caps.brightness);
        assert!(!model.caps.color_temp);
    }

    #[test]
    fn switch_rows_without_a_capability_object_are_power_only_switches() {
        for type_id in [48, 52, 58, 59] {
            let model = lookup(type_id);
            assert_eq!(model.class, DeviceClass::Switch, "type {type_id}");
            assert_eq!(model.caps, ON_OFF, "type {type_id}");
        }
    }

    #[test]
    fn type_148_is_dimmable_only_with_a_2700_k_floor() {
        let model = lookup(148);
        assert_eq!(model.class, DeviceClass::Light);
        assert!(model.caps.brightness);
        assert!(!model.caps.color_temp && !model.caps.rgb && !model.caps.effects);
        assert_eq!(model.kelvin.min, 2700);
        assert_eq!(lookup(152).kelvin.min, 2700);
    }

    #[test]
    fn type_21_is_bluetooth_only_with_its_sku() {
        let model = lookup(21);
        assert!(!model.wifi);
        assert_eq!(model.model_id, Some("CLEDA1911C2"));
        assert_eq!(model.name, "C by GE Full Color A19 Bulb (BTLE only)");
    }

    #[test]
    fn type_224_is_a_thermostat_with_no_capabilities() {
        let model = lookup(224);
        assert_eq!(model.class, DeviceClass::Thermostat);
        assert_eq!(model.caps, NO_CAPS);
        assert!(!model.caps.power);
    }

    #[test]
    fn unknown_type_53_falls_back_to_a_power_only_generic_model() {
        assert!(!is_known(53));
        let model = lookup(53);
        assert_eq!(model.type_id, 53);
        assert_eq!(model.class, DeviceClass::Unknown);
        assert_eq!(model.name, "Unknown Cync device");
        assert!(model.caps.power);
        assert!(!model.caps.brightness && !model.caps.fan && !model.caps.effects);
    }

    #[test]
    fn lookup_never_fails_and_keeps_the_asked_id() {
        for type_id in 0..=u16::MAX {
            let model = lookup(type_id);
            assert_eq!(model.type_id, type_id);
            assert_eq!(is_known(type_id), model.class != DeviceClass::Unknown);
        }
    }

    #[test]
    fn table_is_sorted_by_type_id_without_duplicates() {
        for pair in MODELS.windows(2) {
            assert!(
                pair[0].type_id < pair[1].type_id,
                "rows {} and {} are out of order or duplicated",
                pair[0].type_id,
                pair[1].type_id
            );
        }
    }

    #[test]
    fn table_has_every_legacy_row_and_every_type_only_pycync_lists() {
        // The legacy model table lists 78 type ids; pycync's lists add 38 it lacks.
        let count = |source| MODELS.iter().filter(|m| m.source == source).count();
        assert_eq!(count(Source::LegacyAddon), 78);
        assert_eq!(count(Source::Pycync), 38);
    }

    #[test]
    fn only_full_colour_lights_offer_effects() {
        for model in MODELS {
            assert_eq!(model.caps.effects, model.caps.rgb, "type {}", model.type_id);
            if model.caps.rgb || model.caps.color_temp {
                assert_eq!(model.class, DeviceClass::Light, "type {}", model.type_id);
            }
        }
    }

    #[test]
    fn fireworks_uses_the_captured_bytes_not_the_legacy_constant() {
        assert_eq!(effect_by_name("fireworks"), Some([0x03, 0xda]));
        assert_eq!(effect_name([0x3a, 0xda]), None);
    }

    #[test]
    fn effect_names_and_bytes_round_trip_and_are_unique() {
        assert_eq!(EFFECTS.len(), 10);
        for (name, bytes) in EFFECTS {
            assert_eq!(effect_by_name(name), Some(*bytes));
            assert_eq!(effect_name(*bytes), Some(*name));
        }
        assert_eq!(effect_by_name("candle"), Some([0x01, 0xf1]));
        assert_eq!(effect_by_name("Candle"), None);
    }
}
