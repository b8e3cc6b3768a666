//! The knowledge base over HTTP, with the real built-in model: collections, ingestion (idempotent,
//! replacing changed pages, filtering junk), hybrid search, persistence across restarts, and
//! ChromaDB — including ChromaDB going away and coming back.

use crate::common::text;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::site::spawn_site;
use crate::common::{Port, TestApp, service_url, spawn_app, spawn_app_in, spawn_app_with};

pub(crate) const ROOT: &str = "https://docs.example";

fn doc(path: &str, content_type: &str, content: &str) -> Value {
    json!({"url": format!("{ROOT}{path}"), "content_type": content_type, "content": content})
}

/// Five small documents on distinct subjects.
pub(crate) fn corpus() -> Vec<Value> {
    vec![
        doc(
            "/aurora",
            "text/markdown",
            "# Northern lights\n\nAuroras are caused by charged particles from the sun colliding with gases in the upper atmosphere. They are best seen near the magnetic poles on dark winter nights.",
        ),
        doc(
            "/bread",
            "text/html",
            "<html><head><title>Baking bread</title></head><body><nav>Home | Recipes</nav><main><h1>Sourdough</h1><p>Knead the dough for ten minutes, let it rise overnight in a cool place, then bake it at 230 degrees until the crust is deep brown.</p></main></body></html>",
        ),
        doc(
            "/python-json",
            "text/plain",
            "The json module serialises Python objects with json.dumps and parses JSON text back into objects with json.loads. Use indent=2 for pretty output.",
        ),
        doc(
            "/shutil",
            "text/markdown",
            "# shutil\n\n## Removing trees\n\nshutil.rmtree deletes a directory and everything inside it, recursively. Handle errors with the onexc callback.",
        ),
        doc(
            "/cats",
            "text/markdown",
            "# Cats\n\nCats sleep between twelve and sixteen hours a day, often curled up on a warm sofa or a sunny windowsill. Kittens and older cats sleep even longer.",
        ),
    ]
}

/// Ingests `documents` into `collection` (created if need be), which must succeed.
pub(crate) async fn ingest_ok(app: &TestApp, collection: &str, documents: Vec<Value>) {
    let (status, report) = ingest(app, collection, documents, "?create=true").await;
    assert_eq!(status, 200, "{report}");
}

async fn ingest(
    app: &TestApp,
    collection: &str,
    documents: Vec<Value>,
    query: &str,
) -> (u16, Value) {
    app.post_json(
        Port::Core,
        &format!("/v1/collections/{collection}/documents{query}"),
        json!({"documents": documents}),
    )
    .await
}

async fn search(app: &TestApp, body: Value) -> (u16, Value) {
    app.post_json(Port::Core, "/v1/search", body).await
}

fn top_url(results: &Value) -> &str {
    results["hits"][0]["source_url"]
        .as_str()
        .unwrap_or("<no hits>")
}

