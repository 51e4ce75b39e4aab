//! The delivery state machine driven with synthetic instants: success on the device's response
//! or a confirming state report, retries with backoff that rotate routes, failover when a session
//! is lost, the outcome of every way a command can fail, coalescing and the legacy policy.

use std::time::{Duration, Instant};

use cync_bridge::protocol::{Command, LightColor};
use cync_bridge::transport::reliable::{Action, Policy, Transport};
use cync_bridge::transport::CommandOutcome;

type S = u32; // session
type K = u16; // device

const LAMP: K = 5;

fn power(on: bool) -> Command {
    Command::Power { target: LAMP, on }
}

fn level(b: u8) -> Command {
    Command::Light {
        target: LAMP,
        brightness: Some(b),
        color: None,
    }
}

fn two_routes(_: &K) -> Vec<S> {
    vec![1, 2]
}

fn no_routes(_: &K) -> Vec<S> {
    vec![]
}

fn sends(actions: &[Action<S, K>]) -> Vec<(S, Command, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                session,
                command,
                attempt,
                ..
            } => Some((*session, *command, *attempt)),
            _ => None,
        })
        .collect()
}

fn outcomes(actions: &[Action<S, K>]) -> Vec<CommandOutcome> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Complete { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect()
}

fn sent_tx(actions: &[Action<S, K>]) -> (S, u32) {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Send { session, seq, .. } => Some((*session, seq.tx)),
            _ => None,
        })
        .expect("a send")
}

/// Ticks every 10 ms from `from` for `span`, collecting actions.
fn run(
    t: &mut Transport<S, K>,
    from: Instant,
    span: Duration,
    routes: &dyn Fn(&K) -> Vec<S>,
) -> Vec<Action<S, K>> {
    let mut all = Vec::new();
    let mut now = from;
    while now <= from + span {
        all.extend(t.on_tick(now, &routes));
        now += Duration::from_millis(10);
    }
    all
}

#[test]
fn the_devices_response_with_the_matching_tx_and_op_completes_the_command() {
    let t0 = Instant::now();
    let mut t = Transport::new(Policy::reliable(), 1);
    let (id, a) = t.submit(LAMP, power(true), None, t0, &two_routes);
    assert_eq!(
        sends(&a),
        vec![(1, power(true), 0)],
        "first attempt on the preferred route"
    );
    let (session, tx) = sent_tx(&a);
    assert!(
        t.on_response(session, tx, 0xF0, t0, &two_routes).is_empty(),
        "wrong op echoed"
    );
    assert!(
        t.on_response(2, tx, 0xD0, t0, &two_routes).is_empty(),
        "other session"
    );
    let done = t.on_response(
        session,
        tx,
        0xD0,
        t0 + Duration::from_millis(80),
        &two_routes,
    );
    assert_eq!(
        done,
        vec![Action::Complete {
            id,
            key: LAMP,
            outcome: CommandOutcome::Success,
            latency: Duration::from_millis(80),
            attempts: 1,
            receipt: false
        }]
    );
    assert_eq!(t.outstanding(), 0);
}

#[test]
fn a_confirming_report_completes_only_the_command_it_was_registered_for() {
    let t0 = Instant::now();
    let mut t = Transport::new(Policy::reliable(), 1);
    let (first, _) = t.submit(LAMP, level(40), None, t0, &two_routes);
    let (second, _) = t.submit(LAMP, power(false), None, t0, &two_routes);
    assert!(
        t.on_confirmed(LAMP, second, t0, &two_routes).is_empty(),
        "not in flight yet"
    );
    let a = t.on_confirmed(LAMP, first, t0, &two_routes);
    assert_eq!(outcomes(&a), vec![CommandOutcome::Success]);
    assert_eq!(sends(&a), vec![(1, power(false), 0)]);
}

#[test]
fn a_callers_deadline_overrides_the_policy() {
    let t0 = Instant::now();
    let mut t = Transport::new(Policy::reliable(), 1);
    t.submit(
        LAMP,
        power(true),
        Some(Duration::from_millis(100)),
        t0,
        &two_routes,
    );
    let later = run(&mut t, t0, Duration::from_millis(120), &two_routes);
    assert_eq!(outcomes(&later), vec![CommandOutcome::Timeout]);
}

#[test]
fn unconfirmed_commands_retry_with_backoff_rotating_routes_then_report_no_response() {
    let t0 = Instant::now();
    let policy = Policy::reliable();
    let mut t = Transport::new(policy, 7);
    let (_, first) = t.submit(LAMP, power(false), None, t0, &two_routes);
    let (s, _) = sent_tx(&first);
    for a in &first {
        if let Action::Send { seq, .. } = a {
            assert!(t.on_receipt(s, seq.msg), "receipt matched by msg id");
        }
    }
    let later = run(
        &mut t,
        t0,
        policy.deadline + Duration::from_millis(20),
        &two_routes,
    );
    let retries = sends(&later);
    assert_eq!(
        retries.iter().map(|(s, _, a)| (*s, *a)).collect::<Vec<_>>(),
        vec![(2, 1), (1, 2), (2, 3)]
    );
    assert_eq!(
        outcomes(&later),
        vec![CommandOutcome::NoResponse],
        "receipt but no confirmation"
    );
}

