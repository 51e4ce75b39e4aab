//! A minimal bridge-like server for tests: TLS from `server::tls`, framing and decoding from
//! `protocol`, and the reply table of `docs/protocol.md#packet-types` — nothing else. It records
//! every packet each connection sends, in order and with the index of the TCP read it arrived in,
//! and lets a test send commands or raw bytes on any connection.
//!
//! It counts every byte it could not take as a packet (framer junk, decode errors, damaged
//! frames) in [`Totals`], so "everything the simulator sent decodes" is one assertion.
//!
//! Binds 127.0.0.1 port 0 only. One task per connection on a `TaskTracker`, ended by a
//! `CancellationToken`; command queues are bounded.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cync_bridge::protocol::{
    decode, encode, ClockTime, Command, Framer, Packet, PeerId, Seq, SeqAllocator,
};
use cync_bridge::server::tls::{accept, build_acceptor, TlsSettings};
use openssl::ssl::SslAcceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the server answers on its own.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Answer 0x23 with 0x28.
    pub hello_ack: bool,
    /// Answer 0xC3, 0x43, 0x83, 0xD3, and send a 0x7B for every device 0x73.
    pub acks: bool,
    /// After the 0x28, send 0xA3 (session id = device id) and a mesh-info request, as the
    /// legacy server does (`docs/protocol.md#session-open`, without its delays).
    pub open_session: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            hello_ack: true,
            acks: true,
            open_session: false,
        }
    }
}

/// Counters over every connection.
#[derive(Debug, Default)]
struct TotalsInner {
    packets: AtomicU64,
    junk_events: AtomicU64,
    junk_bytes: AtomicU64,
    decode_errors: AtomicU64,
    frame_errors: AtomicU64,
    checksum_errors: AtomicU64,
    connections: AtomicU64,
    tls_failures: AtomicU64,
}

/// A snapshot of the server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub packets: u64,
    pub junk_events: u64,
    pub junk_bytes: u64,
    pub decode_errors: u64,
    pub frame_errors: u64,
    pub checksum_errors: u64,
    pub connections: u64,
    pub tls_failures: u64,
}

/// One packet a device sent.
#[derive(Clone, Debug)]
pub struct Received {
    /// When the server framed it.
    pub at: Instant,
    /// One whole packet as the framer cut it (a TCP read may hold several); packets that did
    /// not decode are not here, only counted in `Totals`.
    pub bytes: Bytes,
    /// Index of the TCP read (TLS record read) it arrived in, per connection.
    pub read: usize,
}

impl Received {
    pub fn kind(&self) -> u8 {
        self.bytes[0]
    }

    pub fn packet(&self) -> Packet<'_> {
        decode(&self.bytes).expect("recorded packets decoded when received")
    }
}

struct ConnShared {
    id: usize,
    received: Mutex<Vec<Received>>,
    changed: watch::Sender<usize>,
    /// `None` once the connection task ended (frees the channel).
    tx: Mutex<Option<mpsc::Sender<Outgoing>>>,
    seq: Mutex<SeqAllocator>,
    peer: Mutex<Option<PeerId>>,
    closed: AtomicBool,
}

enum Outgoing {
    Bytes(Bytes),
    Close,
}

/// One device connection as the server sees it.
#[derive(Clone)]
pub struct Conn(Arc<ConnShared>);

struct Shared {
    conns: Mutex<Vec<Conn>>,
    count: watch::Sender<usize>,
    totals: TotalsInner,
    options: ServerOptions,
}

/// A running test server. Dropping it does not end its tasks: call [`TestServer::shutdown`].
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    _dir: tempfile::TempDir,
}

/// A fixed 0xC8 time: the 2025 home capture's (vector 3, `docs/protocol.md#test-vectors`:
/// Thursday 2025-11-06 02:20:40, UTC−06:00).
pub const CLOCK: ClockTime = ClockTime {
    year: 2025,
    month: 11,
    day: 6,
    weekday: 5,
    hour: 2,
    minute: 20,
    second: 40,
    utc_offset_hhmm: -600,
};

