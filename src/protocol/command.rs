//! Mesh commands carried in `f8` request frames (`docs/protocol.md#commands`): what the bridge
//! sends to drive a light, switch, plug or fan, and what the simulator decodes on the other side.
//!
//! Most commands wrap a Bluetooth-mesh message: `sno(3) src(2) dst(2) mesh_op 11 02 params…`.
//! The mesh-info request, mesh ack and mode follow-up have their own fixed payloads.

use super::frame::{FrameDir, FrameSpec};

/// Bytes 8..9 of every mesh message (vendor id 0x0211, inferred).
const VENDOR: [u8; 2] = [0x11, 0x02];

/// The colour part of a light command (`f0` op, `docs/protocol.md#brightness-and-colour`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum LightColor {
    /// White temperature 0 (warm, 2000 K) … 100 (cool, 7000 K).
    Temperature(u8),
    /// Full colour; temperature byte 0xFE selects RGB mode.
    Rgb([u8; 3]),
}

/// A command the bridge can send, with its mesh target where it has one.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Command {
    /// Power on/off (frame op `d0`, N = 0x0D). Target is a device or group id.
    Power {
        /// Mesh id or group id.
        target: u16,
        #[allow(missing_docs)]
        on: bool,
    },
    /// Brightness and/or colour (frame op `f0`, N = 0x10). `None` fields are sent as `ff`
    /// ("leave unchanged", inferred from the three captured variants). Fans use brightness as
    /// their speed (`docs/protocol.md#fan-speed`).
    Light {
        /// Mesh id or group id.
        target: u16,
        /// Brightness 0–100.
        brightness: Option<u8>,
        #[allow(missing_docs)]
        color: Option<LightColor>,
    },
    /// Start a built-in effect (frame op `e2`, N = 0x0E); the two bytes come from the catalog.
    Effect {
        /// Mesh id or group id.
        target: u16,
        /// The effect's two identifying bytes.
        effect: [u8; 2],
    },
    /// Wired switch mode (frame op `8e`, mesh op `f7`, N = 0x0C): 1 traditional, 2 smart.
    SwitchMode {
        /// Mesh id of the switch.
        target: u16,
        #[allow(missing_docs)]
        mode: u8,
    },
    /// Broadcast query (frame op `8e`, mesh op `f7`, N = 0x0B) that makes nodes announce.
    Query {
        /// Usually 0xFFFF (broadcast).
        target: u16,
        /// Query parameter (`21` captured).
        param: u8,
    },
    /// "List all devices" request (frame op `52`, payload `00 00 ff ff 00 00`).
    MeshInfoRequest,
    /// Sent after a mesh-info response (frame op `af`, payload `af 01`); meaning UNKNOWN.
    MeshAck,
    /// Sent by the cloud after a mode change (frame op `ea`, empty payload).
    ModeFollowUp,
}

/// Largest payload a command produces (the `f0` light command: 16 bytes).
pub const MAX_COMMAND_PAYLOAD: usize = 16;

impl Command {
    /// `B[5]` of the frame; [`Command::decode`] takes it back to tell the commands apart.
    pub fn frame_op(&self) -> u8 {
        match self {
            Command::Power { .. } => 0xD0,
            Command::Light { .. } => 0xF0,
            Command::Effect { .. } => 0xE2,
            Command::SwitchMode { .. } | Command::Query { .. } => 0x8E,
            Command::MeshInfoRequest => 0x52,
            Command::MeshAck => 0xAF,
            Command::ModeFollowUp => 0xEA,
        }
    }

    /// The mesh id or group id the command addresses, if it has one.
    pub fn target(&self) -> Option<u16> {
        match *self {
            Command::Power { target, .. }
            | Command::Light { target, .. }
            | Command::Effect { target, .. }
            | Command::SwitchMode { target, .. }
            | Command::Query { target, .. } => Some(target),
            Command::MeshInfoRequest | Command::MeshAck | Command::ModeFollowUp => None,
        }
    }

    /// The same command addressed to `target` (commands without a target are unchanged).
    pub fn with_target(self, target: u16) -> Command {
        match self {
            Command::Power { on, .. } => Command::Power { target, on },
            Command::Light {
                brightness, color, ..
            } => Command::Light {
                target,
                brightness,
                color,
            },
            Command::Effect { effect, .. } => Command::Effect { target, effect },
            Command::SwitchMode { mode, .. } => Command::SwitchMode { target, mode },
            Command::Query { param, .. } => Command::Query { target, param },
            other => other,
        }
    }

    /// True when the command carries a mesh sequence number (sno) in its payload.
    pub fn has_sno(&self) -> bool {
        self.target().is_some()
    }

