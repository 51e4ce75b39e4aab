//! Per-device availability with hysteresis, so Home Assistant neither flaps on one missed
//! report nor shows a dead device as alive.
//!
//! Two inputs decide it: whether any connected Wi-Fi device reaches the device (routes), and the
//! online flag of its last report (state reports, 0x43 records: a powered-off Bluetooth bulb behind
//! a live relay is reported with the flag cleared). A device becomes available at once when it is
//! online and reachable; it becomes unavailable only after it has been reported offline for
//! `offline_grace`, or been unreachable for `route_grace` (a relay reconnecting takes ≈2.6 s,
//! `docs/protocol.md#timing`). Time-based rather than a count of offline reports because the state
//! store emits changes, not repeats: a bulb that stays off produces one event.
//!
//! After a (re)start every relay has to reconnect, which can take a minute or more; until then
//! a device nobody has seen yet is *undecided* ([`Availability::state`] is `None`), not
//! unavailable, and only becomes unavailable once `startup_grace` has passed without a route to
//! it. So a bridge restart does not flash every device "unavailable" in Home Assistant (which
//! keeps showing the retained availability meanwhile). An explicit offline report still counts
//! from the moment it arrives.
//!
//! Pure: time is an argument; changes are returned for the caller to publish.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Hysteresis settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvailabilityPolicy {
    /// How long a device may be reported offline before it is marked unavailable.
    pub offline_grace: Duration,
    /// How long a device may be without any route before it is marked unavailable.
    pub route_grace: Duration,
    /// After start, how long a device that has not been seen may go without a route before it is
    /// marked unavailable.
    pub startup_grace: Duration,
}

