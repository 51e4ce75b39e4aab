//! What went wrong with the store, in words that tell the user what to do, and the one place that
//! logs, counts and publishes it.
//!
//! A failing disk fails on every flush, once a second: logging each would bury the log. So a line
//! is written when the state *changes* (healthy → degraded, one kind of failure → another,
//! degraded → healthy), while `tcp_comm_rollout_store_errors_total{kind}` counts every failed
//! attempt (and every dropped record), so its rate shows how long and how hard it failed.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::telemetry::Metrics;

/// Which way the store failed; the `kind` label of `tcp_comm_rollout_store_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreErrorKind {
    /// The file or its directory cannot be opened for writing (missing, not a directory, no
    /// permission), or it was written by a newer bridge.
    Open,
    /// The file is not a readable SQLite database; it is kept aside and a fresh one started.
    Corrupt,
    /// Another connection holds the write lock for longer than the busy timeout.
    Locked,
    /// The disk (or the configured page limit) is full.
    Full,
    /// Any other read or write failure.
    Io,
    /// A record met the writer's full queue and was not counted.
    Dropped,
}

impl StoreErrorKind {
    #[allow(missing_docs)]
    pub const ALL: [StoreErrorKind; 6] = [
        StoreErrorKind::Open,
        StoreErrorKind::Corrupt,
        StoreErrorKind::Locked,
        StoreErrorKind::Full,
        StoreErrorKind::Io,
        StoreErrorKind::Dropped,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreErrorKind::Open => "open",
            StoreErrorKind::Corrupt => "corrupt",
            StoreErrorKind::Locked => "locked",
            StoreErrorKind::Full => "full",
            StoreErrorKind::Io => "io",
            StoreErrorKind::Dropped => "dropped",
        }
    }
}

/// A store failure: its kind and a one-sentence reason for the user (what failed, what to do).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct StoreError {
    #[allow(missing_docs)]
    pub kind: StoreErrorKind,
    #[allow(missing_docs)]
    pub reason: String,
}

impl StoreError {
    pub(super) fn new(kind: StoreErrorKind, reason: String) -> StoreError {
        StoreError { kind, reason }
    }

    /// Classifies a SQLite failure on `path` by its primary result code.
    pub(super) fn sqlite(err: &rusqlite::Error, path: &Path) -> StoreError {
        use rusqlite::ErrorCode as C;
        let p = path.display();
        let (kind, reason) = match err.sqlite_error_code() {
            Some(C::DatabaseBusy | C::DatabaseLocked) => (
                StoreErrorKind::Locked,
                format!(
                    "{p} is locked by another program (a sqlite3 shell, a backup, a second \
                     bridge?); close it — counts are kept in memory and written once it is free"
                ),
            ),
            Some(C::DiskFull) => (
                StoreErrorKind::Full,
                format!(
                    "the disk holding {p} is full; free some space — counts are kept in memory \
                     and written once they fit"
                ),
            ),
            Some(C::DatabaseCorrupt | C::NotADatabase) => (
                StoreErrorKind::Corrupt,
                format!("{p} is not a readable database ({err})"),
            ),
            Some(C::CannotOpen | C::ReadOnly | C::PermissionDenied) => (
                StoreErrorKind::Open,
                format!(
                    "cannot open {p} for writing ({err}); make sure the data directory exists \
                     and the bridge's user may write to it"
                ),
            ),
            _ => (
                StoreErrorKind::Io,
                format!(
                    "reading or writing {p} failed ({err}); check the disk and the data directory"
                ),
            ),
        };
        StoreError::new(kind, reason)
    }
}

/// Whether the evidence is reaching the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreHealth {
    /// The last flush wrote everything it had.
    Healthy,
    /// Records are held in memory (or dropped, for [`StoreErrorKind::Dropped`]) until a flush
    /// succeeds.
    Degraded {
        /// The latest failure's kind.
        kind: StoreErrorKind,
        /// The latest failure's reason.
        reason: String,
        /// When the store stopped being healthy (not when this reason appeared).
        since_unix_ms: u64,
    },
}

/// The shared health state; every transition is logged once and published as
/// `tcp_comm_rollout_store_healthy`.
pub(super) struct HealthCell {
    state: Mutex<StoreHealth>,
    metrics: Metrics,
    /// The database file, named in every log line.
    path: PathBuf,
}

impl HealthCell {
    pub(super) fn new(metrics: &Metrics, path: &Path) -> HealthCell {
        metrics.rollout_store_healthy().set(1);
        HealthCell {
            state: Mutex::new(StoreHealth::Healthy),
            metrics: metrics.clone(),
            path: path.to_owned(),
        }
    }

    pub(super) fn get(&self) -> StoreHealth {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts a failed attempt; logs and degrades when it is news.
    pub(super) fn failed(&self, err: &StoreError) {
        self.metrics.rollout_store_error(err.kind.as_str());
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let since_unix_ms = match &*state {
            StoreHealth::Degraded { kind, reason, .. }
                if *kind == err.kind && *reason == err.reason =>
            {
                return
            }
            StoreHealth::Degraded { since_unix_ms, .. } => *since_unix_ms,
            StoreHealth::Healthy => super::now_unix_ms(),
        };
        tracing::warn!(
            kind = err.kind.as_str(),
            "rollout store degraded: {}",
            err.reason
        );
        *state = StoreHealth::Degraded {
            kind: err.kind,
            reason: err.reason.clone(),
            since_unix_ms,
        };
        self.metrics.rollout_store_healthy().set(0);
    }

    /// Counts a record dropped at the full queue. The store degrades only if it was healthy: a
    /// drop is the consequence of a stalled writer, and the stall's own reason (locked, full)
    /// tells the user more.
    pub(super) fn dropped(&self) {
        self.metrics
            .rollout_store_error(StoreErrorKind::Dropped.as_str());
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if *state == StoreHealth::Healthy {
            let reason = "the rollout store's writer is behind and evidence is being dropped; \
                          check that the disk under the data directory is not stalled or too slow"
                .to_owned();
            tracing::warn!(
                kind = "dropped",
                path = %self.path.display(),
                "rollout store degraded: {reason}"
            );
            *state = StoreHealth::Degraded {
                kind: StoreErrorKind::Dropped,
                reason,
                since_unix_ms: super::now_unix_ms(),
            };
            self.metrics.rollout_store_healthy().set(0);
        }
    }

    /// A flush wrote `records`: counts them, and logs the recovery when degraded.
    pub(super) fn succeeded(&self, records: u64) {
        self.metrics.rollout_store_written(records);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let StoreHealth::Degraded { since_unix_ms, .. } = &*state {
            let down_s = super::now_unix_ms().saturating_sub(*since_unix_ms) / 1000;
            tracing::info!(
                down_s,
                records,
                path = %self.path.display(),
                "rollout store healthy again; the evidence held in memory meanwhile is written"
            );
            *state = StoreHealth::Healthy;
            self.metrics.rollout_store_healthy().set(1);
        }
    }
}
