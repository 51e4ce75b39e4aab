//! Connect sequences: what a device sends, and when, between its TLS handshake and steady state.
//!
//! Why it exists: real devices differ here (they pipeline their first packets within 2–15 s of
//! connecting, `docs/protocol.md#what-devices-do-with-the-cloud`, and the captures show the orders
//! below), and a bridge that only works with one order would fail in someone's house.
//! Each [`ConnectProfile`] replays the order and spacing of one group of real connections:
//!
//! | Profile | Evidence | Packets after TLS (times from the 0x28) |
//! |---|---|---|
//! | `Quiet` | 2025 home `3d54861c` and 11 more of 25 | 0x23 → 0xC3 |
//! | `Diagnostic` | 2025 home `60b18e42` and 6 more | 0x23 → 0xC3, +9 s 0x43 diagnostic |
//! | `Firmware` | 2025 home `325d5317`, `3d5466a6`, `45880d50` | 0x23, 0x43 TLV + 0x83 fw(network) before the 0x28 → 0xC3, +2 s 0x83 fw(device) |
//! | `Plug2024` | 2024 socat `Plug.md` | 0x23, 0x43 self record before the 0x28 → +1.1 s fw(network), +1.2 s 0xC3, +3 s fw(device), +9.4 s diagnostic, +14.7 s relay records, +22.5 s announce |
//!
//! (2025 home = the 2025 home capture, 2024 socat = the 2024 socat logs, both described under
//! `docs/protocol.md#evidence`.) The Bulb log of the 2024 socat logs shows a fifth order (state
//! report + self and relay records in one 356-byte read), but its author elided bytes in that read,
//! so it cannot be checked against the simulator byte for byte and is not offered.
//!
//! Owns only the tables; the session turns `Item`s into packets. Must never send anything before
//! the 0x23 (`docs/protocol.md#transport-and-tls`: the first application bytes are always the
//! hello).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One of the connect sequences real devices show (see the module table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectProfile {
    /// Hello and connect only (most devices in the 2025 home capture).
    #[default]
    Quiet,
    /// Hello, connect, diagnostic string after ~9 s.
    Diagnostic,
    /// TLV block and network firmware pipelined with the hello, device firmware after ~2 s.
    Firmware,
    /// The 2024 plug: self record with the hello, then firmware, diagnostic, relay records and an
    /// announce over ~22 s.
    Plug2024,
}

/// Every profile, in a fixed order (used to draw one per device from the seed).
pub const ALL_PROFILES: [ConnectProfile; 4] = [
    ConnectProfile::Quiet,
    ConnectProfile::Diagnostic,
    ConnectProfile::Firmware,
    ConnectProfile::Plug2024,
];

/// Something a device sends during its connect sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    /// 0xC3 connect / time request.
    Connect,
    /// 0x43 TLV block (`docs/protocol.md#tlv-block-and-diagnostic`).
    Tlv,
    /// 0x83 firmware frame, network firmware (`docs/protocol.md#firmware-frame`).
    FirmwareNetwork,
    /// 0x83 firmware frame, device firmware.
    FirmwareDevice,
    /// 0x43 diagnostic string.
    Diagnostic,
    /// 0x43 with the self record only (index 5).
    SelfRecord,
    /// 0x43 relay records (index 6, 7, …) for the Bluetooth-only devices it relays.
    RelayRecords,
    /// 0x83 `fa db 14` announce about itself.
    Announce,
}

/// When a step is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum When {
    /// Pipelined right after the hello, before the 0x28 arrives.
    WithHello,
    /// This long after the 0x28 arrives.
    AfterHelloAck(Duration),
}

/// One write of the connect sequence.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    pub when: When,
    pub items: &'static [Item],
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const QUIET: &[Step] = &[Step {
    when: When::AfterHelloAck(ms(0)),
    items: &[Item::Connect],
}];

const DIAGNOSTIC: &[Step] = &[
    Step {
        when: When::AfterHelloAck(ms(0)),
        items: &[Item::Connect],
    },
    Step {
        when: When::AfterHelloAck(ms(9_000)),
        items: &[Item::Diagnostic],
    },
];

const FIRMWARE: &[Step] = &[
    Step {
        when: When::WithHello,
        items: &[Item::Tlv, Item::FirmwareNetwork],
    },
    Step {
        when: When::AfterHelloAck(ms(0)),
        items: &[Item::Connect],
    },
    Step {
        when: When::AfterHelloAck(ms(2_000)),
        items: &[Item::FirmwareDevice],
    },
];

const PLUG_2024: &[Step] = &[
    Step {
        when: When::WithHello,
        items: &[Item::SelfRecord],
    },
    Step {
        when: When::AfterHelloAck(ms(1_100)),
        items: &[Item::FirmwareNetwork],
    },
    Step {
        when: When::AfterHelloAck(ms(1_200)),
        items: &[Item::Connect],
    },
    Step {
        when: When::AfterHelloAck(ms(3_000)),
        items: &[Item::FirmwareDevice],
    },
    Step {
        when: When::AfterHelloAck(ms(9_400)),
        items: &[Item::Diagnostic],
    },
    Step {
        when: When::AfterHelloAck(ms(14_700)),
        items: &[Item::RelayRecords],
    },
    Step {
        when: When::AfterHelloAck(ms(22_500)),
        items: &[Item::Announce],
    },
];

impl ConnectProfile {
    /// The writes of this profile, in order.
    pub(crate) fn steps(self) -> &'static [Step] {
        match self {
            ConnectProfile::Quiet => QUIET,
            ConnectProfile::Diagnostic => DIAGNOSTIC,
            ConnectProfile::Firmware => FIRMWARE,
            ConnectProfile::Plug2024 => PLUG_2024,
        }
    }

    /// How long after the 0x28 the last step is sent (the end of the connect phase).
    pub fn duration(self) -> Duration {
        self.steps()
            .iter()
            .filter_map(|s| match s.when {
                When::AfterHelloAck(d) => Some(d),
                When::WithHello => None,
            })
            .max()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_sends_exactly_one_connect_and_only_after_the_hello_ack() {
        for profile in ALL_PROFILES {
            let connects: Vec<When> = profile
                .steps()
                .iter()
                .filter(|s| s.items.contains(&Item::Connect))
                .map(|s| s.when)
                .collect();
            assert_eq!(connects.len(), 1, "{profile:?}");
            assert!(matches!(connects[0], When::AfterHelloAck(_)), "{profile:?}");
        }
    }

    #[test]
    fn steps_are_in_time_order() {
        for profile in ALL_PROFILES {
            let times: Vec<Duration> = profile
                .steps()
                .iter()
                .map(|s| match s.when {
                    When::WithHello => Duration::ZERO,
                    When::AfterHelloAck(d) => d,
                })
                .collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]), "{profile:?}");
        }
    }
}
