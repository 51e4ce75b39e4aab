//! `cync-bridge demo` as a new user runs it: no broker installed, one command, then the printed
//! `mosquitto_sub` shows discovery and state and the printed `mosquitto_pub` switches the light.

mod common;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_cync-bridge");
const PATIENCE: Duration = Duration::from_secs(60);

fn have(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The printed command line starting with `tool`, run by a shell exactly as a user would paste it.
fn shell(line: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(line).kill_on_drop(true);
    c
}

/// `demo` with no `CYNC_` settings but its own: a data dir, an MQTT port where no broker
/// listens (so it must bring its own), free ports for the device listener and telemetry.
fn spawn_demo(data_dir: &std::path::Path, mqtt_port: u16) -> tokio::process::Child {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CYNC_")) {
        command.env_remove(key);
    }
    command
        .arg("demo")
        .env("CYNC_DATA_DIR", data_dir)
        .env("CYNC_MQTT__URL", format!("mqtt://127.0.0.1:{mqtt_port}"))
        .env(
            "CYNC_SERVER__LISTEN",
            format!("127.0.0.1:{}", common::free_port()),
        )
        .env("CYNC_TELEMETRY__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The `mosquitto_sub` and `mosquitto_pub` lines the demo prints, in that order.
async fn printed_commands(demo: &mut tokio::process::Child) -> (String, String) {
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let (mut sub, mut publish) = (None, None);
    tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let line = line.trim().to_owned();
            if line.starts_with("mosquitto_sub") {
                sub = Some(line);
            } else if line.starts_with("mosquitto_pub") {
                publish = Some(line);
                break;
            }
        }
    })
    .await
    .expect("the demo printed its instructions");
    (
        sub.expect("a mosquitto_sub line"),
        publish.expect("a mosquitto_pub line"),
    )
}

/// Reads `seen` until a line passes `done` (given the count of discovery configs so far).
async fn watch_until(
    seen: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    done: impl Fn(&str, usize) -> bool,
) -> bool {
    let mut discovery = 0;
    while let Some(line) = seen.next_line().await.unwrap() {
        if line.starts_with("homeassistant/") && line.contains("/config {") {
            discovery += 1;
        }
        if done(&line, discovery) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_brings_up_a_simulated_home_whose_printed_commands_work() {
    if !have("mosquitto_sub") {
        if std::env::var("CYNC_REQUIRE_MOSQUITTO").as_deref() == Ok("1") {
            panic!("mosquitto-clients are required but not installed");
        }
        eprintln!("SKIPPED: mosquitto_sub/mosquitto_pub are not installed (mosquitto-clients)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mqtt_port = common::free_port();
    let mut demo = spawn_demo(dir.path(), mqtt_port);
    let (sub, publish) = printed_commands(&mut demo).await;
    assert!(sub.contains(&mqtt_port.to_string()), "{sub}");

    // The printed subscription shows discovery and the lamp's state (retained).
    let topic = publish
        .split('\'')
        .nth(1)
        .expect("the pub command quotes its topic")
        .trim_end_matches("/set")
        .to_owned();
    let lamp = |line: &str, state: &str| {
        line.starts_with(&format!("{topic} ")) && line.contains(&format!(r#""state":"{state}""#))
    };
    let mut watch = shell(&format!("{sub} -W 60"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = BufReader::new(watch.stdout.take().unwrap()).lines();
    // The lamp's ON state and at least seven discovery configs, in whichever order they come.
    let lamp_on = std::sync::atomic::AtomicBool::new(false);
    let ready = tokio::time::timeout(
        PATIENCE,
        watch_until(&mut seen, |line, discovery| {
            if lamp(line, "ON") {
                lamp_on.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            lamp_on.load(std::sync::atomic::Ordering::Relaxed) && discovery >= 7
        }),
    )
    .await
    .expect("discovery and the lamp's state arrived");
    assert!(ready);

    // The printed publish switches the lamp; its confirmed state comes back off.
    let status = shell(&publish).status().await.unwrap();
    assert!(status.success(), "{publish}");
    let switched = tokio::time::timeout(PATIENCE, watch_until(&mut seen, |l, _| lamp(l, "OFF")))
        .await
        .expect("the lamp's state changed");
    assert!(switched);
    let _ = watch.start_kill();
    let _ = demo.start_kill();
}
