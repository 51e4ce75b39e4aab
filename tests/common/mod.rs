//! Helpers shared by integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Path of a file under `../shared/fixtures`, or `None` (after saying so) when the shared
/// folder is absent — unless `CYNC_REQUIRE_SHARED_FIXTURES=1`, which makes absence a failure.
pub fn shared_fixture(rel: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(rel);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CYNC_REQUIRE_SHARED_FIXTURES").as_deref() == Ok("1") {
        panic!("shared fixture {} is required but missing", path.display());
    }
    eprintln!("SKIPPED: shared fixture {} is absent", path.display());
    None
}
