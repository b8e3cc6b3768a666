//! The traits the actors need from the outside world, in domain types only. The composition root
//! (`aurora::startup`) plugs network-backed implementations from `aurora::adapters` in here;
//! `crate::local` holds the in-process ones.
//!
//! One file per port: [`fetch`] (HTTP and the browser), [`state`] (sessions, caches, limits),
//! [`jobs`] (crawl work), [`embed`], [`vectors`], [`lexical`], [`transcribe`], [`generate`].
//! Everything is re-exported here, so callers write `crate::ports::Fetcher`.

use std::sync::Arc;

use futures::future::BoxFuture;

mod embed;
mod fetch;
mod generate;
mod jobs;
mod lexical;
mod state;
mod transcribe;
mod vectors;

pub use embed::*;
pub use fetch::*;
pub use generate::*;
pub use jobs::*;
pub use lexical::*;
pub use state::*;
pub use transcribe::*;
pub use vectors::*;

/// A backend the process depends on (Redis, ChromaDB…), probed by `/ready`.
pub trait HealthCheck: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// Everything the tree needs from outside, chosen by the composition root.
#[derive(Clone)]
pub struct Ports {
    pub fetcher: Arc<dyn Fetcher>,
    /// Headless browser sessions; `crate::local::NoBrowser` when none is installed or enabled.
    pub browser: Arc<dyn Browser>,
    pub state: Arc<dyn StateStore>,
    /// Crawl and batch jobs as durable work (Redis when configured, else in process).
    pub jobs: Arc<dyn JobQueue>,
    pub vectors: Arc<dyn VectorStore>,
    pub embedder: Arc<dyn Embedder>,
    /// Writes answers; `crate::rag::extractive::Extractive` when no model is configured.
    pub generator: Arc<dyn Generator>,
    /// Speech to text; `crate::local::NoTranscriber` when none is configured.
    pub transcriber: Arc<dyn Transcriber>,
    pub health_checks: Vec<Arc<dyn HealthCheck>>,
}
