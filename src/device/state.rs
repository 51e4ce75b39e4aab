//! The device state store: the last state each device reported, keyed by `(home, mesh id)`.
//!
//! Why it exists: a device's state reaches the bridge in four shapes — its own `fa db 13` report
//! (`docs/protocol.md#state-report`), its 0x43 self record, a relay record from a neighbour
//! (`docs/protocol.md#status-records`: the *only* reports a Bluetooth-only device produces) and the
//! mesh-info list (`docs/protocol.md#mesh-info-records`) — often several times, from several relays
//! (`docs/protocol.md#duplicates`: one announce arrived from 24 bridges). The store folds them into
//! one value per device, idempotently: a report equal to what is stored changes nothing and emits
//! nothing, so a light that goes A→B→A still produces two events, but B re-broadcast by ten relays
//! produces one.
//!
//! It owns the state map, the change-event channel for the MQTT side and the waiters of
//! commands expecting a confirming report. Design: a `std::sync::Mutex`, held for one map update
//! and never across an `.await`. An owning task behind a
//! channel was rejected: session readers would then have to queue into it, and a full queue would
//! either block a device socket or lose state; a lock held for microseconds does neither.
//!
//! Change events go out on a `tokio::sync::broadcast` channel of configured capacity: a
//! subscriber that falls behind loses the *oldest* events (it sees `Lagged(n)`) and should re-read
//! [`StateStore::snapshot`]; nothing ever blocks the reporting session. It must never do I/O or
//! decide availability ([`super::availability`] applies hysteresis to the online flag; the store
//! only records it).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

use super::key::DeviceKey;
use crate::protocol::content::TEMP_RGB_MODE;
use crate::protocol::{Command, LightColor, LightState};

/// What the bridge knows about one device's state.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct DeviceState {
    /// Power, brightness, colour temperature or RGB, as the device reports them.
    pub light: LightState,
    /// The report's online/in-mesh flag (mesh-info records carry none and count as online).
    pub online: bool,
}

/// Which kind of report a state came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum ReportSource {
    /// 0x83 `fa db 13`: the device about itself (`docs/protocol.md#state-report`).
    StateReport,
    /// 0x43 record index 5: the reporter about itself (`docs/protocol.md#status-records`).
    SelfRecord,
    /// 0x43 record index ≥ 6: a neighbour relaying.
    RelayRecord,
    /// `f9 52` mesh-info record (`docs/protocol.md#mesh-info-records`).
    MeshInfo,
    /// The device's `f9` response to a set-state command: it executed the command, so the
    /// commanded fields are its state now, even if the report that follows is lost
    /// (`docs/protocol.md#command-responses`).
    CommandResponse,
}

impl ReportSource {
    /// Stable name for logs and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportSource::StateReport => "state_report",
            ReportSource::SelfRecord => "self_record",
            ReportSource::RelayRecord => "relay_record",
            ReportSource::MeshInfo => "mesh_info",
            ReportSource::CommandResponse => "command_response",
        }
    }
}

/// One observation of one device's state; the same value may arrive many times (one copy per
/// relay) and is applied idempotently.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(missing_docs)]
pub struct Report {
    pub key: DeviceKey,
    pub state: DeviceState,
    pub source: ReportSource,
}

/// A change of stored state, as the MQTT side receives it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(missing_docs)]
pub struct StateChange {
    pub key: DeviceKey,
    /// The state before (`None`: first report of this device).
    pub previous: Option<DeviceState>,
    pub current: DeviceState,
    /// The report that changed it.
    pub source: ReportSource,
}

/// `[state]`, validated: the store's two bounds.
#[derive(Clone, Copy, Debug)]
pub struct StoreSettings {
    /// Capacity of the change-event channel (a lagging subscriber loses the oldest events and
    /// re-reads a snapshot).
    pub event_queue: NonZeroUsize,
    /// Commands that may wait for a confirming report at once.
    pub max_waiters: NonZeroUsize,
}

