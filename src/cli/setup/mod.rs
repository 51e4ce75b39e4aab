//! The setup page: what a first run needs at a glance (relays connected, devices seen and
//! listed, MQTT, the certificate, DNS, recent errors) and the account import (email and
//! password, the emailed code, the homes found, save) through the same client and device file
//! as `cync-bridge export`.
//!
//! Plain HTML, CSS and a little JavaScript compiled into the binary, nothing fetched from
//! elsewhere, and only relative URLs, so it works under Home Assistant's ingress path. Every
//! route sits behind the admin access rule (mounted by `serve`); the page sends the CSRF token
//! it was served with on every POST. The password travels in the login request and is kept
//! nowhere; the import found waits in memory until it is saved or replaced.

mod status;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::cloud::save::{self, DEVICE_FILE};
use crate::cloud::{self, CloudClient, CloudError, DeviceFile};
use crate::config::Config;
use crate::server::Services;

const HTML_TEXT: &str = include_str!("page.html");
const CSS_TEXT: &str = include_str!("page.css");
const JS_TEXT: &str = include_str!("page.js");

/// How many recent errors the status keeps.
const RECENT_ERRORS: usize = 8;

/// What the routes share.
struct Setup {
    config: Config,
    services: Services,
    client: CloudClient,
    csrf: String,
    /// The last import read and not yet saved.
    pending: Mutex<Option<DeviceFile>>,
    errors: Mutex<VecDeque<String>>,
    dns: status::DnsCache,
}

type Shared = Arc<Setup>;

/// The page's routes under `/setup/`; `csrf` is the access rule's token, embedded in the page.
pub fn router(config: &Config, services: &Services, csrf: &str) -> Router {
    let shared = Arc::new(Setup {
        client: CloudClient::new(config.cloud.clone()),
        config: config.clone(),
        services: services.clone(),
        csrf: csrf.to_owned(),
        pending: Mutex::new(None),
        errors: Mutex::new(VecDeque::new()),
        dns: status::DnsCache::default(),
    });
    Router::new()
        // Relative URLs in the page resolve against `…/setup/`, under ingress too.
        .route("/setup", get(|| async { Redirect::to("setup/") }))
        .route("/setup/", get(page))
        .route("/setup/page.css", get(|| asset(CSS_TEXT, "text/css")))
        .route("/setup/page.js", get(|| asset(JS_TEXT, "text/javascript")))
        .route("/setup/status", get(status_json))
        .route("/setup/code", post(request_code))
        .route("/setup/login", post(login))
        .route("/setup/save", post(save_import))
        .with_state(shared)
}

async fn asset(text: &'static str, kind: &'static str) -> Response {
    let content_type = format!("{kind}; charset=utf-8");
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

async fn page(State(setup): State<Shared>) -> Response {
    // The token is hex, so it needs no escaping inside the attribute.
    let html = HTML_TEXT.replace("{{csrf}}", &setup.csrf);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

fn reply(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

impl Setup {
    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the error for the status and answers with its sentence.
    fn fail(&self, status: StatusCode, sentence: String) -> Response {
        let stamped = format!(
            "{} {sentence}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
        );
        let mut errors = Self::lock(&self.errors);
        if errors.len() == RECENT_ERRORS {
            errors.pop_front();
        }
        errors.push_back(stamped);
        reply(status, &json!({ "error": sentence }))
    }

    fn cloud_failed(&self, error: &CloudError) -> Response {
        self.fail(StatusCode::BAD_GATEWAY, error.to_string())
    }

    fn device_path(&self) -> PathBuf {
        self.config.data_dir.join(DEVICE_FILE)
    }
}

async fn status_json(State(setup): State<Shared>) -> Response {
    let errors: Vec<String> = Setup::lock(&setup.errors).iter().rev().cloned().collect();
    let mut body = status::gather(&setup.config, &setup.services, &setup.dns).await;
    body["errors"] = json!(errors);
    reply(StatusCode::OK, &body)
}

#[derive(Deserialize)]
struct CodeRequest {
    email: String,
}

#[derive(Deserialize)]
struct LoginRequest {
    email: String,
    password: String,
    code: String,
}

fn parse<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

impl Setup {
    fn incomplete(&self) -> Response {
        let sentence = "The page sent an incomplete form; reload it and try again.";
        self.fail(StatusCode::BAD_REQUEST, sentence.to_owned())
    }
}

async fn request_code(State(setup): State<Shared>, bytes: Bytes) -> Response {
    let Some(request) = parse::<CodeRequest>(&bytes) else {
        return setup.incomplete();
    };
    if !request.email.contains('@') {
        let sentence = "Type the email you sign in to the Cync app with.".to_owned();
        return setup.fail(StatusCode::BAD_REQUEST, sentence);
    }
    match setup.client.request_code(&request.email).await {
        Ok(()) => reply(
            StatusCode::OK,
            &json!({"message": format!("The Cync cloud has emailed a code to {}.", request.email.trim())}),
        ),
        Err(error) => setup.cloud_failed(&error),
    }
}

async fn login(State(setup): State<Shared>, bytes: Bytes) -> Response {
    let Some(request) = parse::<LoginRequest>(&bytes) else {
        return setup.incomplete();
    };
    let code = request.code.trim();
    if code.is_empty() || !code.chars().all(|c| c.is_ascii_digit()) {
        let sentence = "The code is the digits from the email; type only those.".to_owned();
        return setup.fail(StatusCode::BAD_REQUEST, sentence);
    }
    let token = match setup
        .client
        .login(&request.email, &request.password, code)
        .await
    {
        Ok(token) => token,
        Err(error) => return setup.cloud_failed(&error),
    };
    let account = match setup.client.account(&token).await {
        Ok(account) => account,
        Err(error) => return setup.cloud_failed(&error),
    };
    let (file, summary) = cloud::device_file(&account);
    *Setup::lock(&setup.pending) = Some(file);
    reply(StatusCode::OK, &json!(summary))
}

async fn save_import(State(setup): State<Shared>) -> Response {
    let Some(file) = Setup::lock(&setup.pending).take() else {
        let sentence = "Nothing to save yet: log in and read your homes first.".to_owned();
        return setup.fail(StatusCode::CONFLICT, sentence);
    };
    let path = setup.device_path();
    let written = cloud::render(&file)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        .and_then(|text| save::write_device_file(&path, &text));
    let message = match &setup.config.devices.file {
        None => format!(
            "Saved to {}. The bridge picks it up within a few seconds; Home Assistant then \
             shows the names and rooms.",
            path.display()
        ),
        Some(other) => format!(
            "Saved to {}, but this bridge reads {} (devices.file); empty that setting to use \
             the import.",
            path.display(),
            other.display()
        ),
    };
    match written {
        Ok(()) => reply(
            StatusCode::OK,
            &json!({"saved": path.display().to_string(), "message": message}),
        ),
        Err(error) => {
            // Keep the import, so a fixed disk problem needs no new code.
            *Setup::lock(&setup.pending) = Some(file);
            let sentence = format!(
                "Cannot write {} ({error}); check that data_dir is writable, then save again.",
                path.display()
            );
            setup.fail(StatusCode::INTERNAL_SERVER_ERROR, sentence)
        }
    }
}
