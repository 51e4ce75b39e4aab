//! The `/metrics` text as a consumer sees it: parsed line by line with an independent, strict
//! reader of the Prometheus text format 0.0.4, using only the public API.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cync_bridge::telemetry::{vocabulary, Metrics, MAX_DEVICE_IDS};

/// Label pairs of a sample, values unescaped, in line order.
type Labels = Vec<(String, String)>;

/// One sample line.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

#[derive(Debug, Default)]
struct Family {
    help: Option<String>,
    kind: Option<String>,
    unit: Option<String>,
    samples: Vec<Sample>,
}

/// Parses `text` strictly: HELP then TYPE (then optional UNIT) before any sample of a family,
/// each family in one contiguous block, every sample belonging to the family announced last.
fn parse(text: &str) -> BTreeMap<String, Family> {
    assert!(text.ends_with('\n'), "exposition must end with a newline");
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        // The format ignores empty lines; the exporter separates families with one.
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (keyword, name, arg) = (
                parts.next().unwrap(),
                parts.next().unwrap().to_owned(),
                parts.next().unwrap_or_default().to_owned(),
            );
            match keyword {
                "HELP" => {
                    assert!(
                        !families.contains_key(&name),
                        "line {n}: {name} announced twice"
                    );
                    assert!(!arg.is_empty(), "line {n}: empty HELP");
                    families.entry(name.clone()).or_default().help = Some(arg);
                    current = Some(name);
                }
                "TYPE" => {
                    assert_eq!(current.as_ref(), Some(&name), "line {n}: TYPE before HELP");
                    let family = families.get_mut(&name).unwrap();
                    assert!(family.samples.is_empty(), "line {n}: TYPE after samples");
                    family.kind = Some(arg);
                }
                "UNIT" => {
                    assert_eq!(current.as_ref(), Some(&name), "line {n}: stray UNIT");
                    let family = families.get_mut(&name).unwrap();
                    assert!(family.kind.is_some(), "line {n}: UNIT before TYPE");
                    assert!(
                        name.ends_with(&format!("_{arg}")),
                        "line {n}: name lacks unit"
                    );
                    family.unit = Some(arg);
                }
                other => panic!("line {n}: unexpected comment keyword {other:?}"),
            }
            continue;
        }
        let sample = parse_sample(line, n);
        let family_name = current.as_ref().expect("sample before any HELP");
        let family = families.get_mut(family_name).unwrap();
        let kind = family.kind.as_deref().expect("sample before TYPE");
        let allowed: Vec<String> = match kind {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{family_name}{s}"))
                .collect(),
            _ => vec![family_name.clone()],
        };
        assert!(
            allowed.contains(&sample.name),
            "line {n}: {} outside its family",
            sample.name
        );
        family.samples.push(sample);
    }
    families
}

fn parse_sample(line: &str, n: usize) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("line {n}: {line}"));
    let name = &line[..name_end];
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "line {n}: bad metric name {name:?}"
    );
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            let (start, _) = *chars.peek().unwrap();
            let eq = after[start..].find('=').unwrap() + start;
            let label = after[start..eq].to_owned();
            assert!(label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            while chars.peek().unwrap().0 <= eq {
                chars.next();
            }
            assert_eq!(chars.next().unwrap().1, '"', "line {n}: unquoted value");
            let mut value = String::new();
            loop {
                match chars.next().unwrap().1 {
                    '"' => break,
                    '\\' => match chars.next().unwrap().1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        other => panic!("line {n}: bad escape \\{other}"),
                    },
                    '\n' => panic!("line {n}: raw newline in label value"),
                    c => value.push(c),
                }
            }
            labels.push((label, value));
            match chars.next().unwrap() {
                (_, ',') => continue,
                (i, '}') => {
                    rest = &after[i + 1..];
                    break;
                }
                (_, c) => panic!("line {n}: unexpected {c:?} after label value"),
            }
        }
    }
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("line {n}: no value"));
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("line {n}: value {value:?}"));
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

