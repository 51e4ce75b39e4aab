//! `healthcheck` and `doctor` as an operator (or Docker) runs them, against a real `serve`, a
//! real Mosquitto (with and without a login) and closed ports: exit status and the one line per
//! check a person reads.

mod common;
mod server_world;

use std::path::Path;
use std::process::Stdio;

use common::{free_port, Mosquitto};
use server_world::{Answer, AutoDevice, PATIENCE};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_cync-bridge");

/// The ports and broker one test's bridge uses, as the environment every subcommand reads.
struct World {
    dir: tempfile::TempDir,
    device_port: u16,
    telemetry_port: u16,
    env: Vec<(String, String)>,
}

impl World {
    fn new(mqtt_url: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let (device_port, telemetry_port) = (free_port(), free_port());
        let env = [
            ("CYNC_DATA_DIR", dir.path().display().to_string()),
            ("CYNC_SERVER__LISTEN", format!("0.0.0.0:{device_port}")),
            (
                "CYNC_TELEMETRY__LISTEN",
                format!("127.0.0.1:{telemetry_port}"),
            ),
            ("CYNC_SERVER__SESSION_OPEN_DELAY", "10ms".to_owned()),
            ("CYNC_SERVER__MESH_INFO_DELAY", "10ms".to_owned()),
            ("CYNC_TELEMETRY__LOG_FORMAT", "json".to_owned()),
            ("CYNC_MQTT__URL", mqtt_url.to_owned()),
        ];
        World {
            dir,
            device_port,
            telemetry_port,
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    fn set(&mut self, key: &str, value: &str) {
        self.env.push((key.to_owned(), value.to_owned()));
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CYNC_")) {
            command.env_remove(key);
        }
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // No config/cync-bridge.toml from the checkout: only defaults and this environment.
            .current_dir(self.dir.path())
            .kill_on_drop(true)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs a subcommand to completion; returns its exit status and stdout lines.
    async fn run(&self, args: &[&str]) -> (i32, Vec<String>) {
        let output = tokio::time::timeout(PATIENCE, self.command(args).output())
            .await
            .unwrap()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        (
            output.status.code().unwrap(),
            stdout.lines().map(str::to_owned).collect(),
        )
    }

    /// Starts `serve` and returns once it serves telemetry.
    async fn serve(&self) -> Child {
        let mut child = self.command(&["serve"]).spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("cync-bridge serving") {
                    break;
                }
            }
        })
        .await
        .unwrap();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        child
    }

    fn telemetry(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.telemetry_port).into()
    }
}

/// The line of `check` (`"mqtt"`, `"tls"`, …) in doctor's output.
fn line<'a>(lines: &'a [String], check: &str) -> &'a str {
    let prefix = format!(" {check}:");
    lines
        .iter()
        .find(|l| l.get(4..).is_some_and(|rest| rest.starts_with(&prefix)))
        .unwrap_or_else(|| panic!("no {check} line in {lines:#?}"))
}

