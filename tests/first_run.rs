//! The first run as a new user has it, with the real binary, a real Mosquitto, the fake cloud
//! and the simulator: `serve` on an empty data dir shows the relay as the kind of device it
//! says it is and every device with a name that says to run `export`; `export` then writes the
//! device file and the running bridge renames, places and retypes everything without a restart
//! and withdraws the placeholders. And the other order: export first, then serve.

mod cloud_world;
mod common;
mod mqtt_world;
mod server_world;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use cloud_world::{FakeCloud, CODE, EMAIL, HOME, PASSWORD};
use cync_bridge::sim::{HomeBuilder, SimConfig, SimHandle, Simulator};
use mqtt_world::{Observer, PATIENCE};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_cync-bridge");

/// The fake cloud's main home as devices: lamp (147) and fan (81) and the dual plug (67) on
/// Wi-Fi, the hall bulb (21) on Bluetooth behind the lamp.
async fn simulate(devices: std::net::SocketAddr) -> SimHandle {
    let home = HomeBuilder::new("Home", 4)
        .wifi(1, 147)
        .bluetooth(2, 21)
        .wifi(3, 67)
        .wifi(4, 81)
        .relays(1, &[2])
        .build()
        .unwrap();
    let sim = Simulator::start(SimConfig::new(3, vec![home]), devices)
        .await
        .unwrap();
    sim.wait_ready(PATIENCE).await.unwrap();
    sim
}

fn command(data: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CYNC_")) {
        command.env_remove(key);
    }
    command
        .args(args)
        .env("CYNC_DATA_DIR", data)
        .env("CYNC_TIMEZONE", "UTC")
        .env("CYNC_SERVER__LISTEN", "127.0.0.1:0")
        .env("CYNC_TELEMETRY__LISTEN", "127.0.0.1:0")
        .env("CYNC_SERVER__SESSION_OPEN_DELAY", "10ms")
        .env("CYNC_SERVER__MESH_INFO_DELAY", "10ms")
        .env("CYNC_TELEMETRY__LOG_FORMAT", "json")
        .env("CYNC_MQTT__BIRTH_DELAY", "200ms")
        .env("CYNC_MQTT__CLEANUP_DELAY", "1s")
        .kill_on_drop(true);
    command
}

/// `serve` against the broker; returns the child and its device address.
async fn serve(data: &Path, broker: u16) -> (Child, std::net::SocketAddr) {
    let mut child = command(data, &["serve"])
        .env("CYNC_MQTT__URL", format!("mqtt://127.0.0.1:{broker}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let json: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if json["message"] == "listening for devices" {
                return json["addr"].as_str().unwrap().parse().unwrap();
            }
        }
        panic!("serve ended before listening");
    })
    .await
    .unwrap();
    // Keep reading, so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

