//! Builds the packets one simulated Wi-Fi device sends, from the codec's encoders: hello, TLV,
//! firmware, diagnostic, status records, state reports, responses, mesh-info, notifications.
//!
//! Why it exists apart from the session logic: the *what* (bytes: `docs/protocol.md#packet-types`,
//! `docs/protocol.md#status-layouts`) and the *when* (the session's state machine) change for
//! different reasons. Owns the device's message counters (0x83 and 0x73, per connection,
//! `docs/protocol.md#msg-id`) and its report counter (`fa db 13` P0,
//! `docs/protocol.md#state-report`).
//! Must never build a packet by hand that the codec has an encoder for.

use bytes::{Bytes, BytesMut};

use super::state::HomeRuntime;
use crate::protocol::content::StatusRecord;
use crate::protocol::encode::{self, NotificationSpec, StateReportSpec};
use crate::protocol::{ClockTime, LightState, MeshRecord, MsgId, PeerId, Stuffing};

/// Most status records in one 0x43 (the 2024 socat logs show up to 18; 16 keeps packets under 320
/// bytes).
pub const MAX_STATUS_RECORDS: usize = 16;
/// Index of the first relayed record in a 0x43 (`docs/protocol.md#status-records`: 5 = self, 6, 7,
/// … = relayed).
const FIRST_RELAY_INDEX: u8 = 6;
/// `fa db 13` P1..P2: not understood (`docs/protocol.md#state-report`); the devices of the 2025
/// home capture send `25 11`.
const REPORT_TAIL: [u8; 2] = [0x25, 0x11];

/// Fixed facts about one Wi-Fi device.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub mesh_id: u16,
    pub type_id: u16,
    pub device_id: PeerId,
    pub auth_code: String,
    pub firmware: String,
    pub reach: Vec<u16>,
    /// Wi-Fi RSSI shown in the diagnostic string (`docs/protocol.md#tlv-block-and-diagnostic`
    /// reads the number as very likely RSSI in dBm; −30 … −37 in the 2025 home capture).
    pub rssi: i8,
}

/// Encodes into a fresh buffer.
fn build(f: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    f(&mut b);
    b.freeze()
}

/// The device's packet factory and counters.
pub(crate) struct Packets {
    pub id: Identity,
    pub stuffing: Stuffing,
    msg73: u16,
    msg83: u16,
    report: u8,
}

impl Packets {
    pub(crate) fn new(id: Identity, stuffing: Stuffing) -> Self {
        Packets {
            id,
            stuffing,
            msg73: 0,
            msg83: 1,
            report: 0x30,
        }
    }

    /// Restarts the counters where a fresh connection of a real device does
    /// (`docs/protocol.md#msg-id`, the 2024 plug: first 0x83 is `00 01 00`, first device 0x73 is
    /// `00 00 00`).
    pub(crate) fn reset_counters(&mut self) {
        self.msg73 = 0;
        self.msg83 = 1;
    }

    fn next73(&mut self) -> MsgId {
        let id = MsgId::from_counter(self.msg73);
        self.msg73 = self.msg73.wrapping_add(1);
        id
    }

    fn next83(&mut self) -> MsgId {
        if self.msg83 == 0 {
            self.msg83 = 1;
        }
        let id = MsgId::from_counter(self.msg83);
        self.msg83 = self.msg83.wrapping_add(1);
        id
    }

    fn next_report(&mut self) -> [u8; 3] {
        self.report = self.report.wrapping_add(1);
        [self.report, REPORT_TAIL[0], REPORT_TAIL[1]]
    }

    fn own(&self) -> u8 {
        // Mesh ids are validated to 1..=250, so the one-byte record fields hold them.
        self.id.mesh_id as u8
    }

    pub(crate) fn hello(&self) -> Bytes {
        build(|b| encode::hello(b, self.id.device_id, self.id.auth_code.as_bytes()))
    }

