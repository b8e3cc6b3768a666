//! RouterActor: admission control and routing of every request to the worker pool that serves it.
//!
//! Messages: [`RouterMsg::Scrape`] (+ test-only faults). It only makes fast decisions: take an
//! admission permit or refuse with `Overloaded`, then hand the job — with the caller's reply port
//! and the permit — to the scraper pool. It never awaits the work, so its mailbox never blocks.
//!
//! Restart: permanent child of the root supervisor. Its state (the admission semaphore) is owned
//! by the tree, not by the actor, so permits held by in-flight jobs survive a router restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Names;
use crate::model::{Page, ScrapeRequest};
use crate::scraper::{self, ScrapeError, ScrapeJob};
use crate::supervisor::ChildSpec;

pub enum RouterMsg {
    /// Boxed: requests are large and most messages in flight are not scrapes.
    Scrape(Box<ScrapeRequest>, RpcReplyPort<Result<Page, ScrapeError>>),
    #[cfg(feature = "fault-injection")]
    Fault(crate::fault::Fault),
}

/// Bounds the requests in flight across the tree; a job holds its permit until answered.
#[derive(Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
}

/// Held by an admitted job; dropping it (job answered or lost) frees the slot.
pub struct AdmissionPermit {
    _permit: OwnedSemaphorePermit,
}

impl Drop for AdmissionPermit {
    fn drop(&mut self) {
        metrics::gauge!("aurora_router_in_flight").decrement(1.0);
    }
}

impl Admission {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight)),
        }
    }

    fn try_admit(&self) -> Option<AdmissionPermit> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        metrics::gauge!("aurora_router_in_flight").increment(1.0);
        Some(AdmissionPermit { _permit: permit })
    }
}

pub struct RouterActor;

pub struct RouterState {
    names: Arc<Names>,
    admission: Admission,
    /// Job keys for the pool: unique per tree, so traces can follow one job.
    next_job: Arc<AtomicU64>,
}

impl Actor for RouterActor {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = RouterState;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: RouterState,
    ) -> Result<RouterState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: RouterMsg,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RouterMsg::Scrape(request, reply) => {
                let Some(permit) = state.admission.try_admit() else {
                    metrics::counter!("aurora_router_rejections_total", "reason" => "overloaded")
                        .increment(1);
                    let _ = reply.send(Err(ScrapeError::Overloaded));
                    return Ok(());
                };
                let key = state.next_job.fetch_add(1, Ordering::Relaxed);
                let job = ScrapeJob::Scrape {
                    request,
                    reply,
                    permit,
                };
                if !scraper::dispatch(&state.names, key, job) {
                    metrics::counter!("aurora_router_rejections_total", "reason" => "unavailable")
                        .increment(1);
                }
            }
            #[cfg(feature = "fault-injection")]
            RouterMsg::Fault(fault) => crate::fault::apply_in_router(&state.names, fault),
        }
        Ok(())
    }
}

pub(crate) fn child_spec(names: Arc<Names>, admission: Admission) -> ChildSpec {
    let next_job = Arc::new(AtomicU64::new(0));
    ChildSpec {
        label: "router",
        start: Arc::new(move |supervisor| {
            let state = RouterState {
                names: names.clone(),
                admission: admission.clone(),
                next_job: next_job.clone(),
            };
            let name = names.router.clone();
            Box::pin(async move {
                let (actor, _) =
                    Actor::spawn_linked(Some(name), RouterActor, state, supervisor).await?;
                Ok(actor.get_cell())
            })
        }),
    }
}

/// The typed way in: looks the router up by name on every call, so a restarted router is found.
#[derive(Clone)]
pub struct Handle {
    pub(crate) names: Arc<Names>,
    /// Added to a request's own timeout to bound queueing and extraction.
    pub(crate) call_margin: Duration,
    /// How long to wait for an actor that is being restarted.
    pub(crate) lookup_grace: Duration,
}

impl Handle {
    pub async fn scrape(&self, request: ScrapeRequest) -> Result<Page, ScrapeError> {
        let deadline = request.timeout + self.call_margin;
        // A restarting pool is waited for (up to `lookup_grace`) rather than reported at once.
        let patience = tokio::time::Instant::now() + self.lookup_grace;
        // A worker that crashes mid-job drops the reply port; scraping is idempotent, so try once
        // more on the restarted worker rather than lose the request.
        let mut lost_calls = 0;
        loop {
            let router = self.router().await?;
            let call = router
                .call(
                    |reply| RouterMsg::Scrape(Box::new(request.clone()), reply),
                    Some(deadline),
                )
                .await;
            match call {
                Ok(CallResult::Success(Err(ScrapeError::Unavailable(_))))
                    if tokio::time::Instant::now() < patience =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(CallResult::Success(result)) => return result,
                Ok(CallResult::Timeout) => return Err(ScrapeError::DeadlineExceeded(deadline)),
                Ok(CallResult::SenderError) | Err(_) if lost_calls == 0 => {
                    lost_calls += 1;
                    tracing::warn!("scrape lost to a crashed actor; retrying once");
                }
                Ok(CallResult::SenderError) | Err(_) => {
                    return Err(ScrapeError::Unavailable("scraper"));
                }
            }
        }
    }

    async fn router(&self) -> Result<ActorRef<RouterMsg>, ScrapeError> {
        crate::lookup::<RouterMsg>(&self.names.router, self.lookup_grace)
            .await
            .ok_or(ScrapeError::Unavailable("router"))
    }

    #[cfg(feature = "fault-injection")]
    pub async fn inject(&self, fault: crate::fault::Fault) -> Result<(), String> {
        let router = self.router().await.map_err(|e| e.to_string())?;
        router
            .cast(RouterMsg::Fault(fault))
            .map_err(|e| e.to_string())
    }
}
