//! Retry delays: exponential from a base, capped, with proportional jitter so retries from many
//! devices do not line up. The random source is passed in, so a seeded test is deterministic.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub base: Duration,
    /// Upper bound on any delay.
    pub cap: Duration,
    /// Fraction of the delay added or removed at random (0.0–1.0).
    pub jitter: f64,
}

impl Backoff {
    /// The delay before retry `attempt` without jitter: `min(cap, base·2^attempt)`.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        self.base
            .checked_mul(1u32 << attempt.min(20))
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// Delay before retry number `attempt` (0 = first retry): `min(cap, base·2^attempt)`,
    /// then ±`jitter` of that, never above `cap`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = self.base_delay(attempt);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return exp;
        }
        let factor = 1.0 + rng.gen_range(-jitter..=jitter);
        exp.mul_f64(factor).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn delays_double_then_stop_at_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(5),
            jitter: 0.0,
        };
        let mut rng = StdRng::seed_from_u64(1);
        let ms: Vec<u128> = (0..7).map(|a| b.delay(a, &mut rng).as_millis()).collect();
        assert_eq!(ms, vec![250, 500, 1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn jitter_stays_within_its_band_and_under_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(5),
            jitter: 0.2,
        };
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..10 {
            for _ in 0..200 {
                let d = b.delay(attempt, &mut rng);
                let nominal = (250u64 << attempt.min(20)).min(5000) as f64;
                let ms = d.as_secs_f64() * 1000.0;
                assert!(ms >= nominal * 0.8 - 1e-6 && ms <= (nominal * 1.2).min(5000.0) + 1e-6);
            }
        }
    }
}
