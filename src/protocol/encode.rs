//! Typed value → bytes: every packet the bridge sends (the replies of
//! `docs/protocol.md#packet-types` and the commands of `docs/protocol.md#commands`) and every
//! packet a device sends (for the simulator). Builders append to any `BufMut`, so a session can
//! batch several replies into one write.

use bytes::BufMut;

use super::command::{Command, MAX_COMMAND_PAYLOAD};
use super::content::{LightState, MeshRecord, StatusRecord};
use super::frame::{FrameDir, FrameSpec, Stuffing};
use super::time::ClockTime;
use super::types::{MsgId, PacketType, PeerId};

fn header(out: &mut impl BufMut, kind: PacketType, body_len: usize) {
    out.put_u8(kind as u8);
    out.put_u16(0);
    // Bodies are bounded far below 64 KiB by construction (largest: 1,019-byte 0xAB).
    out.put_u16(body_len as u16);
}

fn addressed(out: &mut impl BufMut, kind: PacketType, peer: PeerId, msg: MsgId) {
    header(out, kind, 7);
    out.put_slice(&peer.0);
    out.put_slice(&msg.0);
}

/// 0x28: answer to the device hello.
pub fn hello_ack(out: &mut impl BufMut) {
    header(out, PacketType::HelloAck, 2);
    out.put_u16(0);
}

/// 0xC8: answer to 0xC3 with local date and time.
pub fn connect_ack(out: &mut impl BufMut, time: &ClockTime) {
    let body = time.to_body();
    header(out, PacketType::ConnectAck, body.len());
    out.put_slice(&body);
}

/// 0xD8: answer to a heartbeat.
pub fn heartbeat_ack(out: &mut impl BufMut) {
    header(out, PacketType::HeartbeatAck, 0);
}

/// 0x48: answer to 0x43 — msg id bytes 0..1 then `00` (381/381 in the 2025 home capture).
pub fn info_ack(out: &mut impl BufMut, msg: MsgId) {
    header(out, PacketType::InfoAck, 3);
    out.put_slice(&[msg.0[0], msg.0[1], 0]);
}

/// 0x88: answer to 0x83 — an exact echo of its msg id (101/101 in the 2025 home capture).
pub fn status_ack(out: &mut impl BufMut, msg: MsgId) {
    header(out, PacketType::StatusAck, 3);
    out.put_slice(&msg.0);
}

/// 0x7B: receipt for a 0x73, echoing its offsets 5..11.
pub fn receipt(out: &mut impl BufMut, peer: PeerId, msg: MsgId) {
    addressed(out, PacketType::Receipt, peer, msg);
}

/// 0xA3: session open. The legacy server uses the device's own id as session id; that works.
pub fn session_open(out: &mut impl BufMut, peer: PeerId, msg: MsgId) {
    addressed(out, PacketType::SessionOpen, peer, msg);
}

/// 0x18: answer to a phone-app login (sent only by the cloud; listed for completeness).
pub fn app_login_ack(out: &mut impl BufMut) {
    header(out, PacketType::AppLoginAck, 2);
    out.put_u16(0);
}

/// A framed packet (0x73 or 0x83) around `frame`.
pub fn framed(
    out: &mut impl BufMut,
    kind: PacketType,
    peer: PeerId,
    msg: MsgId,
    frame: &FrameSpec<'_>,
    stuffing: Stuffing,
) {
    header(out, kind, 7 + frame.encoded_len(stuffing));
    out.put_slice(&peer.0);
    out.put_slice(&msg.0);
    frame.encode(out, stuffing);
}

/// A 0x73 command. RGB channels equal to 0x7D/0x7E are nudged first
/// ([`Command::avoiding_markers`]); any marker byte left (a mesh id of 125 or 126, or tx/sno
/// values the caller did not clean with [`crate::protocol::SeqAllocator`]) is stuffed.
pub fn command(out: &mut impl BufMut, peer: PeerId, msg: MsgId, tx: u32, sno: u32, cmd: &Command) {
    let cmd = cmd.avoiding_markers();
    let mut buf = [0u8; MAX_COMMAND_PAYLOAD];
    let spec = cmd.frame_spec(tx, sno, &mut buf);
    framed(out, PacketType::Data, peer, msg, &spec, Stuffing::Escape);
}

// ---- device side (used by the simulator) ----

