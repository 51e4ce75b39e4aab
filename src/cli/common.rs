//! What the long-running subcommands (`serve`, `toggle`) share: the `--config` argument, config
//! loading with exit status 2 on a bad value, log set-up, the runtime, signals, and the bounded
//! wait for tasks at shutdown.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio_util::task::TaskTracker;

use crate::config::{self, Config, ConfigFile};
use crate::telemetry::logging;

/// Exit status for an invalid configuration (the message names the key).
pub const EXIT_CONFIG: u8 = 2;

/// How long shutdown waits for sessions to flush and close before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// `--config`, shared by every subcommand that reads the configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Config file (TOML). Default: config/cync-bridge.toml when it exists; environment
    /// variables `CYNC_<SECTION>__<KEY>` override it.
    #[arg(long, value_name = "FILE", env = "CYNC_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Loads the configuration; on error prints it (naming the key) and returns the exit status.
pub fn load_config(args: &ConfigArgs) -> Result<Config, u8> {
    let file = match &args.config {
        Some(path) => ConfigFile::Explicit(path.clone()),
        None => ConfigFile::Default,
    };
    config::load(&file).map_err(|error| {
        eprintln!("cync-bridge: configuration error: {error}");
        EXIT_CONFIG
    })
}

/// Installs the log subscriber from `[telemetry]` and reports config notes that had to wait
/// for it.
pub fn init_logging(config: &Config) -> anyhow::Result<()> {
    logging::init(config.telemetry.log_format, &config.telemetry.log_filter)
        .context("cannot set up logging")?;
    if let Some(reason) = &config.timezone.fallback_reason {
        tracing::warn!(%reason, "using UTC for the device clock (0xC8)");
    }
    tracing::info!(
        rollout_mode = config.rollout.configured.mode.as_str(),
        "command path"
    );
    Ok(())
}

/// The multi-threaded runtime the subcommands run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (docker stop, systemd).
pub async fn shutdown_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot listen for SIGINT").map(|()| "SIGINT"),
            _ = term.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("cannot listen for Ctrl-C")?;
        Ok("Ctrl-C")
    }
}

/// Closes the tracker and waits for its tasks, at most five seconds.
pub async fn drain(tracker: &TaskTracker) {
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = tracker.len(),
            "tasks still running after the shutdown grace period; exiting anyway"
        );
    }
}