    /// True for commands that set a state, so sending them twice is harmless (retry-safe).
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Command::Power { .. }
                | Command::Light { .. }
                | Command::SwitchMode { .. }
                | Command::MeshInfoRequest
        )
    }

    /// The command the encoder will actually send: RGB channels equal to 0x7D/0x7E are nudged
    /// (125 → 124, 126 → 127) so the frame needs no stuffing (`docs/protocol.md#escaping`). The
    /// change is invisible to the eye; callers that wait for a state report compare against this
    /// value.
    pub fn avoiding_markers(self) -> Command {
        match self {
            Command::Light {
                target,
                brightness,
                color: Some(LightColor::Rgb(rgb)),
            } => Command::Light {
                target,
                brightness,
                color: Some(LightColor::Rgb(rgb.map(nudge))),
            },
            other => other,
        }
    }

    /// Writes the un-escaped frame payload into `buf` and returns its length.
    /// `sno` is the 24-bit mesh sequence (ignored by commands without one).
    pub fn write_payload(&self, sno: u32, buf: &mut [u8; MAX_COMMAND_PAYLOAD]) -> usize {
        let mut put = |at: usize, bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at + bytes.len()
        };
        let (target, mesh_op, params_end) = match *self {
            Command::Power { target, on } => (target, 0xD0, put(10, &[u8::from(on), 0, 0])),
            Command::Light {
                target,
                brightness,
                color,
            } => {
                let bri = brightness.unwrap_or(0xFF);
                let params = match color {
                    None => [0x01, bri, 0xFF, 0xFF, 0xFF, 0xFF],
                    Some(LightColor::Temperature(t)) => [0x01, bri, t, 0, 0, 0],
                    Some(LightColor::Rgb([r, g, b])) => [0x01, bri, 0xFE, r, g, b],
                };
                (target, 0xF0, put(10, &params))
            }
            Command::Effect { target, effect } => {
                (target, 0xE2, put(10, &[0x07, 0x01, effect[0], effect[1]]))
            }
            Command::SwitchMode { target, mode } => (target, 0xF7, put(10, &[0x01, mode])),
            Command::Query { target, param } => (target, 0xF7, put(10, &[param])),
            Command::MeshInfoRequest => return put(0, &[0, 0, 0xFF, 0xFF, 0, 0]),
            Command::MeshAck => return put(0, &[0xAF, 0x01]),
            Command::ModeFollowUp => return 0,
        };
        let s = sno.to_le_bytes();
        let t = target.to_le_bytes();
        put(
            0,
            &[
                s[0], s[1], s[2], 0, 0, t[0], t[1], mesh_op, VENDOR[0], VENDOR[1],
            ],
        );
        params_end
    }

    /// Recognises a request frame's payload as a command; `None` for anything else.
    pub fn decode(op: u8, payload: &[u8]) -> Option<(Command, Option<u32>)> {
        match (op, payload.len()) {
            (0x52, 6) => Some((Command::MeshInfoRequest, None)),
            (0xAF, 2) => Some((Command::MeshAck, None)),
            (0xEA, 0) => Some((Command::ModeFollowUp, None)),
            _ => {
                let msg = MeshMessage::parse(payload)?;
                let p = msg.params;
                let target = msg.dst;
                let cmd = match (op, msg.mesh_op, p.len()) {
                    (0xD0, 0xD0, 3) => Command::Power {
                        target,
                        on: p[0] != 0,
                    },
                    (0xF0, 0xF0, 6) if p[0] == 0x01 => Command::Light {
                        target,
                        brightness: (p[1] != 0xFF).then_some(p[1]),
                        color: match p[2] {
                            0xFF => None,
                            0xFE => Some(LightColor::Rgb([p[3], p[4], p[5]])),
                            t => Some(LightColor::Temperature(t)),
                        },
                    },
                    (0xE2, 0xE2, 4) => Command::Effect {
                        target,
                        effect: [p[2], p[3]],
                    },
                    (0x8E, 0xF7, 2) => Command::SwitchMode { target, mode: p[1] },
                    (0x8E, 0xF7, 1) => Command::Query {
                        target,
                        param: p[0],
                    },
                    _ => return None,
                };
                Some((cmd, Some(msg.sno)))
            }
        }
    }

    /// The frame for this command with the given tx and sno.
    pub fn frame_spec<'b>(
        &self,
        tx: u32,
        sno: u32,
        buf: &'b mut [u8; MAX_COMMAND_PAYLOAD],
    ) -> FrameSpec<'b> {
        let len = self.write_payload(sno, buf);
        FrameSpec {
            firmware_start: false,
            tx,
            dir: FrameDir::Request,
            op: self.frame_op(),
            payload: &buf[..len],
        }
    }
}

fn nudge(channel: u8) -> u8 {
    match channel {
        0x7D => 0x7C,
        0x7E => 0x7F,
        c => c,
    }
}

/// The Bluetooth-mesh message layout shared by commands and notifications
/// (`docs/protocol.md#mesh-messages`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MeshMessage<'a> {
    /// Mesh sequence number (LE24).
    pub sno: u32,
    /// `00 00` in every command a server sent.
    pub src: u16,
    /// Destination mesh address (device, group, or 0xFFFF).
    pub dst: u16,
    /// Mesh opcode (P7).
    pub mesh_op: u8,
    /// Opcode-specific parameters after `11 02`.
    pub params: &'a [u8],
}

impl<'a> MeshMessage<'a> {
    /// Parses the mesh layout; `None` when the payload is too short.
    pub fn parse(payload: &'a [u8]) -> Option<Self> {
        if payload.len() < 10 {
            return None;
        }
        Some(MeshMessage {
            sno: u32::from_le_bytes([payload[0], payload[1], payload[2], 0]),
            src: u16::from_le_bytes([payload[3], payload[4]]),
            dst: u16::from_le_bytes([payload[5], payload[6]]),
            mesh_op: payload[7],
            params: &payload[10..],
        })
    }
}
