//! The protocol behaviour of one simulated Wi-Fi device, without I/O: given a packet from the
//! bridge, a timer or a state change in its home, what does it send, and when?
//!
//! Why it exists apart from the socket task: the behaviour is the part that must match the captures
//! (`docs/protocol.md#what-devices-do-with-the-cloud`, `docs/protocol.md#command-responses`) and it
//! is easier to read without `select!` around it. The socket task (`device.rs`) feeds it and writes
//! what it returns.
//!
//! Behaviour, with its evidence:
//! * Connect: the 0x23 first, the rest per [`ConnectProfile`](super::profile::ConnectProfile).
//! * Every bridge 0x73 gets a 0x7B receipt, even a malformed one (the injection capture: all 346
//!   malformed injections got one, `docs/protocol.md#receipts`). A request the device understands
//!   also gets its `f9 <op> 01 00 00` response, written *before* the receipt in the same write (the
//!   2024 socat logs, `docs/protocol.md#command-responses`), then — after the report delay (≈ 0.5 s
//!   there) — the `fa db 13` report with the command's tx and the 0x43 self record for its own
//!   state, or 0x43 relay records for other devices it reaches.
//! * Mesh-info `f8 52`: `f9 52` record list(s) then the receipt (2024 socat logs,
//!   `docs/protocol.md#mesh-info-request`). `f8 af`: receipt only (2024 socat logs).
//!   `f8 ea`: `f9 ea` (switch-mode capture, `docs/protocol.md#switch-mode`). Broadcast query
//!   `f8 8e 0b`: `f9 8e` then an announce (2024 socat logs, `docs/protocol.md#opcodes`).
//! * 0xA3 → 0xAB (2024 socat logs, `docs/protocol.md#session-open`). 0xD3 after the transmit-idle
//!   time (the socket task times it).
//! * Duplicates: a (peer id, msg id) already seen on this connection — a transport duplicate —
//!   is acknowledged again exactly like the first delivery (receipt and response) but not
//!   applied and not reported. Window: the last [`SEEN_WINDOW`] requests of the connection (the
//!   bridge's counters are per connection, so a new connection starts a new window). Mesh-level
//!   retries (new msg id, same sno and command) are the home's replay cache (`state.rs`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::behaviour::{BehaviourEngine, ReceiptFate};
use super::config::CounterPolicy;
use super::packets::Packets;
use super::profile::{ConnectProfile, Item, When};
use super::state::{HomeRuntime, IdSet, Outcome};
use super::stats::Counters;
use crate::protocol::packet::Framed;
use crate::protocol::{decode, ClockTime, Command, FrameContent, FrameDir, MsgId, Packet, PeerId};

/// Requests remembered per connection for duplicate detection.
pub const SEEN_WINDOW: usize = 64;

/// One write the device wants to make, `delay` from now.
#[derive(Debug, Default)]
pub(crate) struct Emit {
    pub delay: Duration,
    pub packets: Vec<Bytes>,
}

impl Emit {
    fn now(packets: Vec<Bytes>) -> Self {
        Emit {
            delay: Duration::ZERO,
            packets,
        }
    }

    fn later(delay: Duration, packets: Vec<Bytes>) -> Self {
        Emit { delay, packets }
    }
}

/// One understood bridge request, as `execute` needs it.
struct Request<'a> {
    now: Instant,
    peer: PeerId,
    tx: u32,
    command: &'a Command,
    /// The command's sequence number, for replay detection.
    sno: Option<u32>,
    /// Its (peer, msg id) was seen before: answer again, change nothing.
    duplicate: bool,
}

