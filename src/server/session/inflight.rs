//! The session's table of packets it sent that the device may still answer: its own 0xA3 and
//! mesh requests, and submitted commands.
//!
//! Matching rules (`docs/protocol.md#sequence-fields`, `docs/protocol.md#command-responses`): the
//! 0x7B receipt echoes the msg id — a header field, never escaped — so it is matched verbatim; the
//! `f9` response echoes the frame's tx (decoded after un-escaping by the codec), so it is matched
//! by tx. Both lookups are O(1). The table is bounded twice: by count (`server.max_inflight`,
//! oldest forgotten first) and by age ([`INFLIGHT_TTL`]); a forgotten command's submitter still
//! ends it by its own deadline.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::handle::{CommandToken, CommandUpdate};
use crate::protocol::MsgId;

/// How long an unanswered packet is remembered. Longer than any sensible command deadline
/// (default 5 s); the legacy add-on drops unacknowledged callbacks after 30 s.
pub const INFLIGHT_TTL: Duration = Duration::from_secs(60);

/// Who is waiting for answers to a packet.
#[derive(Debug, Clone)]
pub struct Owner {
    /// The submitter's token.
    pub token: CommandToken,
    /// The submitter's sink.
    pub events: mpsc::Sender<CommandUpdate>,
}

/// One packet awaiting its receipt and/or response.
#[derive(Debug)]
pub struct Entry {
    /// Frame tx (echoed by `f9`), if the packet had a frame.
    pub tx: Option<u32>,
    /// When it went into the send buffer.
    pub sent_at: Instant,
    /// The submitter, for commands; `None` for the session's own packets.
    pub owner: Option<Owner>,
    receipt: bool,
    response: bool,
}

impl Entry {
    /// Neither the receipt nor the response has been seen yet.
    pub fn new(tx: Option<u32>, sent_at: Instant, owner: Option<Owner>) -> Self {
        Entry {
            tx,
            sent_at,
            owner,
            receipt: false,
            response: false,
        }
    }
}

/// What a receipt or response matched.
#[derive(Debug)]
pub struct Matched {
    /// When the packet was sent.
    pub sent_at: Instant,
    /// Its submitter, if any.
    pub owner: Option<Owner>,
}

/// Bounded by count and by age, so a device that never answers cannot grow it; both lookups
/// (msg id, tx) are O(1).
#[derive(Debug)]
pub struct Inflight {
    by_msg: HashMap<MsgId, Entry>,
    by_tx: HashMap<u32, MsgId>,
    order: VecDeque<(Instant, MsgId)>,
    cap: usize,
}

