//! Firecrawl v1 crawl jobs on the crawler port: `POST /v1/crawl`, `GET /v1/crawl/{id}` (status
//! and pages, paginated by `skip`/`next`), `DELETE /v1/crawl/{id}` and
//! `GET /v1/crawl/{id}/errors`. Jobs run in the CrawlerPool; their state lives in the state
//! store, so any replica sharing it answers these routes.
//!
//! Every key of Firecrawl's v1 crawl request is known, webhooks included (see
//! `crawler_pool::webhook`); `x-idempotency-key` makes a start happen once (409 on reuse). Aurora adds `ingest`: `{"collection": "…"}`
//! streams the pages into a collection as they are crawled, `false` turns off
//! `crawler.default_ingest_collection`.
//!
//! Size: the crawl request's Firecrawl keys (each documented and checked) are most of it; the
//! handlers are short.

use std::time::{Duration, UNIX_EPOCH};

use aurora_actors::crawler_pool::scope::ScopeRules;
use aurora_actors::crawler_pool::webhook::{Event as WebhookEvent, Webhook};
use aurora_actors::crawler_pool::{
    CrawlError, ErrorKind, JobKind, JobRecord, JobSpec, JobStatus, SitemapMode,
};
use aurora_actors::model::Page;
use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::firecrawl_v1::{self, Document, ScrapeRequest};
use crate::http::error::{ApiError, FirecrawlErrorBody};
use crate::http::{AppState, Limits, json, scrape_input, with_state};

