//! The JSON of the account API, read leniently: numbers may arrive as strings, booleans as
//! `"true"`, and any field but the ids may be missing (all seen in real answers or fixtures of
//! other clients). Unknown fields are ignored. Field names are the API's.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A number the API may send as a JSON number or a string of digits.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Number {
    #[allow(missing_docs)]
    Int(u64),
    #[allow(missing_docs)]
    Text(String),
}

impl Number {
    /// The value, when it is a non-negative integer.
    pub fn get(&self) -> Option<u64> {
        match self {
            Number::Int(n) => Some(*n),
            Number::Text(t) => t.trim().parse().ok(),
        }
    }
}

/// A flag the API may send as a boolean, `"true"`/`"false"` or `0`/`1`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Flag {
    #[allow(missing_docs)]
    Bool(bool),
    #[allow(missing_docs)]
    Int(i64),
    #[allow(missing_docs)]
    Text(String),
}

impl Flag {
    /// `true` only for `true`, non-zero numbers and `"true"`/`"yes"`/`"1"` in any case.
    pub fn get(&self) -> bool {
        match self {
            Flag::Bool(b) => *b,
            Flag::Int(n) => *n != 0,
            Flag::Text(t) => matches!(t.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "1"),
        }
    }
}

/// A string the API may send as a number (firmware `"3.8"` vs `38`, `product_id`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Text {
    #[allow(missing_docs)]
    Str(String),
    #[allow(missing_docs)]
    Int(i64),
    #[allow(missing_docs)]
    Float(f64),
}

impl Text {
    /// The value as text, `None` when empty.
    pub fn get(&self) -> Option<String> {
        let text = match self {
            Text::Str(s) => s.trim().to_owned(),
            Text::Int(n) => n.to_string(),
            Text::Float(f) => f.to_string(),
        };
        (!text.is_empty()).then_some(text)
    }
}

/// The login answer. `Debug` shows only the user id: the rest are credentials.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Token {
    /// Sent as `Access-Token` on every later call.
    pub access_token: String,
    /// Kept only with the token (no refresh is done: other clients disagree on its answer).
    #[serde(default)]
    pub refresh_token: String,
    /// Goes into the device and home list paths.
    pub user_id: u64,
    /// Lifetime in seconds from the login.
    #[serde(default)]
    pub expire_in: Option<u64>,
    /// Used only by the devices' own cloud login; kept so a saved token is complete.
    #[serde(default)]
    pub authorize: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("user_id", &self.user_id)
            .field("expire_in", &self.expire_in)
            .finish_non_exhaustive()
    }
}

/// The login answer as it arrives: `user_id` may be a string.
#[derive(Deserialize)]
pub(crate) struct RawToken {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    pub user_id: Number,
    #[serde(default)]
    pub expire_in: Option<Number>,
    #[serde(default)]
    pub authorize: Option<String>,
}

/// `{"error": {"msg": …, "code": …}}`, which the API sends with 200 and with 4xx alike.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub msg: Option<String>,
    #[serde(default)]
    pub code: Option<Number>,
}

/// One element of the account's list: a home (`source` 5) or a Wi-Fi device (`source` 1).
#[derive(Clone, Debug, Deserialize)]
pub struct AccountEntry {
    /// Home id `H`, or a Wi-Fi device's own id.
    pub id: Number,
    /// Part of the property path; some entries lack it.
    #[serde(default)]
    pub product_id: Option<Text>,
    #[allow(missing_docs)]
    #[serde(default)]
    pub name: Option<String>,
    /// 5 = home, 1 = Wi-Fi device.
    #[serde(default)]
    pub source: Option<Number>,
}

/// The entry kind that marks a Wi-Fi device rather than a home.
pub const SOURCE_WIFI_DEVICE: u64 = 1;

/// A home's properties; rows are parsed one by one so one odd row never hides a home.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Properties {
    /// One row per mesh node or endpoint.
    #[serde(default, rename = "bulbsArray")]
    pub bulbs: Vec<serde_json::Value>,
    /// Rooms and the groups inside them.
    #[serde(default, rename = "groupsArray")]
    pub groups: Vec<serde_json::Value>,
}

/// One `bulbsArray` row.
#[derive(Clone, Debug, Deserialize)]
#[allow(missing_docs)]
pub struct Bulb {
    /// `D`: home id, optional endpoint and node, in decimal digits.
    #[serde(rename = "deviceID")]
    pub device_id: Number,
    #[serde(default, rename = "displayName")]
    pub name: Option<String>,
    #[serde(default, rename = "deviceType")]
    pub device_type: Option<Number>,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default, rename = "wifiMac")]
    pub wifi_mac: Option<String>,
    #[serde(default, rename = "firmwareVersion")]
    pub firmware: Option<Text>,
}

/// One `groupsArray` row: a room, or a group inside a room (`isSubgroup`).
#[derive(Clone, Debug, Deserialize)]
#[allow(missing_docs)]
pub struct Group {
    #[serde(rename = "groupID")]
    pub id: Number,
    #[serde(default, rename = "displayName")]
    pub name: Option<String>,
    #[serde(default, rename = "isSubgroup")]
    pub is_subgroup: Option<Flag>,
    /// Local ids (`D mod H`), not full device ids.
    #[serde(default, rename = "deviceIDArray")]
    pub members: Vec<Number>,
    #[serde(default, rename = "subgroupIDArray")]
    pub subgroups: Vec<Number>,
}
