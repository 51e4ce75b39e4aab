//! The mesh routing registry: which sessions can reach which `(home, mesh id)`.
//!
//! Why it exists: Bluetooth-only devices never connect; a command for mesh id N must go to a Wi-Fi
//! device's session that can reach N, and a retry may take another
//! (`docs/protocol.md#mesh-and-relays`). Sessions report what they learn — their own mesh id from
//! `fa db 13` reports and 0x43 self records (a *direct* route), every mesh id in their mesh-info
//! list, relay records and node notifications (a *relay* route) — and the registry answers "which
//! session for this device?" with a preferred route and its alternates.
//!
//! Preference, decided here: a direct route (the target *is* the session's device) before relay
//! routes; among equals, the older session first. Older-first keeps the choice stable while
//! reports keep arriving (no flapping between relays) and moves only when that session closes;
//! a transport may balance load across the alternates. When a session closes, [`Routes::withdraw`]
//! removes all its routes at once, so the next lookup returns the next alternate; when a device
//! reconnects, [`Routes::register`] hands back the old, half-open session so it can be closed
//! and its routes are gone before the new session learns any.
//!
//! Ownership: a `std::sync::Mutex` held only for map updates, never across an `.await` (as in
//! the state store, and for the same reason: session readers must never wait on a queue).
//! Waiters for a route use a `watch` generation counter, which is bounded by construction.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::session::{SessionHandle, SessionId};
use crate::device::{DeviceKey, MeshId};
use crate::protocol::PeerId;
use crate::telemetry::Metrics;

/// How a session reaches a device.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub enum RouteKind {
    /// The device is the session's own Wi-Fi device.
    Direct,
    /// The session's device relays over Bluetooth mesh.
    Relay,
}

/// One route, for diagnostics ("which relay reaches it").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(missing_docs)]
pub struct RouteInfo {
    pub session: SessionId,
    /// The id of the Wi-Fi device that session belongs to (not the routed device).
    pub device: PeerId,
    pub kind: RouteKind,
}

#[derive(Clone, Copy, Debug)]
struct Route {
    session: SessionId,
    kind: RouteKind,
}

struct SessionRoutes {
    handle: SessionHandle,
    keys: HashSet<DeviceKey>,
    own_mesh: Option<MeshId>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<SessionId, SessionRoutes>,
    by_device: HashMap<PeerId, SessionId>,
    by_key: HashMap<DeviceKey, Vec<Route>>,
    routes: usize,
    /// Cync groups: a group command is one mesh broadcast, so any session that reaches any
    /// member can carry it.
    groups: HashMap<DeviceKey, Vec<DeviceKey>>,
}

impl Inner {
    /// The routes to `key`, preferred first; for a group, its members' routes without repeats.
    fn routes_of(&self, key: &DeviceKey) -> Vec<Route> {
        if let Some(list) = self.by_key.get(key) {
            return list.clone();
        }
        let Some(members) = self.groups.get(key) else {
            return Vec::new();
        };
        let mut out: Vec<Route> = Vec::new();
        for member in members {
            for route in self.by_key.get(member).into_iter().flatten() {
                if !out.iter().any(|r| r.session == route.session) {
                    out.push(*route);
                }
            }
        }
        // Direct routes first: a member's own Wi-Fi device answers fastest.
        out.sort_by_key(|r| r.kind);
        out
    }
}

/// The registry. Share it as `Arc<Routes>`.
pub struct Routes {
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
    metrics: Metrics,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes").finish_non_exhaustive()
    }
}

