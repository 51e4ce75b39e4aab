//! The setup page in a real browser (Debian's chromium through chromedriver): the page loads
//! from the running `serve`, the status shows the simulated relays, a wrong code shows the
//! error sentence, and the import completes against the fake cloud and saves the device file
//! the bridge then lists. Skips without chromedriver unless `CYNC_REQUIRE_BROWSER=1`. Without
//! a browser: the page's routes answer only as the admin access rule allows.
//! `CYNC_SETUP_SCREENSHOTS=<dir>` saves the two main screens there (docs/ holds copies).

mod cloud_world;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cloud_world::{FakeCloud, CODE, EMAIL, PASSWORD};
use cync_bridge::sim::{HomeBuilder, SimConfig, SimHandle, Simulator};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_cync-bridge");
const PATIENCE: Duration = Duration::from_secs(30);

fn chromedriver() -> Option<PathBuf> {
    let found = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        if std::env::var("CYNC_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("chromedriver is required but not installed (apt-get install chromium chromium-driver)");
        }
        eprintln!(
            "SKIPPED: chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver(binary: &Path) -> (Child, u16) {
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

async fn browser(port: u16) -> Client {
    let mut caps = serde_json::Map::new();
    let mut options = json!({"args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--window-size=412,1100",
    ]});
    if Path::new("/usr/bin/chromium").exists() {
        options["binary"] = json!("/usr/bin/chromium");
    }
    caps.insert("goog:chromeOptions".to_owned(), options);
    ClientBuilder::native()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap()
}

/// `serve` with this machine as an ingress peer (as the Supervisor is for the add-on), MQTT
/// off; returns the child, the device address and the telemetry address.
async fn serve(data: &Path, cloud: &FakeCloud) -> (Child, String, String) {
    serve_with(data, cloud, r#"["127.0.0.1"]"#).await
}

async fn serve_with(data: &Path, cloud: &FakeCloud, ingress: &str) -> (Child, String, String) {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CYNC_")) {
        command.env_remove(key);
    }
    let mut child = command
        .arg("serve")
        .env("CYNC_DATA_DIR", data)
        .env("CYNC_TIMEZONE", "UTC")
        .env("CYNC_SERVER__LISTEN", "127.0.0.1:0")
        .env("CYNC_TELEMETRY__LISTEN", "127.0.0.1:0")
        .env("CYNC_TELEMETRY__INGRESS_PEERS", ingress)
        .env("CYNC_SERVER__SESSION_OPEN_DELAY", "10ms")
        .env("CYNC_SERVER__MESH_INFO_DELAY", "10ms")
        .env("CYNC_TELEMETRY__LOG_FORMAT", "json")
        .env("CYNC_MQTT__ENABLED", "false")
        .env("CYNC_CLOUD__API_URL", cloud.url())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (devices, telemetry) = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let json: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if json["message"] == "cync-bridge serving" {
                let field = |name: &str| json[name].as_str().unwrap().to_owned();
                return (field("devices"), field("telemetry"));
            }
        }
        panic!("serve ended before serving");
    })
    .await
    .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, devices, telemetry)
}

/// Three Wi-Fi relays (lamp, plug, fan) and a Bluetooth bulb behind the lamp.
async fn simulate(devices: &str) -> SimHandle {
    let home = HomeBuilder::new("Home", 4)
        .wifi(1, 147)
        .bluetooth(2, 21)
        .wifi(3, 67)
        .wifi(4, 81)
        .relays(1, &[2])
        .build()
        .unwrap();
    let sim = Simulator::start(SimConfig::new(3, vec![home]), devices.parse().unwrap())
        .await
        .unwrap();
    sim.wait_ready(PATIENCE).await.unwrap();
    sim
}

