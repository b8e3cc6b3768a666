//! Webhooks and idempotency keys of crawl and batch jobs, against a real receiver on localhost:
//! Firecrawl's payloads, the event filter, signatures, retries of failed deliveries, ordering, and
//! `x-idempotency-key` answering 409 on reuse.

use crate::common::text;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::common::crawl_site::spawn_crawl_site;
use crate::common::trap::Trap;
use crate::common::webhook_sink::{Received, spawn_webhook_sink};
use crate::common::{Port, TestApp, spawn_app_with};
use crate::crawl::{all_documents, finished, start};

const SECRET: &str = "shh-webhook-secret";

async fn app() -> TestApp {
    spawn_app_with(|s| {
        s.crawler.per_host_rps = 0.0;
        s.crawler.webhook_retry_delays_ms = vec![50, 100, 200];
        s.crawler.webhook_secret = SECRET.to_string();
    })
    .await
}

fn kind(r: &Received) -> &str {
    r.body["type"].as_str().unwrap_or_default()
}

fn webhook_id(r: &Received) -> String {
    r.body["webhookId"].as_str().unwrap_or_default().to_string()
}

/// Deliveries by webhookId, each with the indexes of its attempts in arrival order.
fn attempts(received: &[Received]) -> BTreeMap<String, Vec<usize>> {
    let mut by_id: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in received.iter().enumerate() {
        by_id.entry(webhook_id(r)).or_default().push(i);
    }
    by_id
}

