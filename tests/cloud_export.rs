//! The account client and the device file it produces, against the fake cloud on loopback: the
//! whole login → homes → devices flow, each failure's sentence, and the file read back by the
//! bridge's own reader.

mod cloud_world;

use std::time::Duration;

use cloud_world::{FakeCloud, Style, CODE, EMAIL, HOME, NAMELESS, PASSWORD, TWIN};
use cync_bridge::cloud::{self, ApiUrl, CloudClient, CloudError, CloudSettings, Step};
use cync_bridge::device::inventory::{Inventory, Syntax};

fn client(url: &str) -> CloudClient {
    CloudClient::new(CloudSettings {
        api: ApiUrl::parse(url).unwrap(),
        timeout: Duration::from_secs(5),
    })
}

async fn export(fake: &FakeCloud) -> Result<cloud::Account, CloudError> {
    let client = client(&fake.url());
    client.request_code(EMAIL).await?;
    let token = client.login(EMAIL, PASSWORD, CODE).await?;
    client.account(&token).await
}

#[tokio::test]
async fn the_code_travels_as_typed_and_the_secrets_stay_out_of_urls_and_debug() {
    let fake = FakeCloud::start().await;
    let client = client(&fake.url());
    client.request_code(EMAIL).await.unwrap();
    let token = client.login(EMAIL, PASSWORD, CODE).await.unwrap();
    let world = fake.world();
    assert_eq!(world.code_requests[0]["email"], EMAIL);
    assert_eq!(world.logins[0]["two_factor"], "012345", "leading zero kept");
    let resource = world.logins[0]["resource"].as_str().unwrap().to_owned();
    assert!(resource.len() == 16 && resource.chars().all(|c| c.is_ascii_lowercase()));
    for request in &world.requests {
        assert!(
            !request.contains("wörd") && !request.contains(CODE),
            "{request}"
        );
    }
    let debug = format!("{token:?}");
    assert!(!debug.contains(&token.access_token) && debug.contains("123456789"));
}

