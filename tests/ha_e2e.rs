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
//! And the first run of a new user (HA 2024.3.3): `cync-bridge export` against the fake Cync
//! cloud into an empty data dir, then `serve` with no device file — every device appears with
//! its cloud name, area and entity kind, and a room switches its lights.
//!
//! Every wait polls with a deadline; nothing asserts on elapsed time. Slow (HA start-up), so it
//! runs only with `CYNC_HA_E2E=1` (`.ci/run` runs it as its own step). Optional environment:
//! `CYNC_HA_E2E_VERSIONS=2024.3.3,2025.4.4` limits the versions, `CYNC_HA_E2E_PY313=/path`
//! names the Python 3.13 interpreter, `CYNC_HA_E2E_TOOLS=/path/to/ha-e2e` the harness.

mod cloud_world;
mod ha_world;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use cync_bridge::device::catalog::EFFECTS;
use cync_bridge::protocol::content::TEMP_RGB_MODE;
use cync_bridge::protocol::LightState;
use cync_bridge::sim::SimDeviceKey;
use serde_json::{json, Value};

use ha_world::{
    until, Version, World, BT_BULB, COLOUR, DEVICES, DIMMER, DISCOVERY_WAIT, FAN, GROUP_NAME, PLUG,
    SWITCH, WAIT, WHITE,
};

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

#[test]
fn home_assistant_first_run_from_a_cloud_export() {
    if !enabled(HA_2024) {
        return;
    }
    let cloud_rt = tokio::runtime::Runtime::new().expect("runtime");
    let cloud = cloud_rt.block_on(cloud_world::FakeCloud::start());
    let url = cloud.url();
    let started = Instant::now();
    let mut world = World::start_with(HA_2024, None, None, first_run_home(), |data| {
        export(data, &url)
    });
    world.check_first_run();
    world.check_log();
    world.stop();
    println!(
        "HA_E2E PASSED: first run from a cloud export, Home Assistant {} in {:.0} s",
        HA_2024.ha,
        started.elapsed().as_secs_f64()
    );
}

/// The fake cloud's main home as devices: lamp (147) and fan (81) and the dual plug (67) on
/// Wi-Fi, the hall bulb (21) on Bluetooth behind the lamp.
fn first_run_home() -> cync_bridge::sim::SimHome {
    cync_bridge::sim::HomeBuilder::new("Home", 4)
        .wifi(1, 147)
        .bluetooth(2, 21)
        .wifi(3, 67)
        .wifi(4, 81)
        .relays(1, &[2])
        .build()
        .expect("valid home")
}

