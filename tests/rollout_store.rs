//! The rollout evidence store: exact counts across restarts, bounded files, and every way the
//! disk can fail — with `record` still returning at once and health saying what to do.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cync_bridge::rollout::ledger::{
    Ended, Ledger, MinuteCounts, Series, UnixMinute, WireCounts, DEFAULT_RETENTION,
};
use cync_bridge::rollout::store::{
    read_ledger, recent_commands, CommandRow, Store, StoreErrorKind, StoreHealth, StoreSettings,
};
use cync_bridge::telemetry::Metrics;
use cync_bridge::transport::CommandOutcome;
use rusqlite::Connection;

/// Log output of every test in this binary (one global subscriber: the writer logs from its own
/// thread); each test picks its lines by its own temporary path.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines naming `path` and containing `needle`.
fn log_lines(path: &Path, needle: &str) -> usize {
    let text = String::from_utf8(logs().lock().unwrap().clone()).unwrap();
    let path = path.display().to_string();
    text.lines()
        .filter(|l| l.contains(&path) && l.contains(needle))
        .count()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn now() -> UnixMinute {
    UnixMinute::from_unix_ms(now_ms())
}

fn settings(dir: &Path) -> StoreSettings {
    StoreSettings::in_dir(dir)
}

fn ended(outcome: CommandOutcome, ms: u64, attempts: u32) -> MinuteCounts {
    MinuteCounts::of(&Ended {
        outcome,
        latency: Duration::from_millis(ms),
        attempts,
        queue_full: false,
    })
}

fn ok() -> MinuteCounts {
    ended(CommandOutcome::Success, 120, 1)
}

fn row(at_unix_ms: u64, series: Series, outcome: CommandOutcome) -> CommandRow {
    CommandRow {
        at_unix_ms,
        device: format!("1000-{}", at_unix_ms % 50),
        series,
        outcome,
        latency_ms: 120,
        attempts: 1,
    }
}

/// Successes in every series over the whole retention.
fn successes(ledger: &Ledger) -> u64 {
    Series::ALL
        .iter()
        .map(|s| {
            ledger
                .window(*s, now(), ledger.retention())
                .commands
                .successes()
        })
        .sum()
}

fn errors(metrics: &Metrics, kind: &str) -> f64 {
    metrics
        .sample_value(&format!(
            "tcp_comm_rollout_store_errors_total{{kind=\"{kind}\"}}"
        ))
        .unwrap()
}

fn degraded_kind(store: &Store) -> Option<StoreErrorKind> {
    match store.health() {
        StoreHealth::Healthy => None,
        StoreHealth::Degraded { kind, .. } => Some(kind),
    }
}

fn reason(store: &Store) -> String {
    match store.health() {
        StoreHealth::Healthy => String::new(),
        StoreHealth::Degraded { reason, .. } => reason,
    }
}

#[tokio::test]
async fn counts_rows_and_the_control_document_survive_a_restart_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let (store, loaded) = Store::open(&settings(dir.path()), &metrics);
    assert_eq!(loaded.unwrap().ledger.entries(), 0);
    let mut expected = Ledger::new(DEFAULT_RETENTION);
    let outcomes = CommandOutcome::ALL;
    let start = now().minus(3 * 24 * 60);
    let mut sent = 0u64;
    for i in 0..3_000u32 {
        let minute = UnixMinute(start.0 + (i * 7) % (3 * 24 * 60));
        let series = Series::ALL[i as usize % 3];
        let outcome = outcomes[i as usize % outcomes.len()];
        let counts = ended(outcome, u64::from(i % 4_000), 1 + i % 3);
        expected.add(series, minute, &counts);
        store.record(
            minute,
            series,
            counts,
            Some(row(u64::from(i), series, outcome)),
        );
        let wire = WireCounts {
            received: 1 + i % 5,
            decode_errors: i % 2,
        };
        expected.add_wire(minute, &wire);
        store.record_wire(minute, wire);
        sent += 2;
        if i % 1_000 == 999 {
            store.flush().await;
        }
    }
    store.save_control(r#"{"latched":false}"#.into());
    store.save_control(r#"{"latched":true,"reason":"timeouts"}"#.into());
    store.flush().await;
    assert_eq!(store.health(), StoreHealth::Healthy);
    assert_eq!(
        metrics.sample_value("tcp_comm_rollout_store_writes_total"),
        Some(sent as f64)
    );
    store.shutdown();

    let (store, loaded) = Store::open(&settings(dir.path()), &metrics);
    let loaded = loaded.unwrap();
    for series in Series::ALL {
        let got: Vec<_> = loaded
            .ledger
            .minutes(series)
            .map(|(m, c)| (m, *c))
            .collect();
        let want: Vec<_> = expected.minutes(series).map(|(m, c)| (m, *c)).collect();
        assert_eq!(got, want, "{series:?}");
    }
    let got: Vec<_> = loaded.ledger.wire_minutes().map(|(m, c)| (m, *c)).collect();
    let want: Vec<_> = expected.wire_minutes().map(|(m, c)| (m, *c)).collect();
    assert_eq!(got, want);
    assert_eq!(
        loaded.control.as_deref(),
        Some(r#"{"latched":true,"reason":"timeouts"}"#)
    );
    drop(store);
    let read = read_ledger(&dir.path().join("rollout.sqlite3"), DEFAULT_RETENTION).unwrap();
    assert_eq!(read.entries(), expected.entries());
    let rows = recent_commands(&dir.path().join("rollout.sqlite3"), 3).unwrap();
    let at: Vec<u64> = rows.iter().map(|r| r.at_unix_ms).collect();
    assert_eq!(at, [2_997, 2_998, 2_999]);
    assert_eq!(
        rows[2],
        row(2_999, Series::ALL[2_999 % 3], outcomes[2_999 % 7])
    );
}

#[tokio::test]
async fn records_of_one_minute_add_up_within_a_flush_and_across_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&settings(dir.path()), &Metrics::new());
    let minute = now();
    store.record(minute, Series::Reliable, ok(), None);
    store.record(minute, Series::Reliable, ok(), None);
    store.flush().await;
    store.record(
        minute,
        Series::Reliable,
        ended(CommandOutcome::Timeout, 5_000, 3),
        None,
    );
    store.flush().await;
    let ledger = read_ledger(&dir.path().join("rollout.sqlite3"), DEFAULT_RETENTION).unwrap();
    let counts: Vec<_> = ledger.minutes(Series::Reliable).collect();
    assert_eq!(counts.len(), 1);
    let c = counts[0].1;
    assert_eq!(c.successes(), 2);
    assert_eq!(c.count(CommandOutcome::Timeout), 1);
    assert_eq!((c.sent, c.retransmits), (5, 2));
    assert_eq!(ledger.minutes(Series::Legacy).count(), 0);
}

#[tokio::test]
async fn minutes_past_the_retention_are_deleted_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.retention = Duration::from_secs(60 * 60);
    let (store, _) = Store::open(&s, &Metrics::new());
    // 58, not 59: the store's clock may pass a minute boundary after `t` is taken.
    let t = now();
    for back in [0, 30, 58, 61, 120, 10_000] {
        store.record(t.minus(back), Series::Legacy, ok(), None);
        store.record_wire(
            t.minus(back),
            WireCounts {
                received: 1,
                decode_errors: 0,
            },
        );
    }
    store.flush().await;
    // Read with a longer retention than the store's: what is gone is gone from the file.
    let ledger = read_ledger(&s.path, DEFAULT_RETENTION).unwrap();
    let kept: Vec<u32> = ledger
        .minutes(Series::Legacy)
        .map(|(m, _)| t.0 - m.0)
        .collect();
    assert_eq!(kept, [58, 30, 0]);
    assert_eq!(ledger.minutes(Series::Legacy).count(), 3);
    assert_eq!(ledger.wire_minutes().count(), 3);
}

