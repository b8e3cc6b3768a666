//! The LLM generators against a local server that speaks the exact OpenAI chat completions and
//! Gemini generateContent wire formats: whole and streamed answers, the prompt they send, usage,
//! refusals, error bodies, and 429s with `Retry-After` (or Google's `RetryInfo`).

mod common;

use std::time::Duration;

use aurora::adapters::gemini::{GeminiChatConfig, GeminiGenerator};
use aurora::adapters::openai::{OpenAiChatConfig, OpenAiGenerator};
use aurora::adapters::remote::RetryPolicy;
use aurora_actors::ports::{
    GenerateError, GenerateRequest, Generation, Generator, Piece, Source, Usage,
};
use futures::StreamExt;
use serde_json::{Value, json};

use common::llm_server::{COMPLETION_TOKENS, KEY, LlmServer, PROMPT_TOKENS, Reply, spawn_llm};

const ANSWER: &str = "Cats sleep twelve to sixteen hours a day [1], more when old [2].";

fn request() -> GenerateRequest {
    let source = |n: usize, topic: &str| Source {
        n,
        url: format!("https://example.com/{topic}"),
        title: format!("All about {topic}"),
        heading: "Sleep".into(),
        text: format!("What {topic} do all day."),
        ..Source::default()
    };
    GenerateRequest {
        question: "How long do cats sleep?".into(),
        sources: vec![source(1, "cats"), source(2, "old-cats")],
        max_tokens: None,
        temperature: Some(0.5),
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        first_backoff: Duration::from_millis(10),
    }
}

fn openai(server: &LlmServer, key: &str) -> OpenAiGenerator {
    OpenAiGenerator::new(
        OpenAiChatConfig {
            base_url: server.openai_base(),
            model: "fake-model".into(),
            api_key: Some(key.into()),
            stream_usage: true,
            max_tokens: 256,
            temperature: 0.2,
        },
        policy(),
    )
    .expect("client")
}

fn gemini(server: &LlmServer, key: &str) -> GeminiGenerator {
    GeminiGenerator::new(
        GeminiChatConfig {
            base_url: server.gemini_base(),
            model: "gemini-fake".into(),
            api_key: key.into(),
            max_tokens: 256,
            temperature: 0.2,
        },
        policy(),
    )
    .expect("client")
}

/// Reads a stream to its end: the text pieces, the last usage, or the first error.
async fn collect(generator: &dyn Generator) -> Result<(Vec<String>, Usage), GenerateError> {
    let mut stream = generator.stream(request());
    let (mut texts, mut usage) = (Vec::new(), Usage::default());
    while let Some(piece) = stream.next().await {
        match piece? {
            Piece::Text(text) => texts.push(text),
            Piece::Usage(u) => usage = u,
        }
    }
    Ok((texts, usage))
}

const USAGE: Usage = Usage {
    prompt_tokens: PROMPT_TOKENS as u32,
    completion_tokens: COMPLETION_TOKENS as u32,
};

/// The whole answer, with its usage; then the request the server saw (path, body).
async fn answers_whole(generator: &impl Generator, server: &LlmServer) -> (String, Value) {
    let whole = generator.generate(request()).await.expect("answer");
    assert_eq!(
        whole,
        Generation {
            text: ANSWER.into(),
            usage: USAGE
        }
    );
    server.log.last()
}