impl TestServer {
    pub async fn start(options: ServerOptions) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let acceptor = Arc::new(
            build_acceptor(&TlsSettings {
                cert_path: None,
                key_path: None,
                data_dir: dir.path().to_path_buf(),
            })
            .expect("acceptor"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            conns: Mutex::new(Vec::new()),
            count: watch::Sender::new(0),
            totals: TotalsInner::default(),
            options,
        });
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(accept_loop(
            listener,
            acceptor,
            shared.clone(),
            cancel.clone(),
            tracker.clone(),
        ));
        TestServer {
            addr,
            shared,
            cancel,
            tracker,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `n`-th accepted connection (0-based), waiting for it up to `within`.
    pub async fn connection(&self, n: usize, within: Duration) -> Conn {
        let mut rx = self.shared.count.subscribe();
        tokio::time::timeout(within, rx.wait_for(|c| *c > n))
            .await
            .unwrap_or_else(|_| panic!("connection {n} did not arrive within {within:?}"))
            .expect("server alive");
        self.shared.conns.lock().unwrap()[n].clone()
    }

    /// Connections so far.
    pub fn connections(&self) -> Vec<Conn> {
        self.shared.conns.lock().unwrap().clone()
    }

    /// The latest connection whose hello carried `peer`.
    pub fn connection_of(&self, peer: PeerId) -> Option<Conn> {
        self.connections()
            .into_iter()
            .rev()
            .find(|c| c.peer() == Some(peer))
    }

    /// Waits for a connection whose hello carried `peer`, newer than connection `after`.
    pub async fn wait_connection_of(
        &self,
        peer: PeerId,
        after: Option<usize>,
        within: Duration,
    ) -> Conn {
        let deadline = Instant::now() + within;
        let mut rx = self.shared.count.subscribe();
        loop {
            let found = self
                .connections()
                .into_iter()
                .filter(|c| after.is_none_or(|a| c.id() > a))
                .find(|c| c.peer() == Some(peer));
            if let Some(c) = found {
                return c;
            }
            // The hello may arrive after the connection is counted: poll both signals.
            let step = tokio::time::timeout(Duration::from_millis(50), rx.changed());
            let _ = step.await;
            assert!(
                Instant::now() < deadline,
                "no connection from {peer} within {within:?}"
            );
        }
    }

    /// Forgets the packets of connections that have ended (long tests that measure memory).
    pub fn forget_closed(&self) {
        for c in self.connections().iter().filter(|c| c.is_closed()) {
            c.0.received.lock().unwrap().clear();
            c.0.received.lock().unwrap().shrink_to_fit();
        }
    }

    pub fn totals(&self) -> Totals {
        let t = &self.shared.totals;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Totals {
            packets: get(&t.packets),
            junk_events: get(&t.junk_events),
            junk_bytes: get(&t.junk_bytes),
            decode_errors: get(&t.decode_errors),
            frame_errors: get(&t.frame_errors),
            checksum_errors: get(&t.checksum_errors),
            connections: get(&t.connections),
            tls_failures: get(&t.tls_failures),
        }
    }

    /// Stops accepting, closes every connection and waits for every task.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Arc<SslAcceptor>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let tcp = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    // Without TCP_NODELAY, Nagle holds a small write until the peer's delayed
                    // ACK (~40 ms of real time); a paused-clock test is idle meanwhile, and
                    // tokio then auto-advances virtual time to the next timer (a heartbeat 21 s
                    // away). Real bridges want NODELAY for latency anyway.
                    let _ = tcp.set_nodelay(true);
                    tcp
                }
                Err(_) => continue,
            },
        };
        let (tx, rx) = mpsc::channel(256);
        let conn = {
            let mut conns = shared.conns.lock().unwrap();
            let conn = Conn(Arc::new(ConnShared {
                id: conns.len(),
                received: Mutex::new(Vec::new()),
                changed: watch::Sender::new(0),
                tx: Mutex::new(Some(tx)),
                seq: Mutex::new(SeqAllocator::starting_at(0x0100, 0x20)),
                peer: Mutex::new(None),
                closed: AtomicBool::new(false),
            }));
            conns.push(conn.clone());
            conn
        };
        shared.totals.connections.fetch_add(1, Ordering::Relaxed);
        shared.count.send_modify(|c| *c += 1);
        tracker.spawn(serve(
            tcp,
            acceptor.clone(),
            conn,
            rx,
            shared.clone(),
            cancel.clone(),
        ));
    }
}