/// Waits until the element's text satisfies `want`; returns it.
async fn text_until(client: &Client, id: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(element) = client.find(Locator::Id(id)).await {
            last = element.text().await.unwrap_or_default();
            if want(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("#{id} never matched; last text: {last:?}");
}

/// Saves the screen with element `id` scrolled into view.
async fn screenshot(client: &Client, name: &str, id: &str) {
    let Ok(dir) = std::env::var("CYNC_SETUP_SCREENSHOTS") else {
        return;
    };
    let scroll = format!("document.getElementById('{id}').scrollIntoView()");
    client.execute(&scroll, Vec::new()).await.unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(Path::new(&dir).join(name), png).unwrap();
}

async fn type_into(client: &Client, id: &str, text: &str) {
    let field = client.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(client: &Client, id: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_setup_page_shows_the_relays_and_imports_the_account() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let cloud = FakeCloud::start().await;
    let data = tempfile::tempdir().unwrap();
    let (_serve, devices, telemetry) = serve(data.path(), &cloud).await;
    let sim = simulate(&devices).await;
    let (_driver, port) = start_driver(&driver).await;
    let client = browser(port).await;
    client
        .goto(&format!("http://{telemetry}/setup"))
        .await
        .unwrap();
    text_until(&client, "relays", |t| t == "3").await;
    text_until(&client, "devices", |t| t.starts_with("4 seen / 0 listed")).await;
    text_until(&client, "device-file", |t| t.contains("import")).await;
    screenshot(&client, "setup-status.png", "status-title").await;

    type_into(&client, "email", EMAIL).await;
    type_into(&client, "password", PASSWORD).await;
    click(&client, "send-code").await;
    text_until(&client, "code-sent", |t| t.contains(EMAIL)).await;
    type_into(&client, "code", "999999").await;
    click(&client, "login").await;
    let error = text_until(&client, "error", |t| !t.is_empty()).await;
    assert!(
        error.contains("did not accept the password and code"),
        "{error}"
    );
    text_until(&client, "errors", |t| t.contains("did not accept")).await;

    type_into(&client, "code", CODE).await;
    click(&client, "login").await;
    let found = text_until(&client, "homes", |t| t.contains("Office Lamp")).await;
    assert!(found.contains("Porch Plug: Left Outlet (Porch)"), "{found}");
    screenshot(&client, "setup-import.png", "import-title").await;
    click(&client, "save").await;
    text_until(&client, "saved", |t| t.contains("Saved to")).await;
    assert!(data.path().join("cync_devices.yaml").is_file());
    text_until(&client, "devices", |t| t.contains("/ 6 listed")).await;
    client.close().await.unwrap();
    sim.shutdown().await;
}

/// One raw HTTP/1.1 request; returns the status line.
async fn status_line(addr: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

/// No browser needed: the page's routes are admin routes.
#[tokio::test(flavor = "multi_thread")]
async fn the_setup_routes_sit_behind_the_admin_access_rule() {
    let cloud = FakeCloud::start().await;
    let data = tempfile::tempdir().unwrap();
    let (_direct, _, telemetry) = serve_with(data.path(), &cloud, "[]").await;
    let get = format!("GET /setup/ HTTP/1.1\r\nHost: {telemetry}\r\nConnection: close\r\n\r\n");
    assert!(
        status_line(&telemetry, &get).await.contains(" 401 "),
        "no token, no page"
    );

    let data = tempfile::tempdir().unwrap();
    let (_ingress, _, telemetry) = serve(data.path(), &cloud).await;
    let get =
        format!("GET /setup/status HTTP/1.1\r\nHost: {telemetry}\r\nConnection: close\r\n\r\n");
    assert!(status_line(&telemetry, &get).await.contains(" 200 "));
    let body = format!(r#"{{"email":"{EMAIL}"}}"#);
    let post = format!(
        "POST /setup/code HTTP/1.1\r\nHost: {telemetry}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert!(
        status_line(&telemetry, &post).await.contains(" 403 "),
        "no CSRF token"
    );
    assert!(
        cloud.world().code_requests.is_empty(),
        "nothing reached the cloud"
    );
}
