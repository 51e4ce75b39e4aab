//! `cync-bridge sim`: run simulated Cync devices against a bridge until interrupted.
//!
//! Settings come from built-in defaults, then an optional scenario file (`--scenario`, see
//! `sim::scenario`), then these flags. Logs what it does (start, connections, a totals line every
//! `--stats-every-secs`), and exits with status 2 when not a single device could complete TLS with
//! the bridge within `--connect-deadline-secs` — a wrong address or a bridge that is down should
//! fail a script, not hang it. Ctrl-C (or SIGTERM) stops every device and exits 0.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::sim::scenario::Scenario;
use crate::sim::{FrameStuffing, PacketChaos, Partition, SimHandle, Simulator};
use crate::telemetry::LogFormat;

/// Which direction the `--chaos-*` packet flags apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChaosDirection {
    /// Device → bridge.
    ToBridge,
    /// Bridge → device.
    FromBridge,
    /// Both.
    Both,
}

/// Partition kinds for `--chaos-partition-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PartitionKind {
    /// Silence on an open socket.
    Blackhole,
    /// TCP reset.
    Reset,
    /// TCP FIN.
    Fin,
}

/// Arguments of `cync-bridge sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Bridge address, HOST:PORT (devices use port 23779).
    #[arg(long)]
    pub bridge: String,
    /// Wi-Fi devices in total (default 1, or the scenario's).
    #[arg(long)]
    pub wifi_devices: Option<usize>,
    /// Bluetooth-only devices behind each Wi-Fi device.
    #[arg(long)]
    pub mesh_per_device: Option<usize>,
    /// Homes (meshes) to spread the devices over; default: as few as fit 248 devices each.
    #[arg(long)]
    pub homes: Option<usize>,
    /// Seed of every random decision (ids, connect profiles, chaos).
    #[arg(long)]
    pub seed: Option<u64>,
    /// TOML scenario file; flags override its values.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Record every session to this capture-text file (readable by `cync-bridge decode`).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Exit with status 2 if no device completes TLS with the bridge within this many seconds.
    #[arg(long, default_value_t = 30)]
    pub connect_deadline_secs: u64,
    /// Spread the first connections over this many milliseconds.
    #[arg(long)]
    pub connect_spread_ms: Option<u64>,
    /// Transmit-idle time before a heartbeat, in milliseconds (real devices: 21000).
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// Scheduled wall-switch changes per home, every this many milliseconds (0 = none).
    #[arg(long)]
    pub wall_change_every_ms: Option<u64>,
    /// Frame encoding: raw (like real devices) or escape (HDLC stuffing).
    #[arg(long, value_parser = ["raw", "escape"])]
    pub stuffing: Option<String>,
    /// Relays answer commands for other devices with a receipt only (no `f9`).
    #[arg(long)]
    pub relay_no_response: bool,
    /// Packet-log entries kept per device.
    #[arg(long)]
    pub log_capacity: Option<usize>,
    /// Print a totals line this often (0 = never).
    #[arg(long, default_value_t = 10)]
    pub stats_every_secs: u64,
    /// Log filter (`tracing` EnvFilter syntax).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Log format: human or json.
    #[arg(long, default_value = "human")]
    pub log_format: String,
    /// Direction of the packet-level `--chaos-*` flags.
    #[arg(long, value_enum, default_value_t = ChaosDirection::ToBridge)]
    pub chaos_direction: ChaosDirection,
    /// Loss probability per packet.
    #[arg(long)]
    pub chaos_loss: Option<f64>,
    /// Packets lost per loss episode.
    #[arg(long)]
    pub chaos_loss_burst: Option<u32>,
    /// Added latency, ms.
    #[arg(long)]
    pub chaos_latency_ms: Option<u64>,
    /// Uniform jitter on top of the latency, ms.
    #[arg(long)]
    pub chaos_jitter_ms: Option<u64>,
    /// Duplication probability.
    #[arg(long)]
    pub chaos_duplicate: Option<f64>,
    /// Reordering probability.
    #[arg(long)]
    pub chaos_reorder: Option<f64>,
    /// Packets that overtake a reordered one (default 2 when --chaos-reorder is set).
    #[arg(long)]
    pub chaos_reorder_window: Option<u32>,
    /// Corruption with a broken checksum.
    #[arg(long)]
    pub chaos_corrupt: Option<f64>,
    /// Corruption with the checksum fixed up.
    #[arg(long)]
    pub chaos_corrupt_fixed: Option<f64>,
    /// Broken headers.
    #[arg(long)]
    pub chaos_corrupt_header: Option<f64>,
    /// Bogus packets injected.
    #[arg(long)]
    pub chaos_bogus: Option<f64>,
    /// Partition probability per packet sent.
    #[arg(long)]
    pub chaos_partition: Option<f64>,
    /// Partition kind.
    #[arg(long, value_enum)]
    pub chaos_partition_kind: Option<PartitionKind>,
    /// Blackhole duration, ms (0 = until the simulator stops).
    #[arg(long)]
    pub chaos_blackhole_ms: Option<u64>,
    /// Reconnect-storm probability per connection.
    #[arg(long)]
    pub chaos_storm: Option<f64>,
    /// Read at most this many bytes per second from the bridge.
    #[arg(long)]
    pub chaos_slow_read: Option<u64>,
    /// Probability that a receipt is delayed.
    #[arg(long)]
    pub chaos_receipt_delay: Option<f64>,
    /// Delay of delayed receipts, ms.
    #[arg(long)]
    pub chaos_receipt_delay_ms: Option<u64>,
    /// Probability that a receipt is never sent.
    #[arg(long)]
    pub chaos_receipt_drop: Option<f64>,
    /// Probability that a command gets only a receipt.
    #[arg(long)]
    pub chaos_receipt_only: Option<f64>,
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn apply_packet_flags(p: &mut PacketChaos, a: &SimArgs) {
    set(&mut p.loss, a.chaos_loss);
    set(&mut p.loss_burst, a.chaos_loss_burst);
    set(&mut p.latency_ms, a.chaos_latency_ms);
    set(&mut p.jitter_ms, a.chaos_jitter_ms);
    set(&mut p.duplicate, a.chaos_duplicate);
    set(&mut p.reorder, a.chaos_reorder);
    if a.chaos_reorder.is_some() && p.reorder_window == 0 {
        p.reorder_window = 2;
    }
    set(&mut p.reorder_window, a.chaos_reorder_window);
    set(&mut p.corrupt_checksum, a.chaos_corrupt);
    set(&mut p.corrupt_fixed, a.chaos_corrupt_fixed);
    set(&mut p.corrupt_header, a.chaos_corrupt_header);
    set(&mut p.bogus, a.chaos_bogus);
}

