//! Per-device availability with hysteresis, so Home Assistant neither flaps on one missed
//! report nor shows a dead device as alive (users' pain point #3).
//!
//! Two inputs decide it: whether any connected Wi-Fi device can reach the device (routes), and
//! the online flags devices report (state reports, 0x43 records: a powered-off Bluetooth bulb
//! behind a live relay is reported with its online flag cleared). A device becomes unavailable
//! after `offline_reports` consecutive offline reports (legacy uses 3, PROTOCOL.md §7.7), or once
//! it has had no route for `route_grace` (a relay reconnecting takes ≈2.6 s, §9.5). One online
//! report with a route makes it available again at once.
//!
//! Pure: time is an argument; changes are returned for the caller to publish.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Hysteresis settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvailabilityPolicy {
    /// Consecutive offline reports before a device is marked unavailable.
    pub offline_reports: u32,
    /// How long a device may be without any route before it is marked unavailable.
    pub route_grace: Duration,
}

impl Default for AvailabilityPolicy {
    fn default() -> Self {
        AvailabilityPolicy {
            offline_reports: 3,
            route_grace: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    available: bool,
    offline_reports: u32,
    no_route_since: Option<Instant>,
}

/// Availability of every known device.
#[derive(Debug)]
pub struct Availability<K> {
    policy: AvailabilityPolicy,
    entries: HashMap<K, Entry>,
}

impl<K: Copy + Eq + Hash> Availability<K> {
    /// Empty tracker.
    pub fn new(policy: AvailabilityPolicy) -> Self {
        Availability {
            policy,
            entries: HashMap::new(),
        }
    }

    /// Current availability (`false` for devices never heard from).
    pub fn is_available(&self, key: &K) -> bool {
        self.entries.get(key).is_some_and(|e| e.available)
    }

    /// A report about `key` with its online flag. Returns the new availability if it changed.
    pub fn on_report(&mut self, key: K, online: bool) -> Option<bool> {
        let threshold = self.policy.offline_reports.max(1);
        let e = self.entries.entry(key).or_insert(Entry {
            available: false,
            offline_reports: 0,
            no_route_since: None,
        });
        if online {
            e.offline_reports = 0;
            // A report arrived, so something reaches the device right now.
            e.no_route_since = None;
            return set(e, true);
        }
        e.offline_reports = e.offline_reports.saturating_add(1);
        if e.offline_reports >= threshold {
            return set(e, false);
        }
        None
    }

    /// Whether any session currently reaches `key`.
    pub fn on_routes(&mut self, key: K, reachable: bool, now: Instant) -> Option<bool> {
        let e = self.entries.get_mut(&key)?;
        match (reachable, e.no_route_since) {
            (true, _) => e.no_route_since = None,
            (false, None) => e.no_route_since = Some(now),
            (false, Some(_)) => {}
        }
        None
    }

    /// Marks devices unavailable whose route grace ran out; returns the changes.
    pub fn on_tick(&mut self, now: Instant) -> Vec<(K, bool)> {
        let grace = self.policy.route_grace;
        let mut changes = Vec::new();
        for (key, e) in &mut self.entries {
            let expired = e
                .no_route_since
                .is_some_and(|since| now.saturating_duration_since(since) >= grace);
            if expired {
                if let Some(v) = set(e, false) {
                    changes.push((*key, v));
                }
            }
        }
        changes
    }

    /// Every device and its availability (for republishing after a reconnect).
    pub fn snapshot(&self) -> Vec<(K, bool)> {
        self.entries
            .iter()
            .map(|(k, e)| (*k, e.available))
            .collect()
    }
}

fn set(e: &mut Entry, available: bool) -> Option<bool> {
    if e.available == available {
        None
    } else {
        e.available = available;
        Some(available)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_offline_report_does_not_flap_three_do() {
        let mut a = Availability::new(AvailabilityPolicy::default());
        assert_eq!(a.on_report(1u16, true), Some(true));
        assert_eq!(a.on_report(1, false), None);
        assert_eq!(a.on_report(1, false), None);
        assert_eq!(a.on_report(1, true), None, "streak broken");
        assert_eq!(a.on_report(1, false), None);
        assert_eq!(a.on_report(1, false), None);
        assert_eq!(a.on_report(1, false), Some(false));
        assert!(!a.is_available(&1));
        assert_eq!(a.on_report(1, true), Some(true), "back at once");
    }

    #[test]
    fn losing_every_route_marks_unavailable_only_after_the_grace() {
        let t0 = Instant::now();
        let policy = AvailabilityPolicy::default();
        let mut a = Availability::new(policy);
        a.on_report(1u16, true);
        a.on_report(2u16, true);
        a.on_routes(1, false, t0);
        assert!(a.on_tick(t0 + policy.route_grace / 2).is_empty());
        // The relay came back in time: nothing changes.
        a.on_routes(1, true, t0 + policy.route_grace / 2);
        assert!(a.on_tick(t0 + policy.route_grace * 2).is_empty());
        a.on_routes(1, false, t0 + policy.route_grace * 2);
        assert_eq!(a.on_tick(t0 + policy.route_grace * 3), vec![(1, false)]);
        assert!(a.is_available(&2), "other devices untouched");
    }
}
