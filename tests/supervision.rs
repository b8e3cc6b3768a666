//! Supervision: a test-only fault crashes each supervised actor in turn; it is restarted, counted
//! in `aurora_actor_restarts_total`, and then serves *its own* work again — the router routes,
//! the scraper scrapes, the browser pool renders, ingest stores, RAG searches and answers, the session pool logs in, the
//! crawler finishes a crawl started before it died and one started after.
//! (Its own test binary, so no other test's restarts share these counters.)

mod common;

use std::time::Duration;

use aurora_actors::fault::Fault;
use serde_json::{Value, json};

use common::crawl_site::spawn_crawl_site;
use common::site::{Site, spawn_site};
use common::{Port, TestApp, spawn_app_with};

const COLLECTION: &str = "restarts";

/// The work each actor is there to do, asked for over HTTP.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// Router and scraper pool: a page scraped through both.
    Scrape,
    /// Browser pool: a page rendered in headless Chromium.
    Render,
    /// Ingest pool: a new document stored and found.
    Ingest,
    /// RAG pool: a search and a cited answer.
    Answer,
    /// Session pool: a password login.
    Login,
    /// Crawler: a crawl finishes.
    Crawl,
}

async fn scrape(app: &TestApp, site: &Site) {
    scrape_with(app, json!({"url": site.url("/article")})).await;
}

/// The same page through the browser, with a screenshot only a rendering can take.
async fn render(app: &TestApp, site: &Site) {
    let body = scrape_with(
        app,
        json!({"url": site.url("/article"), "render": "always", "formats": ["markdown", "screenshot"]}),
    )
    .await;
    let screenshot = body["data"]["screenshot"].as_str().unwrap_or_default();
    assert!(!screenshot.is_empty(), "{body}");
}

async fn scrape_with(app: &TestApp, request: Value) -> Value {
    let (status, body) = app.scrape(request).await;
    assert_eq!(status, 200, "{body}");
    let markdown = body["data"]["markdown"].as_str().unwrap_or_default();
    assert!(markdown.contains("northern lights"), "{body}");
    body
}

/// Stores a document about `subject` (each call a new one) and checks a search finds it.
async fn ingest(app: &TestApp, round: usize) {
    let url = format!("https://docs.example/round-{round}");
    let content = format!(
        "# Lighthouse {round}\n\nThe lighthouse number {round} on the northern cape is painted \
         red and white, and its lamp turns once every {round} seconds above the harbour."
    );
    let (status, report) = app
        .post_json(
            Port::Core,
            &format!("/v1/collections/{COLLECTION}/documents?create=true"),
            json!({"documents": [{"url": url, "content_type": "text/markdown", "content": content}]}),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    let hits = search(app, &format!("lighthouse number {round} northern cape")).await;
    assert!(
        hits.iter().any(|h| h["source_url"] == url.as_str()),
        "{url} not found after ingest: {hits:#?}"
    );
}

async fn search(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/search",
            json!({"query": query, "collection": COLLECTION, "k": 5}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["hits"].as_array().cloned().unwrap_or_default()
}

async fn answer(app: &TestApp) {
    assert!(!search(app, "cats sleep sofa").await.is_empty());
    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/query",
            json!({"question": "How many hours a day do cats sleep?", "collection": COLLECTION}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["answered"], true, "{body:#}");
    assert!(
        body["answer"]
            .as_str()
            .unwrap_or_default()
            .contains("twelve and sixteen"),
        "{body:#}"
    );
    assert_eq!(
        body["citations"][0]["source_url"],
        "https://docs.example/cats"
    );
}

async fn login(app: &TestApp) {
    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/auth/login",
            json!({"username": "admin", "password": common::ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string(), "{body}");
}

async fn start_crawl(app: &TestApp, url: &str, limit: u32) -> String {
    let (status, body) = app
        .post_json(
            Port::Crawler,
            "/v1/crawl",
            json!({"url": url, "limit": limit, "ignoreSitemap": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().expect("job id").to_string()
}

/// Waits for the job to end and checks it crawled `limit` pages.
async fn crawl_completes(app: &TestApp, id: &str, limit: u64) {
    let path = format!("/v1/crawl/{id}");
    for _ in 0..3000 {
        let response = app.get(Port::Crawler, &path).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("JSON");
        if body["status"] != "scraping" {
            assert_eq!(body["status"], "completed", "{body:#}");
            assert_eq!(body["completed"].as_u64(), Some(limit), "{body:#}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("crawl {id} did not finish");
}

#[tokio::test]
async fn each_crashed_actor_is_restarted_and_serves_its_own_work_again() {
    let app = spawn_app_with(|s| {
        // Slow enough that the crawler is killed in the middle of the first crawl.
        s.crawler.per_host_rps = 20.0;
        // Items the killed crawler held come back quickly.
        s.crawler.lease_ms = 2000;
        s.browser.enabled = aurora::settings::BrowserEnabled::On;
        s.browser.pool_size = 1;
    })
    .await;
    let (site, pages) = (spawn_site().await, spawn_crawl_site(None).await);
    let (status, report) = app
        .post_json(
            Port::Core,
            &format!("/v1/collections/{COLLECTION}/documents?create=true"),
            json!({"documents": [{
                "url": "https://docs.example/cats",
                "content_type": "text/markdown",
                "content": "# Cats\n\nCats sleep between twelve and sixteen hours a day, often curled up on a warm sofa or a sunny windowsill. Kittens and older cats sleep even longer."
            }]}),
        )
        .await;
    assert_eq!(status, 200, "{report}");

    for (round, (fault, actor, work)) in [
        (Fault::PanicRouter, "router", Work::Scrape),
        (Fault::PanicScraperWorker, "scraper_worker", Work::Scrape),
        (Fault::KillScraperPool, "scraper", Work::Scrape),
        (Fault::KillBrowserPool, "browser", Work::Render),
        (Fault::PanicIngestWorker, "ingest_worker", Work::Ingest),
        (Fault::PanicRagWorker, "rag_worker", Work::Answer),
        (Fault::PanicSessionWorker, "session_worker", Work::Login),
        (Fault::KillCrawler, "crawler", Work::Crawl),
        (Fault::PanicRouter, "router", Work::Answer),
    ]
    .into_iter()
    .enumerate()
    {
        let series = format!("aurora_actor_restarts_total{{actor=\"{actor}\"}}");
        let before = app
            .metric(&series)
            .await
            .expect("series exported from the start");
        // A crawl under way when its actor dies must finish all the same.
        let running = match work {
            Work::Crawl => Some(start_crawl(&app, &pages.url("/"), 40).await),
            _ => None,
        };
        app.handles
            .router()
            .inject(fault)
            .await
            .expect("fault delivered");
        app.wait_for_metric(&series, before + 1.0).await;
        app.wait_ready().await;
        match work {
            Work::Scrape => scrape(&app, &site).await,
            Work::Render => render(&app, &site).await,
            Work::Ingest => ingest(&app, round).await,
            Work::Answer => answer(&app).await,
            Work::Login => login(&app).await,
            Work::Crawl => {
                if let Some(id) = running {
                    crawl_completes(&app, &id, 40).await;
                }
                let id = start_crawl(&app, &pages.url("/"), 10).await;
                crawl_completes(&app, &id, 10).await;
            }
        }
        // The rest of the tree was never disturbed.
        login(&app).await;
    }

    // Requests that arrive while the pool is being restarted wait for it instead of failing.
    app.handles
        .router()
        .inject(Fault::KillScraperPool)
        .await
        .unwrap();
    scrape(&app, &site).await;

    app.shutdown().await.expect("clean shutdown after restarts");
}
