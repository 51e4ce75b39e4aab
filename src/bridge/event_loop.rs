//! The bridge's one event loop: it owns everything Home Assistant sees and reacts to the broker
//! (connect, messages), device state changes, finished commands and a tick. It never waits on a
//! device or on the broker (see the module docs of [`super`]).

use std::collections::HashSet;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::publish::Publisher;
use super::registry::{self, Entity, Registry};
use super::render::{Attributes, BridgeInfo};
use super::worker::{Dispatcher, Done, Job};
use super::BridgeSettings;
use crate::device::availability::Availability;
use crate::device::{DeviceState, StateChange};
use crate::mqtt::client::MqttEvent;
use crate::mqtt::command::{translate, CommandTarget, CommandTopic};
use crate::mqtt::discovery::{bridge_configs, entity_configs};
use crate::mqtt::topics::{EntityKey, EntityKind, Incoming};
use crate::protocol::content::TEMP_EFFECT;
use crate::protocol::LightState;
use crate::server::{RouteKind, Services};
use crate::telemetry::new_correlation_id;
use crate::transport::CommandOutcome;

/// The largest command payload looked at: Home Assistant's biggest (a JSON light command with
/// every field) is under 300 bytes, so anything past this is not a command, whatever it parses as.
const MAX_COMMAND_PAYLOAD: usize = 4096;

/// Work the event loop asks itself to do later.
#[derive(Debug)]
pub(super) enum Internal {
    /// Republish everything (after HA's birth message and its delay).
    Republish,
}

/// The stale-config cleanup after start: this bridge's own retained configs seen on the broker,
/// removed once `cleanup_delay` has passed if no current entity matches them.
#[derive(Debug, Default)]
struct Cleanup {
    seen: HashSet<(String, String)>,
    done: bool,
}

/// The channels the loop reads.
pub(super) struct Inputs {
    pub(super) events: mpsc::Receiver<MqttEvent>,
    pub(super) changes: broadcast::Receiver<StateChange>,
    pub(super) done: mpsc::Receiver<Done>,
    pub(super) internal: mpsc::Receiver<Internal>,
}

pub(super) struct Runtime {
    pub(super) settings: BridgeSettings,
    pub(super) registry: Registry,
    pub(super) services: Services,
    pub(super) out: Publisher,
    pub(super) availability: Availability<EntityKey>,
    /// The effect each light last started, shown until a report shows another colour.
    pub(super) effects: std::collections::HashMap<EntityKey, &'static str>,
    pub(super) workers: Dispatcher,
    pub(super) internal: mpsc::Sender<Internal>,
    pub(super) tracker: TaskTracker,
    pub(super) shutdown: CancellationToken,
    /// The rollout controller, when one runs.
    pub(super) rollout: Option<super::rollout::RolloutLink>,
    cleanup: Cleanup,
}