fn label<'a>(sample: &'a Sample, name: &str) -> Option<&'a str> {
    sample
        .labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn busy_registry() -> Metrics {
    let metrics = Metrics::new();
    metrics.packet_sent("dev-1", "ok");
    metrics.packet_sent("dev-1", "ok");
    metrics.packet_sent("dev-2", "write_error");
    metrics.packet_recv("dev-1", "ok");
    for ms in [1, 30, 128, 700, 12_000] {
        metrics.packet_latency("dev-1", Duration::from_millis(ms));
    }
    metrics.packet_retransmit("dev-1", "timeout");
    metrics.decode_error("dev-2", "bad_checksum");
    let session = metrics.session_opened();
    metrics.mesh_routes().set(7);
    metrics.tls_handshake_failure("no_shared_cipher");
    metrics.connection_rejected("over_limit");
    metrics.ack_received("dev-1", "matched");
    metrics.ack_timeout("dev-2");
    metrics.idempotent_drop("dev-1");
    metrics.send_queue_size().add(3);
    metrics.recv_queue_size().inc();
    metrics.queue_full("dev-1", "send");
    metrics.command("reliable", "success");
    metrics.command_latency("reliable", Duration::from_millis(90));
    metrics.command_latency("legacy", Duration::from_secs(3));
    metrics.mqtt_connected().set(1);
    metrics.mqtt_published("state");
    metrics.mqtt_command("invalid");
    metrics.devices_available().set(4);
    metrics.rollout_store_healthy().set(1);
    metrics.rollout_store_error("locked");
    metrics.rollout_store_written(12);
    metrics
        .rollout()
        .slo("command_success", "reliable", Some(true), 0.5);
    metrics.rollout().burn_rate("command_success", "1h", 2.0);
    session.close("idle_timeout");
    metrics
}

#[test]
fn every_family_is_announced_with_help_and_type_before_its_samples() {
    let families = parse(&busy_registry().render());
    let expected = [
        ("tcp_comm_packet_sent_total", "counter"),
        ("tcp_comm_packet_recv_total", "counter"),
        ("tcp_comm_packet_latency_seconds", "histogram"),
        ("tcp_comm_packet_retransmit_total", "counter"),
        ("tcp_comm_decode_errors_total", "counter"),
        ("tcp_comm_connected_sessions", "gauge"),
        ("tcp_comm_mesh_routes", "gauge"),
        ("tcp_comm_sessions_opened_total", "counter"),
        ("tcp_comm_sessions_closed_total", "counter"),
        ("tcp_comm_tls_handshake_failures_total", "counter"),
        ("tcp_comm_connections_rejected_total", "counter"),
        ("tcp_comm_ack_received_total", "counter"),
        ("tcp_comm_ack_timeout_total", "counter"),
        ("tcp_comm_idempotent_drop_total", "counter"),
        ("tcp_comm_send_queue_size", "gauge"),
        ("tcp_comm_recv_queue_size", "gauge"),
        ("tcp_comm_queue_full_total", "counter"),
        ("tcp_comm_command_total", "counter"),
        ("tcp_comm_command_latency_seconds", "histogram"),
        ("tcp_comm_mqtt_connected", "gauge"),
        ("tcp_comm_mqtt_published_total", "counter"),
        ("tcp_comm_mqtt_commands_total", "counter"),
        ("tcp_comm_devices_available", "gauge"),
        ("tcp_comm_rollout_store_healthy", "gauge"),
        ("tcp_comm_rollout_store_errors_total", "counter"),
        ("tcp_comm_rollout_store_writes_total", "counter"),
        ("tcp_comm_canary_percentage", "gauge"),
        ("tcp_comm_rollout_mode", "gauge"),
        ("tcp_comm_routing_decision_total", "counter"),
        ("tcp_comm_slo_compliance", "gauge"),
        ("tcp_comm_slo_insufficient_data", "gauge"),
        ("tcp_comm_error_budget_remaining", "gauge"),
        ("tcp_comm_slo_burn_rate", "gauge"),
        ("tcp_comm_rollback_total", "counter"),
        ("tcp_comm_rollback_latched", "gauge"),
        ("tcp_comm_rollout_evaluations_total", "counter"),
        ("tcp_comm_rollout_failing_evaluations", "gauge"),
        ("tcp_comm_shadow_outcome_total", "counter"),
        ("tcp_comm_shadow_would_retry_total", "counter"),
        ("tcp_comm_shadow_would_failover_total", "counter"),
        ("tcp_comm_shadow_receipt_latency_seconds", "histogram"),
        ("tcp_comm_shadow_response_latency_seconds", "histogram"),
    ];
    assert_eq!(families.len(), expected.len());
    let names: BTreeSet<&str> = Metrics::family_names().collect();
    assert_eq!(names, expected.iter().map(|(name, _)| *name).collect());
    for (name, kind) in expected {
        let family = families
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(family.kind.as_deref(), Some(kind), "{name}");
        assert!(!family.samples.is_empty(), "{name} has no samples");
        // The exporter writes no `# UNIT` lines (optional in 0.0.4); the parser checks any it sees.
    }
    let sent = &families["tcp_comm_packet_sent_total"].samples;
    let ok = sent
        .iter()
        .find(|s| label(s, "device_id") == Some("dev-1") && label(s, "outcome") == Some("ok"))
        .unwrap();
    assert_eq!(ok.value, 2.0);
    assert_eq!(families["tcp_comm_mesh_routes"].samples[0].value, 7.0);
    assert_eq!(families["tcp_comm_send_queue_size"].samples[0].value, 3.0);
    assert_eq!(
        families["tcp_comm_connected_sessions"].samples[0].value,
        0.0
    );
}

