//! The binary as an operator runs it: configuration errors name the key and exit 2; `toggle`
//! prints one JSON line and exits 0 only on success; `serve` answers `/healthz` and shuts down
//! cleanly on SIGTERM.

mod server_world;

use std::net::SocketAddr;
use std::process::Stdio;

use server_world::{Answer, AutoDevice, PATIENCE};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

const BIN: &str = env!("CARGO_BIN_EXE_cync-bridge");

/// The binary with a fast, isolated test environment (no `CYNC_*` from the caller).
fn bridge_command(data_dir: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CYNC_")) {
        command.env_remove(key);
    }
    command
        .args(args)
        .env("CYNC_DATA_DIR", data_dir)
        .env("CYNC_SERVER__LISTEN", "127.0.0.1:0")
        .env("CYNC_TELEMETRY__LISTEN", "127.0.0.1:0")
        .env("CYNC_SERVER__SESSION_OPEN_DELAY", "10ms")
        .env("CYNC_SERVER__MESH_INFO_DELAY", "10ms")
        .env("CYNC_TELEMETRY__LOG_FORMAT", "json")
        // These tests are about the device side; a broker on the default port must not see them.
        .env("CYNC_MQTT__ENABLED", "false")
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

async fn config_error(env: &[(&str, &str)], args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut command = bridge_command(dir.path(), args);
    command.envs(env.iter().copied());
    let output = tokio::time::timeout(PATIENCE, command.output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "exit status for {env:?} {args:?}"
    );
    String::from_utf8(output.stderr).unwrap()
}

#[tokio::test]
async fn config_prints_the_effective_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = bridge_command(dir.path(), &["config"]);
    command
        .env("CYNC_MQTT__USERNAME", "homeassistant")
        .env("CYNC_MQTT__PASSWORD", "correct horse battery staple")
        .env("CYNC_MQTT__BASE_TOPIC", "cync-upstairs");
    let output = tokio::time::timeout(PATIENCE, command.output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.contains("correct horse"), "password leaked:\n{text}");
    let printed: toml::Value = toml::from_str(&text).expect("the output is TOML");
    let mqtt = &printed["mqtt"];
    assert_eq!(mqtt["password"].as_str(), Some("<redacted>"));
    assert_eq!(mqtt["username"].as_str(), Some("homeassistant"));
    assert_eq!(
        mqtt["base_topic"].as_str(),
        Some("cync-upstairs"),
        "environment applied"
    );
    assert_eq!(printed["server"]["listen"].as_str(), Some("127.0.0.1:0"));

    let bad = config_error(&[("CYNC_MQTT__URL", "http://broker")], &["config"]).await;
    assert!(bad.contains("mqtt.url"), "{bad}");
}

#[tokio::test]
async fn a_broken_device_file_stops_serve_with_status_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cync_mesh.yaml");
    std::fs::write(&file, "account data: [not, a, map").unwrap();
    let file = file.display().to_string();
    let text = config_error(&[("CYNC_DEVICES__FILE", file.as_str())], &["serve"]).await;
    assert!(text.contains("cync_mesh.yaml"), "{text}");
    let missing = config_error(
        &[("CYNC_DEVICES__FILE", "/nonexistent/devices.yaml")],
        &["serve"],
    )
    .await;
    assert!(missing.contains("/nonexistent/devices.yaml"), "{missing}");
}

#[tokio::test]
async fn configuration_errors_name_the_key_and_exit_with_status_2() {
    let listen = config_error(&[("CYNC_SERVER__LISTEN", "nowhere")], &["serve"]).await;
    assert!(
        listen.contains("server.listen") && listen.contains("CYNC_SERVER__LISTEN"),
        "{listen}"
    );

    let timeout = config_error(
        &[("CYNC_TRANSPORT__COMMAND_TIMEOUT", "abc")],
        &["toggle", "--device", "1", "--on"],
    )
    .await;
    assert!(timeout.contains("transport.command_timeout"), "{timeout}");

    let typo = config_error(&[("CYNC_SERVER__LISTN", "0.0.0.0:1")], &["serve"]).await;
    assert!(typo.contains("server.listn"), "{typo}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[transport]\nmode = \"carrier-pigeon\"\n").unwrap();
    let in_file = config_error(&[], &["serve", "--config", file.to_str().unwrap()]).await;
    assert!(
        in_file.contains("transport.mode") && in_file.contains("bad.toml"),
        "{in_file}"
    );

    let missing = config_error(&[], &["serve", "--config", "/nonexistent/cync.toml"]).await;
    assert!(missing.contains("/nonexistent/cync.toml"), "{missing}");
}

