//! The checks of `doctor` other than DNS, one function each, each returning one [`Finding`]
//! whose advice names the key, command or document that fixes it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::pkey::PKey;
use openssl::x509::X509;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, NetworkOptions, Packet,
    Transport,
};
use tokio::net::TcpStream;

use super::{Finding, Status};
use crate::cli::probe::{self, ProbeError};
use crate::config::{Config, MqttConfig};
use crate::mqtt::client::MqttSettings;
use crate::server::tls::{GENERATED_CERT_FILE, GENERATED_KEY_FILE};

/// A certificate this close to expiry is worth a warning (devices ignore expiry today, but a
/// firmware update might not).
const EXPIRY_WARNING_DAYS: i32 = 30;

/// The device certificate: configured paths, or the one generated into `data_dir`.
pub fn tls(config: &Config) -> Finding {
    let check = "tls";
    let (cert, key) = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (None, None) => {
            let (cert, key) = (
                config.data_dir.join(GENERATED_CERT_FILE),
                config.data_dir.join(GENERATED_KEY_FILE),
            );
            if !cert.exists() && !key.exists() {
                return Finding::new(
                    Status::Warn,
                    check,
                    format!(
                        "no certificate yet; `serve` generates one in {} on first start",
                        config.data_dir.display()
                    ),
                )
                .advice(
                    "keep data_dir on persistent storage (a Docker volume, /data in the add-on) \
                     so the certificate survives restarts",
                );
            }
            (cert, key)
        }
        _ => {
            return Finding::new(
                Status::Fail,
                check,
                "only one of tls.cert and tls.key is set",
            )
            .advice("set both, or neither to use a generated certificate")
        }
    };
    match inspect_pair(&cert, &key) {
        Ok((days_left, not_after)) if days_left < 0 => Finding::new(
            Status::Fail,
            check,
            format!("{} expired on {not_after}", cert.display()),
        )
        .advice(renew_advice(config)),
        Ok((days_left, not_after)) if days_left < EXPIRY_WARNING_DAYS => Finding::new(
            Status::Warn,
            check,
            format!(
                "{} expires on {not_after} ({days_left} days)",
                cert.display()
            ),
        )
        .advice(renew_advice(config)),
        Ok((_, not_after)) => Finding::new(
            Status::Pass,
            check,
            format!(
                "{} and its key are readable; valid until {not_after}",
                cert.display()
            ),
        ),
        Err(problem) => Finding::new(Status::Fail, check, problem).advice(renew_advice(config)),
    }
}

fn renew_advice(config: &Config) -> String {
    match &config.tls.cert {
        Some(_) => {
            "replace tls.cert and tls.key with a matching RSA certificate and key (PEM)".to_owned()
        }
        None => format!(
            "delete {} and {} in {}; `serve` generates a new pair on its next start",
            GENERATED_CERT_FILE,
            GENERATED_KEY_FILE,
            config.data_dir.display()
        ),
    }
}

/// Reads and parses both files; returns days until expiry and the expiry date as text.
fn inspect_pair(cert: &Path, key: &Path) -> Result<(i32, String), String> {
    let read = |what: &str, path: &PathBuf| {
        std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
    };
    let cert_pem = read("certificate", &cert.to_path_buf())?;
    let key_pem = read("private key", &key.to_path_buf())?;
    let x509 = X509::from_pem(&cert_pem)
        .map_err(|e| format!("{} is not a PEM certificate: {e}", cert.display()))?;
    let pkey = PKey::private_key_from_pem(&key_pem)
        .map_err(|e| format!("{} is not a PEM private key: {e}", key.display()))?;
    let matches = x509
        .public_key()
        .map(|public| public.public_eq(&pkey))
        .unwrap_or(false);
    if !matches {
        return Err(format!(
            "{} does not belong to {}",
            key.display(),
            cert.display()
        ));
    }
    let now = Asn1Time::days_from_now(0).map_err(|e| e.to_string())?;
    let diff = now.diff(x509.not_after()).map_err(|e| e.to_string())?;
    let days = if diff.days == 0 && diff.secs < 0 {
        -1
    } else {
        diff.days
    };
    Ok((days, x509.not_after().to_string()))
}

