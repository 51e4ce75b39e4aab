//! Liveness of the bridge's own long-running tasks, as `/healthz` reports it.
//!
//! Why it exists: a supervisor (Docker, systemd, the Home Assistant add-on watchdog) restarts the
//! bridge when `/healthz` fails. That is the right cure only for faults *inside* the bridge — the
//! device listener's accept loop died, a core task ended. It owns the registry of named components
//! and their state; each long-running task holds a [`Liveness`] guard, and dropping the guard
//! (task returned, panicked, or was cancelled) marks the component dead.
//!
//! What it must never do: report unhealthy because of something *outside* the bridge, above all
//! the MQTT broker. A restart cannot fix a broker outage, but it drops every device's TLS session,
//! and devices then reconnect in a storm; meanwhile the bridge keeps serving devices and the
//! MQTT client reconnects on its own. Broker reachability belongs in metrics and logs, so the
//! MQTT task registers here only for being *alive*, never for being *connected*.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// A cheap, cloneable handle on the health registry.
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<Components>>,
}

#[derive(Default)]
struct Components {
    next_generation: u64,
    by_name: BTreeMap<String, Component>,
}

struct Component {
    /// Which registration this is; a stale guard of a restarted component must not kill it.
    generation: u64,
    state: State,
}

enum State {
    Alive,
    Failing(String),
    Ended,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health").finish_non_exhaustive()
    }
}

/// Why the bridge is unhealthy: every component that is not alive, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhealthy {
    /// `(component, reason)` pairs, sorted by component name.
    pub problems: Vec<(String, String)>,
}

impl fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, reason)) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{name}: {reason}")?;
        }
        Ok(())
    }
}

impl Health {
    /// An empty registry; healthy until a registered component dies.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a component as alive and returns the guard that keeps it so.
    ///
    /// Registering a name again (a task that was restarted) replaces the old entry; the old
    /// guard then no longer affects it.
    pub fn register(&self, name: impl Into<String>) -> Liveness {
        let name = name.into();
        let mut components = self.lock();
        let generation = components.next_generation;
        components.next_generation += 1;
        components.by_name.insert(
            name.clone(),
            Component {
                generation,
                state: State::Alive,
            },
        );
        Liveness {
            health: self.clone(),
            name,
            generation,
        }
    }

    /// `Ok` when every registered component is alive, otherwise what is wrong.
    pub fn check(&self) -> Result<(), Unhealthy> {
        let components = self.lock();
        let problems: Vec<(String, String)> = components
            .by_name
            .iter()
            .filter_map(|(name, component)| match &component.state {
                State::Alive => None,
                State::Failing(reason) => Some((name.clone(), reason.clone())),
                State::Ended => Some((name.clone(), "task ended".to_owned())),
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Unhealthy { problems })
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Components> {
        // Only plain assignments happen under this lock, so a poisoned one holds consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, name: &str, generation: u64, state: Option<State>) {
        let mut components = self.lock();
        let current = components
            .by_name
            .get(name)
            .is_some_and(|c| c.generation == generation);
        if !current {
            return;
        }
        match state {
            Some(state) => {
                if let Some(component) = components.by_name.get_mut(name) {
                    component.state = state;
                }
            }
            None => {
                components.by_name.remove(name);
            }
        }
    }
}

/// A component's hold on its health entry. Keep it alive for as long as the task runs; dropping it
/// marks the component ended (unhealthy) unless [`retire`](Self::retire) was called.
#[must_use = "dropping the guard marks the component as ended"]
pub struct Liveness {
    health: Health,
    name: String,
    generation: u64,
}

impl fmt::Debug for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Liveness")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Liveness {
    /// Marks the component as running but broken (e.g. the listener cannot accept), with a reason
    /// an operator can act on.
    pub fn fail(&self, reason: impl Into<String>) {
        let state = State::Failing(reason.into());
        self.health.update(&self.name, self.generation, Some(state));
    }

    /// Marks the component alive again after [`fail`](Self::fail).
    pub fn recover(&self) {
        self.health
            .update(&self.name, self.generation, Some(State::Alive));
    }

    /// Removes the component on a deliberate, normal end, so it does not count as dead.
    pub fn retire(self) {
        self.health.update(&self.name, self.generation, None);
        // Drop then finds no entry with this generation and changes nothing.
    }
}

impl Drop for Liveness {
    fn drop(&mut self) {
        self.health
            .update(&self.name, self.generation, Some(State::Ended));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_until_a_component_guard_is_dropped() {
        let health = Health::new();
        assert!(health.check().is_ok());
        let listener = health.register("device_listener");
        let _other = health.register("state_store");
        assert!(health.check().is_ok());
        drop(listener);
        let err = health.check().unwrap_err();
        assert_eq!(err.to_string(), "device_listener: task ended");
    }

    #[test]
    fn fail_and_recover_are_reported_and_retire_removes_the_component() {
        let health = Health::new();
        let listener = health.register("device_listener");
        listener.fail("accept: too many open files");
        assert_eq!(
            health.check().unwrap_err().to_string(),
            "device_listener: accept: too many open files"
        );
        listener.recover();
        assert!(health.check().is_ok());
        listener.retire();
        assert!(health.check().is_ok());
    }

    #[test]
    fn a_stale_guard_does_not_kill_a_restarted_component() {
        let health = Health::new();
        let old = health.register("mqtt");
        let _new = health.register("mqtt");
        drop(old);
        assert!(health.check().is_ok());
    }
}
