//! Firecrawl v2 on the crawler port — what the newest SDKs speak by default: `/v2/scrape`,
//! `/v2/crawl` (+ status, cancel, errors), `/v2/map`, `/v2/batch/scrape` (+ status, cancel,
//! errors).
//!
//! A v2 body is translated into its v1 form and served by the v1 handlers, so both versions
//! behave the same: format objects (`{"type": "markdown"}`) become format names, `parsers`
//! becomes `parsePDF`, `sitemap: skip|include|only` chooses the sitemap mode. What needs an LLM
//! or a browser (`summary`, `json`, `branding`, `screenshot` formats, `prompt`) is refused with a
//! 400 saying so; any key neither version knows is refused by name, as Firecrawl does. Answers
//! have v2's shapes: map links are objects, job URLs point at `/v2/…`.

use aurora_actors::crawler_pool::SitemapMode;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::batch_v1;
use super::crawl_v1::{self, CrawlRequest, JobRoute};
use super::firecrawl_v1::{self, ScrapeRequest};
use super::map_v1::{self, MapRequest};
use crate::http::error::ApiError;
use crate::http::{AppState, json, with_state};

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest(message.into())
}

fn object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(fields) => Ok(fields),
        _ => Err(invalid("the request body must be a JSON object")),
    }
}

fn parse<T: serde::de::DeserializeOwned>(fields: Map<String, Value>) -> Result<T, ApiError> {
    json::parse_strict(&serde_json::to_vec(&fields).unwrap_or_default())
}

/// v2 keys of Firecrawl's cloud features; refused unless off (the SDK leaves them out).
const CLOUD_ONLY: &[&str] = &[
    "lockdown",
    "useMock",
    "checkPromptInjection",
    "redactPII",
    "threatProtection",
    "auditMetadata",
    "profile",
    "domainTools",
    "toolDetail",
];

/// v2 scrape options → v1 ones, in place.
fn scrape_options_v1(fields: &mut Map<String, Value>, at: &str) -> Result<(), ApiError> {
    // Sent by the v2 SDK on every scrape: Aurora's HTTP engine is always the fast path, and it
    // keeps no page cache, so every scrape is fresh (any minAge/maxAge holds).
    fields.remove("fastMode");
    fields.remove("minAge");
    for key in CLOUD_ONLY {
        match fields.remove(*key) {
            None | Some(Value::Null | Value::Bool(false)) => {}
            Some(_) => {
                return Err(invalid(format!(
                    "`{at}{key}` is not supported: it is a Firecrawl cloud feature"
                )));
            }
        }
    }
    if let Some(formats) = fields.get_mut("formats") {
        let Value::Array(items) = formats else {
            return Err(invalid(format!("`{at}formats` must be an array")));
        };
        for (i, item) in items.iter_mut().enumerate() {
            let (name, full_page) = match item {
                Value::String(name) => (name.clone(), false),
                Value::Object(format) => (
                    format
                        .get("type")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(format!("`{at}formats[{i}]` has no `type`")))?
                        .to_string(),
                    format.get("fullPage").and_then(Value::as_bool) == Some(true),
                ),
                _ => {
                    return Err(invalid(format!(
                        "`{at}formats[{i}]` must be a format name or object"
                    )));
                }
            };
            let v1 = match name.as_str() {
                "markdown" | "html" | "rawHtml" | "links" | "json" | "changeTracking" => name,
                "screenshot" if full_page => "screenshot@fullPage".to_string(),
                "screenshot" => name,
                "summary" | "branding" => {
                    return Err(invalid(format!(
                        "format `{name}` is not supported yet: the crawler does not run a language model over pages"
                    )));
                }
                "images" => {
                    return Err(invalid(
                        "format `images` is not supported yet: use `links`".to_string(),
                    ));
                }
                other => {
                    return Err(invalid(format!(
                        "`{at}formats[{i}]`: unknown format `{other}`"
                    )));
                }
            };
            *item = Value::String(v1);
        }
    }
    if let Some(parsers) = fields.remove("parsers") {
        let Value::Array(parsers) = parsers else {
            return Err(invalid(format!("`{at}parsers` must be an array")));
        };
        let pdf = parsers.iter().any(|p| {
            p.as_str() == Some("pdf") || p.get("type").and_then(Value::as_str) == Some("pdf")
        });
        fields.insert("parsePDF".into(), Value::Bool(pdf));
    }
    Ok(())
}

/// `sitemap: skip|include|only` (default include).
fn sitemap_mode(fields: &mut Map<String, Value>) -> Result<SitemapMode, ApiError> {
    match fields.remove("sitemap") {
        None => Ok(SitemapMode::Include),
        Some(Value::String(mode)) => match mode.as_str() {
            "skip" => Ok(SitemapMode::Skip),
            "include" => Ok(SitemapMode::Include),
            "only" => Ok(SitemapMode::Only),
            other => Err(invalid(format!(
                "`sitemap` must be `skip`, `include` or `only`, got `{other}`"
            ))),
        },
        Some(_) => Err(invalid("`sitemap` must be a string")),
    }
}

