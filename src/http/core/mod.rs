//! :8080, the core API: snake_case JSON, OpenAI-style errors. Routes, one file per resource.

pub mod scrape;

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
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aurora core API",
        description = "Knowledge search, cited answers and on-demand (deep-dive) scraping."
    ),
    paths(system::health, system::ready, system::metrics, scrape::scrape),
    components(schemas(CoreErrorBody, CoreError, system::Health, system::Readiness,
        system::ReadinessCheck, scrape::ScrapeBody, scrape::Format, scrape::ScrapedPage,
        scrape::Timings)),
    tags((name = "system", description = "Health, readiness, metrics"),
        (name = "scrape", description = "Deep-dive scraping of one page"))
)]
pub struct CoreApi;

static OPENAPI: LazyLock<String> = LazyLock::new(|| system::openapi_json(CoreApi::openapi()));

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    system::routes(state.clone(), OPENAPI.as_str())
        .or(scrape::route(state))
        .unify()
        .recover(recover)
        .unify()
}

async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    Ok(ApiError::from_rejection(&rejection).into_core_response())
}
