//! The rollout controller's Home Assistant entities over a real Mosquitto: discovered on the
//! bridge device with the exact topics, retained at QoS 1, and operable with plain MQTT
//! publishes (what `mosquitto_pub` sends) — percentage, mode, rollback, resume — with a bad value
//! refused by name while the bridge keeps running.

mod common;
mod mqtt_world;
mod server_world;

use serde_json::Value;

use mqtt_world::{find, Seen, World};

const STATE: &str = "cync/bridge/rollout";
const EVENT: &str = "cync/bridge/rollout/event";

fn config(retained: &[Seen], component: &str, id: &str) -> Value {
    find(
        retained,
        &format!("homeassistant/{component}/cync_bridge/cync_bridge_rollout_{id}/config"),
    )
    .json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_entities_are_discovered_on_the_bridge_device() {
    let Some(w) = World::start().await else {
        return;
    };
    let retained = w.retained("homeassistant/#").await;
    let number = config(&retained, "number", "percent");
    assert_eq!(number["command_topic"], "cync/bridge/rollout/percent/set");
    assert_eq!(number["state_topic"], STATE);
    assert_eq!(number["min"], 0.0);
    assert_eq!(number["max"], 100.0);
    assert_eq!(number["step"], 0.01);
    assert_eq!(number["device"]["identifiers"][0], "cync_bridge");
    assert_eq!(number["availability"][0]["topic"], "cync/bridge/state");
    let select = config(&retained, "select", "mode");
    assert_eq!(
        select["options"],
        serde_json::json!(["legacy", "shadow", "canary", "reliable"])
    );
    for button in ["rollback", "resume"] {
        let b = config(&retained, "button", button);
        assert_eq!(
            b["command_topic"],
            format!("cync/bridge/rollout/{button}/set")
        );
        assert_eq!(b["payload_press"], "PRESS");
    }
    let latched = config(&retained, "binary_sensor", "latched");
    assert_eq!(latched["device_class"], "problem");
    for slo in [
        "command_success",
        "command_latency",
        "packet_loss",
        "decode_errors",
        "queue_full",
    ] {
        let s = config(&retained, "sensor", &format!("budget_{slo}"));
        assert_eq!(
            s["value_template"],
            format!("{{{{ value_json.budgets.{slo} }}}}")
        );
        assert_eq!(s["unit_of_measurement"], "%");
    }
    config(&retained, "sensor", "effective_percent");
    config(&retained, "sensor", "last_change");
    // The state the entities read is retained at QoS 1, and starts on the default path.
    let state = w.retained(STATE).await;
    let state = find(&state, STATE);
    assert_eq!(state.qos, 1);
    let doc = state.json();
    assert_eq!(
        doc["mode"], "reliable",
        "an upgrade keeps the reliable path"
    );
    assert_eq!(doc["effective_percent"], 100.0);
    assert_eq!(doc["latched"], false);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentage_rollback_and_resume_work_with_plain_publishes_and_a_bad_value_is_refused() {
    let Some(w) = World::start().await else {
        return;
    };
    let live = &w.live;
    live.publish("cync/bridge/rollout/percent/set", "25").await;
    let doc = live
        .wait(STATE, |s| s.json()["canary_percent"] == 25.0)
        .await
        .json();
    assert_eq!(
        doc["mode"], "canary",
        "setting a percentage starts a canary"
    );
    assert_eq!(doc["effective_percent"], 25.0);
    assert!(w.bridge.metric("tcp_comm_canary_percentage") == 25.0);

    // Out of range: refused by name on the event topic, the state stays as it was.
    live.publish("cync/bridge/rollout/percent/set", "101").await;
    let refused = live.wait(EVENT, |s| s.json()["kind"] == "error").await;
    assert!(!refused.retain, "events are not retained");
    let message = refused.json()["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("rollout.canary_percent"), "{message}");
    assert_eq!(live.last(STATE).unwrap().json()["canary_percent"], 25.0);
    live.publish("cync/bridge/rollout/mode/set", "carrier-pigeon")
        .await;
    live.wait(EVENT, |s| {
        s.json()["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("rollout.mode"))
    })
    .await;

    live.publish("cync/bridge/rollout/rollback/set", "PRESS")
        .await;
    let doc = live
        .wait(STATE, |s| s.json()["latched"] == true)
        .await
        .json();
    assert_eq!(doc["effective_percent"], 0.0);
    assert_eq!(doc["canary_percent"], 25.0, "kept for resume");
    let event = live.wait(EVENT, |s| s.json()["kind"] == "rollback").await;
    assert_eq!(event.json()["reason"], "manual");
    assert_eq!(
        w.bridge
            .metric("tcp_comm_rollback_total{reason=\"manual\"}"),
        1.0
    );
    assert_eq!(w.bridge.metric("tcp_comm_rollback_latched"), 1.0);

    live.publish("cync/bridge/rollout/resume/set", "PRESS")
        .await;
    let doc = live
        .wait(STATE, |s| s.json()["latched"] == false)
        .await
        .json();
    assert_eq!(doc["effective_percent"], 25.0);
    live.publish("cync/bridge/rollout/mode/set", "reliable")
        .await;
    live.wait(STATE, |s| s.json()["effective_percent"] == 100.0)
        .await;
    w.finish().await;
}
