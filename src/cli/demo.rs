//! `cync-bridge demo`: the bridge and a simulated home in one command, on a fresh machine.
//!
//! Uses the configured broker when one answers; otherwise (with the `embedded-broker` feature,
//! on by default) starts an in-process broker (rumqttd) on the configured MQTT address, so nothing has
//! to be installed. Prints what to subscribe to and a `mosquitto_pub` command that switches a
//! light, then runs until Ctrl-C. The simulated devices are listed in a built-in device file,
//! so Home Assistant shows them with names, areas and the right entity kinds.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context;

use super::common::{self, ConfigArgs};
use super::serve::Running;
use crate::bridge::Registry;
use crate::config::Config;
use crate::device::inventory::{DeviceSpec, GroupSpec, HomeSpec, Inventory, Mac};
use crate::protocol::LightState;
use crate::sim::{HomeBuilder, SimConfig, Simulator};

/// Cloud home id of the demo home (shows in topics: `cync/1000-10`).
pub const DEMO_HOME: u64 = 1000;

/// The demo home: mesh id, type id, name, area, Wi-Fi (else Bluetooth through mesh id 10).
const DEVICES: &[(u16, u16, &str, &str, bool)] = &[
    (10, 137, "Living Room Lamp", "Living Room", true),
    (11, 21, "Sofa Color Bulb", "Living Room", false),
    (12, 5, "Hallway Light", "Hallway", false),
    (13, 64, "Coffee Maker Plug", "Kitchen", true),
    (14, 81, "Bedroom Fan", "Bedroom", true),
    (15, 55, "Kitchen Dimmer", "Kitchen", true),
];
const GROUP: (u16, &str, &[u16]) = (32769, "Living Room Lights", &[10, 11]);

/// Arguments of `cync-bridge demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    /// Configuration.
    pub config: ConfigArgs,
}

/// Runs `demo`; returns the exit status.
pub fn run(args: &DemoArgs, out: &mut (impl Write + Send)) -> anyhow::Result<u8> {
    let config = match common::load_config(&args.config) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    #[cfg(feature = "embedded-broker")]
    let config = quiet_broker_logs(config);
    common::init_logging(&config)?;
    common::runtime()?.block_on(demo(config, out))
}

/// The log filter with the embedded broker's logs off unless the filter or `RUST_LOG` asks
/// for them (`broker::quiet_filter` says why).
#[cfg(feature = "embedded-broker")]
fn quiet_broker_logs(mut config: Config) -> Config {
    let rust_log = std::env::var("RUST_LOG").ok();
    config.telemetry.log_filter =
        crate::mqtt::broker::quiet_filter(&config.telemetry.log_filter, rust_log.as_deref());
    config
}

