//! :8080, the core API: snake_case JSON, OpenAI-style errors. Routes, one file per resource.

pub mod collections;
pub mod openai;
pub mod query;
pub mod scrape;
pub mod search;

use std::convert::Infallible;
use std::sync::LazyLock;

use utoipa::OpenApi;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::error::{ApiError, CoreError, CoreErrorBody};
use super::{AppState, system};

/// Route templates served on this port (metric labels; the OpenAPI test checks them all).
pub const ROUTES: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/openapi.json",
    "/v1/scrape",
    "/v1/collections",
    "/v1/collections/{name}",
    "/v1/collections/{name}/documents",
    "/v1/search",
    "/v1/query",
    "/v1/chat/completions",
    "/v1/models",
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aurora core API",
        description = "Knowledge search, cited answers and on-demand (deep-dive) scraping."
    ),
    paths(system::health, system::ready, system::metrics, scrape::scrape, collections::list,
        collections::create, collections::delete, collections::ingest, search::search,
        query::query, openai::chat, openai::models),
    components(schemas(CoreErrorBody, CoreError, system::Health, system::Readiness,
        system::ReadinessCheck, scrape::ScrapeBody, scrape::Format, scrape::ScrapedPage,
        scrape::Timings, scrape::IngestTarget, collections::Collection,
        collections::CollectionList, collections::NewCollection, collections::Deleted,
        collections::DocumentsBody, collections::DocumentBody, collections::DocumentType,
        collections::IngestSummary, collections::RejectedDocument, search::SearchBody,
        search::SearchResults, search::SearchHitBody, query::QueryBody, query::QueryAnswer,
        query::CitationBody, query::UsageBody, query::QueryTimings, query::DivePageBody,
        openai::ChatRequest, openai::ChatMessage, openai::ModelList, openai::ModelCard)),
    tags((name = "system", description = "Health, readiness, metrics"),
        (name = "scrape", description = "Deep-dive scraping of one page"),
        (name = "collections", description = "Collections and document ingestion"),
        (name = "search", description = "Hybrid search over a collection"),
        (name = "answers", description = "Cited answers over a collection (and deep dives)"))
)]
pub struct CoreApi;

static OPENAPI: LazyLock<String> = LazyLock::new(|| system::openapi_json(CoreApi::openapi()));

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    system::routes(state.clone(), OPENAPI.as_str())
        .or(scrape::route(state.clone()))
        .unify()
        .or(collections::routes(state.clone()))
        .unify()
        .or(search::route(state.clone()))
        .unify()
        .or(query::route(state.clone()))
        .unify()
        .or(openai::routes(state))
        .unify()
        .recover(recover)
        .unify()
}

async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    Ok(ApiError::from_rejection(&rejection).into_core_response())
}
