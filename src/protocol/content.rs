//! Typed readings of what frames and 0x43 packets carry (`docs/protocol.md#status-layouts`): device
//! state reports, node notifications, firmware versions, command responses, mesh-info records, 0x43
//! status records, TLV blocks and diagnostic strings.
//!
//! Every reader borrows from the packet and never allocates; iterators walk fixed-size records.

use super::command::{Command, MeshMessage};
use super::frame::{Frame, FrameDir};

/// Colour temperature byte meaning "RGB mode" in reports (`docs/protocol.md#state-report`).
pub const TEMP_RGB_MODE: u8 = 0xFE;
/// Colour temperature byte meaning "an effect is running" (a legacy add-on comment, never
/// captured: `docs/protocol.md#effects`).
pub const TEMP_EFFECT: u8 = 129;

/// A light's state as devices report it, shared by every kind of report.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, Default)]
pub struct LightState {
    #[allow(missing_docs)]
    pub on: bool,
    /// Brightness 0–100 (kept while off; never infer on/off from it).
    pub brightness: u8,
    /// Colour temperature 0–100, [`TEMP_RGB_MODE`] or [`TEMP_EFFECT`].
    pub temperature: u8,
    /// RGB, meaningful when `temperature == TEMP_RGB_MODE`.
    pub rgb: [u8; 3],
}

/// `fa db 13`: a Wi-Fi device reporting its own state (`docs/protocol.md#state-report`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StateReport {
    /// Per-report counter (P0 increments per report; P1/P2 not understood).
    pub counter: [u8; 3],
    /// Reporting device's mesh id.
    pub src: u16,
    /// Mesh id the state belongs to (equals `src` in every capture).
    pub dst: u16,
    /// "In mesh" flag; false only right after a (re)join.
    pub online: bool,
    #[allow(missing_docs)]
    pub state: LightState,
}

/// What kind of node notification (`fa xx 14`, mesh op `ea`,
/// `docs/protocol.md#node-notification`) this is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NotificationKind {
    /// `<node> a1 …`: a node announcing itself.
    Announce,
    /// `<node> 81 <cfg>`: a wired switch reporting its mode (`50` traditional, `b0` smart).
    SwitchMode {
        #[allow(missing_docs)]
        config: u8,
    },
    /// A kind byte no capture shows; kept so it can be logged.
    Other(u8),
}

/// `fa xx 14`: a node notification, relayed by every bridge that hears it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NodeNotification {
    /// Source mesh address.
    pub src: u16,
    /// Destination (0xFFFF broadcast for announcements).
    pub dst: u16,
    /// The node the notification is about (param 0).
    pub node: u8,
    #[allow(missing_docs)]
    pub kind: NotificationKind,
    /// All ten parameter bytes.
    pub params: [u8; 10],
}

/// Which firmware a firmware frame describes (`docs/protocol.md#firmware-frame`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FirmwareKind {
    /// `00`: network ("home") firmware.
    Network,
    /// `01`: the device's own firmware.
    Device,
    /// A kind byte no capture shows.
    Other(u8),
}

/// A firmware version frame (start byte 0x00).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FirmwareInfo<'a> {
    #[allow(missing_docs)]
    pub kind: FirmwareKind,
    /// The ASCII digits up to the first NUL (`11158`).
    pub digits: &'a str,
}

impl FirmwareInfo<'_> {
    /// Dotted form used by the Cync app: `11158` → `1.1.158` (legacy formatting).
    pub fn version(&self) -> String {
        let d = self.digits;
        if d.len() >= 3 {
            format!("{}.{}.{}", &d[..1], &d[1..2], &d[2..])
        } else {
            d.to_string()
        }
    }
}

/// The 6-byte header and 24-byte records of a mesh-info response
/// (`docs/protocol.md#mesh-info-records`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MeshInfo<'a> {
    /// Header bytes (`04 00 00 00 04 00` in the one capture; meaning UNKNOWN).
    pub header: &'a [u8],
    records: &'a [u8],
}

/// Six little-endian 32-bit words (`docs/protocol.md#mesh-info-records`).
pub const MESH_RECORD_LEN: usize = 24;
/// The legacy add-on also reads the first record at this offset.
pub const MESH_HEADER_LEN: usize = 6;

impl<'a> MeshInfo<'a> {
    /// Splits a mesh-info payload; `None` when it is shorter than the header.
    pub fn parse(payload: &'a [u8]) -> Option<Self> {
        if payload.len() < MESH_HEADER_LEN {
            return None;
        }
        let (header, records) = payload.split_at(MESH_HEADER_LEN);
        Some(MeshInfo { header, records })
    }

    /// The complete records; a partial trailing record is ignored (see [`Self::trailing`]).
    pub fn records(&self) -> impl Iterator<Item = MeshRecord> + 'a {
        self.records
            .chunks_exact(MESH_RECORD_LEN)
            .map(MeshRecord::from_bytes)
    }

    /// Bytes after the last complete record (0 in every capture).
    pub fn trailing(&self) -> usize {
        self.records.len() % MESH_RECORD_LEN
    }
}

