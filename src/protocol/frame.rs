//! The 0x7E frame inside 0x73 and 0x83 packets (`docs/protocol.md#the-frame`): start marker,
//! 4-byte tx, direction byte, op, payload length N, a zero pad, payload, checksum, end marker.
//!
//! The frame is located by the packet's header length — it always starts at packet offset 12 and
//! runs to the end of the packet — never by searching for 0x7E: real peer ids contain 0x7E and
//! non-stuffing firmware puts raw 0x7E inside payloads (`docs/protocol.md#escaping`, vector 29).
//!
//! Escaping: the decoder accepts both HDLC-stuffed frames (`7D xx` → `xx ^ 0x20`, seen on the
//! cloud→app leg, vector 16) and raw frames (every device frame captured). The encoder emits raw
//! frames whenever it can: callers pick tx/sno values that keep 0x7D/0x7E out (see
//! [`crate::protocol::SeqAllocator`]). When a marker byte is unavoidable (mesh id 125/126) the
//! encoder stuffs it with `7D 5D` / `7D 5E` (the cloud's convention for 0x7D; for 0x7E the
//! standard HDLC value, never observed); whether devices un-stuff inbound frames is UNKNOWN
//! (`docs/protocol.md#unknowns-and-defaults`) and that risk is documented where it arises.

use std::borrow::Cow;

use bytes::BufMut;

use super::error::{FrameError, HexPreview};

/// Frame start and end marker.
pub const MARKER: u8 = 0x7E;
/// Escape byte for HDLC-style stuffing.
pub const ESCAPE: u8 = 0x7D;
/// Smallest frame: start, tx (4), dir, op, N, pad, checksum, end with an empty payload.
pub const MIN_FRAME_LEN: usize = 11;

/// The frame's direction/kind byte (`B[4]`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum FrameDir {
    /// `f8`: a request (normally server → device).
    Request,
    /// `f9`: a response to a request.
    Response,
    /// `fa`: a device-originated notification.
    Notify,
    /// Anything else, kept verbatim.
    Other(u8),
}

impl FrameDir {
    /// Never fails: a byte outside `f8`..`fa` is kept as `Other`.
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            0xF8 => FrameDir::Request,
            0xF9 => FrameDir::Response,
            0xFA => FrameDir::Notify,
            other => FrameDir::Other(other),
        }
    }

    /// Inverse of [`Self::from_byte`], `Other` included.
    pub fn byte(self) -> u8 {
        match self {
            FrameDir::Request => 0xF8,
            FrameDir::Response => 0xF9,
            FrameDir::Notify => 0xFA,
            FrameDir::Other(b) => b,
        }
    }
}

/// A decoded frame. The payload borrows from the packet unless the frame was stuffed, in which
/// case it is un-escaped into an owned buffer (rare: no device frame has been seen stuffed).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Frame<'a> {
    /// True for the firmware frame whose start byte is 0x00 instead of 0x7E
    /// (`docs/protocol.md#firmware-frame`).
    pub firmware_start: bool,
    /// Transaction id, `B[0..3]` read little-endian (inferred: every observed value fits in 16
    /// bits, `docs/protocol.md#sequence-fields`).
    pub tx: u32,
    #[allow(missing_docs)]
    pub dir: FrameDir,
    /// `B[5]`; see `docs/protocol.md#opcodes`.
    pub op: u8,
    /// The N payload bytes, un-escaped.
    pub payload: Cow<'a, [u8]>,
    /// The checksum carried by the frame (already verified).
    pub checksum: u8,
    /// True when the frame arrived HDLC-stuffed and was un-escaped.
    pub stuffed: bool,
}

/// `sum(op, N, pad, payload) mod 256` over un-escaped bytes (`docs/protocol.md#checksum`).
pub fn checksum(op: u8, pad: u8, payload: &[u8]) -> u8 {
    let n = payload.len() as u8;
    payload
        .iter()
        .fold(op.wrapping_add(n).wrapping_add(pad), |acc, b| {
            acc.wrapping_add(*b)
        })
}

