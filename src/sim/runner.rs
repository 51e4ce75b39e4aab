//! Starting a simulator: validate the configuration, build one task per Wi-Fi device and one
//! wall-switch scheduler per home, all on one `TaskTracker` under one `CancellationToken`.
//!
//! Why it exists: the single entry point tests, the CLI and the load bench share
//! ([`Simulator::start`]). Owns the derivation of every per-device RNG stream from the one seed
//! (`chaos::stream_seed`), so adding a device or a knob never changes another device's
//! decisions. Must never start anything before the whole configuration validated.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::behaviour::BehaviourEngine;
use super::chaos::ChaosCounters;
use super::config::{SimConfig, SimDeviceKey, Timing};
use super::device::{Device, LinkState, Shared, CONTROL_QUEUE};
use super::engine::{stream_seed, PacketEngine};
use super::handle::{Inner, SessionHandle, SimError, SimHandle};
use super::home::{SimDevice, SimWifi};
use super::packets::{Identity, Packets};
use super::recorder::{PacketLog, Recorder};
use super::session::{Logic, LogicSettings};
use super::state::{HomeRuntime, APPLIED_EVENTS};
use super::stats::Counters;
use crate::protocol::LightState;

/// RNG streams per device (see `stream_seed`).
mod stream {
    pub const TO_BRIDGE: u64 = 1;
    pub const FROM_BRIDGE: u64 = 2;
    pub const RECEIPTS: u64 = 3;
    pub const LINK: u64 = 4;
    pub const LOGIC: u64 = 5;
    pub const START: u64 = 6;
    pub const WALL: u64 = 7;
    pub const RSSI: u64 = 8;
}

/// Entry point of the simulator.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Starts every device of `config` against the bridge at `bridge` and returns at once; the
    /// devices connect in the background (see [`SimHandle::wait_ready`]).
    pub async fn start(config: SimConfig, bridge: SocketAddr) -> Result<SimHandle, SimError> {
        config.validate()?;
        let connector = Arc::new(super::tls::build_connector()?);
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let recorder = open_recorder(&config, &tracker).await?;
        let (applied, _) = broadcast::channel(APPLIED_EVENTS);
        let homes: Vec<Arc<HomeRuntime>> = config
            .homes
            .iter()
            .enumerate()
            .map(|(i, spec)| Arc::new(HomeRuntime::new(i, spec.clone(), applied.clone())))
            .collect();
        let ctx = Ctx {
            config: &config,
            bridge,
            connector,
            recorder: recorder.clone(),
            cancel: cancel.clone(),
        };
        let panics = Arc::new(AtomicU64::new(0));
        let (sessions, by_key) = ctx.spawn_all(&homes, &tracker, &panics);
        tracing::info!(
            homes = homes.len(),
            wifi_devices = sessions.len(),
            bridge = %bridge,
            "simulator started"
        );
        Ok(SimHandle {
            inner: Arc::new(Inner {
                homes,
                applied,
                sessions,
                by_key,
                _guard: cancel.clone().drop_guard(),
                cancel,
                tracker,
                recorder: Mutex::new(recorder),
                panics,
            }),
        })
    }
}

/// Opens the capture file, if one is configured, and spawns its writer.
async fn open_recorder(
    config: &SimConfig,
    tracker: &TaskTracker,
) -> Result<Option<Arc<Recorder>>, SimError> {
    let Some(path) = &config.record else {
        return Ok(None);
    };
    let (recorder, writer) =
        Recorder::open(path.clone())
            .await
            .map_err(|source| SimError::Record {
                path: path.clone(),
                source,
            })?;
    tracker.spawn(async move {
        if let Err(e) = writer.await {
            tracing::warn!(error = %e, "capture file writer failed");
        }
    });
    Ok(Some(Arc::new(recorder)))
}

/// Runs a device task, turning a panic into a counted, logged error instead of a silently dead
/// device: tests assert [`SimHandle::panics`] is zero under every chaos knob.
async fn guarded(
    task: impl std::future::Future<Output = ()>,
    panics: Arc<AtomicU64>,
    key: SimDeviceKey,
) {
    if AssertUnwindSafe(task).catch_unwind().await.is_err() {
        panics.fetch_add(1, Ordering::Relaxed);
        tracing::error!(device = ?key, "simulated device task panicked");
    }
}

/// Where one Wi-Fi device sits: its home, its place among the home's Wi-Fi devices (`slot`,
/// which indexes the home's per-device runtime state) and its number across all homes
/// (`index`, which picks its RNG streams).
#[derive(Clone, Copy)]
struct Seat<'a> {
    home: &'a Arc<HomeRuntime>,
    slot: usize,
    spec: &'a SimDevice,
    wifi: &'a SimWifi,
    index: u64,
}

struct Ctx<'a> {
    config: &'a SimConfig,
    bridge: SocketAddr,
    connector: Arc<openssl::ssl::SslConnector>,
    recorder: Option<Arc<Recorder>>,
    cancel: CancellationToken,
}

