//! The live state of one simulated home: every device's light state, how many commands were
//! applied to each, the mesh replay cache, and which Wi-Fi sessions must report which change.
//!
//! Why it exists: a command reaching the mesh through one relay changes a device that other relays
//! (and the device itself, if it has Wi-Fi) must then report — the Bluetooth mesh is shared, the
//! TLS sessions are not (`docs/protocol.md#mesh-and-relays`). This is the one owner of that shared
//! state; sessions change it through [`HomeRuntime::apply_command`] / [`HomeRuntime::set_state`]
//! and learn what to report from their [`Watch`].
//!
//! Decisions (no capture shows what real devices do here):
//! * **Applied** means a command's effect was written to a device's state. A group command
//!   counts once for each member. Wall-switch changes are counted apart.
//! * **Mesh replay**: a command whose (sno, command) equals one seen in the last [`REPLAY_CACHE`]
//!   commands within [`REPLAY_WINDOW`] is acknowledged but not applied again — the replay
//!   protection a Bluetooth mesh gives by sequence number. A bridge that follows
//!   `docs/protocol.md#sequence-fields` (sno = tx low 24 bits) and retries with the same tx but a
//!   new msg id therefore gets its retry acknowledged without a second application, on any relay of
//!   the home. A retry with a new tx is a new mesh message and is applied again (harmless: the
//!   commands set a state).
//! * A command for a mesh id outside the home (and not a group) is not applied (the session sends
//!   only the receipt: a receipt means delivered, not executed, `docs/protocol.md#receipts`). A
//!   command for a device in the home but outside the relay's reach is delivered anyway: the mesh
//!   floods.
//!
//! Must never hold its lock across an `.await` (std `Mutex`, short critical sections) or panic on
//! a poisoned lock (it recovers the data: the state is plain values, always consistent).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, Notify};
use tokio::time::Instant;

use super::config::SimDeviceKey;
use super::home::SimHome;
use crate::device::catalog;
use crate::protocol::content::{TEMP_EFFECT, TEMP_RGB_MODE};
use crate::protocol::{Command, LightColor, LightState};

/// Commands remembered for replay detection.
pub const REPLAY_CACHE: usize = 64;
/// How long a command is remembered for replay detection.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(30);

/// Applied-command events buffered per subscriber of [`crate::sim::SimHandle::subscribe_applied`];
/// a subscriber that falls further behind loses the oldest (`Lagged`). The simulator never waits.
pub const APPLIED_EVENTS: usize = 4096;

/// One command applied to one device, and when: what a latency measurement needs to know that a
/// command reached the device (a group command gives one event per member).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppliedEvent {
    #[allow(missing_docs)]
    pub key: SimDeviceKey,
    /// Its state after the command.
    pub state: LightState,
    /// When the command was applied.
    pub at: std::time::Instant,
}

/// Fits a state to what a model can show: on/off-only devices report brightness 100 (the 2024
/// plug reports `64`, vector 23), non-tunable ones temperature 0 (vector 11, from the 2025 home
/// capture), non-colour ones no RGB. Vectors: `docs/protocol.md#test-vectors`.
pub(crate) fn normalize(type_id: u16, mut s: LightState) -> LightState {
    let caps = catalog::lookup(type_id).caps;
    s.brightness = s.brightness.min(100);
    if !caps.brightness && !caps.fan {
        s.brightness = 100;
    }
    if !caps.rgb {
        s.rgb = [0, 0, 0];
        if s.temperature == TEMP_RGB_MODE || s.temperature == TEMP_EFFECT {
            s.temperature = if caps.color_temp { 50 } else { 0 };
        }
    }
    if !caps.color_temp && s.temperature <= 100 {
        s.temperature = 0;
    }
    if s.temperature > 100 && s.temperature != TEMP_RGB_MODE && s.temperature != TEMP_EFFECT {
        s.temperature = 100;
    }
    s
}

