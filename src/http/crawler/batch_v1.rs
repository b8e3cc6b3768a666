//! Firecrawl v1 batch scrape and map on the crawler port.
//!
//! `POST /v1/batch/scrape` starts a job that scrapes a list of URLs (no link discovery, no
//! robots.txt, like single scrapes); its status, cancel and errors share the crawl handlers.
//! `POST /v1/map` lists a site's URLs from its sitemaps and start page, right away.

use std::time::Duration;

use aurora_actors::crawler_pool::scope::ScopeRules;
use aurora_actors::crawler_pool::{JobKind, JobSpec, MapSpec, Mapped, SitemapMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::crawl_v1::{self, Caller, IngestTarget, JobRoute};
use super::firecrawl_v1::ScrapeRequest;
use crate::http::error::{ApiError, FirecrawlErrorBody};
use crate::http::{AppState, Limits, json, scrape_input, with_state};

/// Firecrawl's `POST /v1/batch/scrape`: `urls` plus the scrape request's options.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body; parsed in two parts (see `BatchRequest::parse`)
pub struct BatchRequest {
    pub urls: Vec<String>,
    /// Leave out invalid or refused URLs (listed in `invalidURLs`) instead of failing.
    #[schema(rename = "ignoreInvalidURLs")]
    pub ignore_invalid_urls: Option<bool>,
    pub max_concurrency: Option<i64>,
    /// Aurora: `{"collection": "…"}` to stream pages into a collection, `false` for none.
    #[schema(value_type = Option<Object>)]
    pub ingest: Option<Value>,
    /// A URL, or `{url, headers?, metadata?, events?}`: told of `started`, `page`, `completed`
    /// and `failed` as the job goes.
    #[schema(value_type = Option<Object>)]
    pub webhook: Option<Value>,
    /// Every scrape option of `POST /v1/scrape` except `url`, at the top level.
    #[schema(value_type = Object)]
    pub scrape_options: Value,
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MapRequest {
    pub url: String,
    /// Keep URLs containing these words, best matches first.
    pub search: Option<String>,
    /// Default false: sitemaps are read.
    #[serde(default)]
    pub ignore_sitemap: bool,
    /// Only the sitemaps' URLs.
    #[serde(default)]
    pub sitemap_only: bool,
    /// Default true.
    pub include_subdomains: Option<bool>,
    #[serde(default)]
    pub ignore_query_parameters: bool,
    /// Default 5000, at most 100000.
    pub limit: Option<i64>,
    /// Milliseconds.
    pub timeout: Option<u64>,
    /// Aurora keeps no index of the web; accepted for compatibility.
    pub use_index: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub location: Option<Value>,
    pub origin: Option<String>,
    pub integration: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MapResponse {
    pub success: bool,
    pub links: Vec<String>,
}

impl MapRequest {
    pub fn into_spec(self, limits: &Limits) -> Result<MapSpec, ApiError> {
        let url = scrape_input::target_url(&self.url)?;
        let limit = match self.limit.unwrap_or(5000) {
            l if !(1..=100_000).contains(&l) => {
                return Err(ApiError::InvalidRequest(format!(
                    "`limit` must be between 1 and 100000, got {l}"
                )));
            }
            l => l as usize,
        };
        if self.ignore_sitemap && self.sitemap_only {
            return Err(ApiError::InvalidRequest(
                "`ignoreSitemap` and `sitemapOnly` contradict each other".to_string(),
            ));
        }
        Ok(MapSpec {
            url,
            search: self.search.filter(|s| !s.trim().is_empty()),
            sitemap: match (self.ignore_sitemap, self.sitemap_only) {
                (true, _) => SitemapMode::Skip,
                (_, true) => SitemapMode::Only,
                _ => SitemapMode::Include,
            },
            include_subdomains: self.include_subdomains.unwrap_or(true),
            ignore_query_parameters: self.ignore_query_parameters,
            limit,
            timeout: match self.timeout {
                Some(ms) => scrape_input::timeout(Some(ms), "timeout", limits)?,
                None => limits.default_timeout.min(Duration::from_secs(30)),
            },
        })
    }
}

/// List a site's URLs (Firecrawl v1 `map`).
#[utoipa::path(post, path = "/v1/map", tag = "firecrawl-v1", request_body = MapRequest,
    responses(
        (status = 200, description = "The site's URLs", body = MapResponse),
        (status = 400, description = "Malformed or invalid request", body = FirecrawlErrorBody),
        (status = 403, description = "URL refused by the SSRF guard", body = FirecrawlErrorBody)))]
pub async fn map(state: AppState, body: MapRequest) -> Result<Response, Rejection> {
    Ok(match map_urls(&state, body).await {
        Ok(urls) => warp::reply::json(&MapResponse {
            success: true,
            links: urls.into_iter().map(|link| link.url.into()).collect(),
        })
        .into_response(),
        Err(error) => error.into_firecrawl_response(),
    })
}

/// The URLs a map request lists.
pub async fn map_urls(state: &AppState, body: MapRequest) -> Result<Vec<Mapped>, ApiError> {
    let spec = body.into_spec(&state.limits)?;
    Ok(state.handles.crawler().map(spec).await?)
}

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = state.limits.body_bytes;
    let batch = warp::path!("v1" / "batch" / "scrape")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(crawl_v1::caller())
        .and(json::body::<Value>(limit))
        .and_then(start_batch);
    let map = warp::path!("v1" / "map")
        .and(warp::post())
        .and(with_state(state))
        .and(json::body(limit))
        .and_then(map);
    batch.or(map).unify()
}
