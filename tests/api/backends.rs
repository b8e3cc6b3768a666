//! `/ready` against the real Redis and ChromaDB that `scripts/test` starts, and against backends
//! that are down.

use crate::common::text;
use crate::common::{Port, service_url, spawn_app_with};

#[tokio::test]
async fn ready_when_configured_backends_answer() {
    let redis = service_url("AURORA_TEST_REDIS_URL");
    let chroma = service_url("AURORA_TEST_CHROMA_URL");
    let app = spawn_app_with(|s| {
        s.redis.url = redis;
        s.chroma.url = chroma;
    })
    .await;
    let response = app.get(Port::Core, "/ready").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    let names: Vec<&str> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "actor:session",
            "actor:router",
            "actor:scraper",
            "actor:browser",
            "actor:ingest",
            "actor:rag",
            "actor:crawler",
            "crawler:consumer",
            "redis",
            "chroma"
        ]
    );
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn not_ready_when_a_backend_is_down() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let app = spawn_app_with(|s| {
        s.redis.url = format!("redis://127.0.0.1:{closed}");
        s.chroma.url = format!("http://127.0.0.1:{closed}");
    })
    .await;
    let response = app.get(Port::Crawler, "/ready").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["status"], "not_ready");
    let backends: Vec<&serde_json::Value> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "redis" || c["name"] == "chroma")
        .collect();
    assert_eq!(backends.len(), 2);
    for check in backends {
        assert_eq!(check["ok"], false, "{check}");
        assert!(text(&check["detail"]).contains("127.0.0.1"), "{check}");
    }
    // Liveness is about the process, not its backends.
    assert_eq!(app.get(Port::Crawler, "/health").await.status(), 200);
}
