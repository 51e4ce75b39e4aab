//! Loading and validation: defaults, the shipped file, layering, and one error per bad key.

use figment::providers::{Format, Serialized, Toml};

use super::*;
use crate::protocol::PeerId;
use crate::rollout::control::Mode;

fn from_toml(text: &str) -> Result<Config, ConfigError> {
    validate(&Figment::from(Serialized::defaults(RawConfig::default())).merge(Toml::string(text)))
}

fn key_of(result: Result<Config, ConfigError>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.key().unwrap_or("<none>").to_owned(),
    }
}

#[test]
fn defaults_are_valid_and_typed() {
    let c = from_toml("").unwrap();
    assert_eq!(c.server.listen, "0.0.0.0:23779".parse().unwrap());
    assert_eq!(c.server.idle_timeout, Duration::from_secs(65));
    assert_eq!(c.server.session_open_delay, Duration::from_millis(500));
    assert_eq!(c.telemetry.listen, "127.0.0.1:9464".parse().unwrap());
    assert_eq!(c.telemetry.log_format, LogFormat::Json);
    assert_eq!(c.rollout.configured.mode, Mode::Reliable);
    assert_eq!(c.transport.command_timeout, Duration::from_secs(5));
    assert!(!c.server.plain_tcp_debug);
    assert!(c.tls.cert.is_none());
}

#[test]
fn the_shipped_config_file_matches_the_built_in_defaults() {
    // config/cync-bridge.toml documents every key with its default value; if a default changes
    // in code the file must change too (and the other way round).
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/cync-bridge.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let from_file: RawConfig = Figment::from(Toml::string(&text)).extract().unwrap();
    let as_value = |raw: &RawConfig| toml::Value::try_from(raw).unwrap();
    assert_eq!(as_value(&from_file), as_value(&RawConfig::default()));
}

#[test]
fn a_file_overrides_defaults_section_by_section() {
    let c = from_toml(
        r#"
        data_dir = "/var/lib/cync"
        timezone = "America/Chicago"
        [server]
        listen = "127.0.0.1:0"
        idle_timeout = "2m"
        allow_device_ids = ["38e8cf46"]
        allow_networks = ["192.168.1.0/24"]
        [telemetry]
        log_format = "human"
        [transport]
        mode = "legacy"
        "#,
    )
    .unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/cync"));
    assert_eq!(c.timezone.tz, chrono_tz::America::Chicago);
    assert_eq!(c.server.idle_timeout, Duration::from_secs(120));
    assert_eq!(
        c.server.allow_device_ids,
        vec![PeerId([0x38, 0xe8, 0xcf, 0x46])]
    );
    assert!(c.server.allow_networks[0].contains("192.168.1.9".parse().unwrap()));
    assert_eq!(c.telemetry.log_format, LogFormat::Human);
    assert_eq!(c.rollout.configured.mode, Mode::Legacy);
    // Untouched keys keep their defaults.
    assert_eq!(c.server.handshake_timeout, Duration::from_secs(10));
}

#[test]
fn every_kind_of_bad_value_names_its_key() {
    let cases = [
        ("[server]\nlisten = \"nowhere\"", "server.listen"),
        ("[server]\nidle_timeout = \"65\"", "server.idle_timeout"),
        ("[server]\nidle_timeout = 65", "server.idle_timeout"),
        (
            "[server]\nhandshake_timeout = \"0s\"",
            "server.handshake_timeout",
        ),
        ("[server]\nmax_connections = 0", "server.max_connections"),
        (
            "[server]\nmax_connections = \"many\"",
            "server.max_connections",
        ),
        (
            "[server]\nallow_device_ids = [\"xyz\"]",
            "server.allow_device_ids",
        ),
        (
            "[server]\nallow_networks = [\"lan\"]",
            "server.allow_networks",
        ),
        ("[server]\nlistn = \"0.0.0.0:1\"", "server.listn"),
        ("[telemetry]\nlog_format = \"xml\"", "telemetry.log_format"),
        (
            "[telemetry]\nlog_filter = \"info,[\"",
            "telemetry.log_filter",
        ),
        ("[transport]\nmode = \"carrier-pigeon\"", "transport.mode"),
        (
            "[transport]\ncommand_timeout = \"soon\"",
            "transport.command_timeout",
        ),
        ("[state]\nevent_queue = 0", "state.event_queue"),
        ("[rollout]\ncanary_percent = -1.0", "rollout.canary_percent"),
        (
            "[rollout]\ncanary_percent = 101.0",
            "rollout.canary_percent",
        ),
        ("[rollout]\ncanary_percent = nan", "rollout.canary_percent"),
        ("[rollout]\nmode = \"sometimes\"", "rollout.mode"),
        ("[rollout]\ncohort = [\"kitchen\"]", "rollout.cohort"),
        ("[rollout]\nexclude = [\"1000-\"]", "rollout.exclude"),
        ("[slo]\nlatency_limit = \"1400ms\"", "slo.latency_limit"),
        ("[slo]\nsuccess_window = \"36d\"", "slo.success_window"),
        ("[slo]\nsuccess_target = 100.5", "slo.success_target"),
        ("[rollback]\nsignificance = 0.0", "rollback.significance"),
        ("[rollback]\nconsecutive = 0", "rollback.consecutive"),
        ("[rollback]\ntarget = \"yesterday\"", "rollback.target"),
        (
            "[devices]\ngroup_commands = \"broadcast\"",
            "devices.group_commands",
        ),
        ("timezone = \"Mars/Olympus_Mons\"", "timezone"),
        ("[mqtt_typo]\nurl = \"x\"", "mqtt_typo"),
    ];
    for (text, key) in cases {
        assert_eq!(key_of(from_toml(text)), key, "for {text:?}");
    }
}

