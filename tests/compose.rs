//! docker-compose.yml and the Dockerfiles as a user meets them: docker-compose accepts the file
//! and it validates against the compose specification; every image can be swapped through the
//! environment; every file the stack mounts exists; the services find each other under the names
//! the configs use; and the image CI tests has the runtime contract of the image users build.
//!
//! `docker-compose` and `check-jsonschema` are optional locally (the test says `SKIPPED`);
//! `CYNC_REQUIRE_DOCKER=1` (CI) makes their absence a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const REQUIRE_ENV: &str = "CYNC_REQUIRE_DOCKER";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `Some(command)` when `program` runs (`--version`); else `None` after a skip line, or a panic
/// when `CYNC_REQUIRE_DOCKER=1`.
fn tool(program: &str) -> Option<Command> {
    let runs = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        let mut command = Command::new(program);
        command.current_dir(root());
        // The file's own defaults, not whatever the caller's shell overrides.
        for key in [
            "CYNC_BRIDGE_IMAGE",
            "MOSQUITTO_IMAGE",
            "PROMETHEUS_IMAGE",
            "GRAFANA_IMAGE",
            "CYNC_MQTT__URL",
            "COMPOSE_FILE",
            "COMPOSE_PROFILES",
        ] {
            command.env_remove(key);
        }
        return Some(command);
    }
    if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
        panic!("{REQUIRE_ENV}=1 but {program} does not run");
    }
    eprintln!("SKIPPED: {program} is not installed; set {REQUIRE_ENV}=1 to fail instead");
    None
}

fn run(mut command: Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).unwrap()
}

fn compose_file() -> Value {
    yaml(&std::fs::read_to_string(root().join("docker-compose.yml")).unwrap())
}

#[test]
fn docker_compose_accepts_the_file_and_it_follows_the_compose_spec() {
    if let Some(mut compose) = tool("docker-compose") {
        compose.args(["-f", "docker-compose.yml", "config", "-q"]);
        run(compose);
    }
    if let Some(mut schema) = tool("check-jsonschema") {
        schema.args([
            "--builtin-schema",
            "vendor.compose-spec",
            "docker-compose.yml",
        ]);
        run(schema);
    }
}

#[test]
fn every_image_of_the_stack_can_be_replaced_from_the_environment() {
    let Some(mut compose) = tool("docker-compose") else {
        return;
    };
    compose
        .args(["-f", "docker-compose.yml", "--profile", "demo", "config"])
        .env("CYNC_BRIDGE_IMAGE", "cync-bridge:local")
        .env("MOSQUITTO_IMAGE", "eclipse-mosquitto:local")
        .env("PROMETHEUS_IMAGE", "prometheus:local")
        .env("GRAFANA_IMAGE", "grafana:local");
    let config = yaml(&run(compose));
    let services = &config["services"];
    for (service, image) in [
        ("cync-bridge", "cync-bridge:local"),
        ("simulator", "cync-bridge:local"),
        ("mosquitto", "eclipse-mosquitto:local"),
        ("prometheus", "prometheus:local"),
        ("grafana", "grafana:local"),
    ] {
        assert_eq!(services[service]["image"], image, "{service}");
    }
}

#[test]
fn without_overrides_the_stack_runs_the_public_images_and_builds_the_bridge() {
    let Some(mut compose) = tool("docker-compose") else {
        return;
    };
    compose.args(["-f", "docker-compose.yml", "config"]);
    let config = yaml(&run(compose));
    let services = &config["services"];
    assert_eq!(services["mosquitto"]["image"], "eclipse-mosquitto:2");
    assert_eq!(services["cync-bridge"]["image"], "cync-bridge:latest");
    let env = &services["cync-bridge"]["environment"];
    assert_eq!(env["CYNC_MQTT__URL"], "mqtt://mosquitto:1883");
    assert_eq!(env["CYNC_TELEMETRY__LISTEN"], "0.0.0.0:9464");
    let build = &services["cync-bridge"]["build"];
    assert_eq!(
        Path::new(build["context"].as_str().unwrap()),
        root().as_path(),
        "{build}"
    );
}

/// `service → "source:target[:mode]"` bind mounts of the file as written (relative sources).
fn bind_sources(compose: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, service) in compose["services"].as_object().unwrap() {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let spec = volume.as_str().unwrap();
            if spec.starts_with("./") {
                let source = spec.split(':').next().unwrap();
                out.push((name.clone(), source.to_owned()));
            }
        }
    }
    out
}

#[test]
fn every_file_the_stack_mounts_is_in_the_repository() {
    let compose = compose_file();
    let sources = bind_sources(&compose);
    for expected in [
        "./config/mosquitto/mosquitto.conf",
        "./config/prometheus",
        "./config/grafana/provisioning",
        "./config/grafana/dashboards",
    ] {
        assert!(
            sources.iter().any(|(_, s)| s == expected),
            "{expected} is not mounted: {sources:?}"
        );
    }
    for (service, source) in &sources {
        assert!(
            root().join(source).exists(),
            "{service} mounts {source}, which does not exist"
        );
    }
}

#[test]
fn services_find_each_other_under_the_names_the_configs_use() {
    let compose = compose_file();
    let services = &compose["services"];
    let read = |p: &str| std::fs::read_to_string(root().join(p)).unwrap();

    // Prometheus scrapes the bridge's telemetry port by service name.
    let prometheus = yaml(&read("config/prometheus/prometheus.yml"));
    let targets = &prometheus["scrape_configs"][0]["static_configs"][0]["targets"];
    assert_eq!(targets[0], "cync-bridge:9464");
    assert!(services["cync-bridge"].is_object());
    // Grafana's data source is the prometheus service.
    let datasource = yaml(&read(
        "config/grafana/provisioning/datasources/prometheus.yml",
    ));
    assert_eq!(
        datasource["datasources"][0]["url"],
        "http://prometheus:9090"
    );
    assert!(services["prometheus"].is_object());
    // Grafana loads dashboards from where the file mounts them.
    let provider = yaml(&read(
        "config/grafana/provisioning/dashboards/cync-bridge.yml",
    ));
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let mounts: Vec<&str> = services["grafana"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        mounts.contains(&format!("./config/grafana/dashboards:{path}:ro").as_str()),
        "{mounts:?}"
    );
    // The demo simulator dials the bridge service on the device port it publishes.
    let command: Vec<&str> = services["simulator"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command[..3], ["sim", "--bridge", "cync-bridge:23779"]);
    assert_eq!(services["simulator"]["profiles"][0], "demo");
    assert!(services["cync-bridge"]["ports"]
        .as_array()
        .unwrap()
        .contains(&Value::from("23779:23779")));
}

/// The instructions after the runtime-contract marker, comments and blank lines dropped.
fn runtime_contract(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    let (_, contract) = text
        .split_once("# --- runtime contract")
        .unwrap_or_else(|| panic!("{path} has no runtime-contract marker"));
    contract
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_image_ci_tests_has_the_runtime_contract_of_the_image_users_build() {
    let users = runtime_contract("Dockerfile");
    let tested = runtime_contract("docker/scratch.Dockerfile");
    assert_eq!(tested, users);
    for needed in [
        "USER 10001:10001",
        "VOLUME [\"/data\"]",
        "EXPOSE 23779 9464",
        "CMD [\"/usr/local/bin/cync-bridge\", \"healthcheck\"]",
        "ENTRYPOINT [\"/usr/local/bin/cync-bridge\"]",
        "CMD [\"serve\"]",
    ] {
        assert!(users.iter().any(|l| l == needed), "{needed}: {users:?}");
    }
}
