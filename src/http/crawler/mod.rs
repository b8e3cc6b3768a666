//! :8001, the crawler API: Firecrawl-compatible routes (camelCase JSON, `{success:false, error}`
//! errors) so existing Firecrawl clients work unchanged.

pub mod batch_v1;
pub mod crawl_v1;
pub mod firecrawl_v1;

use std::convert::Infallible;
use std::sync::LazyLock;

use utoipa::OpenApi;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::error::{ApiError, FirecrawlErrorBody};
use super::{AppState, system};

/// Route templates served on this port (metric labels; the OpenAPI test checks them all).
pub const ROUTES: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/openapi.json",
    "/v1/scrape",
    "/v1/crawl",
    "/v1/crawl/{id}",
    "/v1/crawl/{id}/errors",
    "/v1/batch/scrape",
    "/v1/batch/scrape/{id}",
    "/v1/batch/scrape/{id}/errors",
    "/v1/map",
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aurora crawler API",
        description = "Scrape, crawl and map, compatible with Firecrawl's v1 REST API."
    ),
    paths(system::health, system::ready, system::metrics, firecrawl_v1::scrape,
        crawl_v1::start, crawl_v1::status, crawl_v1::cancel, crawl_v1::errors,
        crawl_v1::batch_status, crawl_v1::batch_cancel, crawl_v1::batch_errors,
        batch_v1::start_batch, batch_v1::map),
    components(schemas(FirecrawlErrorBody, system::Health, system::Readiness,
        system::ReadinessCheck, firecrawl_v1::ScrapeRequest, firecrawl_v1::Format,
        firecrawl_v1::Location, firecrawl_v1::ScrapeResponse, firecrawl_v1::Document,
        firecrawl_v1::Metadata, crawl_v1::CrawlRequest, crawl_v1::CrawlStarted,
        crawl_v1::CrawlStatus, crawl_v1::CrawlCancelled, crawl_v1::CrawlErrors,
        crawl_v1::CrawlErrorEntry, batch_v1::BatchRequest, batch_v1::BatchStarted,
        batch_v1::MapRequest, batch_v1::MapResponse)),
    tags((name = "system", description = "Health, readiness, metrics"),
        (name = "firecrawl-v1", description = "Firecrawl v1 compatible"))
)]
pub struct CrawlerApi;

static OPENAPI: LazyLock<String> = LazyLock::new(|| system::openapi_json(CrawlerApi::openapi()));

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    system::routes(state.clone(), OPENAPI.as_str())
        .or(firecrawl_v1::scrape_route(state.clone()))
        .unify()
        .or(crawl_v1::routes(state.clone()))
        .unify()
        .or(batch_v1::routes(state))
        .unify()
        .recover(recover)
        .unify()
}

async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    Ok(ApiError::from_rejection(&rejection).into_firecrawl_response())
}
