//! The legacy command path — what existing bridges do, and what `cync-bridge toggle` uses: send
//! the command once on the device's preferred route and wait.
//!
//! What confirms a command and how it is counted is shared with the reliable path
//! ([`super::ending`]). At the deadline the outcome is `no_response` if the device at least
//! returned the 0x7B receipt, else `timeout`. No retry, no other route: that is the reliable
//! transport's job.

use std::future::pending;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::ending::Ending;
use super::{CommandOutcome, CommandReport, CommandRequest, ConfirmedBy};
use crate::device::Confirmation;
use crate::server::{
    CommandEvent, CommandToken, CommandUpdate, Routes, Services, SessionCommand, SessionHandle,
    SubmitError,
};
use crate::telemetry::Metrics;

/// `transport` label of this path's metrics.
pub const TRANSPORT_LABEL: &str = "legacy";

/// Updates one command can receive (sent, receipt, response, closed) with room to spare; a
/// full sink loses an update, which the deadline then covers.
const EVENTS_PER_COMMAND: usize = 8;

#[allow(missing_docs)]
#[derive(Debug)]
pub struct LegacyTransport {
    routes: Arc<Routes>,
    ending: Ending,
    metrics: Metrics,
    next_token: AtomicU64,
}

/// What waiting ended with.
struct Waited {
    outcome: CommandOutcome,
    confirmed_by: Option<ConfirmedBy>,
    /// When the first 0x7B receipt arrived.
    receipt: Option<Instant>,
    queue_full: bool,
}

impl LegacyTransport {
    /// A transport over the bridge's shared services.
    pub fn new(services: &Services) -> Self {
        LegacyTransport {
            routes: Arc::clone(&services.routes),
            ending: Ending::new(services),
            metrics: services.metrics.clone(),
            next_token: AtomicU64::new(1),
        }
    }

    pub(super) fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Sends `request` once and waits for its outcome; `cancel` ends the wait with `cancelled`.
    pub async fn execute(
        &self,
        request: CommandRequest,
        cancel: &CancellationToken,
    ) -> CommandReport {
        let span = tracing::info_span!(
            "command",
            correlation_id = %request.correlation,
            device = %request.key,
            transport = TRANSPORT_LABEL,
        );
        self.run(request, cancel).instrument(span).await
    }

    async fn run(&self, request: CommandRequest, cancel: &CancellationToken) -> CommandReport {
        let started = Instant::now();
        let deadline = started + request.timeout;
        let mut report = CommandReport::unsent(&request, CommandOutcome::NoRoute);
        if let Some(session) = self.routes.preferred(&request.key) {
            report.session = Some(session.id());
            report.via = Some(session.device());
            let waited = self
                .send_and_wait(&request, &session, deadline, cancel)
                .await;
            report.outcome = waited.outcome;
            report.confirmed_by = waited.confirmed_by;
            report.receipt_after = waited.receipt.map(|at| at.duration_since(started));
            report.queue_full = waited.queue_full;
        }
        report.latency = started.elapsed();
        let attempts = u32::from(report.session.is_some());
        self.ending
            .finish(TRANSPORT_LABEL, &request, &mut report, attempts);
        report
    }

    async fn send_and_wait(
        &self,
        request: &CommandRequest,
        session: &SessionHandle,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Waited {
        // Registered before sending, so the confirming report cannot slip past.
        let mut confirmation = self.ending.watch(request.key, &request.command);
        let (events, mut updates) = mpsc::channel(EVENTS_PER_COMMAND);
        let submitted = session.try_submit(SessionCommand {
            command: request.command,
            seq: None,
            token: CommandToken(self.next_token.fetch_add(1, Ordering::Relaxed)),
            correlation: request.correlation,
            events,
        });
        if let Err(error) = submitted {
            if matches!(error, SubmitError::Full(_)) {
                self.metrics
                    .queue_full(&session.device().to_string(), "command");
            }
            tracing::warn!(%error, session = %session.id(), "command not taken by the session");
            return Waited {
                outcome: CommandOutcome::SendError,
                confirmed_by: None,
                receipt: None,
                queue_full: matches!(error, SubmitError::Full(_)),
            };
        }
        let op = request.command.frame_op();
        wait(&mut updates, &mut confirmation, op, deadline, cancel).await
    }
}

/// Waits for whichever comes first: the response, a confirming report, the session's end, the
/// deadline, cancellation.
async fn wait(
    updates: &mut mpsc::Receiver<CommandUpdate>,
    confirmation: &mut Option<oneshot::Receiver<Confirmation>>,
    op: u8,
    deadline: Instant,
    cancel: &CancellationToken,
) -> Waited {
    let mut receipt: Option<Instant> = None;
    let done = |outcome, confirmed_by, receipt| Waited {
        outcome,
        confirmed_by,
        receipt,
        queue_full: false,
    };
    let mut session_listening = true;
    loop {
        // Biased: when the response and a confirming report are both ready (they often share a
        // TCP read), the response is reported; a confirmation beats a deadline or cancellation
        // that fired at the same moment, because it is the truth about the device.
        tokio::select! {
            biased;
            // cancel-safe: recv only removes an update when it returns it.
            update = updates.recv(), if session_listening => match update.map(|u| u.event) {
                Some(CommandEvent::Receipt { .. }) => {
                    receipt.get_or_insert_with(Instant::now);
                }
                Some(CommandEvent::Response { op: echoed, status: 0, .. }) if echoed == op => {
                    return done(CommandOutcome::Success, Some(ConfirmedBy::Response), receipt);
                }
                Some(CommandEvent::Response { op: echoed, status, .. }) => tracing::warn!(
                    echoed_op = echoed, status, "response with an unexpected op or status; waiting for a report"
                ),
                Some(CommandEvent::SessionClosed { reason }) => {
                    tracing::warn!(reason = reason.as_str(), "session closed before the command was answered");
                    return done(CommandOutcome::SendError, None, receipt);
                }
                Some(CommandEvent::Sent { seq }) => tracing::debug!(msg_id = %seq.msg, tx = seq.tx, "sent"),
                // The session forgot the command (its inflight table overflowed): only a report
                // can still confirm it.
                None => session_listening = false,
            },
            // cancel-safe: the oneshot receiver stays in `confirmation` between turns.
            confirmed = confirmed(confirmation) => {
                return done(CommandOutcome::Success, Some(ConfirmedBy::Report(confirmed.source)), receipt);
            }
            () = cancel.cancelled() => return done(CommandOutcome::Cancelled, None, receipt),
            () = sleep_until(deadline) => {
                let outcome = if receipt.is_some() { CommandOutcome::NoResponse } else { CommandOutcome::Timeout };
                return done(outcome, None, receipt);
            }
        }
    }
}

/// Resolves with the confirming report, or never (no waiter, or the store dropped it).
async fn confirmed(waiter: &mut Option<oneshot::Receiver<Confirmation>>) -> Confirmation {
    if let Some(receiver) = waiter.as_mut() {
        if let Ok(confirmation) = receiver.await {
            return confirmation;
        }
        *waiter = None;
    }
    pending().await
}
