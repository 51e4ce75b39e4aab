//! Everything that can go wrong talking to the Cync account API, each as one sentence that says
//! what happened and what to do. Shown as is by `cync-bridge export` and the setup page, so no
//! variant carries a password, a code or a token.

use std::time::Duration;

/// Which call failed, in words a user recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Asking the cloud to email a one-time code.
    RequestCode,
    /// Logging in with email, password and code.
    Login,
    /// Listing the account's homes.
    ListHomes,
    /// Reading one home's devices and rooms.
    ReadHome,
}

impl Step {
    fn words(self) -> &'static str {
        match self {
            Step::RequestCode => "the request for a login code",
            Step::Login => "the login",
            Step::ListHomes => "the list of homes",
            Step::ReadHome => "a home's device list",
        }
    }
}

/// Cloud error codes whose meaning is known from other clients.
pub mod codes {
    /// `Access-Token Expired`.
    pub const TOKEN_EXPIRED: i64 = 4_031_021;
    /// The token must be refreshed (treated like expiry: log in again).
    pub const TOKEN_REFRESH: i64 = 4_031_022;
    /// Wrong password.
    pub const WRONG_PASSWORD: i64 = 4_001_007;
    /// No account with this email.
    pub const UNKNOWN_USER: i64 = 4_041_011;
    /// Not a home, or a home without devices.
    pub const NO_PROPERTIES: i64 = 4_041_009;
}

/// Why a cloud call gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// DNS, TCP or TLS failed before any answer.
    #[error(
        "Cannot reach the Cync cloud at {host} ({cause}); check this machine's internet \
         connection and DNS (and cloud.api_url), then try again."
    )]
    Unreachable {
        #[allow(missing_docs)]
        host: String,
        /// The OS or TLS message.
        cause: String,
    },
    /// No complete answer in time.
    #[error(
        "The Cync cloud did not answer {} within {} s; try again in a minute.",
        step.words(),
        timeout.as_secs()
    )]
    Timeout {
        #[allow(missing_docs)]
        step: Step,
        #[allow(missing_docs)]
        timeout: Duration,
    },
    /// The code request was refused (unknown email, or the cloud is unhappy).
    #[error(
        "The Cync cloud refused to email a login code ({detail}); check that the email is the \
         one you sign in to the Cync app with."
    )]
    CodeRefused {
        /// Status and the cloud's own message.
        detail: String,
    },
    /// No account with this email.
    #[error(
        "The Cync cloud knows no account with this email; use the email you sign in to the Cync \
         app with."
    )]
    UnknownUser,
    /// Wrong password (the cloud said so by its error code).
    #[error(
        "The Cync cloud says the password is wrong; check it (it is the Cync app's password)."
    )]
    WrongPassword,
    /// Login refused without a reason we can tell apart: the cloud answers a wrong code and a
    /// wrong password alike.
    #[error(
        "The Cync cloud did not accept the password and code ({detail}); check the password and \
         type the code from the newest email (request a new code if it is older than a few \
         minutes)."
    )]
    LoginRefused {
        /// Status and the cloud's own message.
        detail: String,
    },
    /// The token expired (or was revoked) between login and the last call.
    #[error(
        "The Cync login expired while reading {}; log in again (a new code will be emailed).",
        step.words()
    )]
    TokenExpired {
        #[allow(missing_docs)]
        step: Step,
    },
    /// An error answer this client has no special meaning for.
    #[error(
        "The Cync cloud answered {} with an error ({detail}); try again later, and report it \
         if it keeps happening.",
        step.words()
    )]
    Rejected {
        #[allow(missing_docs)]
        step: Step,
        /// Status, error code and message.
        detail: String,
    },
    /// A 2xx answer this client cannot read.
    #[error(
        "The Cync cloud's answer to {} was not in the expected form ({detail}); please report \
         it with the cync-bridge version.",
        step.words()
    )]
    Unexpected {
        #[allow(missing_docs)]
        step: Step,
        /// What did not parse.
        detail: String,
    },
    /// The account lists no home with devices.
    #[error(
        "The Cync account has no home with devices; add the devices in the Cync app first, then \
         export again."
    )]
    NoDevices,
}

impl CloudError {
    /// Whether logging in again (with a new code) is the fix.
    pub fn needs_login(&self) -> bool {
        matches!(self, CloudError::TokenExpired { .. })
    }
}
