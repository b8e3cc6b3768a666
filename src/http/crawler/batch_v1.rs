//! Firecrawl v1 batch scrape on the crawler port: `POST /v1/batch/scrape` starts a job that
//! scrapes a list of URLs (no link discovery, no robots.txt, like single scrapes) in the
//! CrawlerPool; `GET`/`DELETE /v1/batch/scrape/{id}` and `…/errors` are the crawl job family's
//! handlers (`crawl_v1::job_family`).

use aurora_actors::crawler_pool::scope::ScopeRules;
use aurora_actors::crawler_pool::{JobKind, JobSpec, SitemapMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::crawl_v1::{self, Caller, IngestTarget, JobRoute};
use super::firecrawl_v1::ScrapeRequest;
use crate::http::error::{ApiError, FirecrawlErrorBody};
use crate::http::{AppState, json, scrape_input, with_state};

/// Firecrawl's `POST /v1/batch/scrape`: `urls` plus the scrape request's options, at the top
/// level.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body; parsed in two parts (see `BatchRequest::parse`)
pub struct BatchRequest {
    pub urls: Vec<String>,
    /// Leave out invalid or refused URLs (listed in `invalidURLs`) instead of failing.
    #[schema(rename = "ignoreInvalidURLs")]
    pub ignore_invalid_urls: bool,
    #[schema(rename = "maxConcurrency")]
    pub max_concurrency: Option<i64>,
    /// Aurora: `{"collection": "…"}` to stream pages into a collection, `false` for none.
    #[schema(value_type = Option<Object>)]
    pub ingest: Option<Value>,
    /// A URL, or `{url, headers?, metadata?, events?}`: told of `started`, `page`, `completed`
    /// and `failed` as the job goes.
    #[schema(value_type = Option<Object>)]
    pub webhook: Option<Value>,
    // Every scrape option of `POST /v1/scrape` but `url` is also a key of this body; the
    // document lists them (`http::openapi::crawler`).
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchStarted {
    pub success: bool,
    pub id: String,
    pub url: String,
    /// URLs left out (with `ignoreInvalidURLs`).
    #[serde(rename = "invalidURLs", skip_serializing_if = "Option::is_none")]
    pub invalid_urls: Option<Vec<String>>,
}

/// The batch-only keys, taken out before the rest is read as scrape options.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchKeys {
    urls: Option<Vec<String>>,
    #[serde(rename = "ignoreInvalidURLs", default)]
    ignore_invalid_urls: bool,
    max_concurrency: Option<i64>,
    ingest: Option<IngestTarget>,
    webhook: Option<Value>,
}

const BATCH_KEYS: &[&str] = &[
    "urls",
    "ignoreInvalidURLs",
    "maxConcurrency",
    "ingest",
    "webhook",
];

/// Scrape a list of URLs as one job (Firecrawl v1).
#[utoipa::path(post, path = "/v1/batch/scrape", tag = "firecrawl-v1", request_body = BatchRequest,
    responses(
        (status = 200, description = "The job started", body = BatchStarted),
        (status = 400, description = "Malformed, invalid or unsupported request", body = FirecrawlErrorBody),
        (status = 403, description = "A URL refused by the SSRF guard", body = FirecrawlErrorBody)))]
pub async fn start_batch(
    state: AppState,
    caller: Caller,
    body: Value,
) -> Result<Response, Rejection> {
    Ok(start_batch_as(&state, JobRoute::Batch, caller, body).await)
}

/// Starts a batch job from a v1-shaped body; answers for `route`'s paths.
pub async fn start_batch_as(
    state: &AppState,
    route: JobRoute,
    caller: Caller,
    body: Value,
) -> Response {
    match start_batch_inner(state, &caller, body).await {
        Ok((id, invalid)) => warp::reply::json(&BatchStarted {
            success: true,
            url: route.job_url(&caller, &id),
            id,
            invalid_urls: invalid,
        })
        .into_response(),
        Err(error) => error.into_firecrawl_response(),
    }
}

