//! End to end against a real Home Assistant: `cync-bridge serve` (the release binary) between a
//! broker shared with HA and the simulator run in-process, so the test can read what the
//! *devices* hold and flip their wall switches.
//!
//! Per HA version (2024.3.3 on the machine's Python 3.11; 2025.4.4 when a Python 3.13 exists):
//! `../shared/tools/ha-e2e/ha-up` starts HA and its broker, the bridge gets a device file that
//! describes the simulated home, and then
//! - every simulated device (and the Cync group) must appear as the right entity with the right
//!   features (`/api/states` attributes), and HA's log must hold no MQTT discovery error;
//! - HA service calls (brightness, colour temperature, RGB, a relayed Bluetooth bulb, the group,
//!   switch on/off, fan percentage and preset) must change the simulated devices, the bridge's
//!   retained state topic (published only on device confirmation) and HA's own state;
//! - wall-switch changes made in the simulator must show up in HA.
//!
//! Every wait polls with a deadline; nothing asserts on elapsed time. Slow (HA start-up), so it
//! runs only with `CYNC_HA_E2E=1` (`.ci/run` runs it as its own step). Optional environment:
//! `CYNC_HA_E2E_VERSIONS=2024.3.3,2025.4.4` limits the versions, `CYNC_HA_E2E_PY313=/path`
//! names the Python 3.13 interpreter, `CYNC_HA_E2E_TOOLS=/path/to/ha-e2e` the harness.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cync_bridge::device::catalog::EFFECTS;
use cync_bridge::protocol::content::TEMP_RGB_MODE;
use cync_bridge::protocol::LightState;
use cync_bridge::sim::{HomeBuilder, SimConfig, SimDeviceKey, SimHandle, SimHome, Simulator};
use serde_json::{json, Value};

const SEED: u64 = 20_250_404;
/// Cloud home id in the device file; topics and unique ids carry it.
const HOME_ID: u64 = 4_242;
/// Deadline of one awaited condition (a command round trip takes well under a second).
const WAIT: Duration = Duration::from_secs(30);
/// Deadline for every entity to appear after the bridge and devices are up.
const DISCOVERY_WAIT: Duration = Duration::from_secs(90);

const COLOUR: u16 = 1;
const WHITE: u16 = 2;
const DIMMER: u16 = 3;
const SWITCH: u16 = 4;
const PLUG: u16 = 5;
const FAN: u16 = 6;
const BT_BULB: u16 = 7;
const GROUP: u16 = 0x8001;

/// (mesh id, type id, name, Wi-Fi?) of the simulated home; the device file says the same.
const DEVICES: [(u16, u16, &str, bool); 7] = [
    (COLOUR, 137, "E2E Colour Bulb", true),
    (WHITE, 135, "E2E White Bulb", true),
    (DIMMER, 55, "E2E Dimmer", true),
    (SWITCH, 39, "E2E Wall Switch", true),
    (PLUG, 68, "E2E Plug", true),
    (FAN, 81, "E2E Fan", true),
    (BT_BULB, 21, "E2E Bluetooth Bulb", false),
];
const GROUP_NAME: &str = "E2E Room";

#[derive(Clone, Copy, Debug)]
struct Version {
    ha: &'static str,
    /// `color_temp` in mireds and the `color_mode: true` flag (HA before 2025.1 / 2024.4).
    legacy: bool,
}

const HA_2024: Version = Version {
    ha: "2024.3.3",
    legacy: true,
};
const HA_2025: Version = Version {
    ha: "2025.4.4",
    legacy: false,
};

#[test]
fn home_assistant_2024_3() {
    run_version(HA_2024, None);
}

#[test]
fn home_assistant_2025_4() {
    match python313() {
        Some(py) => run_version(HA_2025, Some(py)),
        None if enabled(HA_2025) => {
            println!("HA_E2E SKIPPED: Home Assistant 2025.4.4: no python3.13 on this machine")
        }
        None => {}
    }
}

