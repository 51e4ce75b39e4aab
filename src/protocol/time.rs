//! The local date and time carried by the 0xC8 reply (`docs/protocol.md#connect-and-time`). Devices
//! use it as their clock (their diagnostic string echoes it), so the bridge sends real local time.
//! Time-zone arithmetic lives outside this pure module; this is only the wire layout.

/// Calendar fields of a 0xC8 body.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct ClockTime {
    /// Year, e.g. 2025.
    pub year: u16,
    /// Month 1–12.
    pub month: u8,
    /// Day of month 1–31.
    pub day: u8,
    /// Weekday, 1 = Sunday … 7 = Saturday.
    pub weekday: u8,
    /// Local hour 0–23.
    pub hour: u8,
    /// Minute 0–59.
    pub minute: u8,
    /// Second 0–59.
    pub second: u8,
    /// UTC offset as signed ±HHMM decimal (−600 = UTC−06:00). Inferred: no half-hour zone seen.
    pub utc_offset_hhmm: i16,
}

/// First body byte of every observed 0xC8 (UNKNOWN meaning; the request carries `0c`).
pub const CLOCK_TAG: u8 = 0x0D;
/// The framer rejects a 0xC8 of any other length.
pub const CLOCK_BODY_LEN: usize = 11;

impl ClockTime {
    /// The 11 body bytes.
    pub fn to_body(&self) -> [u8; CLOCK_BODY_LEN] {
        let [y0, y1] = self.year.to_be_bytes();
        let [o0, o1] = self.utc_offset_hhmm.to_be_bytes();
        [
            CLOCK_TAG,
            y0,
            y1,
            self.month,
            self.day,
            self.weekday,
            self.hour,
            self.minute,
            self.second,
            o0,
            o1,
        ]
    }

    /// Reads the 11 body bytes (the tag byte is not checked: its meaning is unknown).
    pub fn from_body(body: &[u8; CLOCK_BODY_LEN]) -> Self {
        ClockTime {
            year: u16::from_be_bytes([body[1], body[2]]),
            month: body[3],
            day: body[4],
            weekday: body[5],
            hour: body[6],
            minute: body[7],
            second: body[8],
            utc_offset_hhmm: i16::from_be_bytes([body[9], body[10]]),
        }
    }

    /// Converts an offset in seconds east of UTC to ±HHMM (−21600 s → −600).
    pub fn hhmm_from_seconds(offset_seconds: i32) -> i16 {
        let sign = if offset_seconds < 0 { -1 } else { 1 };
        let abs = offset_seconds.unsigned_abs();
        let hhmm = (abs / 3600) * 100 + (abs % 3600) / 60;
        (sign * hhmm.min(9999) as i32) as i16
    }
}
