//! Command delivery as a sans-I/O state machine: the session tasks do the I/O; this decides what
//! to send where, and when a command has ended. Every call takes `now`, so tests drive it with
//! synthetic instants and no runtime, and the rollout controller can replay it.
//!
//! Policy ([`Policy`]; timing from `docs/protocol.md#timing`: the device's `f9` after 14–240 ms,
//! its state report 0.1–1 s after the command, so at least 1–2 s per attempt and ≈5 s overall):
//! - one command in flight per device; newer commands for the same attribute supersede queued
//!   older ones (a dragged slider sends one command, not forty);
//! - success = the `f9` response matched by (session, tx) and the echoed op, from any attempt, or
//!   a state report showing the expected new state; the 0x7B receipt is recorded, not required;
//! - no confirmation within the attempt timeout → retry with exponential backoff (base 250 ms,
//!   cap 5 s, jitter), at most `max_retries` times, rotating through the routes that reach the
//!   device, and only for idempotent set-state commands; a lost session retries at once elsewhere;
//! - the overall deadline ends everything: `no_response` if a receipt came, else `timeout`
//!   (`no_route` if no attempt could be sent at all).
//!
//! The legacy policy is the same machine with no retries and no coalescing: what existing
//! bridges do, kept for comparison and for the rollout controller.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::expect::{attribute, Attribute};
use super::outcome::CommandOutcome;
pub use super::policy::Policy;
use super::queue::{CoalescingQueue, Pushed};
use crate::protocol::{Command, MsgId, Seq, SeqAllocator};

/// Transports use msg ids 0x0001–0x7FFF; a session's own requests use 0x8000–0xFFFF.
pub const TRANSPORT_MSG_MAX: u16 = 0x7FFF;

/// How often a command without a route looks for one.
const ROUTE_POLL: Duration = Duration::from_millis(250);

/// Identifies one submitted command for its whole life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u64);

/// Where the routes to a device come from (the registry, in the bridge).
pub trait RouteSource<S, K> {
    /// Sessions that reach `key`, preferred first.
    fn routes(&self, key: &K) -> Vec<S>;
}

