//! `POST /v1/query`: a cited answer to a question over one collection. With `urls`, a deep dive:
//! those pages are scraped and ingested into the collection first, then answered over.
//!
//! With `stream: true` the answer comes as server-sent events: `sources` (the numbered sources,
//! once), `token` (`{"text"}` pieces as the generator writes them), `citations` (those cited),
//! then `done` (the whole response, as without streaming) — or `error` (the error envelope).
//! A client that goes away, streaming or not, cancels the answer.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use aurora_actors::model::ScrapeRequest;
use aurora_actors::rag::{Answer, AnswerError, AnswerEvent, AnswerRequest};
use aurora_actors::router::DivePage;
use aurora_actors::session::{Principal, Role};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::http::core::search::{LocatorBody, deep_link};
use crate::http::error::{ApiError, CoreErrorBody};
use crate::http::gate::principal;
use crate::http::{AppState, Limits, filter, json, scrape_input, with_state};

/// Pages one deep dive may scrape.
pub(crate) const MAX_URLS: usize = 10;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    pub question: String,
    pub collection: String,
    /// Sources given to the answerer (default `answer.default_k`, at most `answer.max_k`).
    pub k: Option<usize>,
    /// Pages to scrape and ingest into the collection before answering (a deep dive).
    #[serde(default)]
    pub urls: Vec<String>,
    /// How the deep dive's pages are fetched: `auto` (default: the headless browser only for
    /// pages that need JavaScript), `always` or `never`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub render: Option<aurora_actors::model::RenderMode>,
    /// Metadata conditions on the chunks used, as for `/v1/search`.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// Send the answer as server-sent events as it is written.
    #[serde(default)]
    pub stream: bool,
    /// Earlier questions of the conversation, oldest first (at most 20): a follow-up such as
    /// "and when was it built?" is searched together with the question before it.
    #[serde(default)]
    pub history: Vec<String>,
}

/// Earlier questions a query may carry.
pub(crate) const MAX_HISTORY: usize = 20;

#[derive(Debug, Serialize, ToSchema)]
pub struct QueryAnswer {
    /// The answer, citing sources as `[n]`.
    pub answer: String,
    pub citations: Vec<CitationBody>,
    /// False when nothing relevant was found and the answer says so.
    pub answered: bool,
    /// `extractive`, or the LLM backend and model.
    pub generator: String,
    /// Served from the answer cache.
    pub cached: bool,
    pub usage: UsageBody,
    pub timings: QueryTimings,
    /// The deep dive's pages (absent without `urls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<Vec<DivePageBody>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CitationBody {
    pub n: usize,
    pub source_url: String,
    pub title: String,
    pub heading: String,
    pub snippet: String,
    /// The file the passage came from (an upload, or a document by URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Where in the document the passage sits (page, slides, time range).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locator: Option<LocatorBody>,
    /// `source_url` pointing at the passage: `#page=12` for a PDF, `#t=83` for a recording.
    pub link: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageBody {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueryTimings {
    pub retrieval_ms: f64,
    pub generation_ms: f64,
    pub total_ms: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DivePageBody {
    pub url: String,
    /// Why the page is not among the sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<AnswerError> for ApiError {
    fn from(error: AnswerError) -> Self {
        let message = error.to_string();
        match error {
            AnswerError::Knowledge(e) => ApiError::from(e),
            AnswerError::Generate(aurora_actors::ports::GenerateError::Refused(_)) => {
                ApiError::UnprocessableTarget(message)
            }
            AnswerError::Generate(aurora_actors::ports::GenerateError::RateLimited(after)) => {
                ApiError::UpstreamRateLimited {
                    message,
                    retry_after: after,
                }
            }
            AnswerError::Generate(aurora_actors::ports::GenerateError::Service(_)) => {
                ApiError::BadGateway(message)
            }
            AnswerError::Cancelled => ApiError::ClientClosed,
        }
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Answers a question from a collection, citing the chunks it used.
#[utoipa::path(post, path = "/v1/query", tag = "answers", request_body = QueryBody, responses(
    (status = 200, body = QueryAnswer, description = "The answer; with `stream: true`, `text/event-stream` events `sources`, `token`, `citations`, `done` (or `error`)"),
    (status = 400, description = "Empty or long question, k out of range, bad URL", body = CoreErrorBody),
    (status = 403, description = "A deep dive (`urls`) needs the editor role", body = CoreErrorBody),
    (status = 404, description = "No such collection", body = CoreErrorBody),
    (status = 422, description = "The model declined to answer (safety block, content filter)", body = CoreErrorBody),
    (status = 429, description = "The LLM service is rate limiting; see Retry-After", body = CoreErrorBody),
    (status = 502, description = "The LLM service failed", body = CoreErrorBody),
    (status = 503, description = "At capacity or restarting", body = CoreErrorBody)))]
pub async fn query(
    state: AppState,
    principal: Principal,
    body: QueryBody,
) -> Result<Response, Rejection> {
    let started = Instant::now();
    let stream = body.stream;
    // Asking is a reader's right; a deep dive also scrapes and writes to the collection.
    if !body.urls.is_empty() && principal.role < Role::Editor {
        return Ok(ApiError::Forbidden(format!(
            "a deep dive (`urls`) scrapes and ingests: it needs the editor role; you have {}",
            principal.role.as_str()
        ))
        .into_core_response());
    }
    let (request, pages) = match to_request(&state.limits, body) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(e.into_core_response()),
    };
    if stream {
        let events = answer_events(&state, request, pages).flat_map(move |progress| {
            let events = match progress {
                Progress::Event(AnswerEvent::Sources(sources)) => {
                    vec![sse("sources", &citations(sources))]
                }
                Progress::Event(AnswerEvent::Text(text)) => {
                    vec![sse("token", &json!({ "text": text }))]
                }
                Progress::Done(Ok((answer, report))) => {
                    let body = answer_body(answer, report, started);
                    vec![sse("citations", &body.citations), sse("done", &body)]
                }
                Progress::Done(Err(e)) => vec![sse("error", &ApiError::from(e).core_body())],
            };
            futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>))
        });
        return Ok(warp::sse::reply(warp::sse::keep_alive().stream(events)).into_response());
    }
    Ok(match answer_now(&state, request, pages).await {
        Ok((answer, report)) => {
            warp::reply::json(&answer_body(answer, report, started)).into_response()
        }
        Err(e) => ApiError::from(e).into_core_response(),
    })
}

