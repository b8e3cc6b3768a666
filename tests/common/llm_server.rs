//! A local server that speaks two LLM wire formats exactly — OpenAI's `POST /v1/chat/completions`
//! and Gemini's `POST /v1beta/models/{model}:generateContent` / `:streamGenerateContent?alt=sse`
//! — whole and streamed as server-sent events, with their error envelopes and 429s. Each request
//! takes the next scripted [`Reply`] (a normal answer once the script is empty) and is logged.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::sse::Event;
use warp::{Reply as _, reply};

/// The key both APIs require.
pub const KEY: &str = "sk-test-4242";
pub const PROMPT_TOKENS: u64 = 321;
pub const COMPLETION_TOKENS: u64 = 17;

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The configured answer (in small pieces when streaming).
    Answer,
    /// An error status with the API's JSON error body, and `Retry-After` if given.
    Status(u16, Value, Option<&'static str>),
    /// This whole response body instead of the answer (streamed as one event).
    Body(Value),
    /// Streams the first piece of the answer (or, not streaming, nothing at all), then waits
    /// for the client to hang up.
    Hang,
}

/// What the server saw.
#[derive(Debug, Default)]
pub struct LlmLog {
    /// (path and query, JSON body) of every request, in order.
    pub requests: Mutex<Vec<(String, Value)>>,
    /// Streams whose reader went away before the end.
    pub hung_up: AtomicUsize,
    script: Mutex<VecDeque<Reply>>,
}

impl LlmLog {
    pub fn count(&self) -> usize {
        self.requests.lock().expect("log").len()
    }

    pub fn last(&self) -> (String, Value) {
        self.requests
            .lock()
            .expect("log")
            .last()
            .cloned()
            .expect("a request")
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().expect("script").extend(replies);
    }

    fn next(&self, path: String, body: Value) -> Reply {
        self.requests.lock().expect("log").push((path, body));
        self.script
            .lock()
            .expect("script")
            .pop_front()
            .unwrap_or(Reply::Answer)
    }
}

pub struct LlmServer {
    pub addr: SocketAddr,
    pub log: Arc<LlmLog>,
    _stop: oneshot::Sender<()>,
}

