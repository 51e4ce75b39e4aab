//! The reliable transport running against the real bridge and self-answering devices: it
//! succeeds where the devices answer, retries through another relay where the preferred one
//! swallows commands (where the legacy path fails), and names every failure.

mod server_world;

use std::time::Duration;

use cync_bridge::protocol::Command;
use cync_bridge::transport::reliable::Policy;
use cync_bridge::transport::service::ReliableTransport;
use cync_bridge::transport::{CommandOutcome, CommandRequest, ConfirmedBy, LegacyTransport};
use server_world::{device_id, Answer, AutoDevice, Bridge};
use tokio_util::sync::CancellationToken;

async fn routed(bridge: &Bridge, mesh: u16, sessions: usize) {
    bridge
        .until(&format!("{sessions} route(s) to {mesh}"), |b| {
            b.routes().candidates(&Bridge::key(mesh)).len() == sessions
        })
        .await;
}

fn power(mesh: u16, on: bool) -> CommandRequest {
    CommandRequest::new(
        Bridge::key(mesh),
        Command::Power { target: mesh, on },
        Duration::from_secs(8),
    )
}

fn reliable(bridge: &Bridge) -> ReliableTransport {
    let mut policy = Policy::reliable();
    // Short attempts keep the test quick; the behaviour is the same.
    policy.attempt_timeout = Duration::from_millis(400);
    ReliableTransport::spawn(
        &bridge.services,
        policy,
        &bridge.tracker,
        bridge.shutdown.clone(),
    )
}

#[tokio::test]
async fn a_device_that_answers_is_confirmed_by_its_response() {
    let bridge = Bridge::start("").await;
    let _wifi = AutoDevice::start(bridge.addr, 1, 80, vec![], Answer::Full).await;
    routed(&bridge, 80, 1).await;
    let transport = reliable(&bridge);
    let report = transport
        .execute(power(80, true), &CancellationToken::new())
        .await;
    assert_eq!(report.outcome, CommandOutcome::Success, "{report:?}");
    assert_eq!(report.confirmed_by, Some(ConfirmedBy::Response));
    assert_eq!(report.via, Some(device_id(1)));
    assert_eq!(
        bridge.sample("tcp_comm_command_total{transport=\"reliable\",outcome=\"success\"}"),
        1.0
    );
}

#[tokio::test]
async fn a_relay_that_swallows_commands_is_routed_around() {
    let bridge = Bridge::start("").await;
    // Connected first, so it is the preferred route to mesh id 44: it only sends receipts.
    let _bad = AutoDevice::start(bridge.addr, 1, 10, vec![44], Answer::ReceiptOnly).await;
    routed(&bridge, 44, 1).await;
    let _good = AutoDevice::start(bridge.addr, 2, 20, vec![44], Answer::Full).await;
    routed(&bridge, 44, 2).await;

    let legacy = LegacyTransport::new(&bridge.services);
    let mut request = power(44, true);
    request.timeout = Duration::from_millis(800);
    let report = legacy.execute(request, &CancellationToken::new()).await;
    assert_eq!(
        report.outcome,
        CommandOutcome::NoResponse,
        "legacy writes once to the bad relay"
    );

    let report = reliable(&bridge)
        .execute(power(44, false), &CancellationToken::new())
        .await;
    assert_eq!(report.outcome, CommandOutcome::Success, "{report:?}");
    assert_eq!(
        report.via,
        Some(device_id(2)),
        "the retry went through the other relay"
    );
    assert!(
        bridge
            .sample("tcp_comm_packet_retransmit_total{device_id=\"3d546002\",reason=\"timeout\"}")
            >= 1.0
    );
}

#[tokio::test]
async fn silence_everywhere_ends_in_timeout_and_no_relay_in_no_route() {
    let bridge = Bridge::start("").await;
    let _mute = AutoDevice::start(bridge.addr, 1, 10, vec![44], Answer::Silent).await;
    routed(&bridge, 44, 1).await;
    let transport = reliable(&bridge);
    let mut request = power(44, true);
    request.timeout = Duration::from_millis(1500);
    let report = transport.execute(request, &CancellationToken::new()).await;
    assert_eq!(report.outcome, CommandOutcome::Timeout);

    let mut request = power(99, true);
    request.timeout = Duration::from_millis(300);
    let report = transport.execute(request, &CancellationToken::new()).await;
    assert_eq!(report.outcome, CommandOutcome::NoRoute);
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_commands_that_already_ended() {
    let bridge = Bridge::start("").await;
    let _wifi = AutoDevice::start(bridge.addr, 1, 26, vec![44], Answer::ResponseOnly).await;
    routed(&bridge, 44, 1).await;
    let transport = reliable(&bridge);
    // Confirmed by the f9 response; no report of the new state ever comes.
    let report = transport
        .execute(power(44, true), &CancellationToken::new())
        .await;
    assert_eq!(report.outcome, CommandOutcome::Success);
    bridge.shutdown.cancel();
    bridge.tracker.close();
    tokio::time::timeout(Duration::from_secs(10), bridge.tracker.wait())
        .await
        .expect("every task ends after shutdown");
}
