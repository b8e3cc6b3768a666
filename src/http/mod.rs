//! HTTP: two warp listeners that translate requests into actor messages and answers into JSON.
//! `core` serves :8080 (snake_case, OpenAI-style errors), `crawler` serves :8001 (Firecrawl's
//! camelCase shapes and errors). Handlers reach the engine only through `aurora_actors::Handles`.

pub mod core;
pub mod crawler;
pub mod error;
pub mod filter;
pub mod gate;
pub mod json;
pub mod openapi;
pub mod scrape_input;
pub mod server;
pub mod system;
pub mod web;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use aurora_actors::Handles;
use metrics_exporter_prometheus::PrometheusHandle;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

/// What every handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub handles: Handles,
    pub metrics: PrometheusHandle,
    pub limits: Arc<Limits>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub body_bytes: u64,
    /// Body cap of the document ingestion route.
    pub ingest_body_bytes: u64,
    /// Largest multipart body of a file upload (413 beyond).
    pub upload_bytes: u64,
    /// Largest single uploaded file (rejected by name beyond).
    pub max_file_bytes: u64,
    pub max_documents: usize,
    pub default_timeout: Duration,
    pub max_timeout: Duration,
    pub default_k: usize,
    pub max_k: usize,
    /// The largest `limit` a crawl may ask for.
    pub crawl_max_limit: usize,
    /// Where crawled pages go unless a request says otherwise.
    pub crawl_default_ingest: Option<String>,
    /// JSON bytes of documents in one crawl-status response (then `next`).
    pub crawl_page_bytes: usize,
    pub answer_default_k: usize,
    pub answer_max_k: usize,
    pub max_question_chars: usize,
    /// A password's length in characters at least (`auth.min_password_chars`).
    pub min_password_chars: usize,
    /// The collection the chat model `aurora` answers from.
    pub default_collection: String,
    /// Whether callers sign in (`auth.enabled`); off, the login page goes straight on.
    pub auth_enabled: bool,
    /// Seconds the web session's cookies live (the refresh token's lifetime).
    pub cookie_max_age: u64,
}

/// The first of `routes` that accepts a request. Each step is boxed: a long `.or()` chain nests
/// its type once per route, and a release build's optimiser then overflows the trait solver's
/// recursion limit (E0275) on the listener's future (it did, at 18 web routes).
pub fn any_of(routes: Vec<BoxedFilter<(Response,)>>) -> BoxedFilter<(Response,)> {
    routes
        .into_iter()
        .reduce(|first, next| first.or(next).unify().boxed())
        // No route at all matches nothing.
        .unwrap_or_else(|| {
            warp::any()
                .and_then(|| async { Err(warp::reject::not_found()) })
                .boxed()
        })
}

pub fn with_state(
    state: AppState,
) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}
