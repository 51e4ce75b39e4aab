//! The Home Assistant add-on in `ha/`: every option in `config.yaml` reaches a real configuration
//! key through `run.sh` (run for real, with the real binary printing the configuration it would
//! serve with), the manifest matches the crate, and `run.sh` passes `bash -n` and shellcheck.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_cync-bridge");

/// Add-on option → the configuration key it sets (as `cync-bridge config` prints it).
const OPTION_KEYS: &[(&str, &str)] = &[
    ("devices_file", "devices.file"),
    ("transport_mode", "transport.mode"),
    ("canary_percent", "rollout.canary_percent"),
    ("log_level", "telemetry.log_filter"),
    ("mqtt_discovery_prefix", "mqtt.discovery_prefix"),
    ("mqtt_base_topic", "mqtt.base_topic"),
    ("mqtt_node_id", "mqtt.node_id"),
    ("color_temp_unit", "mqtt.color_temp_unit"),
    ("timezone", "timezone"),
    ("mqtt_url", "mqtt.url"),
    ("mqtt_username", "mqtt.username"),
    ("mqtt_password", "mqtt.password"),
];

/// What the fake Supervisor answers on /services/mqtt.
const SUPERVISOR_MQTT: &str = r#"{"result":"ok","data":{"host":"core-mosquitto","port":1883,"ssl":false,"protocol":"3.1.1","username":"addons","password":"from-supervisor"}}"#;

fn ha(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("ha")
        .join(file)
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(ha("config.yaml")).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    serde_json::to_value(yaml).unwrap()
}

fn keys(map: &Value) -> BTreeSet<String> {
    map.as_object().unwrap().keys().cloned().collect()
}

/// Whether a tool the add-on needs is installed; absent is a skip, unless CI requires it.
fn tool(name: &str) -> bool {
    if Command::new(name).arg("--version").output().is_ok() {
        return true;
    }
    if std::env::var("CYNC_REQUIRE_ADDON_TOOLS").as_deref() == Ok("1") {
        panic!("{name} is required but not installed");
    }
    eprintln!("SKIPPED: {name} is not installed");
    false
}