async fn create(app: &TestApp, name: &str) {
    let (status, body) = app
        .post_json(Port::Core, "/v1/collections", json!({"name": name}))
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn collections_have_a_lifecycle_over_http() {
    let app = spawn_app().await;
    create(&app, "handbook").await;
    let (status, body) = app
        .post_json(Port::Core, "/v1/collections", json!({"name": "handbook"}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let (status, body) = app
        .post_json(Port::Core, "/v1/collections", json!({"name": "no spaces!"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(text(&body["error"]["message"]).contains("invalid collection name"));

    let list: Value = app.get_json(Port::Core, "/v1/collections").await;
    assert_eq!(
        list["collections"],
        json!([{"name": "handbook", "embedder": "minilm-l6-v2-int8", "dimension": 384, "chunks": 0}])
    );
    let delete = |name: &'static str| {
        let app = &app;
        async move {
            let response = app
                .client
                .delete(app.url(Port::Core, &format!("/v1/collections/{name}")))
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(delete("handbook").await.0, 200);
    let (status, body) = delete("handbook").await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn ingested_documents_are_found_by_meaning_and_by_words() {
    let app = spawn_app().await;
    let (status, report) = ingest(&app, "docs", corpus(), "?create=true").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ingested"], 5);
    assert_eq!(report["skipped"], 0);
    assert_eq!(report["rejected"], json!([]));
    assert!(report["chunks"].as_u64().unwrap() >= 5);

    for (question, expected) in [
        // Paraphrases: no shared keywords with the answer.
        ("why does the sky glow green near the poles", "/aurora"),
        ("how long should I leave the dough to prove", "/bread"),
        ("delete a folder with all its contents", "/shutil"),
        // Exact identifiers: the lexical side.
        ("json.loads", "/python-json"),
        ("how many hours do cats sleep", "/cats"),
    ] {
        let (status, results) = search(
            &app,
            json!({"query": question, "collection": "docs", "k": 3}),
        )
        .await;
        assert_eq!(status, 200, "{results}");
        assert_eq!(
            top_url(&results),
            format!("{ROOT}{expected}"),
            "{question}: {results}"
        );
    }

    let (_, results) = search(
        &app,
        json!({"query": "sourdough", "collection": "docs", "k": 1}),
    )
    .await;
    let hit = &results["hits"][0];
    assert_eq!(
        hit["title"], "Baking bread",
        "HTML titles are extracted: {hit}"
    );
    assert_eq!(hit["heading"], "Sourdough");
    assert!(
        !hit["text"].as_str().unwrap().contains("Recipes"),
        "navigation was cleaned away"
    );
    assert_eq!(hit["chunk_index"], 0);
    assert!(hit["score"].as_f64().unwrap() > 0.0);

    // Filters restrict the candidates.
    let filter = json!({"source_url": {"$in": [format!("{ROOT}/cats"), format!("{ROOT}/bread")]}});
    let (_, results) = search(
        &app,
        json!({"query": "northern lights", "collection": "docs", "k": 5, "filter": filter}),
    )
    .await;
    let urls: Vec<&str> = results["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["source_url"].as_str().unwrap())
        .collect();
    assert!(
        !urls.is_empty()
            && urls
                .iter()
                .all(|u| u.ends_with("/cats") || u.ends_with("/bread")),
        "{urls:?}"
    );
}

#[tokio::test]
async fn reingesting_is_idempotent_and_changed_pages_replace_their_chunks() {
    let app = spawn_app().await;
    let long_section: String = (0..40)
        .map(|i| format!("Paragraph {i} explains the original release process in detail. "))
        .collect();
    let original = doc(
        "/release",
        "text/markdown",
        &format!("# Releases\n\n{long_section}\n\nThe codename is BLUEWHALE."),
    );
    let (_, first) = ingest(&app, "docs", vec![original.clone()], "?create=true").await;
    let chunks_before = first["chunks"].as_u64().unwrap();
    assert!(
        chunks_before >= 2,
        "long enough for several chunks: {first}"
    );

    let (_, again) = ingest(&app, "docs", vec![original], "").await;
    assert_eq!(
        (
            again["ingested"].as_u64(),
            again["skipped"].as_u64(),
            again["chunks"].as_u64()
        ),
        (Some(0), Some(1), Some(0))
    );

    let changed = doc(
        "/release",
        "text/markdown",
        "# Releases\n\nReleases now ship every Tuesday under the codename REDFOX, with a short changelog and signed artifacts for every platform.",
    );
    let (_, third) = ingest(&app, "docs", vec![changed], "").await;
    assert_eq!(
        (third["ingested"].as_u64(), third["chunks"].as_u64()),
        (Some(1), Some(1))
    );
    let list: Value = app.get_json(Port::Core, "/v1/collections").await;
    assert_eq!(
        list["collections"][0]["chunks"], 1,
        "no orphans of the longer old version"
    );
    let (_, results) = search(&app, json!({"query": "BLUEWHALE", "collection": "docs"})).await;
    assert!(
        results["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| !h["text"].as_str().unwrap().contains("BLUEWHALE"))
    );
    let (_, results) = search(
        &app,
        json!({"query": "REDFOX codename", "collection": "docs"}),
    )
    .await;
    assert!(text(&results["hits"][0]["text"]).contains("REDFOX"));
}

#[tokio::test]
async fn junk_is_rejected_with_reasons_and_counted() {
    let app = spawn_app().await;
    let links: String = (0..30)
        .map(|i| format!("- [Chapter {i}](https://x.test/{i})\n"))
        .collect();
    let (status, report) = ingest(
        &app,
        "docs",
        vec![
            doc("/short", "text/plain", "Too short."),
            doc(
                "/empty",
                "text/html",
                "<html><body><nav><a href='/'>Home</a></nav></body></html>",
            ),
            doc("/index", "text/markdown", &format!("# Contents\n\n{links}")),
            corpus().remove(0),
        ],
        "?create=true",
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ingested"], 1);
    let reasons: Vec<(String, String)> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["url"].as_str().unwrap().replace(ROOT, ""),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].0 == "/short" && reasons[0].1.starts_with("too short: 9 characters"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].1.starts_with("empty") || reasons[1].1.starts_with("too short"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].0 == "/index" && reasons[2].1.starts_with("mostly links"),
        "{reasons:?}"
    );
    let rejected = app
        .metric("aurora_ingest_rejected_total{reason=\"mostly_links\"}")
        .await;
    assert!(rejected.unwrap_or(0.0) >= 1.0);
}

#[tokio::test]
async fn scraped_pages_can_be_ingested_on_the_way() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/scrape",
            json!({"url": site.url("/article"), "formats": ["links"], "ingest": {"collection": "web", "create": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ingest"]["ingested"], 1, "{body}");
    assert!(
        body.get("markdown").is_none(),
        "markdown was stored, not returned: {body}"
    );
    let (_, results) = search(
        &app,
        json!({"query": "where can I see auroras", "collection": "web"}),
    )
    .await;
    assert_eq!(top_url(&results), site.url("/article"), "{results}");

    // Into a collection that does not exist (no create): 404, nothing made.
    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/scrape",
            json!({"url": site.url("/article"), "ingest": {"collection": "missing"}}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn bad_knowledge_requests_get_clear_4xx() {
    let app = spawn_app().await;
    ingest(&app, "docs", corpus(), "?create=true").await;
    let huge = "x".repeat(50 << 20);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/v1/collections/docs/documents",
            json!({"documents": []}),
            400,
            "`documents` is empty",
        ),
        (
            "/v1/collections/docs/documents",
            json!({"documents": [{"url": "https://a", "content": "x", "content_type": "application/pdf"}]}),
            400,
            "`documents[0].content_type`: unknown variant `application/pdf`",
        ),
        (
            "/v1/collections/docs/documents",
            json!({"documents": [{"url": "relative/path", "content": "x", "content_type": "text/plain"}]}),
            400,
            "not an absolute URL",
        ),
        (
            "/v1/collections/docs/documents",
            json!({"documents": [{"url": "https://a", "content_type": "text/plain"}]}),
            400,
            "missing field `content`",
        ),
        (
            "/v1/collections/nope/documents",
            json!({"documents": [doc("/a", "text/plain", "some text")]}),
            404,
            "collection `nope` does not exist",
        ),
        (
            "/v1/collections/docs/documents",
            json!({"documents": [doc("/big", "text/plain", &huge)]}),
            413,
            "larger than the 33554432-byte limit",
        ),
        (
            "/v1/search",
            json!({"query": "x", "collection": "docs", "k": 0}),
            400,
            "`k` must be between 1 and 100, got 0",
        ),
        (
            "/v1/search",
            json!({"query": "x", "collection": "docs", "k": 100000}),
            400,
            "`k` must be between 1 and 100",
        ),
        (
            "/v1/search",
            json!({"query": "x", "collection": "docs", "k": -1}),
            400,
            "`k`: invalid value",
        ),
        (
            "/v1/search",
            json!({"query": "x", "collection": "docs", "filter": {"author": "me"}}),
            400,
            "`filter`: unknown field `author`",
        ),
        (
            "/v1/search",
            json!({"query": "x", "collection": "docs", "filter": {"fetched_at": {"$gte": "soon"}}}),
            400,
            "needs an integer",
        ),
        (
            "/v1/search",
            json!({"query": "x", "collection": "docs", "filter": [1]}),
            400,
            "`filter`: expected an object",
        ),
        (
            "/v1/search",
            json!({"query": "   ", "collection": "docs"}),
            400,
            "`query` is empty",
        ),
        (
            "/v1/search",
            json!({"query": "x", "collection": "ghost"}),
            404,
            "collection `ghost` does not exist",
        ),
        (
            "/v1/search",
            json!({"query": "x"}),
            400,
            "missing field `collection`",
        ),
    ];
    for (path, body, status, says) in cases {
        let (got, answer) = app.post_json(Port::Core, path, body).await;
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{path}: {answer}");
        assert!(
            message.contains(says),
            "{path}: expected {says:?} in {message:?}"
        );
    }
    assert_eq!(app.get(Port::Core, "/health").await.status(), 200);
}

#[tokio::test]
async fn the_embedded_store_survives_a_restart() {
    let first = spawn_app().await;
    let data = first.data.clone();
    ingest(&first, "docs", corpus(), "?create=true").await;
    first.shutdown().await.unwrap();

    let second = spawn_app_in(data, |_| {}).await;
    let (status, results) = search(
        &second,
        json!({"query": "delete a folder with all its contents", "collection": "docs"}),
    )
    .await;
    assert_eq!(status, 200, "{results}");
    assert_eq!(top_url(&results), format!("{ROOT}/shutil"));
}

#[tokio::test]
async fn chroma_and_redis_back_the_same_behaviour() {
    let redis = service_url("AURORA_TEST_REDIS_URL");
    let chroma = service_url("AURORA_TEST_CHROMA_URL");
    let database = format!("db-{}", uuid::Uuid::new_v4().simple());
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let app = spawn_app_with(|s| {
        s.redis.url = redis;
        s.redis.key_prefix = prefix;
        s.chroma.url = chroma;
        s.chroma.database = database;
    })
    .await;
    let (status, report) = ingest(&app, "docs", corpus(), "?create=true").await;
    assert_eq!(
        (status, report["ingested"].as_u64()),
        (200, Some(5)),
        "{report}"
    );
    for (question, expected) in [
        ("delete a folder with all its contents", "/shutil"),
        ("json.loads", "/python-json"),
    ] {
        let (_, results) = search(
            &app,
            json!({"query": question, "collection": "docs", "k": 3}),
        )
        .await;
        assert_eq!(
            top_url(&results),
            format!("{ROOT}{expected}"),
            "{question}: {results}"
        );
    }
    // Embeddings were cached in Redis: ingesting the same texts elsewhere costs no inference.
    let (_, again) = ingest(&app, "docs2", corpus(), "?create=true").await;
    assert_eq!(again["ingested"], 5);
    assert!(
        app.metric("aurora_embedding_cache_total{outcome=\"hit\"}")
            .await
            .unwrap_or(0.0)
            >= 5.0
    );
}

/// A ChromaDB of this test's own, so it can be stopped and started again.
struct OwnChroma {
    process: tokio::process::Child,
    port: u16,
    path: std::path::PathBuf,
}

impl OwnChroma {
    async fn start(path: std::path::PathBuf, port: u16) -> Self {
        let bin = service_url("AURORA_TEST_CHROMA_BIN");
        let process = tokio::process::Command::new(bin)
            .args([
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--path",
            ])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chroma starts");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client
                .get(format!("http://127.0.0.1:{port}/api/v2/heartbeat"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Self {
                    process,
                    port,
                    path,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chroma did not start on {port}");
    }

    async fn stop(mut self) -> (std::path::PathBuf, u16) {
        let pid = self.process.id().expect("running").to_string();
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.process.wait()).await;
        (self.path, self.port)
    }
}

#[tokio::test]
async fn a_chroma_outage_fails_requests_clearly_and_aurora_recovers() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let data = tempfile::tempdir().unwrap();
    let chroma = OwnChroma::start(data.path().join("chroma"), port).await;
    let app = spawn_app_with(|s| s.chroma.url = format!("http://127.0.0.1:{port}")).await;
    let (status, report) = ingest(&app, "docs", corpus(), "?create=true").await;
    assert_eq!(status, 200, "{report}");

    let (path, port) = chroma.stop().await;
    let (status, body) = ingest(&app, "docs", vec![doc("/new", "text/plain", "A new document about glaciers melting in the spring sunshine, slowly and steadily, feeding rivers in the valleys below.")], "").await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("unavailable") && message.contains(&port.to_string()),
        "{message}"
    );
    let ready = app.get(Port::Core, "/ready").await;
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("chroma"));
    assert_eq!(
        app.get(Port::Core, "/health").await.status(),
        200,
        "Aurora itself stays up"
    );

    let _chroma = OwnChroma::start(path, port).await;
    app.wait_ready().await;
    let (status, report) = ingest(&app, "docs", vec![doc("/new", "text/plain", "A new document about glaciers melting in the spring sunshine, slowly and steadily, feeding rivers in the valleys below.")], "").await;
    assert_eq!(
        (status, report["ingested"].as_u64()),
        (200, Some(1)),
        "{report}"
    );
    let (_, results) = search(
        &app,
        json!({"query": "glaciers melting", "collection": "docs"}),
    )
    .await;
    assert_eq!(top_url(&results), format!("{ROOT}/new"), "{results}");
}
