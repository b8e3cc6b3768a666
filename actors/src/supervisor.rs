//! The root supervisor: one-for-one restarts with exponential backoff, an OTP-style restart
//! intensity, and escalation past it.
//!
//! ractor has no restart strategy of its own, and by default a parent stops when a linked child
//! stops. This actor overrides `handle_supervisor_evt` to restart instead.
//!
//! | child     | what                                  | restart   | while it is down                       |
//! |-----------|---------------------------------------|-----------|----------------------------------------|
//! | `scraper` | ractor `Factory` of `ScraperWorker`s  | permanent | router answers `Unavailable` (503)     |
//! | `ingest`  | ractor `Factory` of `IngestWorker`s   | permanent | router answers `Unavailable` (503)     |
//! | `rag`     | ractor `Factory` of `RagWorker`s      | permanent | router answers `Unavailable` (503)     |
//! | `session` | ractor `Factory` of `SessionWorker`s  | permanent | logins 503; token checks go on (no pool) |
//! | `browser` | ractor `Factory` of `BrowserWorker`s  | permanent | renders fail at once ("the browser pool is restarting"); `auto` scrapes fall back to the HTTP page |
//! | `router`  | `RouterActor`                         | permanent | handles wait `lookup_grace`, then 503  |
//! | `crawler` | `CrawlerPool` and its consumer task   | permanent | new jobs wait `lookup_grace`, then 503; status, pages and cancel go on (read from the job store); leased items are reclaimed when their leases expire |
//! | (worker)  | one worker in a pool                  | by the factory, at once | its queue is kept by the factory |
//!
//! - **One-for-one**: only the child that stopped is restarted, under the same registered name, so
//!   callers that look actors up by name reach the new one.
//! - **Backoff**: the k-th restart of a child within the window waits
//!   `backoff_initial × 2^(k-1)`, capped at `backoff_max`.
//! - **Intensity**: as in OTP the budget belongs to the supervisor: at most `max_restarts`
//!   restarts (children and pool workers together) within `within`. One more **escalates**: the
//!   root stops, [`TreeExit::Escalated`] is published, and `aurora serve` exits non-zero so the
//!   orchestrator restarts the whole process.
//! - A child that stops normally is restarted too: every child is permanent; only the root's own
//!   shutdown ends them for good.
//!
//! Shutdown stops the children in reverse start order (the router before the pools it feeds).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use tokio::sync::watch;
use tokio::time::Instant;

/// When and how often children may be restarted.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    pub max_restarts: u32,
    pub within: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl RestartPolicy {
    /// Delay before the `attempt`-th restart (1-based) of a child within the window.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.backoff_initial
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }
}

/// Starts a child linked to the supervisor cell it is given, under its registered name.
pub type StartChild =
    Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;

/// A child the supervisor keeps alive. `label` is its bounded metric label.
pub struct ChildSpec {
    pub label: &'static str,
    pub start: StartChild,
}

/// How the tree ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeExit {
    /// Asked to stop.
    Shutdown,
    /// Restart intensity exceeded (or the root itself died): the process should exit non-zero.
    Escalated { actor: String, reason: String },
}

pub enum SupervisorMsg {
    /// Backoff for child `index` elapsed: start it again.
    Restart(usize),
    /// A pool replaced one of its workers itself; it still counts against our intensity.
    WorkerReplaced { label: &'static str },
}

pub struct Supervisor;

pub struct SupervisorArgs {
    pub children: Vec<ChildSpec>,
    pub policy: RestartPolicy,
    pub shutdown_timeout: Duration,
    /// Published once, when the root stops; `Tree::stopped` waits on it.
    pub exit: watch::Sender<Option<TreeExit>>,
}

pub struct SupervisorState {
    args: SupervisorArgs,
    /// The running cell of each child, by child index; `None` while it waits for its restart.
    cells: Vec<Option<ActorCell>>,
    /// Restart instants within the window, all children together (the intensity budget).
    recent: VecDeque<Instant>,
    /// Restart instants within the window, per child (drives the backoff).
    recent_by_child: Vec<VecDeque<Instant>>,
}

impl SupervisorState {
    /// Records a restart; `false` when it exceeds the intensity.
    fn record_restart(&mut self, child: Option<usize>) -> bool {
        let now = Instant::now();
        let window = self.args.policy.within;
        let expired = |queue: &mut VecDeque<Instant>| {
            while queue
                .front()
                .is_some_and(|t| now.duration_since(*t) > window)
            {
                queue.pop_front();
            }
        };
        expired(&mut self.recent);
        self.recent.push_back(now);
        if let Some(index) = child {
            let queue = &mut self.recent_by_child[index];
            expired(queue);
            queue.push_back(now);
        }
        self.recent.len() <= self.args.policy.max_restarts as usize
    }

