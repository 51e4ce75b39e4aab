//! The bridge's event loop with no broker and no devices: MQTT events go in through a channel,
//! every publish is recorded as (topic, payload, retain, QoS), and the command path is a fake
//! `CommandTransport` that records what it was asked to send and answers as told. Each test
//! asserts the exact list of publishes — including that nothing at all is published after an
//! invalid payload — the way zigbee2mqtt's tests pin theirs.
//!
//! The clock is paused: tokio advances it only when every task is idle, so "everything the loop
//! did in answer to this event" is exactly what the outbox holds once virtual time moves on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cync_bridge::bridge::{self, MqttLink, Registry};
use cync_bridge::config::{self, RawConfig};
use cync_bridge::device::{DeviceKey, DeviceState, Expectation, Report, ReportSource, StateStore};
use cync_bridge::mqtt::client::{MqttEvent, Outbox, Outgoing};
use cync_bridge::mqtt::topics::{EntityKey, EntityKind, Topics};
use cync_bridge::protocol::{Command, LightState};
use cync_bridge::server::Services;
use cync_bridge::telemetry::Metrics;
use cync_bridge::transport::{
    CommandOutcome, CommandReport, CommandRequest, CommandTransport, PendingReport,
};
use figment::providers::{Format, Serialized, Toml};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const HOME: u64 = 1_234_567_890;
const LAMP: u16 = 1; // full colour bulb (type 137)
const PLUG: u16 = 2; // plug (64)
/// A room as the Cync account numbers it: a small id that is also a possible device mesh id.
const ROOM: u16 = 3;
/// A group id no device can have (0x8000 and up).
const MESH_GROUP: u16 = 32769;

/// Answers every command with `outcome`; on success it does what a device's `f9` does to the
/// store (the commanded state becomes the stored state).
#[derive(Debug)]
struct FakeTransport {
    state: Arc<StateStore>,
    outcome: Mutex<CommandOutcome>,
    sent: Mutex<Vec<Command>>,
    /// How long the "device" takes to answer (virtual time).
    delay: Mutex<Duration>,
}

impl CommandTransport for FakeTransport {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn execute<'a>(
        &'a self,
        request: CommandRequest,
        _cancel: &'a CancellationToken,
    ) -> PendingReport<'a> {
        self.sent.lock().unwrap().push(request.command);
        let outcome = *self.outcome.lock().unwrap();
        let delay = *self.delay.lock().unwrap();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if outcome == CommandOutcome::Success {
                if let Some(expect) = Expectation::for_command(&request.command) {
                    let current = self.state.get(&request.key).unwrap_or_default();
                    self.state.apply(Report {
                        key: request.key,
                        state: expect.applied_to(current),
                        source: ReportSource::CommandResponse,
                    });
                }
            }
            CommandReport {
                latency: Duration::from_millis(5),
                attempts: 1,
                ..CommandReport::unsent(&request, outcome)
            }
        })
    }

    fn refresh(&self, _key: DeviceKey, _correlation: uuid::Uuid) -> bool {
        false
    }
}

struct World {
    events: mpsc::Sender<MqttEvent>,
    published: mpsc::Receiver<Outgoing>,
    transport: Arc<FakeTransport>,
    services: Services,
    topics: Topics,
    shutdown: CancellationToken,
}