/// `false` (after saying why) unless this version should run.
fn enabled(v: Version) -> bool {
    if std::env::var("CYNC_HA_E2E").as_deref() != Ok("1") {
        println!(
            "SKIPPED: set CYNC_HA_E2E=1 to run the Home Assistant {} end-to-end test",
            v.ha
        );
        return false;
    }
    if let Ok(list) = std::env::var("CYNC_HA_E2E_VERSIONS") {
        if !list.split(',').any(|s| s.trim() == v.ha) {
            println!(
                "HA_E2E SKIPPED: Home Assistant {}: not in CYNC_HA_E2E_VERSIONS",
                v.ha
            );
            return false;
        }
    }
    true
}

fn python313() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CYNC_HA_E2E_PY313") {
        return Some(PathBuf::from(p));
    }
    let pyenv = PathBuf::from("/root/.pyenv/versions/3.13.0/bin/python3");
    if pyenv.exists() {
        return Some(pyenv);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v python3.13"])
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

fn run_version(v: Version, python: Option<PathBuf>) {
    if !enabled(v) {
        return;
    }
    let started = Instant::now();
    let mut world = World::start(v, python.as_deref());
    let up = started.elapsed();
    world.check_entities();
    world.check_commands();
    world.check_wall_changes();
    world.check_log();
    world.stop();
    println!(
        "HA_E2E PASSED: Home Assistant {} in {:.0} s ({:.0} s of it starting HA)",
        v.ha,
        started.elapsed().as_secs_f64(),
        up.as_secs_f64()
    );
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn tools_dir() -> PathBuf {
    std::env::var("CYNC_HA_E2E_TOOLS").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/ha-e2e"),
        PathBuf::from,
    )
}

/// The simulated home: one of each class, a Bluetooth-only bulb behind the colour bulb, a group.
fn home() -> SimHome {
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
fn device_file() -> String {
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
fn until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
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
struct Topics {
    child: Child,
    latest: Arc<Mutex<HashMap<String, String>>>,
}

impl Topics {
    fn watch(port: u16) -> Topics {
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

    fn state(&self, key: &str) -> Option<Value> {
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

struct World {
    v: Version,
    tools: PathBuf,
    ha_url: String,
    ha_token: String,
    ha_work: PathBuf,
    bridge: Option<Child>,
    bridge_log: PathBuf,
    topics: Option<Topics>,
    rt: Option<tokio::runtime::Runtime>,
    sim: Option<SimHandle>,
    _data: tempfile::TempDir,
    /// friendly name → entity id, filled by `check_entities`.
    ids: HashMap<String, String>,
    stopped: bool,
}

impl World {
    fn start(v: Version, python: Option<&Path>) -> World {
        let tools = tools_dir();
        assert!(
            tools.join("ha-up").exists(),
            "CYNC_HA_E2E=1 but the ha-e2e harness is missing at {} (set CYNC_HA_E2E_TOOLS)",
            tools.display()
        );
        let mqtt_port = free_port();
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

        // The bridge, as users run it.
        let file = world._data.path().join("devices.yaml");
        std::fs::write(&file, device_file()).expect("write device file");
        let listen = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(&world.bridge_log).expect("bridge log");
        let (unit, flag) = if v.legacy {
            ("mired", "true")
        } else {
            ("kelvin", "false")
        };
        let child = Command::new(env!("CARGO_BIN_EXE_cync-bridge"))
            .arg("serve")
            .env("CYNC_SERVER__LISTEN", &listen)
            .env(
                "CYNC_TELEMETRY__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .env("CYNC_DATA_DIR", world._data.path().join("data"))
            .env("CYNC_MQTT__URL", format!("mqtt://127.0.0.1:{mqtt_port}"))
            .env("CYNC_MQTT__COLOR_TEMP_UNIT", unit)
            .env("CYNC_MQTT__LEGACY_COLOR_MODE_FLAG", flag)
            .env("CYNC_MQTT__BIRTH_DELAY", "500ms")
            .env("CYNC_DEVICES__FILE", &file)
            .env("CYNC_TELEMETRY__LOG_FORMAT", "human")
            .env("CYNC_TELEMETRY__LOG_FILTER", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cync-bridge serve");
        world.bridge = Some(child);
        let addr: std::net::SocketAddr = listen.parse().unwrap();
        until("the bridge to listen", WAIT, || {
            std::net::TcpStream::connect(addr)
                .map(drop)
                .map_err(|e| e.to_string())
        });

        // The devices, in-process so the test can read their state and use their wall switches.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let sim = rt.block_on(async {
            let sim = Simulator::start(SimConfig::new(SEED, vec![home()]), addr)
                .await
                .expect("simulator");
            sim.wait_ready(WAIT).await.expect("every device connected");
            sim
        });
        world.rt = Some(rt);
        world.sim = Some(sim);
        world
    }

    fn sim(&self) -> &SimHandle {
        self.sim.as_ref().expect("simulator")
    }

    fn device(&self, mesh: u16) -> LightState {
        self.sim()
            .state(SimDeviceKey {
                home: 0,
                mesh_id: mesh,
            })
            .expect("simulated device")
    }

    fn curl(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
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

    fn states(&self) -> Result<Vec<Value>, String> {
        match self.curl("GET", "/api/states", None)? {
            Value::Array(a) => Ok(a),
            other => Err(format!("/api/states gave {other}")),
        }
    }

    fn state(&self, name: &str) -> Result<Value, String> {
        let id = &self.ids[name];
        self.curl("GET", &format!("/api/states/{id}"), None)
    }

    fn call(&self, domain: &str, service: &str, name: &str, data: Value) {
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
    fn until_ha(&self, name: &str, what: &str, check: impl Fn(&Value) -> Result<(), String>) {
        until(&format!("HA: {name} {what}"), WAIT, || {
            let s = self.state(name)?;
            check(&s).map_err(|e| format!("{e} in {s}"))
        });
    }

    /// Waits until the simulated device holds a state satisfying `check`, and the bridge's
    /// retained state topic (published only after the device confirmed) satisfies `topic`.
    fn until_device(
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

    fn check_entities(&mut self) {
        let v = self.v.ha;
        let mut names: Vec<&str> = DEVICES.iter().map(|d| d.2).collect();
        names.push(GROUP_NAME);
        let hass_log = self.ha_work.join("hass.log");
        let ids = until(
            "every simulated device as an available entity",
            DISCOVERY_WAIT,
            || {
                // A refused discovery payload never turns into an entity: fail at once.
                let log = std::fs::read_to_string(&hass_log).unwrap_or_default();
                if let Some(l) = log
                    .lines()
                    .find(|l| l.contains("when processing MQTT discovery message"))
                {
                    panic!("[{v}] Home Assistant refused a discovery payload: {l}");
                }
                let states = self.states()?;
                let mut ids = HashMap::new();
                for name in &names {
                    let found = states.iter().find(|s| {
                        s["attributes"]["friendly_name"] == *name
                            && s["entity_id"]
                                .as_str()
                                .is_some_and(|id| !id.starts_with("sensor."))
                    });
                    match found {
                        Some(s) if s["state"] != "unavailable" && s["state"] != "unknown" => {
                            ids.insert(
                                name.to_string(),
                                s["entity_id"].as_str().unwrap().to_owned(),
                            );
                        }
                        Some(s) => return Err(format!("{name}: {s}")),
                        None => return Err(format!("{name} missing")),
                    }
                }
                Ok(ids)
            },
        );
        println!("[{v}] entities: {ids:?}");
        self.ids = ids;

        let domain = |name: &str| self.ids[name].split('.').next().unwrap().to_owned();
        let attrs = |name: &str| self.state(name).expect("state")["attributes"].clone();
        let modes = |name: &str| {
            let mut m: Vec<String> = attrs(name)["supported_color_modes"]
                .as_array()
                .unwrap_or_else(|| panic!("[{v}] {name}: no supported_color_modes"))
                .iter()
                .map(|m| m.as_str().unwrap().to_owned())
                .collect();
            m.sort();
            m
        };
        let effects: Vec<&str> = EFFECTS.iter().map(|(n, _)| *n).collect();
        for name in ["E2E Colour Bulb", "E2E Bluetooth Bulb", GROUP_NAME] {
            assert_eq!(domain(name), "light", "[{v}] {name}");
            assert_eq!(modes(name), ["color_temp", "rgb"], "[{v}] {name}");
            let a = attrs(name);
            assert_eq!(a["effect_list"], json!(effects), "[{v}] {name} effect_list");
            assert_kelvin_range(v, name, &a);
        }
        assert_eq!(domain("E2E White Bulb"), "light");
        assert_eq!(modes("E2E White Bulb"), ["color_temp"], "[{v}]");
        let white = attrs("E2E White Bulb");
        assert_kelvin_range(v, "E2E White Bulb", &white);
        assert!(white.get("effect_list").is_none(), "[{v}] white: {white}");
        assert_eq!(domain("E2E Dimmer"), "light");
        assert_eq!(modes("E2E Dimmer"), ["brightness"], "[{v}]");
        assert_eq!(domain("E2E Wall Switch"), "switch");
        assert_eq!(attrs("E2E Wall Switch")["device_class"], "switch", "[{v}]");
        assert_eq!(domain("E2E Plug"), "switch");
        assert_eq!(attrs("E2E Plug")["device_class"], "outlet", "[{v}]");
        assert_eq!(domain("E2E Fan"), "fan");
        let fan = attrs("E2E Fan");
        assert_eq!(
            fan["preset_modes"],
            json!(["low", "medium", "high", "max"]),
            "[{v}] {fan}"
        );
        // FanEntityFeature: SET_SPEED = 1, PRESET_MODE = 8.
        let features = fan["supported_features"].as_u64().unwrap_or(0);
        assert_eq!(features & 9, 9, "[{v}] fan features {fan}");
        assert!(fan.get("percentage").is_some(), "[{v}] fan: {fan}");
        // Initial states made it through: the plug starts on, everything else off.
        assert_eq!(self.state("E2E Plug").unwrap()["state"], "on", "[{v}]");
        assert_eq!(
            self.state("E2E Colour Bulb").unwrap()["state"],
            "off",
            "[{v}]"
        );
    }

    fn check_commands(&self) {
        // Brightness: HA 128/255 → brightness_scale 100 → device 50.
        self.call(
            "light",
            "turn_on",
            "E2E Colour Bulb",
            json!({"brightness": 128}),
        );
        self.until_device(
            COLOUR,
            "on at 50 %",
            |s| s.on && s.brightness == 50,
            topic_on_at(50),
        );
        self.until_ha("E2E Colour Bulb", "on at ~128", ha_on_at(128));

        // Colour temperature: 3000 K is Cync 20 ((3000 − 2000) / 50), in kelvin or via mireds.
        self.call(
            "light",
            "turn_on",
            "E2E Colour Bulb",
            json!({"color_temp_kelvin": 3000}),
        );
        self.until_device(
            COLOUR,
            "white at Cync 20",
            |s| s.on && s.temperature == 20,
            |p| p["color_mode"] == "color_temp" && p["color_temp"].is_u64(),
        );
        self.until_ha("E2E Colour Bulb", "at ~3000 K", |s| {
            let a = &s["attributes"];
            let k = a["color_temp_kelvin"].as_u64().unwrap_or(0);
            (a["color_mode"] == "color_temp" && k.abs_diff(3000) <= 60)
                .then_some(())
                .ok_or("not ~3000 K".into())
        });

        // RGB.
        self.call(
            "light",
            "turn_on",
            "E2E Colour Bulb",
            json!({"rgb_color": [255, 0, 0]}),
        );
        self.until_device(
            COLOUR,
            "red",
            |s| s.on && s.temperature == TEMP_RGB_MODE && s.rgb == [255, 0, 0],
            |p| p["color_mode"] == "rgb" && p["color"] == json!({"r": 255, "g": 0, "b": 0}),
        );
        self.until_ha("E2E Colour Bulb", "red", |s| {
            let a = &s["attributes"];
            (a["color_mode"] == "rgb" && a["rgb_color"] == json!([255, 0, 0]))
                .then_some(())
                .ok_or("not red".into())
        });

        // A tunable-white bulb at 5000 K (Cync 60).
        self.call(
            "light",
            "turn_on",
            "E2E White Bulb",
            json!({"color_temp_kelvin": 5000, "brightness_pct": 70}),
        );
        self.until_device(
            WHITE,
            "on at 70 %, Cync 60",
            |s| s.on && s.brightness == 70 && s.temperature == 60,
            topic_on_at(70),
        );
        self.until_ha("E2E White Bulb", "on at ~179", ha_on_at(179));

        // A Bluetooth-only bulb, reached through its relay.
        self.call(
            "light",
            "turn_on",
            "E2E Bluetooth Bulb",
            json!({"brightness_pct": 30}),
        );
        self.until_device(
            BT_BULB,
            "on at 30 %",
            |s| s.on && s.brightness == 30,
            topic_on_at(30),
        );
        self.until_ha("E2E Bluetooth Bulb", "on at ~77", ha_on_at(77));

        // The dimmer switch.
        self.call("light", "turn_on", "E2E Dimmer", json!({"brightness": 200}));
        self.until_device(
            DIMMER,
            "on at 78 %",
            |s| s.on && s.brightness == 78,
            topic_on_at(78),
        );
        self.until_ha("E2E Dimmer", "on at ~200", ha_on_at(200));

        // The Cync group: one command, every member changes.
        self.call(
            "light",
            "turn_on",
            GROUP_NAME,
            json!({"brightness_pct": 40}),
        );
        for mesh in [COLOUR, BT_BULB] {
            self.until_device(
                mesh,
                "on at 40 % (group)",
                |s| s.on && s.brightness == 40,
                topic_on_at(40),
            );
        }
        self.until_ha(GROUP_NAME, "on at ~102", ha_on_at(102));
        self.call("light", "turn_off", GROUP_NAME, json!({}));
        for mesh in [COLOUR, BT_BULB] {
            self.until_device(mesh, "off (group)", |s| !s.on, |p| p["state"] == "OFF");
        }
        self.until_ha(GROUP_NAME, "off", is_state("off"));

        // Switch and plug.
        self.call("switch", "turn_off", "E2E Plug", json!({}));
        self.until_device(PLUG, "off", |s| !s.on, |p| p["state"] == "OFF");
        self.until_ha("E2E Plug", "off", is_state("off"));
        self.call("switch", "turn_on", "E2E Wall Switch", json!({}));
        self.until_device(SWITCH, "on", |s| s.on, |p| p["state"] == "ON");
        self.until_ha("E2E Wall Switch", "on", is_state("on"));
        self.call("switch", "turn_off", "E2E Wall Switch", json!({}));
        self.until_device(SWITCH, "off", |s| !s.on, |p| p["state"] == "OFF");
        self.until_ha("E2E Wall Switch", "off", is_state("off"));

        // Fan: percentage, then a preset (speed travels as the brightness byte, `docs/protocol.md#fan-speed`).
        self.call(
            "fan",
            "set_percentage",
            "E2E Fan",
            json!({"percentage": 50}),
        );
        self.until_device(
            FAN,
            "on at speed 50",
            |s| s.on && s.brightness == 50,
            |p| p["state"] == "ON" && p["percentage"] == 50,
        );
        self.until_ha("E2E Fan", "at 50 % (medium)", |s| {
            let a = &s["attributes"];
            (s["state"] == "on" && a["percentage"] == 50 && a["preset_mode"] == "medium")
                .then_some(())
                .ok_or("not 50 %".into())
        });
        self.call(
            "fan",
            "set_preset_mode",
            "E2E Fan",
            json!({"preset_mode": "high"}),
        );
        self.until_device(
            FAN,
            "on at speed 75",
            |s| s.on && s.brightness == 75,
            |p| p["percentage"] == 75,
        );
        self.until_ha("E2E Fan", "at 75 % (high)", |s| {
            let a = &s["attributes"];
            (a["percentage"] == 75 && a["preset_mode"] == "high")
                .then_some(())
                .ok_or("not high".into())
        });
        self.call("fan", "turn_off", "E2E Fan", json!({}));
        self.until_device(FAN, "off", |s| !s.on, |p| p["state"] == "OFF");
        self.until_ha("E2E Fan", "off", is_state("off"));
    }

    fn check_wall_changes(&self) {
        let sim = self.sim();
        let key = |mesh_id| SimDeviceKey { home: 0, mesh_id };
        let before = sim.wall_changes(0);
        // A Wi-Fi bulb turned on at the wall, at 60 %, warm white.
        let warm = LightState {
            on: true,
            brightness: 60,
            temperature: 0,
            rgb: [0, 0, 0],
        };
        sim.wall_change(key(COLOUR), warm).expect("wall change");
        self.until_ha("E2E Colour Bulb", "on at ~153 after a wall change", |s| {
            let b = s["attributes"]["brightness"].as_u64().unwrap_or(0);
            let k = s["attributes"]["color_temp_kelvin"].as_u64().unwrap_or(0);
            (s["state"] == "on" && b.abs_diff(153) <= 3 && k.abs_diff(2000) <= 60)
                .then_some(())
                .ok_or("not yet".into())
        });
        // A Bluetooth-only bulb: its relay reports the change.
        let dim = LightState {
            brightness: 20,
            ..warm
        };
        sim.wall_change(key(BT_BULB), dim).expect("wall change");
        self.until_ha("E2E Bluetooth Bulb", "on at ~51 after a wall change", |s| {
            let b = s["attributes"]["brightness"].as_u64().unwrap_or(0);
            (s["state"] == "on" && b.abs_diff(51) <= 3)
                .then_some(())
                .ok_or("not yet".into())
        });
        // The plug switched on by hand, and the wall switch paddle.
        let on = LightState {
            on: true,
            brightness: 100,
            temperature: 0,
            rgb: [0, 0, 0],
        };
        sim.wall_change(key(PLUG), on).expect("wall change");
        self.until_ha("E2E Plug", "on after a wall change", is_state("on"));
        sim.wall_change(key(SWITCH), on).expect("wall change");
        self.until_ha("E2E Wall Switch", "on after a wall change", is_state("on"));
        // The fan set to its lowest speed at the wall.
        let low = LightState {
            brightness: 25,
            ..on
        };
        sim.wall_change(key(FAN), low).expect("wall change");
        self.until_ha("E2E Fan", "low after a wall change", |s| {
            let a = &s["attributes"];
            (s["state"] == "on" && a["percentage"] == 25 && a["preset_mode"] == "low")
                .then_some(())
                .ok_or("not low".into())
        });
        assert_eq!(sim.wall_changes(0) - before, 5);
    }

    /// HA's log must not hold an MQTT error (a refused discovery payload, a template that fails).
    fn check_log(&self) {
        let log = std::fs::read_to_string(self.ha_work.join("hass.log")).unwrap_or_default();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| {
                (l.contains("ERROR") || l.contains("WARNING"))
                    && l.contains("mqtt")
                    && !l.contains("is deprecated") // informational, release-specific
            })
            .collect();
        for line in &bad {
            println!("[{}] hass.log: {line}", self.v.ha);
        }
        let errors: Vec<&&str> = bad.iter().filter(|l| l.contains("ERROR")).collect();
        assert!(
            errors.is_empty(),
            "[{}] Home Assistant logged MQTT errors:\n{}",
            self.v.ha,
            errors
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    fn stop(&mut self) {
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

fn is_state(want: &'static str) -> impl Fn(&Value) -> Result<(), String> {
    move |s| {
        (s["state"] == want)
            .then_some(())
            .ok_or(format!("state is not {want}"))
    }
}

/// 2000–7000 K, whether HA was told kelvin or mireds (500–143 mired ≈ 2000–6993 K).
fn assert_kelvin_range(v: &str, name: &str, a: &Value) {
    let min = a["min_color_temp_kelvin"].as_u64().unwrap_or(0);
    let max = a["max_color_temp_kelvin"].as_u64().unwrap_or(0);
    assert!(
        min.abs_diff(2000) <= 10 && max.abs_diff(7000) <= 10,
        "[{v}] {name}: colour temperature range {min}–{max} K, want 2000–7000: {a}"
    );
}

/// HA: on, brightness (0–255) within 3 of `want`.
fn ha_on_at(want: u64) -> impl Fn(&Value) -> Result<(), String> {
    move |s| {
        if s["state"] != "on" {
            return Err("not on".into());
        }
        let b = s["attributes"]["brightness"].as_u64().unwrap_or(0);
        (b.abs_diff(want) <= 3)
            .then_some(())
            .ok_or(format!("brightness {b}, want ~{want}"))
    }
}

/// State topic: on at Cync brightness `want`.
fn topic_on_at(want: u64) -> impl Fn(&Value) -> bool {
    move |p| p["state"] == "ON" && p["brightness"].as_u64() == Some(want)
}