    fn escalate(&mut self, myself: &ActorRef<SupervisorMsg>, actor: &str, reason: &str) {
        let policy = &self.args.policy;
        tracing::error!(
            actor,
            reason,
            max_restarts = policy.max_restarts,
            within_secs = policy.within.as_secs_f64(),
            "restart intensity exceeded; escalating: the supervision tree stops"
        );
        self.args.exit.send_replace(Some(TreeExit::Escalated {
            actor: actor.to_string(),
            reason: reason.to_string(),
        }));
        myself.stop(Some(format!("escalated: {actor}: {reason}")));
    }

    fn schedule_restart(&mut self, myself: &ActorRef<SupervisorMsg>, index: usize) {
        let attempt = self.recent_by_child[index].len() as u32;
        let delay = self.args.policy.backoff(attempt);
        tracing::info!(
            actor = self.args.children[index].label,
            attempt,
            delay_ms = delay.as_millis() as u64,
            "restart scheduled"
        );
        myself.send_after(delay, move || SupervisorMsg::Restart(index));
    }

    fn child_down(&mut self, myself: &ActorRef<SupervisorMsg>, cell: &ActorCell, reason: String) {
        let Some(index) = self
            .cells
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.get_id() == cell.get_id()))
        else {
            return; // not one of ours (or already replaced)
        };
        self.cells[index] = None;
        let label = self.args.children[index].label;
        tracing::warn!(actor = label, %reason, "supervised actor stopped");
        if self.record_restart(Some(index)) {
            self.schedule_restart(myself, index);
        } else {
            self.escalate(myself, label, &reason);
        }
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut cells = Vec::with_capacity(args.children.len());
        for child in &args.children {
            let cell = (child.start)(myself.get_cell()).await?;
            // Export the series at zero so dashboards and alerts see it before the first restart.
            metrics::counter!("aurora_actor_restarts_total", "actor" => child.label).increment(0);
            cells.push(Some(cell));
        }
        for worker in [
            "scraper_worker",
            "ingest_worker",
            "rag_worker",
            "session_worker",
        ] {
            metrics::counter!("aurora_actor_restarts_total", "actor" => worker).increment(0);
        }
        let recent_by_child = vec![VecDeque::new(); args.children.len()];
        Ok(SupervisorState {
            args,
            cells,
            recent: VecDeque::new(),
            recent_by_child,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Restart(index) => {
                let Some(child) = state.args.children.get(index) else {
                    return Ok(());
                };
                let (label, start) = (child.label, child.start.clone());
                match start(myself.get_cell()).await {
                    Ok(cell) => {
                        state.cells[index] = Some(cell);
                        metrics::counter!("aurora_actor_restarts_total", "actor" => label)
                            .increment(1);
                        tracing::info!(actor = label, "supervised actor restarted");
                    }
                    Err(error) => {
                        let reason = format!("restart failed: {error}");
                        tracing::warn!(actor = label, %reason);
                        if state.record_restart(Some(index)) {
                            state.schedule_restart(&myself, index);
                        } else {
                            state.escalate(&myself, label, &reason);
                        }
                    }
                }
            }
            SupervisorMsg::WorkerReplaced { label } => {
                metrics::counter!("aurora_actor_restarts_total", "actor" => label).increment(1);
                if !state.record_restart(None) {
                    state.escalate(&myself, label, "pool workers keep crashing");
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                state.child_down(&myself, &cell, format!("failed: {error}"));
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let reason = reason.unwrap_or_else(|| "stopped".to_string());
                state.child_down(&myself, &cell, format!("terminated: {reason}"));
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        for cell in state.cells.iter_mut().rev().filter_map(Option::take) {
            let stopped = cell
                .stop_and_wait(
                    Some("shutdown".to_string()),
                    Some(state.args.shutdown_timeout),
                )
                .await;
            if stopped.is_err() {
                cell.kill();
            }
        }
        state.args.exit.send_if_modified(|exit| {
            let first = exit.is_none();
            if first {
                *exit = Some(TreeExit::Shutdown);
            }
            first
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RestartPolicy {
            max_restarts: 3,
            within: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
        };
        let delays: Vec<u128> = (1..=6).map(|k| policy.backoff(k).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(1));
    }
}
