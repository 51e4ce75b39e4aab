//! The MQTT broker `cync-bridge demo` brings along when nothing answers on the configured
//! address, so a fresh machine can try the bridge with no broker installed. It is rumqttd's:
//! MQTT 3.1.1 with retained messages, `+`/`#` wildcards, QoS 0 and 1 and last wills, which is
//! what Home Assistant, `mosquitto_sub`/`mosquitto_pub` and the bridge's own client use.
//!
//! Deliberately not a production setup: plain TCP, no authentication, no persistence, and
//! rumqttd does not do QoS 2 (a QoS 2 publish is refused). Point the bridge at Mosquitto for
//! real use. Behind the `embedded-broker` feature.
//!
//! rumqttd 0.20 runs on threads of its own (a router thread, one current-thread runtime per
//! listener) and has no way to stop them: once started, the broker lives until the process
//! exits, which is what `demo` wants anyway.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Largest packet accepted: Home Assistant discovery configs are a few KiB; room to spare.
const MAX_PAYLOAD: usize = 256 * 1024;
/// A connection must send CONNECT within this time.
const CONNECT_TIMEOUT_MS: u16 = 10_000;
/// How long `start` waits for the listener to accept before giving up.
const READY_WITHIN: Duration = Duration::from_secs(5);

/// Starts the broker on `addr` (port 0 picks a free one) and returns once it accepts
/// connections, with the address it listens on.
///
/// # Errors
/// The address cannot be bound, or the broker did not come up within a few seconds.
pub async fn start(addr: SocketAddr) -> io::Result<SocketAddr> {
    // rumqttd binds inside its own thread and never reports the port it got, nor a bind
    // failure beyond a log line; binding here first turns port 0 into a real port and an
    // address in use into an error the caller can show. The probe is closed before rumqttd
    // binds, so another process could take the port in between: harmless on loopback for
    // a demo, and `wait_listening` then fails rather than hangs.
    let local = std::net::TcpListener::bind(addr)?.local_addr()?;
    let (ended_tx, ended_rx) = mpsc::channel();
    let config = config(local);
    std::thread::Builder::new()
        .name("mqtt-broker".to_owned())
        .spawn(move || {
            let outcome = Broker::new(config).start().map_err(|e| e.to_string());
            // The receiver may be gone once `start` returned; nothing left to tell then.
            let _ = ended_tx.send(outcome);
        })?;
    wait_listening(local, &ended_rx).await?;
    Ok(local)
}

/// Polls `addr` until it accepts a TCP connection, the broker thread ends, or time runs out.
async fn wait_listening(
    addr: SocketAddr,
    ended: &mpsc::Receiver<Result<(), String>>,
) -> io::Result<()> {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        if let Ok(outcome) = ended.try_recv() {
            let why = outcome
                .err()
                .unwrap_or_else(|| "its listener stopped".to_owned());
            return Err(io::Error::other(format!(
                "the embedded broker ended at start: {why}"
            )));
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the embedded broker did not listen on {addr} within {READY_WITHIN:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// rumqttd's configuration, built here so no config file has to exist on disk: one MQTT 3.1.1
/// listener, no TLS, no auth, no metrics or console listeners.
fn config(listen: SocketAddr) -> Config {
    let server = ServerSettings {
        name: "demo".to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: CONNECT_TIMEOUT_MS,
            max_payload_size: MAX_PAYLOAD,
            // QoS 1 messages in flight per connection: the bridge's burst at start-up
            // (discovery for every entity) must not stall.
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            // Subscriptions to filters nobody configured beforehand: all of them, here.
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 10 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("demo".to_owned(), server)])),
        ..Config::default()
    }
}

/// The log filter `demo` runs with: `filter` plus `rumqttd=off`, unless `filter` or `rust_log`
/// (the `RUST_LOG` variable) names rumqttd. rumqttd logs every client that goes away at
/// error level, which would bury the demo's own lines; whoever debugs the broker asks for it.
pub fn quiet_filter(filter: &str, rust_log: Option<&str>) -> String {
    if let Some(asked) = rust_log.filter(|r| r.contains("rumqttd")) {
        return format!("{filter},{asked}");
    }
    if filter.contains("rumqttd") {
        return filter.to_owned();
    }
    format!("{filter},rumqttd=off")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rumqttd_is_silenced_unless_someone_asks_for_it() {
        assert_eq!(quiet_filter("info", None), "info,rumqttd=off");
        assert_eq!(quiet_filter("info", Some("debug")), "info,rumqttd=off");
        assert_eq!(
            quiet_filter("info", Some("rumqttd=debug")),
            "info,rumqttd=debug"
        );
        assert_eq!(quiet_filter("info,rumqttd=warn", None), "info,rumqttd=warn");
    }

    #[tokio::test]
    async fn an_address_in_use_is_an_error_not_a_silent_thread() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        assert!(start(addr).await.is_err());
    }
}
