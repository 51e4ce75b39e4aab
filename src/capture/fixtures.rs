//! Access to the real captures in `../shared/fixtures` (beside the crate root), for the
//! library's own tests and the integration tests alike.
//!
//! Exists so that every test reading real traffic skips or fails the same way: the shared folder
//! is not part of this repository and must never be copied into it (fixtures README), so a
//! checkout without it skips those tests with a printed line — unless
//! `CYNC_REQUIRE_SHARED_FIXTURES=1` (CI) turns the absence into a failure. Owns only that
//! decision. The folder is found through the crate's build-time path, so this is of use only
//! to this crate's own tests, never to an installed binary.

use std::path::{Path, PathBuf};

/// Set to `1` to make a missing shared-fixtures folder fail the tests instead of skipping them.
pub const REQUIRE_ENV: &str = "CYNC_REQUIRE_SHARED_FIXTURES";

/// Why a fixture that should be there is not: both mean a broken test run, not a checkout
/// without the shared folder (that one is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// [`REQUIRE_ENV`] is `1` and the folder is missing.
    #[error("{REQUIRE_ENV}=1 but the shared fixtures folder {} is missing", .0.display())]
    Required(PathBuf),
    /// The folder is there but the file is not, or cannot be read.
    #[error("shared fixture {} unreadable: {source}", path.display())]
    Unreadable {
        /// The file asked for.
        path: PathBuf,
        /// What reading it said.
        source: std::io::Error,
    },
}

fn shared_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures"))
}

fn required() -> bool {
    std::env::var(REQUIRE_ENV).as_deref() == Ok("1")
}

/// Contents of `../shared/fixtures/<relative>`, or `Ok(None)` after printing a skip line when
/// the folder is absent and [`REQUIRE_ENV`] is not `1`.
///
/// # Errors
/// See [`FixtureError`].
pub fn load(relative: &str) -> Result<Option<String>, FixtureError> {
    let Some(path) = locate_in(&shared_dir(), relative, required())? else {
        return Ok(None);
    };
    std::fs::read_to_string(&path)
        .map(Some)
        .map_err(|source| FixtureError::Unreadable { path, source })
}

/// Path of `../shared/fixtures/<relative>`, for tests that hand the file to a subprocess;
/// `Ok(None)` (after a skip line) as for [`load`].
///
/// # Errors
/// See [`FixtureError`].
pub fn locate(relative: &str) -> Result<Option<PathBuf>, FixtureError> {
    locate_in(&shared_dir(), relative, required())
}

/// [`load`] for the library's unit tests, which may panic.
#[cfg(test)]
pub(crate) fn shared_fixture(relative: &str) -> Option<String> {
    load(relative).unwrap_or_else(|e| panic!("{e}"))
}

/// The decision itself, apart from the environment so it can be tested. A missing file *inside*
/// a present folder is always an error: that is a broken test, not a missing checkout.
fn locate_in(dir: &Path, relative: &str, required: bool) -> Result<Option<PathBuf>, FixtureError> {
    if !dir.is_dir() {
        if required {
            return Err(FixtureError::Required(dir.to_path_buf()));
        }
        eprintln!(
            "skipped: shared fixtures folder {} not found (wanted {relative}); \
             set {REQUIRE_ENV}=1 to fail instead",
            dir.display()
        );
        return Ok(None);
    }
    let path = dir.join(relative);
    match std::fs::metadata(&path) {
        Ok(_) => Ok(Some(path)),
        Err(source) => Err(FixtureError::Unreadable { path, source }),
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
        assert!(matches!(
            locate_in(&absent(), "captures/x.txt", false),
            Ok(None)
        ));
    }

    #[test]
    fn an_absent_folder_fails_when_required() {
        let err = locate_in(&absent(), "captures/x.txt", true).unwrap_err();
        assert!(matches!(err, FixtureError::Required(_)));
        assert!(err.to_string().contains("CYNC_REQUIRE_SHARED_FIXTURES=1"));
    }

    #[test]
    fn a_missing_file_in_a_present_folder_always_fails() {
        let dir = tempfile::tempdir().unwrap();
        for required in [false, true] {
            let err = locate_in(dir.path(), "captures/x.txt", required).unwrap_err();
            assert!(err.to_string().contains("unreadable"), "{err}");
        }
    }

    #[test]
    fn a_present_file_is_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.txt"), "hello").unwrap();
        let path = locate_in(dir.path(), "x.txt", true).unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "hello");
    }
}
