//! Hosted embedding APIs, against local servers that speak their exact wire formats: OpenAI's
//! `/v1/embeddings` and Gemini's `models/{model}:batchEmbedContents`, including their error
//! bodies and 429s with `Retry-After`.

// The fake servers and helpers are test code too.
#![allow(clippy::unwrap_used)]

mod common;

use common::text;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aurora::adapters::gemini::{GeminiConfig, GeminiEmbedder};
use aurora::adapters::openai::{OpenAiConfig, OpenAiEmbedder};
use aurora::adapters::remote::RetryPolicy;
use aurora::settings::EmbeddingProvider;
use aurora_actors::local::HashingEmbedder;
use aurora_actors::ports::{EmbedError, EmbedKind, Embedder};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use warp::Filter;
use warp::http::{Response, StatusCode};

use common::{Port, spawn_app_in, spawn_app_with};

const DIM: usize = 64;
const KEY: &str = "test-key-123";

/// What a fake API saw, and how it should misbehave.
#[derive(Default)]
struct Log {
    requests: AtomicUsize,
    /// Answer this many requests with 429 first.
    throttle: AtomicUsize,
    bodies: Mutex<Vec<Value>>,
}

fn vectors(texts: &[String]) -> Vec<Vec<f32>> {
    // Meaningful vectors: the lexical hashing embedder, so search results make sense.
    let model = HashingEmbedder::new(DIM);
    futures::executor::block_on(model.embed(texts, EmbedKind::Document)).unwrap()
}

fn json_response(status: StatusCode, body: Value) -> Response<String> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .unwrap()
}

async fn serve(
    routes: impl Filter<Extract = (Response<String>,), Error = warp::Rejection>
    + Clone
    + Send
    + Sync
    + 'static,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    addr
}