/// A fake `curl` that answers like the Supervisor, in a directory to put first on PATH.
fn fake_supervisor(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let curl = bin.join("curl");
    std::fs::write(
        &curl,
        format!("#!/bin/sh\ncat <<'JSON'\n{SUPERVISOR_MQTT}\nJSON\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&curl, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `run.sh config` with `options` as /data/options.json; the working directory is empty,
/// so only the add-on's environment configures the bridge.
fn run_script(options: &Value, token: bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let options_file = dir.path().join("options.json");
    std::fs::write(&options_file, options.to_string()).unwrap();
    let path = format!(
        "{}:{}",
        fake_supervisor(dir.path()).display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CYNC_")) {
        command.env_remove(key);
    }
    command
        .arg(ha("run.sh"))
        .arg("config")
        .current_dir(dir.path())
        .env("PATH", path)
        .env("CYNC_ADDON_OPTIONS", &options_file)
        .env("CYNC_BRIDGE_BIN", BIN)
        .env_remove("TZ");
    if token {
        command.env("SUPERVISOR_TOKEN", "test-token");
    } else {
        command.env_remove("SUPERVISOR_TOKEN");
    }
    let output = command.output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// The configuration `run.sh config` printed, as JSON.
fn printed(run: &Run) -> Value {
    assert_eq!(run.code, 0, "run.sh config failed: {}", run.stderr);
    let table: toml::Table = toml::from_str(&run.stdout).unwrap();
    serde_json::to_value(table).unwrap()
}

fn at<'a>(config: &'a Value, key: &str) -> &'a Value {
    key.split('.').fold(config, |v, k| &v[k])
}

#[test]
fn every_option_has_a_schema_entry_and_a_configuration_key() {
    let manifest = manifest();
    let options = keys(&manifest["options"]);
    assert_eq!(options, keys(&manifest["schema"]), "options vs schema");
    let mapped: BTreeSet<String> = OPTION_KEYS.iter().map(|(o, _)| o.to_string()).collect();
    assert_eq!(
        options, mapped,
        "an option without a mapping (or the reverse)"
    );
}

#[test]
fn the_manifest_matches_the_crate_and_needs_the_mqtt_service() {
    let manifest = manifest();
    assert_eq!(manifest["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(manifest["services"], json!(["mqtt:need"]));
    assert_eq!(manifest["ports"]["23779/tcp"], 23779);
    assert!(manifest["ports"].get("9464/tcp").is_some());
    assert_eq!(
        manifest["watchdog"], "http://[HOST]:[PORT:9464]/healthz",
        "the watchdog polls the telemetry port run.sh configures"
    );
    assert_eq!(
        manifest["ingress"], true,
        "the setup page is in the sidebar"
    );
    assert_eq!(
        manifest["ingress_port"], 9464,
        "ingress reaches the telemetry port, where the setup page is mounted"
    );
    assert_eq!(manifest["ingress_entry"], "setup/");
    let arch: Vec<&str> = manifest["arch"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        arch.contains(&"amd64") && arch.contains(&"aarch64"),
        "{arch:?}"
    );
}

#[test]
fn the_default_options_give_a_valid_configuration_with_the_supervisors_broker() {
    if !tool("jq") {
        return;
    }
    let manifest = manifest();
    let config = printed(&run_script(&manifest["options"], true));
    assert_eq!(config["data_dir"], "/data");
    assert_eq!(config["server"]["listen"], "0.0.0.0:23779");
    assert_eq!(config["telemetry"]["listen"], "0.0.0.0:9464");
    assert_eq!(config["mqtt"]["url"], "mqtt://core-mosquitto:1883");
    assert_eq!(config["mqtt"]["username"], "addons");
    assert_eq!(config["mqtt"]["password"], "<redacted>");
    for (option, key) in OPTION_KEYS {
        // The broker settings come from the Supervisor when mqtt_url is empty.
        if matches!(*option, "mqtt_url" | "mqtt_username" | "mqtt_password") {
            continue;
        }
        assert_eq!(
            at(&config, key),
            &manifest["options"][option],
            "{option} -> {key}"
        );
    }
}

#[test]
fn every_option_set_to_another_value_reaches_its_configuration_key() {
    if !tool("jq") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let devices = dir.path().join("cync_mesh.yaml");
    std::fs::write(&devices, "account data: {}\n").unwrap();
    let options = json!({
        "devices_file": devices.display().to_string(),
        "transport_mode": "legacy",
        "canary_percent": 25.5,
        "log_level": "debug",
        "mqtt_discovery_prefix": "ha-test",
        "mqtt_base_topic": "cync-test",
        "mqtt_node_id": "second_bridge",
        "color_temp_unit": "mired",
        "timezone": "Europe/Berlin",
        "mqtt_url": "mqtts://broker.lan:8883",
        "mqtt_username": "bridge-user",
        "mqtt_password": "bridge-password",
    });
    assert_eq!(keys(&options), keys(&manifest()["options"]));
    let run = run_script(&options, false);
    let config = printed(&run);
    for (option, key) in OPTION_KEYS {
        let expected = if *option == "mqtt_password" {
            json!("<redacted>")
        } else {
            options[option].clone()
        };
        assert_eq!(at(&config, key), &expected, "{option} -> {key}");
    }
    assert!(!run.stdout.contains("bridge-password"));
}

#[test]
fn every_choice_the_schema_offers_is_a_valid_configuration_value() {
    if !tool("jq") {
        return;
    }
    let manifest = manifest();
    for (option, key) in OPTION_KEYS {
        let schema = manifest["schema"][option].as_str().unwrap();
        let Some(choices) = schema
            .strip_prefix("list(")
            .and_then(|s| s.strip_suffix(')'))
        else {
            continue;
        };
        for choice in choices.split('|') {
            let mut options = manifest["options"].clone();
            options[option] = json!(choice);
            let config = printed(&run_script(&options, true));
            assert_eq!(at(&config, key), choice, "{option}={choice}");
        }
    }
}

#[test]
fn without_a_broker_option_or_supervisor_token_the_script_stops_and_says_why() {
    if !tool("jq") {
        return;
    }
    let run = run_script(&manifest()["options"], false);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("SUPERVISOR_TOKEN"), "{}", run.stderr);
}

#[test]
fn run_sh_passes_bash_syntax_check_and_shellcheck() {
    let script = ha("run.sh");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    if !tool("shellcheck") {
        return;
    }
    let lint = Command::new("shellcheck").arg(&script).output().unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stdout)
    );
}

#[test]
fn the_example_automations_are_yaml_automations_using_the_default_topics() {
    let text = std::fs::read_to_string(ha("examples/automations.yaml")).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let automations = serde_json::to_value(yaml).unwrap();
    let list = automations.as_array().unwrap();
    assert!(!list.is_empty());
    for automation in list {
        for field in ["alias", "id", "triggers", "actions"] {
            assert!(automation.get(field).is_some(), "{field}: {automation}");
        }
    }
    assert!(text.contains("topic: cync/bridge/state"));
}