impl Default for AvailabilityPolicy {
    fn default() -> Self {
        AvailabilityPolicy {
            offline_grace: Duration::from_secs(10),
            route_grace: Duration::from_secs(10),
            startup_grace: Duration::from_secs(90),
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    /// `false` until the first verdict (available, or a grace expired).
    decided: bool,
    available: bool,
    offline_since: Option<Instant>,
    no_route_since: Option<Instant>,
}

/// Availability of every known device.
#[derive(Debug)]
pub struct Availability<K> {
    policy: AvailabilityPolicy,
    started: Instant,
    entries: HashMap<K, Entry>,
}

impl<K: Copy + Eq + Hash> Availability<K> {
    /// Knows no device; `started` begins the start-up grace.
    pub fn new(policy: AvailabilityPolicy, started: Instant) -> Self {
        Availability {
            policy,
            started,
            entries: HashMap::new(),
        }
    }

    /// Current availability (`false` for devices never observed or still undecided).
    pub fn is_available(&self, key: &K) -> bool {
        self.entries.get(key).is_some_and(|e| e.available)
    }

    /// `None` while undecided: never observed, or not yet seen and still in the start-up grace.
    pub fn state(&self, key: &K) -> Option<bool> {
        self.entries
            .get(key)
            .filter(|e| e.decided)
            .map(|e| e.available)
    }

    /// One observation of `key`: its last reported online flag and whether any session reaches
    /// it now. Returns the new availability if it changed.
    pub fn observe(&mut self, key: K, online: bool, reachable: bool, now: Instant) -> Option<bool> {
        let policy = self.policy;
        let e = self.entries.entry(key).or_insert(Entry {
            decided: false,
            available: false,
            offline_since: None,
            no_route_since: None,
        });
        e.offline_since = if online {
            None
        } else {
            Some(e.offline_since.unwrap_or(now))
        };
        e.no_route_since = if reachable {
            None
        } else {
            Some(e.no_route_since.unwrap_or(now))
        };
        let expired = |since: Option<Instant>, grace: Duration| {
            since.is_some_and(|t| now.saturating_duration_since(t) >= grace)
        };
        // Not seen since start and no route yet: relays are still reconnecting, so there is no
        // verdict until the start-up grace is over (a route reporting it offline is a verdict).
        let in_startup = now.saturating_duration_since(self.started) < policy.startup_grace;
        if !e.decided && in_startup && !reachable {
            return None;
        }
        let next = if online && reachable {
            true
        } else if expired(e.offline_since, policy.offline_grace)
            || expired(e.no_route_since, policy.route_grace)
        {
            false
        } else if !e.decided {
            return None;
        } else {
            e.available
        };
        let changed = !e.decided || next != e.available;
        e.decided = true;
        e.available = next;
        changed.then_some(next)
    }

    /// Forgets a device (it was removed from the device list).
    pub fn forget(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Devices never observed are not counted: they are unavailable.
    pub fn available_count(&self) -> usize {
        self.entries.values().filter(|e| e.available).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);

    fn tracker() -> Availability<u16> {
        Availability::new(
            AvailabilityPolicy {
                offline_grace: GRACE,
                route_grace: GRACE,
                startup_grace: Duration::ZERO,
            },
            Instant::now(),
        )
    }

    #[test]
    fn a_short_offline_blip_does_not_flap_a_long_one_does() {
        let t0 = Instant::now();
        let mut a = tracker();
        assert_eq!(a.observe(1, true, true, t0), Some(true));
        assert_eq!(a.observe(1, false, true, t0 + GRACE / 4), None);
        assert_eq!(a.observe(1, true, true, t0 + GRACE / 2), None, "blip over");
        assert_eq!(a.observe(1, false, true, t0 + GRACE), None);
        assert_eq!(a.observe(1, false, true, t0 + GRACE * 3 / 2), None);
        assert_eq!(a.observe(1, false, true, t0 + GRACE * 2), Some(false));
        assert!(!a.is_available(&1));
        assert_eq!(
            a.observe(1, true, true, t0 + GRACE * 3),
            Some(true),
            "back at once"
        );
    }

    #[test]
    fn losing_every_route_marks_unavailable_only_after_the_grace() {
        let t0 = Instant::now();
        let mut a = tracker();
        a.observe(1u16, true, true, t0);
        a.observe(2u16, true, true, t0);
        assert_eq!(a.observe(1, true, false, t0), None);
        assert_eq!(a.observe(1, true, false, t0 + GRACE / 2), None);
        // The relay came back in time: nothing changes.
        assert_eq!(a.observe(1, true, true, t0 + GRACE * 2 / 3), None);
        assert_eq!(a.observe(1, true, false, t0 + GRACE * 2), None);
        assert_eq!(a.observe(1, true, false, t0 + GRACE * 3), Some(false));
        assert!(a.is_available(&2), "other devices untouched");
        assert_eq!(a.available_count(), 1);
    }

    #[test]
    fn a_device_never_online_is_undecided_then_unavailable_after_the_grace() {
        let t0 = Instant::now();
        let mut a = tracker();
        assert_eq!(a.observe(7, false, true, t0), None);
        assert!(!a.is_available(&7));
        assert_eq!(a.state(&7), None);
        assert_eq!(a.observe(7, false, true, t0 + GRACE), Some(false));
        assert_eq!(a.state(&7), Some(false));
    }

    #[test]
    fn after_a_restart_an_unseen_device_stays_undecided_for_the_startup_grace() {
        let t0 = Instant::now();
        let startup = Duration::from_secs(90);
        let policy = AvailabilityPolicy {
            offline_grace: GRACE,
            route_grace: GRACE,
            startup_grace: startup,
        };
        let mut a = Availability::new(policy, t0);
        // No route at all while relays reconnect: nothing to publish, not "unavailable".
        for s in [0, 15, 60, 89] {
            assert_eq!(
                a.observe(1, false, false, t0 + Duration::from_secs(s)),
                None
            );
            assert_eq!(a.state(&1), None);
        }
        assert_eq!(a.observe(1, false, false, t0 + startup), Some(false));
        // A device whose relay came back is available at once, even during the grace.
        assert_eq!(
            a.observe(2, true, true, t0 + Duration::from_secs(30)),
            Some(true)
        );
        // Once seen, losing the route is judged by the route grace again.
        assert_eq!(
            a.observe(2, true, false, t0 + Duration::from_secs(31)),
            None
        );
        assert_eq!(
            a.observe(2, true, false, t0 + Duration::from_secs(31) + GRACE),
            Some(false)
        );
    }
}
