//! Fuzz target: arbitrary bytes, split into arbitrary reads, through the stream framer and the
//! full decoder (header, frame, content). Nothing may panic, and every byte must come out either
//! as a packet or as reported junk.
#![no_main]

use bytes::BytesMut;
use cync_bridge::protocol::{decode, Framer, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the read size, so splits are explored too.
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let framer = Framer::default();
    let mut buf = BytesMut::new();
    let mut accounted = 0;
    for read in stream.chunks(chunk) {
        buf.extend_from_slice(read);
        while let Some(item) = framer.next_packet(&mut buf) {
            match item {
                Ok(packet) => {
                    accounted += packet.len();
                    if let Ok(Packet::Data(f) | Packet::Status(f)) = decode(&packet) {
                        if let Ok(frame) = f.frame {
                            let _ = frame.content();
                        }
                    }
                }
                Err(e) => accounted += e.discarded(),
            }
        }
    }
    if let Some(e) = framer.finish(&mut buf) {
        accounted += e.discarded();
    }
    assert_eq!(accounted, stream.len(), "bytes lost by the framer");
    // The decoder alone must also survive any slice.
    let _ = decode(stream);
});
