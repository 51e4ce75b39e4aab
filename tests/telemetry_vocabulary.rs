//! Every label value a caller passes to a fixed-vocabulary family must be in telemetry's list, or
//! its series would not exist at zero before the first event (see `telemetry::vocabulary`).
//!
//! Enums are checked through their public API; string literals at call sites are found by reading
//! the sources, and each pattern must match at least one call, so moving a call cannot make the
//! check pass vacuously.

use std::collections::BTreeSet;
use std::path::Path;

use cync_bridge::rollout::store::StoreErrorKind;
use cync_bridge::telemetry::vocabulary;
use cync_bridge::transport::legacy::TRANSPORT_LABEL;
use cync_bridge::transport::reliable::Policy;
use cync_bridge::transport::CommandOutcome;

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// Every `.rs` file under `src/`, with its text.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.display().to_string(), text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

/// The string literals inside the parentheses of every call `needle(...)` in the files under
/// `src/<under>`.
fn literals_in_calls(under: &str, needle: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let under = format!("/src/{under}");
    for (path, text) in sources() {
        if !path.contains(&under) || path.contains("/src/telemetry/") {
            continue;
        }
        let mut rest = text.as_str();
        while let Some(at) = rest.find(needle) {
            let after = &rest[at + needle.len()..];
            let mut depth = 1usize;
            let end = after
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(after.len(), |(i, _)| i);
            found.extend(string_literals(&after[..end]));
            rest = after;
        }
    }
    found
}

/// The string literals of `text` (no escapes needed for label vocabularies).
fn string_literals(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The string literals in the body of `fn name` in the file at `relative` (from `src/`).
fn literals_in_fn(relative: &str, name: &str) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(relative);
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text
        .find(&format!("fn {name}("))
        .unwrap_or_else(|| panic!("fn {name} not in {relative}"));
    let body = &text[start..];
    let end = body
        .find("\n}\n")
        .or_else(|| body.find("\n    }\n"))
        .unwrap();
    string_literals(&body[..end]).into_iter().collect()
}

fn assert_covered(what: &str, used: &BTreeSet<String>, listed: &[&str]) {
    assert!(
        !used.is_empty(),
        "{what}: no call site found; update this test"
    );
    let listed = set(listed);
    let missing: Vec<&String> = used.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "{what}: {missing:?} missing from telemetry::vocabulary"
    );
}

#[test]
fn every_command_outcome_and_transport_is_listed() {
    let outcomes: BTreeSet<String> = CommandOutcome::ALL
        .iter()
        .map(|o| o.as_str().to_owned())
        .collect();
    assert_eq!(outcomes, set(vocabulary::COMMAND_OUTCOMES));
    let transports: BTreeSet<String> = [
        Policy::reliable().name,
        Policy::legacy().name,
        TRANSPORT_LABEL,
    ]
    .iter()
    .map(|t| (*t).to_owned())
    .collect();
    assert_covered("transports", &transports, vocabulary::TRANSPORTS);
}

#[test]
fn every_rollout_store_error_kind_is_listed() {
    let kinds: BTreeSet<String> = StoreErrorKind::ALL
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    assert_eq!(kinds, set(vocabulary::ROLLOUT_STORE_ERROR_KINDS));
}

#[test]
fn every_session_close_reason_is_listed() {
    let reasons = literals_in_fn("server/session/handle.rs", "as_str");
    assert_covered("close reasons", &reasons, vocabulary::SESSION_CLOSE_REASONS);
}

#[test]
fn every_literal_at_a_call_site_is_listed() {
    let mut handshake = literals_in_fn("server/listener.rs", "handshake_failure");
    handshake.extend(literals_in_calls("", ".tls_handshake_failure("));
    assert_covered(
        "handshake failures",
        &handshake,
        vocabulary::HANDSHAKE_FAILURE_REASONS,
    );
    // (what, files under src/, call, telemetry's list). `Bridge::send(kind, message)` is the one
    // place that counts `mqtt_published(kind)`. Device-labelled families are included: their
    // lists are not pre-created, but they document the vocabulary.
    let calls: [(&str, &str, &str, &[&str]); 5] = [
        (
            "rejections",
            "",
            ".connection_rejected(",
            vocabulary::REJECTION_REASONS,
        ),
        (
            "mqtt publish kinds",
            "bridge/",
            "self.send(",
            vocabulary::MQTT_PUBLISH_KINDS,
        ),
        (
            "mqtt command results",
            "",
            ".mqtt_command(",
            vocabulary::MQTT_COMMAND_RESULTS,
        ),
        ("queue types", "", ".queue_full(", vocabulary::QUEUE_TYPES),
        (
            "packet sent outcomes",
            "",
            ".packet_sent(",
            vocabulary::PACKET_SENT_OUTCOMES,
        ),
    ];
    for (what, under, call, listed) in calls {
        assert_covered(what, &literals_in_calls(under, call), listed);
    }
}