/// Defaults, then the scenario file, then the flags.
pub fn scenario_from(args: &SimArgs) -> anyhow::Result<Scenario> {
    let mut s = match &args.scenario {
        Some(path) => Scenario::load(path)?,
        None => Scenario::default(),
    };
    let g = &mut s.generate;
    set(&mut g.wifi_devices, args.wifi_devices);
    set(&mut g.mesh_per_device, args.mesh_per_device);
    if args.homes.is_some() {
        g.homes = args.homes;
    }
    if args.seed.is_some() {
        s.seed = args.seed;
    }
    if args.record.is_some() {
        s.record = args.record.clone();
    }
    let t = &mut s.timing;
    set(&mut t.connect_spread_ms, args.connect_spread_ms);
    set(&mut t.heartbeat_idle_ms, args.heartbeat_ms);
    set(&mut t.wall_change_every_ms, args.wall_change_every_ms);
    let b = &mut s.behaviour;
    match args.stuffing.as_deref() {
        Some("escape") => b.stuffing = FrameStuffing::Escape,
        Some(_) => b.stuffing = FrameStuffing::Raw,
        None => {}
    }
    if args.relay_no_response {
        b.relay_responds = false;
    }
    set(&mut b.log_capacity, args.log_capacity);
    let c = &mut s.chaos;
    if args.chaos_direction != ChaosDirection::FromBridge {
        apply_packet_flags(&mut c.to_bridge, args);
    }
    if args.chaos_direction != ChaosDirection::ToBridge {
        apply_packet_flags(&mut c.from_bridge, args);
    }
    set(&mut c.link.partition, args.chaos_partition);
    if let Some(kind) = args.chaos_partition_kind {
        c.link.partition_kind = match kind {
            PartitionKind::Blackhole => Partition::Blackhole,
            PartitionKind::Reset => Partition::Reset,
            PartitionKind::Fin => Partition::Fin,
        };
    }
    set(&mut c.link.blackhole_ms, args.chaos_blackhole_ms);
    set(&mut c.link.reconnect_storm, args.chaos_storm);
    set(&mut c.link.slow_read_bytes_per_sec, args.chaos_slow_read);
    set(&mut c.receipts.delay, args.chaos_receipt_delay);
    set(&mut c.receipts.delay_ms, args.chaos_receipt_delay_ms);
    set(&mut c.receipts.drop, args.chaos_receipt_drop);
    set(&mut c.receipts.receipt_only, args.chaos_receipt_only);
    Ok(s)
}

