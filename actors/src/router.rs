//! RouterActor: admission control and routing of every request to the worker pool that serves it.
//!
//! Messages: [`RouterMsg::Scrape`] → scraper pool; [`RouterMsg::Ingest`] and the collection
//! messages → ingest pool; [`RouterMsg::Search`] and [`RouterMsg::Answer`] → RAG pool (+ test-only
//! faults). It only makes fast decisions: take an admission permit or refuse with `Overloaded`,
//! then hand the job — with the caller's reply port and the permit — to the pool. It never awaits
//! the work, so its mailbox never blocks.
//!
//! Restart: permanent child of the root supervisor. Its state (the admission semaphore,
//! [`crate::admission`]) is owned by the tree, not by the actor, so permits held by in-flight jobs survive a router restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::Names;
use crate::admission::{Admission, AdmissionPermit, Refusal};
use crate::ingest::{IngestJob, IngestRequest};
use crate::knowledge::{IngestReport, KnowledgeError, SearchHit};
use crate::model::{Page, ScrapeRequest};
use crate::pool::{self, JobKey, PoolJob};
use crate::ports::CollectionInfo;
use crate::rag::{Answer, AnswerError, AnswerRequest, RagJob, SearchRequest};
use crate::scraper::{ScrapeError, ScrapeJob};
use crate::supervisor::ChildSpec;

type Reply<T, E> = RpcReplyPort<Result<T, E>>;

/// How one page of a deep dive went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DivePage {
    pub url: String,
    /// Why the page is not among the sources (scrape or ingest failure).
    pub error: Option<String>,
}

pub enum RouterMsg {
    /// Requests are boxed: they are large and most messages in flight are small.
    Scrape(Box<ScrapeRequest>, Reply<Page, ScrapeError>),
    Ingest(Box<IngestRequest>, Reply<IngestReport, KnowledgeError>),
    ListCollections(Reply<Vec<CollectionInfo>, KnowledgeError>),
    CreateCollection(String, Reply<CollectionInfo, KnowledgeError>),
    DeleteCollection(String, Reply<bool, KnowledgeError>),
    Search(Box<SearchRequest>, Reply<Vec<SearchHit>, KnowledgeError>),
    Answer(Box<AnswerRequest>, Reply<Answer, AnswerError>),
    #[cfg(feature = "fault-injection")]
    Fault(crate::fault::Fault),
}

pub struct RouterActor;

pub struct RouterState {
    names: Arc<Names>,
    admission: Admission,
    /// Job keys for the pools: unique per tree, so traces can follow one job.
    next_job: Arc<AtomicU64>,
}

