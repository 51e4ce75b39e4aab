//! The one access rule for every state-changing HTTP endpoint (the rollout admin endpoint, the
//! setup page): mount them with [`AccessRule::protect`]; `/metrics` and `/healthz` stay open.
//!
//! Why it exists: the telemetry port is bound to 0.0.0.0 in the add-on and in Compose, so being
//! reachable proves nothing, and a browser on the operator's network can be made to send requests
//! to it by any web page. The checks, in order:
//!
//! 1. `Host` must be an IP literal, `localhost`, or one of the configured host names — otherwise
//!    403. A DNS-rebinding page reaches us under *its* name, which is none of those.
//! 2. `Origin`, when present, must name the same host and port as `Host` — otherwise 403
//!    (a cross-site request from a browser).
//! 3. The caller must be authenticated — otherwise 401: either the TCP peer is one of the ingress
//!    peers (Home Assistant's Supervisor, 172.30.32.2, which has authenticated the user; a header
//!    could be forged by anyone, a peer address on the Supervisor's network cannot), or the request
//!    carries `Authorization: Bearer <admin token>` (see [`token`]).
//! 4. A form — an unsafe method with a body type a cross-site page can send without a CORS
//!    preflight (`application/x-www-form-urlencoded`, `multipart/form-data`, `text/plain`, or
//!    none) — and every unsafe request through ingress must carry the CSRF token (bound to the
//!    admin token, [`AccessRule::csrf_token`]) in the `x-csrf-token` header or, for urlencoded
//!    forms, the `csrf_token` field — otherwise 403. Pages embed it in their forms; a bearer
//!    client sending JSON needs none, since browsers never attach a bearer token on their own.
//!
//! Requests from an ingress peer skip checks 1–3: the Supervisor has authenticated the user, it
//! rewrites `Host` to the add-on's own name, and the browser's `Origin` is Home Assistant's; so
//! every unsafe request through ingress needs the CSRF token instead (check 4).
//!
//! Refusals are a short plain-text reason; nothing about the token reaches a log or a response.

pub mod client;
pub mod token;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

pub use token::{AdminToken, TokenError, ADMIN_TOKEN_FILE};

/// Home Assistant Supervisor's address on the add-on network, from which ingress requests come.
pub const DEFAULT_INGRESS_PEERS: [IpAddr; 1] = [IpAddr::V4(Ipv4Addr::new(172, 30, 32, 2))];

/// The ingress peers to trust by default: [`DEFAULT_INGRESS_PEERS`] when running as a Home
/// Assistant add-on (the Supervisor sets `SUPERVISOR_TOKEN` in every add-on's environment; only
/// its presence is read), none otherwise — in Compose or on a LAN, some other container or host
/// could hold 172.30.32.2.
pub fn default_ingress_peers() -> Vec<IpAddr> {
    if std::env::var_os("SUPERVISOR_TOKEN").is_some() {
        DEFAULT_INGRESS_PEERS.to_vec()
    } else {
        Vec::new()
    }
}

/// Header carrying the CSRF token (for scripts and multipart forms).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Field of an urlencoded form carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";

/// Largest urlencoded form body read to find the CSRF field; larger gets 413.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The access rule; cheap to clone (one `Arc`).
#[derive(Clone, Debug)]
pub struct AccessRule {
    inner: Arc<Rule>,
}

#[derive(Debug)]
struct Rule {
    token: AdminToken,
    csrf: String,
    allowed_hosts: Vec<String>,
    ingress_peers: Vec<IpAddr>,
}

impl AccessRule {
    /// The rule with the token from `data_dir` (created on first start), extra `allowed_hosts`
    /// (names besides IP literals and `localhost`, e.g. `homeassistant.local`; matched without
    /// port, case-insensitively) and `ingress_peers` (usually [`DEFAULT_INGRESS_PEERS`]; empty
    /// outside the add-on).
    pub fn load_or_create(
        data_dir: &Path,
        allowed_hosts: Vec<String>,
        ingress_peers: Vec<IpAddr>,
    ) -> Result<Self, TokenError> {
        let token = AdminToken::load_or_create(data_dir)?;
        let csrf = token.csrf_token()?;
        let allowed_hosts = allowed_hosts
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        Ok(Self {
            inner: Arc::new(Rule {
                token,
                csrf,
                allowed_hosts,
                ingress_peers,
            }),
        })
    }

    /// The CSRF token a page must put in its forms (field [`CSRF_FIELD`]).
    pub fn csrf_token(&self) -> &str {
        &self.inner.csrf
    }

