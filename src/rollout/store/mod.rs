//! The rollout controller's evidence on disk: `<data_dir>/rollout.sqlite3`, under the in-memory
//! [`Ledger`], so SLO windows and the rollback latch survive a restart.
//!
//! **A command never waits for the disk.** [`Store::record`] is a `try_send` on a bounded queue
//! ([`CHANNEL_CAPACITY`]); one writer thread (rusqlite is synchronous) merges what it receives
//! and commits it in one transaction per [`StoreSettings::flush_interval`]. A full queue drops
//! the record, counts it (`tcp_comm_rollout_store_errors_total{kind="dropped"}`) and degrades
//! [`Store::health`] — the only way evidence is lost while the bridge runs.
//!
//! **Counts are exact.** Each key's deltas are summed in memory and added in SQL
//! (`c = c + excluded.c`), never overwritten. A failed flush (locked, full, I/O) keeps the merged
//! batch and retries it on the next interval, so a lock held for an hour costs memory (one entry
//! per (minute, series), ~200 bytes per minute) but no counts. Counts held in memory are lost only
//! if the process ends before the disk comes back.
//!
//! **The file is bounded** whatever the command rate: one `rollups` row per (minute, series) that
//! saw a command, minutes older than the retention deleted on every flush; one `wire` row per
//! minute; the newest [`StoreSettings::recent_commands`] command rows; one control row. The worst
//! case — 35 days × 1 440 minutes × 3 series = 151 200 rollup rows, 50 400 wire rows, 10 000
//! command rows — is reached from about 4 500 commands a day, and `benches/rollout_store.rs`
//! measures it at 10.7 MB (about 50 bytes per row of any table, b-trees included); at 500
//! commands a day the file is 2.1 MB, most of it the wire rows every minute has. Deleted pages
//! are reused, never returned to the file system, so the file stays at its high-water mark.
//! Loading the worst case takes about 0.4 s (at start-up only); the writer takes 200 000 – 400 000
//! records a second including its commits, hundreds of times any house's command rate.
//!
//! Failures (each logged once per change of state, counted by kind, and shown by
//! [`Store::health`] with a sentence saying what to do) heal on the next flush after their cause
//! goes away:
//! - the data directory missing or unusable: the writer retries opening every interval; the
//!   directory is never created by the store (a missing one is usually an unmounted volume);
//! - a corrupt file: moved aside as `rollout.sqlite3.corrupt-<unix seconds>` and a fresh
//!   database started (the bridge must keep counting; the old file is kept for salvage);
//! - another program holding the write lock, a full disk: waited out, the batch retried.

mod batch;
mod db;
mod health;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

pub use health::{StoreError, StoreErrorKind, StoreHealth};

use crate::rollout::ledger::{
    Ledger, MinuteCounts, Series, UnixMinute, WireCounts, DEFAULT_RETENTION,
};
use crate::telemetry::Metrics;
use crate::transport::CommandOutcome;

/// Records the queue holds while the writer is busy. At a few hundred commands a minute the
/// writer empties it in microseconds; it fills only while a write is stuck in SQLite (at most
/// the busy timeout, 200 ms) under a burst of thousands of commands a second. Its slots are
/// allocated up front: 8 192 × at most 200 bytes (a message and its slot) ≈ 1.6 MB.
pub const CHANNEL_CAPACITY: usize = 8_192;

/// How long [`Store::shutdown`] (or dropping the last handle) waits for the final flush before
/// giving up on the thread: a flush blocked on a lock returns after the 200 ms busy timeout, so
/// only a hung disk reaches this.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// Where and how the store keeps its evidence.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// `<data_dir>/rollout.sqlite3`.
    pub path: PathBuf,
    /// Rollup minutes kept; [`DEFAULT_RETENTION`] (the 30-day SLO window plus 5 days).
    pub retention: Duration,
    /// Command rows kept for drill-down (the newest ones).
    pub recent_commands: usize,
    /// Time between two transactions when the disk is healthy.
    pub flush_interval: Duration,
    /// `PRAGMA max_page_count` on every connection: a disk-full limit for tests; `None` in use.
    pub max_page_count: Option<u32>,
}

impl StoreSettings {
    /// The defaults for a store at `<data_dir>/rollout.sqlite3`.
    pub fn in_dir(data_dir: &Path) -> StoreSettings {
        StoreSettings {
            path: data_dir.join("rollout.sqlite3"),
            retention: DEFAULT_RETENTION,
            recent_commands: 10_000,
            flush_interval: Duration::from_secs(1),
            max_page_count: None,
        }
    }
}