/// What a command expects to see in a later report. `None` fields are not checked.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Expectation {
    #[allow(missing_docs)]
    pub on: Option<bool>,
    /// Brightness 0–100.
    pub brightness: Option<u8>,
    /// Temperature byte (0–100, or [`TEMP_RGB_MODE`] for RGB).
    pub temperature: Option<u8>,
    /// RGB, checked together with `temperature == TEMP_RGB_MODE`.
    pub rgb: Option<[u8; 3]>,
}

impl Expectation {
    /// The state a set-state command should produce; `None` for commands whose effect no report
    /// shows (effects, switch mode, queries, mesh requests). Uses the command as the encoder sends
    /// it ([`Command::avoiding_markers`] nudges RGB 125/126).
    pub fn for_command(command: &Command) -> Option<Self> {
        match command.avoiding_markers() {
            Command::Power { on, .. } => Some(Expectation {
                on: Some(on),
                ..Expectation::default()
            }),
            Command::Light {
                brightness, color, ..
            } => {
                let (temperature, rgb) = match color {
                    None => (None, None),
                    Some(LightColor::Temperature(t)) => (Some(t), None),
                    Some(LightColor::Rgb(rgb)) => (Some(TEMP_RGB_MODE), Some(rgb)),
                };
                Some(Expectation {
                    on: None,
                    brightness,
                    temperature,
                    rgb,
                })
            }
            _ => None,
        }
    }

    /// `state` with the commanded fields set (what a device that executed the command is in).
    pub fn applied_to(&self, mut state: DeviceState) -> DeviceState {
        let l = &mut state.light;
        if let Some(on) = self.on {
            l.on = on;
        }
        if let Some(b) = self.brightness {
            l.brightness = b;
        }
        if let Some(t) = self.temperature {
            l.temperature = t;
        }
        if let Some(rgb) = self.rgb {
            l.rgb = rgb;
        }
        state
    }

    /// True when `state` shows everything this expectation asks for.
    pub fn is_met_by(&self, state: &DeviceState) -> bool {
        let l = &state.light;
        self.on.is_none_or(|on| l.on == on)
            && self.brightness.is_none_or(|b| l.brightness == b)
            && self.temperature.is_none_or(|t| l.temperature == t)
            && self.rgb.is_none_or(|rgb| l.rgb == rgb)
    }
}

/// A report that met a waiting command's [`Expectation`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(missing_docs)]
pub struct Confirmation {
    pub state: DeviceState,
    pub source: ReportSource,
    /// When the store applied the report, not when the device sent it.
    pub at: Instant,
}

/// Too many commands are already waiting for a confirming report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{limit} commands are already waiting for a state report (state.max_waiters)")]
pub struct WaiterLimit {
    /// `state.max_waiters`.
    pub limit: usize,
}

/// What applying a report did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Applied {
    /// The stored state changed (and an event went out).
    pub changed: bool,
    /// Waiting commands this report confirmed.
    pub confirmed: usize,
}

struct Waiter {
    expect: Expectation,
    reply: oneshot::Sender<Confirmation>,
}

#[derive(Default)]
struct Inner {
    devices: HashMap<DeviceKey, DeviceState>,
    waiters: HashMap<DeviceKey, Vec<Waiter>>,
    waiter_count: usize,
    /// Device types a device said it is (a relay's first mesh-info record).
    types: HashMap<DeviceKey, u16>,
}

/// The store. Share it as `Arc<StateStore>`.
pub struct StateStore {
    inner: Mutex<Inner>,
    events: broadcast::Sender<StateChange>,
    max_waiters: usize,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").finish_non_exhaustive()
    }
}

