//! The Prometheus rules and the Grafana dashboard only use metric names the bridge exports, and
//! promtool accepts the rules and the scrape configuration.

use std::collections::BTreeSet;
use std::path::PathBuf;

use cync_bridge::telemetry::Metrics;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `tcp_comm_…` identifier in `text`, with histogram suffixes removed.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("tcp_comm_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name)
            .to_string();
        names.insert(base);
    }
    names
}

fn exported() -> BTreeSet<String> {
    Metrics::family_names().map(str::to_string).collect()
}

#[test]
fn rules_and_dashboard_reference_only_exported_metrics() {
    let exported = exported();
    for file in [
        "config/prometheus/rules.yml",
        "config/grafana/dashboards/cync-bridge.json",
    ] {
        let text = std::fs::read_to_string(root().join(file)).expect(file);
        let used = metric_names(&text);
        assert!(!used.is_empty(), "{file} uses no metric");
        let missing: Vec<_> = used.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{file} uses metrics the bridge does not export: {missing:?}"
        );
    }
}

#[test]
fn the_dashboard_is_valid_json_with_the_panels_operators_need() {
    let text =
        std::fs::read_to_string(root().join("config/grafana/dashboards/cync-bridge.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let titles: Vec<&str> = v["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for needed in [
        "Sessions and routes",
        "Commands by outcome",
        "Command latency",
        "Packets",
        "Queue depth",
    ] {
        assert!(
            titles.contains(&needed),
            "missing panel {needed}: {titles:?}"
        );
    }
}

#[test]
fn promtool_accepts_the_rules_and_scrape_config() {
    if std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var("CYNC_REQUIRE_PROMTOOL").as_deref() == Ok("1") {
            panic!("promtool is required but missing (apt-get install prometheus)");
        }
        eprintln!("SKIPPED: promtool not installed");
        return;
    }
    for args in [
        vec!["check", "rules", "config/prometheus/rules.yml"],
        vec!["check", "config", "config/prometheus/prometheus.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(&args)
            .current_dir(root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