/// Decodes the raw frame bytes `S` (packet offset 12 to the end of the packet).
pub fn decode_frame(raw: &[u8]) -> Result<Frame<'_>, FrameError> {
    if raw.len() < MIN_FRAME_LEN {
        return Err(FrameError::TooShort {
            len: raw.len(),
            preview: HexPreview::of(raw),
        });
    }
    let start = raw[0];
    if start != MARKER && start != 0x00 {
        return Err(FrameError::BadStart {
            found: start,
            preview: HexPreview::of(raw),
        });
    }
    let end = raw[raw.len() - 1];
    if end != MARKER {
        return Err(FrameError::BadEnd {
            found: end,
            preview: HexPreview::of(raw),
        });
    }
    let inner = &raw[1..raw.len() - 1];
    let firmware_start = start == 0x00;
    // Fast path: nothing to un-escape, borrow the payload.
    if !inner.contains(&ESCAPE) {
        return parse_inner(Cow::Borrowed(inner), firmware_start, false, raw);
    }
    // A 0x7D is present: it is either stuffing (try un-escaping first) or a raw 0x7D from
    // firmware that does not stuff (fall back to the raw bytes, docs/protocol.md#escaping).
    let stuffed_attempt = unescape(inner)
        .ok_or(())
        .and_then(|buf| parse_inner(Cow::Owned(buf), firmware_start, true, raw).map_err(|_| ()));
    match stuffed_attempt {
        Ok(frame) => Ok(frame),
        Err(()) => parse_inner(Cow::Borrowed(inner), firmware_start, false, raw),
    }
}

fn parse_inner<'a>(
    inner: Cow<'a, [u8]>,
    firmware_start: bool,
    stuffed: bool,
    raw: &[u8],
) -> Result<Frame<'a>, FrameError> {
    // inner = tx(4) dir op N pad payload(N) checksum
    if inner.len() < MIN_FRAME_LEN - 2 {
        return Err(FrameError::TooShort {
            len: raw.len(),
            preview: HexPreview::of(raw),
        });
    }
    let declared = usize::from(inner[6]);
    let available = inner.len() - 9;
    if declared != available {
        return Err(FrameError::LengthMismatch {
            declared,
            available,
            preview: HexPreview::of(raw),
        });
    }
    let tx = u32::from_le_bytes([inner[0], inner[1], inner[2], inner[3]]);
    let dir = FrameDir::from_byte(inner[4]);
    let op = inner[5];
    let pad = inner[7];
    let found = inner[8 + declared];
    let expected = checksum(op, pad, &inner[8..8 + declared]);
    if found != expected {
        return Err(FrameError::Checksum {
            expected,
            found,
            preview: HexPreview::of(raw),
        });
    }
    let payload = match inner {
        Cow::Borrowed(b) => Cow::Borrowed(&b[8..8 + declared]),
        Cow::Owned(mut v) => {
            v.truncate(8 + declared);
            v.drain(..8);
            Cow::Owned(v)
        }
    };
    Ok(Frame {
        firmware_start,
        tx,
        dir,
        op,
        payload,
        checksum: found,
        stuffed,
    })
}

/// Un-escapes `7D xx` → `xx ^ 0x20`; `None` when a lone 0x7D ends the input.
fn unescape(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut iter = bytes.iter();
    while let Some(&b) = iter.next() {
        if b == ESCAPE {
            out.push(iter.next()? ^ 0x20);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// What a frame to be encoded contains. The payload is given un-escaped.
#[derive(Clone, Copy, Debug)]
pub struct FrameSpec<'p> {
    /// Firmware frames start with 0x00 instead of 0x7E.
    pub firmware_start: bool,
    /// Transaction id (written little-endian).
    pub tx: u32,
    #[allow(missing_docs)]
    pub dir: FrameDir,
    #[allow(missing_docs)]
    pub op: u8,
    /// Payload (at most 255 bytes: N is one byte).
    pub payload: &'p [u8],
}

/// Whether the encoder may stuff marker bytes that appear inside a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Stuffing {
    /// Stuff 0x7D/0x7E as `7D 5D` / `7D 5E` (what the bridge does, see the module docs).
    #[default]
    Escape,
    /// Emit bytes raw even if they equal a marker (what every captured device does).
    Raw,
}

impl FrameSpec<'_> {
    /// Encoded size in bytes, counting stuffing.
    pub fn encoded_len(&self, stuffing: Stuffing) -> usize {
        let mut len = MIN_FRAME_LEN + self.payload.len();
        if stuffing == Stuffing::Escape {
            len += self.inner_bytes().filter(|b| is_marker(*b)).count();
        }
        len
    }

    /// True when no byte between the start and end markers equals 0x7D or 0x7E, so the frame
    /// reads the same to a device whether or not it un-stuffs.
    pub fn is_clean(&self) -> bool {
        !self.inner_bytes().any(is_marker)
    }

    fn checksum(&self) -> u8 {
        checksum(self.op, 0, self.payload)
    }

    fn inner_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let n = self.payload.len() as u8;
        self.tx
            .to_le_bytes()
            .into_iter()
            .chain([self.dir.byte(), self.op, n, 0])
            .chain(self.payload.iter().copied())
            .chain(std::iter::once(self.checksum()))
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut impl BufMut, stuffing: Stuffing) {
        out.put_u8(if self.firmware_start { 0x00 } else { MARKER });
        for b in self.inner_bytes() {
            if stuffing == Stuffing::Escape && is_marker(b) {
                out.put_u8(ESCAPE);
                out.put_u8(b ^ 0x20);
            } else {
                out.put_u8(b);
            }
        }
        out.put_u8(MARKER);
    }
}

