//! The world without Docker: a private Mosquitto process (`common::Mosquitto`), the locally built
//! `cync-bridge serve` on loopback port 0 (addresses read back from its log) and `cync-bridge
//! sim` against it — the same binary, settings and simulated home the containers get.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

use super::{bridge_env, sim_args, PATIENCE};
use crate::common::Mosquitto;

const BIN: &str = env!("CARGO_BIN_EXE_cync-bridge");

pub struct LocalWorld {
    pub telemetry: SocketAddr,
    pub broker: SocketAddr,
    simulator: Child,
    bridge: Child,
    log: Arc<Mutex<String>>,
    _mosquitto: Mosquitto,
    _data: tempfile::TempDir,
}

/// The binary with none of the caller's `CYNC_*` settings, killed if the test ends early.
fn command(args: &[String]) -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CYNC_")) {
        command.env_remove(key);
    }
    command
        .args(args)
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

impl LocalWorld {
    /// `None` when mosquitto is not installed (and `CYNC_REQUIRE_MOSQUITTO` does not insist).
    pub async fn start() -> Option<LocalWorld> {
        let mosquitto = Mosquitto::start()?;
        let broker = SocketAddr::from(([127, 0, 0, 1], mosquitto.port));
        let data = tempfile::tempdir().unwrap();

        let mut bridge = command(&["serve".to_owned()])
            .env("CYNC_DATA_DIR", data.path())
            .env("CYNC_SERVER__LISTEN", "127.0.0.1:0")
            .env("CYNC_TELEMETRY__LISTEN", "127.0.0.1:0")
            .envs(bridge_env(&format!("mqtt://{broker}")))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(bridge.stderr.take().unwrap()).lines();
        let devices = log_field(&mut lines, &log, "listening for devices", "addr").await;
        let telemetry = log_field(&mut lines, &log, "cync-bridge serving", "telemetry").await;
        drain(lines, Arc::clone(&log));

        let simulator = command(&sim_args(&devices.to_string()))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Some(LocalWorld {
            telemetry,
            broker,
            simulator,
            bridge,
            log,
            _mosquitto: mosquitto,
            _data: data,
        })
    }

    /// SIGTERM, as `docker stop` sends, and the exit status.
    pub async fn stop_bridge(&mut self) -> i64 {
        let pid = self.bridge.id().expect("the bridge is running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let status = tokio::time::timeout(PATIENCE, self.bridge.wait())
            .await
            .expect("the bridge exits after SIGTERM")
            .unwrap();
        // A signal death has no code; -1 never equals the 0 a clean stop gives.
        status.code().map_or(-1, i64::from)
    }

    pub fn bridge_log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Keeps the simulator referenced (it is killed on drop).
    pub fn simulator_pid(&self) -> Option<u32> {
        self.simulator.id()
    }
}

type Lines = tokio::io::Lines<BufReader<ChildStderr>>;

/// Reads JSON log lines until one whose message is `message`; its `field` as an address.
async fn log_field(
    lines: &mut Lines,
    log: &Mutex<String>,
    message: &str,
    field: &str,
) -> SocketAddr {
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if json["message"] == message {
                return json[field].as_str().map(str::to_owned);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(addr)) => addr
            .parse()
            .unwrap_or_else(|e| panic!("{field} of {message:?}: {addr}: {e}")),
        _ => panic!(
            "the bridge never logged {message:?}:\n{}",
            log.lock().unwrap()
        ),
    }
}

/// Keeps reading the bridge's stderr (so it never blocks on a full pipe), collecting it.
fn drain(mut lines: Lines, log: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = log.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
}
