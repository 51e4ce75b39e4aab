//! The Home Assistant bridge: joins the device side (sessions, routes, state store, command
//! transport) to MQTT. One event loop owns everything HA sees — the entity registry, what was
//! last published, availability — and reacts to four things: the broker (connect, messages),
//! device state changes, finished commands, and a tick (availability, diagnostics).
//!
//! Design decisions:
//! - The event loop never waits on a device or the broker: commands go to one worker task per
//!   entity ([`worker`]); publishes use `try_publish`, and a full outbox only marks everything
//!   for republication. A broker that is away never stops the device side: the state store keeps
//!   every device's state, and everything is republished on reconnect.
//! - State is published only from what devices report (the store's change events, which include
//!   the device's own `f9` response to a set-state command), as a full snapshot, retained; an
//!   identical snapshot is suppressed — except after a failed command, when the last confirmed
//!   state is always republished so HA's toggle snaps back to the truth.
//! - Availability per device = the bridge's own state (via `availability_mode: all`) and the
//!   device's hysteresis-filtered online flag and routes ([`crate::device::availability`]).
//! - Stale discovery configs are removed only under this bridge's node id, and only after
//!   `cleanup_delay`, so devices that are seen on the wire (not listed) have time to show up.

pub mod registry;
pub mod render;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::device::availability::{Availability, AvailabilityPolicy};
use crate::device::catalog::{DeviceClass, EFFECTS};
use crate::device::{DeviceState, StateChange};
use crate::mqtt::client::{self, MqttConfigError, MqttEvent, MqttSettings, Outbox, Outgoing};
use crate::mqtt::command::{
    light_commands, parse_fan_percentage, parse_fan_preset, parse_light, parse_on_off, CommandError,
};
use crate::mqtt::discovery::{bridge_configs, bridge_device_id, entity_configs, DiscoveryOptions};
use crate::mqtt::topics::{EntityKey, Incoming, Topics};
use crate::mqtt::units::ColorTempUnit;
use crate::protocol::{Command, LightState};
use crate::server::Services;
use crate::telemetry::new_correlation_id;
use crate::transport::{CommandOutcome, SelectedTransport};
pub use registry::{Entity, Registry, RegistryError};
use render::{Attributes, BridgeInfo};
use worker::{Done, Job, WorkerContext};

/// Everything that shapes what the bridge publishes and how it waits.
#[derive(Clone, Debug)]
pub struct BridgeSettings {
    /// Broker connection.
    pub mqtt: MqttSettings,
    /// Topic layout.
    pub topics: Topics,
    /// Discovery payload options.
    pub discovery: DiscoveryOptions,
    /// Wait after HA's birth before republishing.
    pub birth_delay: Duration,
    /// Wait after start before removing stale configs.
    pub cleanup_delay: Duration,
    /// Availability hysteresis.
    pub availability: AvailabilityPolicy,
    /// Deadline of one Cync command.
    pub command_timeout: Duration,
    /// Deadline of a group's member confirmations.
    pub group_confirm_timeout: Duration,
}

impl BridgeSettings {
    /// The settings `config` describes.
    pub fn from_config(config: &Config) -> Self {
        let m = &config.mqtt;
        BridgeSettings {
            mqtt: m.settings.clone(),
            topics: Topics::new(&m.base_topic, &m.discovery_prefix, &m.node_id),
            discovery: DiscoveryOptions {
                bridge_id: bridge_device_id(&m.node_id),
                legacy_color_mode_flag: m.legacy_color_mode_flag,
                color_temp_unit: m.color_temp_unit,
            },
            birth_delay: m.birth_delay,
            cleanup_delay: m.cleanup_delay,
            availability: AvailabilityPolicy {
                offline_grace: config.devices.offline_grace,
                route_grace: config.devices.route_grace,
            },
            command_timeout: config.transport.command_timeout,
            group_confirm_timeout: config.devices.group_confirm_timeout,
        }
    }