fn is_marker(b: u8) -> bool {
    b == MARKER || b == ESCAPE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn worked_checksum_example_from_protocol_5_2() {
        // Vector 21 of docs/protocol.md#test-vectors (cloud power-on for mesh id 5): checksum 0xE7.
        let raw = hex("7e 21 00 00 00 f8 d0 0d 00 21 00 00 00 00 05 00 d0 11 02 01 00 00 e7 7e");
        let frame = decode_frame(&raw).unwrap();
        assert_eq!(frame.tx, 0x21);
        assert_eq!(frame.dir, FrameDir::Request);
        assert_eq!(frame.op, 0xD0);
        assert_eq!(frame.payload.len(), 0x0D);
        assert_eq!(frame.checksum, 0xE7);
        assert!(!frame.stuffed);
    }

    #[test]
    fn stuffed_frame_is_unescaped_before_the_checksum() {
        // Vector #16: `7d 5d` stands for one 0x7D; checksum 0xF6 holds over the un-stuffed bytes.
        let raw = hex(
            "7e 25 00 00 00 fa db 13 00 7d 5d 22 11 07 00 07 00 db 11 02 01 01 64 fe f8 00 00 00 00 f6 7e",
        );
        let frame = decode_frame(&raw).unwrap();
        assert!(frame.stuffed);
        assert_eq!(&frame.payload[..3], &[0x7D, 0x22, 0x11]);
    }

    #[test]
    fn raw_marker_inside_payload_is_accepted() {
        // Vector #29: a switch sends a raw 0x7E inside the payload; length and checksum agree.
        let raw = hex(
            "7e 36 01 00 00 fa 8e 14 00 7e 04 00 a0 00 4c 00 ea 11 02 a0 81 b0 00 00 00 00 00 00 14 f2 7e",
        );
        let frame = decode_frame(&raw).unwrap();
        assert!(!frame.stuffed);
        assert_eq!(frame.tx, 0x136);
        assert_eq!(frame.payload[0], 0x7E);
    }

    #[test]
    fn a_raw_escape_byte_falls_back_to_the_unstuffed_reading() {
        let payload = [0x7D, 0x01, 0x02];
        let spec = FrameSpec {
            firmware_start: false,
            tx: 5,
            dir: FrameDir::Notify,
            op: 0x10,
            payload: &payload,
        };
        let mut out = Vec::new();
        spec.encode(&mut out, Stuffing::Raw);
        let frame = decode_frame(&out).unwrap();
        assert!(!frame.stuffed);
        assert_eq!(&frame.payload[..], &payload);
    }

    #[test]
    fn escape_encoding_round_trips_every_marker_position() {
        let payload = [0x7E, 0x7D, 0x00, 0x7E];
        let spec = FrameSpec {
            firmware_start: false,
            tx: 0x7E7D,
            dir: FrameDir::Request,
            op: 0x52,
            payload: &payload,
        };
        assert!(!spec.is_clean());
        let mut out = Vec::new();
        spec.encode(&mut out, Stuffing::Escape);
        assert_eq!(out.len(), spec.encoded_len(Stuffing::Escape));
        // Only the first and last byte may be a marker after stuffing.
        assert!(!out[1..out.len() - 1].contains(&MARKER));
        let frame = decode_frame(&out).unwrap();
        assert!(frame.stuffed);
        assert_eq!(frame.tx, 0x7E7D);
        assert_eq!(&frame.payload[..], &payload);
    }

    #[test]
    fn broken_frames_name_what_is_wrong() {
        let good = hex("7e 21 00 00 00 f9 d0 01 00 00 d1 7e");
        assert!(decode_frame(&good).is_ok());
        let mut bad = good.clone();
        bad[10] = 0xD2;
        assert_eq!(decode_frame(&bad).unwrap_err().reason(), "checksum");
        let mut bad = good.clone();
        bad[11] = 0x00;
        assert_eq!(decode_frame(&bad).unwrap_err().reason(), "frame_bad_end");
        let mut bad = good.clone();
        bad[0] = 0x11;
        assert_eq!(decode_frame(&bad).unwrap_err().reason(), "frame_bad_start");
        let mut bad = good.clone();
        bad[7] = 0x02;
        assert_eq!(
            decode_frame(&bad).unwrap_err().reason(),
            "frame_length_mismatch"
        );
        assert_eq!(
            decode_frame(&good[..5]).unwrap_err().reason(),
            "frame_too_short"
        );
    }
}