impl RouterState {
    /// Admits the request and hands it to `pool`, or answers the refusal itself.
    fn route<T, E: Refusal, J: PoolJob>(
        &self,
        pool: &str,
        reply: Reply<T, E>,
        job: impl FnOnce(Reply<T, E>, AdmissionPermit) -> J,
    ) where
        T: Send + 'static,
    {
        let Some(permit) = self.admission.try_admit() else {
            metrics::counter!("aurora_router_rejections_total", "reason" => "overloaded")
                .increment(1);
            let _ = reply.send(Err(E::overloaded()));
            return;
        };
        let key: JobKey = self.next_job.fetch_add(1, Ordering::Relaxed);
        if !pool::dispatch(pool, key, job(reply, permit)) {
            metrics::counter!("aurora_router_rejections_total", "reason" => "unavailable")
                .increment(1);
        }
    }
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
        let names = state.names.clone();
        match message {
            RouterMsg::Scrape(request, reply) => {
                state.route(&names.scraper, reply, |reply, permit| ScrapeJob::Scrape {
                    request,
                    reply,
                    permit,
                })
            }
            RouterMsg::Ingest(request, reply) => {
                state.route(&names.ingest, reply, |reply, permit| IngestJob::Ingest {
                    request,
                    reply,
                    permit,
                })
            }
            RouterMsg::ListCollections(reply) => {
                state.route(&names.ingest, reply, |reply, permit| {
                    IngestJob::ListCollections { reply, permit }
                })
            }
            RouterMsg::CreateCollection(name, reply) => {
                state.route(&names.ingest, reply, |reply, permit| {
                    IngestJob::CreateCollection {
                        name,
                        reply,
                        permit,
                    }
                })
            }
            RouterMsg::DeleteCollection(name, reply) => {
                state.route(&names.ingest, reply, |reply, permit| {
                    IngestJob::DeleteCollection {
                        name,
                        reply,
                        permit,
                    }
                })
            }
            RouterMsg::Search(request, reply) => {
                state.route(&names.rag, reply, |reply, permit| RagJob::Search {
                    request,
                    reply,
                    permit,
                })
            }
            RouterMsg::Answer(request, reply) => {
                state.route(&names.rag, reply, |reply, permit| RagJob::Answer {
                    request,
                    reply,
                    permit,
                })
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
    pub(crate) ingest_timeout: Duration,
    /// Added to scrapes and ingests: either may carry a recording to transcribe, which the
    /// scraper and the knowledge base bound themselves by this much.
    pub(crate) transcription_allowance: Duration,
    pub(crate) search_timeout: Duration,
    pub(crate) answer_timeout: Duration,
}

impl Handle {
    pub async fn scrape(&self, request: ScrapeRequest) -> Result<Page, ScrapeError> {
        let deadline = request.timeout + self.call_margin + self.transcription_allowance;
        self.call(deadline, |reply| {
            RouterMsg::Scrape(Box::new(request.clone()), reply)
        })
        .await
    }

    pub async fn ingest(&self, request: IngestRequest) -> Result<IngestReport, KnowledgeError> {
        self.call(
            self.ingest_timeout + self.transcription_allowance,
            |reply| RouterMsg::Ingest(Box::new(request.clone()), reply),
        )
        .await
    }

    pub async fn list_collections(&self) -> Result<Vec<CollectionInfo>, KnowledgeError> {
        self.call(self.search_timeout, RouterMsg::ListCollections)
            .await
    }

    pub async fn create_collection(&self, name: &str) -> Result<CollectionInfo, KnowledgeError> {
        self.call(self.search_timeout, |reply| {
            RouterMsg::CreateCollection(name.to_string(), reply)
        })
        .await
    }

    /// Whether there was a collection `name` to delete.
    pub async fn delete_collection(&self, name: &str) -> Result<bool, KnowledgeError> {
        self.call(self.search_timeout, |reply| {
            RouterMsg::DeleteCollection(name.to_string(), reply)
        })
        .await
    }

    pub async fn search(&self, request: SearchRequest) -> Result<Vec<SearchHit>, KnowledgeError> {
        self.call(self.search_timeout, |reply| {
            RouterMsg::Search(Box::new(request.clone()), reply)
        })
        .await
    }

    /// A cited answer to a question over a collection.
    pub async fn answer(&self, request: AnswerRequest) -> Result<Answer, AnswerError> {
        self.call(self.answer_timeout, |reply| {
            RouterMsg::Answer(Box::new(request.clone()), reply)
        })
        .await
    }

    /// Deep dive: scrapes `pages` (at once), ingests what they hold into the request's
    /// collection, then answers over it. A page that cannot be scraped or stored is reported in
    /// the result, not an error: the answer uses what could be read.
    pub async fn deep_dive(
        &self,
        pages: Vec<ScrapeRequest>,
        request: AnswerRequest,
    ) -> Result<(Answer, Vec<DivePage>), AnswerError> {
        let scrapes = pages.into_iter().map(|page| async move {
            let url = page.url.to_string();
            match self.scrape(page).await {
                Ok(page) if page.status_code >= 400 => {
                    Err((url, format!("the page answered HTTP {}", page.status_code)))
                }
                Ok(page) => Ok(page),
                Err(e) => Err((url, e.to_string())),
            }
        });
        let mut report = Vec::new();
        let mut documents = Vec::new();
        for scraped in futures::future::join_all(scrapes).await {
            match scraped {
                Ok(page) => {
                    report.push(DivePage {
                        url: page.url.to_string(),
                        error: None,
                    });
                    documents.push(crate::knowledge::Document::from_page(&page, None));
                }
                Err((url, error)) => report.push(DivePage {
                    url,
                    error: Some(error),
                }),
            }
        }
        if !documents.is_empty() {
            let ingested = self
                .ingest(IngestRequest {
                    collection: request.collection.clone(),
                    documents,
                    files: Vec::new(),
                    create: true,
                })
                .await?;
            for rejected in ingested.rejected {
                if let Some(page) = report.iter_mut().find(|p| p.url == rejected.url) {
                    page.error = Some(format!("not ingested: {}", rejected.reason));
                }
            }
        }
        Ok((self.answer(request).await?, report))
    }

    /// One request through the router. A restarting pool is waited for (up to `lookup_grace`)
    /// rather than reported at once; a call lost to a crash mid-job is retried once — every
    /// request is idempotent (scrape, search, reads; ingest by content hash).
    async fn call<T, E: Refusal>(
        &self,
        deadline: Duration,
        message: impl Fn(Reply<T, E>) -> RouterMsg,
    ) -> Result<T, E>
    where
        T: Send + 'static,
    {
        let patience = tokio::time::Instant::now() + self.lookup_grace;
        let mut lost_calls = 0;
        loop {
            let router = self.router().await.map_err(|_| E::unavailable("router"))?;
            match router.call(&message, Some(deadline)).await {
                Ok(CallResult::Success(Err(e)))
                    if e.is_unavailable() && tokio::time::Instant::now() < patience =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(CallResult::Success(result)) => return result,
                Ok(CallResult::Timeout) => return Err(E::deadline(deadline)),
                Ok(CallResult::SenderError) | Err(_) if lost_calls == 0 => {
                    lost_calls += 1;
                    tracing::warn!("request lost to a crashed actor; retrying once");
                }
                Ok(CallResult::SenderError) | Err(_) => return Err(E::unavailable("worker pool")),
            }
        }
    }

    async fn router(&self) -> Result<ActorRef<RouterMsg>, ()> {
        crate::lookup::<RouterMsg>(&self.names.router, self.lookup_grace)
            .await
            .ok_or(())
    }

    #[cfg(feature = "fault-injection")]
    pub async fn inject(&self, fault: crate::fault::Fault) -> Result<(), String> {
        let router = self
            .router()
            .await
            .map_err(|()| "the router is not running".to_string())?;
        router
            .cast(RouterMsg::Fault(fault))
            .map_err(|e| e.to_string())
    }
}
