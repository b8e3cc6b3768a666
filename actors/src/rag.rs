//! RagActor: a ractor `factory` pool that retrieves knowledge — hybrid search over a collection
//! (`crate::knowledge`): the query embedded, dense and BM25 candidates, reciprocal rank fusion.
//! (Answer generation joins it with the answers work.)
//!
//! Messages: [`RagJob::Search`] (+ a test-only panic), dispatched by the router with the
//! caller's reply port and admission permit.
//!
//! Restart: permanent child of the root supervisor; the factory replaces a crashed worker and
//! keeps its queued jobs; searches are read-only, so the caller's handle retries a lost one.

use std::sync::Arc;

use ractor::RpcReplyPort;

use crate::Names;
use crate::knowledge::{Knowledge, KnowledgeError, SearchHit};
use crate::pool::{self, JobHandler, PoolJob};
use crate::ports::Filter;
use crate::router::AdmissionPermit;
use crate::supervisor::ChildSpec;

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub collection: String,
    pub query: String,
    pub k: usize,
    pub filter: Filter,
}

pub enum RagJob {
    Search {
        request: Box<SearchRequest>,
        reply: RpcReplyPort<Result<Vec<SearchHit>, KnowledgeError>>,
        permit: AdmissionPermit,
    },
    #[cfg(feature = "fault-injection")]
    Panic,
}

impl PoolJob for RagJob {
    fn fail_unavailable(self) {
        match self {
            RagJob::Search { reply, .. } => {
                let _ = reply.send(Err(KnowledgeError::Unavailable("rag pool")));
            }
            #[cfg(feature = "fault-injection")]
            RagJob::Panic => {}
        }
    }
}

pub struct RagWorker {
    knowledge: Arc<Knowledge>,
}

impl JobHandler for RagWorker {
    type Job = RagJob;

    async fn run(&self, job: RagJob) {
        match job {
            RagJob::Search {
                request,
                reply,
                permit,
            } => {
                let started = std::time::Instant::now();
                let SearchRequest {
                    collection,
                    query,
                    k,
                    filter,
                } = *request;
                let result = self.knowledge.search(&collection, &query, k, &filter).await;
                metrics::histogram!("aurora_search_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                let _ = reply.send(result);
                drop(permit);
            }
            #[cfg(feature = "fault-injection")]
            RagJob::Panic => panic!("fault injection: rag worker panics"),
        }
    }
}

pub(crate) fn child_spec(names: &Names, knowledge: Arc<Knowledge>, workers: usize) -> ChildSpec {
    pool::child_spec(
        "rag",
        "rag_worker",
        names.rag.clone(),
        names.root.clone(),
        workers,
        move || RagWorker {
            knowledge: knowledge.clone(),
        },
    )
}
