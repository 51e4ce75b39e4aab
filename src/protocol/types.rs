//! Small value types shared by every packet: the packet type byte, the 4-byte peer id and the
//! 3-byte msg id (`docs/protocol.md#addressing-fields`).
//!
//! These are plain `Copy` values so the hot decode path never allocates.

use std::fmt;

/// The 4-byte id at packet offsets 5..8: a device's own id (0x23, 0x43, 0x83) or the session id
/// chosen by whoever sent the 0xA3 (0x73, 0x7B). Opaque and never escaped; real ids contain 0x7E.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PeerId(pub [u8; 4]);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a:02x}{b:02x}{c:02x}{d:02x}")
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

/// The 3-byte msg id at packet offsets 9..11: a BE16 per-connection counter followed by `00`
/// (`docs/protocol.md#msg-id`). It lives in the header, outside the frame, so it is never escaped
/// and is matched verbatim.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MsgId(pub [u8; 3]);

impl MsgId {
    /// The msg id every 0x43 carries (381/381 in the 2025 home capture): it is not a counter.
    pub const INFO: MsgId = MsgId([0x01, 0x01, 0x06]);

    /// The msg id the cloud would send for counter value `n` (`hi lo 00`).
    pub fn from_counter(n: u16) -> Self {
        let [hi, lo] = n.to_be_bytes();
        MsgId([hi, lo, 0])
    }

    /// The BE16 counter in bytes 0..1.
    pub fn counter(self) -> u16 {
        u16::from_be_bytes([self.0[0], self.0[1]])
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.0;
        write!(f, "{a:02x}{b:02x}{c:02x}")
    }
}

impl fmt::Debug for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MsgId({self})")
    }
}

/// Every packet type seen in real traffic (`docs/protocol.md#packet-types`). A type byte outside
/// this list is not an error: it decodes as [`crate::protocol::Packet::Unknown`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum PacketType {
    /// Phone-app login (app → cloud only); a device never sends it.
    AppLogin = 0x13,
    /// Cloud's answer to an app login.
    AppLoginAck = 0x18,
    /// Device hello with its id and auth code.
    Hello = 0x23,
    /// Server's answer to 0x23.
    HelloAck = 0x28,
    /// Device info: ping, 19-byte status records, TLV block or diagnostic string.
    Info = 0x43,
    /// Server's answer to 0x43.
    InfoAck = 0x48,
    /// Data channel (framed) in both directions: commands, responses, notifications.
    Data = 0x73,
    /// Cloud-only late notice for a msg id.
    Notice = 0x78,
    /// Transport receipt for a 0x73, both directions.
    Receipt = 0x7B,
    /// Device status / notification / firmware (framed).
    Status = 0x83,
    /// Server's answer to 0x83, echoing its msg id.
    StatusAck = 0x88,
    /// Session open ("want to control") sent to a device.
    SessionOpen = 0xA3,
    /// Cloud-only late notice for an 0xA3 (to the app).
    SessionNotice = 0xA8,
    /// Device's 1024-byte answer to 0xA3.
    SessionReply = 0xAB,
    /// Device connect / time request.
    Connect = 0xC3,
    /// Server's answer to 0xC3 carrying local date and time.
    ConnectAck = 0xC8,
    /// Device heartbeat after ~21 s of idleness.
    Heartbeat = 0xD3,
    /// Server's answer to 0xD3.
    HeartbeatAck = 0xD8,
}

impl PacketType {
    /// `None` for a byte outside the table; [`crate::protocol::decode`] keeps such packets as
    /// `Packet::Unknown`.
    pub fn from_byte(byte: u8) -> Option<Self> {
        use PacketType::*;
        Some(match byte {
            0x13 => AppLogin,
            0x18 => AppLoginAck,
            0x23 => Hello,
            0x28 => HelloAck,
            0x43 => Info,
            0x48 => InfoAck,
            0x73 => Data,
            0x78 => Notice,
            0x7B => Receipt,
            0x83 => Status,
            0x88 => StatusAck,
            0xA3 => SessionOpen,
            0xA8 => SessionNotice,
            0xAB => SessionReply,
            0xC3 => Connect,
            0xC8 => ConnectAck,
            0xD3 => Heartbeat,
            0xD8 => HeartbeatAck,
            _ => return None,
        })
    }

    /// The accepted body lengths (header bytes 3..4) for this type. Fixed-size types accept one
    /// value; the hello tolerates other auth-code lengths; framed types need at least the id,
    /// msg id and a minimal frame. Used by the framer to tell a real header from junk.
    pub fn body_len_range(self) -> (usize, usize) {
        use PacketType::*;
        match self {
            AppLogin => (9, 64),
            Hello => (9, 64),
            AppLoginAck | HelloAck => (2, 2),
            InfoAck | StatusAck => (3, 3),
            Notice | Receipt | SessionOpen => (7, 7),
            SessionNotice => (8, 8),
            SessionReply => (1019, 1019),
            Connect => (1, 1),
            ConnectAck => (11, 11),
            Heartbeat | HeartbeatAck => (0, 0),
            Info => (7, usize::MAX),
            Data | Status => (7 + crate::protocol::frame::MIN_FRAME_LEN, usize::MAX),
        }
    }
}
