//! `cync-bridge decode FILE...`: split capture files into packets and print each as one JSON
//! line, then a summary. Each record is one TCP read of an unknown connection, so every record is
//! framed on its own: a packet cut at the end of a record is reported, not glued to the next.
//! Damaged records are reported and decoding continues; only an unreadable file fails the run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use bytes::BytesMut;
use serde::Serialize;

use crate::capture::{self, Record};
use crate::protocol::content::{FirmwareKind, NotificationKind};
use crate::protocol::{
    decode, Command, FrameContent, Framer, InfoContent, LightColor, LightState, Packet,
};

/// Arguments of `cync-bridge decode`.
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// Capture text files (`<ts> DEV→CLOUD (N bytes)` + hex line) or socat logs.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print only the final summary line.
    #[arg(long)]
    pub summary: bool,
}

/// Totals over every file decoded.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Records (TCP reads) read.
    pub records: usize,
    /// Packets the framer split the records into (several per read is common).
    pub packets: usize,
    /// Packets per type, keyed `"0x83"`.
    pub by_type: BTreeMap<String, usize>,
    /// Framed packets whose frame failed its checksum.
    pub checksum_failures: usize,
    /// Packets that could not be decoded, frames with other damage, records with junk or a cut
    /// packet, and records the capture reader could not take at face value.
    pub framing_errors: usize,
    /// Bytes discarded as junk or left over at the end of a record.
    pub junk_bytes: usize,
}

/// One decoded packet, as printed.
#[derive(Debug, Serialize, Default)]
pub struct PacketLine {
    ts: String,
    dir: &'static str,
    #[serde(rename = "type")]
    kind_byte: String,
    len: usize,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checksum_ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tx: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    op: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mesh_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    online: Option<bool>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    state: Option<StateFields>,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<Vec<RecordLine>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Debug, Serialize, Clone, Copy)]
struct StateFields {
    on: bool,
    brightness: u8,
    temperature: u8,
    rgb: [u8; 3],
}

impl From<LightState> for StateFields {
    fn from(s: LightState) -> Self {
        StateFields {
            on: s.on,
            brightness: s.brightness,
            temperature: s.temperature,
            rgb: s.rgb,
        }
    }
}

#[derive(Debug, Serialize)]
struct RecordLine {
    mesh_id: u16,
    #[serde(flatten)]
    state: StateFields,
    online: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reporter: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_type: Option<u8>,
}

/// Runs the subcommand. Returns the process exit status.
pub fn run(args: &DecodeArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let mut summary = Summary::default();
    let mut status = 0;
    for path in &args.files {
        let capture = match capture::read_path(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("decode: {e}");
                status = 1;
                continue;
            }
        };
        for problem in &capture.problems {
            eprintln!("decode: {}: {problem}", path.display());
            summary.framing_errors += 1;
        }
        for record in &capture.records {
            decode_record(record, &mut summary, |line| {
                if !args.summary {
                    serde_json::to_writer(&mut *out, line)?;
                    writeln!(out)?;
                }
                Ok(())
            })?;
        }
    }
    serde_json::to_writer(&mut *out, &serde_json::json!({ "summary": summary }))?;
    writeln!(out)?;
    Ok(status)
}

/// Splits one record into packets, updates `summary` and hands each packet line to `emit`.
pub fn decode_record(
    record: &Record,
    summary: &mut Summary,
    mut emit: impl FnMut(&PacketLine) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    summary.records += 1;
    if record.length_mismatch.is_some() {
        // A hand-edited socat record: bytes were elided, so what is left cannot frame cleanly.
        summary.framing_errors += 1;
    }
    let framer = Framer::default();
    let mut buf = BytesMut::from(&record.bytes[..]);
    let mut record_damaged = false;
    loop {
        let item = match framer.next_packet(&mut buf) {
            Some(item) => item,
            None => match framer.finish(&mut buf) {
                Some(err) => Err(err),
                None => break,
            },
        };
        match item {
            Ok(bytes) => {
                summary.packets += 1;
                *summary
                    .by_type
                    .entry(format!("{:#04x}", bytes[0]))
                    .or_default() += 1;
                let line = describe(record, &bytes, summary);
                emit(&line)?;
            }
            Err(err) => {
                summary.junk_bytes += err.discarded();
                if !record_damaged && record.length_mismatch.is_none() {
                    summary.framing_errors += 1;
                    record_damaged = true;
                }
                eprintln!("decode: line {}: {err}", record.line);
            }
        }
    }
    Ok(())
}