#[tokio::test]
async fn an_account_becomes_homes_devices_endpoints_and_rooms_with_areas() {
    let fake = FakeCloud::start().await;
    let account = export(&fake).await.unwrap();
    let (file, summary) = cloud::device_file(&account);
    let names: Vec<&str> = file.homes.keys().map(String::as_str).collect();
    assert_eq!(names, ["Cync home 555555555", "Home", "Home (123456789)"]);
    assert_eq!(file.homes["Home (123456789)"].id, TWIN);
    assert_eq!(file.homes["Cync home 555555555"].id, NAMELESS);
    let home = &file.homes["Home"];
    assert_eq!(home.id, HOME);
    assert_eq!(
        home.devices.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let plug = &home.devices[&3];
    assert_eq!(plug.name, "Porch Plug");
    assert_eq!(plug.wifi_mac.as_deref(), Some("34:13:43:78:D9:2E"));
    assert_eq!(
        plug.endpoints
            .iter()
            .map(|(e, n)| format!("{e}={n}"))
            .collect::<Vec<_>>(),
        ["1=Left Outlet", "2=Right Outlet"]
    );
    assert_eq!(plug.area.as_deref(), Some("Porch"));
    assert_eq!(
        home.devices[&1].area.as_deref(),
        Some("Office"),
        "the room, not Desk"
    );
    assert_eq!(home.devices[&2].wifi_mac, None);
    assert_eq!(home.devices[&4].name, "Cync device 4");
    assert_eq!(
        home.devices[&4].type_id,
        Some(81),
        "a type written as a string"
    );
    assert_eq!(
        home.groups[&2].members,
        [3],
        "both outlets and a duplicate: one node"
    );
    assert_eq!(
        home.groups[&3].area.as_deref(),
        Some("Office"),
        "Desk is in Office"
    );
    assert!(home.groups[&3].is_subgroup, "\"true\" read as true");
    assert!(!home.groups.contains_key(&4), "the empty room is left out");
    let notes = summary.notes.join("\n");
    for expected in ["Empty Home", "Old Home", "Attic", "device 99"] {
        assert!(notes.contains(expected), "{expected} not in {notes}");
    }
}

#[tokio::test]
async fn the_written_file_reads_back_with_the_same_names_areas_and_endpoints() {
    let fake = FakeCloud::start().await;
    let account = export(&fake).await.unwrap();
    let (file, _) = cloud::device_file(&account);
    let text = cloud::render(&file).unwrap();
    let inventory = Inventory::parse(&text, Syntax::Yaml).unwrap();
    assert!(inventory.warnings.is_empty(), "{:?}", inventory.warnings);
    let home = inventory.home(HOME).unwrap();
    assert_eq!(home.devices[&3].endpoints.len(), 2);
    assert_eq!(home.devices[&1].area.as_deref(), Some("Office"));
    assert_eq!(
        home.devices[&1].ble_mac.unwrap().to_string(),
        "78:6d:eb:28:ea:a4"
    );
    assert_eq!(home.groups[&1].members, [1, 2]);
    assert_eq!(home.groups[&1].area.as_deref(), Some("Office"));
    assert_eq!(inventory.homes.len(), 3);
}

#[tokio::test]
async fn a_wrong_code_a_wrong_password_and_an_unknown_email_each_say_what_to_do() {
    let fake = FakeCloud::start().await;
    let client = client(&fake.url());
    // The code without its leading zero, as a number-typed client would send it.
    let wrong_code = client.login(EMAIL, PASSWORD, "12345").await.unwrap_err();
    assert!(
        matches!(wrong_code, CloudError::LoginRefused { .. }),
        "{wrong_code:?}"
    );
    let text = wrong_code.to_string();
    assert!(text.contains("code from the newest email"), "{text}");
    let wrong_password = client.login(EMAIL, "nope", CODE).await.unwrap_err();
    assert!(
        matches!(wrong_password, CloudError::WrongPassword),
        "{wrong_password:?}"
    );
    let unknown = client.request_code("who@example.com").await.unwrap_err();
    assert!(
        unknown.to_string().contains("no account with this email"),
        "{unknown}"
    );
    fake.world().login_down = true;
    let down = client.login(EMAIL, PASSWORD, CODE).await.unwrap_err();
    assert!(
        matches!(
            down,
            CloudError::Rejected {
                step: Step::Login,
                ..
            }
        ),
        "{down:?}"
    );
    assert!(down.to_string().contains("HTTP 503"), "{down}");
}

#[tokio::test]
async fn a_token_that_expires_mid_export_fails_the_export_with_either_error_style() {
    for style in [Style::Ok200, Style::Status4xx] {
        let fake = FakeCloud::start().await;
        {
            let mut world = fake.world();
            world.token_lives_for = Some(2);
            world.expiry_style = style;
        }
        let error = export(&fake).await.unwrap_err();
        assert!(
            matches!(
                error,
                CloudError::TokenExpired {
                    step: Step::ReadHome
                }
            ),
            "{style:?}: {error:?}"
        );
        assert!(error.needs_login());
        assert!(error.to_string().contains("log in again"), "{error}");
    }
}

#[tokio::test]
async fn an_unreachable_cloud_says_to_check_the_connection() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let error = client(&format!("http://127.0.0.1:{port}"))
        .request_code(EMAIL)
        .await
        .unwrap_err();
    assert!(matches!(error, CloudError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains("internet connection"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_cloud_that_accepts_and_never_answers_times_out_with_the_step_named() {
    // Accepts the connection and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let (_socket, _) = silent.accept().await.unwrap();
        std::future::pending::<()>().await;
    });
    let quick = CloudClient::new(CloudSettings {
        api: ApiUrl::parse(&url).unwrap(),
        timeout: Duration::from_secs(15),
    });
    let error = quick.request_code(EMAIL).await.unwrap_err();
    assert!(
        matches!(
            error,
            CloudError::Timeout {
                step: Step::RequestCode,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("within 15 s"), "{error}");
    hold.abort();
}

/// A TLS server with the bridge's own self-signed certificate: the client must refuse it, so a
/// DNS override of the cloud's name cannot collect passwords.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_whose_certificate_does_not_verify_gets_no_request() {
    use cync_bridge::server::tls::{
        build_acceptor, TlsSettings, GENERATED_CERT_FILE, GENERATED_KEY_FILE,
    };
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
    let dir = tempfile::tempdir().unwrap();
    // Generates the certificate and key files into `dir`.
    build_acceptor(&TlsSettings {
        cert_path: None,
        key_path: None,
        data_dir: dir.path().to_path_buf(),
    })
    .unwrap();
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    builder
        .set_certificate_chain_file(dir.path().join(GENERATED_CERT_FILE))
        .unwrap();
    builder
        .set_private_key_file(dir.path().join(GENERATED_KEY_FILE), SslFiletype::PEM)
        .unwrap();
    let acceptor = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let got_request = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&got_request);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ssl = openssl::ssl::Ssl::new(acceptor.context()).unwrap();
        let mut stream = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
        if std::pin::Pin::new(&mut stream).accept().await.is_ok() {
            use tokio::io::AsyncReadExt as _;
            let mut buf = [0u8; 16];
            if stream.read(&mut buf).await.unwrap_or(0) > 0 {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let error = client(&url).request_code(EMAIL).await.unwrap_err();
    assert!(matches!(error, CloudError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains("TLS handshake"), "{error}");
    assert!(
        error.to_string().contains("certificate verify failed"),
        "{error}"
    );
    let _ = server.await;
    assert!(!got_request.load(std::sync::atomic::Ordering::SeqCst));
}