/// One ended command, kept for drill-down (`slo report` shows the latest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRow {
    /// When it ended.
    pub at_unix_ms: u64,
    /// The topic id of its device, like `1000-10`.
    pub device: String,
    #[allow(missing_docs)]
    pub series: Series,
    #[allow(missing_docs)]
    pub outcome: CommandOutcome,
    /// Submission to outcome.
    pub latency_ms: u32,
    /// Packets written for it.
    pub attempts: u32,
}

/// What a previous run left.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The rollups and wire counts within the retention.
    pub ledger: Ledger,
    /// The controller's last [`Store::save_control`] document, verbatim.
    pub control: Option<String>,
}

enum Msg {
    Rollup {
        minute: UnixMinute,
        series: Series,
        counts: MinuteCounts,
        row: Option<CommandRow>,
    },
    Wire {
        minute: UnixMinute,
        counts: WireCounts,
    },
    /// Someone is waiting in `flush()`; the writer should look at the waiters now.
    Wake,
}

#[derive(Default)]
struct Waiters {
    list: Vec<oneshot::Sender<()>>,
    /// The writer has ended: nothing would ever answer a new waiter.
    closed: bool,
}

/// State shared by the handles and the writer.
struct Shared {
    health: health::HealthCell,
    /// The newest `save_control` document not yet taken by a flush: last write wins without
    /// queueing every version, and it can never be dropped by a full queue.
    control: Mutex<Option<String>>,
    waiters: Mutex<Waiters>,
    stop: AtomicBool,
}

/// A cheap handle on the store (one `Arc`); clones share one writer, which stops when the last
/// handle is dropped or on [`Store::shutdown`].
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens or creates the database, loads what is within the retention, and starts the writer.
    ///
    /// Never fails to return a store: on an error the store starts degraded — records are kept
    /// in memory (bounded, see the module doc) and the writer retries opening on every flush, so
    /// the caller keeps running and the evidence reaches the disk once the cause is fixed. The
    /// `Err` then tells the caller it has no history (for a corrupt file, the store is already
    /// working on a fresh one). Disk I/O happens here, on the caller's thread: this is for
    /// start-up, before any command.
    pub fn open(
        settings: &StoreSettings,
        metrics: &Metrics,
    ) -> (Store, Result<Loaded, StoreError>) {
        let shared = Arc::new(Shared {
            health: health::HealthCell::new(metrics, &settings.path),
            control: Mutex::new(None),
            waiters: Mutex::new(Waiters::default()),
            stop: AtomicBool::new(false),
        });
        let (conn, loaded) = open_and_load(settings);
        if let Err(e) = &loaded {
            shared.health.failed(e);
        }
        let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
        let writer = writer::Writer::new(settings.clone(), conn, Arc::clone(&shared), rx);
        let thread = std::thread::Builder::new()
            .name("rollout-store".into())
            .spawn(move || writer.run());
        let thread = match thread {
            Ok(handle) => Some(handle),
            Err(e) => {
                shared.health.failed(&StoreError::new(
                    StoreErrorKind::Io,
                    format!("the rollout store's writer thread could not start ({e}); restart the bridge"),
                ));
                close_waiters(&shared);
                None
            }
        };
        let inner = Inner {
            tx,
            shared,
            thread: Mutex::new(thread),
        };
        (
            Store {
                inner: Arc::new(inner),
            },
            loaded,
        )
    }

    /// Adds one command's (or a minute's) counts to `series` at `minute`, with the command's row
    /// for drill-down. Never blocks: a full queue drops the record and counts it.
    pub fn record(
        &self,
        minute: UnixMinute,
        series: Series,
        counts: MinuteCounts,
        row: Option<CommandRow>,
    ) {
        self.send(Msg::Rollup {
            minute,
            series,
            counts,
            row,
        });
    }

    /// Adds inbound frame counts at `minute`. Never blocks, like [`Self::record`].
    pub fn record_wire(&self, minute: UnixMinute, counts: WireCounts) {
        self.send(Msg::Wire { minute, counts });
    }

    fn send(&self, msg: Msg) {
        match self.inner.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.inner.shared.health.dropped();
            }
        }
    }

    /// Replaces the controller's document (opaque JSON); written by the next flush, durable once
    /// a [`Self::flush`] started after this call returns. Only the newest is kept, never dropped.
    pub fn save_control(&self, json: String) {
        *self
            .inner
            .shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(json);
    }

    /// Whether evidence is reaching the disk; never blocks on the writer.
    pub fn health(&self) -> StoreHealth {
        self.inner.shared.health.get()
    }

    /// Waits until everything recorded before the call has been written, or the attempt to write
    /// it has failed (see [`Self::health`]). Awaits a oneshot answered by the writer, so the
    /// runtime is never blocked; returns at once once the writer has stopped.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        {
            let mut waiters = self
                .inner
                .shared
                .waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if waiters.closed {
                return;
            }
            waiters.list.push(tx);
        }
        // Full: the writer is busy with the queue and sees the waiter after its next message.
        let _ = self.inner.tx.try_send(Msg::Wake);
        let _ = rx.await;
    }

    /// Writes what is pending and stops the writer, for every clone; records sent later are
    /// dropped (and counted). Blocks for at most [`SHUTDOWN_WAIT`].
    pub fn shutdown(self) {
        self.inner.stop();
    }
}