    /// `admin` with this rule in front of every route it has; merge the result into the router
    /// given to [`serve_router`](super::http::serve_router).
    /// Unknown paths stay 404 without any check (the rule guards routes, not the fallback).
    pub fn protect(&self, admin: Router) -> Router {
        if !admin.has_routes() {
            // axum refuses (panics on) a route layer over no routes; nothing to guard anyway.
            return admin;
        }
        admin.route_layer(middleware::from_fn_with_state(self.clone(), guard))
    }
}

/// A refusal: status and a one-line reason.
fn refuse(status: StatusCode, reason: &'static str) -> Response {
    let mut response = (status, reason).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

async fn guard(State(rule): State<AccessRule>, request: Request, next: Next) -> Response {
    let rule = &*rule.inner;
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| canonical(addr.ip()));
    let via_ingress = peer.is_some_and(|ip| rule.ingress_peers.contains(&ip));
    let headers = request.headers();
    if !via_ingress {
        if let Err(reason) = rule.direct_request_ok(headers) {
            return refuse(reason.0, reason.1);
        }
    }
    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let form = form_kind(headers);
    if !unsafe_method || (form == FormKind::NotAForm && !via_ingress) {
        return next.run(request).await;
    }
    if header_str(headers, CSRF_HEADER).is_some_and(|t| rule.csrf_ok(t)) {
        return next.run(request).await;
    }
    if form != FormKind::UrlEncoded {
        return refuse(StatusCode::FORBIDDEN, "missing or wrong CSRF token\n");
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "form too large\n");
    };
    let csrf_ok = form_urlencoded::parse(&bytes)
        .any(|(name, value)| name == CSRF_FIELD && rule.csrf_ok(&value));
    if !csrf_ok {
        return refuse(StatusCode::FORBIDDEN, "missing or wrong CSRF token\n");
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Why a request was refused: status and reason.
struct Refusal(StatusCode, &'static str);

impl Rule {
    /// Checks 1–3 for a request that did not come through ingress.
    fn direct_request_ok(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(host) = header_str(headers, header::HOST) else {
            return Err(Refusal(StatusCode::FORBIDDEN, "missing Host header\n"));
        };
        if !self.host_allowed(host) {
            return Err(Refusal(StatusCode::FORBIDDEN, "Host not allowed\n"));
        }
        if headers.contains_key(header::ORIGIN)
            && !header_str(headers, header::ORIGIN).is_some_and(|o| origin_matches(o, host))
        {
            return Err(Refusal(
                StatusCode::FORBIDDEN,
                "Origin does not match Host\n",
            ));
        }
        if !self.bearer_ok(headers) {
            return Err(Refusal(
                StatusCode::UNAUTHORIZED,
                "missing or wrong admin token\n",
            ));
        }
        Ok(())
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = strip_port(host).to_ascii_lowercase();
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        literal.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || self.allowed_hosts.contains(&name)
    }

    fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        header_str(headers, header::AUTHORIZATION)
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|candidate| self.token.matches(candidate.trim()))
    }

    fn csrf_ok(&self, candidate: &str) -> bool {
        candidate.len() == self.csrf.len()
            && openssl::memcmp::eq(candidate.as_bytes(), self.csrf.as_bytes())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum FormKind {
    NotAForm,
    UrlEncoded,
    Other,
}

/// Classifies the body by the content types a cross-site page may send without a preflight.
fn form_kind(headers: &HeaderMap) -> FormKind {
    let Some(content_type) = header_str(headers, header::CONTENT_TYPE) else {
        return FormKind::Other;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => FormKind::UrlEncoded,
        "multipart/form-data" | "text/plain" | "" => FormKind::Other,
        _ => FormKind::NotAForm,
    }
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `host[:port]` without the port (`[v6]:port` keeps its brackets).
fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the same authority as the `Host` header,
/// default ports made explicit on both sides.
fn origin_matches(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let with_port = |a: &str| {
        let a = a.to_ascii_lowercase();
        if strip_port(&a).len() == a.len() {
            format!("{a}:{default_port}")
        } else {
            a
        }
    };
    with_port(authority) == with_port(host)
}

/// An IPv4 peer seen on a dual-stack socket as `::ffff:a.b.c.d` is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_origins_are_compared_without_default_ports() {
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("example:80"), "example");
        assert_eq!(strip_port("example"), "example");
        assert!(origin_matches("http://127.0.0.1:9464", "127.0.0.1:9464"));
        assert!(origin_matches("http://LocalHost", "localhost:80"));
        assert!(!origin_matches("https://localhost", "localhost:80"));
        assert!(!origin_matches("http://evil.example", "127.0.0.1:9464"));
        assert!(!origin_matches("null", "127.0.0.1:9464"));
    }

    #[test]
    fn a_mapped_ipv4_peer_is_its_ipv4_address() {
        let mapped: IpAddr = "::ffff:172.30.32.2".parse().unwrap();
        assert_eq!(canonical(mapped), DEFAULT_INGRESS_PEERS[0]);
    }
}
