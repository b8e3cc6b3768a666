//! :8001, the crawler API: Firecrawl-compatible routes (camelCase JSON, `{success:false, error}`
//! errors) so existing Firecrawl clients work unchanged.

pub mod batch_v1;
pub mod crawl_v1;
pub mod firecrawl_v1;
pub mod firecrawl_v2;
pub mod map_v1;

use std::convert::Infallible;

use utoipa::OpenApi;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::core::BearerAuth;
use super::error::{ApiError, FirecrawlErrorBody};
use super::gate::{Access, EDITOR, Route, route};
use super::{AppState, system};

/// Every route of this port and who may call it (crawling is the editor's work). The gate
/// refuses what is not here; tests call each one without credentials and with too small a role.
pub const ROUTES: &[Route] = &[
    route("GET", "/health", Access::Public),
    route("GET", "/ready", Access::Public),
    route("GET", "/metrics", Access::Metrics),
    route("GET", "/openapi.json", EDITOR),
    route("POST", "/v1/scrape", EDITOR),
    route("POST", "/v1/crawl", EDITOR),
    route("GET", "/v1/crawl/{id}", EDITOR),
    route("DELETE", "/v1/crawl/{id}", EDITOR),
    route("GET", "/v1/crawl/{id}/errors", EDITOR),
    route("POST", "/v1/batch/scrape", EDITOR),
    route("GET", "/v1/batch/scrape/{id}", EDITOR),
    route("DELETE", "/v1/batch/scrape/{id}", EDITOR),
    route("GET", "/v1/batch/scrape/{id}/errors", EDITOR),
    route("POST", "/v1/map", EDITOR),
    route("POST", "/v2/scrape", EDITOR),
    route("POST", "/v2/crawl", EDITOR),
    route("GET", "/v2/crawl/{id}", EDITOR),
    route("DELETE", "/v2/crawl/{id}", EDITOR),
    route("GET", "/v2/crawl/{id}/errors", EDITOR),
    route("POST", "/v2/batch/scrape", EDITOR),
    route("GET", "/v2/batch/scrape/{id}", EDITOR),
    route("DELETE", "/v2/batch/scrape/{id}", EDITOR),
    route("GET", "/v2/batch/scrape/{id}/errors", EDITOR),
    route("POST", "/v2/map", EDITOR),
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aurora crawler API",
        description = "Scrape, crawl and map, compatible with Firecrawl's v1 REST API. Every route but /health and /ready needs `Authorization: Bearer <API key or access token>` with the editor role."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(system::health, system::ready, system::metrics, firecrawl_v1::scrape,
        crawl_v1::start, crawl_v1::status, crawl_v1::cancel, crawl_v1::errors,
        batch_v1::start_batch, batch_v1::batch_status, batch_v1::batch_cancel,
        batch_v1::batch_errors, map_v1::map),
    components(schemas(FirecrawlErrorBody, system::Health, system::Readiness,
        system::ReadinessCheck, firecrawl_v1::ScrapeRequest, firecrawl_v1::Format,
        firecrawl_v1::Location, firecrawl_v1::ScrapeResponse, firecrawl_v1::Document,
        firecrawl_v1::Metadata, crawl_v1::CrawlRequest, crawl_v1::CrawlStarted,
        crawl_v1::CrawlStatus, crawl_v1::ItemProgressBody, crawl_v1::CrawlCancelled, crawl_v1::CrawlErrors,
        crawl_v1::CrawlErrorEntry, batch_v1::BatchRequest, batch_v1::BatchStarted,
        map_v1::MapRequest, map_v1::MapResponse)),
    tags((name = "system", description = "Health, readiness, metrics"),
        (name = "firecrawl-v1", description = "Firecrawl v1 compatible"),
        (name = "firecrawl-v2", description = "Firecrawl v2 compatible: v2 request bodies, translated to v1; map links are `{url}` objects"))
)]
pub struct CrawlerApi;

/// The derived document, v2 routes included.
pub fn api() -> utoipa::openapi::OpenApi {
    with_v2(CrawlerApi::openapi())
}

/// This port's OpenAPI document, with the limits `state` enforces.
fn document(state: &AppState) -> String {
    let (document, missing) = super::openapi::crawler(&api(), &state.limits).finish();
    if !missing.is_empty() {
        tracing::warn!(
            ?missing,
            "OpenAPI constraints without a property to hold them"
        );
    }
    document
}

/// v2 routes take v2 bodies (format objects, `sitemap` modes) and answer v1's shapes, except
/// map links, which are objects: document them as the v1 operations they translate into.
fn with_v2(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let v2: Vec<(String, utoipa::openapi::PathItem)> = api
        .paths
        .paths
        .iter()
        .filter(|(path, _)| path.starts_with("/v1/"))
        .map(|(path, item)| {
            let mut item = item.clone();
            for operation in [&mut item.get, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                operation.tags = Some(vec!["firecrawl-v2".to_string()]);
                operation.operation_id =
                    operation.operation_id.as_ref().map(|id| format!("{id}_v2"));
            }
            (path.replacen("/v1/", "/v2/", 1), item)
        })
        .collect();
    api.paths.paths.extend(v2);
    api
}

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    super::any_of(vec![
        system::routes(state.clone(), document(&state)).boxed(),
        firecrawl_v1::scrape_route(state.clone()).boxed(),
        crawl_v1::routes(state.clone()).boxed(),
        batch_v1::routes(state.clone()).boxed(),
        map_v1::routes(state.clone()).boxed(),
        firecrawl_v2::routes(state).boxed(),
    ])
    .recover(recover)
    .unify()
}

async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    Ok(ApiError::from_rejection(&rejection).into_firecrawl_response())
}
