//! Typed decode errors. Each carries a machine-readable reason (used as a metric label) and a
//! short hex preview of the offending bytes, so a log line is enough to reproduce the problem.

use std::fmt;

/// At most this many bytes are shown in an error's hex preview.
pub const PREVIEW_BYTES: usize = 16;

/// A bounded hex rendering of some bytes (`"7e 1f 00 … (42 bytes)"`).
#[derive(Clone, PartialEq, Eq)]
pub struct HexPreview {
    head: [u8; PREVIEW_BYTES],
    shown: u8,
    total: usize,
}

impl HexPreview {
    /// Captures the first [`PREVIEW_BYTES`] bytes of `bytes` and its length.
    pub fn of(bytes: &[u8]) -> Self {
        let mut head = [0u8; PREVIEW_BYTES];
        let shown = bytes.len().min(PREVIEW_BYTES);
        head[..shown].copy_from_slice(&bytes[..shown]);
        HexPreview {
            head,
            shown: shown as u8,
            total: bytes.len(),
        }
    }
}

impl fmt::Display for HexPreview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.head[..usize::from(self.shown)].iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        if self.total > usize::from(self.shown) {
            f.write_str(" …")?;
        }
        write!(f, " ({} bytes)", self.total)
    }
}

impl fmt::Debug for HexPreview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HexPreview({self})")
    }
}

/// Why a frame (the `7e … 7e` structure of 0x73/0x83, `docs/protocol.md#the-frame`) could not
/// be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the smallest possible frame (11).
    #[error("frame too short: {len} bytes, need at least 11: {preview}")]
    TooShort {
        /// Bytes available.
        len: usize,
        /// The offending bytes.
        preview: HexPreview,
    },
    /// First byte is neither 0x7E nor the firmware-frame 0x00.
    #[error("frame start byte {found:#04x} is neither 0x7e nor 0x00: {preview}")]
    BadStart {
        #[allow(missing_docs)]
        found: u8,
        /// The offending bytes.
        preview: HexPreview,
    },
    /// Last byte is not 0x7E.
    #[error("frame end byte {found:#04x} is not 0x7e: {preview}")]
    BadEnd {
        #[allow(missing_docs)]
        found: u8,
        /// The offending bytes.
        preview: HexPreview,
    },
    /// The payload length byte N disagrees with the bytes present.
    #[error("frame payload length {declared} disagrees with {available} bytes present: {preview}")]
    LengthMismatch {
        /// N from the frame.
        declared: usize,
        /// Payload bytes actually present.
        available: usize,
        /// The offending bytes.
        preview: HexPreview,
    },
    /// The checksum (sum of op, N, pad and payload, mod 256) does not match.
    #[error("frame checksum {found:#04x}, expected {expected:#04x}: {preview}")]
    Checksum {
        /// Checksum computed over the un-escaped bytes.
        expected: u8,
        /// Checksum carried by the frame.
        found: u8,
        /// The offending bytes.
        preview: HexPreview,
    },
}

impl FrameError {
    /// A stable, machine-readable reason (metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::TooShort { .. } => "frame_too_short",
            FrameError::BadStart { .. } => "frame_bad_start",
            FrameError::BadEnd { .. } => "frame_bad_end",
            FrameError::LengthMismatch { .. } => "frame_length_mismatch",
            FrameError::Checksum { .. } => "checksum",
        }
    }
}

/// Why a complete packet could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer than the 5 header bytes.
    #[error("packet too short for a header: {preview}")]
    TooShort {
        /// The offending bytes.
        preview: HexPreview,
    },
    /// Header bytes 1..2 are not zero (never seen in real traffic).
    #[error("header bytes 1..2 are not zero: {preview}")]
    BadHeader {
        /// The offending bytes.
        preview: HexPreview,
    },
    /// The header length disagrees with the packet's size.
    #[error("header length {declared} disagrees with {available} body bytes: {preview}")]
    LengthMismatch {
        /// Body length from the header.
        declared: usize,
        /// Body bytes present.
        available: usize,
        /// The offending bytes.
        preview: HexPreview,
    },
    /// The body is too short for the fields this packet type carries.
    #[error("{kind:#04x} body of {len} bytes is too short (need {need}): {preview}")]
    BodyTooShort {
        /// Packet type byte.
        kind: u8,
        /// Body bytes present.
        len: usize,
        /// Body bytes required.
        need: usize,
        /// The offending bytes.
        preview: HexPreview,
    },
}

impl DecodeError {
    /// A stable, machine-readable reason (metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooShort { .. } => "too_short",
            DecodeError::BadHeader { .. } => "bad_header",
            DecodeError::LengthMismatch { .. } => "length_mismatch",
            DecodeError::BodyTooShort { .. } => "body_too_short",
        }
    }
}

/// What the stream framer reports when the byte stream is not a clean sequence of packets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Bytes that could not start a packet were skipped to resynchronise.
    #[error("skipped {skipped} junk bytes: {preview}")]
    Junk {
        /// How many bytes were discarded.
        skipped: usize,
        /// The first discarded bytes.
        preview: HexPreview,
    },
    /// The stream ended in the middle of a packet.
    #[error("stream ended inside a packet ({len} bytes left over): {preview}")]
    Truncated {
        /// Bytes left over.
        len: usize,
        /// The left-over bytes.
        preview: HexPreview,
    },
}

impl FramingError {
    /// A stable, machine-readable reason (metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            FramingError::Junk { .. } => "junk",
            FramingError::Truncated { .. } => "truncated",
        }
    }

    /// Number of bytes this error discarded.
    pub fn discarded(&self) -> usize {
        match self {
            FramingError::Junk { skipped, .. } => *skipped,
            FramingError::Truncated { len, .. } => *len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_is_bounded_and_says_how_long_the_input_was() {
        let bytes: Vec<u8> = (0..40).collect();
        let text = HexPreview::of(&bytes).to_string();
        assert!(text.starts_with("00 01 02"));
        assert!(text.ends_with("0f … (40 bytes)"), "{text}");
        assert_eq!(HexPreview::of(&[0x7e]).to_string(), "7e (1 bytes)");
    }
}
