//! The cost of telemetry on the packet path and on a scrape.
//!
//! - `record_packet/known_device`: one packet's metrics (`packet_sent` + `packet_recv` +
//!   `packet_latency`) for a device already seen: the steady state of every session.
//! - `record_packet/new_device`: the same for a device seen for the first time (series creation),
//!   cycling through `MAX_DEVICE_IDS` fresh ids per registry so every call is a first sighting
//!   below the cap; registry creation is not timed.
//! - `render/200_devices`: `Metrics::render` with 200 devices' packet series and latency
//!   histograms, the size of a large home.
//!
//! Run: `cargo bench --bench telemetry`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use cync_bridge::telemetry::{Metrics, MAX_DEVICE_IDS};

const LATENCY: Duration = Duration::from_millis(3);

fn record_packet(metrics: &Metrics, device: &str) {
    metrics.packet_sent(device, "ok");
    metrics.packet_recv(device, "ok");
    metrics.packet_latency(device, LATENCY);
}

fn bench_record(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_packet");
    let metrics = Metrics::new();
    record_packet(&metrics, "1a2b3c4d");
    group.bench_function("known_device", |b| {
        b.iter(|| record_packet(&metrics, black_box("1a2b3c4d")));
    });

    let ids: Vec<String> = (0..MAX_DEVICE_IDS).map(|i| format!("{i:08x}")).collect();
    group.bench_function("new_device", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut metrics = Metrics::new();
            let mut next = 0;
            for _ in 0..iters {
                if next == ids.len() {
                    metrics = Metrics::new();
                    next = 0;
                }
                let id = &ids[next];
                next += 1;
                let start = Instant::now();
                record_packet(&metrics, black_box(id));
                timed += start.elapsed();
            }
            timed
        });
    });
    group.finish();
}

fn bench_render(c: &mut Criterion) {
    let metrics = Metrics::new();
    for i in 0..200u32 {
        let id = format!("{i:08x}");
        for ms in [2, 30, 140] {
            metrics.packet_sent(&id, "ok");
            metrics.packet_recv(&id, "ok");
            metrics.packet_latency(&id, Duration::from_millis(ms));
        }
    }
    c.bench_function("render/200_devices", |b| {
        b.iter(|| black_box(metrics.render()));
    });
}

criterion_group!(benches, bench_record, bench_render);
criterion_main!(benches);
