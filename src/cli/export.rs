//! `cync-bridge export`: log in to the Cync account (email, password, the code the cloud
//! emails), read the homes, devices and rooms, and write the bridge's device file into
//! `data_dir`, where `serve` finds it without further configuration.
//!
//! Interactive on a terminal (the password is read without echo); for scripts, the password
//! comes from `--password-file` or `CYNC_CLOUD_PASSWORD` and the code from standard input, so
//! no secret is ever in the argument list (which every user of the machine can read). The
//! password and the code are used once and kept nowhere; the token is kept only with
//! `--keep-token`, in a file only the owner can read.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::common::{self, ConfigArgs};
use crate::cloud::save::{self, DEVICE_FILE, TOKEN_FILE};
use crate::cloud::{self, CloudClient, CloudError, Summary, Token};
use crate::config::Config;

/// Environment variable holding the password for unattended runs.
pub const PASSWORD_ENV: &str = "CYNC_CLOUD_PASSWORD";

/// Exit status when the cloud refused or could not be reached (the sentence says why).
pub const EXIT_CLOUD: u8 = 1;

/// Arguments of `cync-bridge export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    /// Configuration.
    pub config: ConfigArgs,
    /// The email you sign in to the Cync app with (asked for when absent).
    #[arg(long, env = "CYNC_CLOUD_EMAIL")]
    pub email: Option<String>,
    /// Read the password from the first line of this file. Without it: the environment
    /// variable CYNC_CLOUD_PASSWORD, else asked on the terminal without echo.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Read the emailed code from standard input (one line) even on a terminal.
    #[arg(long)]
    pub code_from_stdin: bool,
    /// Where to write the device file. Default: data_dir/cync_devices.yaml.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Keep the login token in data_dir/cloud-token.json (mode 0600), so the next export
    /// needs no new code while the token lasts.
    #[arg(long)]
    pub keep_token: bool,
}

/// Runs `export`; returns the exit status.
pub fn run(args: &ExportArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let config = match common::load_config(&args.config) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    common::runtime()?.block_on(export(&config, args, out))
}

async fn export(config: &Config, args: &ExportArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let client = CloudClient::new(config.cloud.clone());
    let token_file = config.data_dir.join(TOKEN_FILE);
    let account = match saved_session(&client, &token_file, out).await? {
        Some(account) => account,
        None => {
            let token = match login(&client, args, out).await? {
                Ok(token) => token,
                Err(code) => return Ok(code),
            };
            if args.keep_token {
                save::write_token(&token_file, &token).with_context(|| {
                    format!("cannot keep the token in {}", token_file.display())
                })?;
            }
            match client.account(&token).await {
                Ok(account) => account,
                Err(error) => return Ok(fail(&error)),
            }
        }
    };
    let (file, summary) = cloud::device_file(&account);
    let text = cloud::render(&file).map_err(anyhow::Error::msg)?;
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| config.data_dir.join(DEVICE_FILE));
    let had_file = path.exists();
    save::write_device_file(&path, &text)
        .with_context(|| format!("cannot write the device file {}", path.display()))?;
    report(out, &summary, &path, had_file)?;
    if let Some(other) = config.devices.file.as_ref().filter(|f| **f != path) {
        writeln!(
            out,
            "Note: the bridge reads {} (devices.file); empty that setting to use this export.",
            other.display()
        )?;
    }
    Ok(0)
}

/// The account read with a kept token, or `None` when there is none or it has expired (then
/// it is deleted and the caller logs in).
async fn saved_session(
    client: &CloudClient,
    token_file: &Path,
    out: &mut impl Write,
) -> anyhow::Result<Option<cloud::Account>> {
    let Some(token) = save::read_token(token_file) else {
        return Ok(None);
    };
    match client.account(&token).await {
        Ok(account) => {
            writeln!(out, "Using the kept login ({}).", token_file.display())?;
            Ok(Some(account))
        }
        Err(error) if error.needs_login() => {
            let _ = std::fs::remove_file(token_file);
            writeln!(out, "The kept login has expired; logging in again.")?;
            Ok(None)
        }
        Err(error) => Err(anyhow::anyhow!("{error}")),
    }
}

/// Email, password, code → token. `Err(code)`: the problem was printed.
async fn login(
    client: &CloudClient,
    args: &ExportArgs,
    out: &mut impl Write,
) -> anyhow::Result<Result<Token, u8>> {
    let interactive = std::io::stdin().is_terminal() && !args.code_from_stdin;
    let email = match &args.email {
        Some(email) => email.trim().to_owned(),
        None if interactive => prompt_line(out, "Cync account email: ")?,
        None => anyhow::bail!("give the account email with --email or CYNC_CLOUD_EMAIL"),
    };
    let password = password(args, interactive)?;
    if let Err(error) = client.request_code(&email).await {
        return Ok(Err(fail(&error)));
    }
    writeln!(out, "The Cync cloud has emailed a login code to {email}.")?;
    let code = if interactive {
        prompt_line(out, "Code from the email: ")?
    } else {
        out.flush()?;
        read_stdin_line()?
    };
    let code = code.trim().to_owned();
    if code.is_empty() || !code.chars().all(|c| c.is_ascii_digit()) {
        anyhow::bail!("the code is the digits from the email; none were given");
    }
    Ok(client
        .login(&email, &password, &code)
        .await
        .map_err(|error| fail(&error)))
}

fn password(args: &ExportArgs, interactive: bool) -> anyhow::Result<String> {
    if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the password file {}", path.display()))?;
        return Ok(text.lines().next().unwrap_or_default().to_owned());
    }
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(password);
    }
    if interactive {
        return rpassword::prompt_password("Cync password (not shown): ")
            .context("cannot read the password from the terminal");
    }
    anyhow::bail!(
        "no password: give --password-file FILE or set {PASSWORD_ENV} (a password in the \
         argument list would be visible to every user of this machine)"
    )
}

fn prompt_line(out: &mut impl Write, prompt: &str) -> anyhow::Result<String> {
    write!(out, "{prompt}")?;
    out.flush()?;
    read_stdin_line()
}

fn read_stdin_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read standard input")?;
    Ok(line.trim().to_owned())
}

fn fail(error: &CloudError) -> u8 {
    eprintln!("cync-bridge export: {error}");
    EXIT_CLOUD
}

fn report(
    out: &mut impl Write,
    summary: &Summary,
    path: &Path,
    had_file: bool,
) -> anyhow::Result<()> {
    let devices: usize = summary.homes.iter().map(|h| h.devices.len()).sum();
    let groups: usize = summary.homes.iter().map(|h| h.groups).sum();
    writeln!(
        out,
        "Saved {} home(s), {devices} device(s) and {groups} room(s)/group(s) to {}.",
        summary.homes.len(),
        path.display()
    )?;
    if had_file {
        writeln!(
            out,
            "The previous file is kept as {}.",
            save::backup(path).display()
        )?;
    }
    for home in &summary.homes {
        writeln!(out, "  {} (id {}):", home.name, home.id)?;
        for device in &home.devices {
            writeln!(out, "    {device}")?;
        }
    }
    for note in &summary.notes {
        writeln!(out, "  note: {note}")?;
    }
    writeln!(
        out,
        "A running `cync-bridge serve` picks the file up by itself; otherwise start it now."
    )?;
    Ok(())
}
