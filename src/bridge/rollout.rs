//! The rollout controller in Home Assistant: its retained state document, one event per change
//! of routing, and the commands from its number, select and buttons.
//!
//! Commands are handed to the controller on their own task, so the event loop never waits for
//! it; the controller's status `watch` then brings the new state back here to publish. A bad
//! value (percent −1, 101, NaN, an unknown mode) is refused with a message naming the setting —
//! logged, counted as an invalid MQTT command, sent on the event topic — and the state is
//! republished so Home Assistant shows what is really in force.

use std::collections::BTreeMap;
use std::future::pending;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::event_loop::Runtime;
use crate::mqtt::client::Outgoing;
use crate::mqtt::rollout::{parse_command, RolloutCommand, RolloutTopic};
use crate::mqtt::topics::Topics;
use crate::rollout::control::Mode;
use crate::rollout::controller::{Request, Transition};
use crate::rollout::ledger::Series;
use crate::rollout::status::Status;
use crate::rollout::task::RolloutHandle;

/// The bridge's end of the controller.
#[derive(Debug)]
pub(super) struct RolloutLink {
    handle: RolloutHandle,
    status: watch::Receiver<Arc<Status>>,
    transitions: broadcast::Receiver<Transition>,
    published: Option<Bytes>,
}

impl RolloutLink {
    pub(super) fn new(handle: RolloutHandle) -> RolloutLink {
        RolloutLink {
            status: handle.watch(),
            transitions: handle.transitions(),
            handle,
            published: None,
        }
    }
}

/// What happened, as the event loop sees it.
pub(super) enum RolloutNews {
    Status,
    Transition(Transition),
}

/// Resolves with the next status change or transition; never without a controller.
pub(super) async fn next(link: Option<&mut RolloutLink>) -> RolloutNews {
    let Some(link) = link else {
        return pending().await;
    };
    loop {
        tokio::select! {
            // cancel-safe: `changed` and `recv` lose nothing when the other branch wins.
            changed = link.status.changed() => match changed {
                Ok(()) => return RolloutNews::Status,
                Err(_) => return pending().await,
            },
            t = link.transitions.recv() => match t {
                Ok(t) => return RolloutNews::Transition(t),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return pending().await,
            },
        }
    }
}

/// The retained document on `<base>/bridge/rollout` that the entities read.
#[derive(Serialize)]
struct RolloutState<'a> {
    mode: &'static str,
    canary_percent: f64,
    effective_percent: f64,
    latched: bool,
    shadow: bool,
    rollback_enabled: bool,
    hold: Option<&'static str>,
    failing: u32,
    consecutive: u32,
    /// Short, for the sensor's state (HA keeps at most 255 characters).
    last_change: String,
    last_change_detail: Option<&'a Transition>,
    /// Reliable path, percent left, per SLO.
    budgets: BTreeMap<&'static str, f64>,
    store_healthy: bool,
}

fn state_document(status: &Status) -> Bytes {
    let last_change = match (&status.last_transition, &status.latch) {
        (Some(t), _) => format!("{} ({})", t.kind, t.reason),
        (None, Some(latch)) => format!("rollback ({})", latch.reason),
        (None, None) => "none".to_string(),
    };
    let budgets = status
        .slos
        .iter()
        .filter(|s| s.series == Series::Reliable)
        .map(|s| (s.slo.name, (s.budget_remaining * 10_000.0).round() / 100.0))
        .collect();
    let doc = RolloutState {
        mode: status.mode.map_or("reliable", Mode::as_str),
        canary_percent: status.canary_percent,
        effective_percent: status.effective_percent,
        latched: status.latch.is_some(),
        shadow: status.shadow,
        rollback_enabled: status.rollback_enabled,
        hold: status.hold,
        failing: status.failing,
        consecutive: status.consecutive,
        last_change,
        last_change_detail: status.last_transition.as_ref(),
        budgets,
        store_healthy: status.store.healthy,
    };
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

fn message(topic: String, payload: Bytes, retain: bool) -> Outgoing {
    Outgoing {
        topic,
        payload,
        qos: 1,
        retain,
    }
}

/// The non-retained event for a transition.
pub fn event(topics: &Topics, transition: &Transition) -> Outgoing {
    let payload = serde_json::to_vec(transition).unwrap_or_default();
    message(topics.rollout_event(), Bytes::from(payload), false)
}

fn request_of(command: RolloutCommand) -> Result<Request, String> {
    Ok(match command {
        RolloutCommand::Percent(p) => Request::SetPercent(p),
        RolloutCommand::Mode(m) => Request::SetMode(
            m.parse::<Mode>()
                .map_err(|e| format!("rollout.mode: {e}"))?,
        ),
        RolloutCommand::Rollback => Request::Rollback,
        RolloutCommand::Resume => Request::Resume,
    })
}

impl Runtime {
    /// Publishes the controller's state if it changed (always, with `force`).
    pub(super) fn publish_rollout_state(&mut self, force: bool) {
        let Some(link) = self.rollout.as_mut() else {
            return;
        };
        let status = link.status.borrow_and_update().clone();
        let payload = state_document(&status);
        if !force && link.published.as_ref() == Some(&payload) {
            return;
        }
        link.published = Some(payload.clone());
        let msg = message(self.out.topics.rollout_state(), payload, true);
        self.out.publish("bridge", msg);
    }

    pub(super) fn on_rollout_news(&mut self, news: RolloutNews) {
        match news {
            RolloutNews::Status => self.publish_rollout_state(false),
            RolloutNews::Transition(t) => {
                let msg = event(&self.out.topics, &t);
                self.out.publish("bridge", msg);
            }
        }
    }

    /// A command on one of the rollout topics.
    pub(super) fn on_rollout_command(&mut self, topic: RolloutTopic, payload: &[u8]) {
        let Some(link) = self.rollout.as_ref() else {
            return;
        };
        let request = parse_command(topic, payload).and_then(request_of);
        let request = match request {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, topic = topic.as_str(), "rollout command refused");
                self.services.metrics.mqtt_command("invalid");
                let body = serde_json::json!({ "kind": "error", "message": error });
                let msg = message(
                    self.out.topics.rollout_event(),
                    Bytes::from(body.to_string()),
                    false,
                );
                self.out.publish("bridge", msg);
                self.publish_rollout_state(true);
                return;
            }
        };
        self.services.metrics.mqtt_command("accepted");
        let handle = link.handle.clone();
        self.tracker.spawn(async move {
            if let Err(error) = handle.ask(request).await {
                tracing::warn!(%error, "rollout command not applied");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_modes_are_refused_naming_the_setting() {
        let err = request_of(RolloutCommand::Mode("carrier-pigeon".into())).unwrap_err();
        assert!(err.starts_with("rollout.mode"), "{err}");
        assert_eq!(
            request_of(RolloutCommand::Mode("shadow".into())),
            Ok(Request::SetMode(Mode::Shadow))
        );
    }

    #[test]
    fn the_state_document_shows_budgets_in_percent_and_a_short_last_change() {
        let status = Status::default();
        let doc: serde_json::Value = serde_json::from_slice(&state_document(&status)).unwrap();
        assert_eq!(doc["last_change"], "none");
        assert_eq!(doc["latched"], false);
    }
}
