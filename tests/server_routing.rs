//! Routes, commands and session life cycle against the real bridge with self-answering devices:
//! toggles round-trip on every confirmation path, a relay going away moves its mesh devices to
//! another route, a reconnecting device replaces its half-open session, silent and unwanted
//! connections are closed visibly, and a live scrape with sessions and routes passes promtool.

mod server_world;

use std::time::Duration;

use cync_bridge::device::ReportSource;
use cync_bridge::protocol::Command;
use cync_bridge::transport::{CommandOutcome, ConfirmedBy};
use server_world::{device_id, Answer, AutoDevice, Bridge, Device};

async fn routed(bridge: &Bridge, mesh: u16, sessions: usize) {
    bridge
        .until(&format!("{sessions} route(s) to {mesh}"), |b| {
            b.routes().candidates(&Bridge::key(mesh)).len() == sessions
        })
        .await;
}

#[tokio::test]
async fn toggles_round_trip_on_the_response_and_on_a_relay_record() {
    let bridge = Bridge::start("").await;
    let mut wifi = AutoDevice::start(bridge.addr, 1, 80, vec![], Answer::Full).await;
    let _relay = AutoDevice::start(bridge.addr, 2, 26, vec![44], Answer::RelayRecordOnly).await;
    routed(&bridge, 80, 1).await;
    routed(&bridge, 44, 1).await;

    let on = bridge.toggle_ok(80, true).await;
    assert_eq!(on.confirmed_by, Some(ConfirmedBy::Response));
    assert_eq!(on.via, Some(device_id(1)));
    assert_eq!(wifi.commands.recv().await, Some(Command::MeshInfoRequest));
    assert_eq!(wifi.commands.recv().await, Some(Command::MeshAck));
    assert_eq!(
        wifi.commands.recv().await,
        Some(Command::Power {
            target: 80,
            on: true
        })
    );
    bridge.toggle_ok(80, false).await;

    // A Bluetooth-only device: only the relay's 0x43 record shows the new state
    // (docs/protocol.md#status-records).
    let ble = bridge.toggle_ok(44, true).await;
    assert_eq!(
        ble.confirmed_by,
        Some(ConfirmedBy::Report(ReportSource::RelayRecord))
    );
    assert!(bridge.state().get(&Bridge::key(44)).unwrap().light.on);
    assert_eq!(
        bridge.sample("tcp_comm_command_total{transport=\"legacy\",outcome=\"success\"}"),
        3.0
    );
}

#[tokio::test]
async fn a_receipt_without_confirmation_is_no_response_and_silence_is_timeout() {
    let bridge = Bridge::start("").await;
    let _receipt = AutoDevice::start(bridge.addr, 1, 10, vec![], Answer::ReceiptOnly).await;
    let _silent = AutoDevice::start(bridge.addr, 2, 20, vec![], Answer::Silent).await;
    routed(&bridge, 10, 1).await;
    routed(&bridge, 20, 1).await;
    let short = Duration::from_millis(300);
    assert_eq!(
        bridge.toggle(10, true, short).await.outcome,
        CommandOutcome::NoResponse
    );
    assert_eq!(
        bridge.toggle(20, true, short).await.outcome,
        CommandOutcome::Timeout
    );
    assert_eq!(
        bridge.toggle(99, true, short).await.outcome,
        CommandOutcome::NoRoute
    );
}

#[tokio::test]
async fn when_a_relay_goes_away_its_mesh_devices_move_to_another_route() {
    let bridge = Bridge::start("").await;
    let mesh: Vec<u16> = (100..120).collect();
    let first = AutoDevice::start(bridge.addr, 1, 1, mesh.clone(), Answer::Full).await;
    for m in &mesh {
        routed(&bridge, *m, 1).await;
    }
    let mut second = AutoDevice::start(bridge.addr, 2, 2, mesh.clone(), Answer::Full).await;
    for m in &mesh {
        routed(&bridge, *m, 2).await;
    }
    assert_eq!(
        bridge.toggle_ok(110, true).await.via,
        Some(device_id(1)),
        "older relay preferred"
    );

    // The relay vanishes with unread data: the kernel resets the connection.
    first.kill();
    bridge
        .until("the dead relay's session closes", |b| {
            b.sample("tcp_comm_connected_sessions") == 1.0
        })
        .await;
    for m in &mesh {
        let routes = bridge.routes().routes_to(&Bridge::key(*m));
        assert_eq!(routes.len(), 1, "mesh id {m}");
        assert_eq!(routes[0].device, device_id(2), "mesh id {m}");
    }
    let moved = bridge.toggle_ok(110, false).await;
    assert_eq!(moved.via, Some(device_id(2)));
    while let Ok(Some(command)) =
        tokio::time::timeout(Duration::from_secs(5), second.commands.recv()).await
    {
        if command
            == (Command::Power {
                target: 110,
                on: false,
            })
        {
            return;
        }
    }
    panic!("the second relay never received the command");
}