#[tokio::test]
async fn openai_answers_whole_and_streamed_from_a_prompt_with_numbered_sources() {
    let server = spawn_llm(ANSWER).await;
    let generator = openai(&server, KEY);
    assert_eq!(generator.id(), "openai:fake-model");

    let (path, body) = answers_whole(&generator, &server).await;
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["stream"], false);
    assert_eq!(
        body["max_tokens"], 256,
        "the default when the request names none"
    );
    assert_eq!(body["temperature"], 0.5, "the request's own");
    assert_eq!(body["messages"][0]["role"], "system");
    assert!(
        body["messages"][0]["content"]
            .as_str()
            .expect("instructions")
            .contains("[1]")
    );
    let prompt = body["messages"][1]["content"].as_str().expect("prompt");
    assert!(prompt.contains("[1] All about cats — Sleep\nURL: https://example.com/cats"));
    assert!(prompt.contains("[2] All about old-cats"));
    assert!(prompt.ends_with("Question: How long do cats sleep?"));

    let (texts, usage) = collect(&generator).await.expect("streamed answer");
    assert!(texts.len() > 5, "token by token: {texts:?}");
    assert_eq!(texts.concat(), ANSWER);
    assert_eq!(usage, USAGE, "from the include_usage chunk");
    let (_, body) = server.log.last();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn openai_failures_are_clear_and_429s_are_retried_as_told() {
    let server = spawn_llm(ANSWER).await;

    let wrong = openai(&server, "sk-wrong").generate(request()).await;
    match wrong {
        Err(GenerateError::Service(message)) => {
            assert!(message.contains("401"), "{message}");
            assert!(message.contains("Incorrect API key provided"), "{message}");
        }
        other => panic!("expected a service error, got {other:?}"),
    }
    assert_eq!(server.log.count(), 1, "a 401 is not retried");

    let generator = openai(&server, KEY);
    let limited = json!({"error": {"message": "Rate limit reached for fake-model in organization org-x on tokens per min (TPM): Limit 30000, Used 30000.",
        "type": "tokens", "param": null, "code": "rate_limit_exceeded"}});
    // Retry-After 0: come back at once — retried, and the answer arrives.
    server
        .log
        .script([Reply::Status(429, limited.clone(), Some("0"))]);
    let before = server.log.count();
    let answer = generator
        .generate(request())
        .await
        .expect("answer after a retry");
    assert_eq!(answer.text, ANSWER);
    assert_eq!(server.log.count() - before, 2);
    // Retry-After beyond what Aurora waits: no retry, the delay handed on.
    server.log.script([Reply::Status(429, limited, Some("60"))]);
    let before = server.log.count();
    let limited = generator.generate(request()).await;
    assert_eq!(
        limited,
        Err(GenerateError::RateLimited(Some(Duration::from_secs(60))))
    );
    assert_eq!(server.log.count() - before, 1);

    // 5xx is retried; the streaming request too, before any token.
    let overloaded =
        json!({"error": {"message": "The server is overloaded", "type": "server_error"}});
    server.log.script([Reply::Status(503, overloaded, None)]);
    let (texts, _) = collect(&generator).await.expect("streamed after a retry");
    assert_eq!(texts.concat(), ANSWER);

    // The content filter, whole and streamed, is a refusal.
    let filtered = json!({"id": "x", "object": "chat.completion", "created": 1, "model": "fake-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": null},
            "finish_reason": "content_filter"}]});
    server.log.script([Reply::Body(filtered)]);
    assert!(matches!(
        generator.generate(request()).await,
        Err(GenerateError::Refused(_))
    ));
    let refusal = json!({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {"refusal": "I can't help with that."}, "finish_reason": null}]});
    server.log.script([Reply::Body(refusal)]);
    assert_eq!(
        collect(&generator).await,
        Err(GenerateError::Refused("I can't help with that.".into()))
    );
    // A server that fails mid-stream says so in an `error` chunk.
    let broken = json!({"error": {"message": "model crashed", "type": "server_error"}});
    server.log.script([Reply::Body(broken)]);
    match collect(&generator).await {
        Err(GenerateError::Service(message)) => assert!(message.contains("model crashed")),
        other => panic!("expected a service error, got {other:?}"),
    }
}

