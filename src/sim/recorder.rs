//! What a simulated device saw and did, kept for tests and written for humans.
//!
//! * `PacketLog`: per device, a **bounded ring** of every packet sent and received (after
//!   framing), each tagged with what chaos did to it. The capacity is a setting
//!   (`log_capacity`, default [`DEFAULT_LOG_CAPACITY`]); when full the oldest entry goes and the
//!   session's `log_evicted` counter says how many did, so a long run cannot grow without bound
//!   and a test can tell it did not see everything.
//! * `Recorder`: an optional capture-text file (docs/protocol.md, "Capture text": the format
//!   `cync-bridge decode` reads) with one record per socket write (`DEV→CLOUD`) and per socket
//!   read (`CLOUD→DEV`) of every session, like the MITM captures. Sessions hand lines to one
//!   writer task over a bounded channel; when it is full the line is dropped and counted — a
//!   slow disk must never stall a device.
//!
//! Must never block a session on I/O or hold the ring's lock across an `.await`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::chaos::Note;
use crate::capture::{write_text_record, Direction};

/// Default ring size per device.
pub const DEFAULT_LOG_CAPACITY: usize = 1024;
/// Lines the recorder buffers before it starts dropping.
pub const RECORDER_QUEUE: usize = 4096;

/// One logged packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedPacket {
    /// Position in the device's log since start (gaps mean eviction).
    pub seq: u64,
    /// When it was written or read (tokio clock, so paused-time tests see virtual time).
    pub at: Instant,
    /// Device → bridge (`DeviceToServer`) or bridge → device.
    pub dir: Direction,
    /// The packet bytes as they went on (or came off) the wire — or, for a lost packet, as they
    /// would have.
    pub bytes: Bytes,
    /// What chaos did to it, if anything. `Dropped`/`Blackholed` entries never reached the wire
    /// (outbound) or the device logic (inbound).
    pub note: Option<Note>,
}

impl LoggedPacket {
    /// The packet type byte (0 for an empty entry).
    pub fn kind(&self) -> u8 {
        self.bytes.first().copied().unwrap_or(0)
    }

    /// True when the packet actually crossed the wire and was acted on.
    pub fn delivered(&self) -> bool {
        !matches!(self.note, Some(Note::Dropped | Note::Blackholed))
    }
}

struct Ring {
    entries: VecDeque<LoggedPacket>,
    capacity: usize,
    next_seq: u64,
}

/// The bounded per-device log.
pub(crate) struct PacketLog {
    ring: Mutex<Ring>,
}

impl PacketLog {
    pub(crate) fn new(capacity: usize) -> Self {
        PacketLog {
            ring: Mutex::new(Ring {
                entries: VecDeque::with_capacity(capacity.min(64)),
                capacity,
                next_seq: 0,
            }),
        }
    }

    /// Appends an entry; returns true when an old one was evicted.
    pub(crate) fn push(&self, dir: Direction, bytes: Bytes, note: Option<Note>) -> bool {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.capacity == 0 {
            return true;
        }
        let seq = ring.next_seq;
        ring.next_seq += 1;
        let evicted = ring.entries.len() >= ring.capacity;
        if evicted {
            ring.entries.pop_front();
        }
        ring.entries.push_back(LoggedPacket {
            seq,
            at: Instant::now(),
            dir,
            bytes,
            note,
        });
        evicted
    }

    /// A copy of the entries currently held, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<LoggedPacket> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.entries.iter().cloned().collect()
    }

    /// Empties the ring (sequence numbers keep counting).
    pub(crate) fn clear(&self) {
        self.ring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .clear();
    }
}

struct Line {
    ts: String,
    dir: Direction,
    bytes: Bytes,
}

/// The sending side of the capture file, shared by every session.
pub(crate) struct Recorder {
    tx: mpsc::Sender<Line>,
    dropped: AtomicU64,
}

impl Recorder {
    /// Opens `path` and returns the recorder and the writer task's future (to spawn on the
    /// simulator's tracker). The task ends when every `Recorder` clone is gone and the queue is
    /// drained.
    pub(crate) async fn open(
        path: PathBuf,
    ) -> std::io::Result<(
        Recorder,
        impl std::future::Future<Output = std::io::Result<()>>,
    )> {
        let file = tokio::fs::File::create(&path).await?;
        let (tx, rx) = mpsc::channel(RECORDER_QUEUE);
        Ok((
            Recorder {
                tx,
                dropped: AtomicU64::new(0),
            },
            write_lines(file, rx),
        ))
    }

    /// Queues one record; drops it (and counts) when the writer is behind.
    pub(crate) fn record(&self, dir: Direction, bytes: Bytes) {
        let ts = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6f")
            .to_string();
        if self.tx.try_send(Line { ts, dir, bytes }).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped because the writer was behind.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_lines(file: tokio::fs::File, mut rx: mpsc::Receiver<Line>) -> std::io::Result<()> {
    let mut out = tokio::io::BufWriter::new(file);
    let mut text = String::new();
    while let Some(line) = rx.recv().await {
        text.clear();
        // The timestamp has no whitespace and is never empty, so this cannot fail.
        if write_text_record(&mut text, &line.ts, line.dir, &line.bytes).is_ok() {
            out.write_all(text.as_bytes()).await?;
        }
        if rx.is_empty() {
            out.flush().await?;
        }
    }
    out.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_entries_and_says_it_evicted() {
        let log = PacketLog::new(3);
        let evicted: Vec<bool> = (0..5u8)
            .map(|i| log.push(Direction::DeviceToServer, Bytes::from(vec![i]), None))
            .collect();
        assert_eq!(evicted, [false, false, false, true, true]);
        let seqs: Vec<u64> = log.snapshot().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2, 3, 4]);
    }
}