async fn serve(
    tcp: TcpStream,
    acceptor: Arc<SslAcceptor>,
    conn: Conn,
    mut rx: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let tls = tokio::select! {
        _ = cancel.cancelled() => None,
        r = accept(&acceptor, tcp) => r.ok(),
    };
    let Some(mut tls) = tls else {
        shared.totals.tls_failures.fetch_add(1, Ordering::Relaxed);
        conn.0.closed.store(true, Ordering::Relaxed);
        conn.0.changed.send_modify(|c| *c += 1);
        return;
    };
    let framer = Framer::default();
    let mut buf = BytesMut::with_capacity(4096);
    let mut reads = 0usize;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            out = rx.recv() => match out {
                Some(Outgoing::Bytes(b)) => {
                    if tls.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Close) | None => {
                    let _ = tls.shutdown().await;
                    break;
                }
            },
            n = tls.read_buf(&mut buf) => {
                match n {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let replies = take_packets(&framer, &mut buf, &conn, &shared, reads);
                reads += 1;
                if !replies.is_empty() && tls.write_all(&replies).await.is_err() {
                    break;
                }
            }
        }
    }
    conn.0.closed.store(true, Ordering::Relaxed);
    conn.0.tx.lock().unwrap().take();
    conn.0.changed.send_modify(|c| *c += 1);
}

