//! The rollout controller as a [`CommandTransport`]: for each command it reads the routing in
//! force once, sends the command down that path, and hands how it ended to the controller's task.
//!
//! Reading the routing once per command is what makes a change apply on the next command with no
//! restart while a command in flight finishes on the path it started on. Both paths are always
//! running (the reliable one's service task idles when it has nothing to do), so a change never
//! waits for a path to start. Both confirm, count and log commands the same way
//! (`transport::ending`); this layer only adds the routing decision and the evidence.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::assign::Path;
use super::control::Effective;
use super::ledger::{Ended, Series};
use super::shadow;
use crate::server::Routes;
use crate::telemetry::Metrics;
use crate::transport::reliable::Policy;
use crate::transport::{
    CommandReport, CommandRequest, CommandTransport, LegacyTransport, PendingReport,
    ReliableTransport, RouteKey,
};

/// Wall-clock milliseconds that advance with tokio's clock: real time in the bridge, virtual
/// time under a paused test clock, so an evaluation "every 60 s" and the minute a command is
/// counted in agree in both.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base_unix_ms: u64,
    base: tokio::time::Instant,
}

impl Clock {
    /// A clock that reads the system time now and follows tokio's clock from here.
    pub fn start() -> Clock {
        let base_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Clock::at(base_unix_ms)
    }

    /// A clock reading `unix_ms` now (tests).
    pub fn at(unix_ms: u64) -> Clock {
        Clock {
            base_unix_ms: unix_ms,
            base: tokio::time::Instant::now(),
        }
    }

    /// Unix milliseconds now.
    pub fn now_unix_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.base_unix_ms.saturating_add(elapsed)
    }
}

/// One ended command (or shadow observation) for the controller's task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observed {
    /// When it ended.
    pub at_unix_ms: u64,
    #[allow(missing_docs)]
    pub route: RouteKey,
    #[allow(missing_docs)]
    pub series: Series,
    #[allow(missing_docs)]
    pub ended: Ended,
}

/// Room for ended commands on their way to the task; the task drains it continuously, so it
/// fills only if the task stalls (then observations are dropped and the first drop is logged).
pub const OBSERVED_QUEUE: usize = 8_192;

/// Routes every command to the legacy or the reliable path.
#[derive(Debug)]
pub struct RolloutTransport {
    legacy: LegacyTransport,
    reliable: ReliableTransport,
    reliable_policy: Policy,
    routes: Arc<Routes>,
    routing: watch::Receiver<Effective>,
    observed: mpsc::Sender<Observed>,
    metrics: Metrics,
    clock: Clock,
    dropped: AtomicBool,
}

/// What the router is built from.
#[derive(Debug)]
pub struct RouterParts {
    #[allow(missing_docs)]
    pub legacy: LegacyTransport,
    #[allow(missing_docs)]
    pub reliable: ReliableTransport,
    /// The reliable path's policy, for what shadow mode says it would have done.
    pub reliable_policy: Policy,
    #[allow(missing_docs)]
    pub routes: Arc<Routes>,
    /// The routing in force, published by the task.
    pub routing: watch::Receiver<Effective>,
    /// Where ended commands go.
    pub observed: mpsc::Sender<Observed>,
    #[allow(missing_docs)]
    pub metrics: Metrics,
    #[allow(missing_docs)]
    pub clock: Clock,
}

impl RolloutTransport {
    #[allow(missing_docs)]
    pub fn new(parts: RouterParts) -> Self {
        RolloutTransport {
            legacy: parts.legacy,
            reliable: parts.reliable,
            reliable_policy: parts.reliable_policy,
            routes: parts.routes,
            routing: parts.routing,
            observed: parts.observed,
            metrics: parts.metrics,
            clock: parts.clock,
            dropped: AtomicBool::new(false),
        }
    }

    async fn run(&self, request: CommandRequest, cancel: &CancellationToken) -> CommandReport {
        let (path, shadow) = {
            let routing = self.routing.borrow();
            (routing.path(request.route), routing.shadow)
        };
        self.metrics.rollout().routed(path.as_str());
        let report = match path {
            Path::Legacy => self.legacy.execute(request, cancel).await,
            Path::Reliable => self.reliable.execute(request, cancel).await,
        };
        let series = match path {
            Path::Legacy => Series::Legacy,
            Path::Reliable => Series::Reliable,
        };
        self.send(request.route, series, ended(&report));
        if shadow && path == Path::Legacy {
            let relays = self.routes.candidates(&request.key).len();
            let seen = shadow::observe(&report, &self.reliable_policy, relays);
            self.metrics.rollout().shadow(
                report.outcome.as_str(),
                seen.would_retry,
                seen.would_failover,
                seen.receipt,
                seen.response,
            );
            self.send(request.route, Series::Shadow, seen.ended);
        }
        report
    }

    fn send(&self, route: RouteKey, series: Series, ended: Ended) {
        let observed = Observed {
            at_unix_ms: self.clock.now_unix_ms(),
            route,
            series,
            ended,
        };
        if self.observed.try_send(observed).is_err() && !self.dropped.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "rollout evidence dropped: the controller task is not keeping up (SLO counts \
                 will be short; this is logged once)"
            );
        }
    }
}

fn ended(report: &CommandReport) -> Ended {
    Ended {
        outcome: report.outcome,
        latency: report.latency,
        attempts: report.attempts,
        queue_full: report.queue_full,
    }
}

impl CommandTransport for RolloutTransport {
    fn name(&self) -> &'static str {
        "rollout"
    }

    fn execute<'a>(
        &'a self,
        request: CommandRequest,
        cancel: &'a CancellationToken,
    ) -> PendingReport<'a> {
        Box::pin(self.run(request, cancel))
    }

    fn refresh(&self, key: crate::device::DeviceKey, correlation: uuid::Uuid) -> bool {
        CommandTransport::refresh(&self.legacy, key, correlation)
    }
}
