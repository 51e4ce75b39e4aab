//! The one thread that touches the database while the bridge runs.
//!
//! It sleeps on the queue until a record arrives or the flush interval is due, merges what it
//! receives into the [`Batch`], and writes the batch in one transaction per interval (sooner when
//! the batch is large and the disk is healthy, at once when someone awaits `flush()`). A failed
//! write keeps the batch for the next interval; a missing connection is reopened each interval,
//! so a released lock, freed space or a created directory heals without a restart.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use rusqlite::Connection;

use super::batch::Batch;
use super::db;
use super::health::StoreErrorKind;
use super::{Msg, Shared, StoreSettings, CHANNEL_CAPACITY};

pub(super) struct Writer {
    pub(super) settings: StoreSettings,
    pub(super) conn: Option<Connection>,
    pub(super) batch: Batch,
    pub(super) shared: Arc<Shared>,
    pub(super) rx: Receiver<Msg>,
    next_due: Instant,
    /// The last attempt succeeded: only then may a large batch be written early (a failing disk
    /// is retried once per interval, not once per 8 192 records).
    last_ok: bool,
}

/// Closes the waiter list when the writer ends, however it ends (even by a panic), so no
/// `flush()` can wait for a thread that is gone.
struct CloseOnExit(Arc<Shared>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        let mut waiters = self
            .0
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        waiters.closed = true;
        waiters.list.clear();
    }
}

impl Writer {
    pub(super) fn new(
        settings: StoreSettings,
        conn: Option<Connection>,
        shared: Arc<Shared>,
        rx: Receiver<Msg>,
    ) -> Writer {
        Writer {
            batch: Batch::new(settings.recent_commands),
            next_due: Instant::now() + settings.flush_interval,
            last_ok: conn.is_some(),
            settings,
            conn,
            shared,
            rx,
        }
    }

    pub(super) fn run(mut self) {
        let _close = CloseOnExit(Arc::clone(&self.shared));
        loop {
            let open = self.receive();
            if !open || self.shared.stop.load(Ordering::Acquire) {
                break;
            }
            if self.due() {
                self.flush_for_waiters();
            }
        }
        self.flush_for_waiters();
        if !self.batch.is_empty() {
            tracing::error!(
                records = self.batch.records,
                "the rollout store could not write its last records before shutdown; they are lost"
            );
        }
    }

    /// Waits for one message (or the due time) and merges it; `false` once every sender is gone.
    fn receive(&mut self) -> bool {
        let wait = if self.has_waiters() {
            std::time::Duration::ZERO
        } else {
            self.next_due.saturating_duration_since(Instant::now())
        };
        match self.rx.recv_timeout(wait) {
            Ok(msg) => {
                self.absorb(msg);
                true
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => false,
        }
    }

    fn absorb(&mut self, msg: Msg) {
        match msg {
            Msg::Rollup {
                minute,
                series,
                counts,
                row,
            } => self.batch.add(minute, series, &counts, row),
            Msg::Wire { minute, counts } => self.batch.add_wire(minute, &counts),
            Msg::Wake => {}
        }
    }

    fn has_waiters(&self) -> bool {
        !self
            .shared
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .list
            .is_empty()
    }

    fn due(&self) -> bool {
        Instant::now() >= self.next_due
            || self.has_waiters()
            || (self.last_ok && self.batch.is_large())
    }

    /// Takes the waiters *before* draining the queue: everything a waiter sent before calling
    /// `flush()` is then in the queue, at most [`CHANNEL_CAPACITY`] messages deep, and is drained
    /// into this flush.
    fn flush_for_waiters(&mut self) {
        let waiters = std::mem::take(
            &mut self
                .shared
                .waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .list,
        );
        for _ in 0..CHANNEL_CAPACITY {
            match self.rx.try_recv() {
                Ok(msg) => self.absorb(msg),
                Err(_) => break,
            }
        }
        self.flush();
        for waiter in waiters {
            let _ = waiter.send(());
        }
    }

    fn flush(&mut self) {
        self.next_due = Instant::now() + self.settings.flush_interval;
        let saved = self
            .shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if saved.is_some() {
            self.batch.control = saved;
        }
        self.batch.prune(db::oldest_kept(
            self.settings.retention,
            super::now_minute(),
        ));
        if !self.ensure_open() {
            self.last_ok = false;
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if self.batch.is_empty() {
            self.shared.health.succeeded(0);
            self.last_ok = true;
            return;
        }
        match db::write(conn, &self.batch, &self.settings) {
            Ok(()) => {
                self.shared.health.succeeded(self.batch.records);
                self.batch.clear();
                self.last_ok = true;
            }
            Err(e) => {
                self.shared.health.failed(&e);
                self.last_ok = false;
                self.after_failure(e.kind);
            }
        }
    }

    /// Locked and full are waited out on the same connection; anything else reopens it on the
    /// next flush, and a corrupt file is moved aside and replaced at once.
    fn after_failure(&mut self, kind: StoreErrorKind) {
        match kind {
            StoreErrorKind::Locked | StoreErrorKind::Full => {}
            StoreErrorKind::Corrupt => {
                self.conn = None;
                if let Err(e) = db::move_aside(&self.settings.path) {
                    self.shared.health.failed(&e);
                }
            }
            _ => self.conn = None,
        }
    }

    /// Whether a connection is open, opening it first if the last one failed.
    fn ensure_open(&mut self) -> bool {
        if self.conn.is_none() {
            match db::open(&self.settings) {
                Ok(opened) => {
                    if let Some(moved) = &opened.moved_corrupt {
                        self.shared
                            .health
                            .failed(&super::corrupt_error(&self.settings.path, moved));
                    }
                    self.conn = Some(opened.conn);
                }
                Err(e) => {
                    self.shared.health.failed(&e);
                    return false;
                }
            }
        }
        true
    }
}