/// One device in a mesh-info response.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MeshRecord {
    /// Mesh id (LE16; legacy reads byte 0 only).
    pub mesh_id: u16,
    /// Device type — only filled in for the first record, the bridge itself (0 otherwise).
    pub device_type: u8,
    #[allow(missing_docs)]
    pub state: LightState,
}

impl MeshRecord {
    fn from_bytes(r: &[u8]) -> Self {
        MeshRecord {
            mesh_id: u16::from_le_bytes([r[0], r[1]]),
            device_type: r[2],
            state: LightState {
                on: r[8] != 0,
                brightness: r[12],
                temperature: r[16],
                rgb: [r[20], r[21], r[22]],
            },
        }
    }

    /// The 24 bytes of this record, as a bridge would send them.
    pub fn to_bytes(&self) -> [u8; MESH_RECORD_LEN] {
        let mut r = [0u8; MESH_RECORD_LEN];
        let [lo, hi] = self.mesh_id.to_le_bytes();
        r[0] = lo;
        r[1] = hi;
        r[2] = self.device_type;
        r[3] = 0x01;
        r[6] = self.device_type;
        r[7] = 0x01;
        r[8] = u8::from(self.state.on);
        r[12] = self.state.brightness;
        r[16] = self.state.temperature;
        r[20..23].copy_from_slice(&self.state.rgb);
        r
    }
}

/// What a decoded frame means.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameContent<'a> {
    /// `fa db 13` own-state report.
    StateReport(StateReport),
    /// `fa xx 14` node notification.
    Notification(NodeNotification),
    /// Firmware version frame.
    Firmware(FirmwareInfo<'a>),
    /// `f9 <op> 01 00 <status>`: a device accepting a request.
    Response {
        /// The request's frame op, echoed.
        op: u8,
        /// The single payload byte (`00` in every capture).
        status: u8,
    },
    /// `f9 52 …`: the mesh-info record list.
    MeshInfo(MeshInfo<'a>),
    /// `f8 …`: a request the bridge (or the cloud) sends.
    Command {
        #[allow(missing_docs)]
        command: Command,
        /// Its mesh sequence number, if it has one.
        sno: Option<u32>,
    },
    /// Something this codec does not interpret (still a valid frame).
    Other,
}

impl Frame<'_> {
    /// Never fails: a valid frame this codec cannot read is `Other`.
    pub fn content(&self) -> FrameContent<'_> {
        let p: &[u8] = &self.payload;
        if self.firmware_start {
            return firmware(p).map_or(FrameContent::Other, FrameContent::Firmware);
        }
        match self.dir {
            FrameDir::Notify => notify(p).unwrap_or(FrameContent::Other),
            FrameDir::Response if p.len() == 1 => FrameContent::Response {
                op: self.op,
                status: p[0],
            },
            FrameDir::Response if self.op == 0x52 => {
                MeshInfo::parse(p).map_or(FrameContent::Other, FrameContent::MeshInfo)
            }
            FrameDir::Request => match Command::decode(self.op, p) {
                Some((command, sno)) => FrameContent::Command { command, sno },
                None => FrameContent::Other,
            },
            _ => FrameContent::Other,
        }
    }
}

fn notify(p: &[u8]) -> Option<FrameContent<'_>> {
    let msg = MeshMessage::parse(p)?;
    let q = msg.params;
    match (msg.mesh_op, q.len()) {
        (0xDB, 9) => Some(FrameContent::StateReport(StateReport {
            counter: [p[0], p[1], p[2]],
            src: msg.src,
            dst: msg.dst,
            online: q[0] != 0,
            state: LightState {
                on: q[1] != 0,
                brightness: q[2],
                temperature: q[3],
                rgb: [q[4], q[5], q[6]],
            },
        })),
        (0xEA, 10) => {
            let mut params = [0u8; 10];
            params.copy_from_slice(q);
            let kind = match q[1] {
                0xA1 => NotificationKind::Announce,
                0x81 => NotificationKind::SwitchMode { config: q[2] },
                other => NotificationKind::Other(other),
            };
            Some(FrameContent::Notification(NodeNotification {
                src: msg.src,
                dst: msg.dst,
                node: q[0],
                kind,
                params,
            }))
        }
        _ => None,
    }
}

fn firmware(p: &[u8]) -> Option<FirmwareInfo<'_>> {
    if p.len() < 14 || p[7] != 0xEA {
        return None;
    }
    let kind = match p[13] {
        0 => FirmwareKind::Network,
        1 => FirmwareKind::Device,
        other => FirmwareKind::Other(other),
    };
    let rest = &p[14..];
    let digits_len = rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    let digits = std::str::from_utf8(&rest[..digits_len]).ok()?;
    Some(FirmwareInfo { kind, digits })
}

/// One 19-byte status record of a 0x43 packet (`docs/protocol.md#status-records`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StatusRecord {
    /// 5 = the reporter's own state, 6, 7, … = relayed records.
    pub index: u8,
    /// Mesh id (one byte on the wire).
    pub mesh_id: u8,
    #[allow(missing_docs)]
    pub state: LightState,
    /// Valid/online flag (0 = stale/offline per the original author).
    pub online: bool,
    /// `00` self, `14` relayed, `ff` seen for a bulb grouped with a dimmer; meaning UNKNOWN.
    pub flags: u8,
    /// Mesh id of the device that produced the record.
    pub reporter: u8,
}

