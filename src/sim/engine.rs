//! The engines that apply [`Chaos`](super::chaos::Chaos) to one device, packet by packet, each
//! decision drawn from its own seeded RNG stream (see [`stream_seed`]).
//!
//! Why apart from the knobs: the knobs are a data format (TOML, CLI, handle); this is behaviour
//! with its own tests of rates. [`PacketEngine`] works on whole packets of one direction (the
//! byte-level damage is `corrupt`'s); `behaviour` decides receipt fates, partitions, storms
//! and backoff jitter. Must never panic on any packet or rate (rates are clamped, offsets stay
//! inside the packet) and never hold a packet forever ([`REORDER_MAX_HOLD`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::chaos::{ChaosCounters, Note, PacketChaos, REORDER_MAX_HOLD};
use super::corrupt::{break_header, flip_payload};

/// A packet the engine lets through, with when to release it and what was done to it.
#[derive(Clone, Debug)]
pub(crate) struct Release {
    /// Earliest time to write (or act on) it.
    pub due: Instant,
    /// The bytes, possibly altered.
    pub bytes: Bytes,
    /// What chaos did, if anything.
    pub note: Option<Note>,
}

struct Held {
    bytes: Bytes,
    note: Option<Note>,
    remaining: u32,
    deadline: Instant,
}

/// True with probability `p`. Unlike `Rng::gen_bool` it never panics: a rate outside 0..=1 or
/// NaN (which validation rejects, but a runtime change could slip past) acts as 0 or 1.
pub(crate) fn chance(rng: &mut StdRng, p: f64) -> bool {
    p > 0.0 && rng.gen::<f64>() < p
}