/// `cync-bridge export` as a script runs it: password from a file, the emailed code on stdin.
fn export(data: &std::path::Path, url: &str) {
    use std::io::Write as _;
    let password = data.join("password");
    std::fs::write(&password, cloud_world::PASSWORD).expect("password file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_cync-bridge"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CYNC_")) {
        command.env_remove(key);
    }
    let mut child = command
        .args(["export", "--email", cloud_world::EMAIL, "--password-file"])
        .arg(&password)
        .env("CYNC_DATA_DIR", data)
        .env("CYNC_CLOUD__API_URL", url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start cync-bridge export");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{}", cloud_world::CODE).expect("code");
    drop(stdin);
    let out = child.wait_with_output().expect("export ends");
    assert!(
        out.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// The checks, in the order `run_version` runs them.
impl World {
    fn check_entities(&mut self) {
        self.wait_for_entities();
        self.check_entity_features();
    }

    /// Every simulated device (and the group) as an available entity; fills `ids`.
    fn wait_for_entities(&mut self) {
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
    }

    /// Each entity's domain and features, and the initial states.
    fn check_entity_features(&self) {
        let v = self.v.ha;
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
        self.command_colour_bulb();
        self.command_white_bluetooth_and_dimmer();
        self.command_group();
        self.command_switch_and_plug();
        self.command_fan();
    }

    /// Brightness, colour temperature and RGB on the full-colour bulb.
    fn command_colour_bulb(&self) {
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
    }

    /// A tunable-white bulb, a relayed Bluetooth bulb and the dimmer switch.
    fn command_white_bluetooth_and_dimmer(&self) {
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
    }

    /// The Cync group, on and off.
    fn command_group(&self) {
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
    }

    /// Switch and plug.
    fn command_switch_and_plug(&self) {
        self.call("switch", "turn_off", "E2E Plug", json!({}));
        self.until_device(PLUG, "off", |s| !s.on, |p| p["state"] == "OFF");
        self.until_ha("E2E Plug", "off", is_state("off"));
        self.call("switch", "turn_on", "E2E Wall Switch", json!({}));
        self.until_device(SWITCH, "on", |s| s.on, |p| p["state"] == "ON");
        self.until_ha("E2E Wall Switch", "on", is_state("on"));
        self.call("switch", "turn_off", "E2E Wall Switch", json!({}));
        self.until_device(SWITCH, "off", |s| !s.on, |p| p["state"] == "OFF");
        self.until_ha("E2E Wall Switch", "off", is_state("off"));
    }

    /// The fan: percentage, preset, off.
    fn command_fan(&self) {
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
    /// After a cloud export: each device by its cloud name, in its room's area, as the entity
    /// kind its type says, and the "Office" room (lamp and hall bulb) switching both.
    fn check_first_run(&mut self) {
        let v = self.v.ha;
        // (friendly name, domain, area)
        let expected = [
            ("Office Lamp", "light", Some("Office")),
            ("Hall Bulb", "light", Some("Office")),
            ("Porch Plug Left Outlet", "switch", Some("Porch")),
            ("Porch Plug Right Outlet", "switch", Some("Porch")),
            ("Cync device 4", "fan", None),
            ("Office", "light", Some("Office")),
            ("Porch", "light", Some("Porch")),
        ];
        let ids = until("every exported device as an entity", DISCOVERY_WAIT, || {
            let states = self.states()?;
            let mut ids = HashMap::new();
            for (name, domain, _) in expected {
                let found = states.iter().find(|s| {
                    s["attributes"]["friendly_name"] == name
                        && s["entity_id"]
                            .as_str()
                            .is_some_and(|id| id.starts_with(&format!("{domain}.")))
                });
                match found {
                    Some(s) if s["state"] != "unavailable" && s["state"] != "unknown" => {
                        ids.insert(
                            name.to_string(),
                            s["entity_id"].as_str().unwrap().to_owned(),
                        );
                    }
                    Some(s) => return Err(format!("{name}: {s}")),
                    None => return Err(format!("{name} missing as a {domain}")),
                }
            }
            Ok(ids)
        });
        println!("[{v}] first-run entities: {ids:?}");
        self.ids = ids;
        for (name, _, area) in expected {
            let template = json!({
                "template": format!("{{{{ area_name('{}') | tojson }}}}", self.ids[name])
            });
            let got = self
                .curl("POST", "/api/template", Some(&template))
                .unwrap_or_else(|e| panic!("[{v}] area of {name}: {e}"));
            assert_eq!(got.as_str(), area, "[{v}] area of {name}");
        }
        let lamp_modes = self.state("Office Lamp").expect("state")["attributes"]
            ["supported_color_modes"]
            .clone();
        assert!(lamp_modes.to_string().contains("rgb"), "[{v}] {lamp_modes}");
        for on in [true, false] {
            let service = if on { "turn_on" } else { "turn_off" };
            self.call("light", service, "Office", json!({}));
            for mesh in [1, 2] {
                until(&format!("device {mesh} {service}"), WAIT, || {
                    let s = self.device(mesh);
                    (s.on == on).then_some(()).ok_or(format!("{s:?}"))
                });
            }
        }
    }

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
