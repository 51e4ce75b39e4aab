//! Logging set-up as the binary uses it. The subscriber is process-global, so each scenario runs
//! in a child process (this test binary re-run with one test selected) and is judged by its output.

use std::process::Command;

use cync_bridge::telemetry::logging::{init, new_correlation_id, LogFormat, LoggingError};

/// Set in the child: which scenario to run.
const SCENARIO: &str = "CYNC_TEST_LOGGING_SCENARIO";

/// Runs `child` in a fresh process with `scenario`, returning (stdout, stderr).
fn run_child(scenario: &str) -> (String, String) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, scenario)
        .output()
        .unwrap();
    assert!(output.status.success(), "child failed: {output:?}");
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The child side; does nothing when run as an ordinary test.
#[test]
fn child() {
    let Ok(scenario) = std::env::var(SCENARIO) else {
        return;
    };
    match scenario.as_str() {
        "json" => {
            init(LogFormat::Json, "info").unwrap();
            let id = new_correlation_id();
            let span = tracing::info_span!("session", peer_id = "1a2b3c4d");
            let _entered = span.enter();
            tracing::info!(correlation_id = %id, msg_id = 7u32, "command sent");
            tracing::debug!("filtered out");
        }
        "twice" => {
            init(LogFormat::Human, "warn").unwrap();
            let again = init(LogFormat::Json, "info");
            assert!(
                matches!(again, Err(LoggingError::AlreadyInitialised(_))),
                "{again:?}"
            );
            let bad = init(LogFormat::Json, "info,cync_bridge=loud");
            assert!(
                matches!(bad, Err(LoggingError::InvalidFilter { .. })),
                "{bad:?}"
            );
            tracing::warn!("still logging");
        }
        other => panic!("unknown scenario {other}"),
    }
}

#[test]
fn json_logs_are_one_object_per_line_on_stderr_with_span_and_event_fields() {
    let (stdout, stderr) = run_child("json");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    let event = &lines[0];
    assert_eq!(event["level"], "INFO");
    assert_eq!(event["message"], "command sent");
    assert_eq!(event["msg_id"], 7);
    assert_eq!(event["span"]["peer_id"], "1a2b3c4d");
    let id: uuid::Uuid = event["correlation_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id.get_version(), Some(uuid::Version::SortRand));
    assert!(
        !stdout.contains("command sent"),
        "logs must not go to stdout"
    );
}

#[test]
fn a_second_init_or_a_bad_filter_is_an_error_and_logging_keeps_working() {
    let (_, stderr) = run_child("twice");
    assert!(stderr.contains("still logging"), "stderr: {stderr}");
}