/// Firecrawl's default page limit of a crawl.
const DEFAULT_LIMIT: i64 = 10_000;
/// Pages read from the job store at a time when a status response is assembled: small enough
/// that a huge crawl is never held in memory whole, large enough to keep round trips few.
const PAGES_PER_READ: u64 = 50;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrawlRequest {
    pub url: String,
    /// Regexes a URL's path must match one of (all URLs when empty).
    #[serde(default)]
    pub include_paths: Vec<String>,
    /// Regexes on the path that exclude a URL.
    #[serde(default)]
    pub exclude_paths: Vec<String>,
    /// Path segments allowed below the start URL's. Default 10.
    pub max_depth: Option<i64>,
    /// Link hops from the start URL.
    pub max_discovery_depth: Option<i64>,
    /// Most pages to fetch. Default 10000.
    pub limit: Option<i64>,
    /// Follow links outside the start URL's path (deprecated name of `crawlEntireDomain`).
    pub allow_backward_links: Option<bool>,
    pub crawl_entire_domain: Option<bool>,
    #[serde(default)]
    pub allow_external_links: bool,
    #[serde(default)]
    pub allow_subdomains: bool,
    #[serde(default)]
    pub ignore_robots_txt: bool,
    #[serde(default)]
    pub ignore_sitemap: bool,
    /// Default true.
    #[serde(default = "scrape_input::yes", rename = "deduplicateSimilarURLs")]
    pub deduplicate_similar_urls: bool,
    #[serde(default)]
    pub ignore_query_parameters: bool,
    #[serde(default, rename = "regexOnFullURL")]
    pub regex_on_full_url: bool,
    /// Seconds between requests to the site (at most 60).
    pub delay: Option<f64>,
    pub max_concurrency: Option<i64>,
    /// How each page is scraped (the scrape request's options, without `url`).
    pub scrape_options: Option<ScrapeRequest>,
    /// A URL, or `{url, headers?, metadata?, events?}`: told of `started`, `page`, `completed`
    /// and `failed` as the crawl goes.
    #[schema(value_type = Option<Object>)]
    pub webhook: Option<serde_json::Value>,
    /// Crawled pages are not kept beyond the job's expiry either way.
    pub zero_data_retention: Option<bool>,
    /// Aurora: `{"collection": "…"}` to stream pages into a collection, `false` for none.
    #[schema(value_type = Option<Object>)]
    pub ingest: Option<IngestTarget>,
    pub origin: Option<String>,
    pub integration: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum IngestTarget {
    Enabled(bool),
    Collection { collection: String },
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CrawlStarted {
    pub success: bool,
    pub id: String,
    /// Where to poll the job.
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrawlStatus {
    pub success: bool,
    /// `scraping`, `completed`, `failed` or `cancelled`.
    pub status: &'static str,
    pub total: u64,
    pub completed: u64,
    pub credits_used: u64,
    pub expires_at: String,
    /// The next page of documents, while there are more or the job is still running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub data: Vec<Document>,
    /// Why the job failed or stopped early.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Aurora's addition: items under way that report how far they have got (long recordings
    /// transcribed piece by piece). Absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub progress: Vec<ItemProgressBody>,
}

/// How far the transcription of one long recording has got.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemProgressBody {
    pub url: String,
    pub pieces_done: u32,
    pub pieces_total: u32,
    /// Seconds of audio transcribed so far, and in all.
    pub seconds_done: f64,
    pub seconds_total: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CrawlCancelled {
    pub success: bool,
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrawlErrors {
    pub errors: Vec<CrawlErrorEntry>,
    /// URLs robots.txt refused.
    pub robots_blocked: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CrawlErrorEntry {
    pub id: String,
    pub timestamp: String,
    pub url: String,
    pub code: String,
    pub error: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// Documents to skip (from `next`).
    pub skip: Option<u64>,
    /// Documents in this response at most.
    pub limit: Option<u64>,
}

impl StatusQuery {
    /// Parsed by hand: warp's typed query rejection would lose to the other methods' 405.
    fn parse(raw: &std::collections::HashMap<String, String>) -> Result<Self, ApiError> {
        let number = |key: &str| {
            raw.get(key)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        invalid(format!("`{key}` must be a non-negative integer, got `{v}`"))
                    })
                })
                .transpose()
        };
        Ok(Self {
            skip: number("skip")?,
            limit: number("limit")?,
        })
    }
}

impl From<CrawlError> for ApiError {
    fn from(error: CrawlError) -> Self {
        let message = error.to_string();
        match error {
            CrawlError::Invalid(_) => ApiError::InvalidRequest(message),
            CrawlError::NotFound => ApiError::ResourceNotFound(message),
            CrawlError::Duplicate => ApiError::Conflict(message),
            CrawlError::Unavailable(_) => ApiError::Unavailable(message),
            CrawlError::Refused(fetch) => {
                ApiError::from(aurora_actors::scraper::ScrapeError::Fetch(fetch))
            }
            CrawlError::State(aurora_actors::ports::StateError::Unavailable(_)) => {
                ApiError::Unavailable(message)
            }
            CrawlError::State(aurora_actors::ports::StateError::Backend(_)) => {
                ApiError::BadGateway(message)
            }
        }
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::InvalidRequest(message)
}

/// A non-negative integer option, or a 400 naming it.
fn count(value: Option<i64>, field: &str) -> Result<Option<usize>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if v < 0 => Err(invalid(format!("`{field}` must not be negative, got {v}"))),
        Some(v) => Ok(Some(v as usize)),
    }
}

/// An option that must be at least 1 when given.
pub fn positive(value: Option<i64>, field: &str) -> Result<Option<usize>, ApiError> {
    match count(value, field)? {
        Some(0) => Err(invalid(format!("`{field}` must be at least 1"))),
        other => Ok(other),
    }
}

/// The collection a job's pages stream into: the request's, else the configured default.
pub fn ingest_target(
    target: Option<IngestTarget>,
    limits: &Limits,
) -> Result<Option<String>, ApiError> {
    match target {
        None => Ok(limits.crawl_default_ingest.clone()),
        Some(IngestTarget::Enabled(false)) => Ok(None),
        Some(IngestTarget::Enabled(true)) => limits.crawl_default_ingest.clone().map(Some).ok_or_else(|| {
            invalid(
                "`ingest: true` needs crawler.default_ingest_collection; name one: `\"ingest\": {\"collection\": \"…\"}`"
                    .to_string(),
            )
        }),
        Some(IngestTarget::Collection { collection }) => {
            aurora_actors::ports::validate_collection_name(&collection)
                .map_err(|e| invalid(format!("`ingest.collection`: {e}")))?;
            Ok(Some(collection))
        }
    }
}

