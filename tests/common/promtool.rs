//! `promtool check metrics`, the reference linter for the Prometheus text format, as one helper
//! for every test that lints a scrape. Included by path (`#[path = ".../common/promtool.rs"]`)
//! from `server_world` and `telemetry_promtool`, not from `common/mod.rs`: a binary that includes
//! both `common` and `server_world` would otherwise load it twice.
//!
//! promtool comes from the Debian/Ubuntu package `prometheus` (`/usr/bin/promtool`). Without it
//! the check prints that it skipped; CI sets `CYNC_REQUIRE_PROMTOOL=1` (and installs the
//! package), which turns a missing promtool into a failure.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Runs `promtool check metrics` on `exposition` and asserts it reports nothing (no error, no
/// lint warning); the report and the scrape are in the failure message.
pub fn check(exposition: &str) {
    let required = std::env::var("CYNC_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            eprintln!(
                "SKIPPED: promtool not found (apt-get install prometheus); \
                 set CYNC_REQUIRE_PROMTOOL=1 to make this a failure"
            );
            return;
        }
        Err(e) => panic!("cannot run promtool (CYNC_REQUIRE_PROMTOOL={required}): {e}"),
    };
    child
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && report.trim().is_empty(),
        "promtool check metrics ({}) reported:\n{report}\n--- scrape ---\n{exposition}",
        output.status
    );
}
