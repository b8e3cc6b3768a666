//! Firecrawl v1 on the crawler port: `POST /v1/scrape`.
//!
//! Every key of Firecrawl's v1 scrape request is known. Those Aurora can honour are honoured —
//! the browser ones (`waitFor`, `actions`, `mobile`, screenshots) through the browser pool;
//! those that need what Aurora does not have yet (an LLM, proxies) are refused with a 400 saying
//! so when set to anything but their default — never silently ignored. Aurora adds one key of
//! its own, `render` (`auto`, `always`, `never`). `origin` and `integration`, which the SDKs always send, are accepted; any other key
//! is a 400 that names it.
//!
//! Size: Firecrawl's scrape keys and document shape, each documented; the handler is short.

use std::collections::BTreeMap;

use aurora_actors::model::{
    Action, ActionResults, Formats, Page, RenderMode, ScrapeRequest as EngineRequest, Screenshot,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::http::error::{ApiError, FirecrawlErrorBody};
use crate::http::{AppState, Limits, json, scrape_input, with_state};

scrape_input::scrape_body! {
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ScrapeRequest {
        /// Required on `/v1/scrape`; not allowed in a crawl's `scrapeOptions` (the crawl sets it).
        #[serde(default)]
        pub url: Option<String>,
        /// Default `["markdown"]`.
        #[serde(default = "default_formats")]
        pub formats: Vec<Format>,
        /// Milliseconds to let the page's scripts run after it loaded (renders in the browser).
        #[serde(default)]
        pub wait_for: u64,
        /// Milliseconds for the whole fetch. Default 30000.
        pub timeout: Option<u64>,
        /// Default true.
        #[serde(default = "scrape_input::yes")]
        pub remove_base64_images: bool,
        /// A phone's viewport and user agent (renders in the browser).
        #[serde(default)]
        pub mobile: bool,
        /// Aurora's own: `auto` (default: the browser only for pages that need it), `always`,
        /// `never`.
        pub render: Option<String>,
        /// Accepted for compatibility; Aurora loads what the page loads.
        pub block_ads: Option<bool>,
        /// A PDF becomes Markdown (true, the default) or comes back as the file itself, base64, in
        /// `markdown` (false).
        #[serde(rename = "parsePDF")]
        pub parse_pdf: Option<bool>,
        /// `languages` becomes the `Accept-Language` header; only country `US` (the default) is
        /// accepted, as Aurora has no geolocated proxies.
        pub location: Option<Location>,
        /// `basic` or `auto`; `stealth`/`enhanced` proxies are not available.
        pub proxy: Option<String>,
        /// Aurora does not cache scrapes yet, so every scrape is fresh and satisfies any maxAge.
        pub max_age: Option<u64>,
        pub store_in_cache: Option<bool>,
        /// Scrape results are never stored, so this always holds.
        pub zero_data_retention: Option<bool>,
        /// Browser actions (`wait`, `click`, `write`, `press`, `scroll`, `screenshot`, `scrape`,
        /// `executeJavascript`), run in order after the page loaded.
        #[schema(value_type = Option<Vec<Object>>)]
        pub actions: Option<Vec<serde_json::Value>>,
        /// LLM extraction: not available yet.
        #[schema(value_type = Option<Object>)]
        pub extract: Option<serde_json::Value>,
        #[schema(value_type = Option<Object>)]
        pub json_options: Option<serde_json::Value>,
        #[schema(value_type = Option<Object>)]
        pub change_tracking_options: Option<serde_json::Value>,
        /// Sent by the SDKs (`python-sdk@x.y`); recorded in logs only.
        pub origin: Option<String>,
        pub integration: Option<String>,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Location {
    pub country: Option<String>,
    pub languages: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
pub enum Format {
    #[serde(rename = "markdown")]
    Markdown,
    #[serde(rename = "html")]
    Html,
    #[serde(rename = "rawHtml")]
    RawHtml,
    #[serde(rename = "links")]
    Links,
    #[serde(rename = "screenshot")]
    Screenshot,
    #[serde(rename = "screenshot@fullPage")]
    ScreenshotFullPage,
    #[serde(rename = "extract")]
    Extract,
    #[serde(rename = "json")]
    Json,
    #[serde(rename = "changeTracking")]
    ChangeTracking,
}

fn default_formats() -> Vec<Format> {
    vec![Format::Markdown]
}

fn unsupported(what: &str, why: &str) -> ApiError {
    ApiError::InvalidRequest(format!("{what} is not supported yet: {why}"))
}

impl ScrapeRequest {
    /// The engine request for `url`, plus warnings for options that were accepted but have no
    /// effect.
    pub fn into_engine(
        self,
        url: url::Url,
        limits: &Limits,
    ) -> Result<(EngineRequest, Vec<String>), ApiError> {
        let mut page = self.page_request(url);
        let mut screenshot = None;
        for format in &self.formats {
            match format {
                Format::Screenshot => {
                    screenshot.get_or_insert(Screenshot { full_page: false });
                }
                Format::ScreenshotFullPage => screenshot = Some(Screenshot { full_page: true }),
                Format::Extract | Format::Json => {
                    return Err(unsupported(
                        "LLM extraction (`extract`/`json` formats)",
                        "the crawler does not run a language model over pages yet",
                    ));
                }
                Format::ChangeTracking => {
                    return Err(unsupported(
                        "format `changeTracking`",
                        "it needs a page cache",
                    ));
                }
                Format::Markdown | Format::Html | Format::RawHtml | Format::Links => {}
            }
        }
        if self.formats.is_empty() {
            return Err(ApiError::InvalidRequest(
                "`formats` must name at least one format".to_string(),
            ));
        }
        let actions = match self.actions {
            Some(actions) => parse_actions(actions)?,
            None => Vec::new(),
        };
        let render = match self.render.as_deref() {
            None => RenderMode::Auto,
            Some(mode) => RenderMode::parse(mode).ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "`render` must be `auto`, `always` or `never`, got `{mode}`"
                ))
            })?,
        };
        if self.extract.is_some() || self.json_options.is_some() {
            return Err(unsupported(
                "LLM extraction (`extract`/`jsonOptions`)",
                "the crawler does not run a language model over pages yet",
            ));
        }
        if self.change_tracking_options.is_some() {
            return Err(unsupported(
                "`changeTrackingOptions`",
                "it needs a page cache",
            ));
        }
        if let Some(proxy) = self.proxy.as_deref()
            && !matches!(proxy, "basic" | "auto")
        {
            return Err(unsupported(
                &format!("proxy `{proxy}`"),
                "Aurora fetches directly (use `basic` or `auto`)",
            ));
        }
        if let Some(location) = self.location {
            if let Some(country) = location.country.filter(|c| !c.eq_ignore_ascii_case("us")) {
                return Err(unsupported(
                    &format!("location country `{country}`"),
                    "Aurora has no geolocated proxies",
                ));
            }
            let has_language = page
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("accept-language"));
            if let Some(languages) = location.languages.filter(|l| !l.is_empty())
                && !has_language
            {
                page.headers
                    .push(("Accept-Language".to_string(), languages.join(", ")));
            }
        }
        let timeout = scrape_input::timeout(self.timeout, "timeout", limits)?;
        let wait_for =
            scrape_input::wait_for(self.wait_for, timeout, Some(30_000), ("waitFor", "timeout"))?;
        let warnings = Vec::new();
        tracing::debug!(origin = ?self.origin, integration = ?self.integration, "firecrawl v1 scrape");
        let request = EngineRequest {
            formats: Formats {
                markdown: self.formats.contains(&Format::Markdown),
                html: self.formats.contains(&Format::Html),
                raw_html: self.formats.contains(&Format::RawHtml),
                links: self.formats.contains(&Format::Links),
            },
            timeout,
            remove_base64_images: self.remove_base64_images,
            render,
            wait_for,
            screenshot,
            actions,
            mobile: self.mobile,
            parse_pdf: self.parse_pdf.unwrap_or(true),
            ..page
        };
        Ok((request, warnings))
    }
}

