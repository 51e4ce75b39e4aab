//! The account API calls an export needs, in the order a first login makes them: email a code,
//! log in with email + password + code, list the account's entries, read each home's devices
//! and rooms. Every failure becomes a [`CloudError`]; an error body is recognised whatever the
//! HTTP status it came with (the API sends `{"error":…}` with 200 as well as with 4xx).
//!
//! The code goes to the API as a JSON string as typed, so a leading zero survives (clients that
//! send it as a number lose it). No refresh is attempted: the known clients disagree on what the
//! refresh call returns, and an expired token costs only one more emailed code.

use axum::http::{Method, StatusCode};
use rand::Rng as _;
use serde_json::{json, Value};

use super::error::{codes, CloudError, Step};
use super::http::{self, Answer, Failure};
use super::settings::CloudSettings;
use super::wire::{AccountEntry, ErrorEnvelope, Properties, RawToken, Token, SOURCE_WIFI_DEVICE};

/// The `corp_id` every known Cync client sends (the Cync app's).
pub const CORP_ID: &str = "1007d2ad150c4000";

/// Client of one account API; cheap to clone.
#[derive(Clone, Debug)]
pub struct CloudClient {
    settings: CloudSettings,
}

/// A home with its devices and rooms as the API returned them.
#[derive(Clone, Debug)]
pub struct CloudHome {
    /// `H`.
    pub id: u64,
    /// As the account names it; may be empty or shared with another home.
    pub name: String,
    #[allow(missing_docs)]
    pub properties: Properties,
}

/// Everything read from one account.
#[derive(Clone, Debug, Default)]
pub struct Account {
    /// Homes that have a device list, in the account's order.
    pub homes: Vec<CloudHome>,
    /// One line per entry that was not a home with devices, for the user.
    pub skipped: Vec<String>,
}

/// An error answer, before it is given a meaning for the step.
struct Refusal {
    status: StatusCode,
    code: Option<i64>,
    msg: Option<String>,
}

impl Refusal {
    fn detail(&self) -> String {
        let mut out = format!("HTTP {}", self.status.as_u16());
        if let Some(code) = self.code {
            out.push_str(&format!(", error {code}"));
        }
        if let Some(msg) = self.msg.as_deref().filter(|m| !m.is_empty()) {
            out.push_str(&format!(": {}", msg.chars().take(120).collect::<String>()));
        }
        out
    }

    fn expired(&self) -> bool {
        matches!(self.code, Some(codes::TOKEN_EXPIRED | codes::TOKEN_REFRESH))
            || self
                .msg
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case("access-token expired"))
            || (self.code.is_none()
                && matches!(
                    self.status,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ))
    }
}

impl CloudClient {
    #[allow(missing_docs)]
    pub fn new(settings: CloudSettings) -> Self {
        CloudClient { settings }
    }

    /// Asks the cloud to email a one-time code to `email`.
    pub async fn request_code(&self, email: &str) -> Result<(), CloudError> {
        let body = json!({"corp_id": CORP_ID, "email": email.trim(), "local_lang": "en-us"});
        let step = Step::RequestCode;
        let answer = self
            .send(
                step,
                Method::POST,
                "/v2/two_factor/email/verifycode",
                None,
                Some(&body),
            )
            .await?;
        match read(&answer) {
            Err(r) if r.code == Some(codes::UNKNOWN_USER) => Err(CloudError::UnknownUser),
            // A 2xx without an error envelope: sent (nobody reads this body).
            Err(r) if r.status.is_success() && r.code.is_none() => Ok(()),
            Err(r) => Err(CloudError::CodeRefused { detail: r.detail() }),
            Ok(_) => Ok(()),
        }
    }

