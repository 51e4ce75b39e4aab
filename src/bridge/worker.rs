//! One task per entity that carries out its MQTT commands one after another.
//!
//! Why per entity: a JSON light command can become several Cync commands (power on, then level,
//! then colour) that must arrive in order, and two commands for the same light must not overtake
//! each other — while a slow or unreachable light must never hold up any other. The MQTT event
//! loop only parses and hands over (`try_send`), so it never waits on a device.
//!
//! A group command is one mesh broadcast to the group address — or, for a group whose id could
//! also be a device's mesh id (the Cync account's room ids 1, 2, …), one command per member
//! (`devices.group_commands`, `docs/protocol.md#groups`); it completes when every member has
//! confirmed the new state (a report showing it). Members that stay silent are asked with a mesh-info request,
//! whose answer lists every node's state (`docs/protocol.md`, mesh info).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::mailbox::{Mailbox, Pushed};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::device::{Confirmation, DeviceKey, Expectation, StateStore};
use crate::mqtt::topics::{EntityKey, EntityKind};
use crate::protocol::Command;
use crate::transport::{CommandOutcome, CommandRequest, CommandTransport, RouteKey};

/// Commands waiting per entity behind the one being carried out; beyond that the oldest waiting
/// one is superseded, never the newest.
pub const QUEUE: usize = 16;

/// A worker with nothing to do for this long ends (the next command starts a new one).
const IDLE: Duration = Duration::from_secs(300);

/// After a group command, wait this long for members' own reports before asking for mesh info.
const MESH_INFO_AFTER: Duration = Duration::from_millis(700);

/// One MQTT command, translated.
#[derive(Debug)]
pub struct Job {
    /// The entity commanded.
    pub entity: EntityKey,
    /// Where the commands go.
    pub wire: DeviceKey,
    /// In order.
    pub commands: Vec<Command>,
    /// Group members that must confirm (empty for devices).
    pub members: Vec<DeviceKey>,
    /// Send each member its own commands instead of one to the group address
    /// ([`super::GroupCommands`]).
    pub per_member: bool,
    /// The effect started, for the state payload.
    pub effect: Option<&'static str>,
    /// Correlation id of the whole MQTT command.
    pub correlation: uuid::Uuid,
}

/// What became of a job, for the event loop.
#[derive(Debug)]
pub struct Done {
    #[allow(missing_docs)]
    pub entity: EntityKey,
    /// The first outcome that was not a success, or success.
    pub outcome: CommandOutcome,
    /// The effect started, on success.
    pub effect: Option<&'static str>,
}

/// What every worker shares.
#[derive(Debug)]
pub struct WorkerContext {
    /// The command path.
    pub transport: Arc<dyn CommandTransport>,
    /// Device state (group confirmation).
    pub state: Arc<StateStore>,
    /// Deadline of one Cync command.
    pub command_timeout: Duration,
    /// Deadline of a group's member confirmations.
    pub group_confirm_timeout: Duration,
    /// Results go back to the event loop.
    pub done: mpsc::Sender<Done>,
    /// Bridge shutdown.
    pub shutdown: CancellationToken,
}

/// Hands jobs to their entity's worker, starting one when there is none (or it ended idle).
#[derive(Debug)]
pub struct Dispatcher {
    boxes: HashMap<EntityKey, Arc<Mailbox>>,
    ctx: Arc<WorkerContext>,
    tracker: TaskTracker,
}

impl Dispatcher {
    #[allow(missing_docs)]
    pub fn new(ctx: Arc<WorkerContext>, tracker: TaskTracker) -> Self {
        Dispatcher {
            boxes: HashMap::new(),
            ctx,
            tracker,
        }
    }

    /// Queues `job` behind the entity's earlier commands without waiting, superseding waiting
    /// ones it makes pointless; returns how many it superseded.
    pub fn dispatch(&mut self, job: Job) -> usize {
        let key = job.entity;
        let mut job = job;
        loop {
            let mailbox = self.boxes.entry(key).or_insert_with(|| {
                let mailbox = Arc::new(Mailbox::new(QUEUE));
                let ctx = Arc::clone(&self.ctx);
                self.tracker.spawn(run(ctx, Arc::clone(&mailbox)));
                mailbox
            });
            match mailbox.push(job) {
                Pushed::Queued { superseded } => return superseded,
                // The worker ended while idle: a fresh box and worker take the job.
                Pushed::Closed(j) => {
                    self.boxes.remove(&key);
                    job = *j;
                }
            }
        }
    }
}

/// Runs one entity's worker until it has been idle for a while or the bridge stops.
async fn run(ctx: Arc<WorkerContext>, mailbox: Arc<Mailbox>) {
    loop {
        let job = tokio::select! {
            () = ctx.shutdown.cancelled() => {
                mailbox.close();
                return;
            }
            // cancel-safe: a job is only taken out of the box when `next` returns it.
            job = mailbox.next(IDLE) => job,
        };
        let Some(job) = job else { return };
        let entity = job.entity;
        let effect = job.effect;
        let outcome = execute(&ctx, job).await;
        let done = Done {
            entity,
            outcome,
            effect: effect.filter(|_| outcome == CommandOutcome::Success),
        };
        if ctx.done.send(done).await.is_err() {
            return;
        }
    }
}