/// Whether a bridge answers on the telemetry endpoint; returns the finding and whether it runs.
pub async fn bridge(telemetry: SocketAddr, timeout: Duration) -> (Finding, bool) {
    let check = "bridge";
    let url = format!("http://{telemetry}/healthz");
    match probe::http_get(telemetry, "/healthz", timeout).await {
        Ok(reply) if reply.status == 200 => (
            Finding::new(
                Status::Pass,
                check,
                format!("a bridge is running; {url} is ok"),
            ),
            true,
        ),
        Ok(reply) => (
            Finding::new(
                Status::Fail,
                check,
                format!(
                    "{url} answered {}: {}",
                    reply.status,
                    reply.body.split_whitespace().collect::<Vec<_>>().join(" ")
                ),
            )
            .advice("a part of the bridge stopped; read its log, then restart it"),
            true,
        ),
        Err(ProbeError::Connect { .. }) => (
            Finding::new(Status::Warn, check, format!("no bridge answers at {url}"))
                .advice("start `cync-bridge serve` (or set telemetry.listen to where it serves)"),
            false,
        ),
        Err(e) => (
            Finding::new(Status::Fail, check, e.to_string())
                .advice("telemetry.listen points at something that is not cync-bridge"),
            false,
        ),
    }
}

/// The device port: accepts connections when the bridge runs, or is free to bind when it does
/// not. The probe connection closes before a TLS handshake; the bridge logs that as one failed
/// handshake.
pub async fn port(config: &Config, bridge_running: bool, timeout: Duration) -> Finding {
    let check = "port";
    let listen = config.server.listen;
    let addr = probe::reachable_addr(listen);
    let connected = matches!(
        tokio::time::timeout(timeout, TcpStream::connect(addr)).await,
        Ok(Ok(_))
    );
    let finding = match (connected, bridge_running) {
        (true, true) => Finding::new(
            Status::Pass,
            check,
            format!("the device port {addr} accepts connections"),
        ),
        (true, false) => Finding::new(
            Status::Fail,
            check,
            format!("something listens on {addr}, but no cync-bridge answers on telemetry"),
        )
        .advice(
            "stop the other program (the cync-lan or cync-controller add-on?): only one can \
             own port 23779",
        ),
        (false, true) => Finding::new(
            Status::Fail,
            check,
            format!("the bridge runs but {addr} refuses connections"),
        )
        .advice("check server.listen and the host firewall"),
        (false, false) => match std::net::TcpListener::bind(listen) {
            Ok(_) => Finding::new(
                Status::Warn,
                check,
                format!("no bridge listens on {listen}; the port is free for `cync-bridge serve`"),
            )
            .advice("start the bridge"),
            Err(e) => Finding::new(
                Status::Fail,
                check,
                format!("nothing answers on {addr} and {listen} cannot be bound: {e}"),
            )
            .advice("set server.listen to an address of this host with a free port (devices need 23779)"),
        },
    };
    if finding.status == Status::Pass && listen.ip().is_loopback() {
        return Finding::new(
            Status::Warn,
            check,
            format!("server.listen is {listen}: only this host can connect, not devices"),
        )
        .advice("set server.listen = \"0.0.0.0:23779\"");
    }
    finding
}

/// One MQTT CONNECT with the configured settings; a refused login is its own failure.
pub async fn mqtt(config: &MqttConfig, timeout: Duration) -> Finding {
    let check = "mqtt";
    if !config.enabled {
        return Finding::new(
            Status::Warn,
            check,
            "mqtt.enabled = false: Home Assistant will see no devices",
        )
        .advice("set mqtt.enabled = true and mqtt.url to use Home Assistant");
    }
    let s = &config.settings;
    let broker = format!("{}:{}", s.host, s.port);
    let options = match doctor_options(s) {
        Ok(options) => options,
        Err(finding) => return finding,
    };
    let (client, mut eventloop) = AsyncClient::new(options, 4);
    let mut network = NetworkOptions::new();
    network.set_connection_timeout(timeout.as_secs().max(1));
    eventloop.set_network_options(network);
    let outcome = tokio::time::timeout(timeout, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    let finding = judge_connect(outcome, s, &broker, timeout);
    // Say goodbye politely; the broker would otherwise log an unexpected disconnect.
    if finding.status == Status::Pass && client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
    }
    finding
}