/// The lamp and the plug; with `groups`, also in a room and in a mesh group.
fn device_file(dir: &std::path::Path, groups: bool) -> std::path::PathBuf {
    let path = dir.join("devices.yaml");
    let mut text = format!(
        "homes:\n  Test Home:\n    id: {HOME}\n    devices:\n      {LAMP}: {{name: Lamp, type: 137}}\n      {PLUG}: {{name: Plug, type: 64}}\n"
    );
    if groups {
        text += &format!(
            "    groups:\n      {ROOM}: {{name: Room, members: [{LAMP}, {PLUG}]}}\n      {MESH_GROUP}: {{name: Mesh Group, members: [{LAMP}, {PLUG}]}}\n"
        );
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn start(dir: &std::path::Path) -> World {
    start_with(dir, false)
}

fn start_with(dir: &std::path::Path, groups: bool) -> World {
    let toml = format!(
        "timezone = \"UTC\"\n[devices]\nfile = {:?}\n",
        device_file(dir, groups).display().to_string()
    );
    let figment = figment::Figment::from(Serialized::defaults(RawConfig::default()))
        .merge(Toml::string(&toml));
    let config = config::validate(&figment).unwrap();
    let services = Services::new(&config.state, Metrics::new());
    let registry = Registry::load(&config.devices).unwrap();
    let transport = Arc::new(FakeTransport {
        state: Arc::clone(&services.state),
        outcome: Mutex::new(CommandOutcome::Success),
        sent: Mutex::new(Vec::new()),
        delay: Mutex::new(Duration::ZERO),
    });
    let (outbox_tx, published) = mpsc::channel(4096);
    let (events, events_rx) = mpsc::channel(64);
    let settings = config.bridge_settings();
    let topics = settings.topics.clone();
    let shutdown = CancellationToken::new();
    let link = MqttLink {
        outbox: Outbox::from_sender(outbox_tx),
        events: events_rx,
    };
    let dyn_transport: Arc<dyn CommandTransport> = transport.clone();
    bridge::spawn_with(
        settings,
        registry,
        &services,
        dyn_transport.into(),
        link,
        &TaskTracker::new(),
        shutdown.clone(),
    );
    World {
        events,
        published,
        transport,
        services,
        topics,
        shutdown,
    }
}

fn key(id: u16) -> EntityKey {
    EntityKey {
        home: HOME,
        kind: EntityKind::Device,
        id,
    }
}

fn wire(id: u16) -> DeviceKey {
    bridge::registry::wire_key(key(id))
}

/// (topic, payload, retain, QoS) as a tuple, so a whole list compares in one assertion.
type Publish = (String, Bytes, bool, u8);

impl World {
    /// Everything published in answer to what happened so far: lets virtual time run (the loop
    /// finishes every event before the paused clock advances) and drains the outbox.
    async fn drain(&mut self) -> Vec<Publish> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut out = Vec::new();
        while let Ok(m) = self.published.try_recv() {
            out.push((m.topic, m.payload, m.retain, m.qos));
        }
        out
    }

    async fn send(&self, event: MqttEvent) {
        self.events.send(event).await.unwrap();
    }

    async fn command(&self, id: u16, payload: &str) {
        self.command_entity(key(id), payload).await;
    }

    async fn command_entity(&self, entity: EntityKey, payload: &str) {
        let topic = self.topics.set(entity);
        self.send(MqttEvent::Message {
            topic,
            payload: Bytes::from(payload.to_owned()),
        })
        .await;
    }

    fn report(&self, id: u16, light: LightState) {
        self.services.state.apply(Report {
            key: wire(id),
            state: DeviceState {
                light,
                online: true,
            },
            source: ReportSource::StateReport,
        });
    }

    fn state_publish(&self, id: u16, payload: Value) -> Publish {
        let bytes = Bytes::from(serde_json::to_vec(&payload).unwrap());
        (self.topics.state(key(id)), bytes, true, 1)
    }

    /// Connected, with the full first publication drained.
    async fn connected(&mut self) -> Vec<Publish> {
        self.send(MqttEvent::Connected).await;
        self.drain().await
    }
}

fn on(on: bool) -> LightState {
    LightState {
        on,
        brightness: 100,
        temperature: 0,
        rgb: [0; 3],
    }
}

#[tokio::test(start_paused = true)]
async fn an_invalid_or_unknown_command_publishes_nothing_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = start(dir.path());
    world.report(PLUG, on(false));
    world.connected().await;
    for payload in ["", "MAYBE", "{\"state\":", "\u{0}\u{1}"] {
        world.command(PLUG, payload).await;
    }
    world.command(LAMP, r#"{"brightness":"bright"}"#).await;
    world
        .command(LAMP, r#"{"color_temp":3000,"effect":"no-such-effect"}"#)
        .await;
    world.command(99, "ON").await;
    assert_eq!(world.drain().await, Vec::<Publish>::new());
    assert!(world.transport.sent.lock().unwrap().is_empty());
    world.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_confirmed_command_publishes_exactly_the_new_state_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = start(dir.path());
    world.report(PLUG, on(false));
    world.connected().await;
    world.command(PLUG, "ON").await;
    let published = world.drain().await;
    assert_eq!(
        *world.transport.sent.lock().unwrap(),
        vec![Command::Power {
            target: PLUG,
            on: true
        }]
    );
    assert_eq!(
        published,
        vec![world.state_publish(PLUG, json!({"state": "ON"}))]
    );
    // The same command again changes nothing on the device, so nothing new is published.
    world.command(PLUG, "ON").await;
    assert_eq!(world.drain().await, Vec::<Publish>::new());
    world.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_failed_command_republishes_the_confirmed_state_even_when_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = start(dir.path());
    world.report(PLUG, on(false));
    world.connected().await;
    *world.transport.outcome.lock().unwrap() = CommandOutcome::Timeout;
    world.command(PLUG, "ON").await;
    // Home Assistant shows the toggle on already; the truth goes back, retained.
    assert_eq!(
        world.drain().await,
        vec![world.state_publish(PLUG, json!({"state": "OFF"}))]
    );
    world.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn nothing_is_published_while_disconnected_and_everything_is_on_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = start(dir.path());
    world.report(PLUG, on(false));
    let first = world.connected().await;
    world
        .send(MqttEvent::Disconnected {
            reason: "test".into(),
        })
        .await;
    // The loop reads the broker and the store concurrently: let it see the disconnect first.
    assert_eq!(world.drain().await, Vec::<Publish>::new());
    world.report(PLUG, on(true));
    assert_eq!(world.drain().await, Vec::<Publish>::new());
    let again = world.connected().await;
    // The same topics in the same order, and the plug's state now the one reported meanwhile.
    let topics = |list: &[Publish]| list.iter().map(|p| p.0.clone()).collect::<Vec<_>>();
    assert_eq!(topics(&again), topics(&first));
    assert!(again.iter().all(|p| p.2 && p.3 == 1), "all retained, QoS 1");
    assert!(again.contains(&world.state_publish(PLUG, json!({"state": "ON"}))));
    assert!(first.contains(&world.state_publish(PLUG, json!({"state": "OFF"}))));
    world.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_light_command_becomes_power_then_level_and_one_state_publish() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = start(dir.path());
    world.report(
        LAMP,
        LightState {
            on: false,
            brightness: 80,
            temperature: 20,
            rgb: [0; 3],
        },
    );
    world.connected().await;
    world
        .command(LAMP, r#"{"state":"ON","brightness":40}"#)
        .await;
    let published = world.drain().await;
    assert_eq!(
        *world.transport.sent.lock().unwrap(),
        vec![
            Command::Power {
                target: LAMP,
                on: true
            },
            Command::Light {
                target: LAMP,
                brightness: Some(40),
                color: None
            }
        ]
    );
    // State is published from the store's snapshot, not per step: both steps landed before the
    // loop looked, so Home Assistant sees one state, the final one, and the command's own end
    // repeats nothing.
    let state_topic = world.topics.state(key(LAMP));
    assert!(
        published
            .iter()
            .all(|p| p.0 == state_topic && p.2 && p.3 == 1),
        "{published:?}"
    );
    let shown: Vec<(Value, Value)> = published
        .iter()
        .map(|p| serde_json::from_slice::<Value>(&p.1).unwrap())
        .map(|v| (v["state"].clone(), v["brightness"].clone()))
        .collect();
    assert_eq!(shown, vec![(json!("ON"), json!(40))]);
    world.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn in_a_burst_of_commands_to_one_light_the_last_one_wins_and_none_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = start(dir.path());
    world.report(LAMP, on(true));
    world.connected().await;
    // Each command takes the "device" 50 ms; twenty arrive within 20 ms of each other.
    *world.transport.delay.lock().unwrap() = Duration::from_millis(50);
    for level in 1..=20u8 {
        world
            .command(LAMP, &format!("{{\"brightness\":{}}}", level * 5))
            .await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let published = world.drain().await;
    let last: Value = serde_json::from_slice(&published.last().unwrap().1).unwrap();
    assert_eq!(
        last["brightness"], 100,
        "the light ends at the last command"
    );
    let sent = world.transport.sent.lock().unwrap().clone();
    assert_eq!(
        sent.last(),
        Some(&Command::Light {
            target: LAMP,
            brightness: Some(100),
            color: None
        })
    );
    assert!(
        sent.len() < 20,
        "waiting commands were superseded, not all sent: {sent:?}"
    );
    let counted = |result: &str| {
        world
            .services
            .metrics
            .sample_value(&format!(
                "tcp_comm_mqtt_commands_total{{result=\"{result}\"}}"
            ))
            .unwrap_or(0.0)
    };
    assert_eq!(counted("accepted"), 20.0);
    assert_eq!(counted("superseded"), (20 - sent.len()) as f64);
    assert_eq!(counted("dropped"), 0.0);
    world.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn after_a_start_no_device_is_published_unavailable_until_the_startup_grace_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = start(dir.path());
    world.report(PLUG, on(true));
    let first = world.connected().await;
    let availability = world.topics.availability(key(PLUG));
    // No relay has reconnected yet: Home Assistant keeps what it had, nothing is said.
    assert!(!first.iter().any(|p| p.0 == availability), "{first:?}");
    tokio::time::sleep(Duration::from_secs(80)).await;
    assert!(!world.drain().await.iter().any(|p| p.0 == availability));
    // The default start-up grace (90 s) is over and still no route: now it is unavailable.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let later = world.drain().await;
    let offline = (availability, Bytes::from_static(b"offline"), true, 1);
    assert_eq!(
        later
            .iter()
            .filter(|p| p.0 == offline.0)
            .collect::<Vec<_>>(),
        vec![&offline]
    );
    world.shutdown.cancel();
}

fn group(id: u16) -> EntityKey {
    EntityKey {
        home: HOME,
        kind: EntityKind::Group,
        id,
    }
}

#[tokio::test(start_paused = true)]
async fn a_room_with_a_cloud_id_is_switched_member_by_member_and_a_mesh_group_in_one_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut world = start_with(dir.path(), true);
    world.report(LAMP, on(false));
    world.report(PLUG, on(false));
    world.connected().await;
    // Room 3 could be device 3 on the wire: each member gets its own command, never id 3.
    world.command_entity(group(ROOM), r#"{"state":"ON"}"#).await;
    world.drain().await;
    let sent: Vec<Command> = world.transport.sent.lock().unwrap().drain(..).collect();
    assert_eq!(
        sent,
        vec![
            Command::Power {
                target: LAMP,
                on: true
            },
            Command::Power {
                target: PLUG,
                on: true
            },
        ]
    );
    // Each member applied its own command (the fake device does what an f9 does).
    for member in [LAMP, PLUG] {
        assert!(world.services.state.get(&wire(member)).unwrap().light.on);
    }
    // 0x8001 cannot be a device: one command to the group address.
    world
        .command_entity(group(MESH_GROUP), r#"{"state":"OFF"}"#)
        .await;
    world.drain().await;
    let sent: Vec<Command> = world.transport.sent.lock().unwrap().drain(..).collect();
    assert_eq!(
        sent,
        vec![Command::Power {
            target: MESH_GROUP,
            on: false
        }]
    );
    world.shutdown.cancel();
}
