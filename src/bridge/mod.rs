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

mod event_loop;
mod mailbox;
mod publish;
pub mod registry;
pub mod render;
pub mod rollout;
mod settings;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::device::availability::AvailabilityPolicy;
use crate::mqtt::client::{self, MqttConfigError, MqttEvent, MqttSettings, Outbox};
use crate::mqtt::discovery::DiscoveryOptions;
use crate::mqtt::topics::Topics;
use crate::rollout::task::RolloutHandle;
use crate::server::Services;
use crate::transport::CommandTransport;
use event_loop::{Inputs, Runtime};
use publish::Publisher;
pub use registry::{Entity, Registry, RegistryError};
pub use settings::{DeviceOverride, DevicesSettings, EndpointAddress, GroupCommands};
use worker::{Dispatcher, WorkerContext};

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
    /// Group address or one command per member.
    pub group_commands: GroupCommands,
}

impl BridgeSettings {
    fn tick(&self) -> Duration {
        let shortest = self
            .availability
            .offline_grace
            .min(self.availability.route_grace);
        (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

/// Where the bridge's commands go: the command path, and the rollout controller behind it when
/// one runs (its entities then appear on the bridge device in Home Assistant).
#[derive(Debug)]
pub struct Commands {
    #[allow(missing_docs)]
    pub transport: Arc<dyn CommandTransport>,
    #[allow(missing_docs)]
    pub rollout: Option<RolloutHandle>,
}

impl From<Arc<dyn CommandTransport>> for Commands {
    fn from(transport: Arc<dyn CommandTransport>) -> Commands {
        Commands {
            transport,
            rollout: None,
        }
    }
}

/// Connects to the broker and starts the bridge's event loop on `tracker`; both end when
/// `shutdown` fires (the client publishes `offline` first).
pub fn spawn(
    settings: BridgeSettings,
    registry: Registry,
    services: &Services,
    commands: Commands,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<(), MqttConfigError> {
    let (outbox, events) =
        client::spawn(&settings.mqtt, &settings.topics, tracker, shutdown.clone())?;
    let mqtt = MqttLink { outbox, events };
    spawn_with(
        settings, registry, services, commands, mqtt, tracker, shutdown,
    );
    Ok(())
}

/// The bridge's side of a broker connection: where publishes go, and what the broker said.
/// [`spawn`] makes one from a real client; tests hand in channels and record every publish.
#[derive(Debug)]
pub struct MqttLink {
    #[allow(missing_docs)]
    pub outbox: Outbox,
    /// `Connected` first, then messages on the subscribed topics.
    pub events: mpsc::Receiver<MqttEvent>,
}

/// Starts the event loop over an existing broker link.
pub fn spawn_with(
    settings: BridgeSettings,
    registry: Registry,
    services: &Services,
    commands: Commands,
    mqtt: MqttLink,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) {
    // Subscribe before anything else can change, so no state change is missed.
    let changes = services.state.subscribe();
    let (done_tx, done) = mpsc::channel(1024);
    let (internal_tx, internal) = mpsc::channel(16);
    let ctx = Arc::new(WorkerContext {
        transport: commands.transport,
        state: Arc::clone(&services.state),
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
    let out = Publisher::new(
        mqtt.outbox,
        services.metrics.clone(),
        settings.topics.clone(),
        settings.discovery.clone(),
    );
    let mut runtime = Runtime::new(
        settings,
        registry,
        services.clone(),
        out,
        Dispatcher::new(ctx, tracker.clone()),
        internal_tx,
        tracker.clone(),
        shutdown,
    );
    runtime.rollout = commands.rollout.map(rollout::RolloutLink::new);
    let inputs = Inputs {
        events: mqtt.events,
        changes,
        done,
        internal,
    };
    tracker.spawn(runtime.run(inputs));
}

#[cfg(test)]
mod tests {
    use super::event_loop::group_state;
    use crate::device::DeviceState;
    use crate::protocol::LightState;

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