async fn start_batch_inner(
    state: &AppState,
    caller: &Caller,
    body: Value,
) -> Result<(String, Option<Vec<String>>), ApiError> {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::InvalidRequest(
            "the request body must be a JSON object".to_string(),
        ));
    };
    let mut batch = serde_json::Map::new();
    for key in BATCH_KEYS {
        if let Some(value) = fields.remove(*key) {
            batch.insert((*key).to_string(), value);
        }
    }
    let keys: BatchKeys = json::parse_strict(&serde_json::to_vec(&batch).unwrap_or_default())?;
    let options: ScrapeRequest =
        json::parse_strict(&serde_json::to_vec(&fields).unwrap_or_default())?;
    let webhook = crawl_v1::webhook(keys.webhook)?;
    let idempotency_key = crawl_v1::idempotency_key(caller)?;
    if options.url.is_some() {
        return Err(ApiError::InvalidRequest(
            "`url` is not a batch option: list the pages in `urls`".to_string(),
        ));
    }
    let raw = keys
        .urls
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::InvalidRequest("`urls` must list at least one URL".into()))?;
    if raw.len() > state.limits.crawl_max_limit {
        return Err(ApiError::InvalidRequest(format!(
            "`urls` lists {} URLs; at most {} per batch",
            raw.len(),
            state.limits.crawl_max_limit
        )));
    }
    let crawler = state.handles.crawler();
    let mut seeds = Vec::new();
    let mut invalid = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        let checked = match scrape_input::target_url(text) {
            Ok(url) => crawler
                .check(&url)
                .await
                .map(|()| url)
                .map_err(ApiError::from),
            Err(e) => Err(e),
        };
        match checked {
            Ok(url) => seeds.push(url),
            Err(_) if keys.ignore_invalid_urls => invalid.push(text.clone()),
            Err(e) => {
                return Err(match e {
                    ApiError::InvalidRequest(m) => {
                        ApiError::InvalidRequest(format!("`urls[{i}]`: {m}"))
                    }
                    other => other,
                });
            }
        }
    }
    let Some(first) = seeds.first().cloned() else {
        return Err(ApiError::InvalidRequest(
            "no valid URL in `urls`".to_string(),
        ));
    };
    let (scrape, _) = options.into_engine(first, &state.limits)?;
    let spec = JobSpec {
        kind: JobKind::Batch,
        limit: seeds.len(),
        seeds,
        formats: scrape.formats,
        scrape,
        rules: ScopeRules::default(),
        ignore_robots: true,
        sitemap: SitemapMode::Skip,
        delay: None,
        max_concurrency: crawl_v1::positive(keys.max_concurrency, "maxConcurrency")?,
        ingest: crawl_v1::ingest_target(keys.ingest, &state.limits)?,
        webhook,
        idempotency_key,
    };
    let record = crawler.start(spec).await?;
    Ok((record.id, keys.ignore_invalid_urls.then_some(invalid)))
}

// The batch job's status, cancel and errors are served by `crawl_v1::job_family`, as for
// crawls; these empty functions carry their OpenAPI descriptions.

/// A batch scrape's status and documents (Firecrawl v1; as for crawls).
#[utoipa::path(get, path = "/v1/batch/scrape/{id}", tag = "firecrawl-v1", params(
        ("id" = String, Path, description = "The job id"), crawl_v1::StatusQuery),
    responses(
        (status = 200, description = "Status and documents", body = crawl_v1::CrawlStatus),
        (status = 404, description = "No such job (or it expired)", body = FirecrawlErrorBody)))]
pub fn batch_status() {}

/// Cancel a batch scrape (Firecrawl v1).
#[utoipa::path(delete, path = "/v1/batch/scrape/{id}", tag = "firecrawl-v1",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "Cancelled (or already finished)", body = crawl_v1::CrawlCancelled),
        (status = 404, description = "No such job", body = FirecrawlErrorBody)))]
pub fn batch_cancel() {}

/// A batch scrape's errors (Firecrawl v1).
#[utoipa::path(get, path = "/v1/batch/scrape/{id}/errors", tag = "firecrawl-v1",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "Errors", body = crawl_v1::CrawlErrors),
        (status = 404, description = "No such job", body = FirecrawlErrorBody)))]
pub fn batch_errors() {}

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = state.limits.body_bytes;
    let batch = warp::path!("v1" / "batch" / "scrape")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(crawl_v1::caller())
        .and(json::body::<Value>(limit))
        .and_then(start_batch);
    let jobs = crawl_v1::job_family(
        warp::path!("v1" / "batch" / "scrape" / ..).boxed(),
        JobRoute::Batch,
        state,
    );
    batch.or(jobs).unify()
}