/// Firecrawl's `webhook` option: a URL, or an object with `url` and optional `headers`,
/// `metadata` and `events` (`started`, `page`, `completed`, `failed`; all when absent).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookObject {
    url: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
    events: Option<Vec<String>>,
}

/// What [`webhook`] takes, as a JSON Schema for the OpenAPI documents.
pub fn webhook_schema(url: serde_json::Value, headers: serde_json::Value) -> serde_json::Value {
    let events: Vec<&str> = WebhookEvent::ALL.iter().map(|e| e.as_str()).collect();
    serde_json::json!({"oneOf": [
        {"type": "null"},
        url.clone(),
        {
            "type": "object",
            "properties": {
                "url": url,
                "headers": headers,
                "metadata": {"type": "object"},
                "events": {"type": ["array", "null"], "items": {"enum": events}},
            },
            "required": ["url"],
            "additionalProperties": false,
        },
    ]})
}

pub fn webhook(value: Option<serde_json::Value>) -> Result<Option<Webhook>, ApiError> {
    let object = match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(url)) => WebhookObject {
            url,
            headers: Default::default(),
            metadata: Default::default(),
            events: None,
        },
        Some(value) => serde_json::from_value::<WebhookObject>(value)
            .map_err(|e| invalid(format!("`webhook`: {e}")))?,
    };
    let url = url::Url::parse(object.url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            invalid(format!(
                "`webhook.url` must be an absolute http(s) URL, got `{}`",
                object.url
            ))
        })?;
    let mut headers = Vec::with_capacity(object.headers.len());
    for (name, value) in object.headers {
        let valid = warp::http::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && warp::http::HeaderValue::from_str(&value).is_ok();
        if !valid {
            return Err(invalid(format!(
                "`webhook.headers`: `{name}` is not a valid header name and value"
            )));
        }
        headers.push((name, value));
    }
    let events = match object.events {
        None => WebhookEvent::ALL.to_vec(),
        Some(names) => names
            .iter()
            .map(|name| {
                WebhookEvent::parse(name).ok_or_else(|| {
                    invalid(format!(
                        "`webhook.events`: unknown event `{name}`; use started, page, completed or failed"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(Some(Webhook {
        url,
        headers,
        metadata: object.metadata,
        events,
    }))
}

/// A page as webhooks carry it: the document the status route returns.
pub fn webhook_document(page: &Page) -> serde_json::Value {
    let (document, _) = firecrawl_v1::document(page.clone(), &[]);
    serde_json::to_value(document).unwrap_or(serde_json::Value::Null)
}

fn patterns(raw: &[String], field: &str) -> Result<Vec<Regex>, ApiError> {
    raw.iter()
        .enumerate()
        .map(|(i, pattern)| {
            Regex::new(pattern).map_err(|e| {
                invalid(format!(
                    "`{field}[{i}]` is not a valid regular expression: {}",
                    e.to_string().lines().last().unwrap_or_default().trim()
                ))
            })
        })
        .collect()
}

impl CrawlRequest {
    pub fn into_spec(self, limits: &Limits) -> Result<JobSpec, ApiError> {
        let url = scrape_input::target_url(&self.url)?;
        let webhook = webhook(self.webhook)?;
        let limit = match self.limit.unwrap_or(DEFAULT_LIMIT) {
            l if l < 1 => return Err(invalid(format!("`limit` must be at least 1, got {l}"))),
            l => (l as usize).min(limits.crawl_max_limit),
        };
        let max_concurrency = positive(self.max_concurrency, "maxConcurrency")?;
        let delay = match self.delay {
            None => None,
            Some(d) if d.is_finite() && (0.0..=60.0).contains(&d) => {
                Some(Duration::from_secs_f64(d))
            }
            Some(d) => return Err(invalid(format!("`delay` must be 0–60 seconds, got {d}"))),
        };
        let options = match self.scrape_options {
            Some(options) => options,
            None => serde_json::from_value(serde_json::json!({}))
                .map_err(|e| ApiError::Internal(format!("default scrape options: {e}")))?,
        };
        if options.url.is_some() {
            return Err(invalid(
                "`scrapeOptions.url` is not allowed: the crawl sets each page's URL".to_string(),
            ));
        }
        let (scrape, _warnings) = options.into_engine(url.clone(), limits)?;
        let ingest = ingest_target(self.ingest, limits)?;
        tracing::debug!(origin = ?self.origin, integration = ?self.integration, "firecrawl v1 crawl");
        Ok(JobSpec {
            kind: JobKind::Crawl,
            seeds: vec![url],
            formats: scrape.formats,
            scrape,
            rules: ScopeRules {
                include_paths: patterns(&self.include_paths, "includePaths")?,
                exclude_paths: patterns(&self.exclude_paths, "excludePaths")?,
                regex_on_full_url: self.regex_on_full_url,
                max_depth: Some(count(self.max_depth, "maxDepth")?.unwrap_or(10)),
                max_discovery_depth: count(self.max_discovery_depth, "maxDiscoveryDepth")?,
                crawl_entire_domain: self
                    .crawl_entire_domain
                    .or(self.allow_backward_links)
                    .unwrap_or(false),
                allow_external_links: self.allow_external_links,
                allow_subdomains: self.allow_subdomains,
                ignore_query_parameters: self.ignore_query_parameters,
                deduplicate_similar_urls: self.deduplicate_similar_urls,
            },
            limit,
            ignore_robots: self.ignore_robots_txt,
            sitemap: if self.ignore_sitemap {
                SitemapMode::Skip
            } else {
                SitemapMode::Include
            },
            delay,
            max_concurrency,
            ingest,
            webhook,
            idempotency_key: None,
        })
    }
}

/// `http://host:port` of this request, as the client reached it (behind a proxy: its
/// `X-Forwarded-Proto` and `Host`).
fn base_url(caller: &Caller) -> String {
    let proto = caller
        .proto
        .as_deref()
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!(
        "{proto}://{}",
        caller.host.as_deref().unwrap_or("localhost")
    )
}

/// A family of job routes: crawls under `/v1/crawl`, batch scrapes under `/v1/batch/scrape`.
/// Both kinds share the status, cancel and error handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRoute {
    Crawl,
    Batch,
    CrawlV2,
    BatchV2,
}

impl JobRoute {
    fn path(self) -> &'static str {
        match self {
            JobRoute::Crawl => "v1/crawl",
            JobRoute::Batch => "v1/batch/scrape",
            JobRoute::CrawlV2 => "v2/crawl",
            JobRoute::BatchV2 => "v2/batch/scrape",
        }
    }

    /// Where a job of this kind is polled.
    pub fn job_url(self, caller: &Caller, id: &str) -> String {
        format!("{}/{}/{id}", base_url(caller), self.path())
    }
}

fn expires_at(record: &JobRecord) -> String {
    scrape_input::timestamp(UNIX_EPOCH + Duration::from_millis(record.expires_at))
}

/// Start a crawl (Firecrawl v1).
#[utoipa::path(post, path = "/v1/crawl", tag = "firecrawl-v1", request_body = CrawlRequest,
    responses(
        (status = 200, description = "The job started", body = CrawlStarted),
        (status = 400, description = "Malformed, invalid or unsupported request", body = FirecrawlErrorBody),
        (status = 403, description = "Start URL refused by the SSRF guard", body = FirecrawlErrorBody),
        (status = 503, description = "Restarting or state store down", body = FirecrawlErrorBody)))]
pub async fn start(
    state: AppState,
    caller: Caller,
    body: CrawlRequest,
) -> Result<Response, Rejection> {
    let spec = body.into_spec(&state.limits);
    Ok(start_job(&state, JobRoute::Crawl, caller, spec).await)
}

/// Starts a job and answers `{success, id, url}` (or the error).
pub async fn start_job(
    state: &AppState,
    route: JobRoute,
    caller: Caller,
    spec: Result<JobSpec, ApiError>,
) -> Response {
    let spec = spec.and_then(|mut spec| {
        spec.idempotency_key = idempotency_key(&caller)?;
        Ok(spec)
    });
    let started = match spec {
        Ok(spec) => state
            .handles
            .crawler()
            .start(spec)
            .await
            .map_err(ApiError::from),
        Err(error) => Err(error),
    };
    match started {
        Ok(record) => warp::reply::json(&CrawlStarted {
            success: true,
            url: route.job_url(&caller, &record.id),
            id: record.id,
        })
        .into_response(),
        Err(error) => error.into_firecrawl_response(),
    }
}

/// A crawl's status and documents (Firecrawl v1). Documents come `skip` onwards, as many as fit
/// in one response (`limit`, and about 10 MiB); `next` points at the rest.
#[utoipa::path(get, path = "/v1/crawl/{id}", tag = "firecrawl-v1", params(
        ("id" = String, Path, description = "The job id"), StatusQuery),
    responses(
        (status = 200, description = "Status and documents", body = CrawlStatus),
        (status = 404, description = "No such job (or it expired)", body = FirecrawlErrorBody)))]