/// Devices connected to the running bridge, from its `/metrics`.
pub async fn devices(telemetry: SocketAddr, bridge_running: bool, timeout: Duration) -> Finding {
    let check = "devices";
    if !bridge_running {
        return Finding::new(
            Status::Warn,
            check,
            "the bridge is not running, so whether devices connect is unknown",
        )
        .advice("start `cync-bridge serve`, wait a few minutes, then run doctor again");
    }
    let scrape = match probe::http_get(telemetry, "/metrics", timeout).await {
        Ok(reply) if reply.status == 200 => reply.body,
        Ok(reply) => {
            return Finding::new(
                Status::Fail,
                check,
                format!("/metrics answered {}", reply.status),
            )
        }
        Err(e) => return Finding::new(Status::Fail, check, format!("cannot read /metrics: {e}")),
    };
    let sessions = gauge(&scrape, "tcp_comm_connected_sessions");
    let routes = gauge(&scrape, "tcp_comm_mesh_routes").unwrap_or(0.0);
    match sessions {
        Some(n) if n > 0.0 => Finding::new(
            Status::Pass,
            check,
            format!("{n} Wi-Fi device session(s) connected, {routes} mesh route(s)"),
        ),
        Some(_) => Finding::new(Status::Fail, check, "no device has connected to the bridge")
            .advice(
                "fix the dns and port checks above, then power-cycle a device (they resolve the \
                 cloud name again only when they reconnect); see docs/troubleshooting.md",
            ),
        None => Finding::new(
            Status::Fail,
            check,
            "/metrics has no tcp_comm_connected_sessions: telemetry.listen is not a cync-bridge",
        ),
    }
}

/// The value of an unlabelled sample in a Prometheus text exposition.
fn gauge(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The client options `doctor` connects with: the configured ones under a client id of its own,
/// so the running bridge is not kicked off the broker.
fn doctor_options(s: &MqttSettings) -> Result<MqttOptions, Finding> {
    let mut options = MqttOptions::new(format!("{}-doctor", s.client_id), &s.host, s.port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_clean_session(true);
    if let Some(user) = &s.username {
        options.set_credentials(user, s.password.clone().unwrap_or_default());
    }
    if let Some(tls) = &s.tls {
        match crate::mqtt::client::tls_configuration(tls) {
            Ok(t) => {
                options.set_transport(Transport::Tls(t));
            }
            Err(e) => {
                return Err(Finding::new(Status::Fail, "mqtt", e.to_string())
                    .advice("check mqtt.ca_file, mqtt.client_cert and mqtt.client_key"))
            }
        }
    }
    Ok(options)
}

/// What the connection attempt says, in a finding with advice a user can act on.
fn judge_connect(
    outcome: Result<Result<(), ConnectionError>, tokio::time::error::Elapsed>,
    s: &MqttSettings,
    broker: &str,
    timeout: Duration,
) -> Finding {
    let check = "mqtt";
    match outcome {
        Ok(Ok(())) => {
            let who = s
                .username
                .as_deref()
                .map_or_else(|| "anonymously".to_owned(), |user| format!("as {user:?}"));
            Finding::new(
                Status::Pass,
                check,
                format!("broker {broker} accepted a connection {who}"),
            )
        }
        Ok(Err(ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
        ))) => {
            let what = if s.username.is_some() {
                "refused the user name or password"
            } else {
                "requires a login (none is configured)"
            };
            Finding::new(
                Status::Fail,
                check,
                format!("broker {broker} {what} ({code:?})"),
            )
            .advice(
                "set mqtt.username and mqtt.password (CYNC_MQTT__USERNAME, CYNC_MQTT__PASSWORD) \
                 to a login the broker knows, e.g. a Home Assistant user for the Mosquitto add-on",
            )
        }
        Ok(Err(ConnectionError::ConnectionRefused(code))) => Finding::new(
            Status::Fail,
            check,
            format!("broker {broker} refused the connection ({code:?})"),
        )
        .advice("read the broker's log; check mqtt.client_id is not used by another client"),
        Ok(Err(e)) => Finding::new(
            Status::Fail,
            check,
            format!("cannot reach broker {broker}: {e}"),
        )
        .advice("is the broker running? check mqtt.url (mqtts:// for TLS ports)"),
        Err(_) => Finding::new(
            Status::Fail,
            check,
            format!("broker {broker} did not answer within {timeout:?}"),
        )
        .advice("check mqtt.url and that nothing drops traffic to it"),
    }
}

#[cfg(test)]
mod tests {
    use super::gauge;

    #[test]
    fn gauges_are_read_by_exact_name() {
        let text = "# HELP x\ntcp_comm_connected_sessions_max 9\ntcp_comm_connected_sessions 3\n";
        assert_eq!(gauge(text, "tcp_comm_connected_sessions"), Some(3.0));
        assert_eq!(gauge(text, "tcp_comm_mesh_routes"), None);
    }
}