impl LlmServer {
    /// `http://127.0.0.1:PORT/v1`, OpenAI's base URL.
    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1beta`, Gemini's base URL.
    pub fn gemini_base(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }
}

/// Counts a hanging stream's reader going away: dropped with the stream.
struct HangUp(Arc<LlmLog>);

impl Drop for HangUp {
    fn drop(&mut self) {
        self.0.hung_up.fetch_add(1, Ordering::SeqCst);
    }
}

/// `answer` in pieces of 5 characters, so citations arrive split (`[1` + `] …`).
fn pieces(answer: &str) -> Vec<String> {
    let chars: Vec<char> = answer.chars().collect();
    chars.chunks(5).map(|c| c.iter().collect()).collect()
}

fn json_status(status: u16, body: &Value, retry_after: Option<&str>) -> Response {
    let code = StatusCode::from_u16(status).expect("status");
    let mut response = reply::with_status(reply::json(body), code).into_response();
    if let Some(after) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", after.parse().expect("header"));
    }
    response
}

/// A stream of SSE events; with `hang`, it then waits for the reader to go (and counts that).
fn sse(events: Vec<Event>, hang: Option<Arc<LlmLog>>) -> Response {
    let guard = hang.map(HangUp);
    let rest = match guard {
        Some(_) => futures::stream::pending().left_stream(),
        None => futures::stream::empty().right_stream(),
    };
    let stream = futures::stream::iter(events)
        // A comment line, as proxies and servers send to keep a stream open.
        .chain(futures::stream::once(async {
            Event::default().comment("keep-alive")
        }))
        .chain(rest)
        .map(move |event| {
            // The guard lives as long as the stream.
            let _ = guard.as_ref();
            Ok::<_, Infallible>(event)
        });
    warp::sse::reply(stream).into_response()
}

/// Never answers; counts the client giving up.
async fn hang(log: Arc<LlmLog>) -> Response {
    let _counted = HangUp(log);
    std::future::pending().await
}

fn openai_chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": "fake-model", "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    })
}

async fn openai(
    log: Arc<LlmLog>,
    answer: &'static str,
    auth: Option<String>,
    body: Value,
) -> Response {
    let reply = log.next("/v1/chat/completions".into(), body.clone());
    if auth.as_deref() != Some(&format!("Bearer {KEY}")) {
        return json_status(
            401,
            &json!({"error": {"message": "Incorrect API key provided: sk-wrong. You can find your API key at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
            None,
        );
    }
    let stream = body["stream"] == true;
    let usage = json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS});
    match (reply, stream) {
        (Reply::Status(status, error, after), _) => json_status(status, &error, after),
        (Reply::Body(whole), false) => json_status(200, &whole, None),
        (Reply::Body(chunk), true) => sse(vec![Event::default().data(chunk.to_string())], None),
        (Reply::Answer, false) => json_status(
            200,
            &json!({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000,
                "model": "fake-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer,
                    "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
                "usage": usage,
            }),
            None,
        ),
        (reply @ (Reply::Answer | Reply::Hang), true) => {
            let hang = matches!(reply, Reply::Hang);
            let mut chunks = vec![openai_chunk(
                json!({"role": "assistant", "content": ""}),
                None,
            )];
            let texts = pieces(answer);
            let texts = if hang { texts[..1].to_vec() } else { texts };
            chunks.extend(
                texts
                    .iter()
                    .map(|t| openai_chunk(json!({"content": t}), None)),
            );
            let mut events: Vec<Event> = chunks
                .iter()
                .map(|c| Event::default().data(c.to_string()))
                .collect();
            if !hang {
                events
                    .push(Event::default().data(openai_chunk(json!({}), Some("stop")).to_string()));
                if body["stream_options"]["include_usage"] == true {
                    let mut tail = openai_chunk(json!({}), None);
                    tail["choices"] = json!([]);
                    tail["usage"] = usage;
                    events.push(Event::default().data(tail.to_string()));
                }
                events.push(Event::default().data("[DONE]"));
            }
            sse(events, hang.then_some(log))
        }
        (Reply::Hang, false) => hang(log).await,
    }
}

fn gemini_response(text: &str, finish: Option<&str>, last: bool) -> Value {
    let mut candidate =
        json!({"content": {"parts": [{"text": text}], "role": "model"}, "index": 0});
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish);
    }
    let mut usage = json!({"promptTokenCount": PROMPT_TOKENS, "totalTokenCount": PROMPT_TOKENS});
    if last {
        usage = json!({"promptTokenCount": PROMPT_TOKENS, "candidatesTokenCount": COMPLETION_TOKENS,
            "totalTokenCount": PROMPT_TOKENS + COMPLETION_TOKENS});
    }
    json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-fake"})
}

async fn gemini(
    log: Arc<LlmLog>,
    answer: &'static str,
    method: String,
    query: String,
    key: Option<String>,
    body: Value,
) -> Response {
    let reply = log.next(format!("/v1beta/models/{method}?{query}"), body);
    if key.as_deref() != Some(KEY) {
        return json_status(
            400,
            &json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT"}}),
            None,
        );
    }
    let stream = match method.split_once(':') {
        Some((_, "generateContent")) => false,
        Some((_, "streamGenerateContent")) if query == "alt=sse" => true,
        _ => {
            return json_status(
                404,
                &json!({"error": {"code": 404, "message": format!("models/{method} is not found"),
                    "status": "NOT_FOUND"}}),
                None,
            );
        }
    };
    match (reply, stream) {
        (Reply::Status(status, error, after), _) => json_status(status, &error, after),
        (Reply::Body(whole), false) => json_status(200, &whole, None),
        (Reply::Body(event), true) => sse(vec![Event::default().data(event.to_string())], None),
        (Reply::Answer, false) => {
            json_status(200, &gemini_response(answer, Some("STOP"), true), None)
        }
        (reply @ (Reply::Answer | Reply::Hang), true) => {
            let hang = matches!(reply, Reply::Hang);
            let texts = pieces(answer);
            let count = if hang { 1 } else { texts.len() };
            let events = texts[..count]
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    let last = !hang && i + 1 == count;
                    let finish = last.then_some("STOP");
                    Event::default().data(gemini_response(text, finish, last).to_string())
                })
                .collect();
            sse(events, hang.then_some(log))
        }
        (Reply::Hang, false) => hang(log).await,
    }
}

/// Starts the server; every request is answered with `answer` unless scripted otherwise.
pub async fn spawn_llm(answer: &'static str) -> LlmServer {
    let log = Arc::new(LlmLog::default());
    let openai_log = log.clone();
    let openai = warp::path!("v1" / "chat" / "completions")
        .and(warp::post())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::json())
        .then(move |auth: Option<String>, body: Value| {
            openai(openai_log.clone(), answer, auth, body)
        });
    let gemini_log = log.clone();
    let gemini = warp::path!("v1beta" / "models" / String)
        .and(warp::post())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("x-goog-api-key"))
        .and(warp::body::json())
        .then(
            move |method: String, query: String, key: Option<String>, body: Value| {
                gemini(gemini_log.clone(), answer, method, query, key, body)
            },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the LLM server");
    let addr = listener.local_addr().expect("address");
    let stop = super::serve_until_dropped(listener, openai.or(gemini).unify());
    LlmServer {
        addr,
        log,
        _stop: stop,
    }
}

/// An app whose answers come from `llm` (its OpenAI-compatible side).
pub async fn app_answering_with(llm: &LlmServer) -> super::TestApp {
    let base = llm.openai_base();
    super::spawn_app_with(move |s| {
        s.generator.provider = aurora::settings::GeneratorProvider::Openai;
        s.generator.openai.base_url = base;
        s.generator.openai.model = "fake-model".into();
        s.generator.openai.api_key = KEY.into();
    })
    .await
}
