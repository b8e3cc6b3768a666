//! The OpenAI-compatible chat endpoint, driven by the unmodified `openai` Python client library
//! (from the test venv: `AURORA_TEST_PYTHON`), streaming and not; plus its errors and model list.

use serde_json::{Value, json};

use aurora_actors::session::Role;

use crate::common::{Port, TestApp, create_key, service_url, spawn_app};
use crate::knowledge::{ROOT, corpus, ingest_ok};

/// Runs `script` with the venv's Python; the core API's base URL is `sys.argv[1]` and a reader's
/// API key `sys.argv[2]` (how an OpenAI client authenticates). Returns the JSON the script
/// prints. On a thread of its own: the app under test shares this runtime.
async fn python(app: &TestApp, script: &'static str) -> Value {
    let python = service_url("AURORA_TEST_PYTHON");
    let base = format!("{}/v1", app.core);
    let key = create_key(&app.handles, "openai-client", Role::Reader).await;
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(base)
            .arg(key)
            .output()
    })
    .await
    .expect("python thread")
    .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

const CLIENT: &str = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key=sys.argv[2])
question = [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Tell me about cats."},
            {"role": "assistant", "content": "Cats are small pets."},
            {"role": "user", "content": "How many hours a day do they sleep?"}]
plain = client.chat.completions.create(model="aurora:docs", messages=question, temperature=0.2)
stream = client.chat.completions.create(model="aurora:docs", messages=question, stream=True,
                                        stream_options={"include_usage": True})
pieces, finish, usage = [], None, None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage.total_tokens
    for choice in chunk.choices:
        pieces.append(choice.delta.content or "")
        finish = choice.finish_reason or finish
models = [m.id for m in client.models.list()]
try:
    client.chat.completions.create(model="gpt-4o", messages=question)
    missing = None
except Exception as e:
    missing = {"status": e.status_code, "type": type(e).__name__}
print(json.dumps({
    "content": plain.choices[0].message.content,
    "finish": plain.choices[0].finish_reason,
    "object": plain.object,
    "aurora": plain.model_extra.get("aurora"),
    "usage": plain.usage.total_tokens,
    "streamed": "".join(pieces),
    "stream_finish": finish,
    "stream_usage": usage,
    "models": models,
    "missing": missing,
}))
"#;

#[tokio::test]
async fn the_openai_client_library_chats_with_a_collection() {
    let app = spawn_app().await;
    ingest_ok(&app, "docs", corpus()).await;

    let seen = python(&app, CLIENT).await;
    let content = seen["content"].as_str().expect("content");
    assert!(content.contains("twelve and sixteen hours"), "{seen:#}");
    // Citations are Markdown links in the text, and listed in the `aurora` extension.
    assert!(content.contains(&format!("]]({ROOT}/cats)")), "{content}");
    assert_eq!(
        seen["aurora"]["citations"][0]["source_url"],
        format!("{ROOT}/cats")
    );
    assert_eq!(seen["finish"], "stop");
    assert_eq!(seen["object"], "chat.completion");
    assert!(seen["usage"].as_u64().unwrap_or(0) > 0);
    assert_eq!(seen["streamed"], seen["content"], "streaming says the same");
    assert_eq!(seen["stream_finish"], "stop");
    assert_eq!(seen["stream_usage"], seen["usage"]);
    assert_eq!(seen["models"], json!(["aurora", "aurora:docs"]));
    assert_eq!(
        seen["missing"],
        json!({"status": 404, "type": "NotFoundError"})
    );
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn bad_chat_requests_get_openai_errors() {
    let app = spawn_app().await;
    let user = json!([{"role": "user", "content": "hi"}]);
    for (body, status, needle) in [
        (
            json!({"model": "aurora", "messages": []}),
            400,
            "`messages`",
        ),
        (
            json!({"model": "aurora", "messages": [{"role": "system", "content": "x"}]}),
            400,
            "no user message",
        ),
        (
            json!({"model": "aurora", "messages": [{"role": "robot", "content": "x"}]}),
            400,
            "`messages[0].role`",
        ),
        (
            json!({"model": "aurora", "messages": user, "n": 3}),
            400,
            "`n`",
        ),
        (
            json!({"model": "aurora", "messages": user, "tools": []}),
            400,
            "`tools`",
        ),
        (
            json!({"model": "aurora", "messages": user, "logit_bias": {}}),
            400,
            "logit_bias",
        ),
        (json!({"model": "llama3", "messages": user}), 404, "llama3"),
        (
            json!({"model": "aurora:Bad Name", "messages": user}),
            400,
            "`model`",
        ),
        (
            json!({"model": "aurora:nope", "messages": user}),
            404,
            "nope",
        ),
    ] {
        let (code, answer) = app
            .post_json(Port::Core, "/v1/chat/completions", body.clone())
            .await;
        assert_eq!(code, status, "{body} → {answer}");
        let error = &answer["error"];
        assert!(
            error["type"].is_string() && error["code"].is_string(),
            "{answer}"
        );
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{body}: {message}");
    }
    app.shutdown().await.expect("clean shutdown");
}
