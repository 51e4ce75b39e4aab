//! Log set-up, correlation ids and redaction of secrets.
//!
//! Why it exists: a command's story spans MQTT, the transport, a session and a device; one
//! correlation id (UUIDv7, so ids sort by creation time) lets an operator grep it end to end, and
//! JSON lines let a log pipeline index the peer id and msg id of every packet. It owns the global
//! `tracing` subscriber set-up and the helpers that decide what may appear in a log line.
//!
//! What it must never do: panic (a second `init` returns an error and leaves the first subscriber
//! in place), write to stdout (subcommands such as `toggle` print their one JSON result line
//! there, so logs go to stderr), or print a secret — auth codes go through [`redact_auth_code`].

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::filter::{EnvFilter, ParseError};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line, event fields flattened, with the current span's fields; for
    /// log pipelines and the Home Assistant add-on log.
    #[default]
    Json,
    /// Human-readable lines (coloured when stderr is a terminal); for running by hand.
    Human,
}

impl FromStr for LogFormat {
    type Err = LoggingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "human" => Ok(Self::Human),
            other => Err(LoggingError::UnknownFormat(other.to_owned())),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Human => "human",
        })
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter is not a valid `tracing` `EnvFilter` directive list.
    #[error("invalid log filter {filter:?} (expected e.g. \"info\" or \"info,cync_bridge::server=debug\"): {source}")]
    InvalidFilter {
        /// The filter as given.
        filter: String,
        /// What the parser objected to.
        #[source]
        source: ParseError,
    },
    /// A log format other than `json` or `human` was asked for.
    #[error("unknown log format {0:?} (expected \"json\" or \"human\")")]
    UnknownFormat(String),
    /// A global subscriber is already installed (`init` was called before); it stays in place.
    #[error("logging is already initialised; keeping the existing subscriber")]
    AlreadyInitialised(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Installs the global `tracing` subscriber: `format` output on stderr, filtered by `filter`
/// (`EnvFilter` syntax, e.g. `info,cync_bridge::server=debug`).
pub fn init(format: LogFormat, filter: &str) -> Result<(), LoggingError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|source| LoggingError::InvalidFilter {
        filter: filter.to_owned(),
        source,
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    installed.map_err(LoggingError::AlreadyInitialised)
}

/// A new correlation id for one command (UUIDv7: time-ordered, so log lines sort with it).
pub fn new_correlation_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// Characters of an auth code a log line may show.
const AUTH_CODE_SHOWN: usize = 4;

/// An auth code fit for a log line: its first four characters then `…`, enough to tell two
/// devices' codes apart, too little to replay one.
///
/// Codes of eight bytes or fewer show nothing but `…` (four characters would be half the secret
/// or all of it). Non-printable bytes are shown escaped (`\x01`), so the output is always one line.
pub fn redact_auth_code(code: &[u8]) -> String {
    let mut out = String::with_capacity(AUTH_CODE_SHOWN * 4 + 3);
    if code.len() > 2 * AUTH_CODE_SHOWN {
        for &byte in code.iter().take(AUTH_CODE_SHOWN) {
            out.extend(std::ascii::escape_default(byte).map(char::from));
        }
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_codes_show_four_characters_at_most() {
        assert_eq!(redact_auth_code(b"a1b2c3d4e5f6a7b8"), "a1b2…");
        assert_eq!(
            redact_auth_code(b"\x01\x02\"\x7fsecretsecret"),
            "\\x01\\x02\\\"\\x7f…"
        );
        assert_eq!(redact_auth_code(b"12345678"), "…");
        assert_eq!(redact_auth_code(b""), "…");
    }

    #[test]
    fn correlation_ids_are_unique_uuid_v7() {
        let a = new_correlation_id();
        let b = new_correlation_id();
        assert_eq!(a.get_version(), Some(uuid::Version::SortRand));
        assert_ne!(a, b);
    }

    #[test]
    fn formats_parse_from_their_config_names() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("human".parse::<LogFormat>().unwrap(), LogFormat::Human);
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
