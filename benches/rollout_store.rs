//! The rollout evidence store's size and speed at three command rates.
//!
//! For 500, 5 000 and 100 000 commands a day, 35 simulated days (the default retention, ending
//! now) are sent through `Store::record` (each command with its drill-down row, spread over the
//! three series) and one `record_wire` per minute, awaiting `flush()` every 4 096 records so
//! nothing is dropped. Printed: the file's size and rows after shutdown, the records per second
//! through the writer including its commits, and the time `read_ledger` takes to load the 35
//! days. Figures only, no assertions: the module doc of `rollout::store` quotes them.
//!
//! Run: `cargo bench --bench rollout_store`.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cync_bridge::rollout::ledger::{Ended, MinuteCounts, Series, UnixMinute, WireCounts};
use cync_bridge::rollout::store::{read_ledger, CommandRow, Store, StoreSettings};
use cync_bridge::telemetry::Metrics;
use cync_bridge::transport::CommandOutcome;

const DAYS: u32 = 35;
const MINUTES_PER_DAY: u32 = 1_440;
const FLUSH_EVERY: u64 = 4_096;

struct Figures {
    per_day: u32,
    records: u64,
    dropped: f64,
    seconds: f64,
    file_bytes: u64,
    rollups: i64,
    wire: i64,
    commands: i64,
    read: Duration,
    entries: usize,
}

/// A small deterministic generator: outcome mix and latencies vary without a dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn command(rng: &mut Lcg, at_unix_ms: u64, series: Series) -> (MinuteCounts, CommandRow) {
    let roll = rng.next() % 1_000;
    let outcome = match roll {
        0..=979 => CommandOutcome::Success,
        980..=989 => CommandOutcome::Timeout,
        990..=994 => CommandOutcome::NoResponse,
        _ => CommandOutcome::Superseded,
    };
    let latency_ms = 20 + (rng.next() % 1_500) as u32;
    let attempts = 1 + u32::from(roll >= 950);
    let counts = MinuteCounts::of(&Ended {
        outcome,
        latency: Duration::from_millis(u64::from(latency_ms)),
        attempts,
        queue_full: false,
    });
    let row = CommandRow {
        at_unix_ms,
        device: format!("1000-{}", rng.next() % 250),
        series,
        outcome,
        latency_ms,
        attempts,
    };
    (counts, row)
}

fn file_size(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(p).ok()
        })
        .map(|m| m.len())
        .sum()
}

fn count(path: &Path, table: &str) -> i64 {
    rusqlite::Connection::open(path)
        .and_then(|c| c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)))
        .unwrap_or(-1)
}

/// Sends the 35 days; returns records sent.
async fn fill(store: &Store, per_day: u32) -> u64 {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let start = UnixMinute::from_unix_ms(now_ms).minus(DAYS * MINUTES_PER_DAY - 1);
    let mut rng = Lcg(per_day.into());
    let mut records = 0u64;
    let mut next = 0u64;
    let total = u64::from(per_day) * u64::from(DAYS);
    for offset in 0..DAYS * MINUTES_PER_DAY {
        let minute = UnixMinute(start.0 + offset);
        // Commands due by the end of this minute at an even rate.
        let due = total * u64::from(offset + 1) / u64::from(DAYS * MINUTES_PER_DAY);
        while next < due {
            let series = Series::ALL[(next % 3) as usize];
            let at = u64::from(minute.0) * 60_000 + rng.next() % 60_000;
            let (counts, row) = command(&mut rng, at, series);
            store.record(minute, series, counts, Some(row));
            next += 1;
            records += 1;
            if records.is_multiple_of(FLUSH_EVERY) {
                store.flush().await;
            }
        }
        let wire = WireCounts {
            received: 10 + (rng.next() % 50) as u32,
            decode_errors: u32::from(rng.next().is_multiple_of(500)),
        };
        store.record_wire(minute, wire);
        records += 1;
        if records.is_multiple_of(FLUSH_EVERY) {
            store.flush().await;
        }
    }
    store.flush().await;
    records
}

fn run(per_day: u32) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = StoreSettings::in_dir(dir.path());
    let metrics = Metrics::new();
    let (store, loaded) = Store::open(&settings, &metrics);
    loaded.expect("a fresh store opens");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let records = runtime.block_on(fill(&store, per_day));
    let seconds = started.elapsed().as_secs_f64();
    store.shutdown();
    let started = Instant::now();
    let ledger = read_ledger(&settings.path, settings.retention).expect("read_ledger");
    let read = started.elapsed();
    Figures {
        per_day,
        records,
        dropped: metrics
            .sample_value(r#"tcp_comm_rollout_store_errors_total{kind="dropped"}"#)
            .unwrap_or(0.0),
        seconds,
        file_bytes: file_size(&settings.path),
        rollups: count(&settings.path, "rollups"),
        wire: count(&settings.path, "wire"),
        commands: count(&settings.path, "commands"),
        read,
        entries: ledger.entries(),
    }
}

fn main() {
    println!(
        "{:>9} {:>10} {:>7} {:>10} {:>9} {:>8} {:>7} {:>8} {:>10} {:>10} {:>9}",
        "cmd/day",
        "records",
        "dropped",
        "records/s",
        "file MB",
        "rollups",
        "wire",
        "commands",
        "B/rollup",
        "read ms",
        "entries"
    );
    for per_day in [500, 5_000, 100_000] {
        let f = run(per_day);
        let per_rollup = f.file_bytes as f64 / (f.rollups + f.wire + f.commands).max(1) as f64;
        println!(
            "{:>9} {:>10} {:>7} {:>10.0} {:>9.2} {:>8} {:>7} {:>8} {:>10.1} {:>10.1} {:>9}",
            f.per_day,
            f.records,
            f.dropped,
            f.records as f64 / f.seconds,
            f.file_bytes as f64 / 1e6,
            f.rollups,
            f.wire,
            f.commands,
            per_rollup,
            f.read.as_secs_f64() * 1e3,
            f.entries
        );
    }
    println!(
        "(B/rollup: file bytes per row of any table; records/s: record() through the writer, \
         one transaction per {FLUSH_EVERY} records, synchronous=FULL)"
    );
}