async fn scrape(state: AppState, body: Value) -> Result<Response, Rejection> {
    let request = object(body).and_then(|mut fields| {
        scrape_options_v1(&mut fields, "")?;
        parse::<ScrapeRequest>(fields)
    });
    match request {
        Ok(request) => firecrawl_v1::scrape(state, request).await,
        Err(error) => Ok(error.into_firecrawl_response()),
    }
}

async fn crawl(
    state: AppState,
    caller: crawl_v1::Caller,
    body: Value,
) -> Result<Response, Rejection> {
    let spec = object(body).and_then(|mut fields| {
        if fields.remove("prompt").is_some_and(|p| !p.is_null()) {
            return Err(invalid(
                "`prompt` is not supported yet: the crawler does not run a language model over pages; give the crawl options instead",
            ));
        }
        let sitemap = sitemap_mode(&mut fields)?;
        if let Some(Value::Object(options)) = fields.get_mut("scrapeOptions") {
            scrape_options_v1(options, "scrapeOptions.")?;
        }
        let has_max_depth = fields.contains_key("maxDepth");
        let mut spec = parse::<CrawlRequest>(fields)?.into_spec(&state.limits)?;
        spec.sitemap = sitemap;
        if !has_max_depth {
            // v2 bounds crawls by link depth (maxDiscoveryDepth), not path depth.
            spec.rules.max_depth = None;
        }
        Ok(spec)
    });
    Ok(crawl_v1::start_job(&state, JobRoute::CrawlV2, caller, spec).await)
}

async fn batch(
    state: AppState,
    caller: crawl_v1::Caller,
    body: Value,
) -> Result<Response, Rejection> {
    let body = object(body).and_then(|mut fields| {
        scrape_options_v1(&mut fields, "")?;
        Ok(Value::Object(fields))
    });
    Ok(match body {
        Ok(body) => batch_v1::start_batch_as(&state, JobRoute::BatchV2, caller, body).await,
        Err(error) => error.into_firecrawl_response(),
    })
}

/// A v2 map link: what the page said about itself when the map read it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MapLink {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MapResponseV2 {
    pub success: bool,
    pub links: Vec<MapLink>,
}

async fn map(state: AppState, body: Value) -> Result<Response, Rejection> {
    let request = object(body).and_then(|mut fields| {
        match sitemap_mode(&mut fields)? {
            SitemapMode::Skip => fields.insert("ignoreSitemap".into(), Value::Bool(true)),
            SitemapMode::Only => fields.insert("sitemapOnly".into(), Value::Bool(true)),
            SitemapMode::Include => None,
        };
        parse::<MapRequest>(fields)
    });
    let urls = match request {
        Ok(request) => map_v1::map_urls(&state, request).await,
        Err(error) => Err(error),
    };
    Ok(match urls {
        Ok(urls) => warp::reply::json(&MapResponseV2 {
            success: true,
            links: urls
                .into_iter()
                .map(|link| MapLink {
                    url: link.url.into(),
                    title: link.title,
                    description: link.description,
                })
                .collect(),
        })
        .into_response(),
        Err(error) => error.into_firecrawl_response(),
    })
}

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = state.limits.body_bytes;
    let post = |filter: warp::filters::BoxedFilter<()>| {
        filter
            .and(warp::path::end())
            .and(warp::post())
            .and(with_state(state.clone()))
    };
    let scrape = post(warp::path!("v2" / "scrape" / ..).boxed())
        .and(json::body::<Value>(limit))
        .and_then(scrape);
    let crawl = post(warp::path!("v2" / "crawl" / ..).boxed())
        .and(crawl_v1::caller())
        .and(json::body::<Value>(limit))
        .and_then(crawl);
    let batch = post(warp::path!("v2" / "batch" / "scrape" / ..).boxed())
        .and(crawl_v1::caller())
        .and(json::body::<Value>(limit))
        .and_then(batch);
    let map = post(warp::path!("v2" / "map" / ..).boxed())
        .and(json::body::<Value>(limit))
        .and_then(map);
    let crawl_jobs = crawl_v1::job_family(
        warp::path!("v2" / "crawl" / ..).boxed(),
        JobRoute::CrawlV2,
        state.clone(),
    );
    let batch_jobs = crawl_v1::job_family(
        warp::path!("v2" / "batch" / "scrape" / ..).boxed(),
        JobRoute::BatchV2,
        state,
    );
    scrape
        .or(crawl)
        .unify()
        .or(batch)
        .unify()
        .or(map)
        .unify()
        .or(crawl_jobs)
        .unify()
        .or(batch_jobs)
        .unify()
}