async fn export(data: &Path, cloud: &FakeCloud) {
    let password = data.join("password");
    std::fs::write(&password, PASSWORD).unwrap();
    let mut child = command(data, &["export", "--email", EMAIL, "--password-file"])
        .arg(&password)
        .env("CYNC_CLOUD__API_URL", cloud.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt as _;
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{CODE}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn config_topic(component: &str, object: &str) -> String {
    format!("homeassistant/{component}/cync_bridge/{object}/config")
}

/// Waits for a non-empty discovery config and returns it.
async fn config(observer: &Observer, component: &str, object: &str) -> Value {
    observer
        .wait(&config_topic(component, object), |s| !s.payload.is_empty())
        .await
        .json()
}

/// Each device of the export: cloud name, area and entity kind.
async fn assert_exported_entities(observer: &Observer) {
    let device = |id: u16| format!("cync_{HOME}_{id}");
    let expected = [
        ("light", device(1), "Office Lamp", Some("Office")),
        ("light", device(2), "Hall Bulb", Some("Office")),
        (
            "switch",
            format!("{}_1", device(3)),
            "Porch Plug",
            Some("Porch"),
        ),
        (
            "switch",
            format!("{}_2", device(3)),
            "Porch Plug",
            Some("Porch"),
        ),
        ("fan", device(4), "Cync device 4", None),
        (
            "light",
            format!("cync_{HOME}_group_1"),
            "Office",
            Some("Office"),
        ),
        (
            "light",
            format!("cync_{HOME}_group_3"),
            "Desk",
            Some("Office"),
        ),
        (
            "light",
            format!("cync_{HOME}_group_2"),
            "Porch",
            Some("Porch"),
        ),
    ];
    for (component, object, name, area) in expected {
        let payload = config(observer, component, &object).await;
        assert_eq!(payload["device"]["name"], name, "{object}: {payload}");
        assert_eq!(
            payload["device"]["suggested_area"].as_str(),
            area,
            "{object}: {payload}"
        );
    }
    let lamp = config(observer, "light", &device(1)).await;
    assert!(lamp.to_string().contains("rgb"), "a colour light: {lamp}");
    // The dual plug: one device, one named entity per outlet.
    for (outlet, name) in [(1, "Left Outlet"), (2, "Right Outlet")] {
        let payload = config(observer, "switch", &format!("{}_{outlet}", device(3))).await;
        assert_eq!(payload["name"], name, "{payload}");
        assert_eq!(
            payload["device"]["identifiers"],
            serde_json::json!([device(3)])
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bridge_started_before_the_export_picks_the_export_up_without_a_restart() {
    let Some(broker) = common::Mosquitto::start() else {
        return;
    };
    let cloud = FakeCloud::start().await;
    let data = tempfile::tempdir().unwrap();
    let observer = Observer::start(broker.port, "homeassistant/#").await;
    let (_serve, devices) = serve(data.path(), broker.port).await;
    let sim = simulate(devices).await;

    // No device file: the relays are what they report, the Bluetooth bulb on/off only.
    let lamp = config(&observer, "light", "cync_0_1").await;
    assert_eq!(
        lamp["device"]["name"],
        "Cync 0-1 (run cync-bridge export to name it)"
    );
    assert!(lamp.to_string().contains("brightness"), "{lamp}");
    config(&observer, "fan", "cync_0_4").await;
    let bulb = config(&observer, "switch", "cync_0_2").await;
    assert!(bulb["device"]["name"].as_str().unwrap().contains("export"));

    export(data.path(), &cloud).await;
    assert_exported_entities(&observer).await;
    // The placeholders are withdrawn (an empty retained config removes an entity).
    for (component, object) in [("light", "cync_0_1"), ("switch", "cync_0_2")] {
        observer
            .wait(&config_topic(component, object), |s| s.payload.is_empty())
            .await;
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn export_into_an_empty_data_dir_then_serve_shows_every_device_by_its_cloud_name() {
    let Some(broker) = common::Mosquitto::start() else {
        return;
    };
    let cloud = FakeCloud::start().await;
    let data = tempfile::tempdir().unwrap();
    export(data.path(), &cloud).await;
    let observer = Observer::start(broker.port, "#").await;
    let (_serve, devices) = serve(data.path(), broker.port).await;
    let sim = simulate(devices).await;
    assert_exported_entities(&observer).await;
    // The lamp's state comes from the simulated device under the cloud's home id.
    let state = observer
        .wait(&format!("cync/{HOME}-1"), |s| s.payload.contains("state"))
        .await;
    assert!(state.json()["state"].is_string(), "{}", state.payload);
    // An outlet's command reaches the plug (addressed to the node by default), and both
    // outlets show the plug's state.
    observer
        .publish(&format!("cync/{HOME}-3-1/set"), "ON")
        .await;
    for outlet in [1, 2] {
        observer
            .wait(&format!("cync/{HOME}-3-{outlet}"), |s| {
                s.payload.contains("ON")
            })
            .await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    sim.shutdown().await;
}
