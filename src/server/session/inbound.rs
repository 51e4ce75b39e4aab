//! What a session does with each packet a device sends: answer it
//! (`docs/protocol.md#packet-types`), then learn from it — routes for the registry, states for the
//! store, receipts and responses for waiting commands. Every handler is synchronous: no `.await`,
//! so the reader is never held up.

use tokio::time::Instant;

use super::{CloseReason, CommandEvent, Session};
use crate::device::{DeviceKey, DeviceState, Report, ReportSource};
use crate::protocol::content::{MeshInfo, NotificationKind};
use crate::protocol::{
    decode, encode, Command, FrameContent, Framed, Hello, InfoContent, MsgId, Packet,
};
use crate::server::clock;
use crate::server::codec::Inbound;
use crate::server::dedup::fingerprint;
use crate::server::routes::RouteKind;
use crate::telemetry::redact_auth_code;

impl Session {
    /// One item from the codec.
    pub(super) fn on_read(&mut self, item: Option<std::io::Result<Inbound>>) {
        self.timers.last_read = Instant::now();
        match item {
            None => self.stop = Some(CloseReason::Eof),
            Some(Err(error)) => {
                tracing::debug!(%error, "read failed");
                self.stop = Some(CloseReason::ReadError);
            }
            Some(Ok(Inbound::Junk(junk))) => self.bad_input(junk.reason(), &junk),
            Some(Ok(Inbound::Packet(bytes))) => self.on_packet(&bytes),
        }
    }

    /// Counts and logs input that could not be used; the session carries on: one bad packet must
    /// not cost the device its connection.
    fn bad_input(&mut self, reason: &'static str, error: &dyn std::fmt::Display) {
        self.ctx.metrics.decode_error(&self.label, reason);
        self.ctx.metrics.packet_recv(&self.label, "decode_error");
        if self.bad_logged {
            tracing::debug!(reason, %error, "undecodable input skipped");
        } else {
            self.bad_logged = true;
            tracing::warn!(reason, %error, "undecodable input skipped (further ones are logged at debug)");
        }
    }

    fn on_packet(&mut self, bytes: &[u8]) {
        let packet = match decode(bytes) {
            Ok(packet) => packet,
            Err(error) => return self.bad_input(error.reason(), &error),
        };
        log_rx(&packet, bytes.len());
        let outcome = match packet {
            Packet::Hello(hello) => self.on_hello(&hello),
            Packet::Connect { .. } => {
                let time = clock::now(self.ctx.timezone);
                self.push(0xC8, None, |out| encode::connect_ack(out, &time));
                "ok"
            }
            Packet::Heartbeat => {
                self.push(0xD8, None, encode::heartbeat_ack);
                "ok"
            }
            Packet::Info { msg, content, .. } => {
                self.push(0x48, Some(msg), |out| encode::info_ack(out, msg));
                self.on_info(&content);
                "ok"
            }
            Packet::Status(framed) => {
                self.push(0x88, Some(framed.msg), |out| {
                    encode::status_ack(out, framed.msg)
                });
                if self.is_retransmit(&framed, bytes) {
                    return;
                }
                return self.on_framed(framed);
            }
            Packet::Data(framed) => {
                self.push(0x7B, Some(framed.msg), |out| {
                    encode::receipt(out, framed.peer, framed.msg)
                });
                if self.is_retransmit(&framed, bytes) {
                    return;
                }
                return self.on_framed(framed);
            }
            // 0xAB echoes the 0xA3's msg id: it is the 0xA3's answer
            // (docs/protocol.md#session-open).
            Packet::Receipt { msg, .. } | Packet::SessionReply { msg, .. } => {
                self.on_receipt(msg);
                "ok"
            }
            Packet::AppLogin { app_id } => {
                tracing::info!(app_id = %app_id, "phone app login (0x13) refused: the bridge serves devices only");
                self.stop = Some(CloseReason::AppLogin);
                "refused"
            }
            Packet::Unknown { kind, .. } => return self.on_unknown(kind),
            _ => "unexpected",
        };
        self.ctx.metrics.packet_recv(&self.label, outcome);
    }