#[test]
fn an_error_message_says_which_key_where_and_what_is_expected() {
    let error = from_toml("[server]\nidle_timeout = \"65\"").unwrap_err();
    let text = error.to_string();
    assert!(text.contains("server.idle_timeout"), "{text}");
    assert!(text.contains("no unit"), "{text}");
}

#[test]
fn a_missing_explicit_file_is_an_error_but_a_missing_default_file_is_not() {
    let missing = ConfigFile::Explicit(PathBuf::from("/nonexistent/cync.toml"));
    assert!(matches!(
        load(&missing),
        Err(ConfigError::MissingFile { .. })
    ));
    assert!(figment(&ConfigFile::Default).is_ok());
}

#[test]
fn a_misspelt_key_in_a_known_section_suggests_the_nearest_key() {
    let error = from_toml("[mqtt]\nurll = \"mqtt://127.0.0.1\"").unwrap_err();
    let text = error.to_string();
    assert!(text.contains("did you mean `url`?"), "{text}");
}

#[test]
fn admin_access_settings_are_validated_and_auto_trusts_only_the_supervisor() {
    let c = from_toml("").unwrap();
    assert_eq!(c.telemetry.ingress_peers, IngressPeers::Auto);
    assert!(c.telemetry.allowed_hosts.is_empty());
    let c =
        from_toml("[telemetry]\nallowed_hosts = [\"Cync.LAN\"]\ningress_peers = [\"10.0.0.2\"]")
            .unwrap();
    assert_eq!(c.telemetry.allowed_hosts, vec!["cync.lan".to_owned()]);
    assert_eq!(
        c.telemetry.ingress_peers.resolve(),
        vec!["10.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(
        key_of(from_toml("[telemetry]\ningress_peers = [\"supervisor\"]")),
        "telemetry.ingress_peers"
    );
    assert_eq!(
        key_of(from_toml("[telemetry]\nallowed_hosts = [\"evil/host\"]")),
        "telemetry.allowed_hosts"
    );
}

#[test]
fn an_upgraded_config_keeps_its_command_path() {
    // Written before rollouts existed: [transport] mode alone decides, as it always did.
    assert_eq!(
        from_toml("").unwrap().rollout.configured.mode,
        Mode::Reliable
    );
    let legacy = from_toml("[transport]\nmode = \"legacy\"").unwrap();
    assert_eq!(legacy.rollout.configured.mode, Mode::Legacy);
    // [transport] mode takes the new modes too, and [rollout] mode wins when set.
    let shadow = from_toml("[transport]\nmode = \"shadow\"").unwrap();
    assert_eq!(shadow.rollout.configured.mode, Mode::Shadow);
    let both = from_toml("[transport]\nmode = \"legacy\"\n[rollout]\nmode = \"canary\"").unwrap();
    assert_eq!(both.rollout.configured.mode, Mode::Canary);
}

#[test]
fn the_programmes_variables_set_a_canary_below_the_cync_variables() {
    let with_aliases = |vars: &[(&str, &str)]| {
        let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        let figment = Figment::from(Serialized::defaults(RawConfig::default()))
            .merge(rollout::Aliases::from_vars(vars));
        validate(&figment)
    };
    let c = with_aliases(&[("CANARY_PERCENTAGE", "12.5")]).unwrap();
    assert_eq!(c.rollout.configured.mode, Mode::Canary);
    assert_eq!(c.rollout.configured.cohort.share.basis_points(), 1250);
    let c = with_aliases(&[("DARK_LAUNCH", "true")]).unwrap();
    assert_eq!(c.rollout.configured.mode, Mode::Shadow);
    let c = with_aliases(&[("CANARY_COHORT", "1000-10,1000-group-32769")]).unwrap();
    assert_eq!(c.rollout.configured.cohort.explicit.len(), 2);
    let err = with_aliases(&[("CANARY_PERCENTAGE", "lots")]).unwrap_err();
    assert_eq!(err.key(), Some("rollout.canary_percent"));
    assert!(err.to_string().contains("CANARY_PERCENTAGE"), "{err}");
}