impl Inner {
    fn stop(&self) {
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(handle) = handle else {
            return;
        };
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.tx.try_send(Msg::Wake);
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        while !handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if handle.is_finished() {
            let _ = handle.join();
        } else {
            tracing::warn!(
                wait_ms = SHUTDOWN_WAIT.as_millis(),
                "the rollout store's writer did not finish its last flush in time; leaving it"
            );
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

fn close_waiters(shared: &Shared) {
    let mut waiters = shared
        .waiters
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    waiters.closed = true;
    waiters.list.clear();
}

/// The connection (if it opened) and what it holds; a corrupt file is reported as an error even
/// though the returned connection is on a fresh file.
fn open_and_load(
    settings: &StoreSettings,
) -> (Option<rusqlite::Connection>, Result<Loaded, StoreError>) {
    let opened = match db::open(settings) {
        Ok(opened) => opened,
        Err(e) => return (None, Err(e)),
    };
    if let Some(moved) = &opened.moved_corrupt {
        return (Some(opened.conn), Err(corrupt_error(&settings.path, moved)));
    }
    match db::load(&opened.conn, &settings.path, settings.retention) {
        Ok(loaded) => (Some(opened.conn), Ok(loaded)),
        Err(e) if e.kind == StoreErrorKind::Corrupt => {
            drop(opened);
            let retry = db::move_aside(&settings.path).and_then(|moved| {
                let opened = db::open(settings)?;
                Ok((opened.conn, moved))
            });
            match retry {
                Ok((conn, moved)) => (Some(conn), Err(corrupt_error(&settings.path, &moved))),
                Err(e) => (None, Err(e)),
            }
        }
        Err(e) => (Some(opened.conn), Err(e)),
    }
}

fn corrupt_error(path: &Path, moved: &Path) -> StoreError {
    StoreError::new(
        StoreErrorKind::Corrupt,
        format!(
            "{} was not a readable database; it is kept as {} and a fresh one started, so the \
             rollout history restarts now — check the disk if this happens again",
            path.display(),
            moved.display()
        ),
    )
}

/// The rollups and wire counts within `retention`, read without a writer (`slo report`, also
/// while the bridge runs: WAL readers do not block it).
pub fn read_ledger(path: &Path, retention: Duration) -> Result<Ledger, StoreError> {
    match db::open_read_only(path)? {
        None => Ok(Ledger::new(retention)),
        Some(conn) => db::read_rollups(&conn, retention).map_err(|e| StoreError::sqlite(&e, path)),
    }
}

/// The controller's last saved document, read without a writer (`slo report`).
pub fn read_control(path: &Path) -> Result<Option<String>, StoreError> {
    match db::open_read_only(path)? {
        None => Ok(None),
        Some(conn) => db::read_control(&conn).map_err(|e| StoreError::sqlite(&e, path)),
    }
}

/// The newest `limit` command rows, oldest first.
pub fn recent_commands(path: &Path, limit: usize) -> Result<Vec<CommandRow>, StoreError> {
    match db::open_read_only(path)? {
        None => Ok(Vec::new()),
        Some(conn) => db::read_commands(&conn, limit).map_err(|e| StoreError::sqlite(&e, path)),
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The current minute by the wall clock, which retention is measured from (as the controller's
/// [`Ledger::prune`] is).
fn now_minute() -> UnixMinute {
    UnixMinute::from_unix_ms(now_unix_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_record_fits_the_memory_the_capacity_is_documented_with() {
        // The channel's slot adds one word to each message.
        assert!(
            std::mem::size_of::<Msg>() + 8 <= 200,
            "{}",
            std::mem::size_of::<Msg>()
        );
    }
}