/// The device's protocol state.
pub(crate) struct Logic {
    home: Arc<HomeRuntime>,
    slot: usize,
    pub(crate) packets: Packets,
    profile: ConnectProfile,
    relay_responds: bool,
    report_delay: Duration,
    counter_policy: CounterPolicy,
    rng: StdRng,
    last_tx: u32,
    clock: Option<ClockTime>,
    hello_acked: bool,
    pending: VecDeque<(Instant, &'static [Item])>,
    seen: VecDeque<(PeerId, MsgId)>,
    counters: Arc<Counters>,
}

/// Settings a [`Logic`] is built from.
pub(crate) struct LogicSettings {
    pub profile: ConnectProfile,
    pub relay_responds: bool,
    pub report_delay: Duration,
    pub counter_policy: CounterPolicy,
    pub seed: u64,
}

impl Logic {
    pub(crate) fn new(
        home: Arc<HomeRuntime>,
        slot: usize,
        packets: Packets,
        settings: LogicSettings,
        counters: Arc<Counters>,
    ) -> Self {
        Logic {
            home,
            slot,
            packets,
            profile: settings.profile,
            relay_responds: settings.relay_responds,
            report_delay: settings.report_delay,
            counter_policy: settings.counter_policy,
            rng: StdRng::seed_from_u64(settings.seed),
            last_tx: 0,
            clock: None,
            hello_acked: false,
            pending: VecDeque::new(),
            seen: VecDeque::with_capacity(SEEN_WINDOW),
            counters,
        }
    }

    fn me(&self) -> u16 {
        self.packets.id.mesh_id
    }

    /// True once the 0x28 arrived on this connection.
    pub(crate) fn hello_acked(&self) -> bool {
        self.hello_acked
    }

    /// A new connection: counters per policy, the hello and whatever the profile pipelines
    /// with it.
    pub(crate) fn start_connection(&mut self, first: bool) -> Vec<Emit> {
        let reset = match self.counter_policy {
            CounterPolicy::Reset => true,
            CounterPolicy::Continue => false,
            CounterPolicy::Random => self.rng.gen_bool(0.5),
        };
        if first || reset {
            self.packets.reset_counters();
        }
        self.hello_acked = false;
        self.pending.clear();
        self.seen.clear();
        let mut emits = vec![Emit::now(vec![self.packets.hello()])];
        for step in self.profile.steps() {
            if step.when == When::WithHello {
                emits.push(Emit::now(self.items(step.items)));
            }
        }
        emits
    }

    /// When [`Self::due`] next has something to send.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.pending.front().map(|(at, _)| *at)
    }

