//! Fuzz target: arbitrary payloads on every command topic of every kind of entity, through the
//! one MQTT → Cync translation. Nothing may panic; an accepted command becomes at least one Cync
//! command, every one addressed to the entity it was sent to.
#![no_main]

use cync_bridge::device::lookup;
use cync_bridge::mqtt::command::{translate, CommandTarget, CommandTopic};
use cync_bridge::mqtt::units::ColorTempUnit;
use cync_bridge::protocol::Command;
use libfuzzer_sys::fuzz_target;

/// A full-colour bulb, a tunable white, a dimmer, a plug, a switch, a fan, a thermostat and an
/// unknown type: every class the catalog knows.
const TYPES: [u16; 8] = [137, 5, 55, 64, 39, 81, 224, 9999];
const TOPICS: [CommandTopic; 3] = [
    CommandTopic::Set,
    CommandTopic::FanPercentage,
    CommandTopic::FanPreset,
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, payload)) = data.split_first() else {
        return;
    };
    let model = lookup(TYPES[usize::from(choice & 7)]);
    let target = CommandTarget {
        id: 42,
        class: model.class,
        caps: &model.caps,
        group: choice & 8 != 0,
        currently_on: [None, Some(false), Some(true)]
            .get(usize::from(choice >> 4) % 3)
            .copied()
            .flatten(),
    };
    let topic = TOPICS[usize::from(choice >> 6) % 3];
    let unit = if choice & 32 != 0 {
        ColorTempUnit::Mired
    } else {
        ColorTempUnit::Kelvin
    };
    if let Ok(translated) = translate(topic, &target, payload, unit) {
        assert!(
            !translated.commands.is_empty(),
            "accepted but nothing to send"
        );
        for command in &translated.commands {
            let addressed = match command {
                Command::Power { target, .. }
                | Command::Light { target, .. }
                | Command::Effect { target, .. } => *target,
                other => panic!("unexpected command {other:?}"),
            };
            assert_eq!(addressed, 42);
        }
    }
});
