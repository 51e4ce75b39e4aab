//! `cync-bridge serve` as its own process, and its CPU and memory from `/proc`.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::broker::free_port;
use crate::devices::Device;
use crate::HOME_ID;

/// `cync-bridge serve` in its own process, configured through a file (the device list) and the
/// environment (addresses, data dir, log filter).
pub struct BridgeProcess {
    pub child: Child,
    pub device_addr: SocketAddr,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl BridgeProcess {
    pub fn start(mqtt_port: u16, devices: &[Device]) -> BridgeProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("cync-bridge.toml");
        std::fs::write(&config, config_file(devices)).expect("write config");
        let device_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let log = dir.path().join("bridge.log");
        let child = Command::new(env!("CARGO_BIN_EXE_cync-bridge"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("CYNC_SERVER__LISTEN", device_addr.to_string())
            .env(
                "CYNC_TELEMETRY__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .env("CYNC_DATA_DIR", dir.path().join("data"))
            .env("CYNC_MQTT__URL", format!("mqtt://127.0.0.1:{mqtt_port}"))
            .env("CYNC_TELEMETRY__LOG_FILTER", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start cync-bridge serve");
        let bridge = BridgeProcess {
            child,
            device_addr,
            log,
            _dir: dir,
        };
        // The first start generates the TLS key: give it time.
        for _ in 0..400 {
            if std::net::TcpStream::connect(device_addr).is_ok() {
                return bridge;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "cync-bridge serve did not listen on {device_addr}; its log: {}",
            std::fs::read_to_string(&bridge.log).unwrap_or_default()
        );
    }

    pub fn usage(&self, clk_tck: f64) -> Sample {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("bridge running");
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').expect("stat") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/status")).expect("bridge running");
        let kb = |name: &str| -> f64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0.0)
        };
        Sample {
            at: Instant::now(),
            cpu_seconds: ticks as f64 / clk_tck,
            rss_mb: kb("VmRSS:") / 1024.0,
            hwm_mb: kb("VmHWM:") / 1024.0,
        }
    }

    /// Warning and error lines the bridge logged (its filter is `warn`).
    pub fn log_lines(&self) -> usize {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text.lines().filter(|l| !l.trim().is_empty()).count()
    }

    pub fn stop(mut self) {
        // SIGTERM first: the bridge says `offline` and closes its sessions.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The device list (types decide JSON or ON/OFF commands) and fast start-up timings.
pub fn config_file(devices: &[Device]) -> String {
    let mut text = String::from(
        "timezone = \"UTC\"\n\
         [server]\n\
         session_open_delay = \"10ms\"\n\
         mesh_info_delay = \"10ms\"\n\
         [mqtt]\n\
         client_id = \"cync-bridge-bench\"\n\
         [devices.homes.\"Bench\"]\n",
    );
    text.push_str(&format!("id = {HOME_ID}\n"));
    for d in devices {
        text.push_str(&format!(
            "[devices.homes.\"Bench\".devices.{}]\nname = \"Bench {}\"\ntype = {}\n",
            d.mesh, d.mesh, d.type_id
        ));
    }
    text
}

pub struct Sample {
    pub at: Instant,
    pub cpu_seconds: f64,
    pub rss_mb: f64,
    pub hwm_mb: f64,
}

impl Sample {
    pub fn since(&self, before: &Sample) -> Usage {
        let wall = self.at.duration_since(before.at).as_secs_f64();
        Usage {
            cpu_percent: 100.0 * (self.cpu_seconds - before.cpu_seconds) / wall,
            rss_mb: self.rss_mb,
            hwm_mb: self.hwm_mb,
        }
    }
}

/// The bridge's share of one core over a window, and its memory at the end of it.
pub struct Usage {
    pub cpu_percent: f64,
    pub rss_mb: f64,
    pub hwm_mb: f64,
}

/// 1, 5 and 15 minute load averages: the other work on this machine, which the latencies feel.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