    fn tick(&self) -> Duration {
        let shortest = self
            .availability
            .offline_grace
            .min(self.availability.route_grace);
        (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

/// Connects to the broker and starts the bridge's event loop on `tracker`; both end when
/// `shutdown` fires (the client publishes `offline` first).
pub fn spawn(
    settings: BridgeSettings,
    registry: Registry,
    services: &Services,
    transport: Arc<SelectedTransport>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<(), MqttConfigError> {
    let (outbox, events) =
        client::spawn(&settings.mqtt, &settings.topics, tracker, shutdown.clone())?;
    // Subscribe before anything else can change, so no state change is missed.
    let changes = services.state.subscribe();
    let (done_tx, done_rx) = mpsc::channel(1024);
    let (internal_tx, internal_rx) = mpsc::channel(16);
    let workers = Arc::new(WorkerContext {
        transport,
        state: Arc::clone(&services.state),
        routes: Arc::clone(&services.routes),
        command_timeout: settings.command_timeout,
        group_confirm_timeout: settings.group_confirm_timeout,
        done: done_tx,
        shutdown: shutdown.clone(),
    });
    for group in registry.active().filter(|e| e.is_group()) {
        let members = registry
            .member_keys(group)
            .into_iter()
            .map(registry::wire_key)
            .collect();
        services.routes.set_group(group.wire_key(), members);
    }
    let runtime = Runtime {
        availability: Availability::new(settings.availability),
        settings,
        registry,
        services: services.clone(),
        outbox,
        connected: false,
        resync: false,
        published: HashMap::new(),
        info: None,
        effects: HashMap::new(),
        own_configs: HashSet::new(),
        cleanup_pending: true,
        workers: HashMap::new(),
        worker_ctx: workers,
        internal: internal_tx,
        tracker: tracker.clone(),
        shutdown,
    };
    tracker.spawn(runtime.run(events, changes, done_rx, internal_rx));
    Ok(())
}

/// Work the event loop asks itself to do later.
#[derive(Debug)]
enum Internal {
    /// Republish everything (after HA's birth message and its delay).
    Republish,
}

/// What was last published for one entity, to suppress repeats.
#[derive(Default, Debug)]
struct Published {
    state: Option<Bytes>,
    available: Option<bool>,
    attributes: Option<Attributes>,
}

struct Runtime {
    settings: BridgeSettings,
    registry: Registry,
    services: Services,
    outbox: Outbox,
    connected: bool,
    /// Some publish was dropped (outbox full): republish everything at the next tick.
    resync: bool,
    availability: Availability<EntityKey>,
    published: HashMap<EntityKey, Published>,
    info: Option<BridgeInfo>,
    effects: HashMap<EntityKey, &'static str>,
    own_configs: HashSet<(String, String)>,
    cleanup_pending: bool,
    workers: HashMap<EntityKey, mpsc::Sender<Job>>,
    worker_ctx: Arc<WorkerContext>,
    internal: mpsc::Sender<Internal>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Runtime {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<MqttEvent>,
        mut changes: broadcast::Receiver<StateChange>,
        mut done: mpsc::Receiver<Done>,
        mut internal: mpsc::Receiver<Internal>,
    ) {
        let mut tick = tokio::time::interval(self.settings.tick());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let cleanup = tokio::time::sleep(self.settings.cleanup_delay);
        tokio::pin!(cleanup);
        // Devices already in the store (reports that arrived before this loop started).
        for (key, _) in self.services.state.snapshot() {
            self.registry.observe(key);
        }
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                // All branches are cancel-safe: mpsc/broadcast `recv` and interval `tick` lose
                // nothing when another branch wins.
                event = events.recv() => match event {
                    Some(event) => self.on_mqtt(event),
                    None => return,
                },
                change = changes.recv() => match change {
                    Ok(change) => self.on_change(&change),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "state events lagged; republishing from the store");
                        self.resync = true;
                    }
                    Err(RecvError::Closed) => return,
                },
                Some(d) = done.recv() => self.on_done(d),
                Some(Internal::Republish) = internal.recv() => self.publish_all(),
                _ = tick.tick() => self.on_tick(),
                () = &mut cleanup, if self.cleanup_pending && self.connected => self.cleanup(),
            }
        }
    }

    // ---- publishing ------------------------------------------------------------------------

    fn send(&mut self, kind: &'static str, msg: Outgoing) {
        if !self.connected {
            // Everything is republished on connect; nothing to queue meanwhile.
            return;
        }
        if self.outbox.try_publish(msg) {
            self.services.metrics.mqtt_published(kind);
        } else {
            self.resync = true;
        }
    }

    /// Discovery, availability, attributes and state of everything, regardless of what was
    /// published before (after a connect, HA's birth, or a dropped publish).
    fn publish_all(&mut self) {
        self.resync = false;
        let topics = self.settings.topics.clone();
        for d in bridge_configs(&topics, &self.settings.discovery) {
            self.send("discovery", render::config(&d, &topics));
        }
        let keys: Vec<EntityKey> = self.registry.active().map(|e| e.key).collect();
        for key in &keys {
            self.announce(*key);
        }
        self.published.clear();
        self.info = None;
        let now = Instant::now();
        for key in keys {
            self.refresh_availability(key, now);
            self.publish_attributes(key);
            self.publish_state(key, true);
        }
        self.publish_info();
    }

