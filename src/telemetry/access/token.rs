//! The admin token: a random secret in `data_dir`, created on first start with mode 0600.
//!
//! Why a file: the `cync-bridge` subcommands that call admin endpoints run on the same machine
//! (or in the same container) as the bridge and can read it, while nothing that merely reaches
//! the telemetry port — which the add-on and Compose bind to 0.0.0.0 — can. The token is never
//! printed, logged or put in an error message; errors name only the file.
//!
//! The CSRF token is derived from it (HMAC-SHA256 of a fixed label keyed by the admin token):
//! nothing to store, it changes when the token file is replaced, and a page that does not hold
//! the admin token cannot compute it.

use std::fmt;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

/// File name of the token inside `data_dir`.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// 32 random bytes, hex-encoded.
const TOKEN_HEX_LEN: usize = 64;

/// What HMAC keyed by the admin token signs to make the CSRF token; a new version string
/// invalidates every issued CSRF token.
const CSRF_LABEL: &[u8] = b"cync-bridge csrf v1";

/// Why the token could not be loaded or created. Every message names the file, never its content.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // fields: the file, and the I/O error the message already shows
pub enum TokenError {
    /// Reading, creating or restricting the file failed.
    #[error("admin token file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file exists but does not hold a token this bridge wrote (its content is not shown).
    #[error("admin token file {path} is malformed; delete it to have a new one generated")]
    Malformed { path: PathBuf },
    /// The system random generator or HMAC failed.
    #[error("admin token: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

/// The secret; `Debug` does not show it.
#[derive(Clone)]
pub struct AdminToken {
    secret: String,
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// Reads `data_dir/admin-token`, creating `data_dir` and the file (0600) if missing; a file
    /// readable by group or others is restricted to 0600 with a warning.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, TokenError> {
        let path = data_dir.join(ADMIN_TOKEN_FILE);
        let io = |source| TokenError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let mut bytes = [0u8; TOKEN_HEX_LEN / 2];
        openssl::rand::rand_bytes(&mut bytes)?;
        let secret = hex(&bytes);
        match create_private(&path) {
            Ok(mut file) => {
                file.write_all(format!("{secret}\n").as_bytes())
                    .map_err(io)?;
                file.sync_all().map_err(io)?;
                tracing::info!(path = %path.display(), "admin token created");
                Ok(Self { secret })
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                restrict_if_shared(&path).map_err(io)?;
                Self::read_file(&path)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Reads the token a running bridge keeps in `data_dir` (the client side).
    pub fn read(data_dir: &Path) -> Result<Self, TokenError> {
        Self::read_file(&data_dir.join(ADMIN_TOKEN_FILE))
    }

    fn read_file(path: &Path) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Io {
            path: path.to_owned(),
            source,
        })?;
        let secret = text.trim();
        let well_formed =
            secret.len() == TOKEN_HEX_LEN && secret.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed {
            return Err(TokenError::Malformed {
                path: path.to_owned(),
            });
        }
        Ok(Self {
            secret: secret.to_owned(),
        })
    }

    /// Whether `candidate` is the token, compared in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        candidate.len() == self.secret.len()
            && openssl::memcmp::eq(candidate.as_bytes(), self.secret.as_bytes())
    }

    /// The value of an `Authorization` header carrying the token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.secret)
    }

    /// The CSRF token bound to this admin token (hex HMAC-SHA256).
    pub fn csrf_token(&self) -> Result<String, TokenError> {
        let key = openssl::pkey::PKey::hmac(self.secret.as_bytes())?;
        let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)?;
        signer.update(CSRF_LABEL)?;
        Ok(hex(&signer.sign_to_vec()?))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn restrict_if_shared(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "admin token file was readable by others; restricted to 0600");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_if_shared(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_created_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let first = AdminToken::load_or_create(&data_dir).unwrap();
        let again = AdminToken::load_or_create(&data_dir).unwrap();
        let client = AdminToken::read(&data_dir).unwrap();
        assert_eq!(first.secret, again.secret);
        assert_eq!(first.secret, client.secret);
        assert!(first.matches(&client.secret));
        assert!(!first.matches(&client.secret[1..]));
        assert!(!format!("{first:?}").contains(&first.secret));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let path = data_dir.join(ADMIN_TOKEN_FILE);
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = AdminToken::load_or_create(dir.path()).unwrap();
        assert_ne!(other.secret, first.secret);
        assert_ne!(other.csrf_token().unwrap(), first.csrf_token().unwrap());
    }

    #[test]
    fn a_malformed_file_is_refused_without_showing_its_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ADMIN_TOKEN_FILE), "hunter2\n").unwrap();
        let error = AdminToken::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(error, TokenError::Malformed { .. }));
        assert!(!error.to_string().contains("hunter2"));
    }
}
