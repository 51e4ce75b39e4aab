//! The admin access rule against a state-changing route defined here, over a real socket: the
//! token from `data_dir`, Host/Origin, CSRF for forms, the ingress peer — and the open read-only
//! endpoints beside it.

mod admin_world;

use admin_world::{helper_post, json, raw_post, start};
use cync_bridge::telemetry::access::client::AdminBody;
use cync_bridge::telemetry::access::{DEFAULT_INGRESS_PEERS, MAX_FORM_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn the_client_helper_reads_the_token_and_gets_through() {
    let admin = start(Vec::new()).await;
    let reply = helper_post(&admin, json()).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "done\n"));
    let form = Some(AdminBody {
        content_type: "application/x-www-form-urlencoded",
        bytes: b"stage=full".to_vec(),
    });
    let reply = helper_post(&admin, form).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(admin.received(), [r#"{"stage":"canary"}"#, "stage=full"]);
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401_and_the_route_never_runs() {
    let admin = start(Vec::new()).await;
    let host = format!("Host: {}", admin.addr);
    let json = "Content-Type: application/json".to_owned();
    let (status, body) = raw_post(admin.addr, vec![host.clone(), json.clone()], "{}").await;
    assert_eq!(
        (status, body.as_str()),
        (401, "missing or wrong admin token\n")
    );
    let mut wrong = admin.token();
    wrong.replace_range(..1, if wrong.starts_with('0') { "1" } else { "0" });
    let bearer = format!("Authorization: Bearer {wrong}");
    let (status, body) = raw_post(admin.addr, vec![host, json, bearer], "{}").await;
    assert_eq!(status, 401);
    assert!(!body.contains(&admin.token()) && !body.contains(&wrong));
    assert!(admin.received().is_empty());
}

#[tokio::test]
async fn a_foreign_host_or_a_cross_site_origin_is_403_even_with_the_token() {
    let admin = start(Vec::new()).await;
    let bearer = format!("Authorization: Bearer {}", admin.token());
    let json = "Content-Type: application/json".to_owned();
    let send = |host: &str, origin: Option<&str>| {
        let mut headers = vec![format!("Host: {host}"), bearer.clone(), json.clone()];
        headers.extend(origin.map(|o| format!("Origin: {o}")));
        raw_post(admin.addr, headers, "{}")
    };
    // DNS rebinding: the attacker's name resolving to us.
    assert_eq!(
        send("rebind.attacker.example:9464", None).await,
        (403, "Host not allowed\n".to_owned())
    );
    let (status, body) = send("127.0.0.1:9464", Some("http://attacker.example")).await;
    assert_eq!(
        (status, body.as_str()),
        (403, "Origin does not match Host\n")
    );
    assert_eq!(send("127.0.0.1:9464", Some("null")).await.0, 403);
    assert!(admin.received().is_empty());
    // Allowed: IP literals (v4, v6), localhost, the configured name; a same-origin Origin.
    for host in [
        "127.0.0.1:9464",
        "[::1]:9464",
        "localhost",
        "bridge.example:9464",
    ] {
        assert_eq!(send(host, None).await.0, 200, "{host}");
    }
    assert_eq!(
        send("localhost:9464", Some("http://localhost:9464"))
            .await
            .0,
        200
    );
    assert_eq!(admin.received().len(), 5);
}

#[tokio::test]
async fn forms_need_the_csrf_token_in_a_field_or_header() {
    let admin = start(Vec::new()).await;
    let base = vec![
        format!("Host: {}", admin.addr),
        format!("Authorization: Bearer {}", admin.token()),
    ];
    let form = "Content-Type: application/x-www-form-urlencoded".to_owned();
    let plain = "Content-Type: text/plain".to_owned();
    let csrf = admin.rule.csrf_token().to_owned();
    let no_csrf = raw_post(
        admin.addr,
        [base.clone(), vec![form.clone()]].concat(),
        "stage=full",
    )
    .await;
    assert_eq!(no_csrf, (403, "missing or wrong CSRF token\n".to_owned()));
    let wrong = raw_post(
        admin.addr,
        [base.clone(), vec![form.clone()]].concat(),
        "csrf_token=00&x=1",
    )
    .await;
    assert_eq!(wrong.0, 403);
    assert_eq!(
        raw_post(
            admin.addr,
            [base.clone(), vec![plain.clone()]].concat(),
            "hi"
        )
        .await
        .0,
        403
    );
    let field = format!("stage=full&csrf_token={csrf}");
    assert_eq!(
        raw_post(admin.addr, [base.clone(), vec![form]].concat(), &field)
            .await
            .0,
        200
    );
    let header = format!("X-CSRF-Token: {csrf}");
    assert_eq!(
        raw_post(
            admin.addr,
            [base.clone(), vec![plain, header]].concat(),
            "hi"
        )
        .await
        .0,
        200
    );
    // The guard reads a form to find the field, but only up to its cap.
    let huge = format!("stage={}&csrf_token={csrf}", "a".repeat(MAX_FORM_BYTES));
    let form = "Content-Type: application/x-www-form-urlencoded".to_owned();
    let too_large = raw_post(admin.addr, [base, vec![form]].concat(), &huge).await;
    assert_eq!(too_large, (413, "form too large\n".to_owned()));
    // The route saw the form body exactly as sent, after the guard had read it.
    assert_eq!(admin.received(), [field, "hi".to_owned()]);
}

#[tokio::test]
async fn the_ingress_peer_needs_no_token_but_a_csrf_token_and_headers_cannot_fake_it() {
    // Our own test connections come from 127.0.0.1: make that the ingress peer.
    let ingress = start(vec!["127.0.0.1".parse().unwrap()]).await;
    // The Supervisor rewrites Host to the add-on's name; the browser's Origin is Home Assistant's.
    let via_ha = vec![
        "Host: local-cync-bridge:9464".to_owned(),
        "Origin: http://homeassistant.local:8123".to_owned(),
        "Content-Type: application/json".to_owned(),
    ];
    let (status, body) = raw_post(ingress.addr, via_ha.clone(), "{}").await;
    assert_eq!(
        (status, body.as_str()),
        (403, "missing or wrong CSRF token\n")
    );
    let csrf = format!("X-CSRF-Token: {}", ingress.rule.csrf_token());
    assert_eq!(
        raw_post(ingress.addr, [via_ha, vec![csrf.clone()]].concat(), "{}")
            .await
            .0,
        200
    );

    // Anywhere else, claiming to be the Supervisor in headers changes nothing.
    let direct = start(DEFAULT_INGRESS_PEERS.to_vec()).await;
    let spoofed = vec![
        format!("Host: {}", direct.addr),
        "X-Forwarded-For: 172.30.32.2".to_owned(),
        "X-Real-IP: 172.30.32.2".to_owned(),
        "X-Ingress-Path: /api/hassio_ingress/abc".to_owned(),
        "Content-Type: application/json".to_owned(),
        csrf,
    ];
    assert_eq!(raw_post(direct.addr, spoofed, "{}").await.0, 401);
    assert!(direct.received().is_empty());
}

#[tokio::test]
async fn read_only_endpoints_stay_open_and_unknown_paths_stay_404() {
    let admin = start(Vec::new()).await;
    for (path, want) in [
        ("/metrics", 200),
        ("/healthz", 200),
        ("/admin/nothing", 404),
    ] {
        let mut stream = TcpStream::connect(admin.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: attacker.example\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        assert!(
            raw.starts_with(&format!("HTTP/1.1 {want} ")),
            "{path}: {raw}"
        );
    }
}