/// The `type`s of Firecrawl's browser actions.
pub(crate) const ACTION_KINDS: [&str; 8] = [
    "wait",
    "click",
    "write",
    "press",
    "scroll",
    "screenshot",
    "scrape",
    "executeJavascript",
];

/// Actions in one request at most.
pub(crate) const MAX_ACTIONS: usize = 50;

/// Firecrawl's action objects → the engine's, with the index and the problem named on error.
pub fn parse_actions(actions: Vec<serde_json::Value>) -> Result<Vec<Action>, ApiError> {
    if actions.len() > MAX_ACTIONS {
        return Err(ApiError::InvalidRequest(format!(
            "`actions` holds at most {MAX_ACTIONS} actions"
        )));
    }
    actions
        .into_iter()
        .enumerate()
        .map(|(i, action)| {
            let kind = action
                .get("type")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string);
            match kind.as_deref() {
                Some("pdf") => Err(unsupported(
                    &format!("`actions[{i}]` of type `pdf`"),
                    "Aurora does not print pages",
                )),
                Some(kind) if ACTION_KINDS.contains(&kind) => serde_json::from_value(action)
                    .map_err(|e| ApiError::InvalidRequest(format!("`actions[{i}]` ({kind}): {e}"))),
                Some(other) => Err(ApiError::InvalidRequest(format!(
                    "`actions[{i}]`: unknown type `{other}` (one of {})",
                    ACTION_KINDS.join(", ")
                ))),
                None => Err(ApiError::InvalidRequest(format!(
                    "`actions[{i}]` needs a `type`"
                ))),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|actions| {
            match actions.iter().position(|a| {
                matches!(
                    a,
                    Action::Wait {
                        milliseconds: None,
                        selector: None
                    }
                )
            }) {
                Some(i) => Err(ApiError::InvalidRequest(format!(
                    "`actions[{i}]` (wait) needs `milliseconds` or `selector`"
                ))),
                None => Ok(actions),
            }
        })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScrapeResponse {
    pub success: bool,
    pub data: Document,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub markdown: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<String>>,
    /// `data:image/png;base64,…`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screenshot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<ActionsDocument>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    pub metadata: Metadata,
}

/// What the actions produced, in Firecrawl's shape.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionsDocument {
    /// `data:image/png;base64,…`, one per `screenshot` action.
    pub screenshots: Vec<String>,
    /// `{url, html}`, one per `scrape` action.
    #[schema(value_type = Vec<Object>)]
    pub scrapes: Vec<serde_json::Value>,
    /// `{type, value}`, one per `executeJavascript` action.
    #[schema(value_type = Vec<Object>)]
    pub javascript_returns: Vec<serde_json::Value>,
    /// Aurora does not print pages; always empty.
    pub pdfs: Vec<String>,
}

impl From<ActionResults> for ActionsDocument {
    fn from(results: ActionResults) -> Self {
        Self {
            screenshots: results
                .screenshots
                .into_iter()
                .map(|png| format!("data:image/png;base64,{png}"))
                .collect(),
            scrapes: results
                .scrapes
                .into_iter()
                .map(|s| serde_json::json!({"url": s.url, "html": s.html}))
                .collect(),
            javascript_returns: results.javascript_returns,
            pdfs: Vec::new(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The URL that was asked for.
    #[serde(rename = "sourceURL")]
    pub source_url: String,
    /// Where the content came from, after redirects.
    pub url: String,
    pub status_code: u16,
    pub content_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical_url: Option<String>,
    /// Firecrawl's named meta fields (`ogTitle`, `publishedTime`…) and every other meta tag by
    /// its own name.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Meta tag → Firecrawl's metadata field name.
const NAMED_META: &[(&str, &str)] = &[
    ("keywords", "keywords"),
    ("robots", "robots"),
    ("og:title", "ogTitle"),
    ("og:description", "ogDescription"),
    ("og:url", "ogUrl"),
    ("og:image", "ogImage"),
    ("og:audio", "ogAudio"),
    ("og:determiner", "ogDeterminer"),
    ("og:locale", "ogLocale"),
    ("og:locale:alternate", "ogLocaleAlternate"),
    ("og:site_name", "ogSiteName"),
    ("og:video", "ogVideo"),
    ("dcterms.created", "dcTermsCreated"),
    ("dc.date.created", "dcDateCreated"),
    ("dc.date", "dcDate"),
    ("dcterms.type", "dcTermsType"),
    ("dc.type", "dcType"),
    ("dcterms.audience", "dcTermsAudience"),
    ("dcterms.subject", "dcTermsSubject"),
    ("dc.subject", "dcSubject"),
    ("dc.description", "dcDescription"),
    ("dcterms.keywords", "dcTermsKeywords"),
    ("article:modified_time", "modifiedTime"),
    ("article:published_time", "publishedTime"),
    ("article:tag", "articleTag"),
    ("article:section", "articleSection"),
];

/// Keys of `Metadata`'s own fields, which a raw meta tag must not shadow.
const RESERVED: &[&str] = &[
    "title",
    "description",
    "language",
    "sourceURL",
    "url",
    "statusCode",
    "contentType",
    "canonicalUrl",
    "error",
    "scrapeId",
];

pub fn document(page: Page, request_warnings: &[String]) -> (Document, Option<String>) {
    let mut extra = BTreeMap::new();
    for (tag, values) in &page.meta {
        let named = NAMED_META.iter().find(|(t, _)| t == tag).map(|(_, n)| *n);
        if let Some(name) = named {
            let value = match name {
                "ogLocaleAlternate" => serde_json::Value::from(values.clone()),
                _ => scrape_input::meta_value(values),
            };
            extra.insert(name.to_string(), value);
        }
        if !RESERVED.contains(&tag.as_str()) {
            extra
                .entry(tag.clone())
                .or_insert_with(|| scrape_input::meta_value(values));
        }
    }
    // Firecrawl reports a PDF's page count; Aurora says so for every document with parts.
    if let Some(parts) = page.document.as_ref().and_then(|d| d.parts) {
        extra.insert("numPages".to_string(), serde_json::Value::from(parts));
    }
    let warnings: Vec<String> = request_warnings
        .iter()
        .chain(&page.warnings)
        .cloned()
        .collect();
    let warning = (!warnings.is_empty()).then(|| warnings.join("; "));
    let document = Document {
        markdown: page.markdown,
        html: page.html,
        raw_html: page.raw_html,
        links: page.links,
        screenshot: page
            .screenshot
            .map(|png| format!("data:image/png;base64,{png}")),
        actions: page.actions.map(ActionsDocument::from),
        warning: warning.clone(),
        metadata: Metadata {
            title: page.title,
            description: page.description,
            language: page.language,
            source_url: page.source_url.into(),
            url: page.url.into(),
            status_code: page.status_code,
            content_type: page.content_type,
            canonical_url: page.canonical_url,
            extra,
        },
    };
    (document, warning)
}

/// Scrape one URL (Firecrawl v1). A target answering 404 is `success: true` with
/// `metadata.statusCode: 404`, as in Firecrawl.
#[utoipa::path(post, path = "/v1/scrape", tag = "firecrawl-v1", request_body = ScrapeRequest,
    responses(
        (status = 200, description = "The scraped page", body = ScrapeResponse),
        (status = 400, description = "Malformed, invalid or unsupported request", body = FirecrawlErrorBody),
        (status = 403, description = "Target refused by the SSRF guard", body = FirecrawlErrorBody),
        (status = 413, description = "Request body too large", body = FirecrawlErrorBody),
        (status = 415, description = "Request body is not JSON", body = FirecrawlErrorBody),
        (status = 422, description = "Target is not an HTML page", body = FirecrawlErrorBody),
        (status = 502, description = "Target unreachable or redirecting badly", body = FirecrawlErrorBody),
        (status = 503, description = "At capacity or restarting; see Retry-After", body = FirecrawlErrorBody),
        (status = 504, description = "Target too slow", body = FirecrawlErrorBody)))]
pub async fn scrape(state: AppState, body: ScrapeRequest) -> Result<Response, Rejection> {
    let url = match body.url.as_deref() {
        Some(raw) => scrape_input::target_url(raw),
        None => Err(ApiError::InvalidRequest("`url` is required".to_string())),
    };
    let converted = url.and_then(|url| body.into_engine(url, &state.limits));
    let (request, warnings) = match converted {
        Ok(converted) => converted,
        Err(error) => return Ok(error.into_firecrawl_response()),
    };
    Ok(match state.handles.router().scrape(request).await {
        Ok(page) => {
            let (data, warning) = document(page, &warnings);
            warp::reply::json(&ScrapeResponse {
                success: true,
                data,
                warning,
            })
            .into_response()
        }
        Err(error) => ApiError::from(error).into_firecrawl_response(),
    })
}

pub fn scrape_route(
    state: AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = state.limits.body_bytes;
    warp::path!("v1" / "scrape")
        .and(warp::post())
        .and(with_state(state))
        .and(json::body(limit))
        .and_then(scrape)
}
