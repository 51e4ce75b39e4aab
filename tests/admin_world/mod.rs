//! A bridge-like HTTP endpoint with one state-changing route behind the admin access rule, for
//! the `telemetry_access*` tests.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::Method;
use axum::routing::post;
use axum::Router;
use cync_bridge::telemetry::access::client::{admin_request, AdminBody, AdminReply};
use cync_bridge::telemetry::access::{AccessRule, ADMIN_TOKEN_FILE};
use cync_bridge::telemetry::{endpoints, serve_router, Health, HttpLimits, Metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct Admin {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub rule: AccessRule,
    /// Bodies the test route received, to prove a request got through (and intact).
    received: Arc<Mutex<Vec<String>>>,
    _shutdown: tokio_util::sync::DropGuard,
}

pub async fn start(ingress_peers: Vec<IpAddr>) -> Admin {
    let dir = tempfile::tempdir().unwrap();
    let hosts = vec!["Bridge.Example".to_owned()];
    let rule = AccessRule::load_or_create(dir.path(), hosts, ingress_peers).unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    let admin = Router::new().route(
        "/admin/rollout",
        post(move |body: String| async move {
            sink.lock().unwrap().push(body);
            "done\n"
        }),
    );
    let router = endpoints::router(Metrics::new(), Health::new()).merge(rule.protect(admin));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(serve_router(
        listener,
        router,
        shutdown.clone(),
        HttpLimits::default(),
    ));
    Admin {
        addr,
        dir,
        rule,
        received,
        _shutdown: shutdown.drop_guard(),
    }
}

impl Admin {
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(ADMIN_TOKEN_FILE))
            .unwrap()
            .trim()
            .to_owned()
    }

    pub fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

/// Sends raw `POST /admin/rollout` with `headers` (each `Name: value`) and `body`; returns the
/// status and body.
pub async fn raw_post(addr: SocketAddr, headers: Vec<String>, body: &str) -> (u16, String) {
    let mut request = "POST /admin/rollout HTTP/1.1\r\n".to_owned();
    for header in headers {
        request.push_str(&header);
        request.push_str("\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

pub fn json() -> Option<AdminBody> {
    Some(AdminBody {
        content_type: "application/json",
        bytes: br#"{"stage":"canary"}"#.to_vec(),
    })
}

/// `POST /admin/rollout` through the client helper, as a `cync-bridge` subcommand would.
pub async fn helper_post(admin: &Admin, body: Option<AdminBody>) -> AdminReply {
    let timeout = Duration::from_secs(10);
    let path = admin.dir.path();
    admin_request(
        admin.addr,
        Method::POST,
        "/admin/rollout",
        path,
        body,
        timeout,
    )
    .await
    .unwrap()
}