    pub(crate) fn connect(&self) -> Bytes {
        build(encode::connect)
    }

    pub(crate) fn heartbeat(&self) -> Bytes {
        build(encode::heartbeat)
    }

    /// 0x43 TLV block (`docs/protocol.md#tlv-block-and-diagnostic`). Key c6 carries the device
    /// type (the guess made there: 0x00AB = 171 for the three senders in the 2025 home capture);
    /// the other values are copied from vector 5 (`docs/protocol.md#test-vectors`).
    pub(crate) fn tlv(&self) -> Bytes {
        let [t0, t1] = self.id.type_id.to_be_bytes();
        let content = [
            0xC6, 0x20, 0x02, t0, t1, 0xC5, 0x20, 0x02, 0x00, 0x04, 0xC4, 0x20, 0x02, 0x00, 0x01,
            0xC3, 0x20, 0x02, 0x00, 0x05, 0xC2, 0x90, 0x00,
        ];
        build(|b| encode::info(b, self.id.device_id, &content))
    }

    /// 0x83 firmware frame: kind 0 = network ("0" in every capture), 1 = device.
    pub(crate) fn firmware(&mut self, device: bool) -> Bytes {
        let msg = self.next83();
        let (kind, digits) = if device {
            (1, self.id.firmware.clone())
        } else {
            (0, "0".to_owned())
        };
        build(|b| encode::firmware(b, self.id.device_id, msg, kind, &digits))
    }

    /// 0x43 diagnostic: `YYYYMMDD:HHMM:<rssi>,<4 counters>,` in the clock the 0xC8 gave
    /// (`docs/protocol.md#tlv-block-and-diagnostic`); the 2025 home capture's first clock when none
    /// came.
    pub(crate) fn diagnostic(&self, clock: Option<&ClockTime>, connects: u64) -> Bytes {
        let (y, mo, d, h, mi) = clock.map_or((2025, 11, 6, 2, 20), |c| {
            (c.year, c.month, c.day, c.hour, c.minute)
        });
        let text = format!(
            "{y:04}{mo:02}{d:02}:{h:02}{mi:02}:{},{:05},00001,00001,00001,",
            self.id.rssi,
            connects % 100_000
        );
        build(|b| encode::info_diagnostic(b, self.id.device_id, &text))
    }

    /// 0x43 with the self record alone (index 5, flags 00, reporter = own id; vector #12).
    pub(crate) fn self_record(&self, state: LightState) -> Bytes {
        let record = StatusRecord {
            index: 5,
            mesh_id: self.own(),
            state,
            online: true,
            flags: 0,
            reporter: self.own(),
        };
        build(|b| encode::info_records(b, self.id.device_id, &[record]))
    }

    /// 0x43 relay records (index 6, 7, …, flags 0x14, reporter = own id; vector 13,
    /// `docs/protocol.md#test-vectors`) for `ids`, split into packets of at most
    /// [`MAX_STATUS_RECORDS`], each starting again at index 6 as every relay packet of the 2025
    /// home capture does.
    pub(crate) fn relay_records(&self, home: &HomeRuntime, ids: &[u16]) -> Vec<Bytes> {
        let records: Vec<StatusRecord> = ids
            .iter()
            .filter_map(|id| home.state(*id).map(|s| (*id, s)))
            .map(|(id, state)| StatusRecord {
                index: 0,
                mesh_id: id as u8,
                state,
                online: home.is_powered(id),
                flags: 0x14,
                reporter: self.own(),
            })
            .collect();
        records
            .chunks(MAX_STATUS_RECORDS)
            .map(|chunk| {
                let numbered: Vec<StatusRecord> = chunk
                    .iter()
                    .zip(FIRST_RELAY_INDEX..)
                    .map(|(r, index)| StatusRecord { index, ..*r })
                    .collect();
                build(|b| encode::info_records(b, self.id.device_id, &numbered))
            })
            .collect()
    }

