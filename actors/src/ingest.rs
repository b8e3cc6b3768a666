//! IngestActor — in code a ractor `Factory` of [`IngestWorker`]s registered as `Names::ingest`
//! (a pool, so embedding runs side by side): it turns documents into knowledge — clean → quality
//! filter → chunk → embed → upsert (`crate::knowledge`) — and manages collections.
//!
//! Messages: [`IngestJob::Ingest`] and the collection jobs (`ListCollections`, `CreateCollection`,
//! `DeleteCollection`), each with its typed reply port and the admission permit the router took
//! (+ a test-only panic).
//!
//! Restart: permanent child of the root supervisor; the factory replaces a crashed worker and
//! keeps its queued jobs. Ingestion is idempotent by content hash, so the caller's handle simply
//! retries a job that a crash lost.

pub mod chunking;
pub mod document;
pub mod media;
pub mod plain;
pub mod quality;

use std::sync::Arc;

use ractor::RpcReplyPort;

use crate::Names;
use crate::admission::AdmissionPermit;
use crate::knowledge::{Document, IngestReport, Knowledge, KnowledgeError};
use crate::pool::{self, JobHandler, PoolJob};
use crate::ports::CollectionInfo;
use crate::supervisor::ChildSpec;

#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub collection: String,
    pub documents: Vec<Document>,
    /// Files to read first (PDF, office files, e-books, text), each becoming a document.
    pub files: Vec<Upload>,
    /// Create the collection when it does not exist (otherwise: not found).
    pub create: bool,
}

/// An uploaded file, as received.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The name the client gave it (its last path component), used in citations.
    pub file_name: String,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// Where a job's answer goes.
type Reply<T> = RpcReplyPort<Result<T, KnowledgeError>>;

pub enum IngestJob {
    Ingest {
        request: Box<IngestRequest>,
        reply: Reply<IngestReport>,
        permit: AdmissionPermit,
    },
    ListCollections {
        reply: Reply<Vec<CollectionInfo>>,
        permit: AdmissionPermit,
    },
    CreateCollection {
        name: String,
        reply: Reply<CollectionInfo>,
        permit: AdmissionPermit,
    },
    /// Answers whether there was a collection to delete.
    DeleteCollection {
        name: String,
        reply: Reply<bool>,
        permit: AdmissionPermit,
    },
    #[cfg(feature = "fault-injection")]
    Panic,
}

impl PoolJob for IngestJob {
    fn fail_unavailable(self) {
        let error = KnowledgeError::Unavailable("ingest pool");
        match self {
            IngestJob::Ingest { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            IngestJob::ListCollections { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            IngestJob::CreateCollection { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            IngestJob::DeleteCollection { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            #[cfg(feature = "fault-injection")]
            IngestJob::Panic => {}
        }
    }
}

pub struct IngestWorker {
    knowledge: Arc<Knowledge>,
}

impl JobHandler for IngestWorker {
    type Job = IngestJob;

    async fn run(&self, job: IngestJob) {
        match job {
            IngestJob::Ingest {
                request,
                reply,
                permit,
            } => {
                let IngestRequest {
                    collection,
                    documents,
                    files,
                    create,
                } = *request;
                let started = std::time::Instant::now();
                let result = self
                    .knowledge
                    .ingest_with_files(&collection, documents, files, create)
                    .await;
                metrics::histogram!("aurora_ingest_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                let _ = reply.send(result);
                drop(permit);
            }
            // The permit is held until the answer is sent: it bounds work in flight.
            IngestJob::ListCollections { reply, permit } => {
                let _ = reply.send(self.knowledge.list_collections().await);
                drop(permit);
            }
            IngestJob::CreateCollection {
                name,
                reply,
                permit,
            } => {
                let _ = reply.send(self.knowledge.create_collection(&name).await);
                drop(permit);
            }
            IngestJob::DeleteCollection {
                name,
                reply,
                permit,
            } => {
                let _ = reply.send(self.knowledge.delete_collection(&name).await);
                drop(permit);
            }
            #[cfg(feature = "fault-injection")]
            IngestJob::Panic => panic!("fault injection: ingest worker panics"),
        }
    }
}

pub(crate) fn child_spec(names: &Names, knowledge: Arc<Knowledge>, workers: usize) -> ChildSpec {
    pool::child_spec(
        "ingest",
        "ingest_worker",
        names.ingest.clone(),
        names.root.clone(),
        workers,
        move || IngestWorker {
            knowledge: knowledge.clone(),
        },
    )
}
