//! Firecrawl v1 map on the crawler port: `POST /v1/map` lists a site's URLs from its sitemaps and
//! start page, right away (`crawler_pool::Handle::map`, in the caller's task; no job).

use std::time::Duration;

use aurora_actors::crawler_pool::{MapSpec, Mapped, SitemapMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::http::error::{ApiError, FirecrawlErrorBody};
use crate::http::{AppState, Limits, json, scrape_input, with_state};

/// Links one map returns at most.
pub(crate) const MAX_LIMIT: i64 = 100_000;
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
            l if !(1..=MAX_LIMIT).contains(&l) => {
                return Err(ApiError::InvalidRequest(format!(
                    "`limit` must be between 1 and {MAX_LIMIT}, got {l}"
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
    warp::path!("v1" / "map")
        .and(warp::post())
        .and(with_state(state))
        .and(json::body(limit))
        .and_then(map)
}
