//! The rollout controller's task over its real evidence store: runtime changes and a latched
//! rollback survive a restart (a restart never silently re-enables a rolled-back canary), and a
//! store that cannot be read or written holds the controller — commands keep flowing, nothing
//! is promoted or rolled back on missing evidence, and the status says why.

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use cync_bridge::device::{DeviceKey, HomeId, StoreSettings as StateSettings};
use cync_bridge::protocol::Command;
use cync_bridge::rollout::assign::{Cohort, Share};
use cync_bridge::rollout::control::{Configured, Mode};
use cync_bridge::rollout::controller::Request;
use cync_bridge::rollout::settings::RolloutSettings;
use cync_bridge::rollout::task::{self, Started};
use cync_bridge::server::Services;
use cync_bridge::telemetry::Metrics;
use cync_bridge::transport::reliable::Policy;
use cync_bridge::transport::{CommandOutcome, CommandRequest};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn settings(store: &Path, percent: f64) -> RolloutSettings {
    RolloutSettings {
        configured: Configured {
            mode: Mode::Canary,
            cohort: Cohort {
                share: Share::from_percent(percent).unwrap(),
                ..Cohort::default()
            },
            shadow_legacy: false,
        },
        store_path: store.to_path_buf(),
        ..RolloutSettings::default()
    }
}

struct Running {
    started: Started,
    metrics: Metrics,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

fn run(settings: &RolloutSettings) -> Running {
    let metrics = Metrics::new();
    let state = StateSettings {
        event_queue: NonZeroUsize::new(64).unwrap(),
        max_waiters: NonZeroUsize::new(64).unwrap(),
    };
    let services = Services::new(&state, metrics.clone());
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let started = task::start(
        settings,
        Policy::reliable(),
        &services,
        &tracker,
        shutdown.clone(),
    );
    Running {
        started,
        metrics,
        tracker,
        shutdown,
    }
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(10), self.tracker.wait())
            .await
            .expect("the controller stops and flushes");
    }
}

#[tokio::test]
async fn a_latch_and_runtime_changes_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&dir.path().join("rollout.sqlite3"), 10.0);
    let first = run(&settings);
    first
        .started
        .handle
        .ask(Request::SetPercent(30.0))
        .await
        .unwrap();
    let status = first.started.handle.ask(Request::Rollback).await.unwrap();
    assert_eq!(status.effective_percent, 0.0);
    first.stop().await;

    let second = run(&settings);
    let status = second.started.handle.status();
    let latch = status
        .latch
        .as_ref()
        .expect("still latched after the restart");
    assert_eq!(latch.reason, "manual");
    assert_eq!(
        status.effective_percent, 0.0,
        "the configured 10 % does not come back"
    );
    assert_eq!(status.canary_percent, 30.0, "the runtime change is kept");
    assert_eq!(
        second.metrics.sample_value("tcp_comm_rollback_latched"),
        Some(1.0)
    );
    let status = second.started.handle.ask(Request::Resume).await.unwrap();
    assert_eq!(status.effective_percent, 30.0);
    second.stop().await;

    let third = run(&settings);
    assert!(
        third.started.handle.status().latch.is_none(),
        "the resume was stored too"
    );
    third.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_store_holds_the_canary_on_legacy_and_commands_keep_flowing() {
    let dir = tempfile::tempdir().unwrap();
    // The data directory is a file: nothing can be opened, read or written there.
    let not_a_dir = dir.path().join("data");
    std::fs::write(&not_a_dir, b"not a directory").unwrap();
    let running = run(&settings(&not_a_dir.join("rollout.sqlite3"), 50.0));
    let handle = &running.started.handle;
    let status = handle.status();
    assert_eq!(
        status.latch.as_ref().map(|l| l.reason.as_str()),
        Some("evidence_lost"),
        "an earlier rollback cannot be ruled out, so the canary waits on legacy"
    );
    assert!(!status.store.healthy);
    assert!(status.store.reason.is_some());
    assert_eq!(
        running
            .metrics
            .sample_value("tcp_comm_rollout_store_healthy"),
        Some(0.0)
    );

    // A command still gets its outcome (no device is connected: no route), without waiting
    // for the disk.
    let key = DeviceKey::new(HomeId::DEFAULT, 5);
    let request = CommandRequest::new(
        key,
        Command::Power {
            target: 5,
            on: true,
        },
        Duration::from_millis(300),
    );
    let report = running
        .started
        .transport
        .execute(request, &CancellationToken::new())
        .await;
    assert_eq!(report.outcome, CommandOutcome::NoRoute);

    // Resumed, the canary runs, but evaluations hold: no rollback on missing evidence.
    handle.ask(Request::Resume).await.unwrap();
    tokio::time::sleep(Duration::from_secs(61)).await;
    let status = handle.status();
    assert_eq!(status.hold, Some("evidence store unavailable"));
    assert_eq!(status.effective_percent, 50.0);
    assert!(
        running
            .metrics
            .sample_value("tcp_comm_rollout_evaluations_total{verdict=\"held\"}")
            .unwrap()
            >= 1.0
    );
    // The store's writer is a real thread: with the clock still paused, tokio would jump past
    // the stop deadline while it flushes.
    tokio::time::resume();
    running.stop().await;
}
