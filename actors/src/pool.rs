//! Worker pools: one ractor `factory` per kind of slow work (scraping, ingesting, searching and
//! answering), each a permanent child of the root supervisor.
//!
//! The factory replaces a crashed worker itself and keeps the jobs queued for it; the builder
//! reports every replacement to the root supervisor, which counts it against its restart
//! intensity (`aurora_actor_restarts_total{actor="<pool>_worker"}`).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use ractor::factory::{
    Factory, FactoryArguments, FactoryMessage, Job, Worker, WorkerId, queues::DefaultQueue,
    routing::QueuerRouting, worker_builder,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, Message};

use crate::supervisor::{ChildSpec, SupervisorMsg};

/// Jobs are keyed by a number unique within the tree, so traces can follow one job.
pub type JobKey = u64;

/// A job that answers its caller, and can answer "unavailable" without running.
pub trait PoolJob: Message {
    fn fail_unavailable(self);
}

/// What one worker of a pool does with a job. The ractor `Worker` plumbing is written once, in
/// [`PoolWorker`]; a pool's module holds only its messages and this.
pub(crate) trait JobHandler: Send + Sync + 'static {
    type Job: PoolJob;
    /// Runs the job and answers its caller. A panic here crashes the worker (the factory replaces
    /// it and the supervisor counts it); an error is the caller's answer, not a crash.
    fn run(&self, job: Self::Job) -> impl Future<Output = ()> + Send;
}

/// A factory worker around a [`JobHandler`]; stateless, so a replacement starts ready.
pub(crate) struct PoolWorker<H>(pub H);

impl<H: JobHandler> Worker for PoolWorker<H> {
    type Key = JobKey;
    type Message = H::Job;
    type Arguments = ();
    type State = ();

    async fn pre_start(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<JobKey, H::Job>>,
        _args: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<JobKey, H::Job>>,
        Job { key, msg, .. }: Job<JobKey, H::Job>,
        _state: &mut (),
    ) -> Result<JobKey, ActorProcessingErr> {
        self.0.run(msg).await;
        Ok(key)
    }
}

/// A pool as a supervised child: `workers` instances of what `make` builds, registered as `name`.
pub(crate) fn child_spec<H, F>(
    label: &'static str,
    worker_label: &'static str,
    name: String,
    root: String,
    workers: usize,
    make: F,
) -> ChildSpec
where
    H: JobHandler,
    F: Fn() -> H + Send + Sync + 'static,
{
    let make = Arc::new(make);
    ChildSpec {
        label,
        start: Arc::new(move |supervisor| {
            let (make, name, root) = (make.clone(), name.clone(), root.clone());
            Box::pin(async move {
                // The factory calls the builder for the initial workers and again for every
                // replacement of a crashed one: a second build of the same id is a restart.
                let mut built = HashSet::new();
                let builder = worker_builder(move |wid: WorkerId| {
                    if !built.insert(wid)
                        && let Some(root) = ActorRef::<SupervisorMsg>::where_is(&root)
                    {
                        let _ = root.cast(SupervisorMsg::WorkerReplaced {
                            label: worker_label,
                        });
                    }
                    (PoolWorker(make()), ())
                });
                let factory = Factory::<
                    JobKey,
                    H::Job,
                    (),
                    PoolWorker<H>,
                    QueuerRouting<JobKey, H::Job>,
                    DefaultQueue<JobKey, H::Job>,
                >::default();
                let args = FactoryArguments::builder()
                    .worker_builder(Box::new(builder))
                    .queue(Default::default())
                    .router(Default::default())
                    .num_initial_workers(workers.max(1))
                    .build();
                let (pool, _) = Actor::spawn_linked(Some(name), factory, args, supervisor).await?;
                Ok(pool.get_cell())
            })
        }),
    }
}

/// Hands `job` to the pool registered as `name`. When the pool is missing or refuses it, the job
/// answers `Unavailable` if it can still be recovered; otherwise it was dropped with its reply
/// port, which the caller's handle sees as a lost call and retries. Returns whether it went in.
pub(crate) fn dispatch<M: PoolJob>(name: &str, key: JobKey, job: M) -> bool {
    let Some(pool) = ActorRef::<FactoryMessage<JobKey, M>>::where_is(name) else {
        job.fail_unavailable();
        return false;
    };
    match pool.dispatch(key, job) {
        Ok(()) => true,
        Err(err) => {
            if let ractor::MessagingErr::SendErr(FactoryMessage::Dispatch(job)) = *err {
                job.msg.fail_unavailable();
            }
            false
        }
    }
}
