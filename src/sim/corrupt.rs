//! Byte-level damage for the packet engine's corruption knobs: a flipped payload byte (with or
//! without the checksum fixed up) or a broken 5-byte header.
//!
//! Apart from the engine because it is pure byte surgery with its own invariant, which the
//! engine's decisions do not need to know: every offset stays inside the packet and no flip
//! produces a frame marker (0x7E) or escape byte, so a corruption never changes framing by
//! accident — only the knob that breaks headers is meant to.

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::Rng;

use crate::protocol::frame::{ESCAPE, MARKER};

/// Picks a byte value to XOR with `old` so that the result differs and is not a frame marker.
fn flip_value(old: u8, rng: &mut StdRng) -> u8 {
    loop {
        let x: u8 = rng.gen_range(1..=255);
        let new = old ^ x;
        if new != MARKER && new != ESCAPE {
            return new;
        }
    }
}

/// Flips one payload byte. For framed packets (0x73/0x83 with a frame) the byte is inside the
/// frame payload, and with `fix` the checksum is moved by the same amount so only the meaning is
/// wrong (a flip whose fixed checksum would be a marker byte is redrawn; after a few tries the
/// checksum is left broken instead). Packets without a frame get a content byte flipped;
/// packets without a body get their header broken (there is nothing else to corrupt). With
/// escape stuffing on, offsets are those of the stuffed bytes, so the fix-up is best effort.
pub(crate) fn flip_payload(b: &mut BytesMut, fix: bool, rng: &mut StdRng) {
    let framed = matches!(b.first(), Some(0x73 | 0x83)) && b.len() >= 23;
    // Payload: packet offsets 21 .. len-2 (checksum at len-2, end marker at len-1).
    if framed && b.len() - 2 > 21 {
        let end = b.len() - 2;
        let at = rng.gen_range(21..end);
        let old = b[at];
        for _ in 0..16 {
            let new = flip_value(old, rng);
            let ck = b[end].wrapping_add(new.wrapping_sub(old));
            if !fix || (ck != MARKER && ck != ESCAPE) {
                b[at] = new;
                if fix {
                    b[end] = ck;
                }
                return;
            }
        }
        b[at] = flip_value(old, rng);
        return;
    }
    // Unframed: flip a content byte after the peer id and msg id when there is one (breaking
    // the addressing would read as a broken header, a different knob), else any body byte.
    let first = if b.len() > 12 { 12 } else { 5 };
    if b.len() > first {
        let at = rng.gen_range(first..b.len());
        b[at] = flip_value(b[at], rng);
    } else {
        break_header(b, rng);
    }
}

/// Breaks the 5-byte header: makes bytes 1..2 non-zero or moves the length by one.
pub(crate) fn break_header(b: &mut BytesMut, rng: &mut StdRng) {
    if b.len() < 5 {
        b.resize(5, 0);
    }
    if rng.gen_bool(0.5) {
        b[1] = rng.gen_range(1..=255);
    } else {
        let len = u16::from_be_bytes([b[3], b[4]]);
        let moved = if rng.gen_bool(0.5) {
            len.wrapping_add(1)
        } else {
            len.wrapping_sub(1)
        };
        b[3..5].copy_from_slice(&moved.to_be_bytes());
    }
}
