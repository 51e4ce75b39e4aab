//! One complete packet ⇄ typed value (`docs/protocol.md#packet-header` and the per-type
//! sections after it): the 5-byte header (type, two zero
//! bytes, BE16 body length) and the per-type body.
//!
//! Decoding borrows from the input and allocates nothing unless a frame arrived stuffed. An
//! unknown type byte is a value ([`Packet::Unknown`]), not an error: new firmware must not break
//! a session. A framed packet whose frame is damaged still yields its peer id and msg id, so the
//! session can acknowledge it (devices expect every 0x83 to be answered) while counting the error.

use super::content::InfoContent;
use super::error::{DecodeError, FrameError, HexPreview};
use super::frame::{decode_frame, Frame};
use super::time::{ClockTime, CLOCK_BODY_LEN};
use super::types::{MsgId, PacketType, PeerId};

/// Type byte, two zero bytes, BE16 body length.
pub const HEADER_LEN: usize = 5;
/// Largest body the bridge accepts (the largest real packet is the 1,019-byte 0xAB body).
pub const MAX_BODY_LEN: usize = 4096;

/// The 0x23 hello (`docs/protocol.md#hello-and-auth`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Hello<'a> {
    /// Byte 5 (`03` in every observation; UNKNOWN, perhaps a version).
    pub version: u8,
    /// The device's own id, used as peer id on this connection.
    pub device_id: PeerId,
    /// The per-device auth code (16 ASCII hex chars). A secret: never log it whole.
    pub auth_code: &'a [u8],
    /// Bytes after the auth code (`00 00 3c` in every observation; UNKNOWN).
    pub trailer: &'a [u8],
}

/// A framed packet (0x73, 0x83): addressing fields and the frame, which may be damaged.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Framed<'a> {
    /// Peer id (own id for 0x83, session id for 0x73).
    pub peer: PeerId,
    #[allow(missing_docs)]
    pub msg: MsgId,
    /// The frame, or why it could not be read.
    pub frame: Result<Frame<'a>, FrameError>,
}

