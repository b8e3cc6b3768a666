//! Request ids, Prometheus metrics (checked by promtool) and the OpenAPI documents.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::site::spawn_site;
use crate::common::{Port, spawn_app};

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let given = app
        .client
        .get(app.url(Port::Core, "/health"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "client-chosen-42");

    // Generated when absent — on errors and unknown routes too — and unique.
    let a = app.get(Port::Crawler, "/no/such/route").await;
    let b = app.get(Port::Crawler, "/no/such/route").await;
    assert_eq!(a.status(), 404);
    let (a, b) = (&a.headers()["x-request-id"], &b.headers()["x-request-id"]);
    assert_eq!(a.len(), 36, "a UUID: {a:?}");
    assert_ne!(a, b);

    // An unsafe one (spaces, too long) is replaced rather than echoed into logs.
    let odd = app
        .client
        .get(app.url(Port::Core, "/health"))
        .header("x-request-id", "has spaces in it")
        .send()
        .await
        .unwrap();
    assert_ne!(odd.headers()["x-request-id"], "has spaces in it");
}

#[tokio::test]
async fn metrics_pass_promtool() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    // Some traffic first, so counters and histograms have series.
    let (status, _) = app.scrape(json!({"url": site.url("/article")})).await;
    assert_eq!(status, 200);
    app.post_raw(Port::Core, "/v1/scrape", "{").await;
    app.get(Port::Core, "/nope").await;

    for port in [Port::Core, Port::Crawler] {
        let response = app.get(port, "/metrics").await;
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let text = response.text().await.unwrap();
        for series in [
            "aurora_http_requests_total{",
            "aurora_http_request_duration_seconds_bucket{",
            "aurora_scrapes_total{outcome=\"ok\"}",
            "aurora_scrape_fetch_duration_seconds_bucket{",
            "aurora_actor_restarts_total{actor=\"router\"}",
            "aurora_build_info{",
        ] {
            assert!(text.contains(series), "{series} missing from /metrics");
        }
        assert!(
            text.contains("route=\"unmatched\""),
            "unknown paths share one label value"
        );
        assert!(!text.contains("/nope"), "raw paths never become labels");

        let mut promtool = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool (Debian package prometheus) is installed by scripts/setup");
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = promtool.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn openapi_documents_every_route_of_each_port() {
    let app = spawn_app().await;
    for (port, routes) in [
        (Port::Core, aurora::http::core::ROUTES),
        (Port::Crawler, aurora::http::crawler::ROUTES),
    ] {
        let text = app.get(port, "/openapi.json").await.text().await.unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{port:?}"
        );
        let documented: BTreeSet<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // The API's routes; the web interface's pages are not part of it.
        let served: BTreeSet<&str> = routes
            .iter()
            .filter(|r| r.kind == aurora::http::gate::Kind::Api)
            .map(|r| r.path)
            .filter(|r| *r != "/openapi.json")
            .collect();
        assert_eq!(
            documented, served,
            "{port:?}: OpenAPI and the route table disagree"
        );
        let scrape = &doc["paths"]["/v1/scrape"]["post"];
        assert!(scrape["requestBody"].is_object(), "{port:?}");
        for status in ["200", "400", "403", "413", "502", "504"] {
            assert!(scrape["responses"][status].is_object(), "{port:?} {status}");
        }
    }
}
