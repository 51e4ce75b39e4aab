//! The reliable transport as a running service: one task owns the sans-I/O state machine
//! ([`super::reliable::Transport`]) and does its I/O — submitting attempts to sessions, feeding
//! back what sessions report (sent, receipt, response, closed), confirmations from the state
//! store, and time. Callers talk to it through a bounded queue and get a [`CommandReport`] back
//! on a oneshot, so no caller ever touches the state machine or a session directly.
//!
//! Owns: the state machine, the shared sink every session reports into, and the waiters it
//! registers with the state store. Must never: write to a socket itself, block on a session (a
//! full session queue is a failed attempt), or hold a lock across an `.await`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ending::Ending;
use super::reliable::{Action, CommandId, Policy, Transport};
use super::{CommandOutcome, CommandReport, CommandRequest, ConfirmedBy};
use crate::device::{DeviceKey, ReportSource};
use crate::protocol::{Command, Seq};
use crate::server::{
    CommandEvent, CommandToken, CommandUpdate, Routes, Services, SessionCommand, SessionId,
    SubmitError,
};
use crate::telemetry::Metrics;

/// Submissions waiting for the service task. A full queue makes callers wait (the `block`
/// policy for command submission): commands are never dropped silently.
const SUBMIT_QUEUE: usize = 256;
/// Updates from every session, shared. A full sink loses an update; the deadline covers it.
const UPDATE_QUEUE: usize = 1024;
/// Confirmations from the state store.
const CONFIRM_QUEUE: usize = 256;

struct Submission {
    request: CommandRequest,
    reply: oneshot::Sender<CommandReport>,
}

/// Handle to the running reliable transport; cheap to clone.
#[derive(Clone, Debug)]
pub struct ReliableTransport {
    submit: mpsc::Sender<Submission>,
    name: &'static str,
    routes: Arc<Routes>,
}

impl ReliableTransport {
    /// Starts the service task on `tracker`; it ends (cancelling what is in flight) when
    /// `shutdown` fires.
    pub fn spawn(
        services: &Services,
        policy: Policy,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let (submit, submissions) = mpsc::channel(SUBMIT_QUEUE);
        let (updates_tx, updates) = mpsc::channel(UPDATE_QUEUE);
        let (confirm_tx, confirmations) = mpsc::channel(CONFIRM_QUEUE);
        let driver = Driver {
            transport: Transport::new(policy, rand::random()),
            routes: Arc::clone(&services.routes),
            ending: Ending::new(services),
            metrics: services.metrics.clone(),
            pending: HashMap::new(),
            updates_tx,
            confirm_tx,
            tracker: tracker.clone(),
        };
        tracker.spawn(driver.run(submissions, updates, confirmations, shutdown));
        ReliableTransport {
            submit,
            name: policy.name,
            routes: Arc::clone(&services.routes),
        }
    }

    /// The `transport` label of this path's metrics.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub(super) fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Delivers `request` and waits for its outcome; `cancel` ends the wait with `cancelled`
    /// (the command itself still runs to its own end inside the service).
    pub async fn execute(
        &self,
        request: CommandRequest,
        cancel: &CancellationToken,
    ) -> CommandReport {
        let (reply, outcome) = oneshot::channel();
        let cancelled = CommandReport::unsent(&request, CommandOutcome::Cancelled);
        tokio::select! {
            sent = self.submit.send(Submission { request, reply }) => {
                if sent.is_err() {
                    return cancelled;
                }
            }
            () = cancel.cancelled() => return cancelled,
        }
        tokio::select! {
            r = outcome => r.unwrap_or(cancelled),
            () = cancel.cancelled() => cancelled,
        }
    }
}

struct Waiting {
    request: CommandRequest,
    reply: oneshot::Sender<CommandReport>,
    report: CommandReport,
    started: Instant,
    /// Stops this command's confirmation waiter when the command ends another way, so the
    /// store's waiter slot is freed and shutdown never waits on it.
    watch: CancellationToken,
}

