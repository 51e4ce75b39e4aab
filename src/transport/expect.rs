//! Which attribute a command sets, for coalescing: a newer command for the same attribute of a
//! device supersedes a queued older one. (What state confirms a command is the state store's
//! `Expectation`.)

use super::reliable::CommandId;
use crate::protocol::Command;

/// The attribute a command sets, for coalescing. Without coalescing every command gets its own
/// key, so nothing is ever superseded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Attribute {
    Power,
    Brightness,
    Color,
    Effect,
    Mode,
    Unique(CommandId),
}

pub(super) fn attribute(command: &Command, id: CommandId, coalesce: bool) -> Attribute {
    if !coalesce {
        return Attribute::Unique(id);
    }
    match command {
        Command::Power { .. } => Attribute::Power,
        Command::Light { color: Some(_), .. } => Attribute::Color,
        Command::Light { .. } => Attribute::Brightness,
        Command::Effect { .. } => Attribute::Effect,
        Command::SwitchMode { .. } => Attribute::Mode,
        _ => Attribute::Unique(id),
    }
}