#[tokio::test]
async fn only_the_newest_command_rows_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.recent_commands = 100;
    let (store, _) = Store::open(&s, &Metrics::new());
    for i in 0..250u64 {
        store.record(
            now(),
            Series::Reliable,
            ok(),
            Some(row(i, Series::Reliable, CommandOutcome::Success)),
        );
        if i == 60 || i == 130 {
            store.flush().await;
        }
    }
    store.flush().await;
    let rows = recent_commands(&s.path, 1_000).unwrap();
    let at: Vec<u64> = rows.iter().map(|r| r.at_unix_ms).collect();
    assert_eq!(at, (150..250).collect::<Vec<_>>());
    let rows: i64 = Connection::open(&s.path)
        .unwrap()
        .query_row("SELECT count(*) FROM commands", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 100);
}

/// Open fails, the store keeps what it is given, and writes it once the directory exists.
async fn recovers_when_the_directory_appears(dir: &Path, data_dir: PathBuf) {
    let metrics = Metrics::new();
    let (store, loaded) = Store::open(&settings(&data_dir), &metrics);
    assert_eq!(loaded.unwrap_err().kind, StoreErrorKind::Open);
    assert_eq!(degraded_kind(&store), Some(StoreErrorKind::Open));
    assert!(
        reason(&store).contains(&data_dir.display().to_string()),
        "{}",
        reason(&store)
    );
    assert_eq!(
        metrics.sample_value("tcp_comm_rollout_store_healthy"),
        Some(0.0)
    );
    for _ in 0..10 {
        store.record(now(), Series::Legacy, ok(), None);
    }
    store.flush().await;
    assert_eq!(degraded_kind(&store), Some(StoreErrorKind::Open));
    assert!(errors(&metrics, "open") >= 2.0);
    if data_dir.is_file() {
        std::fs::remove_file(&data_dir).unwrap();
    }
    std::fs::create_dir(&data_dir).unwrap();
    store.flush().await;
    assert_eq!(store.health(), StoreHealth::Healthy);
    assert_eq!(
        metrics.sample_value("tcp_comm_rollout_store_healthy"),
        Some(1.0)
    );
    let ledger = read_ledger(&data_dir.join("rollout.sqlite3"), DEFAULT_RETENTION).unwrap();
    assert_eq!(successes(&ledger), 10);
    assert!(dir.exists());
}

