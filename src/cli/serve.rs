//! `cync-bridge serve`: run the device server and the telemetry endpoint until SIGINT/SIGTERM.
//!
//! Start-up order: configuration (exit 2 on a bad value), logs, the device listener (TLS
//! certificate generated on first start), `/metrics` and `/healthz`. Shutdown: one cancellation
//! token ends the accept loop, every session (each closes visibly) and the telemetry endpoint;
//! the task tracker is then awaited with a deadline. The MQTT bridge (discovery, state,
//! commands) runs beside the device server unless `mqtt.enabled = false`; a broker that is down
//! never stops the device side.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::common::EXIT_CONFIG;
use super::common::{self, ConfigArgs};
use crate::bridge::{self, BridgeSettings, Registry};
use crate::config::Config;
use crate::device::StateStore;
use crate::server::{DeviceServer, Services};
use crate::telemetry::{self, Health, Metrics};
use crate::transport::SelectedTransport;

/// Arguments of `cync-bridge serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    /// Configuration.
    pub config: ConfigArgs,
}

/// Runs `serve`; returns the exit status.
pub fn run(args: &ServeArgs) -> anyhow::Result<u8> {
    let config = match common::load_config(&args.config) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    common::init_logging(&config)?;
    common::runtime()?.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<u8> {
    let metrics = Metrics::new();
    let health = Health::new();
    let services = Services::new(&config, metrics.clone());
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let registry = match Registry::load(&config.devices) {
        Ok(registry) => registry,
        Err(error) => {
            eprintln!("cync-bridge: device list: {error}");
            return Ok(EXIT_CONFIG);
        }
    };
    for warning in &registry.warnings {
        tracing::warn!(%warning, "device list");
    }

    let server = DeviceServer::bind(&config, &services, shutdown.clone()).await?;
    let endpoint = TcpListener::bind(config.telemetry.listen)
        .await
        .with_context(|| {
            format!(
                "cannot serve /metrics and /healthz on {}: is another cync-bridge running? \
                 Set telemetry.listen / CYNC_TELEMETRY__LISTEN",
                config.telemetry.listen
            )
        })?;
    let endpoint_addr = endpoint.local_addr()?;
    server.spawn(&tracker, &health);
    tracker.spawn(telemetry::serve(
        endpoint,
        metrics,
        health.clone(),
        shutdown.clone(),
    ));
    if config.mqtt.enabled {
        let transport = Arc::new(SelectedTransport::start(
            config.transport.mode,
            config.transport.reliable,
            &services,
            &tracker,
            shutdown.clone(),
        ));
        let settings = BridgeSettings::from_config(&config);
        if let Err(error) = bridge::spawn(
            settings,
            registry,
            &services,
            transport,
            &tracker,
            shutdown.clone(),
        ) {
            eprintln!("cync-bridge: mqtt: {error}");
            shutdown.cancel();
            common::drain(&tracker).await;
            return Ok(EXIT_CONFIG);
        }
        tracing::info!(broker = %config.mqtt.url, "mqtt bridge started");
    } else {
        tracing::info!("mqtt disabled (mqtt.enabled = false): device side only");
    }
    tracker.spawn(log_state_changes(
        Arc::clone(&services.state),
        shutdown.clone(),
    ));
    tracing::info!(telemetry = %endpoint_addr, "cync-bridge serving");

    let signal = common::shutdown_signal().await?;
    tracing::info!(signal, "shutting down");
    shutdown.cancel();
    common::drain(&tracker).await;
    tracing::info!("stopped");
    Ok(0)
}

/// Logs every device state change at debug level (MQTT publishes them). A lag only loses log
/// lines; the store itself is always current.
async fn log_state_changes(state: Arc<StateStore>, shutdown: CancellationToken) {
    let mut changes = state.subscribe();
    loop {
        let change = tokio::select! {
            () = shutdown.cancelled() => return,
            // cancel-safe: broadcast recv loses nothing when dropped before completing.
            change = changes.recv() => change,
        };
        match change {
            Ok(change) => tracing::debug!(
                device = %change.key,
                on = change.current.light.on,
                brightness = change.current.light.brightness,
                temperature = change.current.light.temperature,
                online = change.current.online,
                source = change.source.as_str(),
                "device state"
            ),
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "state change log fell behind");
            }
            Err(RecvError::Closed) => return,
        }
    }
}
