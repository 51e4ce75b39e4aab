//! Stream framer: turns arbitrary TCP reads into whole packets, by the header length only
//! (`docs/protocol.md#stream-reassembly`). Several packets may share a read and a packet may be
//! split anywhere.
//!
//! Junk recovery: a header is trusted only if it is *plausible* — a known type byte (or one
//! following the request/ack pattern `x3`/`x8`/`xB`), zero bytes 1..2, a length within the
//! type's range and the 4 KiB cap — and, once complete, the packet's structure agrees (frame
//! markers where a frame must be, `01 01 06` in a 0x43). Otherwise the framer reports
//! [`FramingError::Junk`] and restarts at the next plausible header, so good packets after junk
//! are never lost. A truncated packet followed by good ones fails its structure check and is
//! skipped the same way. The buffer never holds more than one maximum-size packet's worth of
//! unconsumed bytes waiting for completion.

use bytes::{Bytes, BytesMut};

use super::error::{FramingError, HexPreview};
use super::frame::MARKER;
use super::packet::{body_len, HEADER_LEN, MAX_BODY_LEN};
use super::types::{MsgId, PacketType};

/// Reassembles packets from a byte stream.
#[derive(Clone, Debug)]
pub struct Framer {
    max_body: usize,
}

impl Default for Framer {
    fn default() -> Self {
        Framer {
            max_body: MAX_BODY_LEN,
        }
    }
}

enum Candidate {
    /// A complete, structurally valid packet of this many bytes.
    Packet(usize),
    /// Could be a packet; more bytes are needed to tell.
    NeedMore,
    /// Cannot start a packet here.
    Invalid,
}

impl Framer {
    /// A framer with a custom body cap (never above [`MAX_BODY_LEN`] in the bridge).
    pub fn with_max_body(max_body: usize) -> Self {
        Framer { max_body }
    }

    /// Takes the next packet from the front of `buf`. `None` means "need more bytes";
    /// an error means junk was discarded — call again to continue.
    pub fn next_packet(&self, buf: &mut BytesMut) -> Option<Result<Bytes, FramingError>> {
        match self.candidate(buf) {
            Candidate::Packet(len) => Some(Ok(buf.split_to(len).freeze())),
            Candidate::NeedMore => None,
            Candidate::Invalid => {
                let skip = (1..buf.len())
                    .find(|&i| !matches!(self.candidate(&buf[i..]), Candidate::Invalid))
                    .unwrap_or(buf.len());
                let preview = HexPreview::of(&buf[..skip]);
                let _ = buf.split_to(skip);
                Some(Err(FramingError::Junk {
                    skipped: skip,
                    preview,
                }))
            }
        }
    }

    /// At end of stream: whatever is left is a truncated packet (or junk).
    pub fn finish(&self, buf: &mut BytesMut) -> Option<FramingError> {
        if buf.is_empty() {
            return None;
        }
        let len = buf.len();
        let preview = HexPreview::of(buf);
        buf.clear();
        Some(FramingError::Truncated { len, preview })
    }

    fn candidate(&self, b: &[u8]) -> Candidate {
        let Some(&kind) = b.first() else {
            return Candidate::NeedMore;
        };
        let ptype = PacketType::from_byte(kind);
        let plausible_type =
            ptype.is_some() || (kind >= 0x10 && matches!(kind & 0x0F, 3 | 8 | 0xB));
        if !plausible_type {
            return Candidate::Invalid;
        }
        if b.len() > 1 && b[1] != 0 || b.len() > 2 && b[2] != 0 {
            return Candidate::Invalid;
        }
        let Some(len) = body_len(b) else {
            return Candidate::NeedMore;
        };
        let (min, max) = ptype.map_or((0, usize::MAX), PacketType::body_len_range);
        if len < min || len > max || len > self.max_body {
            return Candidate::Invalid;
        }
        let total = HEADER_LEN + len;
        if b.len() < total {
            return Candidate::NeedMore;
        }
        if structure_ok(ptype, &b[..total]) {
            Candidate::Packet(total)
        } else {
            Candidate::Invalid
        }
    }
}

/// Checks that can only be made on a complete packet.
fn structure_ok(ptype: Option<PacketType>, p: &[u8]) -> bool {
    match ptype {
        Some(PacketType::Data) => p[12] == MARKER && p[p.len() - 1] == MARKER,
        Some(PacketType::Status) => (p[12] == MARKER || p[12] == 0) && p[p.len() - 1] == MARKER,
        // Every 0x43 ever captured carries msg id 01 01 06 (docs/protocol.md#msg-id).
        Some(PacketType::Info) => p[9..12] == MsgId::INFO.0,
        _ => true,
    }
}
