//! The shipped image as users run it: Mosquitto, the bridge and simulated devices as containers
//! on a private Docker network, checked from the host through the published ports only — the
//! bridge's `/metrics` and the broker.
//!
//! Images: `CYNC_TEST_BRIDGE_IMAGE` (default `cync-bridge:latest`, also run as the simulator) and
//! `CYNC_TEST_MOSQUITTO_IMAGE` (default `eclipse-mosquitto:2`); `.ci/run` builds local ones with
//! `docker/build-local-images.sh`. Without a Docker engine or the images, each scenario runs
//! against a local mosquitto process and the locally built binary instead and says so, unless
//! `CYNC_REQUIRE_DOCKER=1` (CI) makes that a failure.

mod common;
mod container_world;

use container_world::observe::{self, Retained};
use container_world::{World, MESH_PER_DEVICE, WIFI_DEVICES};

/// Routes the bridge should know for the simulated home: every Wi-Fi device reaches itself, and
/// each Bluetooth-only device is reached through its own relay and the next one (the
/// simulator's reach redundancy of 2).
const ROUTES: usize = WIFI_DEVICES + WIFI_DEVICES * MESH_PER_DEVICE * 2;

const BRIDGE_STATE: &str = "cync/bridge/state";

/// `homeassistant/…/config` payloads whose `origin.name` is `cync-bridge`.
fn own_discovery(messages: &[Retained]) -> Vec<&Retained> {
    messages
        .iter()
        .filter(|m| m.topic.starts_with("homeassistant/") && m.topic.ends_with("/config"))
        .filter(|m| {
            serde_json::from_str::<serde_json::Value>(&m.payload)
                .is_ok_and(|v| v["origin"]["name"] == "cync-bridge")
        })
        .collect()
}

fn is_online_with_discovery(messages: &[Retained]) -> bool {
    observe::payload(messages, BRIDGE_STATE) == Some("online")
        && !own_discovery(messages).is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_devices_connect_to_the_bridge_container_over_tls_and_show_in_its_metrics() {
    let Some(world) = World::start("a (devices over TLS → /metrics)").await else {
        return;
    };
    let expected = [
        ("tcp_comm_connected_sessions", WIFI_DEVICES as f64),
        ("tcp_comm_mesh_routes", ROUTES as f64),
    ];
    if let Err(e) = observe::await_samples(world.telemetry(), &expected).await {
        panic!("{e}\nbridge log:\n{}", world.bridge_log().await);
    }
    let health = observe::http_get(world.telemetry(), "/healthz").await;
    assert_eq!(health.as_deref(), Ok("ok\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_container_announces_itself_online_with_retained_discovery_on_the_broker() {
    let Some(world) = World::start("b (bridge → broker: online + discovery)").await else {
        return;
    };
    let seen = observe::await_retained(
        world.broker(),
        &[BRIDGE_STATE, "homeassistant/#"],
        is_online_with_discovery,
    )
    .await;
    if let Err(e) = seen {
        panic!("{e}\nbridge log:\n{}", world.bridge_log().await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_bridge_container_leaves_offline_retained_and_exits_0() {
    let Some(mut world) = World::start("c (stop → offline)").await else {
        return;
    };
    let online = observe::await_retained(world.broker(), &[BRIDGE_STATE], |m| {
        observe::payload(m, BRIDGE_STATE) == Some("online")
    })
    .await;
    if let Err(e) = online {
        panic!("{e}\nbridge log:\n{}", world.bridge_log().await);
    }

    let code = world.stop_bridge().await;
    // The broker would also publish the last will "offline" for a killed bridge: exit status 0
    // is what shows the bridge said goodbye itself.
    assert_eq!(code, 0, "bridge log:\n{}", world.bridge_log().await);
    let offline = observe::await_retained(world.broker(), &[BRIDGE_STATE], |m| {
        observe::payload(m, BRIDGE_STATE) == Some("offline")
    })
    .await;
    assert!(offline.is_ok(), "{offline:?}");
}