/// What a state-setting command does to a state (the simulator's reading of
/// `docs/protocol.md#power`, `docs/protocol.md#brightness-and-colour`, `docs/protocol.md#effects`
/// and `docs/protocol.md#fan-speed`).
fn command_effect(cmd: &Command, mut s: LightState) -> LightState {
    match *cmd {
        Command::Power { on, .. } => s.on = on,
        Command::Light {
            brightness, color, ..
        } => {
            // Brightness 0 means off (fan "off" is brightness 0, docs/protocol.md#fan-speed); any
            // other value turns the device on at that level.
            match brightness {
                Some(0) => s.on = false,
                Some(b) => {
                    s.on = true;
                    s.brightness = b;
                }
                None => {}
            }
            match color {
                Some(LightColor::Temperature(t)) => s.temperature = t,
                Some(LightColor::Rgb(rgb)) => {
                    s.temperature = TEMP_RGB_MODE;
                    s.rgb = rgb;
                }
                None => {}
            }
        }
        Command::Effect { .. } => {
            s.on = true;
            s.temperature = TEMP_EFFECT;
        }
        _ => {}
    }
    s
}

/// A set of mesh ids (0..=255) waiting to be reported by one session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IdSet([u64; 4]);

impl IdSet {
    fn insert(&mut self, id: u16) {
        if let Some(word) = self.0.get_mut(usize::from(id >> 6)) {
            *word |= 1 << (id & 63);
        }
    }

    pub(crate) fn contains(&self, id: u16) -> bool {
        self.0
            .get(usize::from(id >> 6))
            .is_some_and(|w| w & (1 << (id & 63)) != 0)
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..256u16).filter(|id| self.contains(*id))
    }
}

/// What one Wi-Fi session has to report. Marking is cheap and never blocks; the session drains
/// the set when woken. Bounded by construction (256 bits), so a slow or disconnected session
/// costs nothing but its latest news.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    dirty: Mutex<IdSet>,
    pub(crate) notify: Notify,
}

impl Watch {
    fn mark(&self, id: u16) {
        relock(&self.dirty).insert(id);
        self.notify.notify_one();
    }

    /// Takes everything marked so far.
    pub(crate) fn take(&self) -> IdSet {
        std::mem::take(&mut *relock(&self.dirty))
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What happened to a command at the mesh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Applied to these mesh ids (one for a device, every member for a group).
    Applied(Vec<u16>),
    /// Same sno and command as a recent one: acknowledged, not applied.
    Replay,
    /// Not a device or group of this home.
    UnknownTarget,
}

struct Inner {
    states: Vec<Option<LightState>>,
    modes: Vec<u8>,
    replay: VecDeque<(u32, Command, Instant)>,
}

/// The shared state of one home.
pub(crate) struct HomeRuntime {
    pub(crate) index: usize,
    pub(crate) spec: SimHome,
    inner: Mutex<Inner>,
    /// One per Wi-Fi device, in `spec.wifi_devices()` order (the session's slot).
    pub(crate) watches: Vec<std::sync::Arc<Watch>>,
    own_slot: Vec<Option<usize>>,
    relays_of: Vec<Vec<usize>>,
    applied: Vec<AtomicU64>,
    /// Applied-command events; only built when someone subscribed.
    applied_events: broadcast::Sender<AppliedEvent>,
    wall_changes: AtomicU64,
    /// Mesh ids whose power is cut at the wall: relays report them with the online flag clear.
    unpowered: Vec<std::sync::atomic::AtomicBool>,
}

impl HomeRuntime {
    pub(crate) fn new(
        index: usize,
        spec: SimHome,
        applied_events: broadcast::Sender<AppliedEvent>,
    ) -> Self {
        let mut states = vec![None; 256];
        let mut own_slot = vec![None; 256];
        let mut relays_of = vec![Vec::new(); 256];
        for d in &spec.devices {
            states[usize::from(d.mesh_id)] = Some(normalize(d.type_id, d.initial));
        }
        for (slot, (d, w)) in spec.wifi_devices().enumerate() {
            own_slot[usize::from(d.mesh_id)] = Some(slot);
            for id in &w.reach {
                if let Some(list) = relays_of.get_mut(usize::from(*id)) {
                    list.push(slot);
                }
            }
        }
        let watches = (0..spec.wifi_devices().count())
            .map(|_| std::sync::Arc::new(Watch::default()))
            .collect();
        HomeRuntime {
            index,
            spec,
            inner: Mutex::new(Inner {
                states,
                modes: vec![0; 256],
                replay: VecDeque::with_capacity(REPLAY_CACHE),
            }),
            watches,
            own_slot,
            relays_of,
            applied: (0..256).map(|_| AtomicU64::new(0)).collect(),
            applied_events,
            wall_changes: AtomicU64::new(0),
            unpowered: (0..256)
                .map(|_| std::sync::atomic::AtomicBool::new(false))
                .collect(),
        }
    }

