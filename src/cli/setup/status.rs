//! The status block of the setup page, gathered on request from what the running bridge already
//! knows (sessions, state store, metrics) and the same checks `doctor` runs for the certificate
//! and DNS. DNS answers are cached for a minute: the page polls, resolvers should not be.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bridge::registry::device_file;
use crate::cli::doctor::{self, Finding, SystemNetwork};
use crate::config::Config;
use crate::device::inventory::{Inventory, Syntax};
use crate::server::Services;

/// How long a DNS result is reused.
const DNS_TTL: Duration = Duration::from_secs(60);

/// The last DNS findings and when they were made.
#[derive(Default)]
pub(super) struct DnsCache {
    last: Mutex<Option<(Instant, Vec<Finding>)>>,
}

fn finding(f: &Finding) -> Value {
    json!({
        "status": f.status.to_string(),
        "check": f.check,
        "message": f.message,
        "advice": f.advice,
    })
}

impl DnsCache {
    async fn findings(&self) -> Vec<Finding> {
        if let Ok(last) = self.last.lock() {
            if let Some((at, findings)) = last.as_ref() {
                if at.elapsed() < DNS_TTL {
                    return findings.clone();
                }
            }
        }
        // The system resolver blocks.
        let fresh = tokio::task::spawn_blocking(|| doctor::dns_findings(&SystemNetwork, None))
            .await
            .unwrap_or_default();
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), fresh.clone()));
        }
        fresh
    }
}

/// Everything but the recent errors.
pub(super) async fn gather(config: &Config, services: &Services, dns: &DnsCache) -> Value {
    let seen = services
        .state
        .snapshot()
        .into_iter()
        .filter(|(key, _)| key.mesh.0 < 0x8000)
        .count();
    let mqtt_connected = services
        .metrics
        .sample_value("tcp_comm_mqtt_connected")
        .is_some_and(|v| v >= 1.0);
    json!({
        "relays": services.routes.session_count(),
        "devices_seen": seen,
        "device_file": listed(config),
        "mqtt": {
            "enabled": config.mqtt.enabled,
            "connected": mqtt_connected,
            "broker": broker(&config.mqtt.url),
        },
        "certificate": finding(&doctor::checks::tls(config)),
        "dns": dns.findings().await.iter().map(finding).collect::<Vec<_>>(),
    })
}

/// The device file in use and how many devices it lists, or why it cannot be read.
fn listed(config: &Config) -> Value {
    let Some(path) = device_file(&config.devices) else {
        return json!({"path": null, "devices": 0, "error": null});
    };
    let syntax = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => Syntax::Toml,
        _ => Syntax::Yaml,
    };
    let parsed = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| Inventory::parse(&text, syntax).map_err(|e| e.to_string()));
    match parsed {
        Ok(inventory) => json!({
            "path": path.display().to_string(),
            "devices": inventory.homes.iter().map(|h| h.devices.len()).sum::<usize>(),
            "error": null,
        }),
        Err(error) => json!({"path": path.display().to_string(), "devices": 0, "error": error}),
    }
}

/// The broker URL without credentials.
fn broker(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}
