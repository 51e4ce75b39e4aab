//! The world as containers: Mosquitto, the bridge under test (the image's default command,
//! `serve`) and the simulator (the same image, command `sim`), on a private network of their
//! own, where they find each other by container name exactly as docker-compose.yml's services do.
//! Only the broker's port and the bridge's telemetry port are published to the host.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::{bridge_env, sim_args, Images, PATIENCE};

/// `Ok` when the Docker engine answers and both images are present; otherwise why not, in words
/// an operator can act on.
pub fn available(images: &Images) -> Result<Images, String> {
    let engine = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map_err(|e| format!("no docker CLI ({e})"))?;
    if !engine.status.success() {
        return Err(format!(
            "no Docker engine answers: {}",
            String::from_utf8_lossy(&engine.stderr).trim()
        ));
    }
    for (image, env) in [
        (&images.mosquitto, super::MOSQUITTO_IMAGE_ENV),
        (&images.bridge, super::BRIDGE_IMAGE_ENV),
    ] {
        let found = Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", image])
            .output()
            .map_err(|e| format!("docker image inspect failed ({e})"))?;
        if !found.status.success() {
            return Err(format!(
                "image {image} is not present (docker/build-local-images.sh builds local \
                 images; name them in {env})"
            ));
        }
    }
    Ok(Images {
        mosquitto: images.mosquitto.clone(),
        bridge: images.bridge.clone(),
    })
}

/// `eclipse-mosquitto:2` → (`eclipse-mosquitto`, `2`); a registry port is not a tag.
fn name_and_tag(reference: &str) -> (String, String) {
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
        _ => (reference.to_owned(), "latest".to_owned()),
    }
}

fn image(reference: &str) -> GenericImage {
    let (name, tag) = name_and_tag(reference);
    GenericImage::new(name, tag)
}

/// Containers are removed when this is dropped (simulator first, broker last: field order).
pub struct DockerWorld {
    pub telemetry: SocketAddr,
    pub broker: SocketAddr,
    simulator: ContainerAsync<GenericImage>,
    bridge: ContainerAsync<GenericImage>,
    mosquitto: ContainerAsync<GenericImage>,
}

impl DockerWorld {
    pub async fn start(images: &Images) -> DockerWorld {
        // Unique names: scenarios run in parallel and may share an engine with other runs.
        let id = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        let network = format!("cync-test-{id}");
        let broker_name = format!("cync-test-mosquitto-{id}");
        let localhost = Ipv4Addr::LOCALHOST.into();
        let bridge_name = format!("cync-test-bridge-{id}");

        // The stack's own broker config (port 1883, anonymous), as docker-compose.yml mounts it.
        // Readiness is an MQTT connect from the host below, not a log line: Debian's mosquitto
        // 2.0.11 (in the local image) buffers `log_dest stdout` when it is not a terminal.
        let config =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/mosquitto/mosquitto.conf");
        let mosquitto = image(&images.mosquitto)
            .with_exposed_port(1883.tcp())
            .with_network(&network)
            .with_container_name(&broker_name)
            .with_copy_to("/mosquitto/config/mosquitto.conf", config)
            .with_startup_timeout(PATIENCE)
            .start()
            .await
            .unwrap_or_else(|e| panic!("starting {}: {e}", images.mosquitto));
        let broker = SocketAddr::new(localhost, host_port(&mosquitto, 1883).await);
        if let Err(e) = super::observe::await_broker(broker).await {
            panic!(
                "{} never accepted an MQTT connection: {e}",
                images.mosquitto
            );
        }

        let mut bridge = image(&images.bridge)
            .with_exposed_port(9464.tcp())
            .with_wait_for(WaitFor::message_on_stderr("cync-bridge serving"))
            .with_network(&network)
            .with_container_name(&bridge_name)
            .with_startup_timeout(PATIENCE);
        for (key, value) in bridge_env(&format!("mqtt://{broker_name}:1883")) {
            bridge = bridge.with_env_var(key, value);
        }
        let bridge = bridge
            .start()
            .await
            .unwrap_or_else(|e| panic!("starting {}: {e}", images.bridge));

        let simulator = image(&images.bridge)
            .with_network(&network)
            .with_container_name(format!("cync-test-sim-{id}"))
            .with_cmd(sim_args(&format!("{bridge_name}:23779")))
            .start()
            .await
            .unwrap_or_else(|e| panic!("starting the simulator from {}: {e}", images.bridge));

        let telemetry = SocketAddr::new(localhost, host_port(&bridge, 9464).await);
        DockerWorld {
            telemetry,
            broker,
            simulator,
            bridge,
            mosquitto,
        }
    }

    /// `docker stop` (SIGTERM, SIGKILL only after 30 s) and the exit code.
    pub async fn stop_bridge(&mut self) -> i64 {
        self.bridge
            .stop_with_timeout(Some(30))
            .await
            .unwrap_or_else(|e| panic!("docker stop of the bridge: {e}"));
        match self.bridge.exit_code().await {
            Ok(Some(code)) => code,
            Ok(None) => panic!("the bridge container still runs after docker stop"),
            Err(e) => panic!("exit code of the bridge container: {e}"),
        }
    }

    pub async fn bridge_log(&self) -> String {
        let out = self.bridge.stdout_to_vec().await.unwrap_or_default();
        let err = self.bridge.stderr_to_vec().await.unwrap_or_default();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        )
    }

    /// What the simulator logged (for failure messages).
    pub async fn simulator_log(&self) -> String {
        let err = self.simulator.stderr_to_vec().await.unwrap_or_default();
        String::from_utf8_lossy(&err).into_owned()
    }
}

async fn host_port(container: &ContainerAsync<GenericImage>, port: u16) -> u16 {
    container
        .get_host_port_ipv4(port.tcp())
        .await
        .unwrap_or_else(|e| panic!("host port of container port {port}: {e}"))
}

#[test]
fn image_references_split_into_name_and_tag() {
    assert_eq!(
        name_and_tag("eclipse-mosquitto:2"),
        ("eclipse-mosquitto".into(), "2".into())
    );
    assert_eq!(
        name_and_tag("localhost:5000/cync-bridge"),
        ("localhost:5000/cync-bridge".into(), "latest".into())
    );
}