impl<S, K, F: Fn(&K) -> Vec<S>> RouteSource<S, K> for F {
    fn routes(&self, key: &K) -> Vec<S> {
        self(key)
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action<S, K> {
    /// Encode `command` with `seq` and write it to `session`.
    Send {
        /// Which session.
        session: S,
        /// Which command.
        id: CommandId,
        /// Device it is for.
        key: K,
        /// msg id and tx to use.
        seq: Seq,
        /// What to send.
        command: Command,
        /// 0 for the first attempt.
        attempt: u32,
    },
    /// The command has ended.
    Complete {
        /// Which command.
        id: CommandId,
        /// Device it was for.
        key: K,
        /// How it ended.
        outcome: CommandOutcome,
        /// Submission to outcome.
        latency: Duration,
        /// Attempts sent.
        attempts: u32,
        /// Whether a 0x7B receipt arrived for any attempt.
        receipt: bool,
    },
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Sent; waiting for confirmation until the instant.
    Awaiting(Instant),
    /// Waiting to send the next attempt at the instant.
    Backoff(Instant),
    /// No route yet; looked for again at the instant (and whenever the driver ticks).
    NoRoute(Instant),
}

#[derive(Debug)]
struct Inflight<S> {
    id: CommandId,
    command: Command,
    deadline: Duration,
    submitted: Instant,
    /// When it left the queue: the deadline counts from here, so a command that waited behind
    /// another still gets its full chance (queue wait is bounded by capacity × deadline).
    started: Instant,
    attempts: u32,
    receipt: bool,
    phase: Phase,
    sent: Vec<(S, Seq)>,
}

#[derive(Debug)]
struct Pending {
    id: CommandId,
    command: Command,
    deadline: Duration,
    submitted: Instant,
}

#[derive(Debug)]
struct Lane<S> {
    active: Option<Inflight<S>>,
    queue: CoalescingQueue<Attribute, Pending>,
}

/// The delivery state machine for one bridge (all sessions, all devices).
#[derive(Debug)]
pub struct Transport<S, K> {
    policy: Policy,
    rng: StdRng,
    next_id: u64,
    seqs: HashMap<S, SeqAllocator>,
    lanes: HashMap<K, Lane<S>>,
    by_tx: HashMap<(S, u32), K>,
    by_msg: HashMap<(S, MsgId), K>,
}

impl<S: Copy + Eq + Hash, K: Copy + Eq + Hash> Transport<S, K> {
    /// A transport with `policy`; `seed` makes retry jitter reproducible.
    pub fn new(policy: Policy, seed: u64) -> Self {
        Transport {
            policy,
            rng: StdRng::seed_from_u64(seed),
            next_id: 1,
            seqs: HashMap::new(),
            lanes: HashMap::new(),
            by_tx: HashMap::new(),
            by_msg: HashMap::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Commands in flight or queued, over all devices.
    pub fn outstanding(&self) -> usize {
        self.lanes
            .values()
            .map(|l| usize::from(l.active.is_some()) + l.queue.len())
            .sum()
    }

    /// Starts (or queues behind the device's command in flight) a command for device `key`.
    /// `deadline` overrides the policy's for this command (e.g. a caller's own timeout).
    pub fn submit(
        &mut self,
        key: K,
        command: Command,
        deadline: Option<Duration>,
        now: Instant,
        routes: &impl RouteSource<S, K>,
    ) -> (CommandId, Vec<Action<S, K>>) {
        let id = CommandId(self.next_id);
        self.next_id += 1;
        let mut actions = Vec::new();
        let pending = Pending {
            id,
            command,
            deadline: deadline.unwrap_or(self.policy.deadline),
            submitted: now,
        };
        let policy = self.policy;
        let lane = self.lanes.entry(key).or_insert_with(|| Lane {
            active: None,
            queue: CoalescingQueue::new(policy.queue_capacity, policy.overflow),
        });
        if lane.active.is_some() {
            match lane
                .queue
                .push(attribute(&command, id, policy.coalesce), pending)
            {
                Pushed::Queued => {}
                Pushed::Superseded(old) => actions.push(complete(
                    key,
                    old.id,
                    CommandOutcome::Superseded,
                    now,
                    old.submitted,
                    0,
                    false,
                )),
                // A full queue sheds load; the dropped or refused command is reported as
                // cancelled (the caller counts it in tcp_comm_queue_full_total).
                Pushed::DroppedOldest(old) | Pushed::Rejected(old) => actions.push(complete(
                    key,
                    old.id,
                    CommandOutcome::Cancelled,
                    now,
                    old.submitted,
                    0,
                    false,
                )),
            }
            return (id, actions);
        }
        self.start(key, pending, now, routes, &mut actions);
        (id, actions)
    }

    fn start(
        &mut self,
        key: K,
        p: Pending,
        now: Instant,
        routes: &impl RouteSource<S, K>,
        actions: &mut Vec<Action<S, K>>,
    ) {
        let inflight = Inflight {
            id: p.id,
            deadline: p.deadline,
            command: p.command,
            submitted: p.submitted,
            started: now,
            attempts: 0,
            receipt: false,
            phase: Phase::NoRoute(now),
            sent: Vec::new(),
        };
        if let Some(lane) = self.lanes.get_mut(&key) {
            lane.active = Some(inflight);
        }
        self.attempt(key, now, routes, actions);
    }

    /// Sends the next attempt of `key`'s active command, or parks it waiting for a route.
    fn attempt(
        &mut self,
        key: K,
        now: Instant,
        routes: &impl RouteSource<S, K>,
        actions: &mut Vec<Action<S, K>>,
    ) {
        let candidates = routes.routes(&key);
        let Some(lane) = self.lanes.get_mut(&key) else {
            return;
        };
        let Some(inf) = lane.active.as_mut() else {
            return;
        };
        if candidates.is_empty() {
            inf.phase = Phase::NoRoute(now + ROUTE_POLL);
            return;
        }
        // Rotate through the routes so each retry may take another relay.
        let session = candidates[inf.attempts as usize % candidates.len()];
        let seq = self
            .seqs
            .entry(session)
            .or_insert_with(|| SeqAllocator::in_range(1, TRANSPORT_MSG_MAX, 1, 1))
            .next_for(&inf.command);
        self.by_tx.insert((session, seq.tx), key);
        self.by_msg.insert((session, seq.msg), key);
        inf.sent.push((session, seq));
        inf.phase = Phase::Awaiting(now + self.policy.attempt_timeout);
        actions.push(Action::Send {
            session,
            id: inf.id,
            key,
            seq,
            command: inf.command,
            attempt: inf.attempts,
        });
        inf.attempts += 1;
    }

    /// Ends `key`'s active command with `outcome` and starts the next queued one.
    fn finish(
        &mut self,
        key: K,
        outcome: CommandOutcome,
        now: Instant,
        routes: &impl RouteSource<S, K>,
        actions: &mut Vec<Action<S, K>>,
    ) {
        let Some(lane) = self.lanes.get_mut(&key) else {
            return;
        };
        let Some(inf) = lane.active.take() else {
            return;
        };
        for (session, seq) in &inf.sent {
            self.by_tx.remove(&(*session, seq.tx));
            self.by_msg.remove(&(*session, seq.msg));
        }
        actions.push(complete(
            key,
            inf.id,
            outcome,
            now,
            inf.submitted,
            inf.attempts,
            inf.receipt,
        ));
        let next = lane.queue.pop();
        match next {
            Some((_, p)) => self.start(key, p, now, routes, actions),
            None => {
                self.lanes.remove(&key);
            }
        }
    }

    /// A device's `f9` response on `session` with frame `tx` echoing request op `op`.
    pub fn on_response(
        &mut self,
        session: S,
        tx: u32,
        op: u8,
        now: Instant,
        routes: &impl RouteSource<S, K>,
    ) -> Vec<Action<S, K>> {
        let mut actions = Vec::new();
        let Some(&key) = self.by_tx.get(&(session, tx)) else {
            return actions;
        };
        let matches = self
            .lanes
            .get(&key)
            .and_then(|l| l.active.as_ref())
            .is_some_and(|inf| inf.command.frame_op() == op);
        if matches {
            self.finish(key, CommandOutcome::Success, now, routes, &mut actions);
        }
        actions
    }

    /// A 0x7B receipt on `session` for `msg`: recorded; returns whether it matched a command.
    pub fn on_receipt(&mut self, session: S, msg: MsgId) -> bool {
        let Some(key) = self.by_msg.get(&(session, msg)) else {
            return false;
        };
        match self.lanes.get_mut(key).and_then(|l| l.active.as_mut()) {
            Some(inf) => {
                inf.receipt = true;
                true
            }
            None => false,
        }
    }

    /// The command in flight that sent `msg` on `session`, if any.
    pub fn command_of_receipt(&self, session: S, msg: MsgId) -> Option<CommandId> {
        let key = self.by_msg.get(&(session, msg))?;
        self.lanes
            .get(key)
            .and_then(|l| l.active.as_ref())
            .map(|inf| inf.id)
    }

    /// True when `id` is the command `key` has in flight (not queued, not ended).
    fn is_active(&self, key: K, id: CommandId) -> bool {
        self.lanes
            .get(&key)
            .and_then(|l| l.active.as_ref())
            .is_some_and(|inf| inf.id == id)
    }

    /// A report confirmed command `id` of device `key` (the driver registers the expected state
    /// with the state store when the command starts; a stale confirmation is ignored).
    pub fn on_confirmed(
        &mut self,
        key: K,
        id: CommandId,
        now: Instant,
        routes: &impl RouteSource<S, K>,
    ) -> Vec<Action<S, K>> {
        let mut actions = Vec::new();
        if self.is_active(key, id) {
            self.finish(key, CommandOutcome::Success, now, routes, &mut actions);
        }
        actions
    }

    /// A session closed: its commands retry at once through another route (no backoff: the
    /// failure is known, not suspected), and its sequence counters are forgotten.
    pub fn on_session_lost(
        &mut self,
        session: S,
        now: Instant,
        routes: &impl RouteSource<S, K>,
    ) -> Vec<Action<S, K>> {
        self.seqs.remove(&session);
        let affected: Vec<K> = self
            .lanes
            .iter()
            .filter(|(_, l)| {
                l.active.as_ref().is_some_and(|inf| {
                    matches!(inf.phase, Phase::Awaiting(_))
                        && inf.sent.last().is_some_and(|(s, _)| *s == session)
                })
            })
            .map(|(k, _)| *k)
            .collect();
        let mut actions = Vec::new();
        for key in affected {
            self.retry_or_end(key, now, routes, &mut actions, true, None);
        }
        actions
    }

    /// Writing `id`'s attempt to its session failed.
    pub fn on_send_failed(
        &mut self,
        key: K,
        id: CommandId,
        now: Instant,
        routes: &impl RouteSource<S, K>,
    ) -> Vec<Action<S, K>> {
        let mut actions = Vec::new();
        if self.is_active(key, id) {
            let failure = Some(CommandOutcome::SendError);
            self.retry_or_end(key, now, routes, &mut actions, true, failure);
        }
        actions
    }

    /// Retries `key`'s active command if policy and deadline allow; otherwise ends it with the
    /// outcome its history implies. Returns whether it is still alive.
    fn retry_or_end(
        &mut self,
        key: K,
        now: Instant,
        routes: &impl RouteSource<S, K>,
        actions: &mut Vec<Action<S, K>>,
        immediately: bool,
        failure: Option<CommandOutcome>,
    ) -> bool {
        let policy = self.policy;
        let Some(inf) = self.lanes.get_mut(&key).and_then(|l| l.active.as_mut()) else {
            return false;
        };
        let deadline = inf.started + inf.deadline;
        let retries_left = inf.attempts <= policy.max_retries && inf.command.is_idempotent();
        if !retries_left || now >= deadline {
            let outcome = failure.unwrap_or_else(|| ending(inf));
            self.finish(key, outcome, now, routes, actions);
            return false;
        }
        if immediately {
            self.attempt(key, now, routes, actions);
        } else {
            let delay = policy.backoff.delay(inf.attempts - 1, &mut self.rng);
            inf.phase = Phase::Backoff((now + delay).min(deadline));
        }
        true
    }

    /// Advances time: attempt timeouts, backoff expiry, routes that appeared, deadlines.
    pub fn on_tick(&mut self, now: Instant, routes: &impl RouteSource<S, K>) -> Vec<Action<S, K>> {
        let mut actions = Vec::new();
        let due: Vec<(K, Phase, bool)> = self
            .lanes
            .iter()
            .filter_map(|(k, l)| l.active.as_ref().map(|inf| (*k, inf)))
            .filter_map(|(k, inf)| {
                let expired = now >= inf.started + inf.deadline;
                let due = match inf.phase {
                    Phase::Awaiting(t) | Phase::Backoff(t) | Phase::NoRoute(t) => now >= t,
                };
                (due || expired).then_some((k, inf.phase, expired))
            })
            .collect();
        for (key, phase, expired) in due {
            match (phase, expired) {
                (_, true) => {
                    let outcome = self
                        .lanes
                        .get(&key)
                        .and_then(|l| l.active.as_ref())
                        .map_or(CommandOutcome::Timeout, ending);
                    self.finish(key, outcome, now, routes, &mut actions);
                }
                (Phase::Awaiting(_), false) => {
                    self.retry_or_end(key, now, routes, &mut actions, false, None);
                }
                (Phase::Backoff(_) | Phase::NoRoute(_), false) => {
                    self.attempt(key, now, routes, &mut actions);
                }
            }
        }
        actions
    }

    /// The next instant at which [`Self::on_tick`] has something to do.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.lanes
            .values()
            .filter_map(|l| l.active.as_ref())
            .map(|inf| {
                let end = inf.started + inf.deadline;
                match inf.phase {
                    Phase::Awaiting(t) | Phase::Backoff(t) | Phase::NoRoute(t) => t.min(end),
                }
            })
            .min()
    }

    /// Cancels everything (shutdown).
    pub fn cancel_all(&mut self, now: Instant) -> Vec<Action<S, K>> {
        let mut actions = Vec::new();
        for (key, mut lane) in self.lanes.drain() {
            if let Some(inf) = lane.active.take() {
                actions.push(complete(
                    key,
                    inf.id,
                    CommandOutcome::Cancelled,
                    now,
                    inf.submitted,
                    inf.attempts,
                    inf.receipt,
                ));
            }
            for (_, p) in lane.queue.drain() {
                actions.push(complete(
                    key,
                    p.id,
                    CommandOutcome::Cancelled,
                    now,
                    p.submitted,
                    0,
                    false,
                ));
            }
        }
        self.by_tx.clear();
        self.by_msg.clear();
        actions
    }
}

/// The outcome of a command that ran out of attempts or time.
fn ending<S>(inf: &Inflight<S>) -> CommandOutcome {
    if inf.attempts == 0 {
        CommandOutcome::NoRoute
    } else if inf.receipt {
        CommandOutcome::NoResponse
    } else {
        CommandOutcome::Timeout
    }
}

fn complete<S, K>(
    key: K,
    id: CommandId,
    outcome: CommandOutcome,
    now: Instant,
    submitted: Instant,
    attempts: u32,
    receipt: bool,
) -> Action<S, K> {
    Action::Complete {
        id,
        key,
        outcome,
        latency: now.saturating_duration_since(submitted),
        attempts,
        receipt,
    }
}
