//! A fake Cync account API on loopback for the export tests: the login with an emailed code,
//! the account's entry list and each home's properties, with the awkward cases real answers
//! and other clients' fixtures show — a code with a leading zero, error bodies sent with 200 as
//! well as with 4xx, a token that expires in the middle of an export, a home without devices,
//! two homes with one name, an unnamed home, an entry without product id, a ten-digit home id,
//! a dual outlet, a device without Wi-Fi MAC, booleans written as strings and an empty room.
//! Every answer is `application/json`, as the real API's.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

pub const EMAIL: &str = "user@example.com";
pub const PASSWORD: &str = "p@ss\"wörd";
/// Sent as typed; a client that turns it into a number loses the zero and is refused.
pub const CODE: &str = "012345";
pub const USER_ID: u64 = 123_456_789;
pub const ACCESS_TOKEN: &str = "1007d2ad150c4000-0123456789abcdefXXXX==";

/// The ten-digit home (ids are `H·1000 + n`, the outlets `H·10^6 + e·1000 + n`).
pub const HOME: u64 = 1_234_567_890;
/// A second home with the same name.
pub const TWIN: u64 = 123_456_789;
/// A home without a name.
pub const NAMELESS: u64 = 555_555_555;
/// A home whose property call answers "no properties" with status 200.
pub const EMPTY: u64 = 987_654_321;

/// How an error is sent: with HTTP 200 or with the status its code suggests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Ok200,
    Status4xx,
}

/// What the fake saw and how it behaves; tests change it between calls.
#[derive(Debug)]
pub struct World {
    pub code_requests: Vec<Value>,
    pub logins: Vec<Value>,
    /// Every request line and header block, to prove secrets stay out of URLs.
    pub requests: Vec<String>,
    /// Authenticated calls answered before the token counts as expired.
    pub token_lives_for: Option<usize>,
    pub authenticated_calls: usize,
    pub expiry_style: Style,
    /// Answer the login with 503 and a non-JSON body.
    pub login_down: bool,
}

impl Default for World {
    fn default() -> Self {
        World {
            code_requests: Vec::new(),
            logins: Vec::new(),
            requests: Vec::new(),
            token_lives_for: None,
            authenticated_calls: 0,
            expiry_style: Style::Ok200,
            login_down: false,
        }
    }
}

pub struct FakeCloud {
    pub addr: SocketAddr,
    pub world: Arc<Mutex<World>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeCloud {
    pub async fn start() -> FakeCloud {
        let world = Arc::new(Mutex::new(World::default()));
        let router = Router::new()
            .route("/v2/two_factor/email/verifycode", post(verifycode))
            .route("/v2/user_auth/two_factor", post(two_factor))
            .route("/v2/user/{user}/subscribe/devices", get(entries))
            .route("/v2/product/{product}/device/{id}/property", get(property))
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&world),
                record,
            ))
            .with_state(Arc::clone(&world));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeCloud { addr, world, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }
}

type Shared = Arc<Mutex<World>>;

async fn record(
    State(world): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut line = format!("{} {}", request.method(), request.uri());
    for (name, value) in request.headers() {
        line.push_str(&format!("\n{name}: {}", value.to_str().unwrap_or("?")));
    }
    world.lock().unwrap().requests.push(line);
    next.run(request).await
}

fn reply(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, code: u64, msg: &str) -> Response {
    reply(status, &json!({"error": {"msg": msg, "code": code}}))
}