type Lines = tokio::io::Lines<BufReader<ChildStderr>>;

/// Reads JSON log lines from stderr until one has `message`; returns its `field`.
async fn log_field(lines: &mut Lines, message: &str, field: &str) -> String {
    tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if json["message"] == message {
                return json[field].as_str().unwrap().to_owned();
            }
        }
        panic!("stderr ended before {message:?}");
    })
    .await
    .unwrap()
}

/// Keeps draining stderr in the background (so the child never blocks) and collects it.
fn drain(mut lines: Lines) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut all = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push_str(&line);
            all.push('\n');
        }
        all
    })
}

fn stderr_lines(child: &mut Child) -> Lines {
    BufReader::new(child.stderr.take().unwrap()).lines()
}

async fn stdout_of(child: &mut Child) -> String {
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    out
}

#[tokio::test]
async fn toggle_switches_a_device_and_prints_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "toggle",
        "--device",
        "80",
        "--on",
        "--timeout",
        "5",
        "--route-timeout",
        "20",
    ];
    let mut child = bridge_command(dir.path(), &args).spawn().unwrap();
    let mut lines = stderr_lines(&mut child);
    let addr: SocketAddr = log_field(&mut lines, "listening for devices", "addr")
        .await
        .parse()
        .unwrap();
    let _log = drain(lines);
    let mut device = AutoDevice::start(addr, 1, 80, vec![], Answer::Full).await;

    let stdout = tokio::time::timeout(PATIENCE, stdout_of(&mut child))
        .await
        .unwrap();
    let status = child.wait().await.unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stdout: {stdout}");
    let result: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(result["device"], 80);
    assert_eq!(result["outcome"], "success");
    assert!(result["latency_ms"].as_f64().unwrap() >= 0.0);
    let correlation: uuid::Uuid = result["correlation_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(correlation.get_version_num(), 7);
    assert_eq!(status.code(), Some(0));
    let mut seen = Vec::new();
    while let Ok(command) = device.commands.try_recv() {
        seen.push(command);
    }
    assert!(
        seen.contains(&cync_bridge::protocol::Command::Power {
            target: 80,
            on: true
        }),
        "{seen:?}"
    );
}

#[tokio::test]
async fn toggle_without_a_route_says_no_route_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["toggle", "--device", "9", "--off", "--route-timeout", "0.2"];
    let output = bridge_command(dir.path(), &args).output().await.unwrap();
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["outcome"], "no_route");
    assert_eq!(output.status.code(), Some(1));
}

#[tokio::test]
async fn serve_reports_health_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = bridge_command(dir.path(), &["serve"]).spawn().unwrap();
    let mut lines = stderr_lines(&mut child);
    let devices: SocketAddr = log_field(&mut lines, "listening for devices", "addr")
        .await
        .parse()
        .unwrap();
    let telemetry: SocketAddr = log_field(&mut lines, "cync-bridge serving", "telemetry")
        .await
        .parse()
        .unwrap();
    let rest = drain(lines);
    assert_eq!(server_world::http_get(telemetry, "/healthz").await, "ok\n");
    let device = AutoDevice::start(devices, 1, 80, vec![81], Answer::Full).await;
    let mut metrics = String::new();
    for _ in 0..1000 {
        metrics = server_world::http_get(telemetry, "/metrics").await;
        if metrics.contains("tcp_comm_mesh_routes 2") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        metrics.contains("tcp_comm_connected_sessions 1"),
        "{metrics}"
    );
    assert!(metrics.contains("tcp_comm_mesh_routes 2"), "{metrics}");

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let log = rest.await.unwrap();
    assert!(
        tokio::time::timeout(PATIENCE, device.task).await.is_ok(),
        "the device was disconnected"
    );
    assert!(log.contains("\"signal\":\"SIGTERM\""), "{log}");
    assert!(
        log.contains("\"reason\":\"shutdown\""),
        "the session closed visibly: {log}"
    );
    assert!(log.contains("\"message\":\"stopped\""), "{log}");
}
