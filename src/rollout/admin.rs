//! `GET /admin/rollout` (the status document) and `POST /admin/rollout` (a change), for
//! `cync-bridge rollout …`. Mounted behind the telemetry endpoint's one access rule (admin token,
//! Host/Origin, CSRF for forms); the device port never reaches it.
//!
//! The request body is JSON: `{"action":"set","percent":10}`, `{"action":"mode","mode":"canary"}`,
//! `{"action":"rollback"}` or `{"action":"resume"}`. A refused change answers 400 with one line
//! naming the setting; the bridge keeps running either way.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;

use super::control::Mode;
use super::controller::Request;
use super::task::{AskError, RolloutHandle};

/// The path of the rollout's admin resource.
pub const PATH: &str = "/admin/rollout";

/// A change, as the CLI sends it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Canary at `percent`.
    Set {
        #[allow(missing_docs)]
        percent: f64,
    },
    /// The rollout mode (a name, validated here so the error names the setting).
    Mode {
        #[allow(missing_docs)]
        mode: String,
    },
    #[allow(missing_docs)]
    Rollback,
    #[allow(missing_docs)]
    Resume,
}

/// The routes, to be merged into the admin router before `AccessRule::protect`.
pub fn router(handle: RolloutHandle) -> Router {
    Router::new().route(PATH, get(status).post(change).with_state(handle))
}

/// The status as JSON (serialising plain structs cannot fail).
fn json(status: &super::status::Status) -> Response {
    let body = serde_json::to_vec(status).unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn status(State(handle): State<RolloutHandle>) -> Response {
    json(&handle.status())
}

async fn change(State(handle): State<RolloutHandle>, body: Bytes) -> Response {
    let Ok(action) = serde_json::from_slice::<Action>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "expected JSON like {\"action\":\"set\",\"percent\":10}\n",
        )
            .into_response();
    };
    let request = match action {
        Action::Set { percent } => Request::SetPercent(percent),
        Action::Mode { mode } => match mode.parse::<Mode>() {
            Ok(mode) => Request::SetMode(mode),
            Err(e) => {
                return (StatusCode::BAD_REQUEST, format!("rollout.mode: {e}\n")).into_response()
            }
        },
        Action::Rollback => Request::Rollback,
        Action::Resume => Request::Resume,
    };
    match handle.ask(request).await {
        Ok(status) => json(&status),
        Err(AskError::Refused(e)) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Err(AskError::Stopped) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the rollout controller is not running\n",
        )
            .into_response(),
    }
}