#[test]
fn silence_ends_in_timeout_and_no_route_ends_in_no_route() {
    let t0 = Instant::now();
    let policy = Policy::reliable();
    let mut t = Transport::new(policy, 3);
    t.submit(LAMP, power(true), None, t0, &two_routes);
    let later = run(
        &mut t,
        t0,
        policy.deadline + Duration::from_millis(20),
        &two_routes,
    );
    assert_eq!(outcomes(&later), vec![CommandOutcome::Timeout]);

    let mut t = Transport::new(policy, 3);
    let (_, a) = t.submit(LAMP, power(true), None, t0, &no_routes);
    assert!(a.is_empty());
    let later = run(
        &mut t,
        t0,
        policy.deadline + Duration::from_millis(20),
        &no_routes,
    );
    assert_eq!(outcomes(&later), vec![CommandOutcome::NoRoute]);
}

#[test]
fn a_command_waiting_for_a_route_goes_out_when_one_appears() {
    let t0 = Instant::now();
    let mut t = Transport::new(Policy::reliable(), 3);
    t.submit(LAMP, power(true), None, t0, &no_routes);
    let a = t.on_tick(t0 + Duration::from_millis(300), &two_routes);
    assert_eq!(sends(&a), vec![(1, power(true), 0)]);
}

#[test]
fn a_lost_session_fails_over_at_once_and_a_late_response_from_the_first_attempt_still_counts() {
    let t0 = Instant::now();
    let mut t = Transport::new(Policy::reliable(), 3);
    let (_, a) = t.submit(LAMP, power(true), None, t0, &two_routes);
    let (s1, tx1) = sent_tx(&a);
    let only_two = |_: &K| vec![2];
    let failover = t.on_session_lost(s1, t0 + Duration::from_millis(5), &only_two);
    assert_eq!(sends(&failover), vec![(2, power(true), 1)]);
    // The first relay's response arrives anyway (it was mid-flight): same command, success.
    let done = t.on_response(s1, tx1, 0xD0, t0 + Duration::from_millis(50), &only_two);
    assert_eq!(outcomes(&done), vec![CommandOutcome::Success]);
}

#[test]
fn newer_commands_for_the_same_attribute_supersede_queued_ones() {
    let t0 = Instant::now();
    let mut t = Transport::new(Policy::reliable(), 3);
    let (_, a) = t.submit(LAMP, level(10), None, t0, &two_routes);
    let (s, tx) = sent_tx(&a);
    let mut superseded = 0;
    for b in 11..=50 {
        let (_, a) = t.submit(LAMP, level(b), None, t0, &two_routes);
        superseded += outcomes(&a)
            .iter()
            .filter(|o| **o == CommandOutcome::Superseded)
            .count();
    }
    t.submit(LAMP, power(false), None, t0, &two_routes);
    assert_eq!(
        superseded, 39,
        "every queued level but the newest was superseded"
    );
    assert_eq!(t.outstanding(), 3);
    let next = t.on_response(s, tx, 0xF0, t0, &two_routes);
    assert_eq!(outcomes(&next), vec![CommandOutcome::Success]);
    assert_eq!(
        sends(&next),
        vec![(1, level(50), 0)],
        "only the newest level goes out"
    );
}

#[test]
fn effects_are_not_idempotent_so_they_are_never_retried() {
    let t0 = Instant::now();
    let policy = Policy::reliable();
    let mut t = Transport::new(policy, 3);
    t.submit(
        LAMP,
        Command::Effect {
            target: LAMP,
            effect: [2, 0x7a],
        },
        None,
        t0,
        &two_routes,
    );
    let later = run(&mut t, t0, policy.deadline, &two_routes);
    assert!(sends(&later).is_empty());
    assert_eq!(outcomes(&later), vec![CommandOutcome::Timeout]);
}

#[test]
fn legacy_writes_once_and_does_not_coalesce() {
    let t0 = Instant::now();
    let policy = Policy::legacy();
    let mut t = Transport::new(policy, 3);
    t.submit(LAMP, level(10), None, t0, &two_routes);
    let (_, a) = t.submit(LAMP, level(20), None, t0, &two_routes);
    assert!(outcomes(&a).is_empty(), "queued, not superseded");
    let later = run(
        &mut t,
        t0,
        policy.deadline + Duration::from_millis(20),
        &two_routes,
    );
    assert_eq!(
        sends(&later),
        vec![(1, level(20), 0)],
        "second command only after the first ended"
    );
    assert_eq!(outcomes(&later), vec![CommandOutcome::Timeout]);
}

#[test]
fn a_full_queue_cancels_and_shutdown_cancels_everything() {
    let t0 = Instant::now();
    let mut policy = Policy::reliable();
    policy.queue_capacity = 2;
    let mut t = Transport::new(policy, 3);
    t.submit(LAMP, power(true), None, t0, &two_routes);
    t.submit(LAMP, level(1), None, t0, &two_routes);
    t.submit(
        LAMP,
        Command::Light {
            target: LAMP,
            brightness: None,
            color: Some(LightColor::Temperature(3)),
        },
        None,
        t0,
        &two_routes,
    );
    let (_, a) = t.submit(
        LAMP,
        Command::Effect {
            target: LAMP,
            effect: [1, 0xf1],
        },
        None,
        t0,
        &two_routes,
    );
    assert_eq!(outcomes(&a), vec![CommandOutcome::Cancelled]);
    let all = t.cancel_all(t0);
    assert_eq!(outcomes(&all), vec![CommandOutcome::Cancelled; 3]);
    assert_eq!(t.outstanding(), 0);
}

#[test]
fn next_wakeup_points_at_the_attempt_timeout() {
    let t0 = Instant::now();
    let policy = Policy::reliable();
    let mut t = Transport::new(policy, 3);
    assert_eq!(t.next_wakeup(), None);
    t.submit(LAMP, power(true), None, t0, &two_routes);
    assert_eq!(t.next_wakeup(), Some(t0 + policy.attempt_timeout));
}