/// Three bytes, then the 16 that `00 10` at offsets 1..2 announces (inferred).
pub const STATUS_RECORD_LEN: usize = 19;
/// Record index of the reporter's own state.
pub const SELF_RECORD_INDEX: u8 = 5;

impl StatusRecord {
    fn from_bytes(r: &[u8]) -> Self {
        StatusRecord {
            index: r[0],
            mesh_id: r[3],
            state: LightState {
                on: r[4] != 0,
                brightness: r[5],
                temperature: r[6],
                rgb: [r[7], r[8], r[9]],
            },
            online: r[10] != 0,
            flags: r[11],
            reporter: r[12],
        }
    }

    /// The 19 wire bytes of this record.
    pub fn to_bytes(&self) -> [u8; STATUS_RECORD_LEN] {
        let mut r = [0u8; STATUS_RECORD_LEN];
        r[0] = self.index;
        r[2] = 0x10;
        r[3] = self.mesh_id;
        r[4] = u8::from(self.state.on);
        r[5] = self.state.brightness;
        r[6] = self.state.temperature;
        r[7..10].copy_from_slice(&self.state.rgb);
        r[10] = u8::from(self.online);
        r[11] = self.flags;
        r[12] = self.reporter;
        r
    }

    /// True for the reporter's own record.
    pub fn is_self(&self) -> bool {
        self.index == SELF_RECORD_INDEX
    }
}

/// One `key type len value` entry of a 0x43 TLV block
/// (`docs/protocol.md#tlv-block-and-diagnostic`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Tlv<'a> {
    /// Key (`c2`..`c6` seen; meanings UNKNOWN).
    pub key: u8,
    /// Value type (`20` = BE integer, `90` = string).
    pub kind: u8,
    #[allow(missing_docs)]
    pub value: &'a [u8],
}

/// What a 0x43 packet carries after its id and msg id (`docs/protocol.md#info-packets`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InfoContent<'a> {
    /// No content: a ping.
    Ping,
    /// N × 19-byte status records.
    Records(&'a [u8]),
    /// A TLV block; keys and meanings unknown, read it with [`InfoContent::tlvs`].
    Tlv(&'a [u8]),
    /// `c7 90 <len>` + ASCII diagnostic string (date, time, RSSI, counters).
    Diagnostic(&'a str),
    /// Content this codec does not interpret.
    Other(&'a [u8]),
}

impl<'a> InfoContent<'a> {
    /// Never fails: content that matches no known kind is `Other`.
    pub fn classify(content: &'a [u8]) -> Self {
        match content {
            [] => InfoContent::Ping,
            [0xC7, 0x90, len, text @ ..] if usize::from(*len) == text.len() => {
                match std::str::from_utf8(text) {
                    Ok(s) => InfoContent::Diagnostic(s),
                    Err(_) => InfoContent::Other(content),
                }
            }
            [first, ..] if (0xC2..=0xC6).contains(first) && tlv_is_well_formed(content) => {
                InfoContent::Tlv(content)
            }
            [_, 0x00, 0x10, ..] if content.len().is_multiple_of(STATUS_RECORD_LEN) => {
                InfoContent::Records(content)
            }
            _ => InfoContent::Other(content),
        }
    }

    /// Status records, when this is a record list (empty otherwise).
    pub fn records(&self) -> impl Iterator<Item = StatusRecord> + 'a {
        let bytes: &'a [u8] = match self {
            InfoContent::Records(b) => b,
            _ => &[],
        };
        bytes
            .chunks_exact(STATUS_RECORD_LEN)
            .map(StatusRecord::from_bytes)
    }

    /// TLV entries, when this is a TLV block (empty otherwise).
    pub fn tlvs(&self) -> TlvIter<'a> {
        TlvIter(match self {
            InfoContent::Tlv(b) => b,
            _ => &[],
        })
    }
}

fn tlv_is_well_formed(mut bytes: &[u8]) -> bool {
    while let [_, _, len, rest @ ..] = bytes {
        let len = usize::from(*len);
        if rest.len() < len {
            return false;
        }
        bytes = &rest[len..];
    }
    bytes.is_empty()
}

/// Stops at the first entry whose length runs past the end of the block.
#[derive(Clone, Debug)]
pub struct TlvIter<'a>(&'a [u8]);

impl<'a> Iterator for TlvIter<'a> {
    type Item = Tlv<'a>;

    fn next(&mut self) -> Option<Tlv<'a>> {
        let [key, kind, len, rest @ ..] = self.0 else {
            return None;
        };
        let len = usize::from(*len);
        if rest.len() < len {
            self.0 = &[];
            return None;
        }
        let (value, tail) = rest.split_at(len);
        self.0 = tail;
        Some(Tlv {
            key: *key,
            kind: *kind,
            value,
        })
    }
}
