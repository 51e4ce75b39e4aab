//! Reading and writing capture files: real traffic and simulator recordings.
//!
//! Exists so that tests, the `decode` subcommand and the simulator share one reader for the two
//! capture formats of `docs/protocol.md#capture-formats` — the MITM capture text ([`text`]) and the
//! 2024 socat hexdumps with hand-written notes ([`socat`]) — and one writer for the text format, so
//! recorded simulator sessions are read back by the same parser. Owns [`Record`], [`Capture`] and
//! [`CaptureError`]. Must never interpret packets (that is `protocol`'s job), never panic on any
//! input, and never drop a bad record silently: every record it cannot take at face value shows up
//! in [`Capture::problems`] or [`Record::length_mismatch`], naming its line.

use std::fmt;
use std::path::{Path, PathBuf};

pub mod socat;
pub mod text;

pub mod fixtures;

pub use socat::parse_socat;
pub use text::{parse_text, write_text_record};

/// Which side sent a record. The cloud (or our replacement for it) is the "server".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Device (or phone app) to server: `DEV→CLOUD` in capture text, `>` in socat logs.
    DeviceToServer,
    /// Server to device: `CLOUD→DEV` in capture text, `<` in socat logs.
    ServerToDevice,
}

impl Direction {
    /// The capture-text spelling (`docs/protocol.md#capture-text`); the arrow is U+2192.
    pub fn label(self) -> &'static str {
        match self {
            Direction::DeviceToServer => "DEV→CLOUD",
            Direction::ServerToDevice => "CLOUD→DEV",
        }
    }

    fn from_label(label: &str) -> Option<Direction> {
        match label {
            "DEV→CLOUD" => Some(Direction::DeviceToServer),
            "CLOUD→DEV" => Some(Direction::ServerToDevice),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One TCP read of one connection as captured. It may hold several packets or part of one
/// (`docs/protocol.md#capture-text`): splitting into packets is the protocol framer's job, not
/// ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Timestamp exactly as written in the file: ISO-8601 UTC in capture text, socat host local
    /// time (`2024/03/11 00:14:27.455916`) in socat logs, empty for a hand-written socat header
    /// that has none.
    pub ts: String,
    #[allow(missing_docs)]
    pub dir: Direction,
    /// Written by the MITM injector rather than by the real peer (`[INJECTED…]` tag).
    pub injected: bool,
    /// Connection id from a `[conn:…]` or `[INJECTED to conn:…]` tag; committed captures have
    /// none, so connections must otherwise be told apart by peer id and timing.
    pub conn: Option<String>,
    /// The bytes of the read, hex decoded; socat's ASCII column and notes are never among them.
    pub bytes: Vec<u8>,
    /// 1-based line of the record's header, for error messages and the decode CLI.
    pub line: usize,
    /// socat only: the header's `length=` disagrees with the bytes we could read, because the
    /// log's author elided or replaced bytes by hand. The bytes we did read are kept.
    pub length_mismatch: Option<LengthMismatch>,
}

/// A socat record whose `length=` and hex lines disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthMismatch {
    /// What the socat header says (`length=`).
    pub declared: usize,
    /// How many bytes the hex lines actually hold.
    pub parsed: usize,
}

/// An `ANNOTATION SET:` block of capture text: the MITM operator's label for what happened next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// 1-based line of the `ANNOTATION SET:` line.
    pub line: usize,
    /// The label after `ANNOTATION SET:`.
    pub label: String,
}

/// The two file formats of `docs/protocol.md#capture-formats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// MITM capture text, also what [`write_text_record`] writes.
    Text,
    #[allow(missing_docs)]
    Socat,
}

/// Everything read from one capture file.
///
/// Design: parsing never stops at a bad record. Good records go to `records`, each unusable line
/// or record to `problems` (both in file order, both naming their line), so `decode` can report a
/// bad record and carry on; callers that want all-or-nothing use [`Capture::strict`].
#[derive(Debug, Default)]
pub struct Capture {
    /// Records that parsed, in file order.
    pub records: Vec<Record>,
    /// Annotation blocks (capture text only), in file order.
    pub annotations: Vec<Annotation>,
    /// Records and lines that could not be used, in file order.
    pub problems: Vec<CaptureError>,
}

impl Capture {
    /// The records, or the first problem if there was any. socat length mismatches are flags on
    /// records, not problems, so they do not fail this.
    pub fn strict(mut self) -> Result<Vec<Record>, CaptureError> {
        if self.problems.is_empty() {
            Ok(self.records)
        } else {
            Err(self.problems.swap_remove(0))
        }
    }
}

