//! The whole Home Assistant path against a real Mosquitto: the bridge (`cync-bridge serve`, the
//! release binary, as a *separate process* so its CPU and memory are its own), the in-process
//! simulator (one home, 100 devices: 10 Wi-Fi relays, each relaying for 9 Bluetooth-only
//! devices) and two plain MQTT clients standing in for Home Assistant.
//!
//! Measures, for 5, 50 and 400 commands/s spread round-robin over the 100 devices (open loop,
//! `ON`/`OFF` for plugs, `{"state": …}` for lights, each command flipping its device):
//! - publish → applied: from just before the client's publish to the simulated device applying
//!   the command ([`cync_bridge::sim::SimHandle::subscribe_applied`]); p50/p95/p99/max, and
//!   commands never applied ("lost"). A second subscriber of the command topics splits it into
//!   the broker's delivery and the rest (bridge + device);
//! - the bridge's CPU (% of one core, `/proc/<pid>/stat` utime+stime over the phase) and RSS
//!   (`/proc/<pid>/status` VmRSS at the end, VmHWM peak), idle and under each rate;
//! - wall switch → MQTT state: `SimHandle::wall_change`, then until the state message showing it
//!   reaches the subscriber (p50/p99).
//!
//! Everything shares the machine (broker, bridge, simulator, clients, and whatever else runs), so
//! the latencies include run-queue waits: the load average is printed before and after. On a
//! busy host, `chrt -f 10 <bench binary> --bench` (root) shows what the path does when it gets
//! the CPU it asks for. Targets (bridge alone): p99 ≤ 1 ms at every rate, ≤ 20 % of a core at
//! 400/s, ≤ 20 MB RSS.
//!
//! Run: `cargo bench --bench mqtt_bridge` (about 1.5 minutes). `CYNC_BENCH_QUICK=1`: 3 s per
//! rate; `CYNC_BENCH_RATES=400`: only these rates (comma-separated), e.g. while profiling the
//! bridge's pid with `perf record -p`. Needs `mosquitto` (`apt-get install mosquitto`); without
//! it the bench says so and ends.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cync_bridge::protocol::LightState;
use cync_bridge::sim::{HomeBuilder, SimConfig, SimDeviceKey, SimHandle, Simulator};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::sync::{broadcast, mpsc};

/// Cloud home id the device list gives the simulated home (topics are `cync/<id>-<mesh id>`).
const HOME_ID: u64 = 4_200_000_001;
const RELAYS: u16 = 10;
const MESH_PER_RELAY: u16 = 9;
const RATES: [u32; 3] = [5, 50, 400];
/// How long after the last publish a command may still be applied before it counts as lost.
const GRACE: Duration = Duration::from_secs(5);
/// Type ids: Full Color A19 (Wi-Fi), Indoor Plug (Wi-Fi), Tunable White A19 (Bluetooth).
const COLOR_BULB: u16 = 137;
const PLUG: u16 = 64;
const TUNABLE_BT: u16 = 5;

/// The Python add-on's figures on the same kind of load, for comparison.
const PYTHON: &str = "python add-on (cync-lan): p99 ≈ 2.8 ms at 5/s and 4.7 ms at 400/s, \
                      80% of a core, 64 MB RSS";

fn main() {
    // `cargo test --benches` runs this without `--bench`: the minute-long run only when benching.
    if !std::env::args().any(|a| a == "--bench") {
        println!("mqtt_bridge: run with `cargo bench --bench mqtt_bridge`");
        return;
    }
    let quick = std::env::var("CYNC_BENCH_QUICK").as_deref() == Ok("1");
    let Some(broker) = Mosquitto::start() else {
        println!("mqtt_bridge: SKIPPED: mosquitto is not installed (apt-get install mosquitto)");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(&broker, quick));
}

// ------------------------------------------------------------------------------ the run

struct Plan {
    phase: Duration,
    idle: Duration,
    wall_samples: usize,
}

