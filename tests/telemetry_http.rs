//! The telemetry endpoint over a real socket on 127.0.0.1:0, driven with raw bytes.

use std::net::SocketAddr;
use std::time::Duration;

use cync_bridge::telemetry::{serve, serve_with_limits, Health, HttpLimits, Metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Endpoint {
    addr: SocketAddr,
    metrics: Metrics,
    health: Health,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

async fn start(limits: Option<HttpLimits>) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (metrics, health, shutdown) = (Metrics::new(), Health::new(), CancellationToken::new());
    let (m, h, s) = (metrics.clone(), health.clone(), shutdown.clone());
    let task = tokio::spawn(async move {
        match limits {
            Some(limits) => serve_with_limits(listener, m, h, s, limits).await,
            None => serve(listener, m, h, s).await,
        }
    });
    Endpoint {
        addr,
        metrics,
        health,
        shutdown,
        task,
    }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` as is and reads the whole reply (the server closes after one response).
async fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_reply(&mut stream).await
}

async fn read_reply(stream: &mut TcpStream) -> Reply {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{raw:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length = header(head, "content-length").unwrap();
    assert_eq!(length.parse::<usize>().unwrap(), body.len());
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nAccept: */*\r\n\r\n");
    exchange(addr, request.as_bytes()).await
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text_with_recorded_values() {
    let endpoint = start(None).await;
    endpoint.metrics.packet_sent("dev-1", "ok");
    endpoint.metrics.packet_sent("dev-1", "ok");
    endpoint.metrics.packet_sent("dev-1", "ok");

    let reply = get(endpoint.addr, "/metrics").await;

    assert_eq!(reply.status, 200);
    assert_eq!(
        header(&reply.head, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(header(&reply.head, "connection"), Some("close"));
    assert!(reply
        .body
        .lines()
        .any(|l| l == r#"tcp_comm_packet_sent_total{device_id="dev-1",outcome="ok"} 3"#));
}

#[tokio::test]
async fn unknown_paths_get_404_and_other_methods_405() {
    let endpoint = start(None).await;
    assert_eq!(get(endpoint.addr, "/").await.status, 404);
    assert_eq!(get(endpoint.addr, "/metrics/extra").await.status, 404);
    let post = exchange(
        endpoint.addr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(post.status, 405);
    let allow: Vec<&str> = header(&post.head, "allow")
        .unwrap()
        .split(',')
        .map(str::trim)
        .collect();
    assert_eq!(allow, ["GET", "HEAD"]);
    // A query string does not change the route.
    assert_eq!(get(endpoint.addr, "/metrics?debug=1").await.status, 200);
}

#[tokio::test]
async fn healthz_is_ok_until_a_registered_component_dies() {
    let endpoint = start(None).await;
    let listener = endpoint.health.register("device_listener");
    let _store = endpoint.health.register("state_store");

    let healthy = get(endpoint.addr, "/healthz").await;
    assert_eq!((healthy.status, healthy.body.as_str()), (200, "ok\n"));

    drop(listener);

    let unhealthy = get(endpoint.addr, "/healthz").await;
    assert_eq!(unhealthy.status, 503);
    assert_eq!(unhealthy.body, "unhealthy: device_listener: task ended\n");
}

#[tokio::test]
async fn garbage_and_unfinished_requests_do_not_stop_another_client_being_served() {
    let endpoint = start(None).await;
    endpoint.metrics.command("reliable", "success");

    // A client that starts a request and never finishes it (holds its connection open).
    let mut stalled = TcpStream::connect(endpoint.addr).await.unwrap();
    stalled.write_all(b"GET /metr").await.unwrap();
    // A TLS ClientHello sent to the HTTP port by mistake.
    let mut tls = TcpStream::connect(endpoint.addr).await.unwrap();
    tls.write_all(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\n")
        .await
        .unwrap();
    // A line of text that is not HTTP.
    let garbage = exchange(endpoint.addr, b"hello there\r\n\r\n").await;
    assert_eq!(garbage.status, 400);

    let reply = get(endpoint.addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(reply
        .body
        .contains(r#"tcp_comm_command_total{transport="reliable",outcome="success"} 1"#));
    assert_eq!(read_reply(&mut tls).await.status, 400);
    drop(stalled);
}

#[tokio::test]
async fn an_oversized_request_gets_431_without_being_buffered() {
    let endpoint = start(None).await;
    let mut request = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while request.len() < 64 * 1024 {
        request.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let mut stream = TcpStream::connect(endpoint.addr).await.unwrap();
    // The server answers after 8 KiB and closes; the rest of our write may then fail: fine.
    let _ = stream.write_all(&request).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 431 "), "{raw:?}");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_sends_nothing_is_disconnected_after_the_read_timeout() {
    let endpoint = start(Some(HttpLimits {
        read_timeout: Duration::from_secs(5),
        ..HttpLimits::default()
    }))
    .await;
    let started = tokio::time::Instant::now();
    let mut idle = TcpStream::connect(endpoint.addr).await.unwrap();
    // With the clock paused, tokio advances it to the server's deadline once everyone is idle.
    // hyper closes the connection without an answer (no 408) when the head does not arrive.
    let mut raw = Vec::new();
    let _ = idle.read_to_end(&mut raw).await;
    assert!(raw.is_empty(), "{:?}", String::from_utf8_lossy(&raw));
    // Virtual time: cut at the 5 s read deadline, not at the 15 s total one.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    assert_eq!(get(endpoint.addr, "/healthz").await.status, 200);
}

#[tokio::test]
async fn head_requests_get_headers_only() {
    let endpoint = start(None).await;
    let mut stream = TcpStream::connect(endpoint.addr).await.unwrap();
    stream
        .write_all(b"HEAD /healthz HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    assert!(
        raw.starts_with("HTTP/1.1 200 OK\r\n") || raw.starts_with("HTTP/1.0 200 OK\r\n"),
        "{raw:?}"
    );
    assert!(raw.ends_with("\r\n\r\n"), "{raw:?}");
    assert_eq!(header(&raw, "content-length"), Some("3"), "{raw:?}");
}

#[tokio::test]
async fn cancelling_the_token_stops_the_server_and_frees_the_port() {
    let endpoint = start(None).await;
    let mut stalled = TcpStream::connect(endpoint.addr).await.unwrap();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    assert_eq!(get(endpoint.addr, "/healthz").await.status, 200);

    endpoint.shutdown.cancel();
    // Guard against a hang only; nothing here measures time.
    tokio::time::timeout(Duration::from_secs(30), endpoint.task)
        .await
        .expect("serve returned")
        .unwrap();

    // The stalled connection was closed, not left half-open.
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest).await;
    assert!(rest.is_empty());
    assert!(TcpStream::connect(endpoint.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_idle_connections_cannot_starve_healthz_or_the_healthcheck_command() {
    let endpoint = start(None).await;
    let _component = endpoint.health.register("device_listener");
    let limit = HttpLimits::default().max_connections;
    let mut idle = Vec::new();
    for i in 0..120 {
        let mut stream = TcpStream::connect(endpoint.addr).await.unwrap();
        if i % 2 == 0 {
            // Half of them trickle the start of a request and stop.
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHo")
                .await
                .unwrap();
        }
        idle.push(stream);
    }

    let reply = get(endpoint.addr, "/healthz").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));
    let addr = endpoint.addr.to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cync-bridge"))
            .args(["healthcheck", "--addr", &addr, "--timeout", "10"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("healthy: "), "{stdout}");

    // The oldest idle connections were shed to make room: closed by the server, not left open.
    let mut closed = 0;
    for stream in &mut idle {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await;
        if matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
            closed += 1;
        }
    }
    assert!(
        closed >= 120 - limit,
        "only {closed} of 120 idle connections were shed"
    );
}