impl StateStore {
    /// A store whose change channel buffers `event_queue` events per subscriber and which lets
    /// at most `max_waiters` commands wait for confirmation.
    pub fn new(event_queue: usize, max_waiters: usize) -> Self {
        let (events, _) = broadcast::channel(event_queue.max(1));
        StateStore {
            inner: Mutex::new(Inner::default()),
            events,
            max_waiters,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes the type a device reported for itself (`docs/protocol.md#mesh-info-records`), so a
    /// device missing from the device list still becomes the right kind of entity. Record it
    /// before applying the report that comes with it, so the change event finds it.
    pub fn record_type(&self, key: DeviceKey, type_id: u16) {
        self.lock().types.insert(key, type_id);
    }

    /// The type `key` reported for itself, if it did.
    pub fn reported_type(&self, key: &DeviceKey) -> Option<u16> {
        self.lock().types.get(key).copied()
    }

    /// Applies one report: stores it if it differs (emitting a [`StateChange`]) and completes
    /// the waiters it confirms. The event is sent under the lock so subscribers see changes of
    /// one device in the order they were stored.
    pub fn apply(&self, report: Report) -> Applied {
        let now = Instant::now();
        let mut inner = self.lock();
        let previous = inner.devices.insert(report.key, report.state);
        let changed = previous != Some(report.state);
        if changed {
            // No subscriber (e.g. before MQTT starts) is not an error: the state is stored.
            let _ = self.events.send(StateChange {
                key: report.key,
                previous,
                current: report.state,
                source: report.source,
            });
        }
        let confirmed = Self::confirm(&mut inner, &report, now);
        Applied { changed, confirmed }
    }

    fn confirm(inner: &mut Inner, report: &Report, at: Instant) -> usize {
        let Some(list) = inner.waiters.get_mut(&report.key) else {
            return 0;
        };
        let before = list.len();
        let mut confirmed = 0;
        let mut kept = Vec::with_capacity(list.len());
        for waiter in list.drain(..) {
            if waiter.reply.is_closed() {
                continue;
            }
            if waiter.expect.is_met_by(&report.state) {
                let _ = waiter.reply.send(Confirmation {
                    state: report.state,
                    source: report.source,
                    at,
                });
                confirmed += 1;
            } else {
                kept.push(waiter);
            }
        }
        let removed = before - kept.len();
        if kept.is_empty() {
            inner.waiters.remove(&report.key);
        } else {
            *list = kept;
        }
        inner.waiter_count -= removed;
        confirmed
    }

    /// Registers a command waiting for a report of `key` that meets `expect`. Register *before*
    /// sending, so a fast report cannot be missed. Dropping the receiver cancels the wait.
    pub fn expect(
        &self,
        key: DeviceKey,
        expect: Expectation,
    ) -> Result<oneshot::Receiver<Confirmation>, WaiterLimit> {
        let mut inner = self.lock();
        if inner.waiter_count >= self.max_waiters {
            Self::prune_abandoned(&mut inner);
            if inner.waiter_count >= self.max_waiters {
                return Err(WaiterLimit {
                    limit: self.max_waiters,
                });
            }
        }
        let (reply, receiver) = oneshot::channel();
        inner
            .waiters
            .entry(key)
            .or_default()
            .push(Waiter { expect, reply });
        inner.waiter_count += 1;
        Ok(receiver)
    }

    fn prune_abandoned(inner: &mut Inner) {
        let mut removed = 0;
        inner.waiters.retain(|_, list| {
            let before = list.len();
            list.retain(|w| !w.reply.is_closed());
            removed += before - list.len();
            !list.is_empty()
        });
        inner.waiter_count -= removed;
    }

    /// The stored state of one device.
    pub fn get(&self, key: &DeviceKey) -> Option<DeviceState> {
        self.lock().devices.get(key).copied()
    }

    /// Every stored state, sorted by key (for a subscriber that lagged, and for diagnostics).
    pub fn snapshot(&self) -> Vec<(DeviceKey, DeviceState)> {
        let mut all: Vec<_> = self.lock().devices.iter().map(|(k, s)| (*k, *s)).collect();
        all.sort_by_key(|(k, _)| *k);
        all
    }

    /// Devices with a stored state.
    pub fn len(&self) -> usize {
        self.lock().devices.len()
    }

    /// True before the first report.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A new subscriber to change events (see the module note on lagging).
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests;
