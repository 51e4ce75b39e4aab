//! `cync-bridge doctor`: walk the chain a device command travels — configuration, TLS
//! certificate, device port, DNS redirection, MQTT broker, connected devices — and print one
//! PASS / WARN / FAIL line per check with the fix. Exits 1 when any check fails.
//!
//! Checks run against the same configuration `serve` would load, and probe a bridge that may or
//! may not be running: with none running, "cannot tell yet" is a WARN, never a FAIL. The DNS
//! check's view of the network is injectable ([`NetworkView`]) so tests can cover every answer.

pub(crate) mod checks;
pub mod network;

use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::common::ConfigArgs;
use super::probe;
use crate::config::{self, Config, ConfigFile, DEFAULT_CONFIG_FILE};
pub use network::{dns_findings, NetworkView, SystemNetwork, CLOUD_HOSTS};

/// Outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Works.
    Pass,
    /// Works, or cannot be known yet, but deserves attention.
    Warn,
    /// Broken: devices or Home Assistant will not work until it is fixed.
    Fail,
    /// Not run (`--skip`).
    Skip,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        })
    }
}

/// One printed line: what was checked, what was found, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Outcome.
    pub status: Status,
    /// Which check (`mqtt`, `dns cm.gelighting.com`, …).
    pub check: String,
    /// What was found.
    pub message: String,
    /// The fix, for anything but PASS.
    pub advice: Option<String>,
}

impl Finding {
    /// A finding without advice.
    pub fn new(status: Status, check: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            status,
            check: check.into(),
            message: message.into(),
            advice: None,
        }
    }

    /// Adds the fix.
    pub fn advice(mut self, advice: impl Into<String>) -> Self {
        self.advice = Some(advice.into());
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.check, self.message)?;
        match &self.advice {
            Some(advice) => write!(f, " -> fix: {advice}"),
            None => Ok(()),
        }
    }
}

/// Checks that `--skip` can leave out (the configuration check cannot: everything needs it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckName {
    /// The device TLS certificate.
    Tls,
    /// A running bridge's `/healthz`.
    Bridge,
    /// The device port.
    Port,
    /// DNS redirection of the cloud names.
    Dns,
    /// The MQTT broker and credentials.
    Mqtt,
    /// Devices connected to the running bridge.
    Devices,
}

/// Arguments of `cync-bridge doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    /// Configuration.
    pub config: ConfigArgs,
    /// The address devices should reach the bridge at, when it is not an address of this host
    /// (Docker bridge networking, NAT). Default: any address of this host.
    #[arg(long, value_name = "IP")]
    pub expect_ip: Option<IpAddr>,
    /// Leave a check out (repeatable), e.g. `--skip dns` when DNS is not set up yet.
    #[arg(long, value_enum, value_name = "CHECK")]
    pub skip: Vec<CheckName>,
    /// Seconds each network check may take.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = probe::parse_seconds)]
    pub timeout: Duration,
}

/// How [`diagnose`] runs: what to skip, how long to wait, and the network view for DNS.
pub struct Options {
    /// The DNS check's view of the network.
    pub network: Arc<dyn NetworkView>,
    /// See [`DoctorArgs::expect_ip`].
    pub expect_ip: Option<IpAddr>,
    /// Checks to leave out.
    pub skip: Vec<CheckName>,
    /// Deadline of each network check.
    pub timeout: Duration,
}

/// Runs `doctor`; returns 1 when any check failed, else 0.
pub fn run(args: &DoctorArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let file = match &args.config.config {
        Some(path) => ConfigFile::Explicit(path.clone()),
        None => ConfigFile::Default,
    };
    let config = match config::load(&file) {
        Ok(config) => {
            writeln!(
                out,
                "{}",
                Finding::new(Status::Pass, "config", format!("valid ({})", source(&file)))
            )?;
            config
        }
        Err(e) => {
            let finding = Finding::new(Status::Fail, "config", e.to_string()).advice(
                "fix the named key (config/cync-bridge.toml documents each one); the other \
                 checks need a valid configuration",
            );
            writeln!(out, "{finding}")?;
            return Ok(1);
        }
    };
    let options = Options {
        network: Arc::new(SystemNetwork),
        expect_ip: args.expect_ip,
        skip: args.skip.clone(),
        timeout: args.timeout,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let findings = runtime.block_on(diagnose(&config, &options, out))?;
    // A resolver stuck past its deadline must not hold the exit.
    runtime.shutdown_background();
    let count = |s| findings.iter().filter(|f| f.status == s).count();
    let failed = count(Status::Fail);
    writeln!(
        out,
        "doctor: {failed} failed, {} warnings, {} passed",
        count(Status::Warn),
        count(Status::Pass) + 1
    )?;
    Ok(u8::from(failed > 0))
}

fn source(file: &ConfigFile) -> String {
    match file {
        ConfigFile::Explicit(path) => format!("file {}", path.display()),
        _ if Path::new(DEFAULT_CONFIG_FILE).exists() => format!("file {DEFAULT_CONFIG_FILE}"),
        _ => "built-in defaults and environment".to_owned(),
    }
}

/// Runs every check not skipped, printing each finding to `out` as soon as it is known.
pub async fn diagnose(
    config: &Config,
    options: &Options,
    out: &mut impl Write,
) -> anyhow::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let mut report = |batch: Vec<Finding>, out: &mut dyn Write| -> anyhow::Result<()> {
        for finding in batch {
            writeln!(out, "{finding}")?;
            findings.push(finding);
        }
        Ok(())
    };
    let wants = |check: CheckName| !options.skip.contains(&check);
    let skipped = |check: &str| vec![Finding::new(Status::Skip, check, "skipped (--skip)")];
    let timeout = options.timeout;
    let telemetry = probe::reachable_addr(config.telemetry.listen);

    report(
        if wants(CheckName::Tls) {
            vec![checks::tls(config)]
        } else {
            skipped("tls")
        },
        out,
    )?;
    let running = if wants(CheckName::Bridge) {
        let (finding, running) = checks::bridge(telemetry, timeout).await;
        report(vec![finding], out)?;
        running
    } else {
        report(skipped("bridge"), out)?;
        probe::http_get(telemetry, "/healthz", timeout)
            .await
            .is_ok()
    };
    let port = if wants(CheckName::Port) {
        vec![checks::port(config, running, timeout).await]
    } else {
        skipped("port")
    };
    report(port, out)?;
    let dns = if wants(CheckName::Dns) {
        dns_with_deadline(options).await
    } else {
        skipped("dns")
    };
    report(dns, out)?;
    let mqtt = if wants(CheckName::Mqtt) {
        vec![checks::mqtt(&config.mqtt, timeout).await]
    } else {
        skipped("mqtt")
    };
    report(mqtt, out)?;
    let devices = if wants(CheckName::Devices) {
        vec![checks::devices(telemetry, running, timeout).await]
    } else {
        skipped("devices")
    };
    report(devices, out)?;
    Ok(findings)
}

/// The system resolver blocks; run it off the runtime and give up after the deadline.
async fn dns_with_deadline(options: &Options) -> Vec<Finding> {
    let network = Arc::clone(&options.network);
    let expect = options.expect_ip;
    let lookup = tokio::task::spawn_blocking(move || dns_findings(network.as_ref(), expect));
    match tokio::time::timeout(options.timeout * 3, lookup).await {
        Ok(Ok(findings)) => findings,
        _ => vec![Finding::new(
            Status::Fail,
            "dns",
            format!(
                "resolving the cloud names took longer than {:?}",
                options.timeout * 3
            ),
        )
        .advice("check this host's DNS server (/etc/resolv.conf)")],
    }
}