impl Runtime {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        settings: BridgeSettings,
        registry: Registry,
        services: Services,
        out: Publisher,
        workers: Dispatcher,
        internal: mpsc::Sender<Internal>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Runtime {
            availability: Availability::new(settings.availability, Instant::now().into_std()),
            settings,
            registry,
            services,
            out,
            effects: Default::default(),
            workers,
            internal,
            tracker,
            shutdown,
            rollout: None,
            cleanup: Cleanup::default(),
        }
    }

    pub(super) async fn run(mut self, mut inputs: Inputs) {
        let mut tick = tokio::time::interval(self.settings.tick());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let cleanup = tokio::time::sleep(self.settings.cleanup_delay);
        tokio::pin!(cleanup);
        // Devices already in the store (reports that arrived before this loop started).
        for (key, _) in self.services.state.snapshot() {
            let reported = self.services.state.reported_type(&key);
            self.registry.observe(key, reported);
        }
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                // All branches are cancel-safe: mpsc/broadcast `recv` and interval `tick` lose
                // nothing when another branch wins.
                event = inputs.events.recv() => match event {
                    Some(event) => self.on_mqtt(event),
                    None => return,
                },
                change = inputs.changes.recv() => match change {
                    Ok(change) => self.on_change(&change),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "state events lagged; republishing from the store");
                        self.out.mark_resync();
                    }
                    Err(RecvError::Closed) => return,
                },
                Some(d) = inputs.done.recv() => self.on_done(d),
                Some(Internal::Republish) = inputs.internal.recv() => self.publish_all(),
                _ = tick.tick() => self.on_tick(),
                news = super::rollout::next(self.rollout.as_mut()) => self.on_rollout_news(news),
                () = &mut cleanup, if !self.cleanup.done && self.out.connected() => self.cleanup(),
            }
        }
    }

    // ---- what an entity shows -------------------------------------------------------------

    /// Discovery, availability, attributes and state of everything, regardless of what was
    /// published before (after a connect, HA's birth, or a dropped publish).
    fn publish_all(&mut self) {
        self.out.start_full_publication();
        let keys: Vec<EntityKey> = self.registry.active().map(|e| e.key).collect();
        for key in &keys {
            if let Some(entity) = self.registry.get(key) {
                self.out.discovery(entity);
            }
        }
        let now = Instant::now();
        for key in keys {
            self.refresh_availability(key, now);
            self.publish_attributes(key);
            self.publish_state(key, true);
        }
        self.publish_info();
        self.publish_rollout_state(true);
    }

    /// A device's stored state, or a group's derived from its members'.
    fn current_state(&self, entity: &Entity) -> Option<DeviceState> {
        if !entity.is_group() {
            return self.services.state.get(&entity.state_key());
        }
        let members: Vec<DeviceState> = self
            .registry
            .member_keys(entity)
            .into_iter()
            .filter_map(|k| self.services.state.get(&registry::wire_key(k)))
            .collect();
        group_state(&members)
    }

    fn publish_state(&mut self, key: EntityKey, force: bool) {
        let Some(entity) = self.registry.get(&key).filter(|e| !e.disabled) else {
            return;
        };
        let Some(state) = self.current_state(entity) else {
            return;
        };
        let effect = self.effects.get(&key).copied();
        self.out.state(entity, &state, effect, force);
    }

    fn refresh_availability(&mut self, key: EntityKey, now: Instant) {
        let Some(entity) = self.registry.get(&key).filter(|e| !e.disabled) else {
            return;
        };
        let available = if entity.is_group() {
            let members: Vec<Option<bool>> = self
                .registry
                .member_keys(entity)
                .into_iter()
                .map(|m| self.availability.state(&self.registry.presence_key(m)))
                .collect();
            group_availability(&members)
        } else {
            let wire = entity.state_key();
            let online = self.services.state.get(&wire).is_some_and(|s| s.online);
            let reachable = self.services.routes.is_reachable(&wire);
            self.availability
                .observe(key, online, reachable, now.into_std());
            self.availability.state(&key)
        };
        // Undecided (just started, relays still reconnecting): publish nothing, so Home
        // Assistant keeps the retained availability instead of flashing "unavailable".
        if let Some(available) = available {
            self.out.availability(key, available);
        }
    }

    fn publish_attributes(&mut self, key: EntityKey) {
        let Some(entity) = self.registry.get(&key).filter(|e| !e.disabled) else {
            return;
        };
        let routes = self.services.routes.routes_to(&entity.state_key());
        let attributes = Attributes {
            mesh_id: key.id,
            relay: routes.first().map(|r| r.device.to_string()),
            route: routes.first().map(|r| match r.kind {
                RouteKind::Direct => "direct",
                RouteKind::Relay => "relay",
            }),
            routes: routes.len(),
            firmware: entity.firmware.clone(),
            listed: entity.listed,
            signal: None,
        };
        self.out.attributes(key, attributes);
    }

    fn publish_info(&mut self) {
        let info = BridgeInfo {
            version: env!("CARGO_PKG_VERSION"),
            relays: self.services.routes.session_count(),
            devices_online: self.availability.available_count(),
            devices: self.registry.active().filter(|e| !e.is_group()).count(),
        };
        self.services
            .metrics
            .devices_available()
            .set(i64::try_from(info.devices_online).unwrap_or(i64::MAX));
        self.out.info(info);
    }

    // ---- events ----------------------------------------------------------------------------

    fn on_mqtt(&mut self, event: MqttEvent) {
        match event {
            MqttEvent::Connected => {
                tracing::info!("mqtt connected; publishing discovery, availability and state");
                self.out.set_connected(true);
                self.publish_all();
            }
            MqttEvent::Disconnected { reason } => {
                if self.out.connected() {
                    tracing::warn!(%reason, "mqtt disconnected; devices keep running");
                }
                self.out.set_connected(false);
            }
            MqttEvent::Message { topic, payload } => self.on_message(&topic, &payload),
        }
    }

    fn on_message(&mut self, topic: &str, payload: &[u8]) {
        match self.out.topics.parse(topic) {
            Some(Incoming::HaStatus) if payload.eq_ignore_ascii_case(b"online") => {
                self.republish_after_birth();
            }
            Some(Incoming::OwnDiscovery {
                component,
                object_id,
            }) if !self.cleanup.done => {
                if payload.is_empty() {
                    self.cleanup.seen.remove(&(component, object_id));
                } else {
                    self.cleanup.seen.insert((component, object_id));
                }
            }
            Some(Incoming::Command(key, command_topic)) => {
                self.on_command(topic, key, command_topic, payload)
            }
            Some(Incoming::Rollout(rollout_topic)) => {
                self.on_rollout_command(rollout_topic, payload)
            }
            Some(Incoming::HaStatus | Incoming::OwnDiscovery { .. }) | None => {}
        }
    }

    /// Home Assistant forgets non-retained state on restart and needs a moment after its birth
    /// message before it has subscribed to everything.
    fn republish_after_birth(&mut self) {
        let delay = self.settings.birth_delay;
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "home assistant is online; republishing after the birth delay"
        );
        let internal = self.internal.clone();
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => {
                    let _ = internal.send(Internal::Republish).await;
                }
                () = shutdown.cancelled() => {}
            }
        });
    }

    fn on_command(&mut self, topic: &str, key: EntityKey, kind: CommandTopic, payload: &[u8]) {
        let metrics = self.services.metrics.clone();
        if payload.len() > MAX_COMMAND_PAYLOAD {
            metrics.mqtt_command("invalid");
            tracing::warn!(
                topic,
                bytes = payload.len(),
                limit = MAX_COMMAND_PAYLOAD,
                "mqtt command too large for a command topic; ignored"
            );
            return;
        }
        let Some(entity) = self.registry.get(&key) else {
            metrics.mqtt_command("unknown_entity");
            tracing::warn!(topic, "mqtt command for an unknown device; ignored");
            return;
        };
        if entity.disabled {
            metrics.mqtt_command("disabled");
            tracing::warn!(topic, "mqtt command for a disabled device; ignored");
            return;
        }
        let target = CommandTarget {
            id: entity.wire_mesh,
            class: entity.model.class,
            caps: &entity.model.caps,
            group: entity.is_group(),
            currently_on: self.current_state(entity).map(|s| s.light.on),
        };
        let unit = self.out.discovery.color_temp_unit;
        let translated = match translate(kind, &target, payload, unit) {
            Ok(t) => t,
            Err(error) => {
                metrics.mqtt_command("invalid");
                tracing::warn!(
                    topic,
                    payload = %String::from_utf8_lossy(&payload[..payload.len().min(200)]),
                    %error,
                    "invalid mqtt command; nothing sent"
                );
                return;
            }
        };
        let members = if entity.is_group() {
            self.registry
                .member_keys(entity)
                .into_iter()
                .map(registry::wire_key)
                .collect()
        } else {
            Vec::new()
        };
        let per_member =
            entity.is_group() && self.settings.group_commands.per_member(entity.wire_mesh);
        let job = Job {
            entity: key,
            wire: entity.wire_key(),
            commands: translated.commands,
            members,
            per_member,
            effect: translated.effect,
            correlation: new_correlation_id(),
        };
        tracing::debug!(topic, correlation_id = %job.correlation, "mqtt command accepted");
        metrics.mqtt_command("accepted");
        let superseded = self.workers.dispatch(job);
        if superseded > 0 {
            tracing::debug!(entity = %key, superseded, "newer command replaced waiting ones");
            for _ in 0..superseded {
                metrics.mqtt_command("superseded");
            }
        }
    }

    fn on_done(&mut self, done: Done) {
        if done.outcome == CommandOutcome::Success {
            if let Some(effect) = done.effect {
                self.effects.insert(done.entity, effect);
            }
            self.publish_state(done.entity, false);
        } else {
            // HA already shows what was asked for: put the confirmed state back.
            self.publish_state(done.entity, true);
        }
    }

    fn on_change(&mut self, change: &StateChange) {
        let reported = self.services.state.reported_type(&change.key);
        if let Some(new) = self.registry.observe(change.key, reported) {
            tracing::info!(entity = %new, "device seen on the wire but not listed; announcing it");
            if let Some(entity) = self.registry.get(&new) {
                self.out.discovery(entity);
            }
            self.publish_attributes(new);
        } else if let Some(type_id) = reported {
            let key = self.registry.entity_key(change.key);
            if let Some(old) = self.registry.learn_type(key, type_id) {
                tracing::info!(entity = %key, type_id, "unlisted device reported its type");
                self.republish_changed(&[old]);
            }
        }
        let device = self.registry.entity_key(change.key);
        let now = Instant::now();
        for key in self.registry.entities_for(change.key) {
            if change.current.light.temperature != TEMP_EFFECT {
                self.effects.remove(&key);
            }
            self.refresh_availability(key, now);
            self.publish_state(key, false);
        }
        for group in self.registry.groups_of(device).to_vec() {
            self.refresh_availability(group, now);
            self.publish_state(group, false);
        }
    }

    /// A device file that changed (an export finished, a hand edit) replaces the entities
    /// without a restart: new names, areas and types are published, and configs of entities
    /// that are gone are withdrawn. An unreadable file keeps the current list.
    fn reload_device_file(&mut self) {
        let Some(result) = self.registry.reload_if_changed() else {
            return;
        };
        let mut registry = match result {
            Ok(registry) => registry,
            Err(error) => {
                tracing::warn!(%error, "device file changed but cannot be used; keeping the current list");
                return;
            }
        };
        for warning in &registry.warnings {
            tracing::warn!(%warning, "device list");
        }
        for (key, _) in self.services.state.snapshot() {
            registry.observe(key, self.services.state.reported_type(&key));
        }
        for group in registry.active().filter(|e| e.is_group()) {
            let members = registry
                .member_keys(group)
                .into_iter()
                .map(registry::wire_key)
                .collect();
            self.services.routes.set_group(group.wire_key(), members);
        }
        let old: Vec<Entity> = self.registry.active().cloned().collect();
        self.registry = registry;
        tracing::info!(
            entities = self.registry.active().count(),
            "device file changed; entities updated"
        );
        self.republish_changed(&old);
    }

    fn on_tick(&mut self) {
        self.reload_device_file();
        if self.out.needs_resync() {
            self.publish_all();
            return;
        }
        let now = Instant::now();
        let keys: Vec<EntityKey> = self.registry.active().map(|e| e.key).collect();
        // Devices first, so groups see their members' new availability.
        let (groups, devices): (Vec<EntityKey>, Vec<EntityKey>) =
            keys.into_iter().partition(|k| k.kind == EntityKind::Group);
        for key in devices.into_iter().chain(groups) {
            self.refresh_availability(key, now);
            self.publish_attributes(key);
        }
        self.publish_info();
    }

    /// Withdraws the discovery configs of entities as they were (`old`) that their current
    /// form no longer has (a switch that became a light, a device that left the list), then
    /// publishes the current ones.
    pub(super) fn republish_changed(&mut self, old: &[Entity]) {
        let topics = &self.out.topics;
        let discovery = &self.out.discovery;
        let mut wanted: HashSet<(String, String)> = HashSet::new();
        for entity in self.registry.active() {
            for d in entity_configs(&entity.description(), topics, discovery) {
                wanted.insert((d.component.to_owned(), d.object_id));
            }
        }
        let mut gone = Vec::new();
        for entity in old {
            for d in entity_configs(&entity.description(), topics, discovery) {
                if !wanted.contains(&(d.component.to_owned(), d.object_id.clone())) {
                    gone.push((d.component.to_owned(), d.object_id));
                }
            }
        }
        for (component, object_id) in gone {
            tracing::info!(%component, %object_id, "withdrawing a discovery config that changed");
            self.out.removal(&component, &object_id);
        }
        self.publish_all();
    }

    /// Removes retained configs under this bridge's node id that match no current entity.
    fn cleanup(&mut self) {
        self.cleanup.done = true;
        let topics = &self.out.topics;
        let discovery = &self.out.discovery;
        let mut wanted: HashSet<(String, String)> = bridge_configs(topics, discovery)
            .into_iter()
            .map(|d| (d.component.to_owned(), d.object_id))
            .collect();
        for entity in self.registry.active() {
            for d in entity_configs(&entity.description(), topics, discovery) {
                wanted.insert((d.component.to_owned(), d.object_id));
            }
        }
        let stale: Vec<(String, String)> = self
            .cleanup
            .seen
            .drain()
            .filter(|c| !wanted.contains(c))
            .collect();
        for (component, object_id) in stale {
            tracing::info!(%component, %object_id, "removing a stale discovery config of this bridge");
            self.out.removal(&component, &object_id);
        }
    }
}

/// A group is available when any member is, unavailable when every member is decided and none
/// is, and undecided otherwise.
pub(super) fn group_availability(members: &[Option<bool>]) -> Option<bool> {
    if members.contains(&Some(true)) {
        Some(true)
    } else if members.iter().all(Option::is_some) {
        Some(false)
    } else {
        None
    }
}

/// A group's state from its members': on when any member is on; level and colour from the
/// brightest member that is on (or the first member when all are off).
pub(super) fn group_state(members: &[DeviceState]) -> Option<DeviceState> {
    let lead = members
        .iter()
        .filter(|s| s.light.on)
        .max_by_key(|s| s.light.brightness)
        .or_else(|| members.first())?;
    Some(DeviceState {
        light: LightState {
            on: members.iter().any(|s| s.light.on),
            ..lead.light
        },
        online: members.iter().any(|s| s.online),
    })
}