#[test]
fn histograms_have_cumulative_buckets_ending_in_inf_then_sum_and_count() {
    let families = parse(&busy_registry().render());
    for name in [
        "tcp_comm_packet_latency_seconds",
        "tcp_comm_command_latency_seconds",
    ] {
        let samples = &families[name].samples;
        // Group by the labels other than `le`, in order of appearance.
        let mut groups: Vec<(Labels, Vec<&Sample>)> = Vec::new();
        for sample in samples {
            let key: Labels = sample
                .labels
                .iter()
                .filter(|(k, _)| k != "le")
                .cloned()
                .collect();
            match groups.last_mut() {
                Some((last, members)) if *last == key => members.push(sample),
                _ => groups.push((key, vec![sample])),
            }
        }
        for (key, members) in &groups {
            let (buckets, tail) = members.split_at(members.len() - 2);
            let mut previous_le = f64::NEG_INFINITY;
            let mut previous_count = 0.0;
            for bucket in buckets {
                assert_eq!(bucket.name, format!("{name}_bucket"), "{key:?}");
                let le: f64 = label(bucket, "le").unwrap().parse().unwrap();
                assert!(le > previous_le, "{name}{key:?}: le not increasing");
                assert!(
                    bucket.value >= previous_count,
                    "{name}{key:?}: not cumulative"
                );
                previous_le = le;
                previous_count = bucket.value;
            }
            assert_eq!(label(buckets.last().unwrap(), "le"), Some("+Inf"));
            assert_eq!(tail[0].name, format!("{name}_sum"));
            assert_eq!(tail[1].name, format!("{name}_count"));
            assert_eq!(
                tail[1].value, previous_count,
                "{name}{key:?}: _count != +Inf bucket"
            );
        }
    }
    let dev1: Vec<&Sample> = families["tcp_comm_packet_latency_seconds"]
        .samples
        .iter()
        .filter(|s| label(s, "device_id") == Some("dev-1"))
        .collect();
    let bucket = |le: &str| {
        dev1.iter()
            .find(|s| label(s, "le") == Some(le))
            .map(|s| s.value)
    };
    // Observations 1 ms, 30 ms, 128 ms, 700 ms, 12 s.
    assert_eq!(bucket("0.001"), Some(1.0));
    assert_eq!(bucket("0.05"), Some(2.0));
    assert_eq!(bucket("0.128"), Some(3.0));
    assert_eq!(bucket("0.8"), Some(4.0));
    assert_eq!(bucket("10"), Some(4.0));
    assert_eq!(bucket("+Inf"), Some(5.0));
    let sum = dev1
        .iter()
        .find(|s| s.name.ends_with("_sum"))
        .unwrap()
        .value;
    assert!((sum - 12.859).abs() < 1e-9, "sum {sum}");
}