/// Byte 5 and trailer of every observed hello; their meaning is unknown
/// (`docs/protocol.md#hello-and-auth`).
const HELLO_VERSION: u8 = 0x03;
const HELLO_TRAILER: [u8; 3] = [0x00, 0x00, 0x3C];

/// 0x23: device hello with its id and auth code.
pub fn hello(out: &mut impl BufMut, device_id: PeerId, auth_code: &[u8]) {
    let auth = &auth_code[..auth_code.len().min(32)];
    header(out, PacketType::Hello, 1 + 4 + 2 + auth.len() + 3);
    out.put_u8(HELLO_VERSION);
    out.put_slice(&device_id.0);
    out.put_u16(auth.len() as u16);
    out.put_slice(auth);
    out.put_slice(&HELLO_TRAILER);
}

/// 0xC3: connect / time request (`0c` body in every observation).
pub fn connect(out: &mut impl BufMut) {
    header(out, PacketType::Connect, 1);
    out.put_u8(0x0C);
}

/// 0xD3: heartbeat.
pub fn heartbeat(out: &mut impl BufMut) {
    header(out, PacketType::Heartbeat, 0);
}

/// 0x43 with arbitrary content after `01 01 06` (empty = ping).
pub fn info(out: &mut impl BufMut, peer: PeerId, content: &[u8]) {
    header(out, PacketType::Info, 7 + content.len());
    out.put_slice(&peer.0);
    out.put_slice(&MsgId::INFO.0);
    out.put_slice(content);
}

/// 0x43 carrying status records (self record first, as devices send it,
/// `docs/protocol.md#status-records`).
pub fn info_records(out: &mut impl BufMut, peer: PeerId, records: &[StatusRecord]) {
    header(out, PacketType::Info, 7 + 19 * records.len());
    out.put_slice(&peer.0);
    out.put_slice(&MsgId::INFO.0);
    for r in records {
        out.put_slice(&r.to_bytes());
    }
}

/// 0x43 carrying the diagnostic string (`c7 90 <len> text`).
pub fn info_diagnostic(out: &mut impl BufMut, peer: PeerId, text: &str) {
    let text = &text.as_bytes()[..text.len().min(255)];
    header(out, PacketType::Info, 7 + 3 + text.len());
    out.put_slice(&peer.0);
    out.put_slice(&MsgId::INFO.0);
    out.put_slice(&[0xC7, 0x90, text.len() as u8]);
    out.put_slice(text);
}

/// 0x73 `f9 <op> 01 00 00`: a device accepting a request with tx `tx` (the 0x7B receipt is
/// [`receipt`]; devices send both in one write).
pub fn response(
    out: &mut impl BufMut,
    peer: PeerId,
    msg: MsgId,
    tx: u32,
    op: u8,
    stuffing: Stuffing,
) {
    let payload = [0u8];
    let spec = FrameSpec {
        firmware_start: false,
        tx,
        dir: FrameDir::Response,
        op,
        payload: &payload,
    };
    framed(out, PacketType::Data, peer, msg, &spec, stuffing);
}

/// What a `fa db 13` state report says.
#[derive(Clone, Copy, Debug)]
pub struct StateReportSpec {
    /// tx to carry (the triggering command's tx, or the last one seen).
    pub tx: u32,
    /// Report counter (P0..P2).
    pub counter: [u8; 3],
    /// Reporting device's mesh id (src = dst).
    pub mesh_id: u16,
    /// "In mesh" flag.
    pub online: bool,
    #[allow(missing_docs)]
    pub state: LightState,
}

/// 0x83 `fa db 13`: a device reporting its own state.
pub fn state_report(
    out: &mut impl BufMut,
    peer: PeerId,
    msg: MsgId,
    spec: &StateReportSpec,
    stuffing: Stuffing,
) {
    let [lo, hi] = spec.mesh_id.to_le_bytes();
    let s = &spec.state;
    let payload = [
        spec.counter[0],
        spec.counter[1],
        spec.counter[2],
        lo,
        hi,
        lo,
        hi,
        0xDB,
        0x11,
        0x02,
        u8::from(spec.online),
        u8::from(s.on),
        s.brightness,
        s.temperature,
        s.rgb[0],
        s.rgb[1],
        s.rgb[2],
        0,
        0,
    ];
    let frame = FrameSpec {
        firmware_start: false,
        tx: spec.tx,
        dir: FrameDir::Notify,
        op: 0xDB,
        payload: &payload,
    };
    framed(out, PacketType::Status, peer, msg, &frame, stuffing);
}

