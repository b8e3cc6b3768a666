//! `POST /v1/search`: hybrid retrieval (vector similarity and BM25, fused by reciprocal rank)
//! over one collection, with metadata filters (`crate::http::filter`).

use aurora_actors::model::{Locator, Unit};
use aurora_actors::rag::SearchRequest;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::http::error::{ApiError, CoreErrorBody};
use crate::http::{AppState, filter, json, with_state};

/// Longest query accepted, in characters.
pub(crate) const MAX_QUERY_CHARS: usize = 4000;

#[derive(Debug, Deserialize, ToSchema)]
pub struct SearchBody {
    pub query: String,
    pub collection: String,
    /// How many results (default `search.default_k`, at most `search.max_k`).
    pub k: Option<usize>,
    /// Metadata conditions, e.g. `{"source_url": {"$in": ["https://a", "https://b"]}}`.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    pub hits: Vec<SearchHitBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHitBody {
    pub source_url: String,
    pub title: String,
    /// Heading path of the chunk's section, e.g. `Install > From source`.
    pub heading: String,
    pub text: String,
    /// Fused relevance (higher is better; comparable within one response).
    pub score: f32,
    pub chunk_index: u32,
    /// The file the chunk came from (an upload, or a document by URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Where in the document the chunk sits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locator: Option<LocatorBody>,
}

/// Where a passage sits in a document: `{"unit": "page", "start": 12, "end": 12, "label":
/// "page 12"}`; for a recording the unit is `time` and start/end are milliseconds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LocatorBody {
    /// `page`, `slide`, `chapter` or `time`.
    pub unit: &'static str,
    pub start: u64,
    pub end: u64,
    /// As a reader writes it: `page 12`, `pages 3–4`, `t=01:23–01:41`.
    pub label: String,
}

impl From<Locator> for LocatorBody {
    fn from(locator: Locator) -> Self {
        Self {
            unit: locator.unit.as_str(),
            start: locator.start,
            end: locator.end,
            label: locator.to_string(),
        }
    }
}

/// The source's URL pointing at the passage where a viewer can: `#page=12` opens a PDF at its
/// page, `#t=83` plays a recording from there (media fragments).
pub fn deep_link(source_url: &str, locator: Option<Locator>) -> String {
    match locator {
        Some(Locator {
            unit: Unit::Page,
            start,
            ..
        }) => format!("{source_url}#page={start}"),
        Some(Locator {
            unit: Unit::Time,
            start,
            ..
        }) => {
            format!("{source_url}#t={}", start / 1000)
        }
        _ => source_url.to_string(),
    }
}

/// Finds the chunks of a collection that best answer a query.
#[utoipa::path(post, path = "/v1/search", tag = "search", request_body = SearchBody, responses(
    (status = 200, body = SearchResults),
    (status = 400, description = "Empty query, k out of range, malformed filter", body = CoreErrorBody),
    (status = 404, description = "No such collection", body = CoreErrorBody),
    (status = 409, description = "Collection built by another embedding model", body = CoreErrorBody),
    (status = 503, description = "Vector store or model unavailable", body = CoreErrorBody)))]
pub async fn search(state: AppState, body: SearchBody) -> Result<Response, Rejection> {
    let request = match to_request(&state, body) {
        Ok(request) => request,
        Err(e) => return Ok(e.into_core_response()),
    };
    Ok(match state.handles.router().search(request).await {
        Ok(hits) => warp::reply::json(&SearchResults {
            hits: hits
                .into_iter()
                .map(|hit| SearchHitBody {
                    source_url: hit.chunk.source_url,
                    title: hit.chunk.title,
                    heading: hit.chunk.heading,
                    text: hit.chunk.text,
                    score: hit.score,
                    chunk_index: hit.chunk.chunk_index,
                    file_name: hit.chunk.file_name,
                    locator: hit.chunk.locator.map(LocatorBody::from),
                })
                .collect(),
        })
        .into_response(),
        Err(e) => ApiError::from(e).into_core_response(),
    })
}

fn to_request(state: &AppState, body: SearchBody) -> Result<SearchRequest, ApiError> {
    let limits = &state.limits;
    let query = body.query.trim();
    if query.is_empty() {
        return Err(ApiError::InvalidRequest("`query` is empty".into()));
    }
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::InvalidRequest(format!(
            "`query` is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let k = body.k.unwrap_or(limits.default_k);
    if k == 0 || k > limits.max_k {
        return Err(ApiError::InvalidRequest(format!(
            "`k` must be between 1 and {}, got {k}",
            limits.max_k
        )));
    }
    let filter = match &body.filter {
        Some(value) => filter::parse(value)?,
        None => Default::default(),
    };
    Ok(SearchRequest {
        collection: body.collection,
        query: query.to_string(),
        k,
        filter,
    })
}

pub fn route(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = state.limits.body_bytes;
    warp::path!("v1" / "search")
        .and(warp::post())
        .and(with_state(state))
        .and(json::body(limit))
        .and_then(search)
}
