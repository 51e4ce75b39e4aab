//! Runtime control of a running simulator from Rust tests and the CLI: per-device chaos,
//! partitions, taking a relay offline, wall-switch changes, and reading logs, counters, states
//! and applied-command counts.
//!
//! Why it exists: tests must *do* things to devices while the bridge runs (kill a relay, make a
//! link lossy, flip a switch) and then check what the devices saw, without reaching into task
//! internals. Actions go to the device task over its bounded control channel (they wait when
//! it is full); observations read shared atomics and the bounded packet log directly.
//!
//! Must never block on a device task for a read, or panic when a device task is gone (a send
//! to a stopped device is [`SimError::Stopped`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use super::chaos::{Chaos, ChaosCounts, Partition};
use super::config::{ConfigError, SimDeviceKey};
use super::device::{Control, LinkState, Shared};
use super::home::SimHome;
use super::recorder::{LoggedPacket, Recorder};
use super::state::{AppliedEvent, HomeRuntime};
use super::stats::SessionStats;
use super::tls::TlsConnectError;
use crate::protocol::{LightState, PeerId};

/// Why a simulator could not start or a handle call failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration was refused.
    #[error("invalid simulator configuration: {0}")]
    Config(#[from] ConfigError),
    /// The device TLS client could not be built.
    #[error(transparent)]
    Tls(#[from] TlsConnectError),
    /// The capture file could not be created.
    #[allow(missing_docs)]
    #[error("cannot create capture file {path}: {source}")]
    Record {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// No device (or no Wi-Fi device, for session calls) with this key.
    #[error("no simulated device at home {} mesh id {}", .0.home, .0.mesh_id)]
    UnknownDevice(SimDeviceKey),
    /// The device task has ended (the simulator was shut down).
    #[error("simulated device at home {} mesh id {} has stopped", .0.home, .0.mesh_id)]
    Stopped(SimDeviceKey),
    /// A wait ran out of time; `what` names the awaited condition as the caller described it.
    #[allow(missing_docs)]
    #[error("timed out after {within:?} waiting for {what}")]
    Timeout { what: String, within: Duration },
}

/// Control and observation of one simulated Wi-Fi device.
#[derive(Clone)]
pub struct SessionHandle {
    pub(crate) key: SimDeviceKey,
    pub(crate) device_id: PeerId,
    pub(crate) control: mpsc::Sender<Control>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) link: watch::Receiver<LinkState>,
    pub(crate) home: Arc<HomeRuntime>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle")
            .field("key", &self.key)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl SessionHandle {
    /// Home index and mesh id.
    pub fn key(&self) -> SimDeviceKey {
        self.key
    }

    /// The id it sends in its 0x23 and 0x43/0x83 packets.
    pub fn device_id(&self) -> PeerId {
        self.device_id
    }

    /// Where its link stands now.
    pub fn link(&self) -> LinkState {
        *self.link.borrow()
    }

    /// Waits until the link is in `state` (e.g. [`LinkState::Ready`]: the bridge sent 0x28).
    pub async fn wait_link(&self, state: LinkState, within: Duration) -> Result<(), SimError> {
        let mut rx = self.link.clone();
        let waited = tokio::time::timeout(within, rx.wait_for(|s| *s == state)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(SimError::Stopped(self.key)),
            Err(_) => Err(SimError::Timeout {
                what: format!("{:?} to be {state:?}", self.key),
                within,
            }),
        }
    }

    async fn send(&self, ctl: Control) -> Result<(), SimError> {
        self.control
            .send(ctl)
            .await
            .map_err(|_| SimError::Stopped(self.key))
    }

    /// Replaces this device's chaos (validated first). The RNG streams continue, so a run stays
    /// reproducible for a given sequence of calls.
    pub async fn set_chaos(&self, chaos: Chaos) -> Result<(), SimError> {
        chaos.validate().map_err(ConfigError::from)?;
        self.send(Control::SetChaos(Box::new(chaos))).await
    }

    /// Cuts the link now: a blackhole (until [`Self::heal`] or the configured `blackhole_ms`),
    /// a reset or a FIN (both followed by a reconnect after the backoff).
    pub async fn partition(&self, how: Partition) -> Result<(), SimError> {
        self.send(Control::Partition(how)).await
    }

    /// Ends a blackhole.
    pub async fn heal(&self) -> Result<(), SimError> {
        self.send(Control::Heal).await
    }

    /// `true`: closes the connection (FIN) and stays offline — a relay that lost power.
    /// `false`: lets it reconnect.
    pub async fn set_offline(&self, offline: bool) -> Result<(), SimError> {
        self.send(Control::SetOffline(offline)).await
    }

    /// The packets sent and received, oldest first (bounded: see `log_evicted` in
    /// [`Self::stats`]).
    pub fn log(&self) -> Vec<LoggedPacket> {
        self.shared.log.snapshot()
    }

    /// Empties the packet log.
    pub fn clear_log(&self) {
        self.shared.log.clear();
    }

    /// Counters so far.
    pub fn stats(&self) -> SessionStats {
        self.shared.counters.snapshot()
    }

    /// What chaos did to packets going to the bridge.
    pub fn chaos_to_bridge(&self) -> ChaosCounts {
        self.shared.to_bridge.snapshot()
    }

    /// What chaos did to packets coming from the bridge.
    pub fn chaos_from_bridge(&self) -> ChaosCounts {
        self.shared.from_bridge.snapshot()
    }

    /// Commands applied to this device's own mesh id.
    pub fn applied(&self) -> u64 {
        self.home.applied(self.key.mesh_id)
    }
}

pub(crate) struct Inner {
    pub homes: Vec<Arc<HomeRuntime>>,
    /// Applied-command events of every home.
    pub applied: broadcast::Sender<AppliedEvent>,
    pub sessions: Vec<SessionHandle>,
    pub by_key: BTreeMap<SimDeviceKey, usize>,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
    pub recorder: Mutex<Option<Arc<Recorder>>>,
    pub panics: Arc<std::sync::atomic::AtomicU64>,
    /// Cancels every task when the last handle is dropped without `shutdown`.
    pub _guard: DropGuard,
}

/// A running simulator. Cheap to clone; the simulator stops when [`Self::shutdown`] is called or
/// the last clone is dropped.
#[derive(Clone)]
pub struct SimHandle {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("sessions", &self.inner.sessions.len())
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// Every Wi-Fi device, home by home in mesh-id order.
    pub fn sessions(&self) -> &[SessionHandle] {
        &self.inner.sessions
    }

    /// The Wi-Fi device at `key`; `None` for a Bluetooth-only device or a key of no device.
    pub fn session(&self, key: SimDeviceKey) -> Option<&SessionHandle> {
        self.inner
            .by_key
            .get(&key)
            .and_then(|i| self.inner.sessions.get(*i))
    }

    /// The Wi-Fi device whose 0x23 carries `device_id` (how a bridge test maps a connection
    /// back to a simulated device).
    pub fn session_by_device_id(&self, device_id: PeerId) -> Option<&SessionHandle> {
        self.inner
            .sessions
            .iter()
            .find(|s| s.device_id == device_id)
    }

    /// How many homes run; `0..home_count()` are the valid indices of [`Self::home`].
    pub fn home_count(&self) -> usize {
        self.inner.homes.len()
    }

    /// The static description a home was built from; its live state is only observable through
    /// the sessions and [`Self::applied`].
    pub fn home(&self, index: usize) -> Option<&SimHome> {
        self.inner.homes.get(index).map(|h| &h.spec)
    }

    fn runtime(&self, key: SimDeviceKey) -> Result<&HomeRuntime, SimError> {
        self.inner
            .homes
            .get(key.home)
            .filter(|h| h.spec.device(key.mesh_id).is_some())
            .map(Arc::as_ref)
            .ok_or(SimError::UnknownDevice(key))
    }

    /// A device's current state (any device, Wi-Fi or Bluetooth-only).
    pub fn state(&self, key: SimDeviceKey) -> Option<LightState> {
        self.runtime(key).ok()?.state(key.mesh_id)
    }

    /// A wired switch's mode as last set by a command (0 = never set).
    pub fn switch_mode(&self, key: SimDeviceKey) -> u8 {
        self.runtime(key).map_or(0, |h| h.switch_mode(key.mesh_id))
    }

    /// Commands applied to a device (duplicates and replays excluded; a group command counts
    /// once per member).
    pub fn applied(&self, key: SimDeviceKey) -> u64 {
        self.runtime(key).map_or(0, |h| h.applied(key.mesh_id))
    }

    /// Every command applied from now on, with the device's new state and the time it was
    /// applied (what a latency bench measures against). Replays are not applied, so they give no
    /// event; a group command gives one per member. A subscriber that falls more than
    /// [`APPLIED_EVENTS`](super::state::APPLIED_EVENTS) events behind gets `Lagged`; the
    /// simulator never waits for it, and builds no event while nobody subscribes.
    pub fn subscribe_applied(&self) -> broadcast::Receiver<AppliedEvent> {
        self.inner.applied.subscribe()
    }

    /// Someone used the wall switch: the device takes `state` without any command, and every
    /// session responsible reports it (the device itself if it has Wi-Fi, its relays if not).
    pub fn wall_change(&self, key: SimDeviceKey, state: LightState) -> Result<(), SimError> {
        if self.runtime(key)?.set_state(key.mesh_id, state) {
            Ok(())
        } else {
            Err(SimError::UnknownDevice(key))
        }
    }

    /// Cuts (`false`) or restores a Bluetooth-only device's power at the wall: its relays keep
    /// reporting it, with the online flag clear, as real relays do for a dark bulb.
    pub fn set_powered(&self, key: SimDeviceKey, powered: bool) -> Result<(), SimError> {
        if self.runtime(key)?.set_powered(key.mesh_id, powered) {
            Ok(())
        } else {
            Err(SimError::UnknownDevice(key))
        }
    }

    /// Wall-switch changes so far in a home (on demand and scheduled).
    pub fn wall_changes(&self, home: usize) -> u64 {
        self.inner.homes.get(home).map_or(0, |h| h.wall_changes())
    }

    /// Sets the same chaos on every device.
    pub async fn set_chaos_all(&self, chaos: Chaos) -> Result<(), SimError> {
        for s in &self.inner.sessions {
            s.set_chaos(chaos.clone()).await?;
        }
        Ok(())
    }

    /// Waits until every device's link is [`LinkState::Ready`].
    pub async fn wait_ready(&self, within: Duration) -> Result<(), SimError> {
        let deadline = tokio::time::Instant::now() + within;
        for s in &self.inner.sessions {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            s.wait_link(LinkState::Ready, left).await?;
        }
        Ok(())
    }

    /// Counters summed over every device.
    pub fn totals(&self) -> SessionStats {
        let mut total = SessionStats::default();
        for s in &self.inner.sessions {
            total += s.stats();
        }
        total
    }

    /// Device tasks that panicked (each is logged; the device is then gone). Zero is the only
    /// acceptable value: tests assert it under every chaos knob.
    pub fn panics(&self) -> u64 {
        self.inner.panics.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Capture records dropped because the file writer fell behind.
    pub fn recorder_dropped(&self) -> u64 {
        self.inner
            .recorder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |r| r.dropped())
    }

    /// Stops every device (each closes its connection) and waits for every task, the capture
    /// writer included, to finish.
    pub async fn shutdown(self) {
        self.inner.cancel.cancel();
        self.inner
            .recorder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}
