//! The local date and time the bridge sends in every 0xC8 (`docs/protocol.md#connect-and-time`).
//!
//! Devices take this as their clock — their diagnostic string echoes the local hour and minute —
//! so it must be the real local time of the configured IANA zone, including its current UTC
//! offset (daylight saving changes it twice a year), never the legacy server's fixed 2024 value.

use chrono::{DateTime, Datelike, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::protocol::ClockTime;

/// Local time of `now` in `tz`, as the 0xC8 body encodes it: weekday 1 = Sunday … 7 = Saturday,
/// the UTC offset as signed ±HHMM.
pub fn clock_time(now: DateTime<Utc>, tz: Tz) -> ClockTime {
    let local = tz.from_utc_datetime(&now.naive_utc());
    let offset_seconds = local.offset().fix().local_minus_utc();
    ClockTime {
        // Years beyond 65535 are not a concern for a clock read from the host.
        year: u16::try_from(local.year()).unwrap_or(u16::MAX),
        month: local.month() as u8,
        day: local.day() as u8,
        weekday: local.weekday().number_from_sunday() as u8,
        hour: local.hour() as u8,
        minute: local.minute() as u8,
        second: local.second() as u8,
        utc_offset_hhmm: ClockTime::hhmm_from_seconds(offset_seconds),
    }
}

/// [`clock_time`] for the current instant.
pub fn now(tz: Tz) -> ClockTime {
    clock_time(Utc::now(), tz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_cloud_reply_of_capture_a1_is_reproduced() {
        // docs/protocol.md#test-vectors, vector 3: 2025-11-06 08:20:40 UTC in a UTC−6 zone →
        // c8 00 00 00 0b 0d 07 e9 0b 06 05 02 14 28 fd a8 (Thursday 02:20:40, −600).
        let now = Utc.with_ymd_and_hms(2025, 11, 6, 8, 20, 40).unwrap();
        let time = clock_time(now, chrono_tz::America::Chicago);
        assert_eq!(
            time.to_body(),
            [0x0d, 0x07, 0xe9, 0x0b, 0x06, 0x05, 0x02, 0x14, 0x28, 0xfd, 0xa8]
        );
    }

    #[test]
    fn daylight_saving_and_half_hour_zones_give_their_current_offset() {
        let summer = Utc.with_ymd_and_hms(2025, 7, 1, 12, 0, 0).unwrap();
        assert_eq!(
            clock_time(summer, chrono_tz::America::Chicago).utc_offset_hhmm,
            -500
        );
        let india = clock_time(summer, chrono_tz::Asia::Kolkata);
        assert_eq!(
            (india.utc_offset_hhmm, india.hour, india.minute),
            (530, 17, 30)
        );
        let sunday = Utc.with_ymd_and_hms(2025, 11, 9, 12, 0, 0).unwrap();
        assert_eq!(clock_time(sunday, chrono_tz::UTC).weekday, 1);
    }
}
