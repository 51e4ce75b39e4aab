//! One simulated Wi-Fi device as a task: connect → TLS → hello → connect sequence → steady
//! state, and again after every drop, until the simulator stops.
//!
//! Why it exists: one task per device owns its socket, its chaos engines and its protocol
//! [`Logic`]; everything else talks to it through a bounded control channel (capacity
//! [`CONTROL_QUEUE`]; a full queue makes the handle wait) or reads its shared counters and log.
//!
//! The loop (`run_connection`) selects over cancellation, control messages, socket reads, the
//! home's "something to report" notification and one timer (the earliest of: heartbeat, next
//! connect-sequence step, next chaos release, hello timeout, end of a blackhole, throttled
//! read). Writes happen between selects, bounded by the write timeout.
//! Cancel-safety of the `select!` branches: `read_buf` is cancel-safe (no bytes are lost if
//! another branch wins); `recv`, `notified` and `sleep_until` are too.
//!
//! Reconnect: after a drop the device waits `reconnect_ms × (1 ± jitter)`
//! (`docs/protocol.md#timing`: 2.6 s on average), doubling after each failed attempt up to
//! `reconnect_max_ms`; a reconnect storm waits only `storm_gap_ms`. Must never panic on anything
//! the bridge sends, and never leave a task behind (it is spawned on the simulator's tracker and
//! ends on its token).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use openssl::ssl::SslConnector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_openssl::SslStream;
use tokio_util::sync::CancellationToken;

use super::behaviour::BehaviourEngine;
use super::chaos::{Chaos, ChaosCounters, Note, Partition};
use super::config::{SimDeviceKey, Timing};
use super::engine::{PacketEngine, Release};
use super::recorder::{PacketLog, Recorder};
use super::session::{Emit, Logic};
use super::state::Watch;
use super::stats::Counters;
use crate::capture::Direction;
use crate::protocol::{Framer, MAX_BODY_LEN};

/// Control messages queued per device before the handle has to wait.
pub const CONTROL_QUEUE: usize = 16;
/// Largest read per `read` call when not throttled.
const READ_CHUNK: usize = 4096;

/// Where a device's link stands, as seen by handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Waiting to (re)connect or connecting.
    Connecting,
    /// TLS is up, the hello is sent, no 0x28 yet.
    Connected,
    /// The 0x28 arrived: the bridge accepted the device.
    Ready,
    /// Kept offline by a handle.
    Offline,
    /// The simulator stopped.
    Stopped,
}

/// Runtime changes a handle can ask of a device.
#[derive(Debug)]
pub(crate) enum Control {
    SetChaos(Box<Chaos>),
    Partition(Partition),
    Heal,
    SetOffline(bool),
}

/// What handles read without asking the task.
pub(crate) struct Shared {
    pub counters: Arc<Counters>,
    pub log: PacketLog,
    pub to_bridge: Arc<ChaosCounters>,
    pub from_bridge: Arc<ChaosCounters>,
    pub link: watch::Sender<LinkState>,
}

/// Why a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Cancelled,
    Closed,
    Failed,
    Storm,
    Partition,
    Offline,
    HelloTimeout,
}

/// What woke the connection loop.
enum Event {
    Cancelled,
    Control(Option<Control>),
    Read(std::io::Result<usize>),
    Dirty,
    Timer,
}

/// Everything one device task owns.
pub(crate) struct Device {
    pub key: SimDeviceKey,
    pub addr: SocketAddr,
    pub connector: Arc<SslConnector>,
    pub logic: Logic,
    pub out_engine: PacketEngine,
    pub in_engine: PacketEngine,
    pub behaviour: BehaviourEngine,
    pub shared: Arc<Shared>,
    pub control: mpsc::Receiver<Control>,
    pub watch: Arc<Watch>,
    pub timing: Timing,
    pub blackhole_ms: u64,
    pub recorder: Option<Arc<Recorder>>,
    pub cancel: CancellationToken,
    pub start_delay: Duration,
    pub offline: bool,
}

