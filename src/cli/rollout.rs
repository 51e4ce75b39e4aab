//! `cync-bridge rollout status|set PCT|mode M|rollback|resume` against the running bridge, through
//! its admin endpoint (the admin token in `data_dir`), and `cync-bridge slo report` from the
//! evidence store alone.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::Method;

use super::common::{self, ConfigArgs};
use super::probe;
use crate::config::Config;
use crate::rollout::admin::{Action, PATH};
use crate::rollout::control::Persisted;
use crate::rollout::ledger::DEFAULT_RETENTION;
use crate::rollout::report;
use crate::rollout::store;
use crate::telemetry::access::client::{admin_request, AdminBody};

/// Refused by the bridge, or the bridge could not be reached.
const EXIT_FAILED: u8 = 1;

/// Arguments of `cync-bridge rollout`.
#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArgs,
    /// Telemetry endpoint of the running bridge. Default: `telemetry.listen`, with 0.0.0.0
    /// replaced by 127.0.0.1.
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<SocketAddr>,
    /// Print the bridge's answer as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    #[allow(missing_docs)]
    pub action: RolloutAction,
}

/// What to do.
#[derive(Debug, clap::Subcommand)]
pub enum RolloutAction {
    /// Mode, effective share, latch, the last evaluation and every SLO's budget.
    Status,
    /// Canary mode at this percentage of devices (0-100, in steps of 0.01).
    Set {
        /// Percentage of devices on the reliable path.
        #[arg(allow_negative_numbers = true)]
        percent: f64,
    },
    /// legacy, shadow, canary or reliable.
    Mode {
        #[allow(missing_docs)]
        mode: String,
    },
    /// Every device to the legacy path now, latched until `resume`.
    Rollback,
    /// Clear a latched rollback: the canary returns to its percentage.
    Resume,
}

/// Runs `rollout`.
pub fn run(args: &RolloutArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let config = match common::load_config(&args.config) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let addr = args
        .addr
        .unwrap_or_else(|| probe::reachable_addr(config.telemetry.listen));
    let (method, body) = match &args.action {
        RolloutAction::Status => (Method::GET, None),
        RolloutAction::Set { percent } => (Method::POST, Some(Action::Set { percent: *percent })),
        RolloutAction::Mode { mode } => (Method::POST, Some(Action::Mode { mode: mode.clone() })),
        RolloutAction::Rollback => (Method::POST, Some(Action::Rollback)),
        RolloutAction::Resume => (Method::POST, Some(Action::Resume)),
    };
    let body = body.map(|action| AdminBody {
        content_type: "application/json",
        bytes: serde_json::to_vec(&action).unwrap_or_default(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reply = runtime.block_on(admin_request(
        addr,
        method,
        PATH,
        &config.data_dir,
        body,
        Duration::from_secs(5),
    ));
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => {
            writeln!(
                out,
                "cync-bridge: {e} (is `cync-bridge serve` running with this telemetry.listen?)"
            )?;
            return Ok(EXIT_FAILED);
        }
    };
    if reply.status != 200 {
        writeln!(out, "refused ({}): {}", reply.status, reply.body.trim())?;
        return Ok(EXIT_FAILED);
    }
    if args.json {
        writeln!(out, "{}", reply.body.trim())?;
        return Ok(0);
    }
    match serde_json::from_str::<serde_json::Value>(&reply.body) {
        Ok(status) => write_summary(out, &status)?,
        Err(_) => writeln!(out, "{}", reply.body.trim())?,
    }
    Ok(0)
}

/// A few lines for people; `--json` has everything.
fn write_summary(out: &mut impl Write, s: &serde_json::Value) -> std::io::Result<()> {
    writeln!(
        out,
        "mode {} · reliable share {} % (canary set to {} %){}",
        s["mode"].as_str().unwrap_or("?"),
        s["effective_percent"],
        s["canary_percent"],
        if s["shadow"].as_bool() == Some(true) {
            " · shadow on"
        } else {
            ""
        }
    )?;
    if let Some(latch) = s["latch"].as_object() {
        writeln!(
            out,
            "rollback latched ({}): {}",
            latch["reason"].as_str().unwrap_or("?"),
            latch["detail"].as_str().unwrap_or("")
        )?;
    }
    if let Some(hold) = s["hold"].as_str() {
        writeln!(out, "automatic rollback holding: {hold}")?;
    }
    if let Some(verdict) = s["evaluation"]["verdict"].as_object() {
        writeln!(
            out,
            "last evaluation: {} ({} failing in a row of {} needed, window {} min)",
            verdict
                .get("verdict")
                .and_then(|v| v.as_str())
                .unwrap_or("?"),
            s["failing"],
            s["consecutive"],
            s["evaluation"]["window_minutes"]
        )?;
    }
    for slo in s["slos"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  {:<16} {:<9} events {:>6}  budget left {:>6.1} %",
            slo["slo"]["name"].as_str().unwrap_or("?"),
            slo["series"].as_str().unwrap_or("?"),
            slo["ratio"]["total"],
            slo["budget_remaining"].as_f64().unwrap_or(0.0) * 100.0
        )?;
    }
    if s["store"]["healthy"].as_bool() == Some(false) {
        writeln!(
            out,
            "evidence store unavailable: {}",
            s["store"]["reason"].as_str().unwrap_or("")
        )?;
    }
    Ok(())
}

/// Arguments of `cync-bridge slo`.
#[derive(Debug, clap::Args)]
pub struct SloArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArgs,
    #[command(subcommand)]
    #[allow(missing_docs)]
    pub action: SloAction,
}

/// What to report.
#[derive(Debug, clap::Subcommand)]
pub enum SloAction {
    /// Per SLO and path: target, actual, events, budget allowed/used/left, burn rates, rollbacks.
    Report {
        /// One window for every SLO (e.g. 30d, 24h); default: each SLO's own window.
        #[arg(long)]
        window: Option<String>,
        /// md or json.
        #[arg(long, default_value = "md")]
        format: ReportFormat,
    },
}

/// `--format`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    /// A Markdown table.
    Md,
    /// The report as JSON.
    Json,
}

/// Runs `slo report`.
pub fn run_slo(args: &SloArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let config = match common::load_config(&args.config) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let SloAction::Report { window, format } = &args.action;
    let window = match window
        .as_deref()
        .map(crate::config::parse_window)
        .transpose()
    {
        Ok(w) => w,
        Err(e) => {
            writeln!(out, "cync-bridge: --window: {e}")?;
            return Ok(common::EXIT_CONFIG);
        }
    };
    let built = match build_report(&config, window) {
        Ok(r) => r,
        Err(e) => {
            writeln!(out, "cync-bridge: {e}")?;
            return Ok(EXIT_FAILED);
        }
    };
    match format {
        ReportFormat::Md => write!(out, "{}", report::markdown(&built))?,
        ReportFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&built)?)?,
    }
    Ok(0)
}

fn build_report(
    config: &Config,
    window: Option<Duration>,
) -> Result<report::Report, store::StoreError> {
    let path = &config.rollout.store_path;
    let ledger = store::read_ledger(path, DEFAULT_RETENTION)?;
    let persisted: Persisted = store::read_control(path)?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Ok(report::build(
        &ledger,
        &persisted,
        &config.rollout.slos,
        config.rollout.slo_min_events,
        window,
        now,
    ))
}
