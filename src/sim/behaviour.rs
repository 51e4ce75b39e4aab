//! The firmware's non-packet misbehaviour for one device: what happens to a receipt
//! ([`ReceiptChaos`]), and when the link breaks, storms or backs off ([`LinkChaos`]).
//!
//! Apart from the packet engine because these are decisions about whole exchanges and
//! connections, taken by the device task and the session logic rather than per packet; each
//! kind draws from its own seeded RNG stream, so turning one knob never shifts another's
//! decisions. Must never panic on any rate (out-of-range values act as 0 or 1).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::chaos::{Chaos, LinkChaos, Partition, ReceiptChaos};
use super::engine::chance;

/// What the firmware does with one receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReceiptFate {
    /// Receipt with the response, in the same write.
    Normal,
    /// Receipt in its own write, this much later.
    Delayed(Duration),
    /// No receipt; the command is still executed.
    Dropped,
    /// Only the receipt; the command is not executed.
    Only,
}

/// Applies [`ReceiptChaos`] and [`LinkChaos`] decisions, each from its own RNG stream.
pub(crate) struct BehaviourEngine {
    receipts: ReceiptChaos,
    link: LinkChaos,
    receipt_rng: StdRng,
    link_rng: StdRng,
}

impl BehaviourEngine {
    pub(crate) fn new(chaos: &Chaos, receipt_seed: u64, link_seed: u64) -> Self {
        BehaviourEngine {
            receipts: chaos.receipts.clone(),
            link: chaos.link.clone(),
            receipt_rng: StdRng::seed_from_u64(receipt_seed),
            link_rng: StdRng::seed_from_u64(link_seed),
        }
    }

    pub(crate) fn set_config(&mut self, chaos: &Chaos) {
        self.receipts = chaos.receipts.clone();
        self.link = chaos.link.clone();
    }

    pub(crate) fn link(&self) -> &LinkChaos {
        &self.link
    }

    /// The fate of the receipt for one bridge 0x73.
    pub(crate) fn receipt(&mut self) -> ReceiptFate {
        let c = &self.receipts;
        if c.delay + c.drop + c.receipt_only <= 0.0 {
            return ReceiptFate::Normal;
        }
        let r: f64 = self.receipt_rng.gen();
        if r < c.receipt_only {
            ReceiptFate::Only
        } else if r < c.receipt_only + c.drop {
            ReceiptFate::Dropped
        } else if r < c.receipt_only + c.drop + c.delay {
            ReceiptFate::Delayed(Duration::from_millis(c.delay_ms))
        } else {
            ReceiptFate::Normal
        }
    }

    /// Whether the link is partitioned after a packet the device sent.
    pub(crate) fn partition(&mut self) -> Option<Partition> {
        chance(&mut self.link_rng, self.link.partition).then_some(self.link.partition_kind)
    }

    /// Whether a freshly established connection is dropped at once (reconnect storm).
    pub(crate) fn storm(&mut self) -> bool {
        chance(&mut self.link_rng, self.link.reconnect_storm)
    }

    /// A factor in `1 ± jitter` for the reconnect backoff.
    pub(crate) fn backoff_factor(&mut self, jitter: f64) -> f64 {
        // NaN or out-of-range jitter must not panic `gen_range`: clamp it to 0..=1.
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if jitter == 0.0 {
            1.0
        } else {
            self.link_rng.gen_range(1.0 - jitter..=1.0 + jitter)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 20_000;

    /// ±0.01 absolute: about 4.5 standard deviations at p = 0.1 over 20,000 draws.
    fn close(measured: f64, expected: f64) {
        assert!(
            (measured - expected).abs() <= 0.01,
            "measured {measured:.4}, expected {expected:.4} ± 0.01"
        );
    }

    #[test]
    fn receipt_fates_at_their_rates() {
        let chaos = Chaos {
            receipts: ReceiptChaos {
                delay: 0.1,
                delay_ms: 500,
                drop: 0.05,
                receipt_only: 0.02,
            },
            ..Default::default()
        };
        let mut engine = BehaviourEngine::new(&chaos, 1, 2);
        let mut counts = [0usize; 4];
        for _ in 0..N {
            let i = match engine.receipt() {
                ReceiptFate::Normal => 0,
                ReceiptFate::Delayed(d) => {
                    assert_eq!(d, Duration::from_millis(500));
                    1
                }
                ReceiptFate::Dropped => 2,
                ReceiptFate::Only => 3,
            };
            counts[i] += 1;
        }
        close(counts[1] as f64 / N as f64, 0.1);
        close(counts[2] as f64 / N as f64, 0.05);
        close(counts[3] as f64 / N as f64, 0.02);
    }
}