impl Routes {
    /// An empty registry that keeps `tcp_comm_mesh_routes` up to date in `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Routes {
            inner: Mutex::new(Inner::default()),
            changed: watch::Sender::new(0),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, inner: &Inner) {
        self.metrics.mesh_routes().set(inner.routes as i64);
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Adds a session that has said hello. If the same device already had a session, that one is
    /// half-open (devices hold one connection at a time, `docs/protocol.md#transport-and-tls`): its
    /// routes are withdrawn and its handle returned so the caller can close it.
    pub fn register(&self, handle: SessionHandle) -> Option<SessionHandle> {
        let mut inner = self.lock();
        let old = inner.by_device.insert(handle.device(), handle.id());
        let replaced = old
            .filter(|old| *old != handle.id())
            .and_then(|old| Self::remove(&mut inner, old));
        inner.sessions.insert(
            handle.id(),
            SessionRoutes {
                handle,
                keys: HashSet::new(),
                own_mesh: None,
            },
        );
        self.publish(&inner);
        replaced
    }

    /// Records that `session` reaches each of `keys` the given way. A direct route replaces a
    /// relay route of the same session. Returns how many routes are new or upgraded.
    pub fn learn(
        &self,
        session: SessionId,
        keys: impl IntoIterator<Item = (DeviceKey, RouteKind)>,
    ) -> usize {
        let mut inner = self.lock();
        if !inner.sessions.contains_key(&session) {
            return 0;
        }
        let mut learned = 0;
        for (key, kind) in keys {
            learned += usize::from(Self::learn_one(&mut inner, session, key, kind));
        }
        if learned > 0 {
            self.publish(&inner);
        }
        learned
    }

    fn learn_one(inner: &mut Inner, session: SessionId, key: DeviceKey, kind: RouteKind) -> bool {
        let list = inner.by_key.entry(key).or_default();
        let changed = match list.iter_mut().find(|r| r.session == session) {
            Some(route) if route.kind <= kind => false,
            Some(route) => {
                route.kind = kind;
                true
            }
            None => {
                list.push(Route { session, kind });
                inner.routes += 1;
                true
            }
        };
        if changed {
            list.sort_by_key(|r| (r.kind, r.session));
            if let Some(entry) = inner.sessions.get_mut(&session) {
                entry.keys.insert(key);
                if kind == RouteKind::Direct {
                    entry.own_mesh = Some(key.mesh);
                }
            }
        }
        changed
    }

    /// Removes a closed session and all its routes; returns how many routes went. Safe to call
    /// for a session that was already replaced (its device's newer session is untouched).
    pub fn withdraw(&self, session: SessionId) -> usize {
        let mut inner = self.lock();
        let before = inner.routes;
        if Self::remove(&mut inner, session).is_none() {
            return 0;
        }
        self.publish(&inner);
        before - inner.routes
    }

    fn remove(inner: &mut Inner, session: SessionId) -> Option<SessionHandle> {
        let entry = inner.sessions.remove(&session)?;
        if inner.by_device.get(&entry.handle.device()) == Some(&session) {
            inner.by_device.remove(&entry.handle.device());
        }
        for key in &entry.keys {
            if let Some(list) = inner.by_key.get_mut(key) {
                let before = list.len();
                list.retain(|r| r.session != session);
                inner.routes -= before - list.len();
                if list.is_empty() {
                    inner.by_key.remove(key);
                }
            }
        }
        Some(entry.handle)
    }

    /// Declares a Cync group and its members, so commands for the group find a route through
    /// any session that reaches a member. Replaces an earlier declaration.
    pub fn set_group(&self, group: DeviceKey, members: Vec<DeviceKey>) {
        self.lock().groups.insert(group, members);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The preferred session for `key`.
    pub fn preferred(&self, key: &DeviceKey) -> Option<SessionHandle> {
        let inner = self.lock();
        let route = *inner.routes_of(key).first()?;
        inner.sessions.get(&route.session).map(|s| s.handle.clone())
    }

    /// Every session that reaches `key`, preferred first.
    pub fn candidates(&self, key: &DeviceKey) -> Vec<SessionHandle> {
        let inner = self.lock();
        inner
            .routes_of(key)
            .iter()
            .filter_map(|r| inner.sessions.get(&r.session))
            .map(|s| s.handle.clone())
            .collect()
    }

    /// Whether any session reaches `key` (cheaper than [`Routes::candidates`]).
    pub fn is_reachable(&self, key: &DeviceKey) -> bool {
        let inner = self.lock();
        inner.by_key.get(key).is_some_and(|l| !l.is_empty())
    }

    /// The routes to `key`, preferred first.
    pub fn routes_to(&self, key: &DeviceKey) -> Vec<RouteInfo> {
        let inner = self.lock();
        inner
            .routes_of(key)
            .iter()
            .filter_map(|r| {
                inner.sessions.get(&r.session).map(|s| RouteInfo {
                    session: r.session,
                    device: s.handle.device(),
                    kind: r.kind,
                })
            })
            .collect()
    }

    /// Waits until some session reaches `key` and returns the preferred one. Cancel by dropping
    /// the future (e.g. inside `tokio::time::timeout`).
    pub async fn wait_for(&self, key: &DeviceKey) -> SessionHandle {
        let mut changes = self.changed.subscribe();
        loop {
            if let Some(handle) = self.preferred(key) {
                return handle;
            }
            // `self` owns the sender, so this cannot fail while `self` is borrowed.
            let _ = changes.changed().await;
        }
    }

    /// The session currently registered for a device id.
    pub fn session_of(&self, device: PeerId) -> Option<SessionHandle> {
        let inner = self.lock();
        let id = inner.by_device.get(&device)?;
        inner.sessions.get(id).map(|s| s.handle.clone())
    }

    /// The mesh id of a session's own device, once learned.
    pub fn own_mesh(&self, session: SessionId) -> Option<MeshId> {
        self.lock().sessions.get(&session)?.own_mesh
    }

    /// Sessions registered (said hello and not yet closed).
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Routes known: (device, session) pairs.
    pub fn route_count(&self) -> usize {
        self.lock().routes
    }

    /// Devices with at least one route.
    pub fn reachable_count(&self) -> usize {
        self.lock().by_key.len()
    }
}

#[cfg(test)]
mod tests;