/// Derives an independent RNG seed for one stream of decisions (splitmix64 over the inputs), so
/// adding a device or a direction never shifts another stream's decisions.
pub(crate) fn stream_seed(seed: u64, device: u64, stream: u64) -> u64 {
    let mut z = seed
        ^ device.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Applies [`PacketChaos`] to one direction of one device.
pub(crate) struct PacketEngine {
    cfg: PacketChaos,
    rng: StdRng,
    burst_left: u32,
    held: Vec<Held>,
    last_due: Option<Instant>,
    counters: Arc<ChaosCounters>,
}

impl PacketEngine {
    pub(crate) fn new(cfg: PacketChaos, seed: u64, counters: Arc<ChaosCounters>) -> Self {
        PacketEngine {
            cfg,
            rng: StdRng::seed_from_u64(seed),
            burst_left: 0,
            held: Vec::new(),
            last_due: None,
            counters,
        }
    }

    /// Replaces the knobs; the RNG stream and held packets are kept.
    pub(crate) fn set_config(&mut self, cfg: PacketChaos) {
        self.cfg = cfg;
    }

    /// Forgets held packets and latency ordering (the connection they belonged to is gone).
    pub(crate) fn reset_link(&mut self) {
        self.held.clear();
        self.burst_left = 0;
        self.last_due = None;
    }

    /// Decides the fate of one packet. Released packets go to `out` in order; lost ones to
    /// `lost` (for the log).
    pub(crate) fn process(
        &mut self,
        now: Instant,
        bytes: Bytes,
        out: &mut Vec<Release>,
        lost: &mut Vec<(Bytes, Note)>,
    ) {
        self.counters.offer();
        if self.cfg.is_off() && self.held.is_empty() && self.last_due.is_none_or(|d| d <= now) {
            out.push(Release {
                due: now,
                bytes,
                note: None,
            });
            return;
        }
        if self.lose() {
            self.counters.bump(Note::Dropped);
            lost.push((bytes, Note::Dropped));
            return;
        }
        let (bytes, note) = self.corrupt(bytes);
        if chance(&mut self.rng, self.cfg.bogus) {
            let junk = self.bogus(&bytes);
            self.counters.bump(Note::Bogus);
            self.release(now, junk, Some(Note::Bogus), out);
        }
        let copies = if chance(&mut self.rng, self.cfg.duplicate) {
            self.counters.bump(Note::Duplicate);
            2
        } else {
            1
        };
        for copy in 0..copies {
            let note = if copy == 1 {
                Some(Note::Duplicate)
            } else {
                note
            };
            if copy == 0 && self.cfg.reorder_window > 0 && chance(&mut self.rng, self.cfg.reorder) {
                self.counters.bump(Note::Reordered);
                self.held.push(Held {
                    bytes: bytes.clone(),
                    note: Some(Note::Reordered),
                    remaining: self.cfg.reorder_window,
                    deadline: now + REORDER_MAX_HOLD,
                });
                continue;
            }
            self.release(now, bytes.clone(), note, out);
            self.overtake(now, out);
        }
    }

    /// Releases held packets whose deadline passed.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Release>) {
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].deadline <= now {
                let held = self.held.remove(i);
                self.release(now, held.bytes, held.note, out);
            } else {
                i += 1;
            }
        }
    }

    /// When [`Self::expire`] next has work.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.held.iter().map(|h| h.deadline).min()
    }

    fn lose(&mut self) -> bool {
        if self.burst_left > 0 {
            self.burst_left -= 1;
            return true;
        }
        if chance(&mut self.rng, self.cfg.loss) {
            self.burst_left = self.cfg.loss_burst.max(1) - 1;
            return true;
        }
        false
    }

    /// One packet passed: every held packet has been overtaken once more.
    fn overtake(&mut self, now: Instant, out: &mut Vec<Release>) {
        for held in &mut self.held {
            held.remaining = held.remaining.saturating_sub(1);
        }
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].remaining == 0 {
                let held = self.held.remove(i);
                self.release(now, held.bytes, held.note, out);
            } else {
                i += 1;
            }
        }
    }

    fn release(&mut self, now: Instant, bytes: Bytes, note: Option<Note>, out: &mut Vec<Release>) {
        let mut delay = Duration::from_millis(self.cfg.latency_ms);
        if self.cfg.jitter_ms > 0 {
            delay += Duration::from_millis(self.rng.gen_range(0..self.cfg.jitter_ms));
        }
        let due = (now + delay).max(self.last_due.unwrap_or(now));
        self.last_due = Some(due);
        let note = match note {
            None if due > now => {
                self.counters.bump(Note::Delayed);
                Some(Note::Delayed)
            }
            other => other,
        };
        out.push(Release { due, bytes, note });
    }

    fn corrupt(&mut self, bytes: Bytes) -> (Bytes, Option<Note>) {
        let c = &self.cfg;
        let total = c.corrupt_checksum + c.corrupt_fixed + c.corrupt_header;
        if total <= 0.0 {
            return (bytes, None);
        }
        let r: f64 = self.rng.gen();
        let note = if r < c.corrupt_checksum {
            Note::CorruptChecksum
        } else if r < c.corrupt_checksum + c.corrupt_fixed {
            Note::CorruptFixed
        } else if r < total {
            Note::CorruptHeader
        } else {
            return (bytes, None);
        };
        let mut b = BytesMut::from(&bytes[..]);
        match note {
            Note::CorruptHeader => break_header(&mut b, &mut self.rng),
            _ => flip_payload(&mut b, note == Note::CorruptFixed, &mut self.rng),
        }
        self.counters.bump(note);
        (b.freeze(), Some(note))
    }

    fn bogus(&mut self, current: &Bytes) -> Bytes {
        match self.rng.gen_range(0..4u8) {
            0 => {
                let len = self.rng.gen_range(1..=24);
                (0..len).map(|_| self.rng.gen::<u8>()).collect()
            }
            1 => {
                // A type byte no codec knows, with a well-formed header.
                let len: u8 = self.rng.gen_range(0..16);
                let mut b = vec![0x93, 0, 0, 0, len];
                b.extend((0..len).map(|_| self.rng.gen::<u8>()));
                Bytes::from(b)
            }
            2 => Bytes::from_static(&[0x73, 0x00, 0x00, 0xFF, 0xFF]),
            _ => current.slice(..current.len() / 2),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Rates checked on 20,000 synthetic packets with a fixed seed. Tolerance: ±0.01 absolute on
    //! rates (about 4.5 standard deviations at p = 0.1, n = 20,000), so a pass is not luck and a
    //! wrong formula (off by a factor) fails.
    use super::*;
    use crate::sim::chaos::ChaosCounts;

    const N: usize = 20_000;

    fn packet(i: usize) -> Bytes {
        // A real state report (vector #9) with its counter byte varied.
        let mut p = hex("83 00 00 00 25 45 88 0f 3a 00 09 00 7e 1f 00 00 00 fa db 13 00 72 25 11 50 00 50 00 db 11 02 01 01 0a 0a ff ff ff 00 00 37 7e");
        p[10] = (i % 251) as u8;
        Bytes::from(p)
    }

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn run(cfg: PacketChaos) -> (ChaosCounts, Vec<Release>) {
        run_n(cfg, N)
    }

    fn run_n(cfg: PacketChaos, n: usize) -> (ChaosCounts, Vec<Release>) {
        let counters = Arc::new(ChaosCounters::default());
        let mut engine = PacketEngine::new(cfg, 42, counters.clone());
        let now = Instant::now();
        let (mut out, mut lost) = (Vec::new(), Vec::new());
        for i in 0..n {
            engine.process(now, packet(i), &mut out, &mut lost);
        }
        engine.expire(now + REORDER_MAX_HOLD, &mut out);
        (counters.snapshot(), out)
    }

    /// The frame of a decoded 0x83, which is what every test packet is.
    fn status_frame(
        decoded: Result<crate::protocol::Packet<'_>, crate::protocol::DecodeError>,
    ) -> Result<crate::protocol::Frame<'_>, crate::protocol::FrameError> {
        match decoded {
            Ok(crate::protocol::Packet::Status(f)) => f.frame,
            other => panic!("not a 0x83: {other:?}"),
        }
    }

    fn close(measured: f64, expected: f64) {
        assert!(
            (measured - expected).abs() <= 0.01,
            "measured {measured:.4}, expected {expected:.4} ± 0.01"
        );
    }

    #[test]
    fn burst_loss_drops_the_expected_fraction() {
        // Bursts make losses correlated (variance ≈ burst × that of independent losses), so this
        // one runs 100,000 packets: one standard deviation is then about 0.003.
        let (p, b, n) = (0.05, 4u32, 100_000);
        let (counts, out) = run_n(
            PacketChaos {
                loss: p,
                loss_burst: b,
                ..Default::default()
            },
            n,
        );
        let expected = p * f64::from(b) / (1.0 - p + p * f64::from(b));
        close(counts.dropped as f64 / n as f64, expected);
        assert_eq!(out.len() as u64, counts.offered - counts.dropped);
    }

    #[test]
    fn corruption_kinds_are_exclusive_and_at_their_rates() {
        let (counts, out) = run(PacketChaos {
            corrupt_checksum: 0.1,
            corrupt_fixed: 0.05,
            corrupt_header: 0.02,
            ..Default::default()
        });
        close(counts.corrupt_checksum as f64 / N as f64, 0.1);
        close(counts.corrupt_fixed as f64 / N as f64, 0.05);
        close(counts.corrupt_header as f64 / N as f64, 0.02);
        for r in &out {
            let decoded = crate::protocol::decode(&r.bytes);
            match r.note {
                Some(Note::CorruptChecksum) => {
                    let frame = status_frame(decoded);
                    assert_eq!(frame.unwrap_err().reason(), "checksum");
                }
                Some(Note::CorruptFixed) => {
                    let frame = status_frame(decoded);
                    assert!(frame.is_ok(), "checksum fixed up: {frame:?}");
                }
                Some(Note::CorruptHeader) => {
                    assert!(r.bytes[1] != 0 || r.bytes[3..5] != [0x00, 0x25]);
                }
                _ => assert!(decoded.is_ok()),
            }
        }
    }

    #[test]
    fn duplicates_reorders_and_bogus_at_their_rates() {
        let (counts, out) = run(PacketChaos {
            duplicate: 0.1,
            reorder: 0.05,
            reorder_window: 3,
            bogus: 0.03,
            ..Default::default()
        });
        close(counts.duplicated as f64 / N as f64, 0.1);
        close(counts.reordered as f64 / N as f64, 0.05);
        close(counts.bogus as f64 / N as f64, 0.03);
        assert_eq!(
            out.len() as u64,
            counts.offered + counts.duplicated + counts.bogus
        );
        // Reordered packets came out after later ones: the counter byte went backwards.
        let real: Vec<u8> = out
            .iter()
            .filter(|r| r.note != Some(Note::Bogus))
            .map(|r| r.bytes[10])
            .collect();
        let backwards = real.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(backwards as u64 >= counts.reordered / 2, "{backwards}");
    }

    #[test]
    fn latency_and_jitter_keep_fifo_order() {
        let counters = Arc::new(ChaosCounters::default());
        let mut engine = PacketEngine::new(
            PacketChaos {
                latency_ms: 100,
                jitter_ms: 50,
                ..Default::default()
            },
            7,
            counters.clone(),
        );
        let now = Instant::now();
        let (mut out, mut lost) = (Vec::new(), Vec::new());
        for i in 0..1000 {
            engine.process(now, packet(i), &mut out, &mut lost);
        }
        assert!(out.windows(2).all(|w| w[0].due <= w[1].due));
        assert!(out
            .iter()
            .all(|r| r.due >= now + Duration::from_millis(100)));
        let last = out.last().unwrap().due - now;
        assert!(last < Duration::from_millis(150), "{last:?}");
        assert_eq!(counters.snapshot().delayed, 1000);
    }

    #[test]
    fn same_seed_same_decisions() {
        let cfg = PacketChaos {
            loss: 0.2,
            duplicate: 0.2,
            corrupt_checksum: 0.2,
            ..Default::default()
        };
        let (_, a) = run(cfg.clone());
        let (_, b) = run(cfg);
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.bytes == y.bytes));
    }

    #[test]
    fn corruption_never_panics_on_short_or_odd_packets() {
        let counters = Arc::new(ChaosCounters::default());
        let mut engine = PacketEngine::new(
            PacketChaos {
                corrupt_checksum: 0.4,
                corrupt_fixed: 0.3,
                corrupt_header: 0.3,
                bogus: 0.5,
                ..Default::default()
            },
            1,
            counters,
        );
        let now = Instant::now();
        let (mut out, mut lost) = (Vec::new(), Vec::new());
        for len in 0..64 {
            for kind in [0x73u8, 0x83, 0x43, 0xD3, 0x00] {
                let mut p = vec![0u8; len];
                if let Some(first) = p.first_mut() {
                    *first = kind;
                }
                engine.process(now, Bytes::from(p), &mut out, &mut lost);
            }
        }
    }
}