impl Ctx<'_> {
    /// Spawns every device task (and each home's wall-switch scheduler); returns the handles.
    fn spawn_all(
        &self,
        homes: &[Arc<HomeRuntime>],
        tracker: &TaskTracker,
        panics: &Arc<AtomicU64>,
    ) -> (Vec<SessionHandle>, BTreeMap<SimDeviceKey, usize>) {
        let config = self.config;
        let mut sessions = Vec::new();
        let mut by_key = BTreeMap::new();
        let mut index = 0u64;
        for home in homes {
            for (slot, (spec, wifi)) in home.spec.wifi_devices().enumerate() {
                let seat = Seat {
                    home,
                    slot,
                    spec,
                    wifi,
                    index,
                };
                let (device, handle) = self.device(&seat);
                by_key.insert(handle.key, sessions.len());
                tracker.spawn(guarded(device.run(), panics.clone(), handle.key));
                sessions.push(handle);
                index += 1;
            }
            if config.timing.wall_change_every_ms > 0 {
                let seed = stream_seed(config.seed, home.index as u64, stream::WALL);
                tracker.spawn(wall_switches(
                    home.clone(),
                    Timing::ms(config.timing.wall_change_every_ms),
                    seed,
                    self.cancel.clone(),
                ));
            }
        }
        (sessions, by_key)
    }

    /// Builds the task and the handle of the Wi-Fi device at `seat`.
    fn device(&self, seat: &Seat<'_>) -> (Device, SessionHandle) {
        let Seat {
            home,
            slot,
            spec,
            wifi,
            index,
        } = *seat;
        let cfg = self.config;
        let seed = |s| stream_seed(cfg.seed, index, s);
        let key = SimDeviceKey {
            home: home.index,
            mesh_id: spec.mesh_id,
        };
        let chaos = cfg.chaos_for(key).clone();
        let shared = Arc::new(Shared {
            counters: Arc::new(Counters::default()),
            log: PacketLog::new(cfg.behaviour.log_capacity),
            to_bridge: Arc::new(ChaosCounters::default()),
            from_bridge: Arc::new(ChaosCounters::default()),
            link: watch::Sender::new(LinkState::Connecting),
        });
        let logic = self.logic(seat, shared.counters.clone());
        let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let handle = SessionHandle {
            key,
            device_id: wifi.device_id,
            control: control_tx,
            shared: shared.clone(),
            link: shared.link.subscribe(),
            home: home.clone(),
        };
        let to_bridge = shared.to_bridge.clone();
        let from_bridge = shared.from_bridge.clone();
        let device = Device {
            key,
            addr: self.bridge,
            connector: self.connector.clone(),
            logic,
            out_engine: PacketEngine::new(
                chaos.to_bridge.clone(),
                seed(stream::TO_BRIDGE),
                to_bridge,
            ),
            in_engine: PacketEngine::new(
                chaos.from_bridge.clone(),
                seed(stream::FROM_BRIDGE),
                from_bridge,
            ),
            behaviour: BehaviourEngine::new(&chaos, seed(stream::RECEIPTS), seed(stream::LINK)),
            blackhole_ms: chaos.link.blackhole_ms,
            shared,
            control: control_rx,
            watch: home.watches.get(slot).cloned().unwrap_or_default(),
            timing: cfg.timing.clone(),
            recorder: self.recorder.clone(),
            cancel: self.cancel.child_token(),
            start_delay: self.start_delay(seed(stream::START)),
            offline: false,
        };
        (device, handle)
    }

    /// The protocol behaviour of one device.
    fn logic(&self, seat: &Seat<'_>, counters: Arc<Counters>) -> Logic {
        let (spec, wifi) = (seat.spec, seat.wifi);
        let cfg = self.config;
        let mut rng = StdRng::seed_from_u64(stream_seed(cfg.seed, seat.index, stream::RSSI));
        let identity = Identity {
            mesh_id: spec.mesh_id,
            type_id: spec.type_id,
            device_id: wifi.device_id,
            auth_code: wifi.auth_code.clone(),
            firmware: wifi.firmware.clone(),
            reach: wifi.reach.clone(),
            rssi: rng.gen_range(-53..=-31),
        };
        Logic::new(
            seat.home.clone(),
            seat.slot,
            Packets::new(identity, cfg.behaviour.stuffing.into()),
            LogicSettings {
                profile: wifi.profile,
                relay_responds: cfg.behaviour.relay_responds,
                report_delay: Timing::ms(cfg.timing.report_delay_ms),
                counter_policy: cfg.behaviour.counters,
                seed: stream_seed(cfg.seed, seat.index, stream::LOGIC),
            },
            counters,
        )
    }

    /// When a device first connects: uniformly within `connect_spread_ms`.
    fn start_delay(&self, seed: u64) -> Duration {
        match self.config.timing.connect_spread_ms {
            0 => Duration::ZERO,
            spread => Timing::ms(StdRng::seed_from_u64(seed).gen_range(0..spread)),
        }
    }
}

/// Scheduled "someone used the wall switch" changes in one home: every `every` (±50 %), a
/// random device of the home toggles and takes a random brightness.
async fn wall_switches(
    home: Arc<HomeRuntime>,
    every: Duration,
    seed: u64,
    cancel: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let devices: Vec<u16> = home.spec.devices.iter().map(|d| d.mesh_id).collect();
    if devices.is_empty() {
        return;
    }
    loop {
        let factor: f64 = rng.gen_range(0.5..1.5);
        let wait = Duration::try_from_secs_f64(every.as_secs_f64() * factor).unwrap_or(every);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let id = devices[rng.gen_range(0..devices.len())];
        let Some(current) = home.state(id) else {
            continue;
        };
        let next = LightState {
            on: !current.on,
            brightness: rng.gen_range(1..=100),
            ..current
        };
        home.set_state(id, next);
    }
}