async fn execute(ctx: &WorkerContext, job: Job) -> CommandOutcome {
    // Register member expectations before anything is sent, so a fast report is not missed.
    let expect = merged_expectation(&job.commands);
    let mut waits: Vec<(DeviceKey, oneshot::Receiver<Confirmation>)> = Vec::new();
    if let Some(expect) = expect {
        for member in &job.members {
            match ctx.state.expect(*member, expect) {
                Ok(rx) => waits.push((*member, rx)),
                Err(full) => {
                    tracing::warn!(limit = full.limit, "group member confirmation not tracked")
                }
            }
        }
    }
    let sent = send(ctx, &job).await;
    if sent != CommandOutcome::Success || waits.is_empty() {
        return sent;
    }
    confirm_members(ctx, &job, waits).await
}

/// Sends the job's commands — to its address, or to each member in turn — and returns the first
/// outcome that was not a success. Per member, every member is tried even after one failed, so
/// one unreachable bulb does not leave the rest of the room unswitched.
async fn send(ctx: &WorkerContext, job: &Job) -> CommandOutcome {
    let targets = if job.per_member {
        job.members.clone()
    } else {
        vec![job.wire]
    };
    // Routed by the entity commanded, so a group's commands share one rollout path.
    let route = RouteKey {
        home: job.entity.home,
        id: job.entity.id,
        group: job.entity.kind == EntityKind::Group,
    };
    let mut first_failure = None;
    for target in targets {
        for command in &job.commands {
            let command = if job.per_member {
                command.with_target(target.mesh.0)
            } else {
                *command
            };
            // The MQTT command's correlation id, so every Cync command it became logs under it.
            let request = CommandRequest {
                key: target,
                route,
                command,
                timeout: ctx.command_timeout,
                correlation: job.correlation,
            };
            let report = ctx.transport.execute(request, &ctx.shutdown).await;
            if report.outcome != CommandOutcome::Success {
                tracing::warn!(
                    entity = %job.entity,
                    target = %target,
                    outcome = report.outcome.as_str(),
                    correlation_id = %job.correlation,
                    "mqtt command failed"
                );
                first_failure.get_or_insert(report.outcome);
                // The rest of this target's commands would build on the failed one.
                break;
            }
        }
        if first_failure.is_some() && !job.per_member {
            break;
        }
    }
    first_failure.unwrap_or(CommandOutcome::Success)
}

/// Waits for every member's confirming report; asks for mesh info once if some are slow.
async fn confirm_members(
    ctx: &WorkerContext,
    job: &Job,
    waits: Vec<(DeviceKey, oneshot::Receiver<Confirmation>)>,
) -> CommandOutcome {
    let deadline = Instant::now() + ctx.group_confirm_timeout;
    let refresh_at = Instant::now() + MESH_INFO_AFTER.min(ctx.group_confirm_timeout / 2);
    let mut refreshed = false;
    let mut pending = waits;
    while !pending.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            let missing: Vec<u16> = pending.iter().map(|(k, _)| k.mesh.0).collect();
            tracing::warn!(
                entity = %job.entity,
                ?missing,
                correlation_id = %job.correlation,
                "group command: members did not confirm"
            );
            return CommandOutcome::NoResponse;
        }
        let wake = if refreshed { deadline } else { refresh_at };
        let (key, rx) = pending.swap_remove(0);
        let mut rx = rx;
        tokio::select! {
            () = ctx.shutdown.cancelled() => return CommandOutcome::Cancelled,
            r = &mut rx => {
                if r.is_err() {
                    // The store dropped the waiter (over its limit): cannot confirm this one.
                    tracing::debug!(member = %key, "member confirmation abandoned");
                }
            }
            () = tokio::time::sleep_until(wake) => {
                pending.push((key, rx));
                if !refreshed {
                    refreshed = true;
                    request_mesh_info(ctx, job, pending.iter().map(|(k, _)| *k));
                }
            }
        }
    }
    CommandOutcome::Success
}

/// Asks, through the transport, for mesh info from the first silent member it can reach.
fn request_mesh_info(ctx: &WorkerContext, job: &Job, members: impl Iterator<Item = DeviceKey>) {
    let mut members = members;
    if !members.any(|m| ctx.transport.refresh(m, job.correlation)) {
        tracing::debug!(entity = %job.entity, "mesh-info refresh not sent: no route to a silent member");
    }
}

/// The state a sequence of commands leaves a device in (later commands win per field).
fn merged_expectation(commands: &[Command]) -> Option<Expectation> {
    let mut merged: Option<Expectation> = None;
    for command in commands {
        let Some(e) = Expectation::for_command(command) else {
            continue;
        };
        let m = merged.get_or_insert_with(Expectation::default);
        m.on = e.on.or(m.on);
        m.brightness = e.brightness.or(m.brightness);
        if e.temperature.is_some() {
            m.temperature = e.temperature;
            m.rgb = e.rgb;
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::LightColor;

    #[test]
    fn later_commands_win_in_the_expected_state() {
        let cmds = [
            Command::Power {
                target: 5,
                on: true,
            },
            Command::Light {
                target: 5,
                brightness: Some(40),
                color: Some(LightColor::Temperature(30)),
            },
        ];
        let e = merged_expectation(&cmds).unwrap();
        assert_eq!(e.on, Some(true));
        assert_eq!(e.brightness, Some(40));
        assert_eq!(e.temperature, Some(30));
        assert_eq!(merged_expectation(&[Command::MeshInfoRequest]), None);
    }
}