struct Driver {
    transport: Transport<SessionId, DeviceKey>,
    routes: Arc<Routes>,
    ending: Ending,
    metrics: Metrics,
    pending: HashMap<CommandId, Waiting>,
    updates_tx: mpsc::Sender<CommandUpdate>,
    confirm_tx: mpsc::Sender<(DeviceKey, CommandId, ReportSource)>,
    /// Where the small confirmation waiters run, so shutdown waits for them too.
    tracker: TaskTracker,
}

impl Driver {
    async fn run(
        mut self,
        mut submissions: mpsc::Receiver<Submission>,
        mut updates: mpsc::Receiver<CommandUpdate>,
        mut confirmations: mpsc::Receiver<(DeviceKey, CommandId, ReportSource)>,
        shutdown: CancellationToken,
    ) {
        loop {
            let wake = self.transport.next_wakeup().map(Instant::from_std);
            tokio::select! {
                // cancel-safe: every branch is a channel recv or a sleep; nothing is lost.
                () = shutdown.cancelled() => break,
                Some(s) = submissions.recv() => self.submit(s),
                Some(u) = updates.recv() => self.update(u),
                Some((key, id, source)) = confirmations.recv() => {
                    if let Some(w) = self.pending.get_mut(&id) {
                        w.report.confirmed_by.get_or_insert(ConfirmedBy::Report(source));
                    }
                    let routes = self.route_source();
                    let actions = self.transport.on_confirmed(key, id, Instant::now().into_std(), &routes);
                    self.act(actions);
                }
                () = sleep_until(wake.unwrap_or_else(far_future)), if wake.is_some() => {
                    let routes = self.route_source();
                    let actions = self.transport.on_tick(Instant::now().into_std(), &routes);
                    self.act(actions);
                }
            }
        }
        let actions = self.transport.cancel_all(Instant::now().into_std());
        self.act(actions);
    }

    fn route_source(&self) -> impl Fn(&DeviceKey) -> Vec<SessionId> {
        let routes = Arc::clone(&self.routes);
        move |key: &DeviceKey| routes.candidates(key).iter().map(|h| h.id()).collect()
    }

    fn submit(&mut self, s: Submission) {
        let routes = self.route_source();
        let (id, actions) = self.transport.submit(
            s.request.key,
            s.request.command,
            Some(s.request.timeout),
            Instant::now().into_std(),
            &routes,
        );
        let report = CommandReport::unsent(&s.request, CommandOutcome::Timeout);
        self.pending.insert(
            id,
            Waiting {
                request: s.request,
                reply: s.reply,
                report,
                started: Instant::now(),
                watch: CancellationToken::new(),
            },
        );
        // Submitting cancels a command only when the device's queue is full (the refused or the
        // dropped oldest one): that is the per-device queue overflowing, so count it.
        for action in &actions {
            if let Action::Complete {
                id,
                key,
                outcome: CommandOutcome::Cancelled,
                ..
            } = action
            {
                self.metrics.queue_full(&key.to_string(), "transport");
                if let Some(w) = self.pending.get_mut(id) {
                    w.report.queue_full = true;
                }
            }
        }
        self.act(actions);
    }

    fn update(&mut self, u: CommandUpdate) {
        let now = Instant::now().into_std();
        let routes = self.route_source();
        let actions = match u.event {
            CommandEvent::Receipt { msg } => {
                self.transport.on_receipt(u.session, msg);
                if let Some(key) = self.transport.command_of_receipt(u.session, msg) {
                    self.note_receipt(key);
                }
                Vec::new()
            }
            CommandEvent::Response { tx, op, status: 0 } => {
                let actions = self.transport.on_response(u.session, tx, op, now, &routes);
                for a in &actions {
                    if let Action::Complete {
                        id,
                        outcome: CommandOutcome::Success,
                        ..
                    } = a
                    {
                        if let Some(w) = self.pending.get_mut(id) {
                            w.report.confirmed_by.get_or_insert(ConfirmedBy::Response);
                        }
                    }
                }
                actions
            }
            CommandEvent::Response { .. } | CommandEvent::Sent { .. } => Vec::new(),
            CommandEvent::SessionClosed { .. } => {
                self.transport.on_session_lost(u.session, now, &routes)
            }
        };
        self.act(actions);
    }