/// Runs the subcommand. Returns the process exit status.
pub fn run(args: &SimArgs) -> anyhow::Result<u8> {
    let format: LogFormat = args.log_format.parse()?;
    crate::telemetry::logging::init(format, &args.log_level)?;
    let config = scenario_from(args)?
        .into_config()
        .context("invalid simulator settings")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let bridge = tokio::net::lookup_host(&args.bridge)
            .await
            .with_context(|| format!("cannot resolve bridge address {:?}", args.bridge))?
            .next()
            .with_context(|| format!("bridge address {:?} resolves to nothing", args.bridge))?;
        let sim = Simulator::start(config, bridge).await?;
        let status = supervise(&sim, args, bridge).await;
        let totals = sim.totals();
        sim.shutdown().await;
        tracing::info!(?totals, "simulator stopped");
        Ok(status)
    })
}

/// Waits for Ctrl-C / SIGTERM, logging totals; returns 2 if the bridge was never reached.
async fn supervise(sim: &SimHandle, args: &SimArgs, bridge: std::net::SocketAddr) -> u8 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.connect_deadline_secs);
    let every = Duration::from_secs(args.stats_every_secs.max(1));
    let mut stats = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut check = tokio::time::interval(Duration::from_millis(250));
    let stop = stop_signal();
    tokio::pin!(stop);
    let mut reached = false;
    loop {
        tokio::select! {
            _ = &mut stop => return 0,
            _ = stats.tick(), if args.stats_every_secs > 0 => log_totals(sim),
            _ = check.tick() => {
                if !reached && sim.totals().connects > 0 {
                    reached = true;
                    tracing::info!(%bridge, "first device connected");
                }
                if !reached && tokio::time::Instant::now() >= deadline {
                    tracing::error!(
                        %bridge,
                        seconds = args.connect_deadline_secs,
                        "cannot reach the bridge: no device completed TLS; is the address \
                         right and the bridge listening (devices use port 23779)?"
                    );
                    return 2;
                }
            }
        }
    }
}

fn log_totals(sim: &SimHandle) {
    let t = sim.totals();
    let ready = sim
        .sessions()
        .iter()
        .filter(|s| s.link() == crate::sim::LinkState::Ready)
        .count();
    tracing::info!(
        devices = sim.sessions().len(),
        ready,
        connects = t.connects,
        connect_failures = t.connect_failures,
        packets_sent = t.packets_sent,
        packets_received = t.packets_received,
        commands = t.commands,
        garbage = t.junk_events + t.decode_errors + t.frame_errors + t.unexpected,
        panics = sim.panics(),
        "simulator totals"
    );
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