    fn announce(&mut self, key: EntityKey) {
        let Some(entity) = self.registry.get(&key) else {
            return;
        };
        let msgs = render::discovery(entity, &self.settings.topics, &self.settings.discovery);
        for msg in msgs {
            self.send("discovery", msg);
        }
    }

    /// The state an entity shows: a device's stored state, or a group's derived from members.
    fn current_state(&self, entity: &Entity) -> Option<DeviceState> {
        if !entity.is_group() {
            return self.services.state.get(&entity.wire_key());
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
        let msg = render::state(
            &self.settings.topics,
            entity,
            &state.light,
            effect,
            self.settings.discovery.color_temp_unit,
        );
        let published = self.published.entry(key).or_default();
        if !force && published.state.as_ref() == Some(&msg.payload) {
            return;
        }
        published.state = Some(msg.payload.clone());
        self.send("state", msg);
    }

    fn refresh_availability(&mut self, key: EntityKey, now: Instant) {
        let Some(entity) = self.registry.get(&key).filter(|e| !e.disabled) else {
            return;
        };
        let available = if entity.is_group() {
            self.registry
                .member_keys(entity)
                .iter()
                .any(|m| self.availability.is_available(m))
        } else {
            let wire = entity.wire_key();
            let online = self.services.state.get(&wire).is_some_and(|s| s.online);
            let reachable = self.services.routes.is_reachable(&wire);
            self.availability
                .observe(key, online, reachable, now.into_std());
            self.availability.is_available(&key)
        };
        let published = self.published.entry(key).or_default();
        if published.available == Some(available) {
            return;
        }
        published.available = Some(available);
        let msg = render::availability(&self.settings.topics, key, available);
        self.send("availability", msg);
    }

    fn publish_attributes(&mut self, key: EntityKey) {
        let Some(entity) = self.registry.get(&key).filter(|e| !e.disabled) else {
            return;
        };
        let routes = self.services.routes.routes_to(&entity.wire_key());
        let attributes = Attributes {
            mesh_id: key.id,
            relay: routes.first().map(|r| r.device.to_string()),
            route: routes.first().map(|r| match r.kind {
                crate::server::RouteKind::Direct => "direct",
                crate::server::RouteKind::Relay => "relay",
            }),
            routes: routes.len(),
            firmware: entity.firmware.clone(),
            listed: entity.listed,
            signal: None,
        };
        let published = self.published.entry(key).or_default();
        if published.attributes.as_ref() == Some(&attributes) {
            return;
        }
        let msg = render::attributes(&self.settings.topics, key, &attributes);
        published.attributes = Some(attributes);
        self.send("attributes", msg);
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
        if self.info.as_ref() == Some(&info) {
            return;
        }
        let msg = render::bridge_info(&self.settings.topics, &info);
        self.info = Some(info);
        self.send("bridge", msg);
    }

    // ---- events ----------------------------------------------------------------------------

    fn on_mqtt(&mut self, event: MqttEvent) {
        match event {
            MqttEvent::Connected => {
                tracing::info!("mqtt connected; publishing discovery, availability and state");
                self.connected = true;
                self.services.metrics.mqtt_connected().set(1);
                self.publish_all();
            }
            MqttEvent::Disconnected { reason } => {
                if self.connected {
                    tracing::warn!(%reason, "mqtt disconnected; devices keep running");
                }
                self.connected = false;
                self.services.metrics.mqtt_connected().set(0);
            }
            MqttEvent::Message { topic, payload } => self.on_message(&topic, &payload),
        }
    }

    fn on_message(&mut self, topic: &str, payload: &[u8]) {
        let Some(incoming) = self.settings.topics.parse(topic) else {
            return;
        };
        match incoming {
            Incoming::HaStatus => {
                if payload.eq_ignore_ascii_case(b"online") {
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
            }
            Incoming::OwnDiscovery {
                component,
                object_id,
            } => {
                if self.cleanup_pending {
                    if payload.is_empty() {
                        self.own_configs.remove(&(component, object_id));
                    } else {
                        self.own_configs.insert((component, object_id));
                    }
                }
            }
            Incoming::Set(key) => self.on_command(topic, key, Kind::Set, payload),
            Incoming::FanPercentage(key) => {
                self.on_command(topic, key, Kind::FanPercentage, payload)
            }
            Incoming::FanPreset(key) => self.on_command(topic, key, Kind::FanPreset, payload),
        }
    }

    fn on_command(&mut self, topic: &str, key: EntityKey, kind: Kind, payload: &[u8]) {
        let metrics = self.services.metrics.clone();
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
        let currently_on = self.current_state(entity).map(|s| s.light.on);
        let unit = self.settings.discovery.color_temp_unit;
        let translated = translate(entity, kind, payload, currently_on, unit);
        let (commands, effect) = match translated {
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
        let job = Job {
            entity: key,
            wire: entity.wire_key(),
            commands,
            members,
            effect,
            correlation: new_correlation_id(),
        };
        tracing::debug!(topic, correlation_id = %job.correlation, "mqtt command accepted");
        self.dispatch(job);
    }

    fn dispatch(&mut self, job: Job) {
        let key = job.entity;
        let mut job = Some(job);
        for _ in 0..2 {
            let tx = self.workers.entry(key).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(worker::QUEUE);
                self.tracker
                    .spawn(worker::run(Arc::clone(&self.worker_ctx), rx));
                tx
            });
            let Some(j) = job.take() else { return };
            match tx.try_send(j) {
                Ok(()) => {
                    self.services.metrics.mqtt_command("accepted");
                    return;
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.services.metrics.mqtt_command("dropped");
                    tracing::warn!(entity = %key, "too many commands queued for this device; dropped");
                    self.publish_state(key, true);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(j)) => {
                    // The worker ended after being idle: start a new one.
                    self.workers.remove(&key);
                    job = Some(j);
                }
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
        if let Some(new) = self.registry.observe(change.key) {
            tracing::info!(entity = %new, "device seen on the wire but not listed; announcing it");
            self.announce(new);
            self.publish_attributes(new);
        }
        let key = self.registry.entity_key(change.key);
        if change.current.light.temperature != crate::protocol::content::TEMP_EFFECT {
            self.effects.remove(&key);
        }
        let now = Instant::now();
        self.refresh_availability(key, now);
        self.publish_state(key, false);
        for group in self.registry.groups_of(key).to_vec() {
            self.refresh_availability(group, now);
            self.publish_state(group, false);
        }
    }

    fn on_tick(&mut self) {
        if self.resync && self.connected {
            self.publish_all();
            return;
        }
        let now = Instant::now();
        let keys: Vec<EntityKey> = self.registry.active().map(|e| e.key).collect();
        // Devices first, so groups see their members' new availability.
        let (groups, devices): (Vec<EntityKey>, Vec<EntityKey>) = keys
            .into_iter()
            .partition(|k| k.kind == crate::mqtt::topics::EntityKind::Group);
        for key in devices.into_iter().chain(groups) {
            self.refresh_availability(key, now);
            self.publish_attributes(key);
        }
        self.publish_info();
    }

    /// Removes retained configs under this bridge's node id that match no current entity.
    fn cleanup(&mut self) {
        self.cleanup_pending = false;
        let topics = self.settings.topics.clone();
        let mut wanted: HashSet<(String, String)> =
            bridge_configs(&topics, &self.settings.discovery)
                .into_iter()
                .map(|d| (d.component.to_owned(), d.object_id))
                .collect();
        for entity in self.registry.active() {
            for d in entity_configs(&entity.description(), &topics, &self.settings.discovery) {
                wanted.insert((d.component.to_owned(), d.object_id));
            }
        }
        let stale: Vec<(String, String)> = self
            .own_configs
            .drain()
            .filter(|c| !wanted.contains(c))
            .collect();
        for (component, object_id) in stale {
            tracing::info!(%component, %object_id, "removing a stale discovery config of this bridge");
            self.send(
                "discovery",
                render::removal(&topics, &component, &object_id),
            );
        }
    }
}

/// Which command topic a message came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Set,
    FanPercentage,
    FanPreset,
}

/// An MQTT command for `entity` → the Cync commands to send, and the effect it starts.
fn translate(
    entity: &Entity,
    kind: Kind,
    payload: &[u8],
    currently_on: Option<bool>,
    unit: ColorTempUnit,
) -> Result<(Vec<Command>, Option<&'static str>), CommandError> {
    let target = entity.key.id;
    let caps = &entity.model.caps;
    let is_light =
        entity.is_group() || matches!(entity.model.class, DeviceClass::Light | DeviceClass::Dimmer);
    let power = |on| vec![Command::Power { target, on }];
    match kind {
        Kind::Set if is_light => {
            let request = parse_light(payload)?;
            let effect = match &request.effect {
                Some(name) => EFFECTS.iter().find(|(n, _)| n == name).map(|(n, _)| *n),
                None => None,
            };
            let commands = light_commands(&request, caps, target, currently_on, unit)?;
            Ok((commands, effect))
        }
        Kind::Set => Ok((power(parse_on_off(payload)?), None)),
        Kind::FanPercentage | Kind::FanPreset => {
            if entity.model.class != DeviceClass::Fan {
                return Err(CommandError::Unsupported("fan speed"));
            }
            let level = if kind == Kind::FanPercentage {
                parse_fan_percentage(payload)?
            } else {
                parse_fan_preset(payload)?
            };
            if level == 0 {
                return Ok((power(false), None));
            }
            let mut commands = Vec::with_capacity(2);
            if currently_on != Some(true) {
                commands.push(Command::Power { target, on: true });
            }
            commands.push(Command::Light {
                target,
                brightness: Some(level),
                color: None,
            });
            Ok((commands, None))
        }
    }
}

/// A group's state from its members': on when any member is on; level and colour from the
/// brightest member that is on (or the first member when all are off).
fn group_state(members: &[DeviceState]) -> Option<DeviceState> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lamp(on: bool, brightness: u8) -> DeviceState {
        DeviceState {
            light: LightState {
                on,
                brightness,
                temperature: 50,
                rgb: [0; 3],
            },
            online: true,
        }
    }

    fn entity(type_id: u16) -> Entity {
        let key = EntityKey {
            home: 1,
            kind: crate::mqtt::topics::EntityKind::Device,
            id: 9,
        };
        Entity::unlisted(key, crate::device::lookup(type_id))
    }

    fn tr(
        type_id: u16,
        kind: Kind,
        payload: &str,
        on: Option<bool>,
    ) -> Result<Vec<Command>, CommandError> {
        translate(
            &entity(type_id),
            kind,
            payload.as_bytes(),
            on,
            ColorTempUnit::Kelvin,
        )
        .map(|t| t.0)
    }

    #[test]
    fn fan_speeds_power_the_fan_as_needed_and_zero_turns_it_off() {
        let level = |b| Command::Light {
            target: 9,
            brightness: Some(b),
            color: None,
        };
        let on = Command::Power {
            target: 9,
            on: true,
        };
        assert_eq!(
            tr(81, Kind::FanPercentage, "60", Some(false)),
            Ok(vec![on, level(75)])
        );
        assert_eq!(
            tr(81, Kind::FanPercentage, "60", Some(true)),
            Ok(vec![level(75)])
        );
        assert_eq!(
            tr(81, Kind::FanPreset, "max", None),
            Ok(vec![on, level(100)])
        );
        assert_eq!(
            tr(81, Kind::FanPercentage, "0", Some(true)),
            Ok(vec![Command::Power {
                target: 9,
                on: false
            }])
        );
        assert_eq!(
            tr(81, Kind::Set, "OFF", Some(true)),
            Ok(vec![Command::Power {
                target: 9,
                on: false
            }])
        );
        assert!(
            tr(64, Kind::FanPercentage, "50", None).is_err(),
            "a plug has no speed"
        );
    }

    #[test]
    fn switches_take_on_off_and_lights_take_json() {
        assert_eq!(
            tr(64, Kind::Set, "ON", None),
            Ok(vec![Command::Power {
                target: 9,
                on: true
            }])
        );
        assert!(tr(64, Kind::Set, r#"{"brightness":5}"#, None).is_err());
        let effect = translate(
            &entity(137),
            Kind::Set,
            br#"{"effect":"rainbow"}"#,
            Some(true),
            ColorTempUnit::Kelvin,
        )
        .unwrap()
        .1;
        assert_eq!(effect, Some("rainbow"));
        // HA's transition and flash are accepted and ignored.
        assert_eq!(
            tr(
                137,
                Kind::Set,
                r#"{"state":"OFF","transition":2,"flash":"short"}"#,
                Some(true)
            ),
            Ok(vec![Command::Power {
                target: 9,
                on: false
            }])
        );
    }

    #[test]
    fn a_group_is_on_when_any_member_is_and_shows_the_brightest() {
        let g = group_state(&[lamp(false, 90), lamp(true, 30), lamp(true, 60)]).unwrap();
        assert!(g.light.on);
        assert_eq!(g.light.brightness, 60);
        let off = group_state(&[lamp(false, 90), lamp(false, 10)]).unwrap();
        assert!(!off.light.on);
        assert_eq!(group_state(&[]), None);
    }
}
