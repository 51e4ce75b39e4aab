//! `cync-bridge config`: print the effective configuration — defaults, the file and the
//! environment merged — as TOML, after validating it, with secrets redacted. What a user pastes
//! into a bug report, so it must never contain a password.

use std::io::Write;

use super::common::{ConfigArgs, EXIT_CONFIG};
use crate::config::{self, ConfigFile, RawConfig};

/// What replaces a secret that is set.
pub const REDACTED: &str = "<redacted>";

/// Arguments of `cync-bridge config`.
#[derive(Debug, clap::Args)]
pub struct ConfigCmdArgs {
    #[command(flatten)]
    /// Configuration.
    pub config: ConfigArgs,
}

/// Runs `config`; returns the exit status (2 when the configuration is invalid).
pub fn run(args: &ConfigCmdArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let file = match &args.config.config {
        Some(path) => ConfigFile::Explicit(path.clone()),
        None => ConfigFile::Default,
    };
    let figment = match config::figment(&file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cync-bridge: configuration error: {e}");
            return Ok(EXIT_CONFIG);
        }
    };
    if let Err(e) = config::validate(&figment) {
        eprintln!("cync-bridge: configuration error: {e}");
        return Ok(EXIT_CONFIG);
    }
    let mut raw: RawConfig = figment.extract()?;
    redact(&mut raw);
    writeln!(out, "{}", toml::to_string_pretty(&raw)?)?;
    Ok(0)
}

/// Replaces every secret that is set; an empty secret stays empty so "no password" is visible.
pub fn redact(raw: &mut RawConfig) {
    if !raw.mqtt.password.is_empty() {
        raw.mqtt.password = REDACTED.to_owned();
    }
    // A URL may carry credentials (`mqtt://user:pass@host`) even though we ask for the keys.
    if let Some((scheme, rest)) = raw.mqtt.url.split_once("://") {
        if let Some((_, host)) = rest.rsplit_once('@') {
            raw.mqtt.url = format!("{scheme}://{REDACTED}@{host}");
        }
    }
}