/// One variant per type of `docs/protocol.md#packet-types`, plus `Unknown` for any other type
/// byte. Fields without a doc are the addressing fields of `docs/protocol.md#addressing-fields`.
#[derive(Clone, PartialEq, Eq, Debug)]
#[allow(missing_docs)]
pub enum Packet<'a> {
    /// 0x13 phone-app login (refused by the bridge).
    AppLogin {
        /// The app's id (offsets 6..9).
        app_id: PeerId,
    },
    /// 0x18.
    AppLoginAck,
    /// 0x23 device hello.
    Hello(Hello<'a>),
    /// 0x28.
    HelloAck,
    /// 0x43 device info.
    Info {
        /// The device's own id.
        peer: PeerId,
        /// Always `01 01 06` in practice.
        msg: MsgId,
        content: InfoContent<'a>,
    },
    /// 0x48 (echoes msg id bytes 0..1 then `00`).
    InfoAck {
        /// The three body bytes.
        msg: MsgId,
    },
    /// 0x73 data channel.
    Data(Framed<'a>),
    /// 0x78 cloud notice.
    Notice {
        peer: PeerId,
        /// Msg id bytes 0..1 of the message it is about.
        msg: [u8; 2],
        /// Status byte (`05`, `0a` seen; UNKNOWN).
        status: u8,
    },
    /// 0x7B receipt: an echo of offsets 5..11 of the 0x73 it acknowledges.
    Receipt { peer: PeerId, msg: MsgId },
    /// 0x83 device status / notification / firmware.
    Status(Framed<'a>),
    /// 0x88: an exact echo of the 0x83's msg id.
    StatusAck { msg: MsgId },
    /// 0xA3 session open.
    SessionOpen {
        /// The session id chosen by the sender (the bridge uses the device's own id).
        peer: PeerId,
        msg: MsgId,
    },
    /// 0xA8 cloud-only notice; not interpreted (`docs/protocol.md#cloud-notices`).
    SessionNotice { body: &'a [u8] },
    /// 0xAB: the device's 1024-byte answer to 0xA3, echoing its session id and msg id.
    SessionReply {
        peer: PeerId,
        msg: MsgId,
        /// The rest of the body (`07 00 09 xlink_dev`, zeros, trailer).
        rest: &'a [u8],
    },
    /// 0xC3 connect / time request.
    Connect {
        /// The body byte (`0c` in every observation).
        payload: u8,
    },
    /// 0xC8 local date and time.
    ConnectAck(ClockTime),
    /// 0xD3.
    Heartbeat,
    /// 0xD8.
    HeartbeatAck,
    /// A type byte this codec does not know.
    Unknown { kind: u8, body: &'a [u8] },
}

impl Packet<'_> {
    /// The type byte; for `Unknown`, the byte as received.
    pub fn kind(&self) -> u8 {
        use PacketType as T;
        let t = match self {
            Packet::AppLogin { .. } => T::AppLogin,
            Packet::AppLoginAck => T::AppLoginAck,
            Packet::Hello(_) => T::Hello,
            Packet::HelloAck => T::HelloAck,
            Packet::Info { .. } => T::Info,
            Packet::InfoAck { .. } => T::InfoAck,
            Packet::Data(_) => T::Data,
            Packet::Notice { .. } => T::Notice,
            Packet::Receipt { .. } => T::Receipt,
            Packet::Status(_) => T::Status,
            Packet::StatusAck { .. } => T::StatusAck,
            Packet::SessionOpen { .. } => T::SessionOpen,
            Packet::SessionNotice { .. } => T::SessionNotice,
            Packet::SessionReply { .. } => T::SessionReply,
            Packet::Connect { .. } => T::Connect,
            Packet::ConnectAck(_) => T::ConnectAck,
            Packet::Heartbeat => T::Heartbeat,
            Packet::HeartbeatAck => T::HeartbeatAck,
            Packet::Unknown { kind, .. } => return *kind,
        };
        t as u8
    }

    /// Peer id and msg id when the packet carries both (offsets 5..11).
    pub fn addressing(&self) -> Option<(PeerId, MsgId)> {
        match self {
            Packet::Info { peer, msg, .. }
            | Packet::Receipt { peer, msg }
            | Packet::SessionOpen { peer, msg }
            | Packet::SessionReply { peer, msg, .. } => Some((*peer, *msg)),
            Packet::Data(f) | Packet::Status(f) => Some((f.peer, f.msg)),
            _ => None,
        }
    }
}

/// Reads the body length from a header; `None` if fewer than 5 bytes or bytes 1..2 are non-zero.
pub fn body_len(header: &[u8]) -> Option<usize> {
    match header {
        [_, 0, 0, hi, lo, ..] => Some(usize::from(u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}

fn peer(b: &[u8]) -> PeerId {
    PeerId([b[0], b[1], b[2], b[3]])
}

fn msg(b: &[u8]) -> MsgId {
    MsgId([b[0], b[1], b[2]])
}

/// Decodes one complete packet (header included). The slice must be exactly one packet, as the
/// framer delivers it.
pub fn decode(packet: &[u8]) -> Result<Packet<'_>, DecodeError> {
    if packet.len() < HEADER_LEN {
        return Err(DecodeError::TooShort {
            preview: HexPreview::of(packet),
        });
    }
    let Some(declared) = body_len(packet) else {
        return Err(DecodeError::BadHeader {
            preview: HexPreview::of(packet),
        });
    };
    let body = &packet[HEADER_LEN..];
    if declared != body.len() {
        return Err(DecodeError::LengthMismatch {
            declared,
            available: body.len(),
            preview: HexPreview::of(packet),
        });
    }
    let kind = packet[0];
    let Some(ptype) = PacketType::from_byte(kind) else {
        return Ok(Packet::Unknown { kind, body });
    };
    decode_body(ptype, kind, body, packet)
}

/// The body of a packet whose header and length already checked out; `packet` only feeds the
/// error's hex preview.
fn decode_body<'a>(
    ptype: PacketType,
    kind: u8,
    body: &'a [u8],
    packet: &[u8],
) -> Result<Packet<'a>, DecodeError> {
    let too_short = |need: usize| DecodeError::BodyTooShort {
        kind,
        len: body.len(),
        need,
        preview: HexPreview::of(packet),
    };
    if body.len() < min_body(ptype) {
        return Err(too_short(min_body(ptype)));
    }
    use PacketType as T;
    Ok(match ptype {
        T::AppLogin => Packet::AppLogin {
            app_id: peer(&body[1..5]),
        },
        T::AppLoginAck => Packet::AppLoginAck,
        T::Hello => {
            let auth_len = usize::from(u16::from_be_bytes([body[5], body[6]]));
            if body.len() < 7 + auth_len {
                return Err(too_short(7 + auth_len));
            }
            Packet::Hello(Hello {
                version: body[0],
                device_id: peer(&body[1..5]),
                auth_code: &body[7..7 + auth_len],
                trailer: &body[7 + auth_len..],
            })
        }
        T::HelloAck => Packet::HelloAck,
        T::Info => Packet::Info {
            peer: peer(body),
            msg: msg(&body[4..]),
            content: InfoContent::classify(&body[7..]),
        },
        T::InfoAck => Packet::InfoAck { msg: msg(body) },
        T::StatusAck => Packet::StatusAck { msg: msg(body) },
        T::Data | T::Status => {
            let framed = Framed {
                peer: peer(body),
                msg: msg(&body[4..]),
                frame: decode_frame(&body[7..]),
            };
            if ptype == T::Data {
                Packet::Data(framed)
            } else {
                Packet::Status(framed)
            }
        }
        T::Notice => Packet::Notice {
            peer: peer(body),
            msg: [body[4], body[5]],
            status: body[6],
        },
        T::Receipt => Packet::Receipt {
            peer: peer(body),
            msg: msg(&body[4..]),
        },
        T::SessionOpen => Packet::SessionOpen {
            peer: peer(body),
            msg: msg(&body[4..]),
        },
        T::SessionNotice => Packet::SessionNotice { body },
        T::SessionReply => Packet::SessionReply {
            peer: peer(body),
            msg: msg(&body[4..]),
            rest: &body[7..],
        },
        T::Connect => Packet::Connect { payload: body[0] },
        T::ConnectAck => {
            let Ok(fixed) = <&[u8; CLOCK_BODY_LEN]>::try_from(&body[..CLOCK_BODY_LEN]) else {
                return Err(too_short(CLOCK_BODY_LEN));
            };
            Packet::ConnectAck(ClockTime::from_body(fixed))
        }
        T::Heartbeat => Packet::Heartbeat,
        T::HeartbeatAck => Packet::HeartbeatAck,
    })
}

/// The shortest body each type's fixed fields need (a Hello also needs its auth code).
fn min_body(ptype: PacketType) -> usize {
    use PacketType as T;
    match ptype {
        T::AppLogin => 5,
        T::InfoAck | T::StatusAck => 3,
        T::Hello
        | T::Info
        | T::Data
        | T::Status
        | T::Notice
        | T::Receipt
        | T::SessionOpen
        | T::SessionReply => 7,
        T::Connect => 1,
        T::ConnectAck => CLOCK_BODY_LEN,
        T::AppLoginAck | T::HelloAck | T::SessionNotice | T::Heartbeat | T::HeartbeatAck => 0,
    }
}
