//! Shared world for the `server_*` integration tests: a real bridge (listener, sessions, routes,
//! state store) on 127.0.0.1 port 0, and scripted devices that speak the protocol over the same
//! device-shaped TLS as the simulator. Each test builds its own world, so tests share no state and run in parallel.
//!
//! Time: these tests drive real sockets, so they use the real clock with short configured delays
//! and generous deadlines, and never assert on how long something took.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use cync_bridge::config::{self, Config, RawConfig};
use cync_bridge::device::{DeviceKey, HomeId, StateStore};
use cync_bridge::protocol::content::MeshRecord;
use cync_bridge::protocol::encode::{self, StateReportSpec};
use cync_bridge::protocol::{
    decode, Command, FrameContent, Framer, LightState, MsgId, Packet, PeerId, StatusRecord,
    Stuffing,
};
use cync_bridge::server::{DeviceServer, Routes, Services};
use cync_bridge::telemetry::{Health, Metrics};
use cync_bridge::transport::{CommandOutcome, CommandReport, CommandRequest, LegacyTransport};
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_openssl::SslStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest any single wait in a test may take before it is a failure (not a timing assertion:
/// a generous bound so a bug fails the test instead of hanging it).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Fast timings for tests, on top of the built-in defaults; `extra` (TOML) overrides them.
pub fn test_config(data_dir: &std::path::Path, extra: &str) -> Config {
    let base = format!(
        r#"
        data_dir = "{}"
        timezone = "UTC"
        [server]
        listen = "127.0.0.1:0"
        session_open_delay = "10ms"
        mesh_info_delay = "10ms"
        over_limit_hold = "0s"
        [telemetry]
        listen = "127.0.0.1:0"
        "#,
        data_dir.display()
    );
    let figment = Figment::from(Serialized::defaults(RawConfig::default()))
        .merge(Toml::string(&base))
        .merge(Toml::string(extra));
    config::validate(&figment).expect("test config is valid")
}

/// A running bridge: device listener plus shared services. Dropping it shuts it down.
pub struct Bridge {
    pub addr: SocketAddr,
    pub services: Services,
    pub config: Config,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub health: Health,
    _dir: tempfile::TempDir,
}

impl Bridge {
    /// Starts a bridge with [`test_config`] plus `extra`.
    pub async fn start(extra: &str) -> Bridge {
        Self::start_seeded(extra, None).await
    }

    /// [`Self::start`] with `server.counter_seed`: sessions' own counters start from fixed
    /// values, so two runs send identical bytes.
    pub async fn start_seeded(extra: &str, counter_seed: Option<u64>) -> Bridge {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = test_config(dir.path(), extra);
        let services = Services::new(&config.state, Metrics::new());
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let health = Health::new();
        let mut settings = config.device_server();
        settings.server.counter_seed = counter_seed;
        let server = DeviceServer::bind(&settings, &services, shutdown.clone())
            .await
            .expect("bind");
        let addr = server.local_addr().expect("local addr");
        server.spawn(&tracker, &health);
        Bridge {
            addr,
            services,
            config,
            shutdown,
            tracker,
            health,
            _dir: dir,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.services.metrics
    }

    pub fn routes(&self) -> &Arc<Routes> {
        &self.services.routes
    }

    pub fn state(&self) -> &Arc<StateStore> {
        &self.services.state
    }

    /// One metric sample, 0 when the series does not exist yet.
    pub fn sample(&self, series: &str) -> f64 {
        self.metrics().sample_value(series).unwrap_or(0.0)
    }

    /// Waits until `check` holds, polling; panics after [`PATIENCE`].
    pub async fn until(&self, what: &str, mut check: impl FnMut(&Bridge) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !check(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sends one power command on the legacy path.
    pub async fn toggle(&self, mesh: u16, on: bool, timeout: Duration) -> CommandReport {
        let key = DeviceKey::new(HomeId::DEFAULT, mesh);
        let request = CommandRequest::new(key, Command::Power { target: mesh, on }, timeout);
        LegacyTransport::new(&self.services)
            .execute(request, &CancellationToken::new())
            .await
    }

    /// Toggles and asserts success.
    pub async fn toggle_ok(&self, mesh: u16, on: bool) -> CommandReport {
        let report = self.toggle(mesh, on, Duration::from_secs(5)).await;
        assert_eq!(report.outcome, CommandOutcome::Success, "{report:?}");
        report
    }

    pub fn key(mesh: u16) -> DeviceKey {
        DeviceKey::new(HomeId::DEFAULT, mesh)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A device id for test device number `n`.
pub fn device_id(n: u8) -> PeerId {
    PeerId([0x3d, 0x54, 0x60, n])
}

/// One device connection driven packet by packet by the test.
pub struct Device {
    pub id: PeerId,
    read: ReadHalf<SslStream<TcpStream>>,
    write: WriteHalf<SslStream<TcpStream>>,
    buf: BytesMut,
    framer: Framer,
    backlog: VecDeque<Vec<u8>>,
}

impl Device {
    /// Opens TLS like a real device (no hello yet).
    pub async fn connect(addr: SocketAddr, id: PeerId) -> Device {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let tls = cync_bridge::sim::tls::connect(tcp).await.expect("TLS");
        let (read, write) = tokio::io::split(tls);
        Device {
            id,
            read,
            write,
            buf: BytesMut::new(),
            framer: Framer::default(),
            backlog: VecDeque::new(),
        }
    }

    /// Connects and says hello; returns once the 0x28 arrived.
    pub async fn hello(addr: SocketAddr, id: PeerId) -> Device {
        let mut device = Device::connect(addr, id).await;
        let mut out = BytesMut::new();
        encode::hello(&mut out, id, b"1e07d8ce0a617a37");
        device.send(&out).await;
        let ack = device.next_of(0x28).await;
        assert_eq!(ack, [0x28, 0, 0, 0, 2, 0, 0]);
        device
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.expect("device write");
    }

    /// The next packet from the bridge; `None` when the bridge closed the connection. Fails
    /// the test after [`PATIENCE`].
    pub async fn try_next(&mut self) -> Option<Vec<u8>> {
        tokio::time::timeout(PATIENCE, self.receive())
            .await
            .expect("bridge answered in time")
    }

    /// Like [`Self::try_next`], without a deadline (for devices that idle).
    async fn receive(&mut self) -> Option<Vec<u8>> {
        if let Some(packet) = self.backlog.pop_front() {
            return Some(packet);
        }
        loop {
            if let Some(result) = self.framer.next_packet(&mut self.buf) {
                return Some(
                    result
                        .expect("the bridge sends well-formed packets")
                        .to_vec(),
                );
            }
            match self.read.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    pub async fn next(&mut self) -> Vec<u8> {
        self.try_next().await.expect("connection still open")
    }

    /// The next packet of type `kind`; other packets are kept for later.
    pub async fn next_of(&mut self, kind: u8) -> Vec<u8> {
        if let Some(i) = self.backlog.iter().position(|p| p[0] == kind) {
            return self.backlog.remove(i).unwrap_or_default();
        }
        let mut skipped = Vec::new();
        let found = loop {
            let packet = self.read_packet().await;
            if packet[0] == kind {
                break packet;
            }
            skipped.push(packet);
        };
        self.backlog.extend(skipped);
        found
    }

    async fn read_packet(&mut self) -> Vec<u8> {
        loop {
            if let Some(result) = self.framer.next_packet(&mut self.buf) {
                return result.expect("well-formed").to_vec();
            }
            let read = tokio::time::timeout(PATIENCE, self.read.read_buf(&mut self.buf))
                .await
                .expect("bridge answered in time")
                .expect("read");
            assert!(read > 0, "bridge closed the connection");
        }
    }

    /// Waits until the bridge closes the connection (packets in between are discarded).
    pub async fn closed(&mut self) {
        while self.try_next().await.is_some() {}
    }

    /// Splits into raw halves for tests that read and write concurrently.
    pub fn into_split(
        self,
    ) -> (
        ReadHalf<SslStream<TcpStream>>,
        WriteHalf<SslStream<TcpStream>>,
    ) {
        (self.read, self.write)
    }
}

/// How an [`AutoDevice`] answers commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `f9` response + 0x7B receipt, then a state report (a Wi-Fi device).
    Full,
    /// Receipt, then a relay record for the target (a Bluetooth-only device behind a relay):
    /// no `f9`.
    RelayRecordOnly,
    /// `f9` response + receipt and no report (a relay whose target never reports back).
    ResponseOnly,
    /// Only the 0x7B receipt.
    ReceiptOnly,
    /// Nothing.
    Silent,
}

/// A device that answers the bridge on its own: 0xAB for 0xA3, its mesh list for a mesh-info
/// request, and power commands as [`Answer`] says. Every command it receives is reported.
pub struct AutoDevice {
    pub commands: mpsc::Receiver<Command>,
    pub task: tokio::task::JoinHandle<()>,
}

impl AutoDevice {
    /// Connects, says hello, and answers until the bridge closes the connection or the
    /// returned task is aborted. `own` is the device's own mesh id, `relays` the mesh ids it
    /// reaches over Bluetooth.
    pub async fn start(
        addr: SocketAddr,
        n: u8,
        own: u16,
        relays: Vec<u16>,
        answer: Answer,
    ) -> Self {
        let device = Device::hello(addr, device_id(n)).await;
        let (tx, commands) = mpsc::channel(1024);
        let task = tokio::spawn(answer_loop(device, own, relays, answer, tx));
        AutoDevice { commands, task }
    }

    /// Drops the connection, like a relay losing power.
    pub fn kill(&self) {
        self.task.abort();
    }
}

async fn answer_loop(
    mut device: Device,
    own: u16,
    relays: Vec<u16>,
    answer: Answer,
    seen: mpsc::Sender<Command>,
) {
    // The device's own msg counter (`docs/protocol.md#msg-id`): every packet it sends gets a fresh value, as real
    // devices do; a repeated one is a retransmission and the bridge may drop it.
    let mut counter: u16 = 0x100;
    while let Some(packet) = device.receive().await {
        let mut out = BytesMut::new();
        match decode(&packet) {
            Ok(Packet::SessionOpen { peer, msg }) => encode::session_reply(&mut out, peer, msg),
            Ok(Packet::Data(framed)) => {
                let Ok(frame) = framed.frame else { continue };
                let FrameContent::Command { command, .. } = frame.content() else {
                    continue;
                };
                let _ = seen.try_send(command);
                let reply = Reply {
                    peer: framed.peer,
                    msg: framed.msg,
                    tx: frame.tx,
                    own_msg: counter,
                };
                counter = counter.wrapping_add(Reply::MSGS_PER_ANSWER);
                reply.answer(&mut out, device.id, &command, own, &relays, answer);
            }
            _ => {}
        }
        if !out.is_empty() {
            device.send(&out).await;
        }
    }
}

struct Reply {
    peer: PeerId,
    msg: MsgId,
    tx: u32,
    /// First of the device's own msg counter values this answer may use.
    own_msg: u16,
}

impl Reply {
    /// Own msg ids one answer may use (mesh-info chunks, or a response and a report).
    const MSGS_PER_ANSWER: u16 = 32;

    /// The device's `n`-th own msg id of this answer.
    fn own(&self, n: usize) -> MsgId {
        MsgId::from_counter(self.own_msg.wrapping_add(n as u16))
    }

    fn answer(
        &self,
        out: &mut BytesMut,
        id: PeerId,
        command: &Command,
        own: u16,
        relays: &[u16],
        answer: Answer,
    ) {
        match command {
            Command::MeshInfoRequest => {
                encode::receipt(out, self.peer, self.msg);
                let mut records = vec![mesh_record(own, 0x89)];
                records.extend(relays.iter().map(|m| mesh_record(*m, 0)));
                for (n, chunk) in records
                    .chunks(encode::MAX_MESH_RECORDS_PER_FRAME)
                    .enumerate()
                {
                    encode::mesh_info_response(
                        out,
                        self.peer,
                        self.own(n),
                        self.tx,
                        chunk,
                        Stuffing::Raw,
                    );
                }
            }
            Command::Power { target, on } => self.power(out, id, *target, *on, own, answer),
            _ => encode::receipt(out, self.peer, self.msg),
        }
    }

    fn power(
        &self,
        out: &mut BytesMut,
        id: PeerId,
        target: u16,
        on: bool,
        own: u16,
        answer: Answer,
    ) {
        let state = LightState {
            on,
            brightness: 50,
            temperature: 10,
            rgb: [0; 3],
        };
        match answer {
            Answer::Silent => {}
            Answer::ReceiptOnly => encode::receipt(out, self.peer, self.msg),
            Answer::ResponseOnly => {
                encode::response(out, self.peer, self.own(0), self.tx, 0xD0, Stuffing::Raw);
                encode::receipt(out, self.peer, self.msg);
            }
            Answer::Full => {
                encode::response(out, self.peer, self.own(0), self.tx, 0xD0, Stuffing::Raw);
                encode::receipt(out, self.peer, self.msg);
                if target == own {
                    let spec = StateReportSpec {
                        tx: self.tx,
                        counter: [1, 0x22, 0x11],
                        mesh_id: target,
                        online: true,
                        state,
                    };
                    encode::state_report(out, id, self.own(1), &spec, Stuffing::Raw);
                } else {
                    relay_record(out, id, target, own, state);
                }
            }
            Answer::RelayRecordOnly => {
                encode::receipt(out, self.peer, self.msg);
                relay_record(out, id, target, own, state);
            }
        }
    }
}

/// A 0x43 relay record: `reporter` heard `target` in `state` (`docs/protocol.md#status-records`).
pub fn relay_record(out: &mut BytesMut, id: PeerId, target: u16, reporter: u16, state: LightState) {
    let record = StatusRecord {
        index: 6,
        mesh_id: target as u8,
        state,
        online: true,
        flags: 0x14,
        reporter: reporter as u8,
    };
    encode::info_records(out, id, &[record]);
}

fn mesh_record(mesh_id: u16, device_type: u8) -> MeshRecord {
    MeshRecord {
        mesh_id,
        device_type,
        state: LightState {
            on: false,
            brightness: 100,
            temperature: 50,
            rgb: [0; 3],
        },
    }
}

/// The packet types of a list of packets, for compact assertions.
pub fn kinds(packets: &[Vec<u8>]) -> Vec<u8> {
    packets.iter().map(|p| p[0]).collect()
}

/// `GET path` on the telemetry endpoint; returns the body after checking for 200.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect telemetry");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    body.to_owned()
}

/// The promtool lint shared with `tests/telemetry_promtool.rs` (not every binary that includes
/// this module includes `common`, hence the path).
#[path = "../common/promtool.rs"]
mod promtool;
#[allow(unused_imports)] // benches include this module without linting scrapes
pub use promtool::check as promtool_check;
