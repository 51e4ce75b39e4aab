//! `cync-bridge sim` as a user runs it: flags over a scenario file, a run against a server that
//! ends with Ctrl-C, and a non-zero exit when the bridge cannot be reached.
//!
//! These run the real binary in real time (a few seconds); ports are 127.0.0.1:0.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use common::server::{ServerOptions, TestServer};
use cync_bridge::cli::sim::{scenario_from, SimArgs};
use cync_bridge::sim::Partition;

const BIN: &str = env!("CARGO_BIN_EXE_cync-bridge");

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SimArgs,
}

fn args(list: &[&str]) -> SimArgs {
    let mut all = vec!["sim"];
    all.extend_from_slice(list);
    Cli::parse_from(all).args
}

#[test]
fn flags_override_the_scenario_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.toml");
    std::fs::write(
        &path,
        "seed = 5\n[generate]\nwifi_devices = 3\n[chaos.to_bridge]\nloss = 0.1\nduplicate = 0.2\n",
    )
    .unwrap();
    let scenario = scenario_from(&args(&[
        "--bridge",
        "127.0.0.1:1",
        "--scenario",
        path.to_str().unwrap(),
        "--chaos-loss",
        "0.3",
        "--chaos-direction",
        "both",
        "--chaos-partition",
        "0.01",
        "--chaos-partition-kind",
        "fin",
        "--mesh-per-device",
        "4",
    ]))
    .unwrap();
    assert_eq!(scenario.seed, Some(5));
    assert_eq!(scenario.generate.wifi_devices, 3);
    assert_eq!(scenario.generate.mesh_per_device, 4);
    assert_eq!(scenario.chaos.to_bridge.loss, 0.3, "flag beats file");
    assert_eq!(scenario.chaos.to_bridge.duplicate, 0.2, "file kept");
    assert_eq!(
        scenario.chaos.from_bridge.loss, 0.3,
        "--chaos-direction both"
    );
    assert_eq!(scenario.chaos.link.partition_kind, Partition::Fin);
    let config = scenario.into_config().unwrap();
    assert_eq!(config.homes[0].devices.len(), 3 * 5);
}

/// Waits for a child with a deadline, killing it if it overstays.
fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("cync-bridge sim did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_unreachable_bridge_makes_sim_exit_with_status_2() {
    // A port that was just free: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .args(["sim", "--bridge", &format!("127.0.0.1:{port}")])
        .args([
            "--wifi-devices",
            "2",
            "--seed",
            "1",
            "--connect-deadline-secs",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("cannot reach the bridge"), "{err}");
}

#[tokio::test]
async fn sim_runs_devices_against_a_bridge_until_interrupted() {
    let server = TestServer::start(ServerOptions::default()).await;
    let mut child = Command::new(BIN)
        .args(["sim", "--bridge", &server.addr().to_string()])
        .args([
            "--wifi-devices",
            "3",
            "--mesh-per-device",
            "2",
            "--seed",
            "9",
        ])
        .args(["--chaos-duplicate", "0.1", "--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for n in 0..3 {
        let conn = server.connection(n, Duration::from_secs(20)).await;
        assert!(conn.wait_count(1, Duration::from_secs(20)).await, "hello");
    }
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = wait_exit(&mut child, Duration::from_secs(20));
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        (status, err)
    })
    .await
    .unwrap();
    assert_eq!(status.0.code(), Some(0), "{}", status.1);
    assert!(status.1.contains("simulator started"), "{}", status.1);
    let t = server.totals();
    assert_eq!((t.junk_events, t.decode_errors, t.frame_errors), (0, 0, 0));
    server.shutdown().await;
}