pub async fn status(
    route: JobRoute,
    id: String,
    state: AppState,
    caller: Caller,
    query: std::collections::HashMap<String, String>,
) -> Result<Response, Rejection> {
    let query = match StatusQuery::parse(&query) {
        Ok(query) => query,
        Err(error) => return Ok(error.into_firecrawl_response()),
    };
    let crawler = state.handles.crawler();
    let record = match crawler.status(&id).await {
        Ok(record) => record,
        Err(error) => return Ok(ApiError::from(error).into_firecrawl_response()),
    };
    let skip = query.skip.unwrap_or(0).min(record.documents);
    let wanted = query.limit.filter(|l| *l > 0).unwrap_or(u64::MAX);
    let end = skip.saturating_add(wanted).min(record.documents);
    let budget = state.limits.crawl_page_bytes;
    let mut data = Vec::new();
    let mut used = 0usize;
    let mut from = skip;
    // Read in slices so a huge crawl is never loaded whole.
    'pages: while from < end {
        let to = (from + PAGES_PER_READ).min(end);
        let pages = match crawler.pages(&id, from, to).await {
            Ok(pages) => pages,
            Err(error) => return Ok(ApiError::from(error).into_firecrawl_response()),
        };
        for page in pages {
            let (document, _) = firecrawl_v1::document(page, &[]);
            let size = serde_json::to_vec(&document).map_or(0, |b| b.len());
            if !data.is_empty() && used + size > budget {
                break 'pages;
            }
            used += size;
            data.push(document);
        }
        from = to;
    }
    let returned = data.len() as u64;
    let next_skip = skip + returned;
    let more = next_skip < record.documents || record.status == JobStatus::Scraping;
    let next = more.then(|| {
        let limit = query
            .limit
            .map(|l| format!("&limit={l}"))
            .unwrap_or_default();
        format!("{}?skip={next_skip}{limit}", route.job_url(&caller, &id))
    });
    Ok(warp::reply::json(&CrawlStatus {
        success: true,
        status: record.status.as_str(),
        total: record.total,
        completed: record.completed,
        credits_used: record.documents,
        expires_at: expires_at(&record),
        next,
        data,
        error: record
            .end_reason
            .filter(|_| record.status == JobStatus::Failed),
        progress: record
            .progress
            .into_iter()
            .map(|item| ItemProgressBody {
                url: item.url,
                pieces_done: item.transcription.pieces_done,
                pieces_total: item.transcription.pieces_total,
                seconds_done: item.transcription.seconds_done,
                seconds_total: item.transcription.seconds_total,
            })
            .collect(),
    })
    .into_response())
}