#[test]
fn label_values_with_quotes_backslashes_and_newlines_round_trip() {
    let metrics = Metrics::new();
    let nasty = "a\"b\\c\nd} e=\"f\",";
    metrics.decode_error(nasty, "bad_header");
    let text = metrics.render();
    assert!(
        text.contains(r#"device_id="a\"b\\c\nd} e=\"f\",""#),
        "{text}"
    );
    let families = parse(&text);
    let sample = &families["tcp_comm_decode_errors_total"].samples[0];
    assert_eq!(label(sample, "device_id"), Some(nasty));
    assert_eq!(label(sample, "reason"), Some("bad_header"));
    assert_eq!(sample.value, 1.0);
}

#[test]
fn device_ids_beyond_the_cap_are_recorded_as_other() {
    let metrics = Metrics::new();
    let extra = 150;
    for i in 0..MAX_DEVICE_IDS + extra {
        metrics.packet_recv(&format!("dev-{i}"), "ok");
    }
    // A device seen before the cap keeps its own series afterwards.
    metrics.packet_recv("dev-0", "ok");
    // The cap is per family: another family still has room.
    metrics.ack_timeout("dev-new");

    let families = parse(&metrics.render());
    let recv = &families["tcp_comm_packet_recv_total"].samples;
    let ids: BTreeSet<&str> = recv.iter().filter_map(|s| label(s, "device_id")).collect();
    assert_eq!(ids.len(), MAX_DEVICE_IDS + 1);
    assert!(ids.contains("other"));
    assert!(!ids.contains(format!("dev-{MAX_DEVICE_IDS}").as_str()));
    let value = |id: &str| {
        recv.iter()
            .find(|s| label(s, "device_id") == Some(id))
            .map(|s| s.value)
    };
    assert_eq!(value("other"), Some(extra as f64));
    assert_eq!(value("dev-0"), Some(2.0));
    let total: f64 = recv.iter().map(|s| s.value).sum();
    assert_eq!(
        total,
        (MAX_DEVICE_IDS + extra + 1) as f64,
        "no observation lost"
    );
    assert_eq!(
        metrics.sample_value(r#"tcp_comm_ack_timeout_total{device_id="dev-new"}"#),
        Some(1.0)
    );
}

#[test]
fn a_fresh_registry_has_every_fixed_vocabulary_series_at_zero_and_no_device_series() {
    let families = parse(&Metrics::new().render());
    let unlabelled = [
        "tcp_comm_connected_sessions",
        "tcp_comm_mesh_routes",
        "tcp_comm_sessions_opened_total",
        "tcp_comm_send_queue_size",
        "tcp_comm_recv_queue_size",
        "tcp_comm_mqtt_connected",
        "tcp_comm_devices_available",
        "tcp_comm_rollout_store_healthy",
        "tcp_comm_rollout_store_writes_total",
        "tcp_comm_canary_percentage",
        "tcp_comm_rollback_latched",
        "tcp_comm_rollout_failing_evaluations",
        "tcp_comm_shadow_would_retry_total",
        "tcp_comm_shadow_would_failover_total",
    ];
    // Unlabelled histograms: present with no observations.
    let histograms = [
        "tcp_comm_shadow_receipt_latency_seconds",
        "tcp_comm_shadow_response_latency_seconds",
    ];
    let fixed: [(&str, &str, &[&str]); 12] = [
        (
            "tcp_comm_sessions_closed_total",
            "reason",
            vocabulary::SESSION_CLOSE_REASONS,
        ),
        (
            "tcp_comm_tls_handshake_failures_total",
            "reason",
            vocabulary::HANDSHAKE_FAILURE_REASONS,
        ),
        (
            "tcp_comm_connections_rejected_total",
            "reason",
            vocabulary::REJECTION_REASONS,
        ),
        (
            "tcp_comm_mqtt_published_total",
            "kind",
            vocabulary::MQTT_PUBLISH_KINDS,
        ),
        (
            "tcp_comm_mqtt_commands_total",
            "result",
            vocabulary::MQTT_COMMAND_RESULTS,
        ),
        (
            "tcp_comm_command_latency_seconds",
            "transport",
            vocabulary::TRANSPORTS,
        ),
        (
            "tcp_comm_rollout_store_errors_total",
            "kind",
            vocabulary::ROLLOUT_STORE_ERROR_KINDS,
        ),
        ("tcp_comm_rollout_mode", "mode", vocabulary::ROLLOUT_MODES),
        (
            "tcp_comm_routing_decision_total",
            "transport",
            vocabulary::TRANSPORTS,
        ),
        (
            "tcp_comm_rollback_total",
            "reason",
            vocabulary::ROLLBACK_REASONS,
        ),
        (
            "tcp_comm_rollout_evaluations_total",
            "verdict",
            vocabulary::ROLLOUT_VERDICTS,
        ),
        (
            "tcp_comm_shadow_outcome_total",
            "outcome",
            vocabulary::COMMAND_OUTCOMES,
        ),
    ];
    for name in histograms {
        let family = &families[name];
        assert!(family.help.is_some(), "{name}");
        assert_eq!(
            Metrics::new().sample_value(&format!("{name}_count")),
            Some(0.0),
            "{name}"
        );
    }
    assert_eq!(
        families.len(),
        unlabelled.len() + histograms.len() + fixed.len() + 1,
        "{:?}",
        families.keys()
    );
    for name in unlabelled {
        let family = &families[name];
        assert!(family.help.is_some(), "{name}");
        assert_eq!(family.samples.len(), 1, "{name}");
        assert_eq!(family.samples[0].value, 0.0, "{name}");
    }
    for (name, label_name, values) in fixed {
        let family = &families[name];
        assert!(family.help.is_some(), "{name}");
        let seen: BTreeSet<&str> = family
            .samples
            .iter()
            .filter_map(|s| label(s, label_name))
            .collect();
        assert_eq!(seen, values.iter().copied().collect(), "{name}");
        assert!(family.samples.iter().all(|s| s.value == 0.0), "{name}");
    }
    let commands = &families["tcp_comm_command_total"].samples;
    assert_eq!(
        commands.len(),
        vocabulary::TRANSPORTS.len() * vocabulary::COMMAND_OUTCOMES.len()
    );
    for transport in vocabulary::TRANSPORTS {
        for outcome in vocabulary::COMMAND_OUTCOMES {
            let series = format!(
                "tcp_comm_command_total{{transport=\"{transport}\",outcome=\"{outcome}\"}}"
            );
            assert_eq!(Metrics::new().sample_value(&series), Some(0.0), "{series}");
        }
    }
    assert!(!families.contains_key("tcp_comm_packet_sent_total"));
}

#[test]
fn recording_from_many_threads_loses_nothing() {
    let metrics = Metrics::new();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let metrics = metrics.clone();
            scope.spawn(move || {
                for i in 0..1_000 {
                    metrics.packet_sent(&format!("dev-{}", i % 10), "ok");
                    metrics.command_latency("reliable", Duration::from_micros(t * 100 + i));
                }
            });
        }
    });
    let families = parse(&metrics.render());
    let total: f64 = families["tcp_comm_packet_sent_total"]
        .samples
        .iter()
        .map(|s| s.value)
        .sum();
    assert_eq!(total, 4_000.0);
    assert_eq!(
        metrics.sample_value(r#"tcp_comm_command_latency_seconds_count{transport="reliable"}"#),
        Some(4_000.0)
    );
}
