//! `POST /v1/scrape` on the core port: the on-demand "deep dive" scrape of one page, routed
//! through RouterActor to the scraper pool, answered in the core's snake_case.

use std::collections::BTreeMap;

use aurora_actors::ingest::IngestRequest;
use aurora_actors::knowledge::Document;
use aurora_actors::model::{Formats, Page, RenderMode, ScrapeRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::http::core::collections::{IngestSummary, RejectedDocument};
use crate::http::error::{ApiError, CoreErrorBody};
use crate::http::{AppState, Limits, json, scrape_input, with_state};

scrape_input::scrape_body! {
    #[derive(Debug, Deserialize, ToSchema)]
    pub struct ScrapeBody {
        /// The page to scrape: an absolute http(s) URL (a bare host gets `http://`).
        pub url: String,
        /// Representations to return. Default: `["markdown"]`.
        #[serde(default)]
        pub formats: Option<Vec<Format>>,
        /// Budget for the fetch, in milliseconds. Default from `scraper.default_timeout_ms`.
        pub timeout_ms: Option<u64>,
        /// `auto` (default): the headless browser only for pages that need JavaScript; `always`;
        /// `never`.
        #[serde(default)]
        #[schema(value_type = Option<String>)]
        pub render: Option<RenderMode>,
        /// Milliseconds to let the page's scripts run after it loaded (renders in the browser).
        #[serde(default)]
        pub wait_for_ms: u64,
        /// Also store the page in this collection (as its extracted Markdown).
        pub ingest: Option<IngestTarget>,
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct IngestTarget {
    pub collection: String,
    /// Create the collection if it does not exist.
    #[serde(default)]
    pub create: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Markdown,
    /// The cleaned HTML of the extracted content.
    Html,
    /// The page as served, decoded to UTF-8.
    RawHtml,
    /// Every absolute http(s) link on the page.
    Links,
}

impl ScrapeBody {
    fn into_request(self, limits: &Limits) -> Result<ScrapeRequest, ApiError> {
        let ingest = self.ingest.is_some();
        let url = scrape_input::target_url(&self.url)?;
        let formats = match &self.formats {
            None => Formats::default(),
            Some(list) if list.is_empty() => {
                return Err(ApiError::InvalidRequest(
                    "`formats` must name at least one format".to_string(),
                ));
            }
            Some(list) => Formats {
                // Ingestion stores the Markdown, whether or not the caller wants it back.
                markdown: ingest || list.contains(&Format::Markdown),
                html: list.contains(&Format::Html),
                raw_html: list.contains(&Format::RawHtml),
                links: list.contains(&Format::Links),
            },
        };
        let timeout = scrape_input::timeout(self.timeout_ms, "timeout_ms", limits)?;
        let wait_for = scrape_input::wait_for(
            self.wait_for_ms,
            timeout,
            None,
            ("wait_for_ms", "timeout_ms"),
        )?;
        Ok(ScrapeRequest {
            formats,
            render: self.render.unwrap_or_default(),
            wait_for,
            timeout,
            remove_base64_images: true,
            ..self.page_request(url)
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScrapedPage {
    /// Where the content came from, after redirects.
    pub url: String,
    /// The URL that was asked for.
    pub source_url: String,
    /// The target's HTTP status (a 404 page is a page, not an error).
    pub status_code: u16,
    pub content_type: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub language: Option<String>,
    pub canonical_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub markdown: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<String>>,
    /// Every `<meta>` tag by name or property; repeated tags become arrays.
    #[schema(value_type = Object)]
    pub meta: BTreeMap<String, serde_json::Value>,
    /// The body exceeded `fetch.max_body_bytes` and was cut.
    pub truncated: bool,
    /// Each URL that answered with a redirect, in order.
    pub redirects: Vec<String>,
    /// RFC 3339, UTC.
    pub fetched_at: String,
    pub timings: Timings,
    pub warnings: Vec<String>,
    /// What storing the page did, when `ingest` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest: Option<IngestSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Timings {
    pub fetch_ms: f64,
    pub extract_ms: f64,
}

impl From<Page> for ScrapedPage {
    fn from(page: Page) -> Self {
        Self {
            url: page.url.into(),
            source_url: page.source_url.into(),
            status_code: page.status_code,
            content_type: page.content_type,
            title: page.title,
            description: page.description,
            language: page.language,
            canonical_url: page.canonical_url,
            markdown: page.markdown,
            html: page.html,
            raw_html: page.raw_html,
            links: page.links,
            meta: page
                .meta
                .iter()
                .map(|(k, v)| (k.clone(), scrape_input::meta_value(v)))
                .collect(),
            truncated: page.truncated,
            redirects: page.redirects.into_iter().map(String::from).collect(),
            fetched_at: scrape_input::timestamp(page.fetched_at),
            timings: Timings {
                fetch_ms: page.timings.fetch.as_secs_f64() * 1000.0,
                extract_ms: page.timings.extract.as_secs_f64() * 1000.0,
            },
            warnings: page.warnings,
            ingest: None,
        }
    }
}

/// Scrape one page now: fetch, extract, return markdown and metadata.
#[utoipa::path(post, path = "/v1/scrape", tag = "scrape", request_body = ScrapeBody, responses(
    (status = 200, description = "The page (whatever status the target answered)", body = ScrapedPage),
    (status = 400, description = "Malformed or invalid request", body = CoreErrorBody),
    (status = 403, description = "Target refused by the SSRF guard", body = CoreErrorBody),
    (status = 413, description = "Request body too large", body = CoreErrorBody),
    (status = 415, description = "Request body is not JSON", body = CoreErrorBody),
    (status = 422, description = "Target is not an HTML page", body = CoreErrorBody),
    (status = 502, description = "Target unreachable or redirecting badly", body = CoreErrorBody),
    (status = 503, description = "At capacity or restarting; see Retry-After", body = CoreErrorBody),
    (status = 504, description = "Target too slow", body = CoreErrorBody)))]
pub async fn scrape(state: AppState, body: ScrapeBody) -> Result<Response, Rejection> {
    let target = body.ingest.clone();
    let wanted_markdown = body
        .formats
        .as_ref()
        .is_none_or(|f| f.contains(&Format::Markdown));
    let request = match body.into_request(&state.limits) {
        Ok(request) => request,
        Err(error) => return Ok(error.into_core_response()),
    };
    let page = match state.handles.router().scrape(request).await {
        Ok(page) => page,
        Err(error) => return Ok(ApiError::from(error).into_core_response()),
    };
    let ingest = match target {
        None => None,
        Some(target) => match ingest_page(&state, &page, target).await {
            Ok(summary) => Some(summary),
            Err(error) => return Ok(error.into_core_response()),
        },
    };
    let mut answer = ScrapedPage::from(page);
    answer.ingest = ingest;
    if !wanted_markdown {
        answer.markdown = None;
    }
    Ok(warp::reply::json(&answer).into_response())
}

/// Stores the scraped page's Markdown in the target collection. An error page is not stored.
async fn ingest_page(
    state: &AppState,
    page: &Page,
    target: IngestTarget,
) -> Result<IngestSummary, ApiError> {
    if page.status_code >= 400 {
        return Ok(IngestSummary {
            ingested: 0,
            skipped: 0,
            chunks: 0,
            rejected: vec![RejectedDocument {
                url: page.url.to_string(),
                reason: format!("the page answered HTTP {}", page.status_code),
            }],
        });
    }
    let document = Document::from_page(page, None);
    let request = IngestRequest {
        collection: target.collection,
        documents: vec![document],
        files: Vec::new(),
        create: target.create,
    };
    Ok(IngestSummary::from(
        state.handles.router().ingest(request).await?,
    ))
}

pub fn route(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = state.limits.body_bytes;
    warp::path!("v1" / "scrape")
        .and(warp::post())
        .and(with_state(state))
        .and(json::body(limit))
        .and_then(scrape)
}