    /// Whether the device has power (relays report it online).
    pub(crate) fn is_powered(&self, id: u16) -> bool {
        self.unpowered
            .get(usize::from(id))
            .is_none_or(|u| !u.load(Ordering::Relaxed))
    }

    /// Cuts or restores a device's power; its relays report the change. `false` if unknown.
    pub(crate) fn set_powered(&self, id: u16, powered: bool) -> bool {
        if self.spec.device(id).is_none() {
            return false;
        }
        if let Some(u) = self.unpowered.get(usize::from(id)) {
            u.store(!powered, Ordering::Relaxed);
        }
        self.mark_dirty(id, None);
        true
    }

    /// Current state of a mesh id (`None` if no such device).
    pub(crate) fn state(&self, id: u16) -> Option<LightState> {
        relock(&self.inner)
            .states
            .get(usize::from(id))
            .copied()
            .flatten()
    }

    /// Wired-switch mode last set by a command (0 = never set).
    pub(crate) fn switch_mode(&self, id: u16) -> u8 {
        relock(&self.inner)
            .modes
            .get(usize::from(id))
            .copied()
            .unwrap_or(0)
    }

    /// Commands applied to a mesh id so far.
    pub(crate) fn applied(&self, id: u16) -> u64 {
        self.applied
            .get(usize::from(id))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Wall-switch changes made so far in this home.
    pub(crate) fn wall_changes(&self) -> u64 {
        self.wall_changes.load(Ordering::Relaxed)
    }

    /// Mesh ids a command addresses: a device, or a group's members.
    fn targets(&self, target: u16) -> Option<Vec<u16>> {
        if let Some(g) = self.spec.group(target) {
            return Some(g.members.clone());
        }
        self.spec.device(target).map(|d| vec![d.mesh_id])
    }

    /// Applies a state-setting command arriving through session `via`. Every session that must
    /// report a changed id is told, except `via` itself (it reports in its own reply).
    pub(crate) fn apply_command(
        &self,
        cmd: &Command,
        sno: Option<u32>,
        via: Option<usize>,
        now: Instant,
    ) -> Outcome {
        let Some(ids) = cmd.target().and_then(|t| self.targets(t)) else {
            return Outcome::UnknownTarget;
        };
        let observed = self.applied_events.receiver_count() > 0;
        let mut after = Vec::new();
        {
            let mut inner = relock(&self.inner);
            if let Some(sno) = sno {
                inner
                    .replay
                    .retain(|(_, _, at)| now.saturating_duration_since(*at) < REPLAY_WINDOW);
                if inner.replay.iter().any(|(s, c, _)| *s == sno && c == cmd) {
                    return Outcome::Replay;
                }
                if inner.replay.len() >= REPLAY_CACHE {
                    inner.replay.pop_front();
                }
                inner.replay.push_back((sno, *cmd, now));
            }
            for id in &ids {
                let i = usize::from(*id);
                if let Command::SwitchMode { mode, .. } = cmd {
                    if let Some(m) = inner.modes.get_mut(i) {
                        *m = *mode;
                    }
                }
                let type_id = self.spec.device(*id).map_or(0, |d| d.type_id);
                if let Some(Some(s)) = inner.states.get_mut(i) {
                    *s = normalize(type_id, command_effect(cmd, *s));
                    if observed {
                        after.push((*id, *s));
                    }
                }
            }
        }
        for id in &ids {
            if let Some(c) = self.applied.get(usize::from(*id)) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            self.mark_dirty(*id, via);
        }
        if !after.is_empty() {
            let at = std::time::Instant::now();
            for (mesh_id, state) in after {
                let key = SimDeviceKey {
                    home: self.index,
                    mesh_id,
                };
                // No subscriber left is fine: nobody is measuring any more.
                let _ = self.applied_events.send(AppliedEvent { key, state, at });
            }
        }
        Outcome::Applied(ids)
    }

    /// Someone used the wall switch (or the app over Bluetooth): the device changes without a
    /// command from the bridge. Returns false for an unknown mesh id.
    pub(crate) fn set_state(&self, id: u16, state: LightState) -> bool {
        let Some(device) = self.spec.device(id) else {
            return false;
        };
        let state = normalize(device.type_id, state);
        if let Some(slot) = relock(&self.inner).states.get_mut(usize::from(id)) {
            *slot = Some(state);
        }
        self.wall_changes.fetch_add(1, Ordering::Relaxed);
        self.mark_dirty(id, None);
        true
    }

    fn mark_dirty(&self, id: u16, except: Option<usize>) {
        let i = usize::from(id);
        let own = self.own_slot.get(i).copied().flatten();
        let relays = self.relays_of.get(i).map(Vec::as_slice).unwrap_or(&[]);
        for slot in own.into_iter().chain(relays.iter().copied()) {
            if Some(slot) != except {
                if let Some(w) = self.watches.get(slot) {
                    w.mark(id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::home::HomeBuilder;

    fn home() -> HomeRuntime {
        let spec = HomeBuilder::new("h", 1)
            .wifi(1, 137)
            .wifi(2, 68)
            .bluetooth(3, 21)
            .relays(1, &[3])
            .relays(2, &[3])
            .group(0x8001, &[1, 2, 3])
            .build()
            .unwrap();
        HomeRuntime::new(0, spec, broadcast::channel(APPLIED_EVENTS).0)
    }

    #[test]
    fn a_group_command_changes_every_member_and_tells_every_other_reporter() {
        let h = home();
        let cmd = Command::Power {
            target: 0x8001,
            on: true,
        };
        let out = h.apply_command(&cmd, Some(5), Some(0), Instant::now());
        assert_eq!(out, Outcome::Applied(vec![1, 2, 3]));
        assert!((1..=3).all(|id| h.state(id).unwrap().on));
        assert!((1..=3).all(|id| h.applied(id) == 1));
        // Session 0 (via) is not told; session 1 reports itself (2) and relays 3.
        assert!(h.watches[0].take().is_empty());
        let dirty = h.watches[1].take();
        assert_eq!(dirty.iter().collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn applied_events_name_each_member_with_its_new_state_and_skip_replays() {
        let (tx, mut rx) = broadcast::channel(APPLIED_EVENTS);
        let h = HomeRuntime::new(0, home().spec, tx);
        let cmd = Command::Power {
            target: 0x8001,
            on: true,
        };
        let before = std::time::Instant::now();
        h.apply_command(&cmd, Some(5), Some(0), Instant::now());
        h.apply_command(&cmd, Some(5), Some(1), Instant::now());
        let mut seen = Vec::new();
        while let Ok(e) = rx.try_recv() {
            assert!(e.state.on && e.at >= before);
            seen.push(e.key.mesh_id);
        }
        assert_eq!(
            seen,
            vec![1, 2, 3],
            "one event per member, none for the replay"
        );
    }

    #[test]
    fn the_same_sno_and_command_is_a_replay_on_any_relay() {
        let h = home();
        let cmd = Command::Power {
            target: 3,
            on: true,
        };
        let now = Instant::now();
        assert!(matches!(
            h.apply_command(&cmd, Some(9), Some(0), now),
            Outcome::Applied(_)
        ));
        assert_eq!(
            h.apply_command(&cmd, Some(9), Some(1), now),
            Outcome::Replay
        );
        assert!(matches!(
            h.apply_command(&cmd, Some(10), Some(1), now),
            Outcome::Applied(_)
        ));
        assert_eq!(h.applied(3), 2);
        // After the window the same sno is a new message.
        assert!(matches!(
            h.apply_command(&cmd, Some(9), Some(1), now + REPLAY_WINDOW),
            Outcome::Applied(_)
        ));
    }

    #[test]
    fn unknown_targets_are_not_applied() {
        let h = home();
        let cmd = Command::Power {
            target: 77,
            on: true,
        };
        assert_eq!(
            h.apply_command(&cmd, Some(1), None, Instant::now()),
            Outcome::UnknownTarget
        );
    }

    #[test]
    fn plugs_report_full_brightness_and_no_colour() {
        let s = normalize(
            68,
            LightState {
                on: true,
                brightness: 20,
                temperature: TEMP_RGB_MODE,
                rgb: [1, 2, 3],
            },
        );
        assert_eq!(
            s,
            LightState {
                on: true,
                brightness: 100,
                temperature: 0,
                rgb: [0, 0, 0]
            }
        );
    }
}