#[tokio::test]
async fn a_reconnecting_device_replaces_its_half_open_session() {
    let bridge = Bridge::start("").await;
    let old = AutoDevice::start(bridge.addr, 7, 5, vec![], Answer::Full).await;
    routed(&bridge, 5, 1).await;
    let mut new = AutoDevice::start(bridge.addr, 7, 5, vec![], Answer::Full).await;
    bridge
        .until("the old session is replaced", |b| {
            b.sample("tcp_comm_sessions_closed_total{reason=\"replaced\"}") == 1.0
        })
        .await;
    tokio::time::timeout(server_world::PATIENCE, old.task)
        .await
        .expect("old connection closed")
        .ok();
    routed(&bridge, 5, 1).await;
    bridge.toggle_ok(5, true).await;
    let seen: Vec<_> = std::iter::from_fn(|| new.commands.try_recv().ok()).collect();
    assert!(
        seen.contains(&Command::Power {
            target: 5,
            on: true
        }),
        "{seen:?}"
    );
    assert_eq!(bridge.routes().session_count(), 1);
}

#[tokio::test]
async fn a_device_hanging_up_without_tls_close_notify_is_an_ordinary_end_of_stream() {
    let bridge = Bridge::start("[server]\nsession_open_delay = \"1h\"").await;
    let device = Device::hello(bridge.addr, device_id(4)).await;
    let (read, write) = device.into_split();
    let mut tls = read.unsplit(write);
    // A TCP FIN with no close_notify first, as a device that reboots sends it.
    tokio::io::AsyncWriteExt::shutdown(tls.get_mut())
        .await
        .unwrap();
    bridge
        .until("the session ends as eof", |b| {
            b.sample("tcp_comm_sessions_closed_total{reason=\"eof\"}") == 1.0
        })
        .await;
}

#[tokio::test]
async fn a_silent_session_is_closed_after_the_idle_timeout_and_its_routes_withdrawn() {
    let bridge = Bridge::start("[server]\nidle_timeout = \"300ms\"").await;
    let device = AutoDevice::start(bridge.addr, 3, 33, vec![34, 35], Answer::Full).await;
    routed(&bridge, 35, 1).await;
    tokio::time::timeout(server_world::PATIENCE, device.task)
        .await
        .expect("bridge closed it")
        .ok();
    assert_eq!(
        bridge.sample("tcp_comm_sessions_closed_total{reason=\"idle_timeout\"}"),
        1.0
    );
    assert_eq!(bridge.routes().route_count(), 0);
    assert_eq!(bridge.sample("tcp_comm_mesh_routes"), 0.0);
    assert_eq!(bridge.sample("tcp_comm_connected_sessions"), 0.0);
}

#[tokio::test]
async fn a_device_outside_the_allowlist_is_closed_without_an_answer() {
    let bridge = Bridge::start("[server]\nallow_device_ids = [\"3d546001\"]").await;
    let mut stranger = Device::connect(bridge.addr, device_id(9)).await;
    let mut hello = bytes::BytesMut::new();
    cync_bridge::protocol::encode::hello(&mut hello, stranger.id, b"1e07d8ce0a617a37");
    stranger.send(&hello).await;
    assert_eq!(stranger.try_next().await, None, "no 0x28 for a stranger");
    assert_eq!(
        bridge.sample("tcp_comm_sessions_closed_total{reason=\"device_not_allowed\"}"),
        1.0
    );
    Device::hello(bridge.addr, device_id(1)).await;
}

#[tokio::test]
async fn connections_over_the_limit_are_turned_away_and_counted() {
    let bridge = Bridge::start("[server]\nmax_connections = 1").await;
    let _first = Device::hello(bridge.addr, device_id(1)).await;
    let tcp = tokio::net::TcpStream::connect(bridge.addr).await.unwrap();
    assert!(
        cync_bridge::sim::tls::connect(tcp).await.is_err(),
        "no TLS over the limit"
    );
    assert_eq!(
        bridge.sample("tcp_comm_connections_rejected_total{reason=\"over_limit\"}"),
        1.0
    );
}

#[tokio::test]
async fn a_live_scrape_with_sessions_and_routes_passes_promtool() {
    let bridge = Bridge::start("").await;
    let _relay = AutoDevice::start(bridge.addr, 1, 1, vec![2, 3, 4], Answer::Full).await;
    routed(&bridge, 4, 1).await;
    bridge.toggle_ok(1, true).await;
    assert_eq!(bridge.sample("tcp_comm_connected_sessions"), 1.0);
    assert_eq!(bridge.sample("tcp_comm_mesh_routes"), 4.0);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    bridge.tracker.spawn(cync_bridge::telemetry::serve(
        listener,
        bridge.metrics().clone(),
        bridge.health.clone(),
        bridge.shutdown.clone(),
    ));
    let body = server_world::http_get(addr, "/metrics").await;
    assert!(body.contains("tcp_comm_mesh_routes 4"), "{body}");
    server_world::promtool_check(&body);
    assert!(server_world::http_get(addr, "/healthz")
        .await
        .contains("ok"));
}

#[tokio::test]
async fn only_allowed_source_networks_are_served() {
    let elsewhere = Bridge::start("[server]\nallow_networks = [\"10.0.0.0/8\"]").await;
    let tcp = tokio::net::TcpStream::connect(elsewhere.addr)
        .await
        .unwrap();
    assert!(
        cync_bridge::sim::tls::connect(tcp).await.is_err(),
        "127.0.0.1 is not in 10/8"
    );
    assert_eq!(
        elsewhere.sample("tcp_comm_connections_rejected_total{reason=\"network_not_allowed\"}"),
        1.0
    );
    let here = Bridge::start("[server]\nallow_networks = [\"127.0.0.0/8\"]").await;
    Device::hello(here.addr, device_id(1)).await;
}
