//! One entity's waiting commands, where the newest command always wins.
//!
//! Why not a bounded channel: a dragged slider or an automation firing in a loop sends many
//! commands to one light within milliseconds. A fixed channel refuses the newest once full, so
//! the light ends at an *older* value than the user's last command. Here a new job first
//! supersedes every waiting job whose attributes it sets again (power, level, colour, effect,
//! mode): those would be overwritten on the device anyway. If the box is still full, the oldest
//! waiting job is superseded. A job already being carried out is never touched.
//!
//! The worker that drains the box ends after being idle; it marks the box closed under the same
//! lock the dispatcher pushes under, so a job can never be left in a box nobody reads.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use super::worker::Job;
use crate::protocol::Command;

/// Attribute bits a command sets; `OTHER` never matches, so such a job is never superseded.
const POWER: u8 = 1;
const LEVEL: u8 = 2;
const COLOR: u8 = 4;
const EFFECT: u8 = 8;
const MODE: u8 = 16;
const OTHER: u8 = 128;

fn attributes(commands: &[Command]) -> u8 {
    commands.iter().fold(0, |bits, command| {
        bits | match command {
            Command::Power { .. } => POWER,
            Command::Light {
                brightness, color, ..
            } => {
                (if brightness.is_some() { LEVEL } else { 0 })
                    | (if color.is_some() { COLOR } else { 0 })
            }
            Command::Effect { .. } => EFFECT,
            Command::SwitchMode { .. } => MODE,
            _ => OTHER,
        }
    })
}

#[derive(Debug, Default)]
struct Inner {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// What pushing a job did.
#[derive(Debug)]
pub(super) enum Pushed {
    /// Queued; this many waiting jobs were superseded by it.
    Queued { superseded: usize },
    /// The box's worker has ended: start a new box and worker for this job.
    Closed(Box<Job>),
}

#[derive(Debug)]
pub(super) struct Mailbox {
    inner: Mutex<Inner>,
    ready: Notify,
    capacity: usize,
}

impl Mailbox {
    pub(super) fn new(capacity: usize) -> Self {
        Mailbox {
            inner: Mutex::new(Inner::default()),
            ready: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves only a queue of plain values behind: still
        // consistent, so keep using it rather than poisoning every later command.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn push(&self, job: Job) -> Pushed {
        let mut inner = self.lock();
        if inner.closed {
            return Pushed::Closed(Box::new(job));
        }
        let new = attributes(&job.commands);
        let before = inner.jobs.len();
        inner.jobs.retain(|old| {
            let old = attributes(&old.commands);
            old & OTHER != 0 || old & !new != 0
        });
        let mut superseded = before - inner.jobs.len();
        while inner.jobs.len() >= self.capacity {
            inner.jobs.pop_front();
            superseded += 1;
        }
        inner.jobs.push_back(job);
        drop(inner);
        self.ready.notify_one();
        Pushed::Queued { superseded }
    }

    /// The next job, waiting until one arrives; `None` (and the box closed for good) once the
    /// box has stayed empty for `idle`.
    pub(super) async fn next(&self, idle: std::time::Duration) -> Option<Job> {
        loop {
            if let Some(job) = self.lock().jobs.pop_front() {
                return Some(job);
            }
            // A push between the check above and this wait stores a permit in `ready`, so the
            // wake-up is not lost.
            if tokio::time::timeout(idle, self.ready.notified())
                .await
                .is_err()
            {
                let mut inner = self.lock();
                if inner.jobs.is_empty() {
                    inner.closed = true;
                    return None;
                }
            }
        }
    }

    /// Stops taking jobs (shutdown); what is waiting is dropped with the box.
    pub(super) fn close(&self) {
        self.lock().closed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{DeviceKey, HomeId, MeshId};
    use crate::mqtt::topics::{EntityKey, EntityKind};

    fn job(commands: Vec<Command>) -> Job {
        Job {
            entity: EntityKey {
                home: 1,
                kind: EntityKind::Device,
                id: 5,
            },
            wire: DeviceKey {
                home: HomeId::DEFAULT,
                mesh: MeshId(5),
            },
            commands,
            members: Vec::new(),
            per_member: false,
            effect: None,
            correlation: uuid::Uuid::nil(),
        }
    }

    fn level(b: u8) -> Command {
        Command::Light {
            target: 5,
            brightness: Some(b),
            color: None,
        }
    }

    fn power(on: bool) -> Command {
        Command::Power { target: 5, on }
    }

    fn waiting(b: &Mailbox) -> Vec<Vec<Command>> {
        b.lock().jobs.iter().map(|j| j.commands.clone()).collect()
    }

    #[test]
    fn a_newer_command_for_the_same_attributes_replaces_the_waiting_one() {
        let b = Mailbox::new(16);
        assert!(matches!(
            b.push(job(vec![level(10)])),
            Pushed::Queued { superseded: 0 }
        ));
        assert!(matches!(
            b.push(job(vec![level(20)])),
            Pushed::Queued { superseded: 1 }
        ));
        // Power + level covers a waiting level; a waiting power survives a level-only job.
        b.push(job(vec![power(false)]));
        assert!(matches!(
            b.push(job(vec![power(true), level(30)])),
            Pushed::Queued { superseded: 2 }
        ));
        b.push(job(vec![level(40)]));
        assert_eq!(
            waiting(&b),
            vec![vec![power(true), level(30)], vec![level(40)]]
        );
    }

    #[test]
    fn a_full_box_supersedes_its_oldest_job_never_the_newest() {
        let b = Mailbox::new(2);
        let query = |target| Command::Query { target, param: 21 };
        b.push(job(vec![query(1)]));
        b.push(job(vec![query(2)]));
        assert!(matches!(
            b.push(job(vec![query(3)])),
            Pushed::Queued { superseded: 1 }
        ));
        assert_eq!(waiting(&b), vec![vec![query(2)], vec![query(3)]]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_box_closes_and_hands_back_what_is_pushed_after() {
        let b = Mailbox::new(4);
        b.push(job(vec![level(10)]));
        assert!(b.next(std::time::Duration::from_secs(1)).await.is_some());
        assert!(b.next(std::time::Duration::from_secs(1)).await.is_none());
        assert!(matches!(b.push(job(vec![level(20)])), Pushed::Closed(_)));
    }
}
