//! `cync-bridge toggle --device MESH_ID --on|--off`: the phase-0 harness. It runs its own device
//! listener from the same configuration as `serve` (so `serve` must be stopped first: both want
//! port 23779), waits until a connected device reaches the target, sends one power command on
//! the configured path (`--transport legacy`: write once; `reliable`: retry through every relay
//! that reaches it), waits for the device's `f9` response or a report showing the new state, and
//! prints exactly one JSON line on stdout:
//!
//! `{"device":80,"outcome":"success","latency_ms":84.2,"correlation_id":"0190…"}`
//!
//! `latency_ms` is from sending to the outcome (for `no_route`: the time spent waiting for a
//! route). Exit status: 0 only on `success`; 1 for any other outcome or a start-up failure;
//! 2 for a configuration error. Logs go to stderr.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::common::{self, ConfigArgs};
use crate::config::Config;
use crate::config::TransportMode;
use crate::device::{DeviceKey, HomeId};
use crate::protocol::Command;
use crate::rollout::assign::Path;
use crate::rollout::control::{effective, Persisted};
use crate::server::{DeviceServer, Services};
use crate::telemetry::{Health, Metrics};
use crate::transport::{CommandOutcome, CommandReport, CommandRequest};

/// Arguments of `cync-bridge toggle`.
#[derive(Debug, clap::Args)]
pub struct ToggleArgs {
    #[command(flatten)]
    /// Configuration.
    pub config: ConfigArgs,
    /// Mesh id of the device to switch.
    #[arg(long, value_name = "MESH_ID")]
    pub device: u16,
    #[command(flatten)]
    /// `--on` or `--off`.
    pub power: Power,
    /// Seconds to wait for the device to confirm after sending [default: transport.command_timeout]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,
    /// Seconds to wait for a device that reaches the target to connect to this listener.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, default_value = "60")]
    pub route_timeout: Duration,
    /// Command path [default: the device's path under the configured rollout mode and cohort]:
    /// `legacy` writes once, `reliable` retries through every relay that reaches the device.
    #[arg(long, value_enum)]
    pub transport: Option<crate::config::TransportMode>,
    /// Home (mesh) id; every device is in home 0 until a device list defines homes.
    #[arg(long, value_name = "HOME", default_value_t = 0)]
    pub home: u64,
}

/// The new power state.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Power {
    /// Switch on.
    #[arg(long)]
    pub on: bool,
    /// Switch off.
    #[arg(long)]
    pub off: bool,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("{text} is not between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The one line printed on stdout.
#[derive(Debug, Serialize)]
struct ResultLine {
    device: u16,
    outcome: CommandOutcome,
    latency_ms: f64,
    correlation_id: String,
}

/// Runs `toggle`, printing the result line on `out`; returns the exit status.
pub fn run(args: &ToggleArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let config = match common::load_config(&args.config) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    common::init_logging(&config)?;
    let report = common::runtime()?.block_on(toggle(&config, args))?;
    let line = ResultLine {
        device: args.device,
        outcome: report.outcome,
        latency_ms: (report.latency.as_secs_f64() * 1e6).round() / 1e3,
        correlation_id: report.correlation.to_string(),
    };
    writeln!(out, "{}", serde_json::to_string(&line)?)?;
    out.flush()?;
    Ok(if report.outcome == CommandOutcome::Success {
        0
    } else {
        1
    })
}

async fn toggle(config: &Config, args: &ToggleArgs) -> anyhow::Result<CommandReport> {
    let services = Services::new(&config.state, Metrics::new());
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    DeviceServer::bind(&config.device_server(), &services, shutdown.clone())
        .await?
        .spawn(&tracker, &Health::new());
    // Ctrl-C or SIGTERM ends the wait with outcome "cancelled" (and still prints the line).
    let cancel = shutdown.child_token();
    tracker.spawn(cancel_on_signal(cancel.clone()));

    let key = DeviceKey::new(HomeId(args.home), args.device);
    let command = Command::Power {
        target: args.device,
        on: args.power.on,
    };
    let timeout = args.timeout.unwrap_or(config.transport.command_timeout);
    let request = CommandRequest::new(key, command, timeout);
    tracing::info!(correlation_id = %request.correlation, device = %key, "waiting for a route to the device");
    let waiting = Instant::now();
    let routed = tokio::select! {
        () = cancel.cancelled() => Err(CommandOutcome::Cancelled),
        routed = tokio::time::timeout(args.route_timeout, services.routes.wait_for(&key)) => {
            routed.map(|_| ()).map_err(|_| CommandOutcome::NoRoute)
        }
    };
    let report = match routed {
        Ok(()) => {
            let mode = args
                .transport
                .unwrap_or_else(|| configured_path(config, request.route));
            let transport = crate::transport::start(
                mode,
                config.transport.reliable,
                &services,
                &tracker,
                shutdown.child_token(),
            );
            transport.execute(request, &cancel).await
        }
        Err(outcome) => {
            tracing::warn!(%outcome, "no connected device reaches the target");
            CommandReport {
                latency: waiting.elapsed(),
                ..CommandReport::unsent(&request, outcome)
            }
        }
    };
    shutdown.cancel();
    common::drain(&tracker).await;
    Ok(report)
}

async fn cancel_on_signal(cancel: CancellationToken) {
    tokio::select! {
        () = cancel.cancelled() => {}
        signal = common::shutdown_signal() => {
            if let Ok(signal) = signal {
                tracing::info!(signal, "cancelling");
            }
            cancel.cancel();
        }
    }
}

/// The path the configured rollout (mode, cohort; runtime changes and a latched rollback are the
/// running bridge's, not read here) gives the device: shadow mode sends through legacy.
fn configured_path(config: &Config, route: crate::transport::RouteKey) -> TransportMode {
    let routing = effective(&config.rollout.configured, &Persisted::default());
    match routing.path(route) {
        Path::Legacy => TransportMode::Legacy,
        Path::Reliable => TransportMode::Reliable,
    }
}
