//! Telemetry: what the bridge tells its operator about itself.
//!
//! Why it exists: every failure must have a name, a span and a metric, and the rollout controller
//! computes its SLOs from the series defined here. This module owns the metric *names* (an
//! interface kept verbatim from the original `tcp_comm_*` programme — renaming one silently breaks
//! dashboards and alert rules), their descriptions, units and histogram buckets, the telemetry
//! HTTP endpoint with the access rule for its state-changing routes, and log set-up (JSON or
//! human, correlation ids, redaction of secrets). It is the bottom layer: it imports nothing from
//! transport, server or mqtt.
//!
//! What it must never do: block or slow a hot path (recording is a few atomics behind a briefly
//! held read lock, never across an `.await`), grow without bound (label values are capped), let a
//! slow or hostile HTTP client affect anything but its own connection, or report the bridge
//! unhealthy because of something outside it (the MQTT broker) — see [`health`].
//!
//! - [`metrics`]: the [`Metrics`] registry and its recording methods (over `metrics-exporter-prometheus`).
//! - [`vocabulary`]: the fixed label values whose series exist from the start, at zero.
//! - [`health`]: [`Health`], where long-running tasks register and report liveness.
//! - [`http`]: the listener and its limits; [`endpoints`]: `/metrics` and `/healthz`.
//! - [`access`]: the admin token, Host/Origin/CSRF checks and the ingress peer rule for every
//!   state-changing route, and the client side the `cync-bridge` subcommands use.
//! - [`logging`]: `tracing` subscriber set-up, correlation ids, auth-code redaction.

pub mod access;
pub mod endpoints;
mod families;
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod rollout;
pub mod vocabulary;

pub use families::Gauge;
pub use health::{Health, Liveness, Unhealthy};
pub use http::{serve, serve_router, serve_with_limits, HttpLimits};
pub use logging::{new_correlation_id, redact_auth_code, LogFormat, LoggingError};
pub use metrics::{
    Metrics, SessionGuard, LATENCY_BUCKETS_SECONDS, MAX_DEVICE_IDS, SESSION_CLOSE_ABORTED,
};