async fn run(broker: &Mosquitto, quick: bool) {
    let plan = if quick {
        Plan {
            phase: Duration::from_secs(3),
            idle: Duration::from_secs(2),
            wall_samples: 50,
        }
    } else {
        Plan {
            phase: Duration::from_secs(10),
            idle: Duration::from_secs(10),
            wall_samples: 200,
        }
    };
    let devices = device_list();
    let bridge = BridgeProcess::start(broker.port, &devices);
    let sim = start_sim(&devices, bridge.device_addr).await;

    // Home Assistant's two roles: one client listening to state and availability, one commanding.
    let pending = Shared::default();
    let (observer, mut seen) = observer(broker.port, &pending).await;
    wait_all_online(&mut seen, devices.len()).await;
    let commander = commander(broker.port).await;
    // Let start-up publishing (discovery, retained state) and the first reports settle.
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!(
        "mqtt_bridge bench: 100 devices ({RELAYS} Wi-Fi relays × {MESH_PER_RELAY} Bluetooth + \
         themselves), real mosquitto, bridge = `cync-bridge serve` pid {} (separate process), \
         {:.0} s per rate; load average before: {}",
        bridge.child.id(),
        plan.phase.as_secs_f64(),
        load_average()
    );
    let clk_tck = clock_ticks();
    let mut rows = Vec::new();
    let before = bridge.usage(clk_tck);
    tokio::time::sleep(plan.idle).await;
    let idle = bridge.usage(clk_tck).since(&before);

    let matcher = match_applied(&sim, &pending);
    for rate in rates() {
        let before = bridge.usage(clk_tck);
        let report = drive(&commander, &pending, &devices, rate, plan.phase).await;
        let usage = bridge.usage(clk_tck).since(&before);
        rows.push((rate, report, usage));
        // The delayed state reports of the last commands, then a clean slate.
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    while seen.try_recv().is_ok() {}
    let wall = wall_changes(&sim, &mut seen, &devices, plan.wall_samples).await;

    print_table(&bridge, &idle, &rows, &wall);
    drop(matcher);
    drop(observer);
    drop(commander);
    sim.shutdown().await;
    bridge.stop();
}

// ------------------------------------------------------------------------------ devices

#[derive(Clone, Copy)]
struct Device {
    mesh: u16,
    type_id: u16,
    relay: Option<u16>,
}

impl Device {
    fn is_light(&self) -> bool {
        self.type_id != PLUG
    }
}

/// Relays 1..=10 (odd: colour bulbs, even: plugs), each relaying for 9 Bluetooth bulbs
/// (11..=100).
fn device_list() -> Vec<Device> {
    let mut devices = Vec::new();
    for r in 1..=RELAYS {
        let type_id = if r % 2 == 1 { COLOR_BULB } else { PLUG };
        devices.push(Device {
            mesh: r,
            type_id,
            relay: None,
        });
        for j in 1..=MESH_PER_RELAY {
            devices.push(Device {
                mesh: RELAYS + (r - 1) * MESH_PER_RELAY + j,
                type_id: TUNABLE_BT,
                relay: Some(r),
            });
        }
    }
    devices
}

async fn start_sim(devices: &[Device], bridge: SocketAddr) -> SimHandle {
    let mut b = HomeBuilder::new("bench", 11);
    for d in devices {
        b = match d.relay {
            None => b.wifi(d.mesh, d.type_id),
            Some(_) => b.bluetooth(d.mesh, d.type_id),
        };
    }
    for r in 1..=RELAYS {
        let reach: Vec<u16> = devices
            .iter()
            .filter(|d| d.relay == Some(r))
            .map(|d| d.mesh)
            .collect();
        b = b.relays(r, &reach);
    }
    let mut config = SimConfig::new(42, vec![b.build().expect("home")]);
    // Normal device behaviour (state report 0.5 s after each command); no packet log needed.
    config.behaviour.log_capacity = 0;
    let sim = Simulator::start(config, bridge).await.expect("sim");
    sim.wait_ready(Duration::from_secs(30))
        .await
        .expect("every relay connected");
    sim
}

fn key(mesh: u16) -> SimDeviceKey {
    SimDeviceKey {
        home: 0,
        mesh_id: mesh,
    }
}

/// The mesh id of `cync/<home>-<mesh>/set`.
fn command_mesh(topic: &str) -> Option<u16> {
    let entity = topic.strip_prefix("cync/")?.strip_suffix("/set")?;
    entity.strip_prefix(&format!("{HOME_ID}-"))?.parse().ok()
}

fn state_topic(mesh: u16) -> String {
    format!("cync/{HOME_ID}-{mesh}")
}

// ------------------------------------------------------------------------------ MQTT clients

fn mqtt_options(id: &str, port: u16) -> MqttOptions {
    let mut opts = MqttOptions::new(format!("{id}-{}", std::process::id()), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts
}

fn nodelay(eventloop: &mut EventLoop) {
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
}

/// What the observer saw: topic, payload, when.
type Seen = (String, Bytes, Instant);

/// Ends its poll task when dropped.
struct ClientGuard(tokio::task::JoinHandle<()>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Subscribes to state, availability and (to time the broker's share) the command topics.
async fn observer(port: u16, pending: &Shared) -> (ClientGuard, mpsc::UnboundedReceiver<Seen>) {
    let (client, mut eventloop) = AsyncClient::new(mqtt_options("bench-observer", port), 64);
    nodelay(&mut eventloop);
    client
        .subscribe("cync/+", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    client
        .subscribe("cync/+/availability", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    client
        .subscribe("cync/+/set", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let (tx, rx) = mpsc::unbounded_channel();
    let pending = Arc::clone(pending);
    let task = tokio::spawn(async move {
        let _client = client;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let at = Instant::now();
                    if let Some(mesh) = command_mesh(&p.topic) {
                        lock(&pending).on_heard(mesh, at);
                    } else {
                        let _ = tx.send((p.topic, p.payload, at));
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("observer lost the broker: {e}"),
            }
        }
    });
    (ClientGuard(task), rx)
}

struct Commander {
    client: AsyncClient,
    _poll: ClientGuard,
}

async fn commander(port: u16) -> Commander {
    let (client, mut eventloop) = AsyncClient::new(mqtt_options("bench-commander", port), 1024);
    nodelay(&mut eventloop);
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut connected_tx = Some(connected_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("commander lost the broker: {e}"),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), connected)
        .await
        .expect("commander connected in time")
        .expect("commander connected");
    Commander {
        client,
        _poll: ClientGuard(task),
    }
}

/// Waits until the bridge has said `online` for every device (it has routes to all of them).
async fn wait_all_online(seen: &mut mpsc::UnboundedReceiver<Seen>, count: usize) {
    let mut online: HashMap<String, bool> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while online.values().filter(|v| **v).count() < count {
        let next = tokio::time::timeout_at(deadline, seen.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {count} devices became available in 60 s",
                    online.values().filter(|v| **v).count()
                )
            })
            .expect("observer running");
        if let Some(entity) = next.0.strip_suffix("/availability") {
            online.insert(entity.to_owned(), &next.1[..] == b"online");
        }
    }
}

// ------------------------------------------------------------------------------ commands

/// Commands published this phase to one device: when, wanting on or off; when the observer
/// heard each; when the device applied each, showing on or off.
#[derive(Default)]
struct Track {
    sent: Vec<(Instant, bool)>,
    heard: Vec<Instant>,
    applied: Vec<(Instant, bool)>,
}

/// What became of the commands of one phase.
#[derive(Default)]
struct Pending {
    devices: HashMap<u16, Track>,
    /// Applied with nothing waiting (a retry applied twice, or a stray command).
    unexpected: u64,
    lagged: u64,
}

impl Pending {
    fn outstanding(&self) -> usize {
        self.devices
            .values()
            .map(|t| t.sent.len().saturating_sub(t.applied.len()))
            .sum()
    }

    fn on_applied(&mut self, mesh: u16, on: bool, at: Instant) {
        match self.devices.get_mut(&mesh) {
            Some(t) if t.applied.len() < t.sent.len() => t.applied.push((at, on)),
            _ => self.unexpected += 1,
        }
    }

    fn on_heard(&mut self, mesh: u16, at: Instant) {
        if let Some(t) = self.devices.get_mut(&mesh) {
            t.heard.push(at);
        }
    }
}

type Shared = Arc<Mutex<Pending>>;

fn lock(p: &Shared) -> std::sync::MutexGuard<'_, Pending> {
    p.lock().expect("lock")
}

/// Pairs the simulator's applied events with the commands published; ends when dropped.
fn match_applied(sim: &SimHandle, pending: &Shared) -> ClientGuard {
    let mut events = sim.subscribe_applied();
    let shared = Arc::clone(pending);
    ClientGuard(tokio::spawn(async move {
        loop {
            let event = events.recv().await;
            let mut p = lock(&shared);
            match event {
                Ok(e) => p.on_applied(e.key.mesh_id, e.state.on, e.at),
                Err(broadcast::error::RecvError::Lagged(n)) => p.lagged += n,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }))
}

struct RateReport {
    sent: usize,
    elapsed: Duration,
    /// Publish → applied.
    latencies: Vec<Duration>,
    /// Publish → a second subscriber got it: the broker's share (and the clients').
    hops: Vec<Duration>,
    /// That subscriber got it → applied: the bridge's share (and the simulator's), as near as
    /// the outside can tell.
    after_broker: Vec<Duration>,
    lost: usize,
    mismatched: u64,
    unexpected: u64,
    lagged: u64,
}

/// Publishes `rate` commands/s round-robin over `devices` for `phase`, each one flipping its
/// device, then waits for the stragglers.
async fn drive(
    commander: &Commander,
    pending: &Shared,
    devices: &[Device],
    rate: u32,
    phase: Duration,
) -> RateReport {
    *lock(pending) = Pending::default();
    let mut on: HashMap<u16, bool> = HashMap::new();
    let period = Duration::from_secs(1) / rate;
    let count = (phase.as_secs_f64() * f64::from(rate)).round() as usize;
    let started = tokio::time::Instant::now();
    for i in 0..count {
        tokio::time::sleep_until(started + period * i as u32).await;
        let d = devices[i % devices.len()];
        let want = !on.get(&d.mesh).copied().unwrap_or(false);
        on.insert(d.mesh, want);
        let word = if want { "ON" } else { "OFF" };
        let payload = if d.is_light() {
            format!(r#"{{"state":"{word}"}}"#)
        } else {
            word.to_owned()
        };
        let topic = format!("{}/set", state_topic(d.mesh));
        let now = Instant::now();
        lock(pending)
            .devices
            .entry(d.mesh)
            .or_default()
            .sent
            .push((now, want));
        commander
            .client
            .publish(topic, QoS::AtMostOnce, false, payload)
            .await
            .expect("publish queued");
    }
    let elapsed = started.elapsed();
    let deadline = tokio::time::Instant::now() + GRACE;
    while lock(pending).outstanding() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let p = lock(pending);
    let mut report = RateReport {
        sent: count,
        elapsed,
        latencies: Vec::new(),
        hops: Vec::new(),
        after_broker: Vec::new(),
        lost: p.outstanding(),
        mismatched: 0,
        unexpected: p.unexpected,
        lagged: p.lagged,
    };
    for t in p.devices.values() {
        for (i, (sent, want)) in t.sent.iter().enumerate() {
            let heard = t.heard.get(i);
            if let Some(heard) = heard {
                report.hops.push(heard.saturating_duration_since(*sent));
            }
            let Some((applied, on)) = t.applied.get(i) else {
                continue;
            };
            if on != want {
                report.mismatched += 1;
                continue;
            }
            report
                .latencies
                .push(applied.saturating_duration_since(*sent));
            if let Some(heard) = heard {
                report
                    .after_broker
                    .push(applied.saturating_duration_since(*heard));
            }
        }
    }
    report.latencies.sort();
    report.hops.sort();
    report.after_broker.sort();
    report
}

// ------------------------------------------------------------------------------ wall switch

struct WallReport {
    latencies: Vec<Duration>,
    missed: usize,
}

/// One device at a time: flip it at the wall, wait for the state message showing it.
async fn wall_changes(
    sim: &SimHandle,
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    devices: &[Device],
    samples: usize,
) -> WallReport {
    let mut latencies = Vec::new();
    let mut missed = 0;
    for i in 0..samples {
        // A stride coprime with 100 visits relays and Bluetooth devices alike.
        let d = devices[(i * 37) % devices.len()];
        let current = sim.state(key(d.mesh)).expect("device");
        let wanted = LightState {
            on: !current.on,
            brightness: 20 + (i % 80) as u8,
            ..current
        };
        let topic = state_topic(d.mesh);
        let at = Instant::now();
        sim.wall_change(key(d.mesh), wanted).expect("wall change");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let arrived = loop {
            match tokio::time::timeout_at(deadline, seen.recv()).await {
                Ok(Some((t, payload, when))) => {
                    if t == topic && payload_on(&payload) == Some(wanted.on) {
                        break Some(when);
                    }
                }
                Ok(None) | Err(_) => break None,
            }
        };
        match arrived {
            Some(when) => latencies.push(when.saturating_duration_since(at)),
            None => missed += 1,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    latencies.sort();
    WallReport { latencies, missed }
}

/// The on/off a state payload shows (`{"state":"ON",…}`).
fn payload_on(payload: &[u8]) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    match v.get("state")?.as_str()? {
        "ON" => Some(true),
        "OFF" => Some(false),
        _ => None,
    }
}

// ------------------------------------------------------------------------------ report

fn pct(sorted: &[Duration], p: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[((sorted.len() as f64 * p) as usize).min(last)])
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.3}", d.as_secs_f64() * 1e3),
    )
}

fn print_table(
    bridge: &BridgeProcess,
    idle: &Usage,
    rows: &[(u32, RateReport, Usage)],
    wall: &WallReport,
) {
    println!("load average after: {}", load_average());
    println!();
    println!(
        "{:<8} {:>6} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}",
        "rate",
        "sent",
        "appl.",
        "lost",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "CPU %core",
        "RSS MB",
        "peak MB"
    );
    println!(
        "{:<8} {:>6} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9.1} {:>8.1} {:>8.1}",
        "idle", "-", "-", "-", "-", "-", "-", "-", idle.cpu_percent, idle.rss_mb, idle.hwm_mb
    );
    let mut notes = Vec::new();
    for (rate, r, u) in rows {
        println!(
            "{:<8} {:>6} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9.1} {:>8.1} {:>8.1}",
            format!("{rate}/s"),
            r.sent,
            r.latencies.len(),
            r.lost,
            ms(pct(&r.latencies, 0.50)),
            ms(pct(&r.latencies, 0.95)),
            ms(pct(&r.latencies, 0.99)),
            ms(r.latencies.last().copied()),
            u.cpu_percent,
            u.rss_mb,
            u.hwm_mb
        );
        let achieved = r.sent as f64 / r.elapsed.as_secs_f64();
        if achieved < f64::from(*rate) * 0.95 {
            notes.push(format!("{rate}/s: only {achieved:.0}/s were published"));
        }
        if r.mismatched + r.unexpected + r.lagged > 0 {
            notes.push(format!(
                "{rate}/s: {} applied with the wrong on/off, {} applied unasked, {} events lagged",
                r.mismatched, r.unexpected, r.lagged
            ));
        }
    }
    println!();
    println!("split at a second subscriber of the command topic (the broker's delivery):");
    for (rate, r, _) in rows {
        println!(
            "  {rate:>3}/s publish → subscriber p50 {} p99 {} max {} ms; subscriber → applied \
             (bridge + device) p50 {} p99 {} max {} ms",
            ms(pct(&r.hops, 0.50)),
            ms(pct(&r.hops, 0.99)),
            ms(r.hops.last().copied()),
            ms(pct(&r.after_broker, 0.50)),
            ms(pct(&r.after_broker, 0.99)),
            ms(r.after_broker.last().copied()),
        );
    }
    println!(
        "wall switch → MQTT state: {} samples, p50 {} ms, p99 {} ms, max {} ms, {} missed",
        wall.latencies.len(),
        ms(pct(&wall.latencies, 0.50)),
        ms(pct(&wall.latencies, 0.99)),
        ms(wall.latencies.last().copied()),
        wall.missed
    );
    for n in &notes {
        println!("note: {n}");
    }
    let warnings = bridge.log_lines();
    if warnings > 0 {
        println!(
            "note: the bridge logged {warnings} warning/error lines ({})",
            bridge.log.display()
        );
    }
    println!();
    let p99_ok = rows
        .iter()
        .all(|(_, r, _)| r.lost == 0 && pct(&r.latencies, 0.99) <= Some(Duration::from_millis(1)));
    let cpu_ok = rows
        .iter()
        .filter(|(rate, _, _)| *rate == 400)
        .all(|(_, _, u)| u.cpu_percent <= 20.0);
    let rss_ok = rows.iter().all(|(_, _, u)| u.hwm_mb <= 20.0) && idle.hwm_mb <= 20.0;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets: p99 ≤ 1 ms at every rate, none lost: {}; ≤ 20% of a core at 400/s: {}; \
         ≤ 20 MB RSS (peak): {}",
        verdict(p99_ok),
        verdict(cpu_ok),
        verdict(rss_ok)
    );
    println!("compare: {PYTHON}");
}

// ------------------------------------------------------------------------------ the bridge

/// `cync-bridge serve` in its own process, configured through a file (the device list) and the
/// environment (addresses, data dir, log filter).
struct BridgeProcess {
    child: Child,
    device_addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl BridgeProcess {
    fn start(mqtt_port: u16, devices: &[Device]) -> BridgeProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("cync-bridge.toml");
        std::fs::write(&config, config_file(devices)).expect("write config");
        let device_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let log = dir.path().join("bridge.log");
        let child = Command::new(env!("CARGO_BIN_EXE_cync-bridge"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("CYNC_SERVER__LISTEN", device_addr.to_string())
            .env(
                "CYNC_TELEMETRY__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .env("CYNC_DATA_DIR", dir.path().join("data"))
            .env("CYNC_MQTT__URL", format!("mqtt://127.0.0.1:{mqtt_port}"))
            .env("CYNC_TELEMETRY__LOG_FILTER", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start cync-bridge serve");
        let bridge = BridgeProcess {
            child,
            device_addr,
            log,
            _dir: dir,
        };
        // The first start generates the TLS key: give it time.
        for _ in 0..400 {
            if std::net::TcpStream::connect(device_addr).is_ok() {
                return bridge;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "cync-bridge serve did not listen on {device_addr}; its log: {}",
            std::fs::read_to_string(&bridge.log).unwrap_or_default()
        );
    }

    fn usage(&self, clk_tck: f64) -> Sample {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("bridge running");
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').expect("stat") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/status")).expect("bridge running");
        let kb = |name: &str| -> f64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0.0)
        };
        Sample {
            at: Instant::now(),
            cpu_seconds: ticks as f64 / clk_tck,
            rss_mb: kb("VmRSS:") / 1024.0,
            hwm_mb: kb("VmHWM:") / 1024.0,
        }
    }

    /// Warning and error lines the bridge logged (its filter is `warn`).
    fn log_lines(&self) -> usize {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text.lines().filter(|l| !l.trim().is_empty()).count()
    }

    fn stop(mut self) {
        // SIGTERM first: the bridge says `offline` and closes its sessions.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The device list (types decide JSON or ON/OFF commands) and fast start-up timings.
fn config_file(devices: &[Device]) -> String {
    let mut text = String::from(
        "timezone = \"UTC\"\n\
         [server]\n\
         session_open_delay = \"10ms\"\n\
         mesh_info_delay = \"10ms\"\n\
         [mqtt]\n\
         client_id = \"cync-bridge-bench\"\n\
         [devices.homes.\"Bench\"]\n",
    );
    text.push_str(&format!("id = {HOME_ID}\n"));
    for d in devices {
        text.push_str(&format!(
            "[devices.homes.\"Bench\".devices.{}]\nname = \"Bench {}\"\ntype = {}\n",
            d.mesh, d.mesh, d.type_id
        ));
    }
    text
}

struct Sample {
    at: Instant,
    cpu_seconds: f64,
    rss_mb: f64,
    hwm_mb: f64,
}

impl Sample {
    fn since(&self, before: &Sample) -> Usage {
        let wall = self.at.duration_since(before.at).as_secs_f64();
        Usage {
            cpu_percent: 100.0 * (self.cpu_seconds - before.cpu_seconds) / wall,
            rss_mb: self.rss_mb,
            hwm_mb: self.hwm_mb,
        }
    }
}

/// The bridge's share of one core over a window, and its memory at the end of it.
struct Usage {
    cpu_percent: f64,
    rss_mb: f64,
    hwm_mb: f64,
}

/// `CYNC_BENCH_RATES=400` (comma-separated) runs only those rates, e.g. while profiling.
fn rates() -> Vec<u32> {
    match std::env::var("CYNC_BENCH_RATES") {
        Ok(list) => list
            .split(',')
            .map(|r| r.trim().parse().expect("CYNC_BENCH_RATES: numbers"))
            .collect(),
        Err(_) => RATES.to_vec(),
    }
}

/// 1, 5 and 15 minute load averages: the other work on this machine, which the latencies feel.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

// ------------------------------------------------------------------------------ the broker

/// A private Mosquitto on a free loopback port, killed on drop (as `tests/common`'s, plus
/// `set_tcp_nodelay`: without it the broker's small writes wait for Nagle).
struct Mosquitto {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    fn start() -> Option<Mosquitto> {
        let binary = [
            "/usr/sbin/mosquitto",
            "/usr/bin/mosquitto",
            "/usr/local/sbin/mosquitto",
        ]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())?;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 set_tcp_nodelay true\n"
            ),
        )
        .expect("write mosquitto.conf");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let broker = Mosquitto {
            port,
            child,
            _dir: dir,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(broker);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("mosquitto did not start on port {port}");
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}
