//! Crawl jobs are durable work: a restarted embedded `aurora serve` resumes its unfinished jobs,
//! and a Redis restarted mid-crawl (append-only file on) pauses fetching, then the crawl goes on
//! with every page stored exactly once and nothing counted that was not stored.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::crawl_site::spawn_crawl_site;
use crate::common::{Port, TestApp, spawn_app_in, spawn_app_with};
use crate::crawl::{all_documents, finished, start};

/// Polls the job's record until `documents` reaches `at_least`.
async fn wait_for_documents(app: &TestApp, id: &str, at_least: u64) {
    for _ in 0..3000 {
        let body: Value = app
            .get(Port::Crawler, &format!("/v1/crawl/{id}?limit=1"))
            .await
            .json()
            .await
            .expect("JSON");
        if body["completed"].as_u64().unwrap_or(0) >= at_least {
            assert_eq!(body["status"], "scraping", "still running when we stop it");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the crawl made no progress");
}

/// The same crawl, uninterrupted, on a fresh embedded app: its pages and its errors.
async fn baseline(body: &Value) -> (BTreeSet<String>, BTreeSet<(String, String)>) {
    let app = spawn_app_with(|s| s.crawler.per_host_rps = 0.0).await;
    let id = start(&app, body.clone()).await;
    let done = finished(&app, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (documents, _) = all_documents(&app, &id).await;
    let pages = distinct_urls(&documents);
    let errors = errors(&app, &id).await;
    app.shutdown().await.expect("clean shutdown");
    (pages, errors)
}

/// The job's errors as (code, url), without their timestamps.
async fn errors(app: &TestApp, id: &str) -> BTreeSet<(String, String)> {
    let body: Value = app
        .get(Port::Crawler, &format!("/v1/crawl/{id}/errors"))
        .await
        .json()
        .await
        .expect("JSON");
    let listed = body["errors"].as_array().expect("errors");
    let set: BTreeSet<(String, String)> = listed
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap_or_default().to_string(),
                e["url"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(set.len(), listed.len(), "an error listed twice: {body}");
    set
}

/// Every document's URL, asserting none appears twice.
fn distinct_urls(documents: &[Value]) -> BTreeSet<String> {
    let urls: Vec<String> = documents
        .iter()
        .map(|d| {
            d["metadata"]["sourceURL"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let distinct: BTreeSet<String> = urls.iter().cloned().collect();
    assert_eq!(urls.len(), distinct.len(), "a page appears twice");
    distinct
}

#[tokio::test]
async fn a_restarted_embedded_aurora_resumes_its_unfinished_crawl() {
    let site = spawn_crawl_site(None).await;
    let body = json!({"url": site.url("/"), "ignoreSitemap": true});
    let (pages, failures) = baseline(&body).await;
    let polite = |s: &mut aurora::settings::Settings| s.crawler.per_host_rps = 100.0;
    let first = spawn_app_with(polite).await;
    let data = first.data.clone();
    let id = start(&first, body).await;
    wait_for_documents(&first, &id, 20).await;
    first.shutdown().await.expect("clean shutdown");

    // The same data folder, a new process: the job is still there and runs to its end.
    let second = spawn_app_in(data, polite).await;
    let done = finished(&second, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (documents, _) = all_documents(&second, &id).await;
    assert_eq!(
        distinct_urls(&documents),
        pages,
        "every page once, none lost"
    );
    assert_eq!(errors(&second, &id).await, failures);
    second.shutdown().await.expect("clean shutdown");
}

/// A Redis of the test's own, with its append-only file on, that it can stop and start again.
struct OwnRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl OwnRedis {
    async fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = OwnRedis {
            port,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        redis.up().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn up(&mut self) {
        let child = tokio::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "yes", "--dir"])
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server (installed by scripts/setup)");
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start");
    }

    /// A clean stop (SIGTERM: Redis flushes its append-only file), waited for.
    async fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            let _ = child.wait().await;
        }
    }
}

#[tokio::test]
async fn a_redis_restart_mid_crawl_pauses_fetching_and_loses_nothing() {
    let mut redis = OwnRedis::start().await;
    let site = spawn_crawl_site(None).await;
    let url = redis.url();
    let body = json!({"url": site.url("/"), "ignoreSitemap": true});
    let (pages, failures) = baseline(&body).await;
    let app = spawn_app_with(|s| {
        s.crawler.per_host_rps = 100.0;
        s.redis.url = url.clone();
        s.redis.key_prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    })
    .await;
    let id = start(&app, body).await;
    wait_for_documents(&app, &id, 30).await;

    redis.down().await;
    let stopped_at = site.requests().len();
    // While the store is away, /ready says why and fetching pauses.
    let mut said_why = false;
    for _ in 0..100 {
        let response = app
            .anonymous
            .get(app.url(Port::Core, "/ready"))
            .send()
            .await;
        if let Ok(response) = response {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            if status == 503 && body.contains("crawling paused") {
                said_why = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(said_why, "/ready reports the paused crawl");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = site.requests().len();
    // Fetches already under way may finish; nothing new starts (a few of slack for those).
    assert!(
        during <= stopped_at + 16,
        "{} fetches while the store was down",
        during - stopped_at
    );

    redis.up().await;
    for _ in 0..200 {
        let ready = app
            .anonymous
            .get(app.url(Port::Core, "/ready"))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = finished(&app, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (documents, _) = all_documents(&app, &id).await;
    assert_eq!(
        distinct_urls(&documents),
        pages,
        "every page once, none lost"
    );
    let errors = errors(&app, &id).await;
    assert_eq!(errors, failures);
    // Nothing counted that was not stored: each finished page is a document or an error.
    let counted = done["completed"].as_u64().unwrap_or(0) as usize;
    let page_errors = errors.iter().filter(|(code, _)| code != "ROBOTS").count();
    assert!(
        counted <= documents.len() + page_errors,
        "{counted} pages counted, {} stored, {page_errors} failed",
        documents.len()
    );
    app.shutdown().await.expect("clean shutdown");
    redis.down().await;
}
