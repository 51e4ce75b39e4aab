//! Test-only access to the real captures in `../shared/fixtures` (beside the crate root).
//!
//! Exists so that every test reading real traffic skips or fails the same way: the shared folder
//! is not part of this repository and must never be copied into it (fixtures README), so a
//! checkout without it skips those tests with a printed line — unless
//! `CYNC_REQUIRE_SHARED_FIXTURES=1` (CI) turns the absence into a failure. Owns only that
//! decision; must never be compiled outside tests.

use std::path::{Path, PathBuf};

/// Set to `1` to make a missing shared-fixtures folder fail the tests instead of skipping them.
pub(crate) const REQUIRE_ENV: &str = "CYNC_REQUIRE_SHARED_FIXTURES";

/// The shared fixtures folder, relative to the crate root.
fn shared_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures"))
}

/// Contents of `../shared/fixtures/<relative>`, or `None` after printing a skip line when the
/// folder is absent and `CYNC_REQUIRE_SHARED_FIXTURES` is not `1`.
pub(crate) fn shared_fixture(relative: &str) -> Option<String> {
    let required = std::env::var(REQUIRE_ENV).as_deref() == Ok("1");
    read_or_skip(&shared_dir(), relative, required)
}

/// The decision itself, apart from the environment so it can be tested. A missing file *inside*
/// a present folder always panics: that is a broken test, not a missing checkout.
fn read_or_skip(dir: &Path, relative: &str, required: bool) -> Option<String> {
    if !dir.is_dir() {
        if required {
            panic!(
                "{REQUIRE_ENV}=1 but the shared fixtures folder {} is missing",
                dir.display()
            );
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
        Ok(contents) => Some(contents),
        Err(error) => panic!("shared fixture {} unreadable: {error}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn absent() -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/no-such-shared-fixtures"
        ))
    }

    #[test]
    fn an_absent_folder_skips_when_not_required() {
        assert_eq!(read_or_skip(&absent(), "captures/x.txt", false), None);
    }

    #[test]
    #[should_panic(expected = "CYNC_REQUIRE_SHARED_FIXTURES=1")]
    fn an_absent_folder_fails_when_required() {
        let _ = read_or_skip(&absent(), "captures/x.txt", true);
    }

    #[test]
    #[should_panic(expected = "unreadable")]
    fn a_missing_file_in_a_present_folder_always_fails() {
        let dir = tempfile::tempdir().unwrap();
        let _ = read_or_skip(dir.path(), "captures/x.txt", false);
    }
}
