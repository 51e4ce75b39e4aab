//! The `tokio_util::codec` adapter between a device socket and the pure [`Framer`]: bytes in,
//! whole packets (or a note about discarded junk) out.
//!
//! Junk is an *item*, not a decoder error, on purpose: `FramedRead` ends the stream after the first
//! `Err`, and one bad byte must cost one counted error, not the device's session (a bad device must
//! never cost more than its own packets). Only I/O errors end the stream. The read buffer stays
//! bounded because the framer rejects an oversized length before buffering (4 KiB cap,
//! `docs/protocol.md#stream-reassembly`).
//!
//! There is no `Encoder`: replies and commands are built by `protocol::encode` straight into the
//! session's send buffer (several replies often share one write), so an encoder would only copy.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::protocol::{Framer, FramingError};

/// What the codec yields.
#[derive(Debug)]
pub enum Inbound {
    /// One complete packet (header included), ready for `protocol::decode`.
    Packet(Bytes),
    /// Bytes that could not start a packet were skipped, or the stream ended mid-packet.
    Junk(FramingError),
}

/// Packet codec for device sockets.
#[derive(Debug, Default)]
pub struct DeviceCodec {
    framer: Framer,
}

impl Decoder for DeviceCodec {
    type Item = Inbound;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, std::io::Error> {
        Ok(self.framer.next_packet(src).map(|r| match r {
            Ok(packet) => Inbound::Packet(packet),
            Err(junk) => Inbound::Junk(junk),
        }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, std::io::Error> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        Ok(self.framer.finish(src).map(Inbound::Junk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_between_packets_is_an_item_and_the_next_packet_still_arrives() {
        let mut codec = DeviceCodec::default();
        let mut buf = BytesMut::from(&b"\xff\xff\xffgarbage"[..]);
        // heartbeat d3 00 00 00 00, then half of the next one
        buf.extend_from_slice(&[0xd3, 0, 0, 0, 0, 0xd3, 0]);
        assert!(matches!(codec.decode(&mut buf), Ok(Some(Inbound::Junk(_)))));
        match codec.decode(&mut buf) {
            Ok(Some(Inbound::Packet(p))) => assert_eq!(&p[..], [0xd3, 0, 0, 0, 0]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Ok(Some(Inbound::Junk(FramingError::Truncated { len: 2, .. })))
        ));
        assert!(matches!(codec.decode_eof(&mut buf), Ok(None)));
    }
}
