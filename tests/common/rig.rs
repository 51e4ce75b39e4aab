//! A one-device rig for the chaos tests: the test server, a simulator with a single Wi-Fi bulb
//! (mesh id 1), helpers to generate traffic, wait in virtual time and count what chaos did.

use std::time::Duration;

use cync_bridge::capture::Direction;
use cync_bridge::protocol::{Command, MsgId, Packet};
use cync_bridge::sim::{
    Chaos, HomeBuilder, LinkState, Note, PacketChaos, SessionHandle, SimConfig, SimDeviceKey,
    SimHandle, Simulator,
};
use tokio::time::Instant;

use super::server::{Conn, Received, ServerOptions, TestServer};

pub const SEED: u64 = 20_251_106;
pub const WAIT: Duration = Duration::from_secs(60);
pub const KEY: SimDeviceKey = SimDeviceKey {
    home: 0,
    mesh_id: 1,
};

pub struct Rig {
    pub server: TestServer,
    pub sim: SimHandle,
    pub conn: Conn,
}

impl Rig {
    pub async fn new(tweak: impl FnOnce(&mut SimConfig)) -> Rig {
        let server = TestServer::start(ServerOptions::default()).await;
        let home = HomeBuilder::new("chaos", SEED)
            .wifi(1, 137)
            .build()
            .unwrap();
        let mut config = SimConfig::new(SEED, vec![home]);
        config.behaviour.log_capacity = 200_000;
        tweak(&mut config);
        let sim = Simulator::start(config, server.addr()).await.unwrap();
        sim.wait_ready(WAIT).await.unwrap();
        let conn = server.connection(0, WAIT).await;
        Rig { server, sim, conn }
    }

    pub fn device(&self) -> &SessionHandle {
        self.sim.session(KEY).unwrap()
    }

    /// Advances virtual time until `done`, at most `limit`.
    pub async fn run_until(&self, limit: Duration, done: impl Fn(&Rig) -> bool) {
        let end = Instant::now() + limit;
        while !done(self) {
            assert!(Instant::now() < end, "condition not met within {limit:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Applies `knobs` to the device's traffic towards the bridge, lets it run until `packets`
    /// have been offered to the chaos engine, then stops the device so the server has read all.
    pub async fn offer_to_bridge(&self, knobs: PacketChaos, packets: u64) {
        self.device().set_chaos(to_bridge(knobs)).await.unwrap();
        self.run_until(Duration::from_secs(3600), |r| {
            r.device().chaos_to_bridge().offered >= packets
        })
        .await;
        self.stop_device().await;
    }

    /// Applies `chaos`, then runs (virtual time, an hour at most) until `done`; the device
    /// stays connected, unlike [`Rig::offer_to_bridge`].
    pub async fn chaos_until(&self, chaos: Chaos, done: impl Fn(&Rig) -> bool) {
        self.device().set_chaos(chaos).await.unwrap();
        self.run_until(Duration::from_secs(3600), done).await;
    }

    /// Turns chaos off and waits until the device is connected and ready again.
    pub async fn calm_down(&self) {
        self.device().set_chaos(Chaos::default()).await.unwrap();
        self.device()
            .wait_link(LinkState::Ready, WAIT)
            .await
            .unwrap();
    }

    /// Sends one command that every device answers (0x73 mesh ack) and returns when its 0x7B
    /// receipt reached the server: the proof that the link still works.
    pub async fn receipt_for_mesh_ack(&self) -> Instant {
        let from = self.conn.packets().len();
        let seq = self.conn.send_command(Command::MeshAck).await;
        let (_, receipt) = self
            .conn
            .wait_for(
                from,
                WAIT,
                |p| matches!(p, Packet::Receipt { msg, .. } if *msg == seq.msg),
            )
            .await
            .expect("a receipt for the mesh ack: the link still works");
        receipt.at
    }

    /// Sends `n` power commands under `knobs` on the bridge→device direction, waits for the
    /// last one's receipt, then two more seconds for stragglers (duplicates, retransmits).
    pub async fn commands_under(&self, knobs: PacketChaos, n: usize) {
        self.device().set_chaos(from_bridge(knobs)).await.unwrap();
        let msgs = self.commands(n).await;
        let last = *msgs.last().unwrap();
        self.conn
            .wait_for(
                0,
                WAIT,
                |p| matches!(p, Packet::Receipt { msg, .. } if *msg == last),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    /// Packets of `kind` the server has received from the device on the first connection.
    pub fn received(&self, kind: u8) -> u64 {
        let n = self
            .conn
            .packets()
            .iter()
            .filter(|r| r.kind() == kind)
            .count();
        n as u64
    }

    /// Takes the device offline (FIN) so that everything it wrote has been read by the server.
    pub async fn stop_device(&self) {
        self.device().set_offline(true).await.unwrap();
        self.device()
            .wait_link(LinkState::Offline, WAIT)
            .await
            .unwrap();
        let last = self.server.connections().pop().unwrap();
        assert!(last.wait_closed(WAIT).await);
    }

    /// Packets the server received on every connection.
    pub fn server_packets(&self) -> Vec<Received> {
        self.server
            .connections()
            .iter()
            .flat_map(Conn::packets)
            .collect()
    }

    /// Log entries in one direction carrying `note`, of packet type `kind` (0 = any).
    pub fn noted(&self, dir: Direction, note: Note, kind: u8) -> usize {
        self.device()
            .log()
            .iter()
            .filter(|e| e.dir == dir && e.note == Some(note) && (kind == 0 || e.kind() == kind))
            .count()
    }

    /// Sends `n` distinct power commands to the device's own mesh id without waiting.
    pub async fn commands(&self, n: usize) -> Vec<MsgId> {
        let mut msgs = Vec::new();
        for i in 0..n {
            let seq = self
                .conn
                .send_command(Command::Power {
                    target: 1,
                    on: i % 2 == 0,
                })
                .await;
            msgs.push(seq.msg);
        }
        msgs
    }

    pub async fn finish(self) {
        assert_eq!(self.sim.panics(), 0, "a device task panicked");
        assert_ne!(self.device().link(), LinkState::Stopped);
        self.sim.shutdown().await;
        self.server.shutdown().await;
    }
}

pub fn assert_rate(what: &str, hits: u64, total: u64, expected: f64, tolerance: f64) {
    assert!(total > 0, "{what}: nothing measured");
    let rate = hits as f64 / total as f64;
    assert!(
        (rate - expected).abs() <= tolerance,
        "{what}: {hits}/{total} = {rate:.4}, configured {expected} ± {tolerance}"
    );
}

pub fn to_bridge(p: PacketChaos) -> Chaos {
    Chaos {
        to_bridge: p,
        ..Chaos::default()
    }
}

pub fn from_bridge(p: PacketChaos) -> Chaos {
    Chaos {
        from_bridge: p,
        ..Chaos::default()
    }
}

/// Heartbeats every 100 ms of transmit idleness: ten packets a second each way.
pub fn chatty(c: &mut SimConfig) {
    c.timing.heartbeat_idle_ms = 100;
}

/// A wall-switch change every 100 ms (±50 %): state reports (framed 0x83) and self records.
pub fn reporting(c: &mut SimConfig) {
    c.timing.wall_change_every_ms = 100;
}
