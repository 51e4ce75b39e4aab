//! The read-only routes: `GET /metrics` (Prometheus text) and `GET /healthz` (liveness of the
//! bridge's own tasks). They stay open to anyone who can reach the port: they change nothing, and
//! Prometheus and container supervisors carry no credentials.
//!
//! Only `GET` (and the `HEAD` axum derives from it) are routed; other methods get 405 with
//! `Allow`, unknown paths 404, each with a one-line plain-text body.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{Health, Metrics};

/// Prometheus' classic text format, which `Metrics::render` writes.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The router for `/metrics` and `/healthz`; merge admin routes into it before serving.
pub fn router(metrics: Metrics, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(scrape).with_state(metrics))
        .route("/healthz", get(healthz).with_state(health))
        .fallback(not_found)
}

async fn scrape(State(metrics): State<Metrics>) -> Response {
    let headers = [
        (header::CONTENT_TYPE, METRICS_CONTENT_TYPE),
        (header::CACHE_CONTROL, "no-store"),
    ];
    (headers, metrics.render()).into_response()
}

async fn healthz(State(health): State<Health>) -> Response {
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    match health.check() {
        Ok(()) => (no_store, "ok\n").into_response(),
        Err(unhealthy) => (
            StatusCode::SERVICE_UNAVAILABLE,
            no_store,
            format!("unhealthy: {unhealthy}\n"),
        )
            .into_response(),
    }
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}
