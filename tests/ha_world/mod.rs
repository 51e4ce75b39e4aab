//! Harness for tests/ha_e2e.rs: a real Home Assistant and its broker started by
//! `../shared/tools/ha-e2e/ha-up`, `cync-bridge serve` (the release binary) between them and the
//! simulator run in-process, a `mosquitto_sub` watching the bridge's topics, and HA's REST API
//! (states, service calls) through `curl`. Every wait polls with a deadline.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cync_bridge::protocol::LightState;
use cync_bridge::sim::{HomeBuilder, SimConfig, SimDeviceKey, SimHandle, SimHome, Simulator};
use serde_json::{json, Value};

pub const SEED: u64 = 20_250_404;
/// Cloud home id in the device file; topics and unique ids carry it.
pub const HOME_ID: u64 = 4_242;
/// Deadline of one awaited condition (a command round trip takes well under a second).
pub const WAIT: Duration = Duration::from_secs(30);
/// Deadline for every entity to appear after the bridge and devices are up.
pub const DISCOVERY_WAIT: Duration = Duration::from_secs(90);

pub const COLOUR: u16 = 1;
pub const WHITE: u16 = 2;
pub const DIMMER: u16 = 3;
pub const SWITCH: u16 = 4;
pub const PLUG: u16 = 5;
pub const FAN: u16 = 6;
pub const BT_BULB: u16 = 7;
pub const GROUP: u16 = 0x8001;

/// (mesh id, type id, name, Wi-Fi?) of the simulated home; the device file says the same.
pub const DEVICES: [(u16, u16, &str, bool); 7] = [
    (COLOUR, 137, "E2E Colour Bulb", true),
    (WHITE, 135, "E2E White Bulb", true),
    (DIMMER, 55, "E2E Dimmer", true),
    (SWITCH, 39, "E2E Wall Switch", true),
    (PLUG, 68, "E2E Plug", true),
    (FAN, 81, "E2E Fan", true),
    (BT_BULB, 21, "E2E Bluetooth Bulb", false),
];
pub const GROUP_NAME: &str = "E2E Room";

#[derive(Clone, Copy, Debug)]
pub struct Version {
    pub ha: &'static str,
    /// `color_temp` in mireds and the `color_mode: true` flag (HA before 2025.1 / 2024.4).
    pub legacy: bool,
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

pub fn tools_dir() -> PathBuf {
    std::env::var("CYNC_HA_E2E_TOOLS").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/ha-e2e"),
        PathBuf::from,
    )
}

/// The simulated home: one of each class, a Bluetooth-only bulb behind the colour bulb, a group.
pub fn home() -> SimHome {
    let mut b = HomeBuilder::new("e2e", SEED);
    for (mesh, type_id, _, wifi) in DEVICES {
        b = if wifi {
            b.wifi(mesh, type_id)
        } else {
            b.bluetooth(mesh, type_id)
        };
    }
    let on = LightState {
        on: true,
        brightness: 100,
        temperature: 0,
        rgb: [0, 0, 0],
    };
    b.relays(COLOUR, &[BT_BULB])
        .group(GROUP, &[COLOUR, BT_BULB])
        .initial(PLUG, on)
        .build()
        .expect("valid home")
}

/// The device file describing [`home`] (YAML `homes:` shape).
pub fn device_file() -> String {
    let mut s = format!("homes:\n  E2E Home:\n    id: {HOME_ID}\n    devices:\n");
    for (mesh, type_id, name, _) in DEVICES {
        s += &format!(
            "      {mesh}:\n        name: \"{name}\"\n        mac: \"a4:c1:38:00:e2:{mesh:02x}\"\n        type: {type_id}\n"
        );
    }
    s += &format!(
        "    groups:\n      {GROUP}:\n        name: \"{GROUP_NAME}\"\n        members: [{COLOUR}, {BT_BULB}]\n"
    );
    s
}

/// Polls `f` until it returns `Some`, or panics after `within` naming `what` and the last miss.
pub fn until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match f() {
            Ok(v) => return v,
            Err(miss) if Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last: {miss}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The latest payload of every topic under `cync/#`, fed by `mosquitto_sub -v`.
pub struct Topics {
    pub child: Child,
    pub latest: Arc<Mutex<HashMap<String, String>>>,
}

impl Topics {
    pub fn watch(port: u16) -> Topics {
        let mut child = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-v",
                "-t",
                "cync/#",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (apt-get install mosquitto-clients)");
        let stdout = child.stdout.take().expect("piped");
        let latest = Arc::new(Mutex::new(HashMap::new()));
        let map = Arc::clone(&latest);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some((topic, payload)) = line.split_once(' ') {
                    map.lock()
                        .unwrap()
                        .insert(topic.to_owned(), payload.to_owned());
                }
            }
        });
        Topics { child, latest }
    }

    pub fn state(&self, key: &str) -> Option<Value> {
        let map = self.latest.lock().unwrap();
        serde_json::from_str(map.get(&format!("cync/{key}"))?).ok()
    }
}

