//! What every command path shares about confirming and ending a command, so that legacy and
//! reliable differ only in delivery policy (which route, how often, how long) and never in what
//! counts as "the device did it" or in how the result is counted and logged.
//!
//! Confirmation is the same for both: the device's `f9` response carrying the command's tx and
//! echoing its op, or a state report showing the commanded state (the device's own late report,
//! or the relay record through which a Bluetooth-only device's state arrives; see
//! `docs/protocol.md`). The report waiter is registered *before* the command is sent, so a fast
//! report cannot slip past. A command confirmed by its `f9` also writes the commanded state into
//! the store: a report lost or corrupted afterwards must not leave Home Assistant showing the old
//! state.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{CommandOutcome, CommandReport, CommandRequest, ConfirmedBy};
use crate::device::{
    Confirmation, DeviceKey, DeviceState, Expectation, Report, ReportSource, StateStore,
};
use crate::protocol::Command;
use crate::server::Services;
use crate::telemetry::Metrics;

/// The state store and metrics a path needs to confirm and end commands; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Ending {
    state: Arc<StateStore>,
    metrics: Metrics,
}

impl Ending {
    pub(crate) fn new(services: &Services) -> Self {
        Ending {
            state: Arc::clone(&services.state),
            metrics: services.metrics.clone(),
        }
    }

    /// Registers the report that would confirm `command`; `None` when no report can show its
    /// effect (queries, effects, switch mode) or the store's waiter limit is reached (then only
    /// the `f9` can confirm it, and the warning says so).
    pub(crate) fn watch(
        &self,
        key: DeviceKey,
        command: &Command,
    ) -> Option<oneshot::Receiver<Confirmation>> {
        let expect = Expectation::for_command(command)?;
        self.state
            .expect(key, expect)
            .map_err(|e| tracing::warn!(error = %e, "confirmation by report unavailable"))
            .ok()
    }

    /// Settles `report` (ended by `transport` after `attempts` sends): stores the commanded state
    /// when the `f9` confirmed it, counts it (`tcp_comm_command_total`, latency, ack timeouts)
    /// and logs it once with its correlation id.
    pub(crate) fn finish(
        &self,
        transport: &'static str,
        request: &CommandRequest,
        report: &mut CommandReport,
        attempts: u32,
    ) {
        let outcome = report.outcome;
        report.attempts = attempts;
        if outcome != CommandOutcome::Success {
            report.confirmed_by = None;
        } else if report.confirmed_by == Some(ConfirmedBy::Response) {
            self.apply_response(request.key, &request.command);
        }
        self.metrics.command(transport, outcome.as_str());
        self.metrics.command_latency(transport, report.latency);
        let via = report.via.map(|v| v.to_string());
        if matches!(
            outcome,
            CommandOutcome::Timeout | CommandOutcome::NoResponse
        ) {
            self.metrics.ack_timeout(via.as_deref().unwrap_or_default());
        }
        let latency_ms = report.latency.as_secs_f64() * 1000.0;
        let confirmed_by = report.confirmed_by.map(|c| match c {
            ConfirmedBy::Response => "response",
            ConfirmedBy::Report(_) => "report",
        });
        if outcome == CommandOutcome::Success {
            tracing::info!(correlation_id = %request.correlation, device = %request.key, %outcome,
                latency_ms, attempts, via, confirmed_by, transport, "command finished");
        } else {
            tracing::warn!(correlation_id = %request.correlation, device = %request.key, %outcome,
                latency_ms, attempts, via, transport, "command failed");
        }
    }

    fn apply_response(&self, key: DeviceKey, command: &Command) {
        let Some(expect) = Expectation::for_command(command) else {
            return;
        };
        let current = self.state.get(&key).unwrap_or(DeviceState {
            online: true,
            ..DeviceState::default()
        });
        self.state.apply(Report {
            key,
            state: expect.applied_to(current),
            source: ReportSource::CommandResponse,
        });
    }
}