#[tokio::test]
async fn gemini_answers_whole_and_streamed_with_the_key_in_a_header() {
    let server = spawn_llm(ANSWER).await;
    let generator = gemini(&server, KEY);
    assert_eq!(generator.id(), "gemini:gemini-fake");

    let (path, body) = answers_whole(&generator, &server).await;
    assert_eq!(path, "/v1beta/models/gemini-fake:generateContent?");
    assert!(
        body["systemInstruction"]["parts"][0]["text"]
            .as_str()
            .expect("instructions")
            .contains("cite")
    );
    assert_eq!(body["contents"][0]["role"], "user");
    let prompt = body["contents"][0]["parts"][0]["text"]
        .as_str()
        .expect("prompt");
    assert!(prompt.contains("[2] All about old-cats — Sleep"));
    assert_eq!(
        body["generationConfig"],
        json!({"maxOutputTokens": 256, "temperature": 0.5})
    );

    let (texts, usage) = collect(&generator).await.expect("streamed answer");
    assert!(texts.len() > 5, "{texts:?}");
    assert_eq!(texts.concat(), ANSWER);
    assert_eq!(usage, USAGE, "the last event's usage metadata");
    let (path, _) = server.log.last();
    assert_eq!(
        path,
        "/v1beta/models/gemini-fake:streamGenerateContent?alt=sse"
    );

    match gemini(&server, "wrong").generate(request()).await {
        Err(GenerateError::Service(message)) => {
            assert!(message.contains("API key not valid"), "{message}")
        }
        other => panic!("expected a service error, got {other:?}"),
    }
}

#[tokio::test]
async fn gemini_blocks_are_refusals_and_quota_errors_wait_as_google_says() {
    let server = spawn_llm(ANSWER).await;
    let generator = gemini(&server, KEY);

    let blocked_prompt = json!({"promptFeedback": {"blockReason": "SAFETY",
        "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}});
    server.log.script([Reply::Body(blocked_prompt)]);
    match generator.generate(request()).await {
        Err(GenerateError::Refused(reason)) => assert!(reason.contains("SAFETY"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let withheld = json!({"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"},
        "finishReason": "RECITATION", "index": 0}]});
    server.log.script([Reply::Body(withheld)]);
    match collect(&generator).await {
        Err(GenerateError::Refused(reason)) => assert!(reason.contains("RECITATION"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Quota: 429 RESOURCE_EXHAUSTED with the delay in a RetryInfo detail, no header.
    let quota = |delay: &str| {
        json!({"error": {"code": 429, "message": "You exceeded your current quota, please check your plan and billing details.",
            "status": "RESOURCE_EXHAUSTED", "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}})
    };
    server.log.script([Reply::Status(429, quota("0s"), None)]);
    let before = server.log.count();
    let (texts, _) = collect(&generator).await.expect("streamed after a retry");
    assert_eq!(texts.concat(), ANSWER);
    assert_eq!(server.log.count() - before, 2);
    server.log.script([Reply::Status(429, quota("45s"), None)]);
    assert_eq!(
        generator.generate(request()).await,
        Err(GenerateError::RateLimited(Some(Duration::from_secs(45))))
    );
}

#[tokio::test]
async fn tokens_arrive_as_written_and_dropping_the_stream_hangs_up() {
    let server = spawn_llm(ANSWER).await;
    for generator in [
        Box::new(openai(&server, KEY)) as Box<dyn Generator>,
        Box::new(gemini(&server, KEY)),
    ] {
        server.log.script([Reply::Hang]);
        let before = server.log.hung_up.load(std::sync::atomic::Ordering::SeqCst);
        let mut stream = generator.stream(request());
        let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the first words come before the answer ends");
        assert_eq!(first, Some(Ok(Piece::Text("Cats ".into()))));
        drop(stream);
        for _ in 0..500 {
            if server.log.hung_up.load(std::sync::atomic::Ordering::SeqCst) > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            server.log.hung_up.load(std::sync::atomic::Ordering::SeqCst),
            before + 1,
            "{}: the connection closed",
            generator.id()
        );
    }
}
