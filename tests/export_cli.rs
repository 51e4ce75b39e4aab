//! `cync-bridge export` as a user runs it unattended: against the fake cloud, password from a
//! file or the environment, code on standard input; the file it writes, the `.bak` it keeps,
//! the kept token, and what it prints (never a secret).

mod cloud_world;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use cloud_world::{FakeCloud, CODE, EMAIL, HOME, PASSWORD};
use cync_bridge::device::inventory::{Inventory, Syntax};

const BIN: &str = env!("CARGO_BIN_EXE_cync-bridge");

/// Runs `export` with `stdin` as its input; blocking, so the fake keeps serving meanwhile.
async fn export(url: String, data: &Path, extra: &[&str], stdin: &str) -> Output {
    export_with(url, data, extra, stdin, None).await
}

async fn export_with(
    url: String,
    data: &Path,
    extra: &[&str],
    stdin: &str,
    password_env: Option<&str>,
) -> Output {
    let password_env = password_env.map(str::to_owned);
    let data = data.to_owned();
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .arg("export")
            .args(["--email", EMAIL])
            .args(&extra)
            .env("CYNC_CLOUD__API_URL", url)
            .env("CYNC_DATA_DIR", &data)
            .env_remove("CYNC_CLOUD_PASSWORD")
            .envs(password_env.map(|p| ("CYNC_CLOUD_PASSWORD", p)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn password_file(dir: &Path) -> String {
    let path = dir.join("password.txt");
    std::fs::write(&path, format!("{PASSWORD}\n")).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unattended_export_writes_the_device_file_and_keeps_the_old_one_as_bak() {
    let fake = FakeCloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path());
    let args = ["--password-file", pw.as_str()];
    let first = export(fake.url(), dir.path(), &args, &format!("{CODE}\n")).await;
    let said = text(&first);
    assert_eq!(first.status.code(), Some(0), "{said}");
    assert!(said.contains("Saved 3 home(s)"), "{said}");
    assert!(said.contains("Porch Plug: Left Outlet (Porch)"), "{said}");
    assert!(!said.contains(PASSWORD) && !said.contains(CODE), "{said}");
    let file = dir.path().join("cync_devices.yaml");
    let inventory =
        Inventory::parse(&std::fs::read_to_string(&file).unwrap(), Syntax::Yaml).unwrap();
    assert_eq!(inventory.home(HOME).unwrap().devices.len(), 4);
    assert!(
        !dir.path().join("cloud-token.json").exists(),
        "no token kept unasked"
    );

    let second = export(fake.url(), dir.path(), &args, &format!("{CODE}\n")).await;
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert!(dir.path().join("cync_devices.yaml.bak").is_file());
    assert!(text(&second).contains(".bak"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_code_prints_the_sentence_and_leaves_the_old_file_alone() {
    let fake = FakeCloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cync_devices.yaml");
    std::fs::write(&file, "homes: {}\n").unwrap();
    let pw = password_file(dir.path());
    let out = export(
        fake.url(),
        dir.path(),
        &["--password-file", &pw],
        "999999\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out);
    assert!(
        said.contains("did not accept the password and code"),
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "homes: {}\n");
    assert!(!dir.path().join("cync_devices.yaml.bak").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_password_source_it_refuses_before_asking_the_cloud() {
    let fake = FakeCloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = export(fake.url(), dir.path(), &[], "").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("--password-file"), "{}", text(&out));
    assert!(fake.world().code_requests.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_password_from_the_environment_and_a_kept_token_that_spares_the_next_code() {
    let fake = FakeCloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let args = ["--keep-token"];
    let first = export_with(
        fake.url(),
        dir.path(),
        &args,
        &format!("{CODE}\n"),
        Some(PASSWORD),
    )
    .await;
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let token = dir.path().join("cloud-token.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let second = export(fake.url(), dir.path(), &args, "").await;
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert!(text(&second).contains("kept login"), "{}", text(&second));
    assert_eq!(fake.world().code_requests.len(), 1, "no second code");
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_to_a_lan_address_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = export("http://192.168.1.10".to_owned(), dir.path(), &[], "").await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("cloud.api_url"), "{}", text(&out));
}
