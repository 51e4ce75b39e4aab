//! `[cloud]`, validated: where the Cync account API lives and how long one request may take.
//! Built by `config/`; plain `http://` is accepted for loopback only, so a password never
//! crosses a network in clear text (the fake cloud of the tests and a local proxy are the only
//! plain-HTTP servers this client talks to).

use std::net::IpAddr;
use std::time::Duration;

use axum::http::Uri;

/// The account API the Cync app uses (the only host every known client talks to).
pub const DEFAULT_API_URL: &str = "https://api.gelighting.com";

/// Per request, connect to last body byte. Other clients use 5–8 s; the property call of a big
/// home is the slowest answer, so a little more.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// The validated `[cloud]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudSettings {
    /// Scheme, host and port of the account API (any path is ignored: every call is `/v2/…`).
    pub api: ApiUrl,
    /// Deadline of one HTTP request.
    pub timeout: Duration,
}

impl Default for CloudSettings {
    fn default() -> Self {
        CloudSettings {
            api: ApiUrl::parse(DEFAULT_API_URL).unwrap_or(ApiUrl {
                tls: true,
                host: "api.gelighting.com".to_owned(),
                port: 443,
            }),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Where requests go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiUrl {
    /// `https` (`false`: plain HTTP to a loopback address).
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    #[allow(missing_docs)]
    pub port: u16,
}

impl ApiUrl {
    /// Parses `https://host[:port]` or `http://<loopback>[:port]`; the message says what to
    /// write instead.
    pub fn parse(text: &str) -> Result<ApiUrl, String> {
        let uri: Uri = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a URL; write e.g. {DEFAULT_API_URL}"))?;
        let host = uri
            .host()
            .ok_or_else(|| format!("{text:?} has no host; write e.g. {DEFAULT_API_URL}"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") if is_loopback(&host) => false,
            Some("http") => {
                return Err(format!(
                    "{text:?}: plain http:// is accepted for loopback addresses only (the \
                     password travels in the request); use https://"
                ))
            }
            _ => return Err(format!("{text:?} must start with https://")),
        };
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(ApiUrl { tls, host, port })
    }

    /// `host[:port]` for the `Host` header (IPv6 in brackets); the scheme's default port is
    /// left out, as browsers and other clients do.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_plain_http_only_on_loopback() {
        let default = ApiUrl::parse(DEFAULT_API_URL).unwrap();
        assert_eq!((default.tls, default.port), (true, 443));
        assert_eq!(default.host, "api.gelighting.com");
        assert_eq!(default.authority(), "api.gelighting.com");
        let local = ApiUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((local.tls, local.port), (false, 8080));
        assert_eq!(
            ApiUrl::parse("http://[::1]:9").unwrap().authority(),
            "[::1]:9"
        );
        assert!(ApiUrl::parse("http://localhost").is_ok());
        let err = ApiUrl::parse("http://192.168.1.2").unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        assert!(ApiUrl::parse("ftp://x").is_err());
        assert!(ApiUrl::parse("not a url").is_err());
    }
}
