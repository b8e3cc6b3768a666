//! Answers written by an LLM (the OpenAI-compatible backend, served by a local server that speaks
//! its exact wire format): cited answers over the query API whole and streamed as server-sent
//! events, citations to sources that were not given dropped, a client hanging up cancelling the
//! generation upstream, and the LLM's rate limiting handed on as 429 + Retry-After.

use serde_json::{Value, json};

use crate::common::llm_server::{LlmServer, Reply, app_answering_with, spawn_llm};
use crate::common::{Port, TestApp};
use crate::knowledge::{ROOT, corpus, ingest_ok};

/// Cites source 1, and a source 7 that is never given.
const ANSWER: &str =
    "Cats sleep between twelve and sixteen hours a day [1]. Kittens sleep more [7].";

async fn app_over(llm: &LlmServer) -> TestApp {
    let app = app_answering_with(llm).await;
    ingest_ok(&app, "docs", corpus()).await;
    app
}

/// The events of a server-sent event stream, as (event name, JSON data).
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.strip_prefix(' ').unwrap_or(d));
                }
            }
            let data = serde_json::from_str(&data).ok()?;
            Some((name, data))
        })
        .collect()
}

#[tokio::test]
async fn an_llm_answer_is_cited_whole_and_streamed_token_by_token() {
    let llm = spawn_llm(ANSWER).await;
    let app = app_over(&llm).await;

    let question = json!({"question": "How many hours a day do cats sleep?", "collection": "docs"});
    let (status, answer) = app.post_json(Port::Core, "/v1/query", question).await;
    assert_eq!(status, 200, "{answer}");
    let expected = "Cats sleep between twelve and sixteen hours a day [1]. Kittens sleep more.";
    assert_eq!(answer["answer"], expected, "[7] was never given: dropped");
    assert_eq!(answer["generator"], "openai:fake-model");
    assert_eq!(answer["answered"], true);
    assert_eq!(answer["usage"]["total_tokens"], 338);
    let citations = answer["citations"].as_array().expect("citations");
    assert_eq!(citations.len(), 1, "{answer:#}");
    assert_eq!(citations[0]["n"], 1);
    assert_eq!(citations[0]["source_url"], format!("{ROOT}/cats"));
    // The prompt held the numbered sources, the cats page first.
    let (_, body) = llm.log.last();
    let prompt = body["messages"][1]["content"].as_str().expect("prompt");
    assert!(prompt.contains(&format!("URL: {ROOT}/cats")), "{prompt}");

    let streamed = json!({"question": "How long do cats sleep each day?", "collection": "docs",
        "stream": true});
    let response = app
        .post_raw(Port::Core, "/v1/query", streamed.to_string())
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("type"),
        "text/event-stream"
    );
    let events = events(&response.text().await.expect("stream"));
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"sources"), "{names:?}");
    assert_eq!(
        &names[names.len() - 2..],
        ["citations", "done"],
        "{names:?}"
    );
    let tokens: Vec<&str> = events
        .iter()
        .filter(|(name, _)| name == "token")
        .map(|(_, data)| data["text"].as_str().expect("text"))
        .collect();
    assert!(tokens.len() > 5, "as the model writes: {tokens:?}");
    assert_eq!(tokens.concat(), expected);
    let done = &events[events.len() - 1].1;
    assert_eq!(done["answer"], expected);
    assert_eq!(done["citations"], events[events.len() - 2].1);
    assert_eq!(done["cached"], false);
    assert_eq!(
        llm.log.last().1["stream"],
        true,
        "streamed from the model too"
    );
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_client_that_hangs_up_cancels_the_generation() {
    let llm = spawn_llm(ANSWER).await;
    let app = app_over(&llm).await;
    llm.log.script([Reply::Hang]);

    let question = json!({"question": "How many hours a day do cats sleep?", "collection": "docs",
        "stream": true});
    let mut response = app
        .post_raw(Port::Core, "/v1/query", question.to_string())
        .await;
    // Read until the model's first words arrive, then hang up.
    let mut seen = String::new();
    while !events(&seen).iter().any(|(name, _)| name == "token") {
        let chunk = response.chunk().await.expect("read").expect("more stream");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);

    cancelled_at_least_once(&app).await;
    wait_for_hang_ups(&llm, 1).await;
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_client_that_gives_up_waiting_cancels_the_generation() {
    let llm = spawn_llm(ANSWER).await;
    let app = app_over(&llm).await;
    llm.log.script([Reply::Hang]);

    let question = json!({"question": "How many hours a day do cats sleep?", "collection": "docs"});
    let asked = app
        .client
        .post(app.url(Port::Core, "/v1/query"))
        .json(&question)
        .timeout(std::time::Duration::from_millis(500))
        .send()
        .await;
    assert!(
        asked.is_err_and(|e| e.is_timeout()),
        "the model never answers"
    );

    cancelled_at_least_once(&app).await;
    wait_for_hang_ups(&llm, 1).await;
    app.shutdown().await.expect("clean shutdown");
}

/// The cancel is counted (the series is process-wide: other tests may add to it).
async fn cancelled_at_least_once(app: &TestApp) {
    let series = r#"aurora_answers_total{outcome="cancelled"}"#;
    for _ in 0..500 {
        if app.metric(series).await.is_some_and(|n| n >= 1.0) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{series} never counted");
}

/// The model's server saw Aurora hang up `expected` times (its own count, per test).
async fn wait_for_hang_ups(llm: &LlmServer, expected: usize) {
    let seen = || llm.log.hung_up.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..500 {
        if seen() == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(seen(), expected, "Aurora stopped waiting for the model");
}

#[tokio::test]
async fn a_rate_limited_llm_is_a_429_with_retry_after() {
    let llm = spawn_llm(ANSWER).await;
    let app = app_over(&llm).await;
    let limited = json!({"error": {"message": "Rate limit reached for fake-model", "type": "requests",
        "param": null, "code": "rate_limit_exceeded"}});
    llm.log.script([Reply::Status(429, limited, Some("42"))]);

    let question = json!({"question": "How many hours a day do cats sleep?", "collection": "docs"});
    let response = app
        .post_raw(Port::Core, "/v1/query", question.to_string())
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "42");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    app.shutdown().await.expect("clean shutdown");
}