    /// 0x83 and device 0x73 carry a per-connection counter, so a byte-identical repeat of the same
    /// (peer id, msg id) is a retransmit: it was acknowledged above like any packet (the device
    /// wants its 0x88/0x7B) and is dropped here before it touches routes, state or a waiting
    /// command. 0x43 never comes here: its msg id is constant, and its records are applied
    /// idempotently.
    fn is_retransmit(&mut self, framed: &Framed<'_>, bytes: &[u8]) -> bool {
        let now = std::time::Instant::now();
        let print = fingerprint(bytes);
        if self
            .dedup
            .first_sighting(framed.peer, framed.msg, print, now)
        {
            return false;
        }
        tracing::debug!(peer_id = %framed.peer, msg_id = %framed.msg, "retransmit dropped");
        self.ctx.metrics.idempotent_drop(&self.label);
        self.ctx.metrics.packet_recv(&self.label, "duplicate");
        true
    }

    fn on_unknown(&mut self, kind: u8) {
        if !self.unknown_logged.contains(&kind) {
            self.unknown_logged.push(kind);
            tracing::warn!(
                kind = format_args!("{kind:#04x}"),
                "unknown packet type (logged once per session)"
            );
        }
        self.ctx.metrics.decode_error(&self.label, "unknown_type");
        self.ctx.metrics.packet_recv(&self.label, "unknown_type");
    }