/// Per-connection state.
struct Conn {
    stream: SslStream<TcpStream>,
    rbuf: BytesMut,
    framer: Framer,
    /// Emits waiting for their delay (report delay, delayed receipts).
    scheduled: Vec<(Instant, Vec<Bytes>)>,
    /// Outbound packets released by chaos, by due time.
    out: Vec<Release>,
    /// Inbound packets released by chaos, by due time.
    inbound: Vec<Release>,
    last_sent: Instant,
    started: Instant,
    /// `Some(None)`: blackholed until healed; `Some(Some(t))`: until `t`.
    blackhole: Option<Option<Instant>>,
    next_read: Instant,
}

impl Device {
    /// Runs until cancelled.
    pub(crate) async fn run(mut self) {
        let mut delay = self.start_delay;
        let mut failures = 0u32;
        let mut first = true;
        loop {
            if !self.wait(delay).await {
                break;
            }
            self.set_link(LinkState::Connecting);
            let stream = match self.connect().await {
                Ok(s) => s,
                Err(()) => {
                    Counters::inc(&self.shared.counters.connect_failures);
                    failures = failures.saturating_add(1);
                    delay = self.backoff(failures);
                    continue;
                }
            };
            failures = 0;
            Counters::inc(&self.shared.counters.connects);
            let end = self.run_connection(stream, first).await;
            first = false;
            Counters::inc(&self.shared.counters.disconnects);
            tracing::debug!(device = ?self.key, ?end, "connection ended");
            delay = match end {
                End::Cancelled => break,
                End::Storm => Timing::ms(self.behaviour.link().storm_gap_ms),
                _ => self.backoff(0),
            };
        }
        self.set_link(LinkState::Stopped);
    }

    fn set_link(&self, state: LinkState) {
        self.shared.link.send_replace(state);
    }

    fn backoff(&mut self, failures: u32) -> Duration {
        let t = &self.timing;
        let base = Timing::ms(t.reconnect_ms)
            .saturating_mul(1u32 << failures.min(16))
            .min(Timing::ms(t.reconnect_max_ms).max(Timing::ms(t.reconnect_ms)));
        let factor = self.behaviour.backoff_factor(t.reconnect_jitter);
        Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(base)
    }