impl Drop for Topics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct World {
    pub v: Version,
    pub tools: PathBuf,
    pub ha_url: String,
    pub ha_token: String,
    pub ha_work: PathBuf,
    pub bridge: Option<Child>,
    pub bridge_log: PathBuf,
    pub topics: Option<Topics>,
    pub rt: Option<tokio::runtime::Runtime>,
    pub sim: Option<SimHandle>,
    _data: tempfile::TempDir,
    /// friendly name → entity id, filled by `check_entities`.
    pub ids: HashMap<String, String>,
    pub stopped: bool,
}

impl World {
    pub fn start(v: Version, python: Option<&Path>) -> World {
        Self::start_with(v, python, Some(device_file()), home(), |_| {})
    }

    /// Home Assistant, then `prepare(data_dir)` (e.g. a cloud export into it), then the bridge —
    /// with `devices` as its device file, or none (it then reads what an export wrote) — and the
    /// simulated `home`.
    pub fn start_with(
        v: Version,
        python: Option<&Path>,
        devices: Option<String>,
        home: SimHome,
        prepare: impl FnOnce(&Path),
    ) -> World {
        let tools = tools_dir();
        assert!(
            tools.join("ha-up").exists(),
            "CYNC_HA_E2E=1 but the ha-e2e harness is missing at {} (set CYNC_HA_E2E_TOOLS)",
            tools.display()
        );
        let mqtt_port = free_port();
        let (vars, ha_work) = ha_up(&tools, v, python, mqtt_port);
        let data = tempfile::tempdir().expect("tempdir");
        let mut world = World {
            v,
            tools,
            ha_url: vars["HA_URL"].clone(),
            ha_token: vars["HA_TOKEN"].clone(),
            bridge_log: ha_work.join("cync-bridge.log"),
            ha_work,
            bridge: None,
            topics: None,
            rt: None,
            sim: None,
            _data: data,
            ids: HashMap::new(),
            stopped: false,
        };
        println!(
            "[{}] Home Assistant up at {}; logs in {}",
            v.ha,
            world.ha_url,
            world.ha_work.display()
        );
        world.topics = Some(Topics::watch(mqtt_port));
        let data_dir = world._data.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("data dir");
        prepare(&data_dir);
        let addr = world.spawn_bridge(mqtt_port, devices);
        world.start_devices(addr, home);
        world
    }

