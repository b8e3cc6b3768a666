//! OpenAI-compatible chat on the core port, so any chat front end or OpenAI client library can
//! ask Aurora: `POST /v1/chat/completions` (streaming and not) and `GET /v1/models`.
//!
//! `model` names the collection: `aurora` is `answer.default_collection`, `aurora:{name}` any
//! other; `GET /v1/models` lists them. The last user message is the question and the user turn
//! before it joins the retrieval query. Citations become Markdown links in the content
//! (`[[1]](https://…)`), and the `aurora` object of the response carries them in full. With
//! `stream: true` the answer comes as `chat.completion.chunk` server-sent events as the generator
//! writes it, the `aurora` object in the last chunk, then `data: [DONE]`; a failure mid-stream is
//! a chunk holding OpenAI's `error` object. Errors use OpenAI's envelope. A client that goes away
//! cancels the answer.

use std::convert::Infallible;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aurora_actors::rag::{AnswerEvent, AnswerRequest, Citation};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::query::{Progress, answer_body, answer_events, answer_now};
use crate::http::error::{ApiError, CoreErrorBody};
use crate::http::{AppState, json, with_state};

/// Messages in one request at most.
pub(crate) const MAX_MESSAGES: usize = 100;

/// The roles a message may have.
pub(crate) const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// `aurora` or `aurora:{collection}` (the collection part as `COLLECTION_NAME_PATTERN`, less its
/// length, which the handler checks).
pub(crate) const MODEL_PATTERN: &str =
    r"^aurora(?::[A-Za-z0-9](?:[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*\.?[A-Za-z0-9])?)?$";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// `aurora` (the default collection) or `aurora:{collection}`.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    /// Only 1 is offered.
    pub n: Option<u32>,
    // Accepted and without effect on an answer built from sources (clients send them by default).
    #[schema(value_type = Option<Object>)]
    pub stream_options: Option<Value>,
    pub top_p: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub seed: Option<i64>,
    pub user: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub stop: Option<Value>,
    /// Refused: Aurora answers from its sources and calls no tools.
    #[schema(value_type = Option<Object>)]
    pub tools: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub response_format: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, or an array of parts of which the `text` ones are read.
    #[schema(value_type = Object)]
    pub content: Value,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelCard>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelCard {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest(message.into())
}

/// The text of a message's content (a string, or the `text` parts of an array).
fn text_of(content: &Value) -> Result<String, ApiError> {
    match content {
        Value::String(text) => Ok(text.clone()),
        Value::Array(parts) => Ok(parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n")),
        Value::Null => Ok(String::new()),
        _ => Err(invalid(
            "`messages[].content` must be a string or an array of parts",
        )),
    }
}

/// The collection a model name stands for.
fn collection(model: &str, default: &str) -> Result<String, ApiError> {
    let name = match model.strip_prefix("aurora") {
        Some("") => default.to_string(),
        Some(rest) => match rest.strip_prefix(':') {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => return Err(model_unknown(model)),
        },
        None => return Err(model_unknown(model)),
    };
    aurora_actors::ports::validate_collection_name(&name)
        .map_err(|e| invalid(format!("`model`: {e}")))?;
    Ok(name)
}

fn model_unknown(model: &str) -> ApiError {
    ApiError::ResourceNotFound(format!(
        "The model `{model}` does not exist: use `aurora` or `aurora:{{collection}}` (GET /v1/models lists them)"
    ))
}

fn to_request(state: &AppState, body: &ChatRequest) -> Result<AnswerRequest, ApiError> {
    let limits = &state.limits;
    if body.messages.is_empty() {
        return Err(invalid("`messages` must hold at least one message"));
    }
    if body.messages.len() > MAX_MESSAGES {
        return Err(invalid(format!(
            "`messages` holds {} messages; at most {MAX_MESSAGES}",
            body.messages.len()
        )));
    }
    if body.n.is_some_and(|n| n != 1) {
        return Err(invalid("`n` must be 1: one answer per request"));
    }
    if body.tools.is_some() {
        return Err(invalid(
            "`tools` is not supported: Aurora answers from its sources",
        ));
    }
    if let Some(format) = &body.response_format
        && format["type"] != "text"
    {
        return Err(invalid("`response_format` must be `text`"));
    }
    if let Some(t) = body.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(invalid(format!("`temperature` must be 0–2, got {t}")));
    }
    let mut users = Vec::new();
    for (i, message) in body.messages.iter().enumerate() {
        if !ROLES.contains(&message.role.as_str()) {
            return Err(invalid(format!(
                "`messages[{i}].role` `{}` is not a chat role",
                message.role
            )));
        }
        if message.role == "user" {
            users.push(text_of(&message.content)?);
        }
    }
    let question = users
        .pop()
        .map(|q| q.trim().to_string())
        .filter(|q| !q.is_empty())
        .ok_or_else(|| invalid("the conversation has no user message to answer"))?;
    if question.chars().count() > limits.max_question_chars {
        return Err(invalid(format!(
            "the last user message is longer than {} characters",
            limits.max_question_chars
        )));
    }
    let collection = collection(&body.model, &limits.default_collection)?;
    let mut request = AnswerRequest::new(collection, question, limits.answer_default_k);
    request.history = users;
    request.max_tokens = body.max_completion_tokens.or(body.max_tokens);
    request.temperature = body.temperature;
    Ok(request)
}