#[tokio::test]
async fn a_missing_data_directory_degrades_and_heals_once_it_is_created() {
    let dir = tempfile::tempdir().unwrap();
    recovers_when_the_directory_appears(dir.path(), dir.path().join("not-mounted")).await;
}

#[tokio::test]
async fn a_data_directory_that_is_a_file_degrades_and_heals_once_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::write(&data_dir, b"not a directory").unwrap();
    recovers_when_the_directory_appears(dir.path(), data_dir).await;
}

#[tokio::test]
async fn a_corrupt_file_is_kept_aside_and_a_fresh_database_started() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&s.path, &garbage).unwrap();
    let metrics = Metrics::new();
    let (store, loaded) = Store::open(&s, &metrics);
    let err = loaded.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Corrupt);
    assert_eq!(degraded_kind(&store), Some(StoreErrorKind::Corrupt));
    assert!(reason(&store).contains("fresh"), "{}", reason(&store));
    assert_eq!(errors(&metrics, "corrupt"), 1.0);
    let kept: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("rollout.sqlite3.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        std::fs::read(&kept[0]).unwrap(),
        garbage,
        "kept byte for byte"
    );
    assert!(reason(&store).contains(&kept[0].display().to_string()));
    assert_eq!(log_lines(&s.path, "kept aside and a fresh one started"), 1);

    store.record(now(), Series::Shadow, ok(), None);
    store.save_control("{}".into());
    store.flush().await;
    assert_eq!(store.health(), StoreHealth::Healthy);
    drop(store);
    let (_store, loaded) = Store::open(&s, &metrics);
    let loaded = loaded.unwrap();
    assert_eq!(successes(&loaded.ledger), 1);
    assert_eq!(loaded.control.as_deref(), Some("{}"));
}

fn lock(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    conn
}

#[tokio::test]
async fn a_database_locked_by_another_program_is_waited_out_without_losing_counts() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let metrics = Metrics::new();
    let (store, _) = Store::open(&s, &metrics);
    store.record(now(), Series::Reliable, ok(), None);
    store.flush().await;
    assert_eq!(store.health(), StoreHealth::Healthy);

    let other = lock(&s.path);
    for _ in 0..5 {
        store.record(now(), Series::Reliable, ok(), None);
    }
    store.save_control("locked-in".into());
    store.flush().await;
    assert_eq!(degraded_kind(&store), Some(StoreErrorKind::Locked));
    assert!(reason(&store).contains("close it"), "{}", reason(&store));
    store.record(now(), Series::Reliable, ok(), None);
    store.flush().await;
    assert_eq!(
        errors(&metrics, "locked"),
        2.0,
        "every failed flush is counted"
    );
    assert_eq!(
        metrics.sample_value("tcp_comm_rollout_store_healthy"),
        Some(0.0)
    );

    other.execute_batch("COMMIT").unwrap();
    store.flush().await;
    assert_eq!(store.health(), StoreHealth::Healthy);
    assert_eq!(log_lines(&s.path, "healthy again"), 1);
    drop(store);
    let (_store, loaded) = Store::open(&s, &metrics);
    let loaded = loaded.unwrap();
    assert_eq!(successes(&loaded.ledger), 7);
    assert_eq!(loaded.control.as_deref(), Some("locked-in"));
}

