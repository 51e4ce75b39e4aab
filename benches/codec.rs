//! Codec throughput on real traffic: every packet of the 25-device capture decoded from bytes
//! into typed values (`decode`, packets/s), and the stream framer over the same bytes (`framer`,
//! bytes/s). Run: `cargo bench --bench codec`.

use std::hint::black_box;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cync_bridge::capture;
use cync_bridge::protocol::{decode, Framer, Packet};

fn capture_packets() -> Option<(Vec<Bytes>, Vec<Vec<u8>>)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/captures/home-25-devices-20251106.txt");
    let Ok(capture) = capture::read_path(&path) else {
        eprintln!("SKIPPED: {} is absent", path.display());
        return None;
    };
    let reads: Vec<Vec<u8>> = capture.records.into_iter().map(|r| r.bytes).collect();
    let framer = Framer::default();
    let mut packets = Vec::new();
    for read in &reads {
        let mut buf = BytesMut::from(&read[..]);
        while let Some(Ok(p)) = framer.next_packet(&mut buf) {
            packets.push(p);
        }
    }
    Some((packets, reads))
}

/// Decodes one packet fully: header, body, frame (un-escape, checksum) and frame content.
fn decode_fully(packet: &[u8]) -> usize {
    match decode(packet) {
        Ok(Packet::Data(f) | Packet::Status(f)) => match f.frame {
            Ok(frame) => {
                let content = frame.content();
                black_box(&content);
                1
            }
            Err(_) => 0,
        },
        Ok(Packet::Info { content, .. }) => content
            .records()
            .fold(0, |n, r| n + usize::from(black_box(r).index)),
        Ok(p) => usize::from(black_box(p.kind())),
        Err(_) => 0,
    }
}

fn bench_codec(c: &mut Criterion) {
    let Some((packets, reads)) = capture_packets() else {
        return;
    };
    let bytes: usize = packets.iter().map(Bytes::len).sum();
    eprintln!("capture: {} packets, {} bytes", packets.len(), bytes);

    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(packets.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| {
            let mut n = 0;
            for p in &packets {
                n += decode_fully(p);
            }
            n
        })
    });
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("framer", |b| {
        let framer = Framer::default();
        let mut buf = BytesMut::with_capacity(8192);
        b.iter(|| {
            let mut n = 0;
            for read in &reads {
                buf.extend_from_slice(read);
                while let Some(Ok(p)) = framer.next_packet(&mut buf) {
                    n += p.len();
                }
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