    /// Connect-sequence steps whose time has come.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<Emit> {
        let mut emits = Vec::new();
        while let Some((at, items)) = self.pending.front().copied() {
            if at > now {
                break;
            }
            self.pending.pop_front();
            let packets = self.items(items);
            if !packets.is_empty() {
                emits.push(Emit::now(packets));
            }
        }
        emits
    }

    fn items(&mut self, items: &[Item]) -> Vec<Bytes> {
        let mut out = Vec::new();
        for item in items {
            match item {
                Item::Connect => out.push(self.packets.connect()),
                Item::Tlv => out.push(self.packets.tlv()),
                Item::FirmwareNetwork => out.push(self.packets.firmware(false)),
                Item::FirmwareDevice => out.push(self.packets.firmware(true)),
                Item::Diagnostic => {
                    let connects = self.counters.snapshot().connects;
                    out.push(self.packets.diagnostic(self.clock.as_ref(), connects));
                }
                Item::SelfRecord => {
                    if let Some(s) = self.home.state(self.me()) {
                        out.push(self.packets.self_record(s));
                    }
                }
                Item::RelayRecords => {
                    let reach = self.packets.id.reach.clone();
                    out.extend(self.packets.relay_records(&self.home, &reach));
                }
                Item::Announce => {
                    let params = self.packets.announce_params();
                    out.push(self.packets.notification(0, params));
                }
            }
        }
        out
    }

    /// The 0xD3 to send after the transmit-idle time.
    pub(crate) fn heartbeat(&self) -> Emit {
        Counters::inc(&self.counters.heartbeats);
        Emit::now(vec![self.packets.heartbeat()])
    }

    /// Reports for state changes made elsewhere (another relay's command, a wall switch).
    pub(crate) fn on_dirty(&mut self, ids: IdSet) -> Vec<Emit> {
        let mut emits = Vec::new();
        let me = self.me();
        if ids.contains(me) {
            emits.push(Emit::now(self.own_report(self.last_tx)));
        }
        let relayed: Vec<u16> = ids.iter().filter(|id| *id != me).collect();
        if !relayed.is_empty() {
            emits.push(Emit::now(self.relay_report(&relayed)));
        }
        emits
    }

    fn own_report(&mut self, tx: u32) -> Vec<Bytes> {
        let Some(state) = self.home.state(self.me()) else {
            return Vec::new();
        };
        Counters::inc(&self.counters.state_reports);
        Counters::inc(&self.counters.status_packets);
        vec![
            self.packets.state_report(tx, state),
            self.packets.self_record(state),
        ]
    }

    fn relay_report(&mut self, ids: &[u16]) -> Vec<Bytes> {
        let reached: Vec<u16> = ids
            .iter()
            .copied()
            .filter(|id| self.packets.id.reach.contains(id))
            .collect();
        let packets = self.packets.relay_records(&self.home, &reached);
        Counters::add(&self.counters.status_packets, packets.len() as u64);
        packets
    }

    /// Acts on one whole packet from the bridge.
    pub(crate) fn on_packet(
        &mut self,
        now: Instant,
        raw: &[u8],
        chaos: &mut BehaviourEngine,
    ) -> Vec<Emit> {
        let c = &self.counters;
        let packet = match decode(raw) {
            Ok(p) => p,
            Err(_) => {
                Counters::inc(&c.decode_errors);
                return Vec::new();
            }
        };
        match packet {
            Packet::HelloAck => {
                Counters::inc(&c.hello_acks);
                if !self.hello_acked {
                    self.hello_acked = true;
                    self.schedule_after_hello_ack(now);
                    return self.due(now);
                }
            }
            Packet::ConnectAck(time) => self.clock = Some(time),
            Packet::HeartbeatAck => Counters::inc(&c.heartbeat_acks),
            Packet::InfoAck { .. } | Packet::StatusAck { .. } => Counters::inc(&c.acks),
            Packet::Receipt { .. } => Counters::inc(&c.receipts_received),
            // 0x78 / 0xA8: cloud notices; devices never answer them
            // (docs/protocol.md#cloud-notices).
            Packet::Notice { .. } | Packet::SessionNotice { .. } => {}
            Packet::SessionOpen { peer, msg } => {
                Counters::inc(&c.session_opens);
                return vec![Emit::now(vec![self.packets.session_reply(peer, msg)])];
            }
            Packet::Data(framed) => return self.on_data(now, framed, chaos),
            _ => Counters::inc(&c.unexpected),
        }
        Vec::new()
    }

    fn schedule_after_hello_ack(&mut self, now: Instant) {
        for step in self.profile.steps() {
            if let When::AfterHelloAck(delay) = step.when {
                self.pending.push_back((now + delay, step.items));
            }
        }
    }

    fn on_data(&mut self, now: Instant, f: Framed<'_>, chaos: &mut BehaviourEngine) -> Vec<Emit> {
        let fate = chaos.receipt();
        let request = match &f.frame {
            Ok(frame) if frame.dir == FrameDir::Request => match frame.content() {
                FrameContent::Command { command, sno } => Some((frame.tx, command, sno)),
                _ => None,
            },
            Ok(_) => {
                Counters::inc(&self.counters.unexpected);
                None
            }
            Err(_) => {
                Counters::inc(&self.counters.frame_errors);
                None
            }
        };
        let Some((tx, command, sno)) = request else {
            return self.acknowledge(fate, f.peer, f.msg, Vec::new(), Vec::new());
        };
        Counters::inc(&self.counters.commands);
        if fate == ReceiptFate::Only {
            Counters::inc(&self.counters.receipt_only);
            return self.acknowledge(fate, f.peer, f.msg, Vec::new(), Vec::new());
        }
        let duplicate = self.seen.contains(&(f.peer, f.msg));
        if duplicate {
            Counters::inc(&self.counters.duplicates);
        } else {
            if self.seen.len() >= SEEN_WINDOW {
                self.seen.pop_front();
            }
            self.seen.push_back((f.peer, f.msg));
        }
        let request = Request {
            now,
            peer: f.peer,
            tx,
            command: &command,
            sno,
            duplicate,
        };
        let (responses, later) = self.execute(&request);
        self.acknowledge(fate, f.peer, f.msg, responses, later)
    }

    /// Response(s) now and report write(s) later for one understood request.
    fn execute(&mut self, r: &Request<'_>) -> (Vec<Bytes>, Vec<Emit>) {
        let (peer, tx) = (r.peer, r.tx);
        let op = r.command.frame_op();
        match r.command {
            Command::MeshInfoRequest => (self.packets.mesh_info(&self.home, peer, tx), Vec::new()),
            Command::MeshAck => (Vec::new(), Vec::new()),
            Command::ModeFollowUp => (vec![self.packets.response(peer, tx, op)], Vec::new()),
            Command::Query { .. } => {
                let response = vec![self.packets.response(peer, tx, op)];
                if r.duplicate {
                    return (response, Vec::new());
                }
                let params = self.packets.announce_params();
                let announce = self.packets.notification(tx, params);
                (
                    response,
                    vec![Emit::later(self.report_delay, vec![announce])],
                )
            }
            _ => self.execute_state(r),
        }
    }

    fn execute_state(&mut self, r: &Request<'_>) -> (Vec<Bytes>, Vec<Emit>) {
        let (tx, command) = (r.tx, r.command);
        let target = command.target().unwrap_or(0);
        let spec = &self.home.spec;
        let known = spec.device(target).is_some() || spec.group(target).is_some();
        if !known {
            Counters::inc(&self.counters.unknown_targets);
            return (Vec::new(), Vec::new());
        }
        let own_or_group = target == self.me() || spec.group(target).is_some();
        let response = if own_or_group || self.relay_responds {
            vec![self.packets.response(r.peer, tx, command.frame_op())]
        } else {
            Vec::new()
        };
        if r.duplicate {
            return (response, Vec::new());
        }
        self.last_tx = tx;
        let ids = match self
            .home
            .apply_command(command, r.sno, Some(self.slot), r.now)
        {
            Outcome::Applied(ids) => ids,
            Outcome::Replay => {
                Counters::inc(&self.counters.replays);
                return (response, Vec::new());
            }
            Outcome::UnknownTarget => return (Vec::new(), Vec::new()),
        };
        (response, self.reports_after(tx, command, &ids))
    }

    /// What follows an applied command: own report (with the command's tx) or a switch-mode
    /// notification, and relay records for the other changed ids this device reaches.
    fn reports_after(&mut self, tx: u32, command: &Command, ids: &[u16]) -> Vec<Emit> {
        let me = self.me();
        let mut packets = Vec::new();
        if ids.contains(&me) {
            if let Command::SwitchMode { mode, .. } = command {
                let params = self.packets.switch_mode_params(*mode);
                packets.push(self.packets.notification(tx, params));
            } else {
                packets.extend(self.own_report(tx));
            }
        }
        let others: Vec<u16> = ids.iter().copied().filter(|id| *id != me).collect();
        if !others.is_empty() {
            packets.extend(self.relay_report(&others));
        }
        if packets.is_empty() {
            Vec::new()
        } else {
            vec![Emit::later(self.report_delay, packets)]
        }
    }

    /// Puts the receipt where its fate says: after the responses in the same write (normal),
    /// alone and late, or nowhere.
    fn acknowledge(
        &mut self,
        fate: ReceiptFate,
        peer: PeerId,
        msg: MsgId,
        mut responses: Vec<Bytes>,
        later: Vec<Emit>,
    ) -> Vec<Emit> {
        let c = &self.counters;
        Counters::add(&c.responses, responses.len() as u64);
        let receipt = self.packets.receipt(peer, msg);
        let mut emits = Vec::with_capacity(2 + later.len());
        match fate {
            ReceiptFate::Normal | ReceiptFate::Only => {
                Counters::inc(&c.receipts);
                responses.push(receipt);
            }
            ReceiptFate::Delayed(d) => {
                Counters::inc(&c.receipts);
                Counters::inc(&c.receipts_delayed);
                emits.push(Emit::later(d, vec![receipt]));
            }
            ReceiptFate::Dropped => Counters::inc(&c.receipts_dropped),
        }
        if !responses.is_empty() {
            emits.insert(0, Emit::now(responses));
        }
        emits.extend(later);
        emits
    }
}
