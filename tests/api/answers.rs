//! `POST /v1/query` with the built-in extractive answerer and the real embedding model: cited
//! answers from an ingested corpus, "I don't know" for what it does not hold, deep dives into
//! pages not yet ingested, and bad input.

use crate::common::text;
use serde_json::{Value, json};

use crate::common::site::spawn_site;
use crate::common::{Port, TestApp, spawn_app, spawn_app_with};
use crate::knowledge::{ROOT, corpus, ingest_ok};

async fn ask(app: &TestApp, body: Value) -> (u16, Value) {
    app.post_json(Port::Core, "/v1/query", body).await
}

/// The citation of `url` in `answer`, checking the text cites it by number.
fn cited<'a>(answer: &'a Value, url: &str) -> &'a Value {
    let citation = answer["citations"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["source_url"] == url))
        .unwrap_or_else(|| panic!("{url} not cited: {answer:#}"));
    let n = citation["n"].as_u64().expect("citation number");
    assert!(
        answer["answer"]
            .as_str()
            .expect("answer text")
            .contains(&format!("[{n}]")),
        "{answer:#}"
    );
    citation
}

#[tokio::test]
async fn answers_cite_the_page_that_holds_the_answer_and_decline_the_rest() {
    let app = spawn_app().await;
    ingest_ok(&app, "docs", corpus()).await;

    for (question, page, words) in [
        (
            "How many hours a day do cats sleep?",
            "/cats",
            "twelve and sixteen hours",
        ),
        (
            "How do I delete a directory recursively?",
            "/shutil",
            "shutil.rmtree",
        ),
        ("What causes auroras?", "/aurora", "charged particles"),
    ] {
        let (status, answer) = ask(&app, json!({"question": question, "collection": "docs"})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["answered"], true, "{question}: {answer:#}");
        assert!(
            text(&answer["answer"]).contains(words),
            "{question}: {answer:#}"
        );
        let citation = cited(&answer, &format!("{ROOT}{page}"));
        assert!(citation["snippet"].as_str().unwrap().len() > 20);
        assert!(citation["title"].is_string() && citation["heading"].is_string());
        // Every citation in the text is listed, and every listed one is in the text.
        let text = answer["answer"].as_str().unwrap();
        for c in answer["citations"].as_array().unwrap() {
            assert!(text.contains(&format!("[{}]", c["n"])), "{answer:#}");
        }
        assert_eq!(answer["generator"], "extractive");
        assert!(answer["usage"]["total_tokens"].as_u64().unwrap() > 0);
        assert!(answer["timings"]["total_ms"].as_f64().unwrap() > 0.0);
    }

    let (status, answer) = ask(
        &app,
        json!({"question": "What is the capital city of Mongolia?", "collection": "docs"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["answered"], false, "{answer:#}");
    assert_eq!(answer["citations"], json!([]));
    assert!(
        answer["answer"]
            .as_str()
            .unwrap()
            .starts_with("I don't know")
    );

    let answered = app
        .metric(r#"aurora_answers_total{outcome="answered"}"#)
        .await;
    assert!(answered.is_some_and(|n| n >= 3.0), "{answered:?}");
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_question_naming_what_the_collection_never_mentions_is_declined_by_name() {
    // The gate judges collections of at least this many chunks: every collection here.
    let app = spawn_app_with(|s| s.answer.unheard_min_chunks = 1).await;
    ingest_ok(&app, "docs", corpus()).await;
    let (status, answer) = ask(
        &app,
        json!({"question": "How do I delete a Kubernetes directory recursively?", "collection": "docs"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["answered"], false, "{answer:#}");
    assert_eq!(answer["citations"], json!([]));
    assert_eq!(
        answer["answer"], "I don't know: the sources never mention “kubernetes”.",
        "{answer:#}"
    );
    let declined = app.metric("aurora_answer_unheard_words_total").await;
    assert!(declined.is_some_and(|n| n >= 1.0), "{declined:?}");

    // The same question without the unknown word is answered from the page that holds it.
    let (status, answer) = ask(
        &app,
        json!({"question": "How do I delete a directory recursively?", "collection": "docs"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["answered"], true, "{answer:#}");
    cited(&answer, &format!("{ROOT}/shutil"));
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_deep_dive_reads_the_pages_first_then_answers_from_them() {
    let site = spawn_site().await;
    let app = spawn_app().await;
    let question = json!({"question": "When do auroras appear?", "collection": "dive"});
    let (status, before) = ask(&app, question.clone()).await;
    assert_eq!(status, 404, "nothing ingested yet: {before}");

    let mut dive = question.clone();
    dive["urls"] = json!([site.url("/article"), site.url("/missing")]);
    let (status, answer) = ask(&app, dive).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["answered"], true, "{answer:#}");
    assert!(
        answer["answer"]
            .as_str()
            .expect("answer text")
            .contains("charged particles"),
        "{answer:#}"
    );
    cited(&answer, &site.url("/article"));
    let pages = answer["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2);
    assert!(pages[0].get("error").is_none(), "{pages:?}");
    assert!(text(&pages[1]["error"]).contains("404"), "{pages:?}");

    // The page stays in the collection: the same question now needs no URLs.
    let (status, again) = ask(&app, question).await;
    assert_eq!(status, 200);
    cited(&again, &site.url("/article"));
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn bad_questions_get_clear_4xx() {
    let app = spawn_app().await;
    let long = "why ".repeat(1000);
    // `{"question": "q", "collection": "docs"}` with `fields` on top.
    let q = |fields: Value| {
        let mut body = json!({"question": "q", "collection": "docs"});
        for (key, value) in fields.as_object().into_iter().flatten() {
            body[key] = value.clone();
        }
        body
    };
    for (body, status, needle) in [
        (q(json!({"question": "  "})), 400, "`question` is empty"),
        (q(json!({"question": long})), 400, "longer than"),
        (q(json!({"k": 0})), 400, "`k` must be between"),
        (q(json!({"k": 500})), 400, "`k` must be between"),
        (q(json!({"stream": "yes"})), 400, "stream"),
        (q(json!({"temperature": 9})), 400, "temperature"),
        (q(json!({"bogus": 1})), 400, "bogus"),
        (json!({"question": "q"}), 400, "collection"),
        (q(json!({"collection": "Bad Name!"})), 400, "`collection`"),
        (q(json!({"urls": ["ftp://x"]})), 400, "`urls[0]`"),
        (q(json!({"collection": "nope"})), 404, "nope"),
    ] {
        let (code, answer) = ask(&app, body.clone()).await;
        assert_eq!(code, status, "{body} → {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{body}: {message}");
    }
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_repeated_question_is_served_from_the_cache_until_the_collection_changes() {
    let app = spawn_app().await;
    ingest_ok(&app, "cache", corpus()).await;
    let question = |text: &str| json!({"question": text, "collection": "cache"});

    let (_, first) = ask(&app, question("How many hours a day do cats sleep?")).await;
    assert_eq!(first["cached"], false, "{first:#}");
    let (_, again) = ask(&app, question("  how many hours a day do cats SLEEP ")).await;
    assert_eq!(
        again["cached"], true,
        "the same question, normalised: {again:#}"
    );
    assert_eq!(again["answer"], first["answer"]);
    assert_eq!(again["citations"], first["citations"]);
    let mut fewer = question("How many hours a day do cats sleep?");
    fewer["k"] = json!(1);
    let (_, other) = ask(&app, fewer).await;
    assert_eq!(other["cached"], false, "another k is another question");

    // New knowledge in the collection: the cached answer is stale.
    ingest_ok(&app, "cache", vec![json!({"url": format!("{ROOT}/kittens"), "content_type": "text/plain",
        "content": "Kittens sleep even more than adult cats do: newborn kittens sleep about twenty hours a day, waking mostly to feed. Older cats also nap for longer stretches than young adults."})]).await;
    let (_, after) = ask(&app, question("How many hours a day do cats sleep?")).await;
    assert_eq!(after["cached"], false, "{after:#}");
    let (_, repeat) = ask(&app, question("How many hours a day do cats sleep?")).await;
    assert_eq!(repeat["cached"], true);

    let hits = app
        .metric(r#"aurora_answer_cache_total{outcome="hit"}"#)
        .await;
    assert!(hits.is_some_and(|n| n >= 2.0), "{hits:?}");
    app.shutdown().await.expect("clean shutdown");
}