/// Cancel a crawl (Firecrawl v1): it stops fetching before this answers.
#[utoipa::path(delete, path = "/v1/crawl/{id}", tag = "firecrawl-v1",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "Cancelled (or already finished)", body = CrawlCancelled),
        (status = 404, description = "No such job", body = FirecrawlErrorBody)))]
pub async fn cancel(id: String, state: AppState) -> Result<Response, Rejection> {
    Ok(match state.handles.crawler().cancel(&id).await {
        Ok(record) => warp::reply::json(&CrawlCancelled {
            success: true,
            status: record.status.as_str(),
        })
        .into_response(),
        Err(error) => ApiError::from(error).into_firecrawl_response(),
    })
}

/// A crawl's errors and the URLs robots.txt refused (Firecrawl v1).
#[utoipa::path(get, path = "/v1/crawl/{id}/errors", tag = "firecrawl-v1",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "Errors", body = CrawlErrors),
        (status = 404, description = "No such job", body = FirecrawlErrorBody)))]
pub async fn errors(id: String, state: AppState) -> Result<Response, Rejection> {
    let errors = match state.handles.crawler().errors(&id).await {
        Ok(errors) => errors,
        Err(error) => return Ok(ApiError::from(error).into_firecrawl_response()),
    };
    let mut body = CrawlErrors {
        errors: Vec::new(),
        robots_blocked: Vec::new(),
    };
    for (n, error) in errors.into_iter().enumerate() {
        if error.kind == ErrorKind::Robots {
            body.robots_blocked.push(error.url);
            continue;
        }
        body.errors.push(CrawlErrorEntry {
            id: format!("{id}-{n}"),
            timestamp: scrape_input::timestamp(UNIX_EPOCH + Duration::from_millis(error.timestamp)),
            url: error.url,
            code: error.code,
            error: error.error,
        });
    }
    Ok(warp::reply::json(&body).into_response())
}

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = state.limits.body_bytes;
    let start = warp::path!("v1" / "crawl")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(caller())
        .and(json::body(limit))
        .and_then(start);
    let jobs = job_family(
        warp::path!("v1" / "crawl" / ..).boxed(),
        JobRoute::Crawl,
        state,
    );
    start.or(jobs).unify()
}

