//! Writing what an export produced: the device file and, only when asked, the login token.
//!
//! The device file is written to a temporary file in the same directory, flushed to disk and
//! renamed over the old one, so a reader (the running bridge) sees the old or the new file,
//! never half of one; the old file is kept as `<name>.bak`. The token file is created 0600
//! before anything is written into it.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::wire::Token;

/// The device file's name in `data_dir`; `serve` reads it when no other device file is set.
pub const DEVICE_FILE: &str = "cync_devices.yaml";

/// The saved token's name in `data_dir` (only with `--keep-token`).
pub const TOKEN_FILE: &str = "cloud-token.json";

/// Writes `text` to `path` atomically, keeping the previous file as `.bak`. Refuses an empty
/// text, so a failed export can never replace a good file with nothing.
pub fn write_device_file(path: &Path, text: &str) -> std::io::Result<()> {
    if text.trim().is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "refusing to write an empty device file",
        ));
    }
    let dir = parent(path);
    fs::create_dir_all(&dir)?;
    let mut temp = tempfile_in(&dir, path)?;
    let result = (|| {
        temp.1.write_all(text.as_bytes())?;
        temp.1.sync_all()?;
        if path.exists() {
            fs::copy(path, backup(path))?;
        }
        fs::rename(&temp.0, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp.0);
    }
    result
}

/// `<path>.bak`.
pub fn backup(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    path.with_file_name(name)
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn tempfile_in(dir: &Path, target: &Path) -> std::io::Result<(PathBuf, fs::File)> {
    let stem = target.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(".{stem}.{}.tmp", std::process::id()));
    let file = fs::File::create(&temp)?;
    Ok((temp, file))
}

/// Saves the token as JSON in a file only the owner can read.
pub fn write_token(path: &Path, token: &Token) -> std::io::Result<()> {
    let json = serde_json::to_vec(token)?;
    fs::create_dir_all(parent(path))?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // An older file keeps its mode through `open`; make sure it is private too.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(&json)?;
    file.sync_all()
}

/// Reads a saved token; `None` when there is none or it cannot be read.
pub fn read_token(path: &Path) -> Option<Token> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_write_keeps_the_first_as_bak_and_empty_text_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(DEVICE_FILE);
        write_device_file(&path, "homes: {}\n").unwrap();
        write_device_file(&path, "homes: {a: 1}\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "homes: {a: 1}\n");
        assert_eq!(fs::read_to_string(backup(&path)).unwrap(), "homes: {}\n");
        assert!(write_device_file(&path, "  \n").is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "homes: {a: 1}\n");
        let leftovers = fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 2, "no temporary file left behind");
    }

    #[cfg(unix)]
    #[test]
    fn the_token_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE);
        fs::write(&path, "old").unwrap();
        let token = Token {
            access_token: "a".into(),
            refresh_token: "r".into(),
            user_id: 7,
            expire_in: Some(1),
            authorize: "z".into(),
        };
        write_token(&path, &token).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_token(&path), Some(token));
    }
}
