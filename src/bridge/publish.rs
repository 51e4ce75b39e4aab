//! What the bridge has told Home Assistant, and the one way it tells it more.
//!
//! Every publish goes through [`Publisher`], which suppresses a repeat of what an entity last
//! showed (state, availability, attributes, the bridge's own info) and never waits: the outbox is
//! tried, and a full one marks everything for republication at the next tick instead of
//! blocking the event loop. While the broker is away nothing is queued at all: a connect
//! republishes everything anyway.

use std::collections::HashMap;

use bytes::Bytes;

use super::registry::Entity;
use super::render::{self, Attributes, BridgeInfo};
use crate::device::DeviceState;
use crate::mqtt::client::{Outbox, Outgoing};
use crate::mqtt::discovery::{bridge_configs, DiscoveryOptions};
use crate::mqtt::topics::{EntityKey, Topics};
use crate::telemetry::Metrics;

/// What was last published for one entity.
#[derive(Default, Debug)]
struct Published {
    state: Option<Bytes>,
    available: Option<bool>,
    attributes: Option<Attributes>,
}

/// The bridge's side of the MQTT conversation.
#[derive(Debug)]
pub(super) struct Publisher {
    outbox: Outbox,
    metrics: Metrics,
    pub(super) topics: Topics,
    pub(super) discovery: DiscoveryOptions,
    connected: bool,
    /// Some publish was dropped (outbox full): republish everything at the next tick.
    resync: bool,
    published: HashMap<EntityKey, Published>,
    info: Option<BridgeInfo>,
}

impl Publisher {
    pub(super) fn new(
        outbox: Outbox,
        metrics: Metrics,
        topics: Topics,
        discovery: DiscoveryOptions,
    ) -> Self {
        Publisher {
            outbox,
            metrics,
            topics,
            discovery,
            connected: false,
            resync: false,
            published: HashMap::new(),
            info: None,
        }
    }

    pub(super) fn connected(&self) -> bool {
        self.connected
    }

    pub(super) fn set_connected(&mut self, connected: bool) {
        self.connected = connected;
        self.metrics.mqtt_connected().set(i64::from(connected));
    }

    /// A publish was lost, or the bridge lost track of state changes.
    pub(super) fn mark_resync(&mut self) {
        self.resync = true;
    }

    /// True when connected and something was lost since the last full publication.
    pub(super) fn needs_resync(&self) -> bool {
        self.resync && self.connected
    }

    /// Forgets what was published, so the next publication of everything is unconditional, and
    /// sends the bridge's own discovery configs.
    pub(super) fn start_full_publication(&mut self) {
        self.resync = false;
        self.published.clear();
        self.info = None;
        for d in bridge_configs(&self.topics, &self.discovery) {
            let msg = render::config(&d, &self.topics);
            self.send("discovery", msg);
        }
    }

    /// Publishes a message the caller built and deduplicates itself.
    pub(super) fn publish(&mut self, kind: &'static str, msg: Outgoing) {
        self.send(kind, msg);
    }

    fn send(&mut self, kind: &'static str, msg: Outgoing) {
        if !self.connected {
            return;
        }
        if self.outbox.try_publish(msg) {
            self.metrics.mqtt_published(kind);
        } else {
            self.resync = true;
        }
    }

    pub(super) fn discovery(&mut self, entity: &Entity) {
        for msg in render::discovery(entity, &self.topics, &self.discovery) {
            self.send("discovery", msg);
        }
    }

    pub(super) fn removal(&mut self, component: &str, object_id: &str) {
        let msg = render::removal(&self.topics, component, object_id);
        self.send("discovery", msg);
    }

    /// `force`: publish even when identical to the last state (after a failed command, so Home
    /// Assistant's optimistic toggle snaps back to the truth).
    pub(super) fn state(
        &mut self,
        entity: &Entity,
        state: &DeviceState,
        effect: Option<&'static str>,
        force: bool,
    ) {
        let unit = self.discovery.color_temp_unit;
        let msg = render::state(&self.topics, entity, &state.light, effect, unit);
        let published = self.published.entry(entity.key).or_default();
        if !force && published.state.as_ref() == Some(&msg.payload) {
            return;
        }
        published.state = Some(msg.payload.clone());
        self.send("state", msg);
    }

    pub(super) fn availability(&mut self, key: EntityKey, available: bool) {
        let published = self.published.entry(key).or_default();
        if published.available == Some(available) {
            return;
        }
        published.available = Some(available);
        let msg = render::availability(&self.topics, key, available);
        self.send("availability", msg);
    }

    pub(super) fn attributes(&mut self, key: EntityKey, attributes: Attributes) {
        let published = self.published.entry(key).or_default();
        if published.attributes.as_ref() == Some(&attributes) {
            return;
        }
        let msg = render::attributes(&self.topics, key, &attributes);
        published.attributes = Some(attributes);
        self.send("attributes", msg);
    }

    pub(super) fn info(&mut self, info: BridgeInfo) {
        if self.info.as_ref() == Some(&info) {
            return;
        }
        let msg = render::bridge_info(&self.topics, &info);
        self.info = Some(info);
        self.send("bridge", msg);
    }
}
