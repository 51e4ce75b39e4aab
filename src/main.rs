//! The `cync-bridge` binary: one executable, one subcommand per tool, all sharing the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cync_bridge::cli;

/// Local bridge between GE Cync devices and Home Assistant.
#[derive(Debug, Parser)]
#[command(name = "cync-bridge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the effective configuration (defaults, file, environment) with secrets redacted.
    Config(cli::config::ConfigCmdArgs),
    /// Bridge + a simulated home in one command; starts a built-in MQTT broker when none is
    /// reachable, and prints what to subscribe to and a command that switches a light.
    Demo(cli::demo::DemoArgs),
    /// Split capture files into packets and print them as JSON lines.
    Decode(cli::decode::DecodeArgs),
    /// Log in to the Cync account (email, password, emailed code) and write the device file
    /// (names, rooms, device types) into data_dir, where `serve` finds it.
    Export(cli::export::ExportArgs),
    /// Check configuration, TLS certificate, device port, DNS redirection, MQTT broker and
    /// connected devices; one PASS/WARN/FAIL line each, exit 1 if any fails.
    Doctor(cli::doctor::DoctorArgs),
    /// Ask a running bridge's /healthz; exit 0 when healthy, 1 otherwise (Docker HEALTHCHECK).
    Healthcheck(cli::healthcheck::HealthcheckArgs),
    /// Canary, shadow and rollback of the running bridge: status, set PCT, mode M, rollback,
    /// resume (through its admin endpoint).
    Rollout(cli::rollout::RolloutArgs),
    /// SLO report from the rollout evidence store: targets, budgets, burn rates, rollbacks.
    Slo(cli::rollout::SloArgs),
    /// Run the bridge: the device listener (TLS, port 23779) and /metrics + /healthz.
    Serve(cli::serve::ServeArgs),
    /// Switch one device on or off through this process's own listener (stop `serve` first)
    /// and print the outcome as one JSON line.
    Toggle(cli::toggle::ToggleArgs),
    /// Run simulated Cync devices (with optional chaos) against a bridge until interrupted.
    Sim(Box<cli::sim::SimArgs>),
}

fn main() -> ExitCode {
    let args = Cli::parse();
    let result = match args.command {
        Command::Config(a) => cli::config::run(&a, &mut std::io::stdout()),
        Command::Demo(a) => cli::demo::run(&a, &mut std::io::stdout()),
        Command::Decode(a) => cli::decode::run(&a, &mut std::io::stdout().lock()),
        Command::Export(a) => cli::export::run(&a, &mut std::io::stdout()),
        Command::Doctor(a) => cli::doctor::run(&a, &mut std::io::stdout()),
        Command::Healthcheck(a) => cli::healthcheck::run(&a, &mut std::io::stdout()),
        Command::Rollout(a) => cli::rollout::run(&a, &mut std::io::stdout()),
        Command::Slo(a) => cli::rollout::run_slo(&a, &mut std::io::stdout()),
        Command::Serve(a) => cli::serve::run(&a),
        Command::Toggle(a) => cli::toggle::run(&a, &mut std::io::stdout()),
        Command::Sim(a) => cli::sim::run(&a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // `cync-bridge decode … | head` closes the pipe early: that is not a failure.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cync-bridge: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        let io_kind = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| {
                cause
                    .downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
            });
        io_kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}