    /// Logs in with the emailed code; the password is sent once and not kept.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        code: &str,
    ) -> Result<Token, CloudError> {
        let body = json!({
            "corp_id": CORP_ID,
            "email": email.trim(),
            "password": password,
            "two_factor": code.trim(),
            "resource": resource(),
        });
        let step = Step::Login;
        let answer = self
            .send(
                step,
                Method::POST,
                "/v2/user_auth/two_factor",
                None,
                Some(&body),
            )
            .await?;
        let value = read(&answer).map_err(|r| match r.code {
            Some(codes::WRONG_PASSWORD) => CloudError::WrongPassword,
            Some(codes::UNKNOWN_USER) => CloudError::UnknownUser,
            None if r.status.is_success() => CloudError::Unexpected {
                step,
                detail: r.detail(),
            },
            _ if r.status.is_server_error() => CloudError::Rejected {
                step,
                detail: r.detail(),
            },
            _ => CloudError::LoginRefused { detail: r.detail() },
        })?;
        let raw: RawToken = serde_json::from_value(value).map_err(|e| unexpected(step, &e))?;
        let user_id = raw
            .user_id
            .get()
            .ok_or_else(|| unexpected(step, &"user_id is not a number"))?;
        Ok(Token {
            access_token: raw.access_token,
            refresh_token: raw.refresh_token.unwrap_or_default(),
            user_id,
            expire_in: raw.expire_in.and_then(|n| n.get()),
            authorize: raw.authorize.unwrap_or_default(),
        })
    }

    /// The account's entries: homes and Wi-Fi devices.
    pub async fn entries(&self, token: &Token) -> Result<Vec<AccountEntry>, CloudError> {
        let step = Step::ListHomes;
        let path = format!("/v2/user/{}/subscribe/devices", token.user_id);
        let answer = self
            .send(step, Method::GET, &path, Some(&token.access_token), None)
            .await?;
        let value = read(&answer).map_err(|r| refused(step, &r))?;
        let Value::Array(items) = value else {
            return Err(unexpected(step, &"not a list"));
        };
        let mut entries = Vec::new();
        for item in items {
            // An entry without an id cannot be asked about; it is not an error for the rest.
            if let Ok(entry) = serde_json::from_value::<AccountEntry>(item) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// A home's device and room lists; `None` when the cloud says the entry has none.
    pub async fn properties(
        &self,
        token: &Token,
        home_id: u64,
        product_id: &str,
    ) -> Result<Option<Properties>, CloudError> {
        let step = Step::ReadHome;
        let path = format!("/v2/product/{product_id}/device/{home_id}/property");
        let answer = self
            .send(step, Method::GET, &path, Some(&token.access_token), None)
            .await?;
        match read(&answer) {
            Ok(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| unexpected(step, &e)),
            Err(r) if r.code == Some(codes::NO_PROPERTIES) => Ok(None),
            Err(r) => Err(refused(step, &r)),
        }
    }

    /// Lists the account and reads every home; fails when no home has devices, so an export
    /// never writes an empty device file.
    pub async fn account(&self, token: &Token) -> Result<Account, CloudError> {
        let mut account = Account::default();
        for entry in self.entries(token).await? {
            let Some(id) = entry.id.get() else { continue };
            let name = entry.name.clone().unwrap_or_default();
            let label = if name.trim().is_empty() {
                format!("entry {id}")
            } else {
                format!("{name:?} ({id})")
            };
            if entry.source.as_ref().and_then(|s| s.get()) == Some(SOURCE_WIFI_DEVICE) {
                continue;
            }
            let Some(product) = entry.product_id.as_ref().and_then(|p| p.get()) else {
                account.skipped.push(format!(
                    "{label}: no product id, so its devices cannot be read"
                ));
                continue;
            };
            match self.properties(token, id, &product).await? {
                Some(properties) if !properties.bulbs.is_empty() => {
                    account.homes.push(CloudHome {
                        id,
                        name,
                        properties,
                    });
                }
                _ => account.skipped.push(format!("{label}: no devices")),
            }
        }
        if account.homes.is_empty() {
            return Err(CloudError::NoDevices);
        }
        Ok(account)
    }

    async fn send(
        &self,
        step: Step,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, CloudError> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let timeout = self.settings.timeout;
        http::call(&self.settings.api, method, path, token, bytes, timeout)
            .await
            .map_err(|failure| match failure {
                Failure::Timeout => CloudError::Timeout { step, timeout },
                Failure::Unreachable(cause) => CloudError::Unreachable {
                    host: self.settings.api.authority(),
                    cause,
                },
            })
    }
}

/// The body as JSON, or the refusal it carries: an error envelope (any status) or a non-2xx.
/// An empty 2xx body is `null` (the code request answers with nothing useful).
fn read(answer: &Answer) -> Result<Value, Refusal> {
    let value: Option<Value> = if answer.body.iter().all(u8::is_ascii_whitespace) {
        Some(Value::Null)
    } else {
        serde_json::from_slice(&answer.body).ok()
    };
    let envelope = value
        .as_ref()
        .and_then(|v| serde_json::from_value::<ErrorEnvelope>(v.clone()).ok());
    if let Some(envelope) = envelope {
        return Err(Refusal {
            status: answer.status,
            code: envelope
                .error
                .code
                .and_then(|c| c.get())
                .and_then(|c| i64::try_from(c).ok()),
            msg: envelope.error.msg,
        });
    }
    match value {
        Some(value) if answer.status.is_success() => Ok(value),
        Some(_) => Err(Refusal {
            status: answer.status,
            code: None,
            msg: None,
        }),
        None => Err(Refusal {
            status: answer.status,
            code: None,
            msg: Some(if answer.status.is_success() {
                "the answer is not JSON".to_owned()
            } else {
                String::from_utf8_lossy(&answer.body).into_owned()
            }),
        }),
    }
}

fn refused(step: Step, r: &Refusal) -> CloudError {
    if r.expired() {
        CloudError::TokenExpired { step }
    } else if r.status.is_success() && r.code.is_none() {
        CloudError::Unexpected {
            step,
            detail: r.detail(),
        }
    } else {
        CloudError::Rejected {
            step,
            detail: r.detail(),
        }
    }
}

fn unexpected(step: Step, e: &dyn std::fmt::Display) -> CloudError {
    CloudError::Unexpected {
        step,
        detail: e.to_string(),
    }
}

/// 16 random lowercase letters: what the app sends as `resource` on login.
fn resource() -> String {
    let mut rng = rand::thread_rng();
    (0..16)
        .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
        .collect()
}
