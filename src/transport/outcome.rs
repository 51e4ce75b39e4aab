//! The one outcome type every command in the bridge ends with.
//!
//! Why it exists: the transports (legacy now, reliable in issue 5), the MQTT side (issue 6: a
//! failed command republishes the last confirmed state) and the SLO metrics
//! (`tcp_comm_command_total{transport,outcome}`) must agree on what happened to a command, in
//! the same words. [`CommandOutcome::as_str`] is the metric label and the `toggle` JSON value;
//! those strings are an interface and never change.

use std::fmt;

use serde::Serialize;

/// How a command ended.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutcome {
    /// The device confirmed it: its `f9` response (matched by tx and echoed op) or a report
    /// showing the new state (a relay record for a Bluetooth-only device).
    Success,
    /// The device received the packet (0x7B receipt) but nothing confirmed the command before
    /// the deadline.
    NoResponse,
    /// Nothing at all came back before the deadline.
    Timeout,
    /// No session reaches the device.
    NoRoute,
    /// The command could not be handed to a session or its session ended first (queue full,
    /// session closed, write failed).
    SendError,
    /// A newer command for the same device and attribute replaced it before it was sent
    /// (issue 5's coalescing).
    Superseded,
    /// The caller gave up (shutdown, or the requester went away).
    Cancelled,
}

impl CommandOutcome {
    /// Every outcome, for exhaustive tests and dashboards.
    pub const ALL: [CommandOutcome; 7] = [
        CommandOutcome::Success,
        CommandOutcome::NoResponse,
        CommandOutcome::Timeout,
        CommandOutcome::NoRoute,
        CommandOutcome::SendError,
        CommandOutcome::Superseded,
        CommandOutcome::Cancelled,
    ];

    /// The metric label and JSON spelling.
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

    /// True only for [`CommandOutcome::Success`].
    pub fn is_success(self) -> bool {
        self == CommandOutcome::Success
    }
}

impl fmt::Display for CommandOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_json_agree_and_are_the_documented_words() {
        let words: Vec<_> = CommandOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            words,
            [
                "success",
                "no_response",
                "timeout",
                "no_route",
                "send_error",
                "superseded",
                "cancelled"
            ]
        );
        for outcome in CommandOutcome::ALL {
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{outcome}\""));
        }
    }
}
