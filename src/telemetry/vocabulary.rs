//! The fixed label values of every family whose labels are chosen in code, never read off the wire.
//!
//! Why it exists: a counter that has never been incremented does not exist for Prometheus, so a
//! dashboard or alert (`rate(tcp_comm_command_total{outcome="timeout"}[5m])`) sees "no data"
//! instead of 0 until the first failure — exactly when it matters. [`Metrics::new`] therefore
//! creates every series of these families at zero. Telemetry is the bottom layer and must not
//! import transport, server or mqtt, so the callers' vocabularies are copied here;
//! `tests/telemetry_vocabulary.rs` fails when a caller uses a value missing from these lists.
//!
//! Families labelled by `device_id` (packets, acks, queue overflows) are not pre-created: that
//! would multiply every device's series by its vocabulary before anything happened to it.
//! [`QUEUE_TYPES`] and the packet outcomes are still listed so the test keeps them honest.
//!
//! [`Metrics::new`]: super::Metrics::new

/// `transport` label: `Policy::reliable().name`, `Policy::legacy().name`, and `shadow` for what
/// the reliable path would have done with legacy's commands (never transmitted).
pub const TRANSPORTS: &[&str] = &["reliable", "legacy"];

/// `mode` of `tcp_comm_rollout_mode`: every `rollout::control::Mode::as_str`.
pub const ROLLOUT_MODES: &[&str] = &["legacy", "shadow", "canary", "reliable"];

/// `reason` of `tcp_comm_rollback_total`: by hand, or the `slo_name` of the failing fast check.
pub const ROLLBACK_REASONS: &[&str] = &["manual", "command_success", "command_latency"];

/// `verdict` of `tcp_comm_rollout_evaluations_total`: every detector verdict, plus `held` for an
/// evaluation that could not count (latched, not a canary, disabled, no evidence).
pub const ROLLOUT_VERDICTS: &[&str] = &["pass", "insufficient", "house_wide", "fail", "held"];

/// `outcome` of `tcp_comm_command_total`: every `CommandOutcome::as_str`.
pub const COMMAND_OUTCOMES: &[&str] = &[
    "success",
    "no_response",
    "timeout",
    "no_route",
    "send_error",
    "superseded",
    "cancelled",
];

/// `reason` of `tcp_comm_sessions_closed_total`: every `CloseReason::as_str`, plus
/// [`SESSION_CLOSE_ABORTED`](super::SESSION_CLOSE_ABORTED) for a guard dropped unclosed.
pub const SESSION_CLOSE_REASONS: &[&str] = &[
    "eof",
    "read_error",
    "write_error",
    "write_timeout",
    "idle_timeout",
    "replaced",
    "shutdown",
    "app_login_refused",
    "device_not_allowed",
    "requested",
    "no_hello",
    super::metrics::SESSION_CLOSE_ABORTED,
];

/// `reason` of `tcp_comm_tls_handshake_failures_total` (the device listener's classification).
pub const HANDSHAKE_FAILURE_REASONS: &[&str] = &["closed", "protocol", "other", "setup", "timeout"];

/// `reason` of `tcp_comm_connections_rejected_total` (the device listener's admission checks).
pub const REJECTION_REASONS: &[&str] = &["network_not_allowed", "over_limit", "hold_pool_full"];

/// `kind` of `tcp_comm_mqtt_published_total`.
pub const MQTT_PUBLISH_KINDS: &[&str] =
    &["discovery", "state", "availability", "attributes", "bridge"];

/// `result` of `tcp_comm_mqtt_commands_total`.
pub const MQTT_COMMAND_RESULTS: &[&str] = &[
    "accepted",
    "invalid",
    "unknown_entity",
    "disabled",
    "superseded",
];

/// `queue_type` of `tcp_comm_queue_full_total` (device-labelled: listed, not pre-created).
pub const QUEUE_TYPES: &[&str] = &["send", "command_events", "command", "transport"];

/// `outcome` of `tcp_comm_packet_sent_total` (device-labelled: listed, not pre-created).
pub const PACKET_SENT_OUTCOMES: &[&str] = &["ok", "dropped"];

/// `kind` of `tcp_comm_rollout_store_errors_total`: every `StoreErrorKind::as_str`.
pub const ROLLOUT_STORE_ERROR_KINDS: &[&str] =
    &["open", "corrupt", "locked", "full", "io", "dropped"];