    fn on_hello(&mut self, hello: &Hello<'_>) -> &'static str {
        let device = hello.device_id;
        self.timers.hello_by = None;
        let allowed = &self.ctx.config.allow_device_ids;
        if !allowed.is_empty() && !allowed.contains(&device) {
            tracing::warn!(device = %device, "device not in server.allow_device_ids; holding, then closing");
            self.stop = Some(CloseReason::DeviceNotAllowed);
            return "refused";
        }
        self.push(0x28, None, encode::hello_ack);
        match self.device {
            Some(known) if known == device => return "ok",
            Some(known) => {
                tracing::warn!(first = %known, then = %device, "second hello with another device id ignored");
                return "unexpected";
            }
            None => {}
        }
        self.device = Some(device);
        if let Some(seed) = self.ctx.config.counter_seed {
            self.seq = super::seeded_counters(seed, device);
        }
        self.label = device.to_string();
        tracing::Span::current().record("device_id", self.label.as_str());
        self.home = self.ctx.homes.home_of(device);
        tracing::info!(
            auth_code = %redact_auth_code(hello.auth_code),
            version = hello.version,
            home = %self.home,
            "device hello"
        );
        self.register(device);
        self.timers.open_at = Some(Instant::now() + self.ctx.config.session_open_delay);
        "ok"
    }

    fn on_info(&mut self, content: &InfoContent<'_>) {
        match content {
            InfoContent::Records(_) => {
                let mut learned = Vec::new();
                for record in content.records() {
                    let key = DeviceKey::new(self.home, record.mesh_id.into());
                    let (source, kind) = if record.is_self() {
                        (ReportSource::SelfRecord, RouteKind::Direct)
                    } else {
                        (ReportSource::RelayRecord, RouteKind::Relay)
                    };
                    let state = DeviceState {
                        light: record.state,
                        online: record.online,
                    };
                    if record.is_self()
                        && self
                            .sent
                            .is_late_twin(u16::from(record.mesh_id), record.state)
                    {
                        tracing::debug!(
                            mesh_id = record.mesh_id,
                            "self record of a superseded command; not stored"
                        );
                    } else {
                        self.ctx.state.apply(Report { key, state, source });
                    }
                    // A relay record flagged offline says the relay cannot reach the device now.
                    if record.online || record.is_self() {
                        learned.push((key, kind));
                    }
                }
                self.learn(learned);
            }
            InfoContent::Diagnostic(text) => {
                tracing::debug!(diagnostic = text, "device diagnostic")
            }
            InfoContent::Tlv(_) | InfoContent::Other(_) | InfoContent::Ping => {}
        }
    }

    fn on_framed(&mut self, framed: Framed<'_>) {
        let frame = match framed.frame {
            Ok(frame) => frame,
            Err(error) => return self.bad_input(error.reason(), &error),
        };
        self.ctx.metrics.packet_recv(&self.label, "ok");
        match frame.content() {
            FrameContent::StateReport(report) => {
                let key = DeviceKey::new(self.home, report.dst);
                let state = DeviceState {
                    light: report.state,
                    online: report.online,
                };
                let source = ReportSource::StateReport;
                if self.sent.is_late_report(report.dst, frame.tx, report.state) {
                    tracing::debug!(
                        tx = frame.tx,
                        mesh_id = report.dst,
                        "state report for a superseded command; not stored"
                    );
                } else {
                    self.ctx.state.apply(Report { key, state, source });
                }
                // src = dst in every capture: the device reporting itself
                // (docs/protocol.md#state-report).
                let kind = if report.src == report.dst {
                    RouteKind::Direct
                } else {
                    RouteKind::Relay
                };
                self.learn(vec![(key, kind)]);
            }
            FrameContent::Notification(note) => {
                if note.kind == NotificationKind::Announce && note.src != 0 && note.src != 0xFFFF {
                    self.learn(vec![(
                        DeviceKey::new(self.home, note.src),
                        RouteKind::Relay,
                    )]);
                }
                tracing::debug!(src = note.src, node = note.node, kind = ?note.kind, "node notification");
            }
            FrameContent::Firmware(firmware) => tracing::info!(
                kind = ?firmware.kind,
                version = %firmware.version(),
                "device firmware"
            ),
            FrameContent::Response { op, status } => self.on_response(frame.tx, op, status),
            FrameContent::MeshInfo(info) => self.on_mesh_info(&info),
            FrameContent::Command { .. } | FrameContent::Other => {
                tracing::debug!(
                    op = format_args!("{:#04x}", frame.op),
                    "frame not interpreted"
                );
            }
        }
    }

    fn on_response(&mut self, tx: u32, op: u8, status: u8) {
        match self.inflight.on_response(tx) {
            Some(matched) => {
                if let Some(owner) = matched.owner {
                    self.notify(&owner, CommandEvent::Response { tx, op, status });
                }
            }
            None => tracing::debug!(
                tx,
                op = format_args!("{op:#04x}"),
                "response matches no command"
            ),
        }
    }

    fn on_receipt(&mut self, msg: MsgId) {
        let Some(matched) = self.inflight.on_receipt(msg) else {
            tracing::debug!(msg_id = %msg, "receipt matches nothing sent");
            return;
        };
        let latency = Instant::now().saturating_duration_since(matched.sent_at);
        self.ctx.metrics.packet_latency(&self.label, latency);
        if let Some(owner) = matched.owner {
            self.ctx.metrics.ack_received(&self.label, "matched");
            self.notify(&owner, CommandEvent::Receipt { msg });
        }
    }

    /// Mesh-info records: every listed device is reachable through this session; the first
    /// record, the only one with a device type, is the session's own device
    /// (`docs/protocol.md#mesh-info-records`).
    fn on_mesh_info(&mut self, info: &MeshInfo<'_>) {
        let mut learned = Vec::new();
        for (index, record) in info.records().enumerate() {
            if record.mesh_id == 0 {
                // Legacy treats a zero id as misalignment; nothing to route to.
                continue;
            }
            let key = DeviceKey::new(self.home, record.mesh_id);
            if index == 0 && record.device_type != 0 {
                self.ctx
                    .state
                    .record_type(key, u16::from(record.device_type));
            }
            let state = DeviceState {
                light: record.state,
                online: true,
            };
            let source = ReportSource::MeshInfo;
            self.ctx.state.apply(Report { key, state, source });
            let kind = if index == 0 && record.device_type != 0 {
                RouteKind::Direct
            } else {
                RouteKind::Relay
            };
            learned.push((key, kind));
        }
        tracing::info!(devices = learned.len(), "mesh info");
        self.learn(learned);
        self.send_own_command(Command::MeshAck, Instant::now());
    }

    fn learn(&self, routes: Vec<(DeviceKey, RouteKind)>) {
        if self.handle.is_some() && !routes.is_empty() {
            self.ctx.routes.learn(self.id, routes);
        }
    }
}

/// The debug line every received packet gets: type, length, peer id and msg id.
fn log_rx(packet: &Packet<'_>, len: usize) {
    let kind = packet.kind();
    match packet.addressing() {
        Some((peer, msg)) => tracing::debug!(
            dir = "rx",
            kind = format_args!("{kind:#04x}"),
            len,
            peer_id = %peer,
            msg_id = %msg,
            "packet"
        ),
        None => tracing::debug!(
            dir = "rx",
            kind = format_args!("{kind:#04x}"),
            len,
            "packet"
        ),
    }
}
