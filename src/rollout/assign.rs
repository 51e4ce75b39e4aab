//! Which command path a device takes: a pure function of the salt, the device's topic id and the
//! configured share, so the answer is the same after a restart, an upgrade or on another machine,
//! and needs no cache.
//!
//! `bucket = FNV-1a-64(salt ‖ 0x00 ‖ topic id) mod 10_000`; the device is in the reliable cohort
//! iff `bucket < share` where the share is in hundredths of a percent (0.01 % resolution). FNV-1a
//! is fixed by its definition (offset basis 0xcbf29ce484222325, prime 0x100000001b3), unlike std's
//! `RandomState`, which is seeded per process. Because membership is `bucket < share`, raising the
//! share only ever adds devices, and 0 % empties the cohort on the next command of each device:
//! no device is remembered on a path it no longer belongs to.
//!
//! Precedence for one device: exclude (always legacy) > include (always reliable) > explicit
//! cohort (replaces the percentage when non-empty) > percentage.

use std::collections::BTreeSet;
use std::fmt;

use crate::transport::RouteKey;

/// Buckets a device can land in; one bucket is 0.01 % of all devices.
pub const BUCKETS: u16 = 10_000;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a-64 of `salt`, one zero byte, then `key` (the zero byte keeps `("ab", "c")` and
/// `("a", "bc")` apart).
pub fn stable_hash64(salt: &str, key: &str) -> u64 {
    let mut hash = FNV_OFFSET;
    let bytes = salt.bytes().chain(std::iter::once(0)).chain(key.bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The bucket (0..10 000) of a device's topic id under `salt`.
pub fn bucket(salt: &str, key: &str) -> u16 {
    // The remainder is below 10 000, so it always fits.
    u16::try_from(stable_hash64(salt, key) % u64::from(BUCKETS)).unwrap_or(0)
}

/// A share of devices in hundredths of a percent: 0..=10 000.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Share(u16);

/// A percentage that is not a number from 0 to 100.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error("{0} is not a percentage from 0 to 100")]
pub struct BadPercent(pub f64);

impl Share {
    #[allow(missing_docs)]
    pub const NONE: Share = Share(0);
    #[allow(missing_docs)]
    pub const ALL: Share = Share(BUCKETS);

    /// `round(percent × 100)` hundredths; NaN, infinities and values outside 0–100 are refused.
    pub fn from_percent(percent: f64) -> Result<Share, BadPercent> {
        if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
            return Err(BadPercent(percent));
        }
        // In range 0..=10 000 after the check above.
        Ok(Share((percent * 100.0).round() as u16))
    }

    /// Hundredths of a percent.
    pub fn basis_points(self) -> u16 {
        self.0
    }

    #[allow(missing_docs)]
    pub fn percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} %", self.percent())
    }
}

/// The two paths a command can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    #[allow(missing_docs)]
    Legacy,
    #[allow(missing_docs)]
    Reliable,
}

impl Path {
    /// The `transport` label of the path's metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Legacy => "legacy",
            Path::Reliable => "reliable",
        }
    }
}

/// Who is in the reliable cohort, before any mode or rollback is applied.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cohort {
    #[allow(missing_docs)]
    pub share: Share,
    /// Mixed into every hash; changing it reshuffles which devices form a given share.
    pub salt: String,
    /// Topic ids always on the reliable path.
    pub include: BTreeSet<String>,
    /// Topic ids always on the legacy path; wins over `include` and `explicit`.
    pub exclude: BTreeSet<String>,
    /// When non-empty, exactly these topic ids (plus `include`) are reliable and `share` is
    /// ignored.
    pub explicit: BTreeSet<String>,
}

impl Cohort {
    /// The path of the device or group named `key` (its topic id, like `1000-10`).
    pub fn path(&self, key: &str) -> Path {
        if self.exclude.contains(key) {
            return Path::Legacy;
        }
        if self.include.contains(key) {
            return Path::Reliable;
        }
        let reliable = if self.explicit.is_empty() {
            bucket(&self.salt, key) < self.share.0
        } else {
            self.explicit.contains(key)
        };
        if reliable {
            Path::Reliable
        } else {
            Path::Legacy
        }
    }