/// Frames, records and answers everything complete in `buf`.
fn take_packets(
    framer: &Framer,
    buf: &mut BytesMut,
    conn: &Conn,
    shared: &Shared,
    read: usize,
) -> BytesMut {
    let t = &shared.totals;
    let mut replies = BytesMut::new();
    while let Some(next) = framer.next_packet(buf) {
        let bytes = match next {
            Ok(b) => b,
            Err(e) => {
                t.junk_events.fetch_add(1, Ordering::Relaxed);
                t.junk_bytes
                    .fetch_add(e.discarded() as u64, Ordering::Relaxed);
                continue;
            }
        };
        t.packets.fetch_add(1, Ordering::Relaxed);
        match decode(&bytes) {
            Ok(packet) => {
                if let Packet::Data(f) | Packet::Status(f) = &packet {
                    if let Err(e) = &f.frame {
                        t.frame_errors.fetch_add(1, Ordering::Relaxed);
                        if e.reason() == "checksum" {
                            t.checksum_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                reply(&packet, conn, &shared.options, &mut replies);
            }
            Err(_) => {
                t.decode_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        // Copied: a framed slice would pin the whole read buffer for as long as it is kept.
        conn.0.received.lock().unwrap().push(Received {
            at: Instant::now(),
            bytes: Bytes::copy_from_slice(&bytes),
            read,
        });
        conn.0.changed.send_modify(|c| *c += 1);
    }
    replies
}

/// The reply table of `docs/protocol.md#packet-types`.
fn reply(packet: &Packet<'_>, conn: &Conn, options: &ServerOptions, out: &mut BytesMut) {
    match packet {
        Packet::Hello(h) => {
            *conn.0.peer.lock().unwrap() = Some(h.device_id);
            if options.hello_ack {
                encode::hello_ack(out);
                if options.open_session {
                    let mut seq = conn.0.seq.lock().unwrap();
                    encode::session_open(out, h.device_id, seq.next_msg());
                    let s = seq.next_for(&Command::MeshInfoRequest);
                    encode::command(
                        out,
                        h.device_id,
                        s.msg,
                        s.tx,
                        s.sno,
                        &Command::MeshInfoRequest,
                    );
                }
            }
        }
        _ if !options.acks => {}
        Packet::Connect { .. } => encode::connect_ack(out, &CLOCK),
        Packet::Info { msg, .. } => encode::info_ack(out, *msg),
        Packet::Status(f) => encode::status_ack(out, f.msg),
        Packet::Heartbeat => encode::heartbeat_ack(out),
        Packet::Data(f) => encode::receipt(out, f.peer, f.msg),
        _ => {}
    }
}

impl Conn {
    pub fn id(&self) -> usize {
        self.0.id
    }

    /// The device id from this connection's hello.
    pub fn peer(&self) -> Option<PeerId> {
        *self.0.peer.lock().unwrap()
    }

    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Relaxed)
    }

    /// Every packet received so far, in order.
    pub fn packets(&self) -> Vec<Received> {
        self.0.received.lock().unwrap().clone()
    }

    /// Waits for the first packet at index ≥ `from` that `pred` accepts; returns its index.
    pub async fn wait_for(
        &self,
        from: usize,
        within: Duration,
        pred: impl Fn(&Packet<'_>) -> bool,
    ) -> Option<(usize, Received)> {
        let mut rx = self.0.changed.subscribe();
        let search = async {
            loop {
                let found = self
                    .packets()
                    .into_iter()
                    .enumerate()
                    .skip(from)
                    .find(|(_, r)| pred(&r.packet()));
                if found.is_some() {
                    return found;
                }
                if self.is_closed() || rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(within, search).await.ok().flatten()
    }

    /// Waits until at least `n` packets arrived.
    pub async fn wait_count(&self, n: usize, within: Duration) -> bool {
        let mut rx = self.0.changed.subscribe();
        let ok = matches!(
            tokio::time::timeout(
                within,
                rx.wait_for(|_| self.0.received.lock().unwrap().len() >= n)
            )
            .await,
            Ok(Ok(_))
        );
        ok
    }

    /// Waits until the connection is closed.
    pub async fn wait_closed(&self, within: Duration) -> bool {
        let mut rx = self.0.changed.subscribe();
        let ok = matches!(
            tokio::time::timeout(within, rx.wait_for(|_| self.is_closed())).await,
            Ok(Ok(_))
        );
        ok
    }

    fn sender(&self) -> Option<mpsc::Sender<Outgoing>> {
        self.0.tx.lock().unwrap().clone()
    }

    /// Queues bytes for the device (dropped if the connection has ended).
    pub async fn send_raw(&self, bytes: impl Into<Bytes>) {
        if let Some(tx) = self.sender() {
            let _ = tx.send(Outgoing::Bytes(bytes.into())).await;
        }
    }

    /// Closes the connection from the server side.
    pub async fn close(&self) {
        if let Some(tx) = self.sender() {
            let _ = tx.send(Outgoing::Close).await;
        }
    }

    /// Sends `cmd` with the next msg id / tx of this connection (peer id = the device's id, as
    /// the legacy server does) and returns them.
    pub async fn send_command(&self, cmd: Command) -> Seq {
        let peer = self.peer().expect("hello seen before commands");
        let (seq, bytes) = {
            let mut alloc = self.0.seq.lock().unwrap();
            let seq = alloc.next_for(&cmd);
            let mut b = BytesMut::new();
            encode::command(&mut b, peer, seq.msg, seq.tx, seq.sno, &cmd);
            (seq, b.freeze())
        };
        self.send_raw(bytes).await;
        seq
    }

    /// The raw bytes of `cmd` with explicit sequence values (to repeat a msg id or a tx).
    pub fn command_bytes(&self, seq: Seq, cmd: &Command) -> Bytes {
        let peer = self.peer().expect("hello seen");
        let mut b = BytesMut::new();
        encode::command(&mut b, peer, seq.msg, seq.tx, seq.sno, cmd);
        b.freeze()
    }
}
