//! The one way every command ends, shared by the whole bridge: returned to the caller,
//! counted in `tcp_comm_command_total{transport,outcome}`, and logged with its correlation id.

use std::fmt;

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutcome {
    /// The device confirmed: its `f9` response, or a report showing the new state.
    Success,
    /// The device acknowledged receipt (0x7B) but never confirmed execution.
    NoResponse,
    /// Nothing came back before the deadline.
    Timeout,
    /// No connected Wi-Fi device can reach the target.
    NoRoute,
    /// Writing to the chosen session failed.
    SendError,
    /// A newer command for the same attribute replaced it before it was sent.
    Superseded,
    /// Cancelled (shutdown, or the caller gave up).
    Cancelled,
}

impl CommandOutcome {
    /// Stable label for metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandOutcome::Success => "success",
            CommandOutcome::NoResponse => "no_response",
            CommandOutcome::Timeout => "timeout",
            CommandOutcome::NoRoute => "no_route",
            CommandOutcome::SendError => "send_error",
            CommandOutcome::Superseded => "superseded",
            CommandOutcome::Cancelled => "cancelled",
        }
    }

    /// Every outcome, for exhaustive metric initialisation and tests.
    pub const ALL: [CommandOutcome; 7] = [
        CommandOutcome::Success,
        CommandOutcome::NoResponse,
        CommandOutcome::Timeout,
        CommandOutcome::NoRoute,
        CommandOutcome::SendError,
        CommandOutcome::Superseded,
        CommandOutcome::Cancelled,
    ];
}

impl fmt::Display for CommandOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