impl Inflight {
    /// An empty table holding at most `cap` entries.
    pub fn new(cap: usize) -> Self {
        Inflight {
            by_msg: HashMap::new(),
            by_tx: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Remembers a sent packet; returns the owner of an entry forgotten to make room.
    pub fn insert(&mut self, msg: MsgId, entry: Entry) -> Option<Owner> {
        self.drop_answered_front();
        let mut evicted = None;
        while self.by_msg.len() >= self.cap {
            let Some((_, oldest)) = self.order.pop_front() else {
                break;
            };
            if let Some(e) = self.remove(oldest) {
                evicted = e.owner.or(evicted);
            }
            self.drop_answered_front();
        }
        // A msg id reused after the 16-bit counter wrapped replaces the stale entry.
        self.remove(msg);
        if let Some(tx) = entry.tx {
            self.by_tx.insert(tx, msg);
        }
        self.order.push_back((entry.sent_at, msg));
        self.by_msg.insert(msg, entry);
        evicted
    }

    /// Pops order entries whose packet was already answered, so the queue stays as short as the
    /// table (answers mostly come in sending order).
    fn drop_answered_front(&mut self) {
        while let Some(&(sent_at, msg)) = self.order.front() {
            if self.by_msg.get(&msg).is_some_and(|e| e.sent_at == sent_at) {
                break;
            }
            self.order.pop_front();
        }
    }

    fn remove(&mut self, msg: MsgId) -> Option<Entry> {
        let entry = self.by_msg.remove(&msg)?;
        if let Some(tx) = entry.tx {
            if self.by_tx.get(&tx) == Some(&msg) {
                self.by_tx.remove(&tx);
            }
        }
        Some(entry)
    }

    fn matched(&mut self, msg: MsgId, receipt: bool) -> Option<Matched> {
        let entry = self.by_msg.get_mut(&msg)?;
        let first = if receipt {
            !std::mem::replace(&mut entry.receipt, true)
        } else {
            !std::mem::replace(&mut entry.response, true)
        };
        let matched = Matched {
            sent_at: entry.sent_at,
            owner: entry.owner.clone(),
        };
        // Done when every answer the packet can get has come: the receipt, and the response
        // if it had a frame. They arrive in either order (docs/protocol.md#data-packets).
        let done = entry.receipt && (entry.response || entry.tx.is_none());
        if done {
            self.remove(msg);
        }
        first.then_some(matched)
    }

    /// The device's 0x7B for `msg`; `None` if unknown or already seen.
    pub fn on_receipt(&mut self, msg: MsgId) -> Option<Matched> {
        self.matched(msg, true)
    }

    /// The device's `f9` with `tx`; `None` if unknown or already seen.
    pub fn on_response(&mut self, tx: u32) -> Option<Matched> {
        let msg = *self.by_tx.get(&tx)?;
        self.matched(msg, false)
    }

    /// Forgets entries sent before `now - INFLIGHT_TTL`.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(sent_at, msg)) = self.order.front() {
            if now.saturating_duration_since(sent_at) < INFLIGHT_TTL {
                break;
            }
            self.order.pop_front();
            // The entry may already be gone (answered) or re-inserted under a wrapped msg id.
            if self.by_msg.get(&msg).is_some_and(|e| e.sent_at == sent_at) {
                self.remove(msg);
            }
        }
        if self.by_msg.is_empty() {
            self.order.clear();
        }
    }

    /// When the oldest entry expires, if any.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.order
            .front()
            .map(|(sent_at, _)| *sent_at + INFLIGHT_TTL)
    }

    /// Empties the table, returning the owners still waiting (the session is closing).
    pub fn drain_owners(&mut self) -> Vec<Owner> {
        self.by_tx.clear();
        self.order.clear();
        self.by_msg.drain().filter_map(|(_, e)| e.owner).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(token: u64) -> Owner {
        let (events, _) = mpsc::channel(1);
        Owner {
            token: CommandToken(token),
            events,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn receipts_match_by_msg_id_and_responses_by_tx_in_any_order() {
        let now = Instant::now();
        let mut table = Inflight::new(8);
        let msg = MsgId::from_counter(7);
        table.insert(msg, Entry::new(Some(0x21), now, Some(owner(1))));
        let response = table.on_response(0x21).unwrap();
        assert_eq!(response.owner.unwrap().token, CommandToken(1));
        assert!(
            table.on_response(0x21).is_none(),
            "a duplicate is not matched twice"
        );
        assert!(table.on_receipt(msg).is_some());
        assert!(table.by_msg.is_empty());
        assert!(table.on_receipt(MsgId::from_counter(8)).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_forgets_the_oldest_when_full_and_everything_after_the_ttl() {
        let now = Instant::now();
        let mut table = Inflight::new(2);
        for n in 1..=2 {
            table.insert(
                MsgId::from_counter(n),
                Entry::new(Some(n.into()), now, Some(owner(n.into()))),
            );
        }
        let evicted = table.insert(MsgId::from_counter(3), Entry::new(Some(3), now, None));
        assert_eq!(evicted.unwrap().token, CommandToken(1));
        assert!(table.on_response(1).is_none());
        assert_eq!(table.next_expiry(), Some(now + INFLIGHT_TTL));
        table.expire(now + INFLIGHT_TTL);
        assert!(table.by_msg.is_empty());
        assert_eq!(table.next_expiry(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_hands_back_every_waiting_owner() {
        let mut table = Inflight::new(8);
        table.insert(
            MsgId::from_counter(1),
            Entry::new(None, Instant::now(), None),
        );
        table.insert(
            MsgId::from_counter(2),
            Entry::new(Some(9), Instant::now(), Some(owner(5))),
        );
        let owners = table.drain_owners();
        assert_eq!(owners.len(), 1);
        assert!(table.by_msg.is_empty());
    }
}