    /// Waits `delay` (and while offline), handling control messages. False when cancelled.
    async fn wait(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            if self.offline {
                self.set_link(LinkState::Offline);
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return false,
                ctl = self.control.recv() => match ctl {
                    Some(ctl) => { self.control_idle(ctl); }
                    None => return false,
                },
                _ = sleep_until(until), if !self.offline => return true,
            }
        }
    }

    fn control_idle(&mut self, ctl: Control) {
        match ctl {
            Control::SetChaos(c) => self.set_chaos(&c),
            Control::SetOffline(off) => self.offline = off,
            Control::Partition(_) | Control::Heal => {}
        }
    }

    fn set_chaos(&mut self, chaos: &Chaos) {
        self.out_engine.set_config(chaos.to_bridge.clone());
        self.in_engine.set_config(chaos.from_bridge.clone());
        self.behaviour.set_config(chaos);
        self.blackhole_ms = chaos.link.blackhole_ms;
    }

    async fn connect(&self) -> Result<SslStream<TcpStream>, ()> {
        let attempt = async {
            let tcp = TcpStream::connect(self.addr).await.map_err(|e| {
                tracing::debug!(device = ?self.key, error = %e, "TCP connect failed");
            })?;
            let _ = tcp.set_nodelay(true);
            super::tls::connect_with(&self.connector, tcp)
                .await
                .map_err(|e| tracing::debug!(device = ?self.key, error = %e, "TLS failed"))
        };
        match timeout(Timing::ms(self.timing.connect_timeout_ms), attempt).await {
            Ok(result) => result,
            Err(_) => Err(()),
        }
    }

    async fn run_connection(&mut self, stream: SslStream<TcpStream>, first: bool) -> End {
        let now = Instant::now();
        self.set_link(LinkState::Connected);
        self.out_engine.reset_link();
        self.in_engine.reset_link();
        let _ = self.watch.take();
        let mut conn = Conn {
            stream,
            rbuf: BytesMut::with_capacity(1024),
            framer: Framer::with_max_body(MAX_BODY_LEN),
            scheduled: Vec::new(),
            out: Vec::new(),
            inbound: Vec::new(),
            last_sent: now,
            started: now,
            blackhole: None,
            next_read: now,
        };
        let emits = self.logic.start_connection(first);
        self.emit(&mut conn, now, emits);
        if self.behaviour.storm() {
            Counters::inc(&self.shared.counters.storms);
            let _ = self.flush(&mut conn, true).await;
            close(conn, Partition::Reset).await;
            return End::Storm;
        }
        let end = self.connection_loop(&mut conn).await;
        let how = match end {
            End::Partition => None,
            End::Failed | End::HelloTimeout => Some(Partition::Reset),
            _ => Some(Partition::Fin),
        };
        if let Some(how) = how {
            close(conn, how).await;
        }
        end
    }

    async fn connection_loop(&mut self, conn: &mut Conn) -> End {
        loop {
            if let Err(end) = self.flush(conn, false).await {
                return end;
            }
            let now = Instant::now();
            if !self.logic.hello_acked()
                && now >= conn.started + Timing::ms(self.timing.hello_timeout_ms)
            {
                return End::HelloTimeout;
            }
            let deadline = self.deadline(conn);
            let read_ok = now >= conn.next_read;
            let chunk = self.read_chunk();
            let event = {
                let mut limited = (&mut conn.rbuf).limit(chunk);
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => Event::Cancelled,
                    ctl = self.control.recv() => Event::Control(ctl),
                    read = conn.stream.read_buf(&mut limited), if read_ok => Event::Read(read),
                    _ = self.watch.notify.notified() => Event::Dirty,
                    _ = sleep_until(deadline) => Event::Timer,
                }
            };
            match event {
                Event::Cancelled | Event::Control(None) => return End::Cancelled,
                Event::Control(Some(ctl)) => {
                    if let Some(end) = self.control_connected(conn, ctl).await {
                        return end;
                    }
                }
                Event::Read(Ok(0)) => return End::Closed,
                Event::Read(Ok(n)) => self.on_read(conn, n),
                Event::Read(Err(_)) => return End::Failed,
                Event::Dirty => {
                    let ids = self.watch.take();
                    let emits = self.logic.on_dirty(ids);
                    self.emit(conn, Instant::now(), emits);
                }
                Event::Timer => {}
            }
            self.on_timers(conn, Instant::now());
        }
    }

    fn read_chunk(&self) -> usize {
        match self.behaviour.link().slow_read_bytes_per_sec {
            0 => READ_CHUNK,
            rate => usize::try_from(rate / 10)
                .unwrap_or(READ_CHUNK)
                .clamp(1, READ_CHUNK),
        }
    }

    fn deadline(&self, conn: &Conn) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let heartbeat = conn.last_sent + Timing::ms(self.timing.heartbeat_idle_ms);
        let hello = (!self.logic.hello_acked())
            .then(|| conn.started + Timing::ms(self.timing.hello_timeout_ms));
        let blackhole = conn.blackhole.flatten();
        let throttled = (conn.next_read > Instant::now()).then_some(conn.next_read);
        [
            Some(heartbeat),
            hello,
            blackhole,
            throttled,
            self.logic.next_deadline(),
            conn.scheduled.iter().map(|(t, _)| *t).min(),
            conn.out.first().map(|r| r.due),
            conn.inbound.first().map(|r| r.due),
            self.out_engine.next_deadline(),
            self.in_engine.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(far)
    }

    async fn control_connected(&mut self, conn: &mut Conn, ctl: Control) -> Option<End> {
        match ctl {
            Control::Partition(kind) => return self.partition(conn, kind).await,
            Control::Heal => conn.blackhole = None,
            Control::SetOffline(true) => {
                self.offline = true;
                return Some(End::Offline);
            }
            other => self.control_idle(other),
        }
        None
    }

    async fn partition(&mut self, conn: &mut Conn, kind: Partition) -> Option<End> {
        Counters::inc(&self.shared.counters.partitions);
        tracing::debug!(device = ?self.key, ?kind, "partition");
        match kind {
            Partition::Blackhole => {
                conn.blackhole = Some(
                    (self.blackhole_ms > 0).then(|| Instant::now() + Timing::ms(self.blackhole_ms)),
                );
                None
            }
            Partition::Reset | Partition::Fin => {
                set_linger_or_shutdown(conn, kind).await;
                Some(End::Partition)
            }
        }
    }

    fn on_timers(&mut self, conn: &mut Conn, now: Instant) {
        if conn.blackhole.flatten().is_some_and(|t| t <= now) {
            conn.blackhole = None;
        }
        if now >= conn.last_sent + Timing::ms(self.timing.heartbeat_idle_ms) {
            let hb = self.logic.heartbeat();
            self.emit(conn, now, vec![hb]);
        }
        let due = self.logic.due(now);
        self.emit(conn, now, due);
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut conn.scheduled)
            .into_iter()
            .partition(|(t, _)| *t <= now);
        conn.scheduled = waiting;
        for (_, packets) in ready {
            self.through_chaos(conn, now, packets);
        }
        self.out_engine.expire(now, &mut conn.out);
        conn.out.sort_by_key(|r| r.due);
        let mut inbound = std::mem::take(&mut conn.inbound);
        self.in_engine.expire(now, &mut inbound);
        inbound.sort_by_key(|r| r.due);
        let split = inbound.partition_point(|r| r.due <= now);
        conn.inbound = inbound.split_off(split);
        for release in inbound {
            self.act_on(conn, now, release);
        }
    }

    /// Queues what the logic wants to send: now through chaos, later via `scheduled`.
    fn emit(&mut self, conn: &mut Conn, now: Instant, emits: Vec<Emit>) {
        for e in emits {
            if e.packets.is_empty() {
                continue;
            }
            if e.delay.is_zero() {
                self.through_chaos(conn, now, e.packets);
            } else {
                conn.scheduled.push((now + e.delay, e.packets));
            }
        }
    }

    fn through_chaos(&mut self, conn: &mut Conn, now: Instant, packets: Vec<Bytes>) {
        // Transmit-idle is measured from what the device hands to its link
        // (docs/protocol.md#heartbeat), whatever chaos then does to it.
        conn.last_sent = now;
        let mut lost = Vec::new();
        for p in packets {
            self.out_engine.process(now, p, &mut conn.out, &mut lost);
        }
        conn.out.sort_by_key(|r| r.due);
        for (bytes, note) in lost {
            self.log(Direction::DeviceToServer, bytes, Some(note));
        }
    }

    fn on_read(&mut self, conn: &mut Conn, n: usize) {
        let now = Instant::now();
        let c = &self.shared.counters;
        Counters::add(&c.bytes_received, n as u64);
        if let Some(rate) = std::num::NonZeroU64::new(self.behaviour.link().slow_read_bytes_per_sec)
        {
            conn.next_read = now + Duration::from_secs_f64(n as f64 / rate.get() as f64);
        }
        if let Some(r) = &self.recorder {
            let start = conn.rbuf.len() - n;
            r.record(
                Direction::ServerToDevice,
                Bytes::copy_from_slice(&conn.rbuf[start..]),
            );
        }
        if conn.blackhole.is_some() {
            conn.rbuf.clear();
            return;
        }
        let mut released = Vec::new();
        let mut lost = Vec::new();
        while let Some(next) = conn.framer.next_packet(&mut conn.rbuf) {
            match next {
                Ok(packet) => {
                    Counters::inc(&c.packets_received);
                    // A framed packet is a slice of the read buffer and would keep its whole
                    // allocation alive while it sits in the log; packets are small, copy them.
                    let packet = Bytes::copy_from_slice(&packet);
                    self.in_engine
                        .process(now, packet, &mut released, &mut lost);
                }
                Err(e) => {
                    Counters::inc(&c.junk_events);
                    Counters::add(&c.junk_bytes, e.discarded() as u64);
                }
            }
        }
        for (bytes, note) in lost {
            self.log(Direction::ServerToDevice, bytes, Some(note));
        }
        conn.inbound.extend(released);
        conn.inbound.sort_by_key(|r| r.due);
        let split = conn.inbound.partition_point(|r| r.due <= now);
        let ready: Vec<Release> = conn.inbound.drain(..split).collect();
        for release in ready {
            self.act_on(conn, now, release);
        }
    }

    fn act_on(&mut self, conn: &mut Conn, now: Instant, release: Release) {
        self.log(
            Direction::ServerToDevice,
            release.bytes.clone(),
            release.note,
        );
        let emits = self
            .logic
            .on_packet(now, &release.bytes, &mut self.behaviour);
        if self.logic.hello_acked() {
            self.set_link(LinkState::Ready);
        }
        self.emit(conn, now, emits);
    }

    /// Writes every released packet that is due (all of them with `all`), as one write.
    async fn flush(&mut self, conn: &mut Conn, all: bool) -> Result<(), End> {
        let now = Instant::now();
        let split = if all {
            conn.out.len()
        } else {
            conn.out.partition_point(|r| r.due <= now)
        };
        if split == 0 {
            return Ok(());
        }
        let due: Vec<Release> = conn.out.drain(..split).collect();
        let mut buf = BytesMut::new();
        let mut partition = None;
        for r in due {
            if conn.blackhole.is_some() {
                self.log(Direction::DeviceToServer, r.bytes, Some(Note::Blackholed));
                continue;
            }
            buf.put_slice(&r.bytes);
            Counters::inc(&self.shared.counters.packets_sent);
            self.log(Direction::DeviceToServer, r.bytes, r.note);
            if partition.is_none() {
                partition = self.behaviour.partition();
            }
        }
        if !buf.is_empty() {
            self.write(conn, buf.freeze()).await?;
        }
        match partition {
            Some(kind) => match self.partition(conn, kind).await {
                Some(end) => Err(end),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    async fn write(&mut self, conn: &mut Conn, bytes: Bytes) -> Result<(), End> {
        if let Some(r) = &self.recorder {
            r.record(Direction::DeviceToServer, bytes.clone());
        }
        Counters::add(&self.shared.counters.bytes_sent, bytes.len() as u64);
        let limit = Timing::ms(self.timing.write_timeout_ms);
        let mut remaining = bytes;
        let write = async {
            while remaining.has_remaining() {
                conn.stream.write_all_buf(&mut remaining).await?;
            }
            conn.stream.flush().await
        };
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(End::Cancelled),
            result = timeout(limit, write) => match result {
                Ok(Ok(())) => Ok(()),
                _ => Err(End::Failed),
            },
        }
    }

    fn log(&self, dir: Direction, bytes: Bytes, note: Option<Note>) {
        if self.shared.log.push(dir, bytes, note) {
            Counters::inc(&self.shared.counters.log_evicted);
        }
    }
}

/// RST: zero linger so that dropping the socket resets it. FIN: shut the write half now.
async fn set_linger_or_shutdown(conn: &mut Conn, how: Partition) {
    match how {
        Partition::Reset => {
            let _ = conn.stream.get_ref().set_zero_linger();
        }
        Partition::Fin => {
            let _ = conn.stream.get_mut().shutdown().await;
        }
        Partition::Blackhole => {}
    }
}

async fn close(mut conn: Conn, how: Partition) {
    set_linger_or_shutdown(&mut conn, how).await;
    drop(conn);
}