/// What a job request's headers say: how the client reached us (`Host`, `X-Forwarded-Proto`,
/// for the absolute URLs Firecrawl's answers carry) and its `x-idempotency-key`.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub host: Option<String>,
    pub proto: Option<String>,
    pub idempotency_key: Option<String>,
}

pub fn caller() -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    warp::header::optional::<String>("host")
        .and(warp::header::optional::<String>("x-forwarded-proto"))
        .and(warp::header::optional::<String>("x-idempotency-key"))
        .map(|host, proto, idempotency_key| Caller {
            host,
            proto,
            idempotency_key,
        })
}

/// The request's idempotency key, if it sent a usable one.
pub fn idempotency_key(caller: &Caller) -> Result<Option<String>, ApiError> {
    match caller.idempotency_key.as_deref().map(str::trim) {
        None => Ok(None),
        Some(key)
            if !key.is_empty() && key.len() <= 256 && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_string()))
        }
        Some(_) => Err(invalid(
            "`x-idempotency-key` must be 1–256 visible ASCII characters (a UUID is typical)"
                .to_string(),
        )),
    }
}

/// Status, cancel and errors of one job family under `prefix` (e.g. `/v2/crawl`).
pub fn job_family(
    prefix: warp::filters::BoxedFilter<()>,
    route: JobRoute,
    state: AppState,
) -> warp::filters::BoxedFilter<(Response,)> {
    let id = || warp::path::param::<String>();
    let status = prefix
        .clone()
        .and(id())
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(caller())
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .and_then(move |id, state, caller, query| status(route, id, state, caller, query));
    let cancel = prefix
        .clone()
        .and(id())
        .and(warp::path::end())
        .and(warp::delete())
        .and(with_state(state.clone()))
        .and_then(cancel);
    let errors = prefix
        .and(id())
        .and(warp::path("errors"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state(state))
        .and_then(errors);
    status.or(cancel).unify().or(errors).unify().boxed()
}
