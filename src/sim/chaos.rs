//! Deterministic chaos for one simulated device: what can go wrong on its link and in its
//! firmware, decided packet by packet from a seeded RNG.
//!
//! Why it exists: the bridge must survive the bad days real devices have
//! (`docs/protocol.md#timing`: aggressive reconnects, slow readers, delayed acks) and the ones a
//! network adds (loss, duplicates, corruption). Tests need those days to be *reproducible*, so
//! every decision comes from a `StdRng` seeded from (simulator seed, device, direction): the same
//! seed and the same packet sequence give the same decisions.
//!
//! What it owns: the knobs ([`Chaos`] and its parts, deserialisable from a TOML scenario), their
//! validation, and the counters of what was done; the engines that apply them live in
//! `sim/engine.rs`. Packet-level chaos works on *whole packets* after framing and before
//! writing (outbound) or before the device acts on them (inbound), so loss, duplication and
//! reordering never split a packet. Latency is FIFO (a delayed packet also delays the ones behind
//! it, as TCP would); only the reorder knob changes the order.
//!
//! What it must never do: panic on any packet (corruption picks offsets inside the packet it is
//! given), hold a packet forever (held-back packets have a deadline), or touch the socket (the
//! session task does the I/O).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest a reordered packet is held back when fewer than `reorder_window` packets follow it.
pub const REORDER_MAX_HOLD: Duration = Duration::from_secs(2);

/// Packet-level chaos for one direction. Rates are probabilities per packet (0.0–1.0).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PacketChaos {
    /// Probability that a packet starts a loss episode.
    pub loss: f64,
    /// Packets lost per episode (1 = independent losses). Expected lost fraction is
    /// `loss·burst / (1 − loss + loss·burst)`.
    pub loss_burst: u32,
    /// Fixed delay added to every packet, in milliseconds.
    pub latency_ms: u64,
    /// Extra delay drawn uniformly from `0..jitter_ms` per packet (order is kept: FIFO).
    pub jitter_ms: u64,
    /// Probability that a packet is sent twice, back to back.
    pub duplicate: f64,
    /// Probability that a packet is held back and sent after the next `reorder_window` packets.
    pub reorder: f64,
    /// How many later packets overtake a held-back packet (0 disables reordering).
    pub reorder_window: u32,
    /// Probability that a payload byte is flipped and the frame checksum left wrong.
    pub corrupt_checksum: f64,
    /// Probability that a payload byte is flipped and the checksum fixed up to match, so only
    /// the content is wrong.
    pub corrupt_fixed: f64,
    /// Probability that the 5-byte header is broken (non-zero bytes 1..2 or a wrong length).
    pub corrupt_header: f64,
    /// Probability that a bogus packet (junk, unknown type, oversize header, truncated copy) is
    /// sent before a packet.
    pub bogus: f64,
}

/// How a partition cuts the link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partition {
    /// Silence both ways on an open socket: nothing is written, everything read is discarded.
    #[default]
    Blackhole,
    /// Close with a TCP reset (zero linger), then reconnect after the backoff.
    Reset,
    /// Close with a FIN (write half shut down), then reconnect after the backoff.
    Fin,
}

/// Link-level chaos: partitions, reconnect storms, a slow reader.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkChaos {
    /// Probability, per packet the device sends, that the link is partitioned right after it.
    pub partition: f64,
    /// What kind of partition `partition` triggers.
    pub partition_kind: Partition,
    /// How long a blackhole lasts before the device resumes on the same socket, in ms.
    pub blackhole_ms: u64,
    /// Probability, per established connection, that the device drops it right after its hello and
    /// reconnects after `storm_gap_ms` instead of the normal backoff (`docs/protocol.md#timing`: a
    /// device whose server stops reading reconnects aggressively).
    pub reconnect_storm: f64,
    /// Gap before reconnecting in a storm, in ms.
    pub storm_gap_ms: u64,
    /// Read at most this many bytes per second from the bridge (0 = unthrottled).
    pub slow_read_bytes_per_sec: u64,
}

/// Receipt chaos: what the device's firmware does with the 0x7B for a bridge 0x73.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiptChaos {
    /// Probability that the receipt is sent `receipt_delay_ms` late, in its own write.
    pub delay: f64,
    /// The delay for delayed receipts, in ms.
    pub delay_ms: u64,
    /// Probability that the receipt is never sent (the command is still executed).
    pub drop: f64,
    /// Probability that only the receipt is sent: no response, no state change, no report
    /// (a receipt only means "delivered": malformed 0x73s got one, `docs/protocol.md#receipts`).
    pub receipt_only: f64,
}

/// Everything that can go wrong for one device. The default is a perfect device on a perfect
/// network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Chaos {
    /// Device → bridge packets, applied after encoding and before writing.
    pub to_bridge: PacketChaos,
    /// Bridge → device packets, applied after framing and before the device acts on them.
    pub from_bridge: PacketChaos,
    /// Partitions, reconnect storms, slow reader.
    pub link: LinkChaos,
    #[allow(missing_docs)]
    pub receipts: ReceiptChaos,
}

