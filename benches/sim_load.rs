//! Load generation: one simulator process driving ≥ 1,000 Wi-Fi sessions and ≥ 10,000 mesh
//! devices (over several homes) against a minimal bridge-like server, measuring the
//! simulator's own CPU time and memory.
//!
//! The server (the codec-only test server of `tests/common/server.rs`: TLS, reply table, 0xA3 +
//! mesh-info on every hello, commands at a steady rate) runs in a *child process* — this same
//! binary with `SIM_LOAD_ROLE=server` — so `/proc/self` of the parent measures the simulator
//! alone. Run with:
//!
//! ```text
//! cargo bench --bench sim_load
//! SIM_LOAD_WIFI=1000 SIM_LOAD_MESH=10 SIM_LOAD_SECS=60 SIM_LOAD_CMDS=100 cargo bench --bench sim_load
//! ```
//!
//! Prints: connect phase (wall time, CPU seconds), steady phase (CPU % of one core, packets per
//! second each way), RSS now and peak, per-session memory.

#[path = "../tests/common/server.rs"]
#[allow(dead_code)]
mod server;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cync_bridge::protocol::{Command as Cmd, FrameContent, Packet};
use cync_bridge::sim::{generate, GenerateParams, LinkState, SimConfig, SimHandle, Simulator};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var("SIM_LOAD_ROLE").as_deref() == Ok("server") {
        return run_server();
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful: only run the
    // (minutes-long) load when asked to bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("sim_load: run with `cargo bench --bench sim_load`");
        return;
    }
    run_sim();
}

// ------------------------------------------------------------------------------ server

fn run_server() {
    // The parent holds our stdin; when it goes away (finished, killed, interrupted) stdin ends
    // and so do we — a load server must never outlive its bench.
    std::thread::spawn(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let server = server::TestServer::start(server::ServerOptions {
            open_session: true,
            ..Default::default()
        })
        .await;
        println!("PORT {}", server.addr().port());
        std::io::stdout().flush().expect("stdout");
        let per_sec = env("SIM_LOAD_CMDS", 100).max(1);
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_sec));
        let mut known: Vec<(server::Conn, u16)> = Vec::new();
        let mut scanned = 0usize;
        let mut n = 0usize;
        loop {
            tick.tick().await;
            // Learn each connection's own mesh id from its mesh-info response (first record).
            let conns = server.connections();
            for c in conns.iter().skip(scanned) {
                if let Some(id) = own_mesh_id(c) {
                    known.push((c.clone(), id));
                    scanned += 1;
                } else {
                    break;
                }
            }
            known.retain(|(c, _)| !c.is_closed());
            if known.is_empty() {
                continue;
            }
            n += 1;
            let (conn, id) = &known[n % known.len()];
            let cmd = if n.is_multiple_of(3) {
                Cmd::Light {
                    target: *id,
                    brightness: Some((n % 100) as u8),
                    color: None,
                }
            } else {
                Cmd::Power {
                    target: *id,
                    on: n.is_multiple_of(2),
                }
            };
            conn.send_command(cmd).await;
            if n.is_multiple_of(1000) {
                server.forget_closed();
            }
        }
    });
}

fn own_mesh_id(c: &server::Conn) -> Option<u16> {
    c.packets().iter().find_map(|r| match r.packet() {
        Packet::Data(f) => match f.frame.as_ref().ok()?.content() {
            FrameContent::MeshInfo(info) => info.records().next().map(|rec| rec.mesh_id),
            _ => None,
        },
        _ => None,
    })
}

// --------------------------------------------------------------------------------- sim

/// utime + stime of this process, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// (VmRSS, VmHWM) in MiB.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (get("VmRSS:"), get("VmHWM:"))
}

fn run_sim() {
    let wifi = env("SIM_LOAD_WIFI", 1000) as usize;
    let mesh = env("SIM_LOAD_MESH", 10) as usize;
    let secs = env("SIM_LOAD_SECS", 60);
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .env("SIM_LOAD_ROLE", "server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("server port");
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .expect("PORT line");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(measure(wifi, mesh, secs, port));
    let _ = child.kill();
    let _ = child.wait();
}

async fn measure(wifi: usize, mesh: usize, secs: u64, port: u16) {
    let homes = generate(
        &GenerateParams {
            wifi_devices: wifi,
            mesh_per_device: mesh,
            groups_per_home: 2,
            ..Default::default()
        },
        2025,
    )
    .expect("homes");
    let mesh_total: usize = homes.iter().map(|h| h.devices.len()).sum();
    let mut config = SimConfig::new(2025, homes);
    config.behaviour.log_capacity = 64;
    config.timing.connect_spread_ms = 10_000;
    config.timing.wall_change_every_ms = 10_000;
    let home_count = config.homes.len();
    let (rss0, _) = memory_mib();
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let sim = Simulator::start(config, ([127, 0, 0, 1], port).into())
        .await
        .expect("simulator");
    sim.wait_ready(Duration::from_secs(300))
        .await
        .expect("all ready");
    let (connect_wall, connect_cpu) = (t0.elapsed(), cpu_seconds() - cpu0);
    // Let the connect sequences (up to 22.5 s) finish before measuring the steady state.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let before = sim.totals();
    let (cpu1, t1) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (steady_wall, steady_cpu) = (t1.elapsed().as_secs_f64(), cpu_seconds() - cpu1);
    let after = sim.totals();
    let (rss, peak) = memory_mib();
    report(
        &sim,
        wifi,
        mesh_total,
        home_count,
        (connect_wall, connect_cpu),
    );
    let sent = (after.packets_sent - before.packets_sent) as f64 / steady_wall;
    let received = (after.packets_received - before.packets_received) as f64 / steady_wall;
    let commands = (after.commands - before.commands) as f64 / steady_wall;
    println!(
        "steady state:  {steady_wall:.0} s, CPU {:.1} % of one core, {sent:.0} packets/s sent, \
         {received:.0} packets/s received, {commands:.0} commands/s",
        100.0 * steady_cpu / steady_wall
    );
    println!(
        "memory:        RSS {rss:.1} MiB (peak {peak:.1} MiB, {rss0:.1} MiB before start), \
         {:.1} KiB per Wi-Fi session",
        (rss - rss0) * 1024.0 / wifi as f64
    );
    let t = sim.totals();
    println!(
        "health:        {} panics, {} reconnects, {} garbage from the server",
        sim.panics(),
        t.connects - wifi as u64,
        t.junk_events + t.decode_errors + t.frame_errors + t.unexpected
    );
    sim.shutdown().await;
}

fn report(sim: &SimHandle, wifi: usize, mesh: usize, homes: usize, connect: (Duration, f64)) {
    let ready = sim
        .sessions()
        .iter()
        .filter(|s| s.link() == LinkState::Ready)
        .count();
    println!(
        "sim_load: {wifi} Wi-Fi sessions, {mesh} mesh devices in {homes} homes, {ready} ready"
    );
    println!(
        "connect phase: {:.1} s wall (spread over 10 s), {:.1} s CPU",
        connect.0.as_secs_f64(),
        connect.1
    );
}
