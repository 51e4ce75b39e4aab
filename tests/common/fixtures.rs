//! The real captures in `../shared/fixtures`, read in place (never copied into the repository).
//!
//! A tiny twin of the library's test-only `capture::fixtures`: without the shared folder a test
//! prints that it skipped and returns, unless `CYNC_REQUIRE_SHARED_FIXTURES=1` (CI) makes the
//! absence a failure.

use std::path::PathBuf;

/// Set to `1` to fail instead of skipping when the shared fixtures are missing.
pub const REQUIRE_ENV: &str = "CYNC_REQUIRE_SHARED_FIXTURES";

fn shared_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures"))
}

/// Contents of `../shared/fixtures/<relative>`, or `None` after printing a skip line.
pub fn shared_fixture(relative: &str) -> Option<String> {
    let dir = shared_dir();
    if !dir.is_dir() {
        if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
            panic!("{REQUIRE_ENV}=1 but {} is missing", dir.display());
        }
        eprintln!(
            "skipped: shared fixtures folder {} not found (wanted {relative}); \
             set {REQUIRE_ENV}=1 to fail instead",
            dir.display()
        );
        return None;
    }
    let path = dir.join(relative);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) => panic!("shared fixture {} unreadable: {e}", path.display()),
    }
}