/// Parses the body whatever the Content-Type says (clients send text/plain too).
fn body(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

async fn verifycode(State(world): State<Shared>, bytes: Bytes) -> Response {
    let request = body(&bytes);
    world.lock().unwrap().code_requests.push(request.clone());
    if request["email"] != EMAIL {
        return error(StatusCode::BAD_REQUEST, 4_041_011, "user not exists");
    }
    // The real body is unknown and unread by every client; an empty JSON object will do.
    reply(StatusCode::OK, &json!({}))
}

async fn two_factor(State(world): State<Shared>, bytes: Bytes) -> Response {
    let request = body(&bytes);
    let down = {
        let mut world = world.lock().unwrap();
        world.logins.push(request.clone());
        world.login_down
    };
    if down {
        return (StatusCode::SERVICE_UNAVAILABLE, "<html>down</html>").into_response();
    }
    if request["email"] != EMAIL || request["corp_id"] != "1007d2ad150c4000" {
        return error(StatusCode::BAD_REQUEST, 4_041_011, "user not exists");
    }
    if request["password"] != PASSWORD {
        return error(StatusCode::BAD_REQUEST, 4_001_007, "password error");
    }
    // Only the code as typed, a string with its leading zero, is right.
    if request["two_factor"] != CODE {
        return error(StatusCode::BAD_REQUEST, 4_001_010, "verify code error");
    }
    reply(
        StatusCode::OK,
        &json!({
            "access_token": ACCESS_TOKEN,
            "refresh_token": "YYYY==",
            "user_id": USER_ID,
            "expire_in": 604800,
            "authorize": "0123456789abcdef",
        }),
    )
}

/// `None` when the call may go on; otherwise the refusal to send.
fn check_token(world: &Shared, headers: &HeaderMap) -> Option<Response> {
    let mut world = world.lock().unwrap();
    if headers.get("access-token").and_then(|v| v.to_str().ok()) != Some(ACCESS_TOKEN) {
        return Some(error(
            StatusCode::FORBIDDEN,
            4_031_021,
            "Access-Token Expired",
        ));
    }
    world.authenticated_calls += 1;
    match world.token_lives_for {
        Some(calls) if world.authenticated_calls > calls => {
            let status = match world.expiry_style {
                Style::Ok200 => StatusCode::OK,
                Style::Status4xx => StatusCode::FORBIDDEN,
            };
            Some(error(status, 4_031_021, "Access-Token Expired"))
        }
        _ => None,
    }
}

async fn entries(
    State(world): State<Shared>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = check_token(&world, &headers) {
        return refusal;
    }
    if user != USER_ID.to_string() {
        return error(StatusCode::FORBIDDEN, 4_031_021, "Access-Token Expired");
    }
    let home = |id: u64, name: &str| {
        json!({"id": id, "product_id": "1234", "name": name, "source": 5, "access_key": 777,
               "authorize_code": "x", "is_online": false, "is_active": true, "role": 0,
               "groups": "", "firmware_version": 0, "mcu_version": 0})
    };
    reply(
        StatusCode::OK,
        &json!([
            home(HOME, "Home"),
            {"id": 1111, "product_id": "5678", "name": "", "source": 1,
             "mac": "786DEB28EAA5", "is_online": true},
            home(TWIN, "Home"),
            home(NAMELESS, ""),
            home(EMPTY, "Empty Home"),
            // An entry without product_id: its properties cannot be asked for.
            {"id": 2222, "name": "Old Home", "source": 5},
        ]),
    )
}

async fn property(
    State(world): State<Shared>,
    Path((product, id)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = check_token(&world, &headers) {
        return refusal;
    }
    let properties = match (product.as_str(), id) {
        ("1234", HOME) => main_home(),
        ("1234", TWIN) => one_device(TWIN, "Cabin Light", 137),
        ("1234", NAMELESS) => one_device(NAMELESS, "Garage Plug", 64),
        ("1234", EMPTY) => {
            return error(StatusCode::OK, 4_041_009, "device property not exists");
        }
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                4_041_009,
                "device property not exists",
            )
        }
    };
    reply(StatusCode::OK, &properties)
}

fn bulb(id: u64, name: &str, device_type: Value, mac: &str) -> Value {
    json!({"deviceID": id, "displayName": name, "deviceType": device_type, "mac": mac,
           "firmwareVersion": "1.3.160", "switchID": 0, "showOnHome": true})
}

fn main_home() -> Value {
    let h = HOME;
    let mut lamp = bulb(h * 1000 + 1, "Office Lamp", json!(147), "78:6D:EB:28:EA:A4");
    lamp["wifiMac"] = json!("78:6D:EB:28:EA:A5");
    // Boolean-looking strings, as in a real dump.
    lamp["occupancyEnable"] = json!("true");
    lamp["allowOTAUpdates"] = json!("true");
    // No wifiMac key at all.
    let hall = bulb(h * 1000 + 2, "Hall Bulb", json!(21), "78:6D:EB:28:EA:B0");
    let mut plug = bulb(h * 1000 + 3, "Porch Plug", json!(67), "34:13:43:70:D7:5E");
    plug["wifiMac"] = json!("34:13:43:78:D9:2E");
    let mut left = bulb(
        h * 1_000_000 + 1003,
        "Left Outlet",
        json!(67),
        "34:13:43:70:D7:5E",
    );
    left["wifiMac"] = json!("01:02:03:04:05:06");
    left["firmwareVersion"] = json!("Unknown");
    let mut right = bulb(
        h * 1_000_000 + 2003,
        "Right Outlet",
        json!(67),
        "34:13:43:70:D7:5E",
    );
    right["wifiMac"] = json!("01:02:03:04:05:06");
    right["firmwareVersion"] = json!("Unknown");
    // The type as a string, the name empty.
    let fan = bulb(h * 1000 + 4, "", json!("81"), "78:6D:EB:28:EA:C0");
    json!({
        "bulbsArray": [lamp, hall, right, plug, left, fan],
        "groupsArray": [
            {"groupID": 1, "displayName": "Office", "isSubgroup": false,
             "deviceIDArray": [1, 2], "subgroupIDArray": [3]},
            {"groupID": 3, "displayName": "Desk", "isSubgroup": "true",
             "deviceIDArray": [1], "subgroupIDArray": []},
            // Both outlets, one of them twice, and a device the home does not have.
            {"groupID": 2, "displayName": "Porch", "isSubgroup": false,
             "deviceIDArray": [1003, 2003, 2003, 99]},
            {"groupID": 4, "displayName": "Attic", "isSubgroup": false,
             "deviceIDArray": [], "subgroupIDArray": []},
        ],
        "lightShows": [], "sceneArray": [], "schedules": [], "version": "1.0",
        "autoOtaEnabled": "true",
    })
}

fn one_device(home: u64, name: &str, device_type: u64) -> Value {
    json!({
        "bulbsArray": [bulb(home * 1000 + 7, name, json!(device_type), "78:6D:EB:28:EA:D0")],
        "groupsArray": [],
    })
}
