//! The thin task around the pure controller: it owns the ledger and the controller, takes ended
//! commands from the router, runtime requests from Home Assistant and the CLI, evaluates every
//! `rollback.interval`, and does all of the I/O — the store, metrics, logs and the status that
//! MQTT and the admin endpoint show. A command never waits for it: the router hands evidence over
//! a bounded channel and reads the routing from a `watch`.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::control::{Effective, Persisted};
use super::controller::{Controller, Request, RequestError, Step, Transition};
use super::detector::Verdict;
use super::ledger::{Ledger, MinuteCounts, Series, UnixMinute, WireCounts};
use super::router::{Clock, Observed, RolloutTransport, RouterParts, OBSERVED_QUEUE};
use super::settings::RolloutSettings;
use super::status::{Status, StoreView};
use super::store::{CommandRow, Store, StoreHealth, StoreSettings};
use crate::server::Services;
use crate::telemetry::Metrics;
use crate::transport::reliable::Policy;
use crate::transport::{CommandTransport, LegacyTransport, ReliableTransport};

/// Runtime requests waiting for the task; a person clicks, so a handful is plenty.
const REQUEST_QUEUE: usize = 16;

/// Transitions kept for subscribers that fall behind (the MQTT side publishes each one).
const TRANSITION_QUEUE: usize = 16;

/// A request and where its answer goes.
struct Ask {
    request: Request,
    reply: oneshot::Sender<Result<Arc<Status>, RequestError>>,
}

/// The running controller, for Home Assistant and the admin endpoint.
#[derive(Clone, Debug)]
pub struct RolloutHandle {
    requests: mpsc::Sender<Ask>,
    status: watch::Receiver<Arc<Status>>,
    transitions: broadcast::Sender<Transition>,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The request itself was refused.
    #[error(transparent)]
    Refused(#[from] RequestError),
    /// The controller has stopped (shutdown).
    #[error("the rollout controller is not running")]
    Stopped,
}

impl RolloutHandle {
    /// Applies `request` and returns the status after it.
    pub async fn ask(&self, request: Request) -> Result<Arc<Status>, AskError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Ask { request, reply })
            .await
            .map_err(|_| AskError::Stopped)?;
        Ok(answer.await.map_err(|_| AskError::Stopped)??)
    }

    /// The latest status.
    pub fn status(&self) -> Arc<Status> {
        Arc::clone(&self.status.borrow())
    }

    /// Status updates (after every evaluation and change).
    pub fn watch(&self) -> watch::Receiver<Arc<Status>> {
        self.status.clone()
    }

    /// Every transition from now on (rollbacks, resumes, runtime changes).
    pub fn transitions(&self) -> broadcast::Receiver<Transition> {
        self.transitions.subscribe()
    }
}

/// The router (for the bridge) and the handle (for control).
#[derive(Debug)]
pub struct Started {
    #[allow(missing_docs)]
    pub transport: Arc<dyn CommandTransport>,
    #[allow(missing_docs)]
    pub handle: RolloutHandle,
}