#[tokio::test]
async fn a_database_locked_before_the_bridge_starts_opens_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    // A rollback-journal file under an exclusive write: not even readable until it is released.
    let other = Connection::open(&s.path).unwrap();
    other
        .execute_batch("BEGIN EXCLUSIVE; CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let metrics = Metrics::new();
    let (store, loaded) = Store::open(&s, &metrics);
    assert_eq!(loaded.unwrap_err().kind, StoreErrorKind::Locked);
    store.record(now(), Series::Legacy, ok(), None);
    store.flush().await;
    assert_eq!(degraded_kind(&store), Some(StoreErrorKind::Locked));
    other.execute_batch("ROLLBACK").unwrap();
    drop(other);
    store.flush().await;
    assert_eq!(store.health(), StoreHealth::Healthy);
    let ledger = read_ledger(&s.path, DEFAULT_RETENTION).unwrap();
    assert_eq!(successes(&ledger), 1);
}

#[tokio::test]
async fn a_full_disk_keeps_the_counts_until_they_fit() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.max_page_count = Some(24);
    let metrics = Metrics::new();
    let (store, loaded) = Store::open(&s, &metrics);
    loaded.unwrap();
    // A document far larger than the 24 pages allowed.
    store.save_control(format!("{{\"pad\":\"{}\"}}", "x".repeat(400_000)));
    store.record(now(), Series::Reliable, ok(), None);
    store.flush().await;
    assert_eq!(degraded_kind(&store), Some(StoreErrorKind::Full));
    assert!(
        reason(&store).contains("free some space"),
        "{}",
        reason(&store)
    );
    assert_eq!(errors(&metrics, "full"), 1.0);
    store.record(now(), Series::Reliable, ok(), None);

    // What did not fit is replaced (last write wins); the counts were kept meanwhile.
    store.save_control("{}".into());
    store.flush().await;
    assert_eq!(store.health(), StoreHealth::Healthy);
    drop(store);
    let (_store, loaded) = Store::open(&s, &metrics);
    let loaded = loaded.unwrap();
    assert_eq!(successes(&loaded.ledger), 2);
    assert_eq!(loaded.control.as_deref(), Some("{}"));
}

#[tokio::test]
async fn record_returns_at_once_with_the_writer_stalled_and_every_drop_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.flush_interval = Duration::from_millis(1);
    let metrics = Metrics::new();
    let (store, _) = Store::open(&s, &metrics);
    store.flush().await;
    let other = lock(&s.path);
    store.record(now(), Series::Reliable, ok(), None);
    // Let the writer start a write that waits for the lock.
    std::thread::sleep(Duration::from_millis(50));
    let minute = now();
    for _ in 0..100_000 {
        store.record(minute, Series::Reliable, ok(), None);
    }
    let dropped = errors(&metrics, "dropped");
    assert!(dropped > 0.0, "the queue holds 8 192 records, not 100 000");
    assert!(degraded_kind(&store).is_some());
    other.execute_batch("COMMIT").unwrap();
    store.flush().await;
    assert_eq!(store.health(), StoreHealth::Healthy);
    let ledger = read_ledger(&s.path, DEFAULT_RETENTION).unwrap();
    assert_eq!(
        successes(&ledger) as f64 + dropped,
        100_001.0,
        "every record is either on disk or counted as dropped"
    );
}

#[tokio::test]
async fn shutdown_writes_what_is_pending_and_later_records_are_counted_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let metrics = Metrics::new();
    let (store, _) = Store::open(&s, &metrics);
    let other_handle = store.clone();
    store.record(now(), Series::Legacy, ok(), None);
    store.save_control("bye".into());
    store.shutdown();
    other_handle.flush().await; // returns: the writer is gone
    other_handle.record(now(), Series::Legacy, ok(), None);
    assert_eq!(errors(&metrics, "dropped"), 1.0);
    let ledger = read_ledger(&s.path, DEFAULT_RETENTION).unwrap();
    assert_eq!(successes(&ledger), 1);
}

#[test]
fn reading_a_missing_store_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollout.sqlite3");
    let err = read_ledger(&path, DEFAULT_RETENTION).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Open);
    assert!(err.reason.contains(&path.display().to_string()));
}