/// A knob outside its range, named by its path in the scenario file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("chaos setting {knob} = {value} is out of range ({expected})")]
pub struct ChaosError {
    /// e.g. `to_bridge.loss`.
    pub knob: String,
    #[allow(missing_docs)]
    pub value: f64,
    /// The allowed range, as text for the message (e.g. `0..=1`).
    pub expected: &'static str,
}

fn rate(prefix: &str, name: &str, value: f64) -> Result<(), ChaosError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ChaosError {
            knob: format!("{prefix}.{name}"),
            value,
            expected: "a probability from 0.0 to 1.0",
        })
    }
}

impl PacketChaos {
    fn validate(&self, prefix: &str) -> Result<(), ChaosError> {
        for (name, value) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
            ("corrupt_checksum", self.corrupt_checksum),
            ("corrupt_fixed", self.corrupt_fixed),
            ("corrupt_header", self.corrupt_header),
            ("bogus", self.bogus),
        ] {
            rate(prefix, name, value)?;
        }
        let corrupt = self.corrupt_checksum + self.corrupt_fixed + self.corrupt_header;
        rate(
            prefix,
            "corrupt_checksum + corrupt_fixed + corrupt_header",
            corrupt,
        )
    }

    /// True when no knob is set, so the engine can pass packets straight through.
    pub fn is_off(&self) -> bool {
        *self
            == PacketChaos {
                loss_burst: self.loss_burst,
                reorder_window: self.reorder_window,
                ..PacketChaos::default()
            }
    }
}

impl Chaos {
    /// Checks every rate is a probability and that exclusive rates do not sum above 1.
    pub fn validate(&self) -> Result<(), ChaosError> {
        self.to_bridge.validate("to_bridge")?;
        self.from_bridge.validate("from_bridge")?;
        rate("link", "partition", self.link.partition)?;
        rate("link", "reconnect_storm", self.link.reconnect_storm)?;
        let r = &self.receipts;
        rate("receipts", "delay", r.delay)?;
        rate("receipts", "drop", r.drop)?;
        rate("receipts", "receipt_only", r.receipt_only)?;
        rate(
            "receipts",
            "delay + drop + receipt_only",
            r.delay + r.drop + r.receipt_only,
        )
    }
}

/// What chaos did to one packet; shown in the device's packet log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Note {
    /// Lost (never written / never acted on).
    Dropped,
    /// The second copy of a duplicated packet.
    Duplicate,
    /// Sent after later packets.
    Reordered,
    /// Payload byte flipped, checksum left wrong.
    CorruptChecksum,
    /// Payload byte flipped, checksum fixed up.
    CorruptFixed,
    /// Header broken.
    CorruptHeader,
    /// A bogus packet made up by the chaos engine.
    Bogus,
    /// Held back by latency / jitter.
    Delayed,
    /// Discarded during a blackhole partition.
    Blackholed,
}

/// Counters of what one direction's engine did, readable while it runs.
#[derive(Debug, Default)]
pub struct ChaosCounters {
    offered: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    corrupt_checksum: AtomicU64,
    corrupt_fixed: AtomicU64,
    corrupt_header: AtomicU64,
    bogus: AtomicU64,
    delayed: AtomicU64,
}

/// A snapshot of [`ChaosCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChaosCounts {
    /// Packets given to the engine.
    pub offered: u64,
    /// Packets lost.
    pub dropped: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Packets held back and overtaken.
    pub reordered: u64,
    /// Packets corrupted with a wrong checksum.
    pub corrupt_checksum: u64,
    /// Packets corrupted with the checksum fixed.
    pub corrupt_fixed: u64,
    /// Packets with a broken header.
    pub corrupt_header: u64,
    /// Bogus packets injected.
    pub bogus: u64,
    /// Packets delayed by latency or jitter.
    pub delayed: u64,
}

impl ChaosCounters {
    /// Counts one packet given to an engine.
    pub(crate) fn offer(&self) {
        self.offered.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one thing done to a packet.
    pub(crate) fn bump(&self, note: Note) {
        let counter = match note {
            Note::Dropped | Note::Blackholed => &self.dropped,
            Note::Duplicate => &self.duplicated,
            Note::Reordered => &self.reordered,
            Note::CorruptChecksum => &self.corrupt_checksum,
            Note::CorruptFixed => &self.corrupt_fixed,
            Note::CorruptHeader => &self.corrupt_header,
            Note::Bogus => &self.bogus,
            Note::Delayed => &self.delayed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> ChaosCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ChaosCounts {
            offered: get(&self.offered),
            dropped: get(&self.dropped),
            duplicated: get(&self.duplicated),
            reordered: get(&self.reordered),
            corrupt_checksum: get(&self.corrupt_checksum),
            corrupt_fixed: get(&self.corrupt_fixed),
            corrupt_header: get(&self.corrupt_header),
            bogus: get(&self.bogus),
            delayed: get(&self.delayed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_knobs_are_named() {
        let chaos = Chaos {
            from_bridge: PacketChaos {
                loss: 1.5,
                ..Default::default()
            },
            ..Default::default()
        };
        let err = chaos.validate().unwrap_err();
        assert_eq!(err.knob, "from_bridge.loss");
        let chaos = Chaos {
            receipts: ReceiptChaos {
                drop: 0.6,
                receipt_only: 0.6,
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(chaos.validate().is_err());
    }
}