/// Opens the evidence store (start-up I/O, before any command), starts both paths, the router
/// and the controller's task on `tracker`; everything ends with `shutdown`.
pub fn start(
    settings: &RolloutSettings,
    policy: Policy,
    services: &Services,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Started {
    start_with_clock(
        settings,
        policy,
        services,
        tracker,
        shutdown,
        Clock::start(),
    )
}

/// [`start`] on a given clock (tests start at a fixed instant).
pub fn start_with_clock(
    settings: &RolloutSettings,
    policy: Policy,
    services: &Services,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
    clock: Clock,
) -> Started {
    let metrics = services.metrics.clone();
    let store_settings = StoreSettings {
        path: settings.store_path.clone(),
        recent_commands: settings.recent_commands,
        ..StoreSettings::in_dir(std::path::Path::new("."))
    };
    let (store, loaded) = Store::open(&store_settings, &metrics);
    let (ledger, persisted, lost) = match loaded {
        Ok(loaded) => (
            loaded.ledger,
            parse_persisted(loaded.control.as_deref()),
            false,
        ),
        Err(error) => {
            tracing::error!(%error, "rollout evidence could not be loaded; SLO counts start from zero");
            (Ledger::default(), Persisted::default(), true)
        }
    };
    let mut controller = Controller::new(settings.configured.clone(), persisted, settings.rollback);
    if lost {
        controller.hold_unknown_latch(clock.now_unix_ms());
    }
    let (routing_tx, routing) = watch::channel(controller.effective());
    let (observed_tx, observed) = mpsc::channel(OBSERVED_QUEUE);
    let router = RolloutTransport::new(RouterParts {
        legacy: LegacyTransport::new(services),
        reliable: ReliableTransport::spawn(services, policy, tracker, shutdown.clone()),
        reliable_policy: policy,
        routes: Arc::clone(&services.routes),
        routing,
        observed: observed_tx,
        metrics: metrics.clone(),
        clock,
    });
    let (requests_tx, requests) = mpsc::channel(REQUEST_QUEUE);
    let (transitions, _) = broadcast::channel(TRANSITION_QUEUE);
    let mut task = Task {
        settings: settings.clone(),
        controller,
        ledger,
        store,
        metrics,
        clock,
        routing: routing_tx,
        status: watch::channel(Arc::new(Status::default())).0,
        transitions: transitions.clone(),
        last_step: None,
        last_transition: None,
        frames_seen: services.metrics.frame_totals(),
    };
    task.publish();
    let handle = RolloutHandle {
        requests: requests_tx,
        status: task.status.subscribe(),
        transitions,
    };
    tracker.spawn(task.run(observed, requests, shutdown));
    Started {
        transport: Arc::new(router),
        handle,
    }
}

fn parse_persisted(json: Option<&str>) -> Persisted {
    let Some(json) = json else {
        return Persisted::default();
    };
    serde_json::from_str(json).unwrap_or_else(|error| {
        tracing::error!(%error, "the stored rollout state is unreadable; starting from the configuration");
        Persisted::default()
    })
}

struct Task {
    settings: RolloutSettings,
    controller: Controller,
    ledger: Ledger,
    store: Store,
    metrics: Metrics,
    clock: Clock,
    routing: watch::Sender<Effective>,
    status: watch::Sender<Arc<Status>>,
    transitions: broadcast::Sender<Transition>,
    last_step: Option<Step>,
    last_transition: Option<Transition>,
    frames_seen: (u64, u64),
}

impl Task {
    async fn run(
        mut self,
        mut observed: mpsc::Receiver<Observed>,
        mut requests: mpsc::Receiver<Ask>,
        shutdown: CancellationToken,
    ) {
        let interval = self.settings.rollback.interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                // cancel-safe: recv removes a message only when it returns it.
                Some(o) = observed.recv() => self.count(o),
                Some(ask) = requests.recv() => self.answer(ask),
                _ = ticks.tick() => self.evaluate(),
            }
        }
        while let Ok(o) = observed.try_recv() {
            self.count(o);
        }
        self.store.flush().await;
        let store = self.store.clone();
        drop(self);
        let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
    }

    fn count(&mut self, o: Observed) {
        let minute = UnixMinute::from_unix_ms(o.at_unix_ms);
        let counts = MinuteCounts::of(&o.ended);
        self.ledger.add(o.series, minute, &counts);
        let row = CommandRow {
            at_unix_ms: o.at_unix_ms,
            device: o.route.to_string(),
            series: o.series,
            outcome: o.ended.outcome,
            latency_ms: u32::try_from(o.ended.latency.as_millis()).unwrap_or(u32::MAX),
            attempts: o.ended.attempts,
        };
        self.store.record(minute, o.series, counts, Some(row));
    }

    fn answer(&mut self, ask: Ask) {
        let now = self.clock.now_unix_ms();
        let result = self.controller.apply(ask.request, now);
        if let Ok(transition) = &result {
            tracing::info!(kind = transition.kind, detail = %transition.detail, "rollout changed");
            self.transition(transition.clone());
        }
        let _ = ask.reply.send(result.map(|_| self.status.borrow().clone()));
    }

    /// Persists and announces a change of routing.
    fn transition(&mut self, transition: Transition) {
        if transition.kind == "rollback" {
            self.metrics.rollout().rolled_back(&transition.reason);
        }
        self.store
            .save_control(serde_json::to_string(self.controller.persisted()).unwrap_or_default());
        self.last_transition = Some(transition.clone());
        let _ = self.transitions.send(transition);
        self.publish();
    }

    fn sample_wire(&mut self, minute: UnixMinute) {
        let (received, bad) = self.metrics.frame_totals();
        let (seen_received, seen_bad) = self.frames_seen;
        self.frames_seen = (received, bad);
        let counts = WireCounts {
            received: u32::try_from(received.saturating_sub(seen_received)).unwrap_or(u32::MAX),
            decode_errors: u32::try_from(bad.saturating_sub(seen_bad)).unwrap_or(u32::MAX),
        };
        if counts != WireCounts::default() {
            self.ledger.add_wire(minute, &counts);
            self.store.record_wire(minute, counts);
        }
    }

    fn evaluate(&mut self) {
        let now = self.clock.now_unix_ms();
        let minute = UnixMinute::from_unix_ms(now);
        self.sample_wire(minute);
        self.ledger.prune(minute);
        let evidence_ok = self.store.health() == StoreHealth::Healthy;
        let step = self.controller.evaluate(&self.ledger, now, evidence_ok);
        let verdict = if step.hold.is_some() {
            "held"
        } else {
            verdict_label(&step.evaluation.verdict)
        };
        self.metrics.rollout().evaluated(verdict, step.failing);
        if let Some(rollback) = step.rollback.clone() {
            let deciding = step.evaluation.deciding();
            tracing::error!(
                slo_name = %rollback.reason,
                observed = deciding.and_then(|c| c.reliable.fraction()),
                target = deciding.map(|c| f64::from(c.target_ppm) / 1e6),
                legacy_observed = deciding.and_then(|c| c.legacy.fraction()),
                p_value = deciding.and_then(|c| c.p_value),
                window_minutes = step.evaluation.window_minutes,
                consecutive = self.controller.settings().consecutive,
                from_percent = rollback.from_percent,
                to_percent = rollback.to_percent,
                detail = %rollback.detail,
                "canary rolled back: every device is on the legacy path until resumed"
            );
            self.last_step = Some(step);
            self.transition(rollback);
            return;
        }
        self.last_step = Some(step);
        self.publish();
    }

    /// Publishes the routing to the router and the status to everyone else, and the gauges.
    fn publish(&mut self) {
        let effective = self.controller.effective();
        self.metrics.rollout().routing_state(
            effective.percent(),
            effective.mode.as_str(),
            effective.latched,
        );
        let now = UnixMinute::from_unix_ms(self.clock.now_unix_ms());
        let status = Status::build(&super::status::Inputs {
            settings: &self.settings,
            controller: &self.controller,
            ledger: &self.ledger,
            now,
            last_step: self.last_step.as_ref(),
            last_transition: self.last_transition.as_ref(),
            store: store_view(&self.store.health()),
        });
        for slo in &status.slos {
            self.metrics.rollout().slo(
                slo.slo.name,
                slo.series.as_str(),
                slo.compliant,
                slo.budget_remaining,
            );
            if slo.series == Series::Reliable {
                for burn in &slo.burn {
                    if let Some(window) = super::status::burn_label(&burn.window) {
                        self.metrics
                            .rollout()
                            .burn_rate(slo.slo.name, window, burn.rate);
                    }
                }
            }
        }
        self.routing.send_replace(effective);
        self.status.send_replace(Arc::new(status));
    }
}

fn store_view(health: &StoreHealth) -> StoreView {
    match health {
        StoreHealth::Healthy => StoreView {
            healthy: true,
            reason: None,
        },
        StoreHealth::Degraded { reason, .. } => StoreView {
            healthy: false,
            reason: Some(reason.clone()),
        },
    }
}

fn verdict_label(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Insufficient { .. } => "insufficient",
        Verdict::HouseWide { .. } => "house_wide",
        Verdict::Fail { .. } => "fail",
    }
}
