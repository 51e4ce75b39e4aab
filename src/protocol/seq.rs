//! Per-connection counters for the commands the bridge sends
//! (`docs/protocol.md#sequence-fields`): a BE16 msg id
//! (echoed by the 0x7B receipt) and an LE tx (echoed by the `f9` response and the following
//! state report). The mesh sequence number (sno) is the low 24 bits of tx.
//!
//! The allocator skips any tx whose frame would contain 0x7D or 0x7E — in tx, sno or the checksum
//! they feed — so frames go out un-stuffed and read the same whether or not a device un-escapes
//! (`docs/protocol.md#escaping`). Skipping costs nothing: the counters are ours to choose.

use super::command::{Command, MAX_COMMAND_PAYLOAD};
use super::types::MsgId;

/// Sequence values for one command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Seq {
    /// Header msg id.
    pub msg: MsgId,
    /// Frame tx.
    pub tx: u32,
    /// Mesh sequence (24-bit).
    pub sno: u32,
}

/// Hands out msg ids and clean tx values for one connection.
#[derive(Clone, Debug)]
pub struct SeqAllocator {
    next_msg: u16,
    msg_range: (u16, u16),
    next_tx: u32,
}

impl Default for SeqAllocator {
    fn default() -> Self {
        Self::starting_at(1, 1)
    }
}

/// tx values tried before giving up on a clean frame (marker bytes in the params themselves,
/// e.g. mesh id 125, cannot be avoided by changing tx).
const MAX_TX_TRIES: u32 = 64;

impl SeqAllocator {
    /// Starts the counters at the given values (random starts make stale receipts from an
    /// earlier connection unlikely to match).
    pub fn starting_at(msg: u16, tx: u32) -> Self {
        Self::in_range(1, u16::MAX, msg, tx)
    }

    /// Msg ids cycle within `lo..=hi` (`lo` ≥ 1), so two allocators on one connection — the
    /// session's own requests and a transport's commands — can never hand out the same id.
    pub fn in_range(lo: u16, hi: u16, msg: u16, tx: u32) -> Self {
        let lo = lo.max(1);
        let hi = hi.max(lo);
        SeqAllocator {
            next_msg: msg.clamp(lo, hi),
            msg_range: (lo, hi),
            next_tx: tx,
        }
    }

    /// The next msg id (never `00 00`, which legacy uses for everything).
    pub fn next_msg(&mut self) -> MsgId {
        let (lo, hi) = self.msg_range;
        let id = MsgId::from_counter(self.next_msg);
        self.next_msg = if self.next_msg >= hi {
            lo
        } else {
            self.next_msg + 1
        };
        id
    }

    /// Sequence values for `cmd`, choosing the first tx (from the counter on) whose frame needs
    /// no stuffing. If none within a few tries is clean (the params themselves contain a
    /// marker), the first candidate is used and the encoder stuffs.
    pub fn next_for(&mut self, cmd: &Command) -> Seq {
        let msg = self.next_msg();
        let cmd = cmd.avoiding_markers();
        let first = skip_marker_bytes(self.next_tx);
        let mut chosen = None;
        let mut tx = first;
        for _ in 0..MAX_TX_TRIES {
            let sno = tx & 0x00FF_FFFF;
            let mut buf = [0u8; MAX_COMMAND_PAYLOAD];
            if cmd.frame_spec(tx, sno, &mut buf).is_clean() {
                chosen = Some(tx);
                break;
            }
            tx = skip_marker_bytes(tx.wrapping_add(1));
        }
        let tx = chosen.unwrap_or(first);
        self.next_tx = tx.wrapping_add(1);
        Seq {
            msg,
            tx,
            sno: tx & 0x00FF_FFFF,
        }
    }
}

/// The smallest value ≥ `tx` (wrapping) none of whose bytes is 0x7D or 0x7E: a marker byte is
/// raised to 0x7F and the bytes below it reset to zero.
fn skip_marker_bytes(mut tx: u32) -> u32 {
    for shift in [24u32, 16, 8, 0] {
        let byte = (tx >> shift) & 0xFF;
        if byte == 0x7D || byte == 0x7E {
            let above = if shift == 24 {
                0
            } else {
                tx & (u32::MAX << (shift + 8))
            };
            tx = above | (0x7F << shift);
        }
    }
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_bytes_in_tx_are_skipped_at_every_position() {
        assert_eq!(skip_marker_bytes(0x7D00_0000), 0x7F00_0000);
        assert_eq!(skip_marker_bytes(0x0000_7E05), 0x0000_7F00);
        assert_eq!(skip_marker_bytes(0x017D_7E7D), 0x017F_0000);
        assert_eq!(skip_marker_bytes(0x0000_0012), 0x12);
    }

    #[test]
    fn msg_ids_stay_inside_their_range() {
        let mut seq = SeqAllocator::in_range(1, 0x7fff, 0x7ffe, 1);
        let ids: Vec<u16> = (0..4).map(|_| seq.next_msg().counter()).collect();
        assert_eq!(ids, vec![0x7ffe, 0x7fff, 1, 2]);
    }

    #[test]
    fn msg_ids_count_up_and_skip_zero() {
        let mut seq = SeqAllocator::starting_at(u16::MAX, 1);
        assert_eq!(seq.next_msg(), MsgId([0xff, 0xff, 0]));
        assert_eq!(seq.next_msg(), MsgId([0, 1, 0]));
    }
}
