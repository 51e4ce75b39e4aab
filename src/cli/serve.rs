//! `cync-bridge serve`: run the device server, the MQTT bridge and the telemetry endpoint until
//! SIGINT/SIGTERM.
//!
//! Start-up order: configuration (exit 2 on a bad value), logs, the device list (exit 2 when it
//! cannot be read), the device listener (TLS certificate generated on first start), `/metrics`
//! and `/healthz`, then the MQTT bridge unless `mqtt.enabled = false` — a broker that is down
//! never stops the device side. Shutdown: one cancellation token ends the accept loop, every
//! session (each closes visibly), the bridge (which publishes `offline`) and the telemetry
//! endpoint; the task tracker is then awaited with a deadline.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::common::{self, ConfigArgs, EXIT_CONFIG};
use crate::bridge::{self, Registry};
use crate::config::Config;
use crate::device::StateStore;
use crate::server::{DeviceServer, Services};
use crate::telemetry::access::AccessRule;
use crate::telemetry::{self, Health, Metrics};

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
    let registry = match load_registry(&config) {
        Ok(registry) => registry,
        Err(code) => return Ok(code),
    };
    let running = match Running::start(&config, registry).await? {
        Ok(running) => running,
        Err(code) => return Ok(code),
    };
    let signal = common::shutdown_signal().await?;
    tracing::info!(signal, "shutting down");
    running.stop().await;
    Ok(0)
}

/// Reads the device list; on error prints it and returns exit status 2.
pub(crate) fn load_registry(config: &Config) -> Result<Registry, u8> {
    match Registry::load(&config.devices) {
        Ok(registry) => {
            for warning in &registry.warnings {
                tracing::warn!(%warning, "device list");
            }
            Ok(registry)
        }
        Err(error) => {
            eprintln!("cync-bridge: device list: {error}");
            Err(EXIT_CONFIG)
        }
    }
}

/// A running bridge: device server, telemetry endpoint and (unless disabled) the MQTT bridge.
pub(crate) struct Running {
    /// Shared services (routes, state, metrics).
    pub services: Services,
    /// Where devices connect.
    pub device_addr: SocketAddr,
    /// `/metrics` and `/healthz`.
    pub telemetry_addr: SocketAddr,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Running {
    /// Starts everything `config` asks for. `Ok(Err(code))`: a configuration problem was
    /// printed and the process should exit with `code`.
    pub(crate) async fn start(
        config: &Config,
        registry: Registry,
    ) -> anyhow::Result<Result<Running, u8>> {
        let metrics = Metrics::new();
        let health = Health::new();
        let services = Services::new(&config.state, metrics.clone());
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();

        // The admin token exists from the first start on, so subcommands can always read it.
        let access = AccessRule::load_or_create(
            &config.data_dir,
            config.telemetry.allowed_hosts.clone(),
            config.telemetry.ingress_peers.resolve(),
        )
        .context("cannot prepare the admin token for the telemetry endpoint")?;
        let server =
            DeviceServer::bind(&config.device_server(), &services, shutdown.clone()).await?;
        let device_addr = server.local_addr()?;
        let endpoint = TcpListener::bind(config.telemetry.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot serve /metrics and /healthz on {}: is another cync-bridge running? \
                     Set telemetry.listen / CYNC_TELEMETRY__LISTEN",
                    config.telemetry.listen
                )
            })?;
        let telemetry_addr = endpoint.local_addr()?;
        server.spawn(&tracker, &health);
        let rollout = crate::rollout::task::start(
            &config.rollout,
            config.transport.reliable,
            &services,
            &tracker,
            shutdown.clone(),
        );
        // State-changing endpoints (rollout admin, setup page) are added to this router.
        let admin = axum::Router::new()
            .merge(crate::rollout::admin::router(rollout.handle.clone()))
            .merge(super::setup::router(config, &services, access.csrf_token()));
        let router =
            telemetry::endpoints::router(metrics, health.clone()).merge(access.protect(admin));
        tracker.spawn(telemetry::serve_router(
            endpoint,
            router,
            shutdown.clone(),
            telemetry::HttpLimits::default(),
        ));
        tracker.spawn(log_state_changes(
            Arc::clone(&services.state),
            shutdown.clone(),
        ));
        let running = Running {
            services,
            device_addr,
            telemetry_addr,
            tracker,
            shutdown,
        };
        if config.mqtt.enabled {
            let commands = bridge::Commands {
                transport: rollout.transport,
                rollout: Some(rollout.handle),
            };
            if let Err(error) = bridge::spawn(
                config.bridge_settings(),
                registry,
                &running.services,
                commands,
                &running.tracker,
                running.shutdown.clone(),
            ) {
                eprintln!("cync-bridge: mqtt: {error}");
                running.stop().await;
                return Ok(Err(EXIT_CONFIG));
            }
            tracing::info!(broker = %config.mqtt.url, "mqtt bridge started");
        } else {
            tracing::info!("mqtt disabled (mqtt.enabled = false): device side only");
        }
        tracing::info!(devices = %device_addr, telemetry = %telemetry_addr, "cync-bridge serving");
        Ok(Ok(running))
    }

    /// Stops everything and waits (bounded) for the tasks to finish.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        common::drain(&self.tracker).await;
        tracing::info!("stopped");
    }
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