fn describe(record: &Record, bytes: &[u8], summary: &mut Summary) -> PacketLine {
    let mut line = PacketLine {
        ts: record.ts.clone(),
        dir: record.dir.label(),
        kind_byte: format!("{:#04x}", bytes[0]),
        len: bytes.len(),
        ..PacketLine::default()
    };
    let packet = match decode(bytes) {
        Ok(p) => p,
        Err(e) => {
            summary.framing_errors += 1;
            line.kind = "invalid";
            line.error = Some(e.to_string());
            return line;
        }
    };
    if let Some((peer, msg)) = packet.addressing() {
        line.peer_id = Some(peer.to_string());
        line.msg_id = Some(msg.to_string());
    }
    line.kind = match &packet {
        Packet::AppLogin { app_id } => {
            line.peer_id = Some(app_id.to_string());
            "app_login"
        }
        Packet::AppLoginAck => "app_login_ack",
        Packet::Hello(h) => {
            line.peer_id = Some(h.device_id.to_string());
            "hello"
        }
        Packet::HelloAck => "hello_ack",
        Packet::Info { content, .. } => describe_info(content, &mut line),
        Packet::InfoAck { msg } | Packet::StatusAck { msg } => {
            line.msg_id = Some(msg.to_string());
            if bytes[0] == 0x48 {
                "info_ack"
            } else {
                "status_ack"
            }
        }
        Packet::Data(f) | Packet::Status(f) => match &f.frame {
            Ok(frame) => {
                line.checksum_ok = Some(true);
                line.tx = Some(frame.tx);
                line.op = Some(format!("{:#04x}", frame.op));
                describe_frame(frame.content(), &mut line)
            }
            Err(e) => {
                let checksum = e.reason() == "checksum";
                line.checksum_ok = Some(!checksum);
                if checksum {
                    summary.checksum_failures += 1;
                } else {
                    summary.framing_errors += 1;
                }
                line.error = Some(e.to_string());
                "bad_frame"
            }
        },
        Packet::Notice { status, .. } => {
            line.detail = Some(format!("status {status:#04x}"));
            "notice"
        }
        Packet::Receipt { .. } => "receipt",
        Packet::SessionOpen { .. } => "session_open",
        Packet::SessionNotice { .. } => "session_notice",
        Packet::SessionReply { .. } => "session_reply",
        Packet::Connect { .. } => "connect",
        Packet::ConnectAck(t) => {
            line.detail = Some(format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} weekday {} utc{:+05}",
                t.year, t.month, t.day, t.hour, t.minute, t.second, t.weekday, t.utc_offset_hhmm
            ));
            "time"
        }
        Packet::Heartbeat => "heartbeat",
        Packet::HeartbeatAck => "heartbeat_ack",
        Packet::Unknown { .. } => "unknown",
    };
    line
}

fn describe_info(content: &InfoContent<'_>, line: &mut PacketLine) -> &'static str {
    match content {
        InfoContent::Ping => "ping",
        InfoContent::Records(_) => {
            line.records = Some(
                content
                    .records()
                    .map(|r| RecordLine {
                        mesh_id: u16::from(r.mesh_id),
                        state: r.state.into(),
                        online: r.online,
                        reporter: Some(r.reporter),
                        device_type: None,
                    })
                    .collect(),
            );
            "status_records"
        }
        InfoContent::Tlv(_) => {
            let parts: Vec<String> = content
                .tlvs()
                .map(|t| {
                    let hex: String = t.value.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{:02x}={hex}", t.key)
                })
                .collect();
            line.detail = Some(parts.join(" "));
            "tlv"
        }
        InfoContent::Diagnostic(text) => {
            line.detail = Some((*text).to_string());
            "diagnostic"
        }
        InfoContent::Other(_) => "info_other",
    }
}

fn describe_frame(content: FrameContent<'_>, line: &mut PacketLine) -> &'static str {
    match content {
        FrameContent::StateReport(r) => {
            line.mesh_id = Some(r.dst);
            line.online = Some(r.online);
            line.state = Some(r.state.into());
            "state_report"
        }
        FrameContent::Notification(n) => {
            line.mesh_id = Some(u16::from(n.node));
            line.detail = Some(match n.kind {
                NotificationKind::Announce => "announce".to_string(),
                NotificationKind::SwitchMode { config } => format!("switch_mode {config:#04x}"),
                NotificationKind::Other(b) => format!("param {b:#04x}"),
            });
            "notification"
        }
        FrameContent::Firmware(fw) => {
            line.detail = Some(format!(
                "{} {}",
                match fw.kind {
                    FirmwareKind::Network => "network",
                    FirmwareKind::Device => "device",
                    FirmwareKind::Other(_) => "other",
                },
                fw.version()
            ));
            "firmware"
        }
        FrameContent::Response { op, status } => {
            line.detail = Some(format!("response to {op:#04x}, status {status:#04x}"));
            "response"
        }
        FrameContent::MeshInfo(info) => {
            line.records = Some(
                info.records()
                    .map(|r| RecordLine {
                        mesh_id: r.mesh_id,
                        state: r.state.into(),
                        online: true,
                        reporter: None,
                        device_type: (r.device_type != 0).then_some(r.device_type),
                    })
                    .collect(),
            );
            "mesh_info"
        }
        FrameContent::Command { command, .. } => {
            describe_command(&command, line);
            "command"
        }
        FrameContent::Other => "frame_other",
    }
}

fn describe_command(command: &Command, line: &mut PacketLine) {
    line.mesh_id = command.target();
    line.detail = Some(match *command {
        Command::Power { on, .. } => format!("power {}", if on { "on" } else { "off" }),
        Command::Light {
            brightness, color, ..
        } => {
            let mut parts = Vec::new();
            if let Some(b) = brightness {
                parts.push(format!("brightness {b}"));
            }
            match color {
                Some(LightColor::Temperature(t)) => parts.push(format!("temperature {t}")),
                Some(LightColor::Rgb([r, g, b])) => parts.push(format!("rgb {r} {g} {b}")),
                None => {}
            }
            parts.join(", ")
        }
        Command::Effect { effect, .. } => format!(
            "effect {}",
            crate::device::catalog::effect_name(effect).unwrap_or("unknown")
        ),
        Command::SwitchMode { mode, .. } => format!("switch mode {mode}"),
        Command::Query { param, .. } => format!("query {param:#04x}"),
        Command::MeshInfoRequest => "mesh info request".to_string(),
        Command::MeshAck => "mesh ack".to_string(),
        Command::ModeFollowUp => "mode follow-up".to_string(),
    });
}