    /// Carries out actions; a failed submission produces more actions, handled in turn.
    fn act(&mut self, mut actions: Vec<Action<SessionId, DeviceKey>>) {
        while !actions.is_empty() {
            let mut more = Vec::new();
            for action in actions {
                match action {
                    Action::Send {
                        session,
                        id,
                        key,
                        seq,
                        command,
                        attempt,
                    } => {
                        if !self.send(session, id, key, seq, command, attempt) {
                            let routes = self.route_source();
                            let now = Instant::now().into_std();
                            more.extend(self.transport.on_send_failed(key, id, now, &routes));
                        }
                    }
                    Action::Complete {
                        id,
                        outcome,
                        latency,
                        attempts,
                        ..
                    } => self.complete(id, outcome, latency, attempts),
                }
            }
            actions = more;
        }
    }

    fn send(
        &mut self,
        session: SessionId,
        id: CommandId,
        key: DeviceKey,
        seq: Seq,
        command: Command,
        attempt: u32,
    ) -> bool {
        let Some(handle) = self
            .routes
            .candidates(&key)
            .into_iter()
            .find(|h| h.id() == session)
        else {
            return false;
        };
        if !self.pending.contains_key(&id) {
            return false;
        }
        let label = handle.device().to_string();
        if attempt == 0 {
            self.watch_state(key, id, &command);
        } else {
            self.metrics.packet_retransmit(&label, "timeout");
        }
        let Some(w) = self.pending.get_mut(&id) else {
            return false;
        };
        w.report.session = Some(session);
        w.report.via = Some(handle.device());
        let submitted = handle.try_submit(SessionCommand {
            command,
            seq: Some(seq),
            token: CommandToken(id.0),
            correlation: w.request.correlation,
            events: self.updates_tx.clone(),
        });
        match submitted {
            Ok(()) => true,
            Err(error) => {
                if matches!(error, SubmitError::Full(_)) {
                    self.metrics.queue_full(&label, "command");
                }
                tracing::warn!(%error, %session, "attempt not taken by the session");
                false
            }
        }
    }

    /// Records when the first receipt for `id` arrived.
    fn note_receipt(&mut self, id: CommandId) {
        if let Some(w) = self.pending.get_mut(&id) {
            w.report
                .receipt_after
                .get_or_insert_with(|| w.started.elapsed());
        }
    }

    /// Registers the expected state with the store; a confirming report arrives on our channel.
    fn watch_state(&self, key: DeviceKey, id: CommandId, command: &Command) {
        let Some(waiter) = self.ending.watch(key, command) else {
            return;
        };
        let Some(watch) = self.pending.get(&id).map(|w| w.watch.clone()) else {
            return;
        };
        let confirm = self.confirm_tx.clone();
        // Ends when the report arrives or when the command ends another way (`watch`); dropping
        // the receiver releases the store's waiter. Small, and bounded by state.max_waiters.
        self.tracker.spawn(async move {
            tokio::select! {
                c = waiter => {
                    if let Ok(c) = c {
                        let _ = confirm.send((key, id, c.source)).await;
                    }
                }
                () = watch.cancelled() => {}
            }
        });
    }

    fn complete(
        &mut self,
        id: CommandId,
        outcome: CommandOutcome,
        latency: Duration,
        attempts: u32,
    ) {
        let Some(mut w) = self.pending.remove(&id) else {
            return;
        };
        w.watch.cancel();
        w.report.outcome = outcome;
        w.report.latency = latency;
        let name = self.transport.policy().name;
        self.ending
            .finish(name, &w.request, &mut w.report, attempts);
        let _ = w.reply.send(w.report);
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}
