//! The store's promises: idempotent updates, one event per change, bounded waiters, lagging.

use super::*;
use crate::device::key::HomeId;

fn lamp(on: bool, brightness: u8) -> DeviceState {
    DeviceState {
        light: LightState {
            on,
            brightness,
            temperature: 10,
            rgb: [0; 3],
        },
        online: true,
    }
}

fn report(mesh: u16, state: DeviceState, source: ReportSource) -> Report {
    Report {
        key: DeviceKey::new(HomeId::DEFAULT, mesh),
        state,
        source,
    }
}

#[test]
fn the_same_state_from_many_relays_changes_the_store_once() {
    let store = StateStore::new(16, 16);
    let mut events = store.subscribe();
    let on = report(7, lamp(true, 50), ReportSource::RelayRecord);
    assert!(store.apply(on).changed);
    for source in [
        ReportSource::RelayRecord,
        ReportSource::MeshInfo,
        ReportSource::SelfRecord,
    ] {
        assert!(!store.apply(Report { source, ..on }).changed);
    }
    let first = events.try_recv().unwrap();
    assert_eq!(first.previous, None);
    assert_eq!(first.current, lamp(true, 50));
    assert!(events.try_recv().is_err(), "no event for repeats");
}

#[test]
fn a_light_going_a_b_a_produces_two_changes_after_the_first() {
    let store = StateStore::new(16, 16);
    let mut events = store.subscribe();
    for state in [lamp(true, 50), lamp(false, 50), lamp(true, 50)] {
        store.apply(report(7, state, ReportSource::StateReport));
    }
    let seen: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|c| (c.previous.map(|p| p.light.on), c.current.light.on))
        .collect();
    assert_eq!(
        seen,
        [(None, true), (Some(true), false), (Some(false), true)]
    );
}

#[test]
fn homes_never_share_a_mesh_id() {
    let store = StateStore::new(16, 16);
    let a = DeviceKey::new(HomeId(1), 5);
    let b = DeviceKey::new(HomeId(2), 5);
    let apply = |key, state| {
        store.apply(Report {
            key,
            state,
            source: ReportSource::StateReport,
        })
    };
    apply(a, lamp(true, 1));
    apply(b, lamp(false, 2));
    assert_eq!(store.get(&a), Some(lamp(true, 1)));
    assert_eq!(store.get(&b), Some(lamp(false, 2)));
}

#[tokio::test]
async fn a_waiting_command_is_confirmed_only_by_a_report_showing_its_state() {
    let store = StateStore::new(16, 16);
    let key = DeviceKey::new(HomeId::DEFAULT, 9);
    let cmd = Command::Power {
        target: 9,
        on: true,
    };
    let expect = Expectation::for_command(&cmd).unwrap();
    let mut waiter = store.expect(key, expect).unwrap();
    store.apply(report(9, lamp(false, 3), ReportSource::RelayRecord));
    assert!(waiter.try_recv().is_err(), "off does not confirm on");
    let applied = store.apply(report(9, lamp(true, 3), ReportSource::RelayRecord));
    assert_eq!(applied.confirmed, 1);
    let confirmation = waiter.await.unwrap();
    assert_eq!(confirmation.source, ReportSource::RelayRecord);
}

#[test]
fn a_repeated_report_still_confirms_an_unchanged_state() {
    // The device was already on: the command is confirmed by the next report showing "on", even
    // though the stored state does not change.
    let store = StateStore::new(16, 16);
    let key = DeviceKey::new(HomeId::DEFAULT, 9);
    store.apply(report(9, lamp(true, 3), ReportSource::StateReport));
    let mut waiter = store
        .expect(
            key,
            Expectation {
                on: Some(true),
                ..Expectation::default()
            },
        )
        .unwrap();
    let applied = store.apply(report(9, lamp(true, 3), ReportSource::StateReport));
    assert!(!applied.changed);
    assert_eq!(applied.confirmed, 1);
    assert!(waiter.try_recv().is_ok());
}

#[test]
fn waiters_are_bounded_and_abandoned_ones_free_their_slot() {
    let store = StateStore::new(16, 2);
    let key = DeviceKey::new(HomeId::DEFAULT, 1);
    let e = Expectation::default();
    let first = store.expect(key, e).unwrap();
    let _second = store.expect(key, e).unwrap();
    assert_eq!(store.expect(key, e).unwrap_err(), WaiterLimit { limit: 2 });
    drop(first);
    assert!(store.expect(key, e).is_ok());
}

#[test]
fn rgb_expectations_use_the_colour_the_encoder_really_sends() {
    let cmd = Command::Light {
        target: 3,
        brightness: Some(40),
        color: Some(LightColor::Rgb([0x7E, 1, 2])),
    };
    let expect = Expectation::for_command(&cmd).unwrap();
    let mut state = lamp(true, 40);
    state.light.temperature = TEMP_RGB_MODE;
    state.light.rgb = [0x7F, 1, 2];
    assert!(expect.is_met_by(&state));
    assert_eq!(
        Expectation::for_command(&Command::MeshInfoRequest),
        None,
        "no report confirms a mesh request"
    );
}

#[test]
fn a_lagging_subscriber_loses_the_oldest_events_and_can_resync_from_a_snapshot() {
    let store = StateStore::new(2, 16);
    let mut events = store.subscribe();
    for brightness in 1..=5 {
        store.apply(report(1, lamp(true, brightness), ReportSource::StateReport));
    }
    assert!(matches!(
        events.try_recv(),
        Err(broadcast::error::TryRecvError::Lagged(3))
    ));
    assert_eq!(store.snapshot()[0].1, lamp(true, 5));
}
