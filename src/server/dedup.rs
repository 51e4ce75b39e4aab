//! De-duplication of device retransmits, used by each session: a bounded LRU of (peer id,
//! msg id) with a TTL, for packets that carry a per-session counter (device 0x83 and 0x73).
//!
//! A repeat of a key seen within the TTL is a retransmit: the caller still acknowledges it (the
//! device wants its 0x88/0x7B) but drops it before it touches state. Packets without a counter
//! (every 0x43 carries `01 01 06`) must never go through here — a light that goes A→B→A has to
//! reach B and then A again; those are made harmless by applying state idempotently instead.
//!
//! Pure data structure: time comes in as an argument, so tests need no clock. The `lru` crate
//! keeps the order; a repeat is looked at with `peek`, never promoted, so least recently used
//! is also first seen and the TTL counts from the first sighting, not the latest retransmit.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::protocol::{MsgId, PeerId};

/// (peer id, msg id, fingerprint of the packet's bytes). A retransmit is byte-identical; the
/// fingerprint keeps two *different* frames that share a msg id (a multi-frame mesh-info
/// response might — only single-frame ones were captured) from being taken for one.
type Key = (PeerId, MsgId, u64);

/// FNV-1a over `bytes`: cheap, and collisions between a packet and its neighbours are
/// irrelevant here (a collision would only make a distinct packet look new... or old: the
/// msg id must match too).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Entries per session: a device that retransmits does so within seconds, and a session
/// rarely sees a thousand counter-carrying packets in five minutes.
pub const DEFAULT_CAPACITY: usize = 1_000;
/// Long past any device retransmit seen in captures (they come within seconds).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// Bounded, time-limited memory of recently seen packets.
#[derive(Debug)]
pub struct Dedup {
    ttl: Duration,
    /// Key → when it was first seen.
    seen: LruCache<Key, Instant>,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup::new(DEFAULT_CAPACITY, DEFAULT_TTL)
    }
}

impl Dedup {
    /// A window holding at most `capacity` keys (at least one) for at most `ttl` each.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        // `LruCache::new` would reserve room for `capacity` entries up front; one cache per
        // session and most sessions see a few packets a minute, so start empty and bound it.
        let mut seen = LruCache::unbounded();
        seen.resize(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN));
        Dedup { ttl, seen }
    }

    /// Records a packet and says whether it is new. `false` means a retransmit within the TTL.
    pub fn first_sighting(&mut self, peer: PeerId, msg: MsgId, print: u64, now: Instant) -> bool {
        self.expire(now);
        let key = (peer, msg, print);
        if self.seen.peek(&key).is_some() {
            return false;
        }
        // At capacity this evicts the least recently inserted key.
        self.seen.push(key, now);
        true
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((_, &at)) = self.seen.peek_lru() {
            if now.saturating_duration_since(at) < self.ttl {
                break;
            }
            self.seen.pop_lru();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: PeerId = PeerId([1, 2, 3, 4]);

    #[test]
    fn a_repeat_within_the_ttl_is_a_retransmit() {
        let t0 = Instant::now();
        let mut d = Dedup::new(10, Duration::from_secs(300));
        assert!(d.first_sighting(P, MsgId([0, 1, 0]), 0, t0));
        assert!(!d.first_sighting(P, MsgId([0, 1, 0]), 0, t0 + Duration::from_secs(299)));
        assert!(d.first_sighting(P, MsgId([0, 2, 0]), 0, t0));
        assert!(d.first_sighting(PeerId([9, 9, 9, 9]), MsgId([0, 1, 0]), 0, t0));
    }

    #[test]
    fn different_frames_sharing_a_msg_id_are_not_retransmits() {
        let t0 = Instant::now();
        let mut d = Dedup::default();
        let m = MsgId([0, 7, 0]);
        assert!(d.first_sighting(P, m, fingerprint(b"frame one"), t0));
        assert!(d.first_sighting(P, m, fingerprint(b"frame two"), t0));
        assert!(!d.first_sighting(P, m, fingerprint(b"frame one"), t0));
    }

    #[test]
    fn after_the_ttl_the_same_key_is_new_again() {
        let t0 = Instant::now();
        let mut d = Dedup::new(10, Duration::from_secs(300));
        assert!(d.first_sighting(P, MsgId([0, 1, 0]), 0, t0));
        assert!(d.first_sighting(P, MsgId([0, 1, 0]), 0, t0 + Duration::from_secs(300)));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn capacity_is_never_exceeded_and_the_oldest_goes_first() {
        let t0 = Instant::now();
        let mut d = Dedup::new(3, Duration::from_secs(300));
        for i in 0..10u16 {
            assert!(d.first_sighting(P, MsgId::from_counter(i), 0, t0));
            assert!(d.len() <= 3);
        }
        // 7, 8, 9 remain; 0 was evicted and counts as new.
        assert!(!d.first_sighting(P, MsgId::from_counter(9), 0, t0));
        assert!(d.first_sighting(P, MsgId::from_counter(0), 0, t0));
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn a_retransmit_does_not_extend_the_ttl_or_save_a_key_from_eviction() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(300);
        let mut d = Dedup::new(2, ttl);
        let (a, b, c) = (MsgId([0, 1, 0]), MsgId([0, 2, 0]), MsgId([0, 3, 0]));
        assert!(d.first_sighting(P, a, 0, t0));
        assert!(d.first_sighting(P, b, 0, t0 + Duration::from_secs(1)));
        // A repeat of `a` is a retransmit but leaves it the oldest...
        assert!(!d.first_sighting(P, a, 0, t0 + Duration::from_secs(2)));
        // ...so a third key pushes `a` out, not `b`.
        assert!(d.first_sighting(P, c, 0, t0 + Duration::from_secs(3)));
        assert!(!d.first_sighting(P, b, 0, t0 + Duration::from_secs(4)));
        assert!(d.first_sighting(P, a, 0, t0 + Duration::from_secs(5)));
        // `c` expires `ttl` after it was first seen, however often it came again.
        assert!(!d.first_sighting(P, c, 0, t0 + Duration::from_secs(200)));
        assert!(d.first_sighting(P, c, 0, t0 + Duration::from_secs(3) + ttl));
    }
}