/// OpenAI's embeddings endpoint: Bearer auth, `input` array, `data` with indexes (sent back in
/// reverse order, which clients must handle), OpenAI's error envelope.
async fn fake_openai(log: Arc<Log>) -> SocketAddr {
    let route = warp::path!("v1" / "embeddings")
        .and(warp::post())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::json())
        .then(move |auth: Option<String>, body: Value| {
            let log = log.clone();
            async move {
                log.requests.fetch_add(1, Ordering::SeqCst);
                log.bodies.lock().await.push(body.clone());
                if auth.as_deref() != Some(&format!("Bearer {KEY}")) {
                    return json_response(StatusCode::UNAUTHORIZED, json!({"error": {
                        "message": "Incorrect API key provided: wrong. You can find your API key at https://platform.openai.com/account/api-keys.",
                        "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}));
                }
                if log.throttle.load(Ordering::SeqCst) > 0 {
                    log.throttle.fetch_sub(1, Ordering::SeqCst);
                    let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, json!({"error": {
                        "message": "Rate limit reached for text-embedding-3-small on requests per min (RPM): Limit 3000, Used 3000.",
                        "type": "requests", "param": null, "code": "rate_limit_exceeded"}}));
                    response.headers_mut().insert("retry-after", "0".parse().unwrap());
                    return response;
                }
                let inputs: Vec<String> = serde_json::from_value(body["input"].clone()).unwrap();
                let data: Vec<Value> = vectors(&inputs)
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
                    .rev()
                    .collect();
                json_response(StatusCode::OK, json!({"object": "list", "data": data,
                    "model": body["model"], "usage": {"prompt_tokens": 8, "total_tokens": 8}}))
            }
        });
    serve(route).await
}

/// Gemini's batchEmbedContents: key header, per-request model/content/taskType, un-normalised
/// vectors, Google's error envelope.
async fn fake_gemini(log: Arc<Log>) -> SocketAddr {
    let route = warp::path!("v1beta" / "models" / String)
        .and(warp::post())
        .and(warp::header::optional::<String>("x-goog-api-key"))
        .and(warp::body::json())
        .then(move |method: String, key: Option<String>, body: Value| {
            let log = log.clone();
            async move {
                log.requests.fetch_add(1, Ordering::SeqCst);
                log.bodies.lock().await.push(body.clone());
                if method != "text-embedding-004:batchEmbedContents" {
                    return json_response(StatusCode::NOT_FOUND, json!({"error": {"code": 404,
                        "message": format!("models/{method} is not found"), "status": "NOT_FOUND"}}));
                }
                if key.as_deref() != Some(KEY) {
                    return json_response(StatusCode::BAD_REQUEST, json!({"error": {"code": 400,
                        "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}}));
                }
                if log.throttle.load(Ordering::SeqCst) > 0 {
                    log.throttle.fetch_sub(1, Ordering::SeqCst);
                    let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, json!({"error": {"code": 429,
                        "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}));
                    response.headers_mut().insert("retry-after", "0".parse().unwrap());
                    return response;
                }
                let texts: Vec<String> = body["requests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        assert_eq!(r["model"], "models/text-embedding-004");
                        assert_eq!(r["outputDimensionality"], DIM);
                        r["content"]["parts"][0]["text"].as_str().unwrap().to_string()
                    })
                    .collect();
                // Gemini does not normalise shortened vectors: scale them to prove we do.
                let embeddings: Vec<Value> = vectors(&texts)
                    .into_iter()
                    .map(|v| json!({"values": v.iter().map(|x| x * 3.0).collect::<Vec<f32>>()}))
                    .collect();
                json_response(StatusCode::OK, json!({"embeddings": embeddings}))
            }
        });
    serve(route).await
}

fn openai(addr: SocketAddr, key: &str) -> OpenAiEmbedder {
    OpenAiEmbedder::new(
        OpenAiConfig {
            base_url: format!("http://{addr}/v1"),
            model: "text-embedding-3-small".into(),
            dimensions: DIM,
            send_dimensions: true,
            api_key: Some(key.into()),
        },
        RetryPolicy::default(),
    )
    .unwrap()
}

fn gemini(addr: SocketAddr, key: &str) -> GeminiEmbedder {
    GeminiEmbedder::new(
        GeminiConfig {
            base_url: format!("http://{addr}/v1beta"),
            model: "text-embedding-004".into(),
            dimensions: DIM,
            api_key: key.into(),
        },
        RetryPolicy::default(),
    )
    .unwrap()
}

fn texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("document number {i} about topic {}", i % 7))
        .collect()
}

#[tokio::test]
async fn openai_embeds_in_input_order_across_batches() {
    let log = Arc::new(Log::default());
    let model = openai(fake_openai(log.clone()).await, KEY);
    assert_eq!(
        (model.id(), model.dimension()),
        ("openai:text-embedding-3-small:64", DIM)
    );
    let inputs = texts(300); // two requests: 256 + 44
    let got = model.embed(&inputs, EmbedKind::Document).await.unwrap();
    assert_eq!(got.len(), inputs.len());
    for (i, (g, expected)) in got.iter().zip(vectors(&inputs)).enumerate() {
        let diff = g
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            diff < 1e-5,
            "input {i}: order restored from `index` (max diff {diff})"
        );
    }
    assert_eq!(log.requests.load(Ordering::SeqCst), 2);
    let first = &log.bodies.lock().await[0];
    assert_eq!(first["model"], "text-embedding-3-small");
    assert_eq!(first["encoding_format"], "float");
    assert_eq!(first["dimensions"], DIM);
    assert_eq!(first["input"].as_array().unwrap().len(), 256);
}

#[tokio::test]
async fn openai_rate_limits_are_retried_and_bad_keys_reported() {
    let log = Arc::new(Log::default());
    let addr = fake_openai(log.clone()).await;
    log.throttle.store(2, Ordering::SeqCst);
    let got = openai(addr, KEY)
        .embed(&texts(3), EmbedKind::Query)
        .await
        .unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(
        log.requests.load(Ordering::SeqCst),
        3,
        "two 429s, then success"
    );

    let err = openai(addr, "wrong")
        .embed(&texts(1), EmbedKind::Document)
        .await
        .unwrap_err();
    let EmbedError::Service(message) = err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("401") && message.contains("Incorrect API key provided"),
        "{message}"
    );

    log.throttle.store(100, Ordering::SeqCst);
    let err = openai(addr, KEY)
        .embed(&texts(1), EmbedKind::Document)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("429") && err.to_string().contains("Rate limit reached"),
        "{err}"
    );
}

#[tokio::test]
async fn gemini_uses_task_types_and_normalises() {
    let log = Arc::new(Log::default());
    let addr = fake_gemini(log.clone()).await;
    let model = gemini(addr, KEY);
    assert_eq!(model.id(), "gemini:text-embedding-004:64");
    let inputs = texts(150); // two calls: 100 + 50
    log.throttle.store(1, Ordering::SeqCst);
    let got = model.embed(&inputs, EmbedKind::Document).await.unwrap();
    for (g, expected) in got.iter().zip(vectors(&inputs)) {
        let diff = g
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-5, "normalised back to the reference vector");
    }
    assert_eq!(
        log.requests.load(Ordering::SeqCst),
        3,
        "one 429, then two batches"
    );
    model.embed(&texts(1), EmbedKind::Query).await.unwrap();
    let bodies = log.bodies.lock().await;
    assert_eq!(bodies[1]["requests"][0]["taskType"], "RETRIEVAL_DOCUMENT");
    assert_eq!(
        bodies.last().unwrap()["requests"][0]["taskType"],
        "RETRIEVAL_QUERY"
    );
    drop(bodies);

    let err = gemini(addr, "bad")
        .embed(&texts(1), EmbedKind::Document)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("API key not valid"), "{err}");
}

#[tokio::test]
async fn aurora_ingests_and_searches_through_a_hosted_model() {
    let log = Arc::new(Log::default());
    let addr = fake_openai(log.clone()).await;
    let configure = move |s: &mut aurora::settings::Settings| {
        s.embedding.provider = EmbeddingProvider::Openai;
        s.embedding.openai.base_url = format!("http://{addr}/v1");
        s.embedding.openai.dimensions = DIM;
        s.embedding.openai.api_key = KEY.into();
    };
    let app = spawn_app_with(configure).await;
    let documents: Vec<Value> = [
        ("https://x.test/rust", "Rust ownership and borrowing rules keep memory safe without a garbage collector; the compiler checks them before the program ever runs."),
        ("https://x.test/bread", "Sourdough bread needs a starter, flour, water and salt, then a long cool rise overnight before baking in a very hot oven."),
    ]
    .iter()
    .map(|(url, text)| json!({"url": url, "content": text, "content_type": "text/plain"}))
    .collect();
    let (status, report) = app
        .post_json(
            Port::Core,
            "/v1/collections/hosted/documents?create=true",
            json!({"documents": documents}),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    let (_, results) = app
        .post_json(
            Port::Core,
            "/v1/search",
            json!({"query": "sourdough starter flour", "collection": "hosted"}),
        )
        .await;
    assert_eq!(
        results["hits"][0]["source_url"], "https://x.test/bread",
        "{results}"
    );
    let list: Value = app.get_json(Port::Core, "/v1/collections").await;
    assert_eq!(
        list["collections"][0]["embedder"],
        "openai:text-embedding-3-small:64"
    );

    // The same data with another model: refused clearly, not searched with mismatched vectors.
    let data = app.data.clone();
    app.shutdown().await.unwrap();
    let other = spawn_app_in(data, |_| {}).await;
    let (status, body) = other
        .post_json(
            Port::Core,
            "/v1/search",
            json!({"query": "bread", "collection": "hosted"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("built with openai:text-embedding-3-small:64 (64 dimensions)")
            && message.contains("minilm-l6-v2-int8 (384 dimensions)"),
        "{message}"
    );
}

#[tokio::test]
async fn a_hosted_model_failing_is_a_clear_502() {
    let log = Arc::new(Log::default());
    let addr = fake_openai(log.clone()).await;
    let app = spawn_app_with(move |s| {
        s.embedding.provider = EmbeddingProvider::Openai;
        s.embedding.openai.base_url = format!("http://{addr}/v1");
        s.embedding.openai.dimensions = DIM;
        s.embedding.openai.api_key = "wrong".into();
    })
    .await;
    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/collections/hosted/documents?create=true",
            json!({"documents": [{"url": "https://x.test/a", "content": "Enough text to pass the quality filter: rivers, lakes and oceans exchange water with the air through the water cycle, all year round.", "content_type": "text/plain"}]}),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        text(&body["error"]["message"]).contains("Incorrect API key"),
        "{body}"
    );
}