fn sse(event: &str, data: &impl Serialize) -> warp::sse::Event {
    warp::sse::Event::default()
        .event(event)
        .data(serde_json::to_string(data).unwrap_or_default())
}

/// An answer (or a deep dive) for a client waiting for the whole of it. Dropping the future —
/// warp does when the client disconnects — cancels it.
pub(crate) async fn answer_now(
    state: &AppState,
    request: AnswerRequest,
    pages: Option<Vec<ScrapeRequest>>,
) -> Result<(Answer, Option<Vec<DivePage>>), AnswerError> {
    let _cancel_on_drop = request.cancel.clone().drop_guard();
    let router = state.handles.router();
    match pages {
        None => router.answer(request).await.map(|a| (a, None)),
        Some(pages) => router
            .deep_dive(pages, request)
            .await
            .map(|(a, report)| (a, Some(report))),
    }
}

/// How a streamed answer goes.
pub(crate) enum Progress {
    Event(AnswerEvent),
    Done(Result<(Answer, Option<Vec<DivePage>>), AnswerError>),
}

/// An answer (or a deep dive) for a streaming client: the worker's events as they come, then the
/// outcome. Dropping the stream — the client went away — cancels the answer.
pub(crate) fn answer_events(
    state: &AppState,
    mut request: AnswerRequest,
    pages: Option<Vec<ScrapeRequest>>,
) -> impl Stream<Item = Progress> + Send + 'static {
    // Bounded: a slow reader slows the generator instead of growing memory.
    let (events_tx, events_rx) = mpsc::channel::<AnswerEvent>(64);
    // Carries the outcome once the events are over.
    let (done_tx, done_rx) = oneshot::channel();
    request.stream = Some(events_tx);
    let state = state.clone();
    tokio::spawn(async move {
        let _ = done_tx.send(answer_now(&state, request, pages).await);
    });
    let events = futures::stream::unfold(events_rx, |mut rx| async move {
        rx.recv().await.map(|event| (Progress::Event(event), rx))
    });
    let done = futures::stream::once(async move {
        Progress::Done(done_rx.await.unwrap_or(Err(AnswerError::Cancelled)))
    });
    events.chain(done)
}