#[tokio::test]
async fn healthcheck_says_healthy_and_exits_0_while_serve_runs() {
    let world = World::new("mqtt://127.0.0.1:1");
    let _bridge = world.serve().await;
    let (code, lines) = world.run(&["healthcheck"]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(
        lines,
        vec![format!("healthy: http://{}/healthz", world.telemetry())]
    );
}

#[tokio::test]
async fn healthcheck_against_a_closed_port_says_unhealthy_and_exits_1() {
    let world = World::new("mqtt://127.0.0.1:1");
    let (code, lines) = world.run(&["healthcheck", "--timeout", "2"]).await;
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("unhealthy: cannot connect to 127.0.0.1:"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn healthcheck_with_a_bad_configuration_is_unhealthy_not_dockers_reserved_status_2() {
    let mut world = World::new("mqtt://127.0.0.1:1");
    world.set("CYNC_TELEMETRY__LISTEN", "nowhere");
    let (code, lines) = world.run(&["healthcheck"]).await;
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("telemetry.listen"), "{lines:?}");
}

#[tokio::test]
async fn doctor_passes_with_a_running_bridge_a_connected_device_and_a_reachable_broker() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let world = World::new(&format!("mqtt://127.0.0.1:{}", broker.port));
    let _bridge = world.serve().await;
    let device_addr = ([127, 0, 0, 1], world.device_port).into();
    let _device = AutoDevice::start(device_addr, 1, 80, vec![81], Answer::Full).await;
    for _ in 0..1000 {
        let metrics = server_world::http_get(world.telemetry(), "/metrics").await;
        if metrics.contains("tcp_comm_connected_sessions 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let (code, lines) = world.run(&["doctor", "--skip", "dns"]).await;
    assert_eq!(code, 0, "{lines:#?}");
    for check in ["config", "tls", "bridge", "port", "mqtt", "devices"] {
        assert!(line(&lines, check).starts_with("PASS"), "{lines:#?}");
    }
    assert!(line(&lines, "dns").starts_with("SKIP"), "{lines:#?}");
    assert!(line(&lines, "mqtt").contains("accepted a connection anonymously"));
    assert!(line(&lines, "devices").contains("1 Wi-Fi device session(s) connected"));
    assert_eq!(
        lines.last().map(String::as_str),
        Some("doctor: 0 failed, 0 warnings, 6 passed")
    );
}

#[tokio::test]
async fn doctor_names_refused_mqtt_credentials_as_their_own_failure() {
    let Some(broker) = Mosquitto::start_with_login("cync", "right-password") else {
        return;
    };
    let only_mqtt = [
        "doctor", "--skip", "tls", "--skip", "bridge", "--skip", "port", "--skip", "dns", "--skip",
        "devices",
    ];
    let mut world = World::new(&format!("mqtt://127.0.0.1:{}", broker.port));

    let (code, lines) = world.run(&only_mqtt).await;
    assert_eq!(code, 1, "{lines:#?}");
    let anonymous = line(&lines, "mqtt");
    assert!(
        anonymous.starts_with("FAIL") && anonymous.contains("requires a login"),
        "{anonymous}"
    );

    world.set("CYNC_MQTT__USERNAME", "cync");
    world.set("CYNC_MQTT__PASSWORD", "wrong-password");
    let (code, lines) = world.run(&only_mqtt).await;
    assert_eq!(code, 1, "{lines:#?}");
    let refused = line(&lines, "mqtt");
    assert!(
        refused.starts_with("FAIL") && refused.contains("refused the user name or password"),
        "{refused}"
    );
    assert!(refused.contains("CYNC_MQTT__PASSWORD"), "advice: {refused}");
    assert!(
        !refused.contains("wrong-password"),
        "never echo it: {refused}"
    );

    world.set("CYNC_MQTT__PASSWORD", "right-password");
    let (code, lines) = world.run(&only_mqtt).await;
    assert_eq!(code, 0, "{lines:#?}");
    assert!(line(&lines, "mqtt").contains("accepted a connection as \"cync\""));
}

#[tokio::test]
async fn doctor_with_nothing_running_warns_about_the_bridge_and_fails_on_the_broker() {
    let closed = free_port();
    let world = World::new(&format!("mqtt://127.0.0.1:{closed}"));
    let (code, lines) = world
        .run(&["doctor", "--skip", "dns", "--timeout", "2"])
        .await;
    assert_eq!(code, 1, "{lines:#?}");
    assert!(line(&lines, "config").starts_with("PASS"));
    assert!(
        line(&lines, "tls").starts_with("WARN"),
        "generated on first start"
    );
    assert!(line(&lines, "bridge").starts_with("WARN"));
    assert!(line(&lines, "port").contains("the port is free"));
    let mqtt = line(&lines, "mqtt");
    assert!(
        mqtt.starts_with("FAIL") && mqtt.contains("cannot reach broker"),
        "{mqtt}"
    );
    assert!(line(&lines, "devices").starts_with("WARN"));
}

#[tokio::test]
async fn doctor_says_when_another_program_holds_the_device_port() {
    let world = World::new("mqtt://127.0.0.1:1");
    let _old_addon = std::net::TcpListener::bind(("0.0.0.0", world.device_port)).unwrap();
    let (code, lines) = world
        .run(&["doctor", "--skip", "dns", "--skip", "mqtt"])
        .await;
    assert_eq!(code, 1, "{lines:#?}");
    let port = line(&lines, "port");
    assert!(
        port.starts_with("FAIL") && port.contains("only one can own port 23779"),
        "{port}"
    );
}

#[tokio::test]
async fn doctor_reports_an_invalid_configuration_and_stops() {
    let mut world = World::new("mqtt://127.0.0.1:1");
    world.set("CYNC_MQTT__URL", "http://broker");
    let (code, lines) = world.run(&["doctor"]).await;
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("FAIL config:") && lines[0].contains("mqtt.url"),
        "{lines:?}"
    );
}

/// An RSA certificate and key valid from 2001 to 2004.
fn write_expired_pair(dir: &Path) -> (String, String) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509NameBuilder, X509};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "expired.test").unwrap();
    let name = name.build();
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::from_unix(1_000_000_000).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::from_unix(1_100_000_000).unwrap())
        .unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    let (cert_path, key_path) = (dir.join("old-cert.pem"), dir.join("old-key.pem"));
    std::fs::write(&cert_path, cert.build().to_pem().unwrap()).unwrap();
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