/// 0x83 firmware frame (start byte 0x00): `kind` 0 = network, 1 = device; `digits` like `11158`.
pub fn firmware(out: &mut impl BufMut, peer: PeerId, msg: MsgId, kind: u8, digits: &str) {
    let mut payload = [0u8; 0x20];
    payload[7] = 0xEA;
    payload[11] = 0x86;
    payload[12] = 0x01;
    payload[13] = kind;
    let d = digits.as_bytes();
    let n = d.len().min(payload.len() - 15);
    payload[14..14 + n].copy_from_slice(&d[..n]);
    let frame = FrameSpec {
        firmware_start: true,
        tx: 0,
        dir: FrameDir::Notify,
        op: 0x00,
        payload: &payload,
    };
    framed(out, PacketType::Status, peer, msg, &frame, Stuffing::Raw);
}

/// 0xAB: the 1024-byte answer to 0xA3 (`docs/protocol.md#session-open`).
pub fn session_reply(out: &mut impl BufMut, peer: PeerId, msg: MsgId) {
    header(out, PacketType::SessionReply, 1019);
    out.put_slice(&peer.0);
    out.put_slice(&msg.0);
    out.put_slice(&[0x07, 0x00, 0x09]);
    out.put_slice(b"xlink_dev");
    out.put_bytes(0, 996);
    out.put_slice(&[0xE3, 0x4F, 0x02, 0x10]);
}

/// Mesh-info records that fit one frame (N is one byte: 6 + 24·10 = 246).
pub const MAX_MESH_RECORDS_PER_FRAME: usize = 10;

/// 0x73 `f9 52`: the mesh-info response listing `records` (at most
/// [`MAX_MESH_RECORDS_PER_FRAME`]; callers split longer lists into several responses).
pub fn mesh_info_response(
    out: &mut impl BufMut,
    peer: PeerId,
    msg: MsgId,
    tx: u32,
    records: &[MeshRecord],
    stuffing: Stuffing,
) {
    let records = &records[..records.len().min(MAX_MESH_RECORDS_PER_FRAME)];
    let mut payload = [0u8; 6 + 24 * MAX_MESH_RECORDS_PER_FRAME];
    payload[..6].copy_from_slice(&[0x04, 0, 0, 0, 0x04, 0]);
    for (i, r) in records.iter().enumerate() {
        payload[6 + 24 * i..6 + 24 * (i + 1)].copy_from_slice(&r.to_bytes());
    }
    let frame = FrameSpec {
        firmware_start: false,
        tx,
        dir: FrameDir::Response,
        op: 0x52,
        payload: &payload[..6 + 24 * records.len()],
    };
    framed(out, PacketType::Data, peer, msg, &frame, stuffing);
}

/// What a `fa xx 14` node notification says (`docs/protocol.md#node-notification`).
#[derive(Clone, Copy, Debug)]
pub struct NotificationSpec {
    /// Devices carry the last tx they received (`docs/protocol.md#late-reports`).
    pub tx: u32,
    /// Counter bytes (P0..P2).
    pub counter: [u8; 3],
    /// The node that speaks (the announcing node, or the switch itself).
    pub src: u16,
    /// Destination (0xFFFF for announcements).
    pub dst: u16,
    /// The ten parameter bytes (`<node> a1 …` announce, `<node> 81 <cfg>` switch mode).
    pub params: [u8; 10],
}

/// 0x83 `fa db 14` node notification with mesh op `ea`.
pub fn node_notification(out: &mut impl BufMut, peer: PeerId, msg: MsgId, spec: &NotificationSpec) {
    let [s0, s1] = spec.src.to_le_bytes();
    let [d0, d1] = spec.dst.to_le_bytes();
    let c = spec.counter;
    let mut payload = [0u8; 20];
    payload[..10].copy_from_slice(&[c[0], c[1], c[2], s0, s1, d0, d1, 0xEA, 0x11, 0x02]);
    payload[10..].copy_from_slice(&spec.params);
    let frame = FrameSpec {
        firmware_start: false,
        tx: spec.tx,
        dir: FrameDir::Notify,
        op: 0xDB,
        payload: &payload,
    };
    framed(out, PacketType::Status, peer, msg, &frame, Stuffing::Raw);
}