fn citations(sources: Vec<aurora_actors::rag::Citation>) -> Vec<CitationBody> {
    sources
        .into_iter()
        .map(|c| CitationBody {
            n: c.n,
            link: deep_link(&c.source_url, c.locator),
            source_url: c.source_url,
            title: c.title,
            heading: c.heading,
            snippet: c.snippet,
            file_name: c.file_name,
            locator: c.locator.map(LocatorBody::from),
        })
        .collect()
}

pub(crate) fn answer_body(
    answer: Answer,
    report: Option<Vec<DivePage>>,
    started: Instant,
) -> QueryAnswer {
    QueryAnswer {
        answer: answer.text,
        citations: citations(answer.citations),
        answered: answer.answered,
        generator: answer.generator,
        cached: answer.cached,
        usage: UsageBody {
            prompt_tokens: answer.usage.prompt_tokens,
            completion_tokens: answer.usage.completion_tokens,
            total_tokens: answer.usage.prompt_tokens + answer.usage.completion_tokens,
        },
        timings: QueryTimings {
            retrieval_ms: ms(answer.retrieval),
            generation_ms: ms(answer.generation),
            total_ms: ms(started.elapsed()),
        },
        pages: report.map(|pages| {
            pages
                .into_iter()
                .map(|p| DivePageBody {
                    url: p.url,
                    error: p.error,
                })
                .collect()
        }),
    }
}

type Parsed = (AnswerRequest, Option<Vec<ScrapeRequest>>);

fn to_request(limits: &Limits, body: QueryBody) -> Result<Parsed, ApiError> {
    let invalid = |m: String| ApiError::InvalidRequest(m);
    let question = body.question.trim();
    if question.is_empty() {
        return Err(invalid("`question` is empty".into()));
    }
    if question.chars().count() > limits.max_question_chars {
        return Err(invalid(format!(
            "`question` is longer than {} characters",
            limits.max_question_chars
        )));
    }
    let k = body.k.unwrap_or(limits.answer_default_k);
    if k == 0 || k > limits.answer_max_k {
        return Err(invalid(format!(
            "`k` must be between 1 and {}, got {k}",
            limits.answer_max_k
        )));
    }
    if let Some(t) = body.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(invalid(format!("`temperature` must be 0–2, got {t}")));
    }
    aurora_actors::ports::validate_collection_name(&body.collection)
        .map_err(|e| invalid(format!("`collection`: {e}")))?;
    if body.urls.len() > MAX_URLS {
        return Err(invalid(format!(
            "`urls` lists {} pages; a deep dive reads at most {MAX_URLS}",
            body.urls.len()
        )));
    }
    let pages = match body.urls.is_empty() {
        true => None,
        false => Some(
            body.urls
                .iter()
                .enumerate()
                .map(|(i, raw)| {
                    let url = scrape_input::target_url(raw).map_err(|e| match e {
                        ApiError::InvalidRequest(m) => invalid(format!("`urls[{i}]`: {m}")),
                        other => other,
                    })?;
                    let mut page = ScrapeRequest::new(url);
                    page.timeout = limits.default_timeout;
                    page.render = body.render.unwrap_or_default();
                    Ok(page)
                })
                .collect::<Result<Vec<_>, ApiError>>()?,
        ),
    };
    let filter = match &body.filter {
        Some(value) => filter::parse(value)?,
        None => Default::default(),
    };
    if body.history.len() > MAX_HISTORY {
        return Err(invalid(format!(
            "`history` holds {} questions; send at most the last {MAX_HISTORY}",
            body.history.len()
        )));
    }
    if let Some(i) = body
        .history
        .iter()
        .position(|q| q.chars().count() > limits.max_question_chars)
    {
        return Err(invalid(format!(
            "`history[{i}]` is longer than {} characters",
            limits.max_question_chars
        )));
    }
    let mut request = AnswerRequest::new(body.collection, question, k);
    request.history = body.history;
    request.filter = filter;
    request.max_tokens = body.max_tokens;
    request.temperature = body.temperature;
    Ok((request, pages))
}

pub fn route(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = state.limits.body_bytes;
    warp::path!("v1" / "query")
        .and(warp::post())
        .and(with_state(state))
        .and(principal())
        .and(json::body(limit))
        .and_then(query)
}