#[tokio::test]
async fn doctor_fails_on_an_expired_or_missing_certificate_and_passes_a_generated_one() {
    let only_tls = [
        "doctor", "--skip", "bridge", "--skip", "port", "--skip", "dns", "--skip", "mqtt",
        "--skip", "devices",
    ];
    let mut world = World::new("mqtt://127.0.0.1:1");
    let (cert, key) = write_expired_pair(world.dir.path());
    world.set("CYNC_TLS__CERT", &cert);
    world.set("CYNC_TLS__KEY", &key);
    let (code, lines) = world.run(&only_tls).await;
    assert_eq!(code, 1, "{lines:#?}");
    let expired = line(&lines, "tls");
    assert!(
        expired.starts_with("FAIL") && expired.contains("expired on"),
        "{expired}"
    );

    world.set("CYNC_TLS__CERT", "/nonexistent/cert.pem");
    let (code, lines) = world.run(&only_tls).await;
    assert_eq!(code, 1);
    assert!(line(&lines, "tls").contains("cannot read certificate /nonexistent/cert.pem"));

    // The certificate `serve` generates on first start passes.
    let fresh = World::new("mqtt://127.0.0.1:1");
    drop(fresh.serve().await);
    let (code, lines) = fresh.run(&only_tls).await;
    assert_eq!(code, 0, "{lines:#?}");
    assert!(line(&lines, "tls").starts_with("PASS"), "{lines:#?}");
}

#[tokio::test]
async fn rollout_commands_change_the_running_bridge_and_refuse_bad_values_by_name() {
    let world = World::new("mqtt://127.0.0.1:1");
    let _bridge = world.serve().await;
    let (code, lines) = world.run(&["rollout", "status"]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert!(
        lines[0].starts_with("mode reliable · reliable share 100 %"),
        "{lines:?}"
    );

    let (code, lines) = world.run(&["rollout", "set", "10"]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert!(
        lines[0].starts_with("mode canary · reliable share 10 %"),
        "{lines:?}"
    );
    for (args, named) in [
        (&["rollout", "set", "-1"][..], "rollout.canary_percent"),
        (&["rollout", "set", "101"][..], "rollout.canary_percent"),
        (&["rollout", "mode", "sometimes"][..], "rollout.mode"),
    ] {
        let (code, lines) = world.run(args).await;
        assert_eq!(code, 1, "{args:?}: {lines:?}");
        assert!(
            lines[0].starts_with("refused (400): ") && lines[0].contains(named),
            "{lines:?}"
        );
    }

    let (code, lines) = world.run(&["rollout", "rollback"]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert!(lines[0].contains("reliable share 0 %"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("rollback latched (manual)")),
        "{lines:?}"
    );
    let (code, lines) = world.run(&["rollout", "resume"]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert!(lines[0].contains("reliable share 10 %"), "{lines:?}");
    let (code, lines) = world.run(&["rollout", "resume"]).await;
    assert_eq!(code, 1);
    assert!(lines[0].contains("nothing to resume"), "{lines:?}");

    let (code, lines) = world.run(&["rollout", "--json", "status"]).await;
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&lines.join("\n")).unwrap();
    assert_eq!(status["mode"], "canary");
    assert_eq!(status["store"]["healthy"], true);
}

#[tokio::test]
async fn the_programmes_canary_variable_starts_a_canary_and_slo_report_reads_the_store() {
    let mut world = World::new("mqtt://127.0.0.1:1");
    world.set("CANARY_PERCENTAGE", "5");
    let bridge = world.serve().await;
    let (code, lines) = world.run(&["rollout", "status"]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert!(
        lines[0].starts_with("mode canary · reliable share 5 %"),
        "{lines:?}"
    );
    drop(bridge);

    let (code, lines) = world.run(&["slo", "report", "--format", "json"]).await;
    assert_eq!(code, 0, "{lines:?}");
    let report: serde_json::Value = serde_json::from_str(&lines.join("\n")).unwrap();
    let slos = report["slos"].as_array().unwrap();
    assert_eq!(slos.len(), 10, "five SLOs for reliable and legacy");
    assert!(
        slos.iter().all(|s| s["compliant"].is_null()),
        "no commands: insufficient data"
    );
    let (code, lines) = world.run(&["slo", "report"]).await;
    assert_eq!(code, 0);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("| command_success | reliable | 30d |")),
        "{lines:?}"
    );
    let (code, _) = world.run(&["slo", "report", "--window", "36d"]).await;
    assert_eq!(code, 2, "a window the evidence cannot cover");
}