/// Text with each `[n]` turned into a Markdown link to its source. Streamed pieces never split a
/// citation, so pieces can be linked one by one.
fn linked(text: &str, sources: &[Citation]) -> String {
    let mut text = text.to_string();
    for citation in sources {
        text = text.replace(
            &format!("[{}]", citation.n),
            &format!(
                "[[{}]]({})",
                citation.n,
                super::search::deep_link(&citation.source_url, citation.locator)
            ),
        );
    }
    text
}

/// Answer a chat conversation from a collection (OpenAI's chat completions API).
#[utoipa::path(post, path = "/v1/chat/completions", tag = "answers", request_body = ChatRequest,
    responses(
        (status = 200, description = "A `chat.completion`, or `chat.completion.chunk` events when streaming"),
        (status = 400, description = "Malformed or unsupported request", body = CoreErrorBody),
        (status = 404, description = "No such model (collection)", body = CoreErrorBody)))]
pub async fn chat(state: AppState, body: ChatRequest) -> Result<Response, Rejection> {
    let started = Instant::now();
    let request = match to_request(&state, &body) {
        Ok(request) => request,
        Err(e) => return Ok(e.into_core_response()),
    };
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    if body.stream {
        return Ok(stream(&state, request, body, id, started));
    }
    let answer = match answer_now(&state, request, None).await {
        Ok((answer, _)) => answer,
        Err(e) => return Ok(ApiError::from(e).into_core_response()),
    };
    let content = linked(&answer.text, &answer.citations);
    let usage = usage(&answer);
    Ok(warp::reply::json(&json!({
        "id": id,
        "object": "chat.completion",
        "created": now(),
        "model": body.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": usage,
        "aurora": answer_body(answer, None, started),
    }))
    .into_response())
}

fn usage(answer: &aurora_actors::rag::Answer) -> Value {
    json!({
        "prompt_tokens": answer.usage.prompt_tokens,
        "completion_tokens": answer.usage.completion_tokens,
        "total_tokens": answer.usage.prompt_tokens + answer.usage.completion_tokens,
    })
}

/// The answer as `chat.completion.chunk` events while it is written, then `[DONE]`.
fn stream(
    state: &AppState,
    request: AnswerRequest,
    body: ChatRequest,
    id: String,
    started: Instant,
) -> Response {
    let include_usage = body
        .stream_options
        .as_ref()
        .is_some_and(|o| o["include_usage"] == true);
    let model = body.model;
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": now(),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    };
    let first = chunk(json!({"role": "assistant", "content": ""}), None);
    // The sources arrive before any text; pieces are linked with them.
    let mut sources: Vec<Citation> = Vec::new();
    let chunks = answer_events(state, request, None).map(move |progress| match progress {
        Progress::Event(AnswerEvent::Sources(given)) => {
            sources = given;
            Vec::new()
        }
        Progress::Event(AnswerEvent::Text(text)) => {
            vec![chunk(json!({ "content": linked(&text, &sources) }), None)]
        }
        Progress::Done(Ok((answer, _))) => {
            let usage = usage(&answer);
            let mut last = chunk(json!({}), Some("stop"));
            last["aurora"] =
                serde_json::to_value(answer_body(answer, None, started)).unwrap_or(Value::Null);
            let mut chunks = vec![last];
            if include_usage {
                let mut tail = chunk(json!({}), None);
                tail["choices"] = json!([]);
                tail["usage"] = usage;
                chunks.push(tail);
            }
            chunks
        }
        Progress::Done(Err(e)) => {
            vec![serde_json::to_value(ApiError::from(e).core_body()).unwrap_or(Value::Null)]
        }
    });
    let events = futures::stream::once(async move { vec![first] })
        .chain(chunks)
        .flat_map(|chunks| futures::stream::iter(chunks.into_iter().map(|c| c.to_string())))
        .chain(futures::stream::once(async { "[DONE]".to_string() }))
        .map(|data| Ok::<_, Infallible>(warp::sse::Event::default().data(data)));
    warp::sse::reply(warp::sse::keep_alive().stream(events)).into_response()
}

/// The collections, as models (OpenAI's model list).
#[utoipa::path(get, path = "/v1/models", tag = "answers",
    responses((status = 200, body = ModelList)))]
pub async fn models(state: AppState) -> Result<Response, Rejection> {
    let collections = match state.handles.router().list_collections().await {
        Ok(all) => all,
        Err(e) => return Ok(ApiError::from(e).into_core_response()),
    };
    let card = |id: String| ModelCard {
        id,
        object: "model",
        created: 0,
        owned_by: "aurora",
    };
    let mut data = vec![card("aurora".to_string())];
    data.extend(
        collections
            .into_iter()
            .map(|c| card(format!("aurora:{}", c.name))),
    );
    Ok(warp::reply::json(&ModelList {
        object: "list",
        data,
    })
    .into_response())
}

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = state.limits.body_bytes;
    let chat = warp::path!("v1" / "chat" / "completions")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(json::body(limit))
        .and_then(chat);
    let models = warp::path!("v1" / "models")
        .and(warp::get())
        .and(with_state(state))
        .and_then(models);
    chat.or(models).unify()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_map_to_collections() {
        assert_eq!(collection("aurora", "default").unwrap(), "default");
        assert_eq!(collection("aurora:docs", "default").unwrap(), "docs");
        assert!(collection("gpt-4o", "default").is_err());
        assert!(collection("aurora:", "default").is_err());
        assert!(collection("aurorax", "default").is_err());
    }
}