    /// 0x83 `fa db 13` about itself, carrying `tx` (the command's, or the last one seen).
    pub(crate) fn state_report(&mut self, tx: u32, state: LightState) -> Bytes {
        let msg = self.next83();
        let spec = StateReportSpec {
            tx,
            counter: self.next_report(),
            mesh_id: self.id.mesh_id,
            online: true,
            state,
        };
        build(|b| encode::state_report(b, self.id.device_id, msg, &spec, self.stuffing))
    }

    /// 0x83 `fa db 14` node notification about itself: announce (`a1 01 03 01`, 2024 socat logs)
    /// or a switch-mode report (`81 <cfg>`, switch-mode capture: `50` traditional, `b0` smart;
    /// `docs/protocol.md#node-notification`).
    pub(crate) fn notification(&mut self, tx: u32, params: [u8; 10]) -> Bytes {
        let msg = self.next83();
        let spec = NotificationSpec {
            tx,
            counter: self.next_report(),
            src: self.id.mesh_id,
            dst: 0xFFFF,
            params,
        };
        build(|b| encode::node_notification(b, self.id.device_id, msg, &spec))
    }

    pub(crate) fn announce_params(&self) -> [u8; 10] {
        [self.own(), 0xA1, 0x01, 0x03, 0x01, 0, 0, 0, 0, 0]
    }

    pub(crate) fn switch_mode_params(&self, mode: u8) -> [u8; 10] {
        let cfg = if mode == 1 { 0x50 } else { 0xB0 };
        [self.own(), 0x81, cfg, 0, 0, 0, 0, 0, 0, 0]
    }

    /// 0x73 `f9 <op> 01 00 00` for a request with `tx`, addressed with the request's peer id and
    /// the device's own 0x73 counter (`docs/protocol.md#command-responses`).
    pub(crate) fn response(&mut self, peer: PeerId, tx: u32, op: u8) -> Bytes {
        let msg = self.next73();
        build(|b| encode::response(b, peer, msg, tx, op, self.stuffing))
    }

    /// 0x7B receipt: an echo of the request's peer id and msg id (`docs/protocol.md#receipts`).
    pub(crate) fn receipt(&self, peer: PeerId, msg: MsgId) -> Bytes {
        build(|b| encode::receipt(b, peer, msg))
    }

    /// 0xAB reply to 0xA3 (`docs/protocol.md#session-open`).
    pub(crate) fn session_reply(&self, peer: PeerId, msg: MsgId) -> Bytes {
        build(|b| encode::session_reply(b, peer, msg))
    }

    /// `f9 52` mesh-info responses: the device itself first (with its type), then every id it
    /// reaches (type 0, `docs/protocol.md#mesh-info-records`). Only a 4-record response was ever
    /// captured; longer lists are split over several responses of at most
    /// [`encode::MAX_MESH_RECORDS_PER_FRAME`] records, each with the request's tx and its own msg
    /// id — the simulator's choice, since one frame cannot hold more (N is one byte).
    pub(crate) fn mesh_info(&mut self, home: &HomeRuntime, peer: PeerId, tx: u32) -> Vec<Bytes> {
        let own = std::iter::once((self.id.mesh_id, self.id.type_id as u8));
        let records: Vec<MeshRecord> = own
            .chain(self.id.reach.iter().map(|id| (*id, 0)))
            .filter_map(|(mesh_id, device_type)| {
                home.state(mesh_id).map(|state| MeshRecord {
                    mesh_id,
                    device_type,
                    state,
                })
            })
            .collect();
        let chunks: Vec<Vec<MeshRecord>> = records
            .chunks(encode::MAX_MESH_RECORDS_PER_FRAME)
            .map(<[MeshRecord]>::to_vec)
            .collect();
        chunks
            .iter()
            .map(|chunk| {
                let msg = self.next73();
                build(|b| encode::mesh_info_response(b, peer, msg, tx, chunk, self.stuffing))
            })
            .collect()
    }
}
