//! World for `tests/containers.rs`: Mosquitto, the bridge under test and the simulator, either as
//! Docker containers on a private network ([`docker`]) or — when there is no Docker engine, or
//! the images are missing — as a local Mosquitto process and the locally built binary
//! ([`local`]). Both give the test the same two host addresses (the bridge's telemetry port and
//! the broker), so each scenario's assertions ([`observe`]) run unchanged against either.
//!
//! Images come from the environment (`.ci/run` points them at images built from this checkout by
//! `docker/build-local-images.sh`); `CYNC_REQUIRE_DOCKER=1` makes a missing engine or image a
//! failure instead of a fallback.
//!
//! Time: real processes on the real clock; short configured session delays and generous
//! deadlines, never an assertion on how long something took (these machines are noisy).
#![allow(dead_code)] // each scenario uses a different part of this module

pub mod docker;
pub mod local;
pub mod observe;

use std::net::SocketAddr;
use std::time::Duration;

/// Set to `1` to fail instead of falling back to local processes.
pub const REQUIRE_DOCKER: &str = "CYNC_REQUIRE_DOCKER";
/// The broker image (default: the public image docker-compose.yml uses).
pub const MOSQUITTO_IMAGE_ENV: &str = "CYNC_TEST_MOSQUITTO_IMAGE";
/// The bridge image, also run as the simulator (default: what `docker compose build` tags).
pub const BRIDGE_IMAGE_ENV: &str = "CYNC_TEST_BRIDGE_IMAGE";
const MOSQUITTO_IMAGE_DEFAULT: &str = "eclipse-mosquitto:2";
const BRIDGE_IMAGE_DEFAULT: &str = "cync-bridge:latest";

/// How long any one expectation may take before the scenario fails (a deadline, not a figure).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The simulated home: 2 Wi-Fi devices, each relaying for 2 Bluetooth-only devices.
pub const WIFI_DEVICES: usize = 2;
pub const MESH_PER_DEVICE: usize = 2;
const SEED: u64 = 7;

/// `cync-bridge sim …` arguments (after the binary) for a bridge at `bridge` (HOST:PORT).
pub fn sim_args(bridge: &str) -> Vec<String> {
    [
        "sim",
        "--bridge",
        bridge,
        "--wifi-devices",
        &WIFI_DEVICES.to_string(),
        "--mesh-per-device",
        &MESH_PER_DEVICE.to_string(),
        "--seed",
        &SEED.to_string(),
        "--connect-spread-ms",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Environment of the bridge under test, beyond the listen addresses: the broker, and session
/// delays short enough that routes appear within a second.
pub fn bridge_env(mqtt_url: &str) -> Vec<(String, String)> {
    [
        ("CYNC_MQTT__URL", mqtt_url),
        ("CYNC_SERVER__SESSION_OPEN_DELAY", "10ms"),
        ("CYNC_SERVER__MESH_INFO_DELAY", "10ms"),
        ("CYNC_TELEMETRY__LOG_FORMAT", "json"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A running world: where the test reaches the bridge's `/metrics` and the broker.
pub enum World {
    Docker(Box<docker::DockerWorld>),
    Local(Box<local::LocalWorld>),
}

impl World {
    /// Starts Mosquitto, the bridge and the simulator for `scenario`: as containers when the
    /// engine and both images are there, else (saying why) as local processes. `None` when the
    /// local fallback itself is impossible (no mosquitto installed) and nothing requires it.
    pub async fn start(scenario: &str) -> Option<World> {
        match docker::available(&images()) {
            Ok(images) => Some(World::Docker(Box::new(
                docker::DockerWorld::start(&images).await,
            ))),
            Err(reason) => {
                if std::env::var(REQUIRE_DOCKER).as_deref() == Ok("1") {
                    panic!("{REQUIRE_DOCKER}=1 but {reason}");
                }
                eprintln!(
                    "docker unavailable ({reason}): running scenario {scenario} against a local \
                     mosquitto process and local binaries"
                );
                local::LocalWorld::start()
                    .await
                    .map(|w| World::Local(Box::new(w)))
            }
        }
    }

    /// The bridge's telemetry endpoint (`/metrics`, `/healthz`) as the host reaches it.
    pub fn telemetry(&self) -> SocketAddr {
        match self {
            World::Docker(w) => w.telemetry,
            World::Local(w) => w.telemetry,
        }
    }

    /// The broker as the host reaches it.
    pub fn broker(&self) -> SocketAddr {
        match self {
            World::Docker(w) => w.broker,
            World::Local(w) => w.broker,
        }
    }

    /// Stops the bridge the way an operator does (SIGTERM, then waiting) and returns its exit
    /// status; the broker keeps running.
    pub async fn stop_bridge(&mut self) -> i64 {
        match self {
            World::Docker(w) => w.stop_bridge().await,
            World::Local(w) => w.stop_bridge().await,
        }
    }

    /// Everything the bridge logged so far, for failure messages.
    pub async fn bridge_log(&self) -> String {
        match self {
            World::Docker(w) => w.bridge_log().await,
            World::Local(w) => w.bridge_log(),
        }
    }
}

/// The two images to run, from the environment or the defaults.
pub struct Images {
    pub mosquitto: String,
    pub bridge: String,
}

fn images() -> Images {
    let pick = |env: &str, default: &str| {
        std::env::var(env)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    Images {
        mosquitto: pick(MOSQUITTO_IMAGE_ENV, MOSQUITTO_IMAGE_DEFAULT),
        bridge: pick(BRIDGE_IMAGE_ENV, BRIDGE_IMAGE_DEFAULT),
    }
}