/// Why a line or record of a capture could not be used. Every variant names the 1-based line.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A line ending in `bytes)` that is not a valid capture-text header.
    #[error("line {line}: bad capture header ({reason}): {text:?}")]
    BadHeader {
        /// Line of the header.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
        /// The start of the line.
        text: String,
    },
    /// A header with no hex line after it.
    #[error("line {line}: header announces {declared} bytes but no hex line follows")]
    MissingHex {
        /// Line of the header.
        line: usize,
        /// Byte count of the header.
        declared: usize,
    },
    /// A hex line with something that is not a two-digit hex byte.
    #[error("line {line}: {token:?} is not a hex byte")]
    InvalidHex {
        /// Line of the hex bytes.
        line: usize,
        /// The offending token (shortened).
        token: String,
    },
    /// A hex line whose byte count differs from its header's.
    #[error("line {line}: header says {declared} bytes but the hex line holds {found}")]
    CountMismatch {
        /// Line of the hex bytes.
        line: usize,
        /// Byte count of the header.
        declared: usize,
        /// Bytes on the hex line.
        found: usize,
    },
    /// A capture-text line that is neither header, hex, annotation nor blank.
    #[error("line {line}: unexpected line in capture text: {text:?}")]
    UnexpectedLine {
        #[allow(missing_docs)]
        line: usize,
        /// The start of the line.
        text: String,
    },
    /// socat: a hex line after a hand-written note inside the same record. Such lines are
    /// examples the author pasted (Bulb.md pastes the next message), so they are not taken.
    #[error("line {line}: hex after a note inside a socat record; not taken as record bytes")]
    HexAfterNote {
        /// The ignored hex line.
        line: usize,
    },
    /// [`parse_any`] found neither a capture-text nor a socat header.
    #[error(
        "not a capture: no `<timestamp> DEV→CLOUD (N bytes)` header and no socat \
         `> yyyy/mm/dd hh:mm:ss.ffffff  length=N` header found"
    )]
    UnknownFormat,
    /// The capture file could not be read.
    #[error("cannot read capture {path}: {source}")]
    Io {
        #[allow(missing_docs)]
        path: PathBuf,
        /// The I/O error (non-UTF-8 content shows up as `InvalidData`).
        source: std::io::Error,
    },
}

/// Which format `input` is in, judged by its first recognisable line. Not simply the first
/// non-empty line: the socat logs are Markdown files that open with prose and a device table.
pub fn detect(input: &str) -> Option<Format> {
    input.lines().find_map(|line| {
        if text::is_header(line) {
            Some(Format::Text)
        } else if socat::is_full_header(line) {
            Some(Format::Socat)
        } else {
            None
        }
    })
}

/// Parses `input` in whichever format [`detect`] finds.
pub fn parse_any(input: &str) -> Result<Capture, CaptureError> {
    match detect(input) {
        Some(Format::Text) => Ok(parse_text(input)),
        Some(Format::Socat) => Ok(parse_socat(input)),
        None => Err(CaptureError::UnknownFormat),
    }
}

/// Reads and parses a capture file of either format.
pub fn read_path(path: &Path) -> Result<Capture, CaptureError> {
    let input = std::fs::read_to_string(path).map_err(|source| CaptureError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_any(&input)
}

/// One byte from exactly two hex digits, either case. `u8::from_str_radix` is not used because
/// it also accepts a sign (`+f`).
fn hex_byte(token: &str) -> Option<u8> {
    match token.as_bytes() {
        [high, low] => Some(hex_digit(*high)? << 4 | hex_digit(*low)?),
        _ => None,
    }
}

fn hex_digit(digit: u8) -> Option<u8> {
    // `to_digit` accepts only 0-9, a-f, A-F for radix 16, and its result fits in a nibble.
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// The start of a line for an error message, so a huge garbage line does not become a huge
/// error.
fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::shared_fixture;
    use super::*;

    #[test]
    fn hex_byte_takes_exactly_two_digits_of_either_case() {
        assert_eq!(hex_byte("7e"), Some(0x7e));
        assert_eq!(hex_byte("FF"), Some(0xff));
        assert_eq!(hex_byte("+f"), None);
        assert_eq!(hex_byte("7"), None);
        assert_eq!(hex_byte("7e0"), None);
        assert_eq!(hex_byte("é"), None);
    }

    #[test]
    fn excerpt_shortens_long_lines_on_a_char_boundary() {
        let long = "→".repeat(100);
        let short = excerpt(&long);
        assert_eq!(short.chars().count(), 81);
        assert!(short.ends_with('…'));
    }

    #[test]
    fn detection_skips_markdown_prose_before_a_socat_header() {
        let input = "# Plug\n\nsome prose\n> 2024/03/11 00:14:27.455916  length=1 from=0 to=0\n";
        assert_eq!(detect(input), Some(Format::Socat));
        let input = "2025-11-06T08:20:40.078068 CLOUD→DEV (1 bytes)\n28\n";
        assert_eq!(detect(input), Some(Format::Text));
        assert!(matches!(
            parse_any("hello\nworld\n"),
            Err(CaptureError::UnknownFormat)
        ));
    }

    #[test]
    fn strict_returns_the_first_problem() {
        let capture = parse_text("garbage\n2025-01-01T00:00:00 DEV→CLOUD (1 bytes)\nzz\n");
        assert_eq!(capture.problems.len(), 2);
        assert!(matches!(
            capture.strict(),
            Err(CaptureError::UnexpectedLine { line: 1, .. })
        ));
    }

    #[test]
    fn read_path_parses_a_file_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim-session.txt");
        let mut out = String::new();
        write_text_record(
            &mut out,
            "2025-01-01T00:00:00",
            Direction::DeviceToServer,
            &[0xd3],
        )
        .unwrap();
        std::fs::write(&path, out).unwrap();
        let records = read_path(&path).unwrap().strict().unwrap();
        assert_eq!(records[0].bytes, [0xd3]);
        let missing = dir.path().join("missing.txt");
        let error = read_path(&missing).unwrap_err();
        assert!(error.to_string().contains("missing.txt"), "{error}");
    }

    #[test]
    fn every_shared_fixture_is_detected_in_its_format() {
        let files = [
            ("captures/home-25-devices-20251106.txt", Format::Text),
            ("captures/tls-clienthellos-20251106.txt", Format::Text),
            (
                "switch-mode-2025/switch-mode-capture-20251007.txt",
                Format::Text,
            ),
            ("socat-2024/Plug.md", Format::Socat),
            ("socat-2024/Bulb.md", Format::Socat),
            ("socat-2024/App.md", Format::Socat),
        ];
        for (name, format) in files {
            let Some(input) = shared_fixture(name) else {
                return;
            };
            assert_eq!(detect(&input), Some(format), "{name}");
        }
    }
}