    /// The bridge, as users run it; returns its device listener once it accepts connections.
    fn spawn_bridge(&mut self, mqtt_port: u16, devices: Option<String>) -> std::net::SocketAddr {
        let file = devices.map(|text| {
            let file = self._data.path().join("devices.yaml");
            std::fs::write(&file, text).expect("write device file");
            file
        });
        let listen = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(&self.bridge_log).expect("bridge log");
        let (unit, flag) = if self.v.legacy {
            ("mired", "true")
        } else {
            ("kelvin", "false")
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_cync-bridge"));
        if let Some(file) = &file {
            command.env("CYNC_DEVICES__FILE", file);
        }
        let child = command
            .arg("serve")
            .env("CYNC_SERVER__LISTEN", &listen)
            .env(
                "CYNC_TELEMETRY__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .env("CYNC_DATA_DIR", self._data.path().join("data"))
            .env("CYNC_MQTT__URL", format!("mqtt://127.0.0.1:{mqtt_port}"))
            .env("CYNC_MQTT__COLOR_TEMP_UNIT", unit)
            .env("CYNC_MQTT__LEGACY_COLOR_MODE_FLAG", flag)
            .env("CYNC_MQTT__BIRTH_DELAY", "500ms")
            .env("CYNC_TELEMETRY__LOG_FORMAT", "human")
            .env("CYNC_TELEMETRY__LOG_FILTER", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cync-bridge serve");
        self.bridge = Some(child);
        let addr: std::net::SocketAddr = listen.parse().unwrap();
        until("the bridge to listen", WAIT, || {
            std::net::TcpStream::connect(addr)
                .map(drop)
                .map_err(|e| e.to_string())
        });
        addr
    }

    /// The devices, in-process so the test can read their state and use their wall switches.
    fn start_devices(&mut self, addr: std::net::SocketAddr, home: SimHome) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let sim = rt.block_on(async {
            let sim = Simulator::start(SimConfig::new(SEED, vec![home]), addr)
                .await
                .expect("simulator");
            sim.wait_ready(WAIT).await.expect("every device connected");
            sim
        });
        self.rt = Some(rt);
        self.sim = Some(sim);
    }

    pub fn sim(&self) -> &SimHandle {
        self.sim.as_ref().expect("simulator")
    }

    pub fn device(&self, mesh: u16) -> LightState {
        self.sim()
            .state(SimDeviceKey {
                home: 0,
                mesh_id: mesh,
            })
            .expect("simulated device")
    }

    pub fn curl(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--fail-with-body", "-m", "20", "-X", method])
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.ha_token))
            .args(["-H", "Content-Type: application/json"]);
        if let Some(body) = body {
            cmd.arg("-d").arg(body.to_string());
        }
        let out = cmd
            .arg(format!("{}{path}", self.ha_url))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "{method} {path}: {} {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{method} {path}: {e}"))
    }

    pub fn states(&self) -> Result<Vec<Value>, String> {
        match self.curl("GET", "/api/states", None)? {
            Value::Array(a) => Ok(a),
            other => Err(format!("/api/states gave {other}")),
        }
    }

    pub fn state(&self, name: &str) -> Result<Value, String> {
        let id = &self.ids[name];
        self.curl("GET", &format!("/api/states/{id}"), None)
    }

    pub fn call(&self, domain: &str, service: &str, name: &str, data: Value) {
        let mut body = data;
        body["entity_id"] = json!(self.ids[name]);
        println!("[{}] {domain}.{service} {body}", self.v.ha);
        if let Err(e) = self.curl(
            "POST",
            &format!("/api/services/{domain}/{service}"),
            Some(&body),
        ) {
            panic!("[{}] service call refused: {e}", self.v.ha);
        }
    }

    /// Waits until HA's state of `name` satisfies `check` (an error message otherwise).
    pub fn until_ha(&self, name: &str, what: &str, check: impl Fn(&Value) -> Result<(), String>) {
        until(&format!("HA: {name} {what}"), WAIT, || {
            let s = self.state(name)?;
            check(&s).map_err(|e| format!("{e} in {s}"))
        });
    }

    /// Waits until the simulated device holds a state satisfying `check`, and the bridge's
    /// retained state topic (published only after the device confirmed) satisfies `topic`.
    pub fn until_device(
        &self,
        mesh: u16,
        what: &str,
        check: impl Fn(&LightState) -> bool,
        topic: impl Fn(&Value) -> bool,
    ) {
        until(&format!("device {mesh}: {what}"), WAIT, || {
            let s = self.device(mesh);
            if !check(&s) {
                return Err(format!("device state {s:?}"));
            }
            Ok(())
        });
        let key = format!("{HOME_ID}-{mesh}");
        until(
            &format!("state topic cync/{key}: {what}"),
            WAIT,
            || match self.topics.as_ref().and_then(|t| t.state(&key)) {
                Some(p) if topic(&p) => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
    }

    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        if let (Some(sim), Some(rt)) = (self.sim.take(), self.rt.as_ref()) {
            rt.block_on(sim.shutdown());
        }
        if let Some(mut bridge) = self.bridge.take() {
            // SIGTERM so the bridge publishes `offline` and exits cleanly.
            let _ = Command::new("kill").arg(bridge.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = bridge.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = bridge.kill();
            let _ = bridge.wait();
        }
        self.topics.take();
        self.rt.take();
        let _ = Command::new(self.tools.join("ha-down"))
            .arg(&self.ha_work)
            .status();
    }
}

/// Starts Home Assistant and its broker with `ha-up`; returns the variables it printed and its
/// work directory.
fn ha_up(
    tools: &Path,
    v: Version,
    python: Option<&Path>,
    mqtt_port: u16,
) -> (HashMap<String, String>, PathBuf) {
    let mut up = Command::new(tools.join("ha-up"));
    up.env("HA_PORT", free_port().to_string())
        .env("MQTT_PORT", mqtt_port.to_string())
        .env("HA_VERSION", v.ha)
        .env_remove("HA_WORK")
        .stderr(Stdio::inherit());
    if let Some(py) = python {
        up.env("PY", py);
    }
    println!("[{}] starting Home Assistant (ha-up)", v.ha);
    let out = up.output().expect("run ha-up");
    let vars: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, val)| (k.to_owned(), val.trim_matches('\'').to_owned()))
        .collect();
    // Stop whatever started even if ha-up failed half-way (it cleans up after itself then).
    let ha_work = vars.get("HA_WORK").map(PathBuf::from);
    assert!(
        out.status.success() && ha_work.is_some(),
        "[{}] ha-up failed ({}); see its output above",
        v.ha,
        out.status
    );
    let ha_work = ha_work.unwrap();
    (vars, ha_work)
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[{}] FAILED: Home Assistant log {}, bridge log {}",
                self.v.ha,
                self.ha_work.join("hass.log").display(),
                self.bridge_log.display()
            );
            for (what, path) in [
                ("hass.log", self.ha_work.join("hass.log")),
                ("cync-bridge.log", self.bridge_log.clone()),
            ] {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(40);
                eprintln!("---- last lines of {what} ----");
                for l in &lines[from..] {
                    eprintln!("{l}");
                }
            }
        }
        self.stop();
    }
}