    /// [`Self::path`] of a command's routing key.
    pub fn path_of(&self, key: RouteKey) -> Path {
        self.path(&key.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_hash_is_fnv1a_64_with_a_separator() {
        // FNV-1a-64 of the empty input is the offset basis; of "a" it is the published
        // test vector 0xaf63dc4c8601ec8c.
        let fnv = |bytes: &[u8]| {
            bytes.iter().fold(FNV_OFFSET, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
            })
        };
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash64("s", "1000-10"), fnv(b"s\x001000-10"));
        assert_ne!(stable_hash64("ab", "c"), stable_hash64("a", "bc"));
    }

    #[test]
    fn golden_assignments_never_change() {
        // Written down from an independent FNV-1a implementation (Python, outside the repo);
        // a change here moves real devices between paths.
        let golden = [
            ("", "1000-10", 1768),
            ("", "1000-group-32769", 1166),
            ("house", "1000-10", 1910),
            ("house", "1234567890-5", 3398),
        ];
        for (salt, key, expected) in golden {
            assert_eq!(bucket(salt, key), expected, "{salt:?} {key}");
        }
        let at_18 = Cohort {
            share: Share::from_percent(18.0).unwrap(),
            ..Cohort::default()
        };
        assert_eq!(at_18.path("1000-10"), Path::Reliable, "bucket 1768 < 1800");
        assert_eq!(at_18.path("1000-group-32769"), Path::Reliable);
        let at_17 = Cohort {
            share: Share::from_percent(17.68).unwrap(),
            ..Cohort::default()
        };
        assert_eq!(
            at_17.path("1000-10"),
            Path::Legacy,
            "bucket 1768 is not < 1768"
        );
    }

    #[test]
    fn percent_resolution_is_a_hundredth_and_bad_values_are_refused() {
        assert_eq!(Share::from_percent(0.01).unwrap().basis_points(), 1);
        assert_eq!(Share::from_percent(12.345).unwrap().basis_points(), 1235);
        assert_eq!(Share::from_percent(100.0).unwrap(), Share::ALL);
        for bad in [-1.0, 101.0, f64::NAN, f64::INFINITY, -0.001] {
            assert!(Share::from_percent(bad).is_err(), "{bad}");
        }
    }

    fn keys(n: u32) -> Vec<String> {
        (0..n)
            .map(|i| format!("{}-{}", 1000 + i / 200, i % 200))
            .collect()
    }

    fn reliable(cohort: &Cohort, keys: &[String]) -> usize {
        keys.iter()
            .filter(|k| cohort.path(k) == Path::Reliable)
            .count()
    }

    #[test]
    fn zero_and_full_route_everyone_and_ten_percent_is_a_tenth() {
        let keys = keys(10_000);
        let mut cohort = Cohort::default();
        assert_eq!(reliable(&cohort, &keys), 0);
        cohort.share = Share::ALL;
        assert_eq!(reliable(&cohort, &keys), keys.len());
        cohort.share = Share::from_percent(10.0).unwrap();
        let n = reliable(&cohort, &keys);
        assert!((910..=1090).contains(&n), "{n} of 10 000 at 10 %");
    }

    #[test]
    fn exclude_wins_over_include_and_an_explicit_cohort_replaces_the_share() {
        let mut cohort = Cohort {
            share: Share::ALL,
            ..Cohort::default()
        };
        cohort.include.insert("1-1".into());
        cohort.exclude.insert("1-1".into());
        assert_eq!(cohort.path("1-1"), Path::Legacy);
        cohort.explicit.insert("1-2".into());
        assert_eq!(cohort.path("1-2"), Path::Reliable);
        assert_eq!(cohort.path("1-3"), Path::Legacy, "share ignored");
        cohort.include.insert("1-4".into());
        assert_eq!(cohort.path("1-4"), Path::Reliable);
    }

    proptest! {
        #[test]
        fn raising_the_share_only_adds_devices(a in 0u16..=10_000, b in 0u16..=10_000, salt in "[a-z]{0,8}") {
            let (low, high) = (a.min(b), a.max(b));
            let at = |share| Cohort { share: Share(share), salt: salt.clone(), ..Cohort::default() };
            let (low, high) = (at(low), at(high));
            for key in keys(500) {
                if low.path(&key) == Path::Reliable {
                    prop_assert_eq!(high.path(&key), Path::Reliable, "{} left when the share rose", key);
                }
            }
        }
    }
}