async fn demo(mut config: Config, out: &mut (impl Write + Send)) -> anyhow::Result<u8> {
    config.mqtt.enabled = true;
    let broker = broker_addr(&config)?;
    let embedded = if reachable(broker).await {
        false
    } else {
        start_embedded(broker).await?;
        true
    };
    let running = match Running::start(&config, registry()).await? {
        Ok(running) => running,
        Err(code) => return Ok(code),
    };
    let mut bridge = running.device_addr;
    if bridge.ip().is_unspecified() {
        bridge.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let sim = Simulator::start(SimConfig::new(1, vec![sim_home()?]), bridge)
        .await
        .context("cannot start the simulated home")?;
    sim.wait_ready(Duration::from_secs(60))
        .await
        .context("the simulated devices did not connect")?;

    let host = broker.ip();
    let port = broker.port();
    let base = &config.mqtt.base_topic;
    let prefix = &config.mqtt.discovery_prefix;
    writeln!(
        out,
        "cync-bridge demo: {} simulated devices are connected to the bridge on {bridge}.\n\
         Broker: mqtt://{host}:{port} ({})\n\n\
         Watch discovery and state:\n  \
         mosquitto_sub -h {host} -p {port} -v -t '{prefix}/#' -t '{base}/#'\n\n\
         Switch the living room lamp off (and back on with ON):\n  \
         mosquitto_pub -h {host} -p {port} -t '{base}/{DEMO_HOME}-10/set' -m '{{\"state\":\"OFF\"}}'\n\n\
         Metrics: http://{}/metrics   Stop: Ctrl-C",
        DEVICES.len(),
        if embedded {
            "embedded broker: nothing else was listening there"
        } else {
            "the configured broker"
        },
        running.telemetry_addr,
    )?;
    out.flush()?;

    let signal = common::shutdown_signal().await?;
    tracing::info!(signal, "shutting down");
    sim.shutdown().await;
    running.stop().await;
    Ok(0)
}

fn broker_addr(config: &Config) -> anyhow::Result<SocketAddr> {
    let s = &config.mqtt.settings;
    (s.host.as_str(), s.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve the broker host {:?}", s.host))?
        .next()
        .with_context(|| format!("the broker host {:?} has no address", s.host))
}

async fn reachable(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

#[cfg(feature = "embedded-broker")]
async fn start_embedded(addr: SocketAddr) -> anyhow::Result<()> {
    // rumqttd cannot be stopped: it ends with the process, right after `demo` returns.
    crate::mqtt::broker::start(addr).await.with_context(|| {
        format!("no broker answers on {addr} and the embedded one cannot listen there")
    })?;
    tracing::info!(%addr, "no broker was reachable: started the embedded broker");
    Ok(())
}

#[cfg(not(feature = "embedded-broker"))]
async fn start_embedded(addr: SocketAddr) -> anyhow::Result<()> {
    anyhow::bail!(
        "no MQTT broker answers on {addr}; start one (e.g. mosquitto) or build with the \
         embedded-broker feature"
    )
}

fn sim_home() -> anyhow::Result<crate::sim::SimHome> {
    let mut home = HomeBuilder::new("Demo Home", 1);
    for &(mesh, type_id, _, _, wifi) in DEVICES {
        home = if wifi {
            home.wifi(mesh, type_id)
        } else {
            home.bluetooth(mesh, type_id)
        };
    }
    let bluetooth: Vec<u16> = DEVICES.iter().filter(|d| !d.4).map(|d| d.0).collect();
    let lit = LightState {
        on: true,
        brightness: 70,
        temperature: 40,
        rgb: [0, 0, 0],
    };
    home.relays(10, &bluetooth)
        .group(GROUP.0, GROUP.2)
        .initial(10, lit)
        .initial(12, lit)
        .build()
        .context("demo home")
}

/// The device list describing [`sim_home`], as a user's export would.
fn registry() -> Registry {
    let devices: BTreeMap<u16, DeviceSpec> = DEVICES
        .iter()
        .map(|&(mesh, type_id, name, area, wifi)| {
            let mac = |prefix: u8| Mac([0x02, 0xc0, 0xde, prefix, 0x00, mesh as u8]);
            (
                mesh,
                DeviceSpec {
                    name: name.to_owned(),
                    ble_mac: Some(mac(0x00)),
                    wifi_mac: wifi.then(|| mac(0x01)),
                    type_id: Some(type_id),
                    firmware: Some("1.1.158".to_owned()),
                    is_plug: false,
                    supports_temperature: false,
                    supports_rgb: false,
                    area: Some(area.to_owned()),
                    disabled: false,
                    endpoints: BTreeMap::new(),
                },
            )
        })
        .collect();
    let groups = BTreeMap::from([(
        GROUP.0,
        GroupSpec {
            name: GROUP.1.to_owned(),
            members: GROUP.2.to_vec(),
            is_subgroup: false,
            area: None,
        },
    )]);
    let inventory = Inventory {
        homes: vec![HomeSpec {
            name: "Demo Home".to_owned(),
            id: DEMO_HOME,
            devices,
            groups,
        }],
        warnings: Vec::new(),
    };
    Registry::from_inventory(&inventory, BTreeMap::new())
}
