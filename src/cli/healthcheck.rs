//! `cync-bridge healthcheck`: ask a running bridge's `/healthz` whether it is healthy and exit 0
//! (healthy) or 1 (anything else), printing one line. It is the Docker `HEALTHCHECK` for images
//! without curl, so it follows Docker's contract: status 1 for every failure — including a bad
//! configuration — because Docker reserves status 2.
//!
//! What `/healthz` covers is the bridge's own tasks (see `telemetry::health`); a missing broker
//! is deliberately not "unhealthy", since restarting the bridge cannot fix it.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use super::common::ConfigArgs;
use super::probe::{self, ProbeError};
use crate::config::{self, ConfigFile};

const EXIT_HEALTHY: u8 = 0;
/// Unhealthy, unreachable or misconfigured (Docker's "unhealthy").
const EXIT_UNHEALTHY: u8 = 1;

/// Arguments of `cync-bridge healthcheck`.
#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    #[command(flatten)]
    /// Configuration (for `telemetry.listen`).
    pub config: ConfigArgs,
    /// Address of the telemetry endpoint. Default: `telemetry.listen` from the configuration,
    /// with 0.0.0.0 replaced by 127.0.0.1.
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<SocketAddr>,
    /// Seconds to wait for the answer.
    #[arg(long, value_name = "SECONDS", default_value = "3", value_parser = probe::parse_seconds)]
    pub timeout: Duration,
}

/// Runs `healthcheck`; returns 0 when `/healthz` answers 200, 1 otherwise.
pub fn run(args: &HealthcheckArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let addr = match args.addr {
        Some(addr) => addr,
        None => {
            let file = match &args.config.config {
                Some(path) => ConfigFile::Explicit(path.clone()),
                None => ConfigFile::Default,
            };
            match config::load(&file) {
                Ok(config) => probe::reachable_addr(config.telemetry.listen),
                Err(e) => {
                    writeln!(out, "unhealthy: configuration error: {e}")?;
                    return Ok(EXIT_UNHEALTHY);
                }
            }
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reply = runtime.block_on(probe::http_get(addr, "/healthz", args.timeout));
    let url = format!("http://{addr}/healthz");
    let (line, code) = match reply {
        Ok(reply) if reply.status == 200 => (format!("healthy: {url}"), EXIT_HEALTHY),
        Ok(reply) => (
            format!(
                "unhealthy: {url} answered {}: {}",
                reply.status,
                one_line(&reply.body)
            ),
            EXIT_UNHEALTHY,
        ),
        Err(e @ ProbeError::Connect { .. }) => (
            format!("unhealthy: {e} (is `cync-bridge serve` running with this telemetry.listen?)"),
            EXIT_UNHEALTHY,
        ),
        Err(e) => (format!("unhealthy: {e}"), EXIT_UNHEALTHY),
    };
    writeln!(out, "{line}")?;
    Ok(code)
}

/// The body folded onto one line (the health report lists problems separated by "; ").
fn one_line(body: &str) -> String {
    body.split_whitespace().collect::<Vec<_>>().join(" ")
}