#[tokio::test]
async fn a_crawl_reports_each_step_to_its_webhook_and_failed_deliveries_are_retried() {
    let site = spawn_crawl_site(None).await;
    // The first three deliveries fail: `started` among them.
    let sink = spawn_webhook_sink(3).await;
    let app = app().await;
    let id = start(
        &app,
        json!({
            "url": site.url("/"),
            "limit": 12,
            "webhook": {
                "url": sink.url(),
                "headers": {"x-receiver-token": "t0k"},
                "metadata": {"run": 7, "who": "test"},
                "events": ["started", "page", "completed", "failed"]
            }
        }),
    )
    .await;
    let status = finished(&app, &id).await;
    assert_eq!(status["status"], "completed");
    let (documents, _) = all_documents(&app, &id).await;
    assert_eq!(documents.len(), 12);

    // Done when every delivery has been taken once.
    let received = sink
        .wait_for("every delivery accepted", |received| {
            let by_id = attempts(received);
            received.iter().any(|r| kind(r) == "crawl.completed")
                && by_id
                    .values()
                    .all(|tries| tries.iter().any(|&i| received[i].accepted))
        })
        .await;
    let by_id = attempts(&received);
    assert_eq!(
        received.len(),
        by_id.len() + 3,
        "the three refused deliveries were each tried again, nothing else twice"
    );
    for tries in by_id.values() {
        let bodies: BTreeSet<&[u8]> = tries.iter().map(|&i| received[i].raw.as_slice()).collect();
        assert_eq!(
            bodies.len(),
            1,
            "a retry sends the same body, webhookId included"
        );
    }

    for r in &received {
        assert_eq!(r.body["id"], id.as_str());
        assert_eq!(r.body["metadata"], json!({"run": 7, "who": "test"}));
        assert!(r.body["data"].is_array());
        assert_eq!(r.headers["x-receiver-token"], "t0k");
        assert_eq!(r.headers["content-type"], "application/json");
        let signature = r.headers["x-firecrawl-signature"].to_str().unwrap();
        assert_eq!(
            signature,
            aurora_actors::crawler_pool::webhook::sign(SECRET, &r.raw)
        );
    }
    let kinds: Vec<&str> = by_id.values().map(|t| kind(&received[t[0]])).collect();
    let count = |k: &str| kinds.iter().filter(|x| **x == k).count();
    assert_eq!(
        (
            count("crawl.started"),
            count("crawl.page"),
            count("crawl.completed")
        ),
        (1, 12, 1),
        "{kinds:?}"
    );

    // `started` was the first thing sent, `completed` followed every page's first attempt.
    assert_eq!(kind(&received[0]), "crawl.started");
    let first_of = |k: &str| -> Vec<usize> {
        by_id
            .values()
            .filter(|t| kind(&received[t[0]]) == k)
            .map(|t| t[0])
            .collect()
    };
    let completed = first_of("crawl.completed")[0];
    assert!(first_of("crawl.page").iter().all(|&p| p < completed));
    let done = &received[completed].body;
    assert_eq!(done["success"], true);
    assert_eq!(done["data"], json!([]));

    // Each page event carries the document the status route returns.
    let pushed: BTreeSet<String> = received
        .iter()
        .filter(|r| kind(r) == "crawl.page")
        .map(|r| {
            assert_eq!(r.body["success"], true);
            let data = r.body["data"].as_array().unwrap();
            assert_eq!(data.len(), 1);
            serde_json::to_string(&data[0]).unwrap()
        })
        .collect();
    let polled: BTreeSet<String> = documents
        .iter()
        .map(|d| serde_json::to_string(d).unwrap())
        .collect();
    assert_eq!(pushed, polled);

    let delivered = app
        .metric(r#"aurora_webhook_deliveries_total{event="page",outcome="delivered"}"#)
        .await;
    // The recorder is shared by every test of this binary: at least this job's pages.
    assert!(delivered.is_some_and(|n| n >= 12.0), "{delivered:?}");
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_batch_sends_only_the_events_asked_for_with_failed_pages_marked() {
    let site = spawn_crawl_site(None).await;
    let sink = spawn_webhook_sink(0).await;
    let app = app().await;
    let (code, started) = app
        .post_json(
            Port::Crawler,
            "/v2/batch/scrape",
            json!({
                "urls": [site.url("/docs/s1/p1.html"), site.url("/broken")],
                "webhook": {"url": sink.url(), "events": ["page", "completed"]}
            }),
        )
        .await;
    assert_eq!(code, 200, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    finished(&app, &id).await;
    let received = sink
        .wait_for("batch_scrape.completed", |r| {
            r.iter().any(|r| kind(r) == "batch_scrape.completed")
        })
        .await;
    let kinds: BTreeSet<&str> = received.iter().map(kind).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["batch_scrape.page", "batch_scrape.completed"]),
        "no `started`: it was not asked for"
    );
    let pages: Vec<&Value> = received
        .iter()
        .filter(|r| kind(r) == "batch_scrape.page")
        .map(|r| &r.body)
        .collect();
    assert_eq!(pages.len(), 2);
    let failed = pages
        .iter()
        .find(|p| p["success"] == false)
        .expect("the broken page is reported");
    assert!(text(&failed["error"]).contains("500"), "{failed}");
    assert_eq!(failed["data"][0]["metadata"]["url"], site.url("/broken"));
    assert_eq!(received[0].body["metadata"], json!({}));
    assert!(
        received[0].headers.get("x-firecrawl-signature").is_some(),
        "signed with the configured secret"
    );
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn bad_webhooks_are_refused_and_start_nothing() {
    let (site, trap) = (spawn_crawl_site(None).await, Trap::spawn().await);
    let app = app().await;
    let url = site.url("/");
    for (webhook, needle) in [
        (json!("ftp://example.com/hook"), "`webhook.url`"),
        (json!({"headers": {}}), "missing field `url`"),
        (
            json!({"url": "http://127.0.0.1:9/h", "events": ["page", "done"]}),
            "unknown event `done`",
        ),
        (
            json!({"url": "http://127.0.0.1:9/h", "headers": {"bad name": "x"}}),
            "`webhook.headers`",
        ),
        (
            json!({"url": "http://127.0.0.1:9/h", "secret": "x"}),
            "unknown field `secret`",
        ),
        (
            json!({"url": trap.url("/hook")}),
            "`webhook.url` is refused",
        ),
    ] {
        for path in ["/v1/crawl", "/v1/batch/scrape"] {
            let body = match path {
                "/v1/crawl" => json!({"url": url, "webhook": webhook}),
                _ => json!({"urls": [url], "webhook": webhook}),
            };
            let (code, answer) = app.post_json(Port::Crawler, path, body).await;
            assert_eq!(code, 400, "{path} {webhook} → {answer}");
            let error = answer["error"].as_str().unwrap_or_default();
            assert!(error.contains(needle), "{webhook}: {error}");
        }
    }
    assert!(site.requests().is_empty(), "nothing started");
    trap.assert_untouched();
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn an_idempotency_key_starts_a_job_once() {
    let site = spawn_crawl_site(None).await;
    let app = app().await;
    let post = |path: &'static str, key: &'static str, body: Value| {
        let app = &app;
        async move {
            let response = app
                .client
                .post(app.url(Port::Crawler, path))
                .header("x-idempotency-key", key)
                .json(&body)
                .send()
                .await
                .expect("sent");
            let code = response.status().as_u16();
            (code, response.json::<Value>().await.expect("JSON"))
        }
    };
    let crawl = json!({"url": site.url("/"), "limit": 1});
    let key = "5b0b7d8e-2f55-4c61-9f1e-1c1f2d6b9a10";
    let (code, first) = post("/v1/crawl", key, crawl.clone()).await;
    assert_eq!(code, 200, "{first}");
    let (code, again) = post("/v1/crawl", key, crawl.clone()).await;
    assert_eq!(code, 409, "{again}");
    assert_eq!(again["success"], false);
    assert_eq!(again["error"], "Idempotency key already used");
    // Keys are shared by every job route (as in Firecrawl).
    let batch = json!({"urls": [site.url("/docs/s1/p1.html")]});
    let (code, _) = post("/v2/batch/scrape", key, batch.clone()).await;
    assert_eq!(code, 409);
    // A request refused before starting does not use its key up.
    let (code, _) = post("/v1/crawl", "key-2", json!({"url": "not a url"})).await;
    assert_eq!(code, 400);
    let (code, _) = post("/v1/crawl", "key-2", crawl.clone()).await;
    assert_eq!(code, 200);
    let (code, answer) = post("/v1/crawl", "bad key with spaces", crawl).await;
    assert_eq!(code, 400, "{answer}");
    assert!(text(&answer["error"]).contains("x-idempotency-key"));
    app.shutdown().await.expect("clean shutdown");
}
