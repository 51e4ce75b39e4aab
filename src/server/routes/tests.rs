//! Route preference, failover when a session goes, replacement on reconnect, waiting.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::device::HomeId;
use crate::server::session::CloseSignal;

fn handle(id: u64, device: u8) -> SessionHandle {
    let (commands, _) = mpsc::channel(1);
    SessionHandle {
        id: SessionId(id),
        device: PeerId([device, 0, 0, 0]),
        addr: "127.0.0.1:1".parse().unwrap(),
        home: HomeId::DEFAULT,
        commands,
        close: Arc::new(CloseSignal::new(CancellationToken::new())),
        metrics: crate::telemetry::Metrics::new(),
    }
}

fn key(mesh: u16) -> DeviceKey {
    DeviceKey::new(HomeId::DEFAULT, mesh)
}

fn ids(handles: Vec<SessionHandle>) -> Vec<u64> {
    handles.iter().map(|h| h.id().0).collect()
}

#[test]
fn a_direct_route_is_preferred_then_older_sessions() {
    let routes = Routes::new(Metrics::new());
    for (id, dev) in [(1, 1), (2, 2), (3, 3)] {
        routes.register(handle(id, dev));
    }
    routes.learn(SessionId(2), [(key(50), RouteKind::Relay)]);
    routes.learn(SessionId(1), [(key(50), RouteKind::Relay)]);
    routes.learn(SessionId(3), [(key(50), RouteKind::Direct)]);
    assert_eq!(ids(routes.candidates(&key(50))), [3, 1, 2]);
    assert_eq!(routes.own_mesh(SessionId(3)), Some(MeshId(50)));
    assert_eq!(routes.route_count(), 3);
}

#[test]
fn learning_the_same_route_twice_changes_nothing() {
    let metrics = Metrics::new();
    let routes = Routes::new(metrics.clone());
    routes.register(handle(1, 1));
    assert_eq!(routes.learn(SessionId(1), [(key(7), RouteKind::Relay)]), 1);
    assert_eq!(routes.learn(SessionId(1), [(key(7), RouteKind::Relay)]), 0);
    assert_eq!(routes.learn(SessionId(1), [(key(7), RouteKind::Direct)]), 1);
    assert_eq!(routes.learn(SessionId(1), [(key(7), RouteKind::Relay)]), 0);
    assert_eq!(metrics.sample_value("tcp_comm_mesh_routes"), Some(1.0));
}

#[test]
fn when_a_relay_goes_away_its_devices_move_to_the_next_route() {
    let metrics = Metrics::new();
    let routes = Routes::new(metrics.clone());
    routes.register(handle(1, 1));
    routes.register(handle(2, 2));
    let mesh: Vec<_> = (10..20).map(|m| (key(m), RouteKind::Relay)).collect();
    routes.learn(SessionId(1), mesh.clone());
    routes.learn(SessionId(2), mesh);
    assert_eq!(routes.preferred(&key(15)).unwrap().id(), SessionId(1));
    assert_eq!(routes.withdraw(SessionId(1)), 10);
    assert_eq!(routes.preferred(&key(15)).unwrap().id(), SessionId(2));
    assert_eq!(metrics.sample_value("tcp_comm_mesh_routes"), Some(10.0));
    routes.withdraw(SessionId(2));
    assert!(routes.preferred(&key(15)).is_none());
    assert_eq!(routes.reachable_count(), 0);
}

#[test]
fn a_reconnecting_device_replaces_its_old_session_and_routes() {
    let routes = Routes::new(Metrics::new());
    routes.register(handle(1, 9));
    routes.learn(SessionId(1), [(key(5), RouteKind::Direct)]);
    let old = routes
        .register(handle(2, 9))
        .expect("old session handed back");
    assert_eq!(old.id(), SessionId(1));
    assert!(routes.preferred(&key(5)).is_none(), "old routes withdrawn");
    assert_eq!(
        routes.session_of(PeerId([9, 0, 0, 0])).unwrap().id(),
        SessionId(2)
    );
    // The old session's own clean-up later must not touch the new one.
    assert_eq!(routes.withdraw(SessionId(1)), 0);
    assert_eq!(routes.session_count(), 1);
}

#[test]
fn routes_are_not_learned_for_unregistered_sessions() {
    let routes = Routes::new(Metrics::new());
    assert_eq!(routes.learn(SessionId(4), [(key(1), RouteKind::Relay)]), 0);
    assert_eq!(routes.route_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_route_ends_when_one_is_learned() {
    let routes = Routes::new(Metrics::new());
    routes.register(handle(1, 1));
    let wanted = key(3);
    let waiter = routes.wait_for(&wanted);
    tokio::pin!(waiter);
    assert!(futures::poll!(&mut waiter).is_pending());
    routes.learn(SessionId(1), [(key(3), RouteKind::Relay)]);
    assert_eq!(waiter.await.id(), SessionId(1));
}
