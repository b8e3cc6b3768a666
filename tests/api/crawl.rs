//! Firecrawl v1 crawl jobs over HTTP against a generated site on localhost: what is fetched, the
//! bounds and politeness (checked from the site's own request log), pagination, cancel, shared
//! state across instances, streaming ingestion and bad input.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::crawl_site::{CrawlSite, PAGES, SECTIONS, spawn_crawl_site};
use crate::common::trap::Trap;
use crate::common::{Port, TestApp, service_url, spawn_app_with};

/// Politeness off unless a test turns it on: most tests check what is crawled, not how fast.
pub(crate) async fn app() -> TestApp {
    spawn_app_with(|s| s.crawler.per_host_rps = 0.0).await
}

pub(crate) async fn start(app: &TestApp, body: Value) -> String {
    let (status, started) = app.post_json(Port::Crawler, "/v1/crawl", body).await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["success"], true);
    let id = started["id"].as_str().expect("id").to_string();
    assert_eq!(
        started["url"].as_str(),
        Some(app.url(Port::Crawler, &format!("/v1/crawl/{id}")).as_str())
    );
    id
}

async fn status(app: &TestApp, path: &str) -> Value {
    let response = app.get(Port::Crawler, path).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

/// Polls until the job leaves `scraping`; returns the last status (first page of documents).
pub(crate) async fn finished(app: &TestApp, id: &str) -> Value {
    for _ in 0..3000 {
        let body = status(app, &format!("/v1/crawl/{id}")).await;
        if body["status"] != "scraping" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("crawl {id} did not finish");
}

/// Every document of a finished job, following `next` from the start.
pub(crate) async fn all_documents(app: &TestApp, id: &str) -> (Vec<Value>, usize) {
    let mut documents = Vec::new();
    let mut responses = 0;
    let mut path = format!("/v1/crawl/{id}");
    loop {
        let body = status(app, &path).await;
        responses += 1;
        documents.extend(body["data"].as_array().expect("data").iter().cloned());
        match body["next"].as_str() {
            Some(next) => {
                let next = next
                    .strip_prefix(&app.crawler)
                    .unwrap_or_else(|| panic!("next {next} is not on this server"));
                path = next.to_string();
            }
            None => return (documents, responses),
        }
    }
}

fn paths(site: &CrawlSite, documents: &[Value]) -> BTreeSet<String> {
    let base = site.url("");
    documents
        .iter()
        .map(|d| {
            let url = d["metadata"]["url"].as_str().expect("metadata.url");
            url.strip_prefix(&base).unwrap_or(url).to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_crawl_fetches_exactly_the_reachable_allowed_pages() {
    let site = spawn_crawl_site(None).await;
    let app = app().await;
    let id = start(
        &app,
        json!({"url": site.url("/"), "origin": "python-sdk@4.5.0"}),
    )
    .await;
    let last = finished(&app, &id).await;
    assert_eq!(last["status"], "completed", "{last}");

    let (documents, _) = all_documents(&app, &id).await;
    let mut want: BTreeSet<String> = ["/", "/docs/", "/orphan.html", "/landing.html"]
        .map(String::from)
        .into();
    for s in 0..SECTIONS {
        want.insert(format!("/docs/s{s}/"));
        for p in 0..PAGES {
            want.insert(format!("/docs/s{s}/p{p}.html"));
        }
    }
    // The calendar is followed for crawler.max_shape_run (50) pages in a row, then cut.
    for month in 0..=50 {
        want.insert(format!("/calendar?month={month}"));
    }
    assert!(want.len() >= 500);
    assert_eq!(paths(&site, &documents), want);
    assert_eq!(documents.len(), want.len(), "every page once");

    // The site's log: each page fetched once despite fragment and tracking-parameter
    // duplicates; nothing disallowed, nothing external, no asset, nothing past the trap bound.
    let log: Vec<String> = site.requests().into_iter().map(|(_, p)| p).collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for path in &log {
        *counts.entry(path.as_str()).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "fetched more than once: {repeated:?}");
    for never in [
        "/private/secret.html",
        "/files/archive.zip",
        "/calendar?month=51",
    ] {
        assert_eq!(site.count(never), 0, "{never} must not be fetched");
    }
    assert!(!log.iter().any(|p| p.contains("utm_")));
    assert_eq!(site.count("/robots.txt"), 1);
    assert_eq!(site.count("/sitemap-extra.xml.gz"), 1);

    let errors = status(&app, &format!("/v1/crawl/{id}/errors")).await;
    assert_eq!(
        errors["robotsBlocked"],
        json!([site.url("/private/secret.html")])
    );
    let codes: BTreeSet<(String, String)> = errors["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            let url = e["url"].as_str().expect("url");
            let path = url.strip_prefix(&site.url("")).unwrap_or(url);
            (
                path.to_string(),
                e["code"].as_str().expect("code").to_string(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        BTreeSet::from([
            ("/broken".to_string(), "HTTP_500".to_string()),
            // A stub that is no whole PDF: read, and refused with its reason.
            (
                "/files/report.pdf".to_string(),
                "DOCUMENT_UNREADABLE".to_string()
            ),
            (
                "/calendar?month=51".to_string(),
                "TRAP_SHAPE_RUN".to_string()
            ),
        ]),
        "{errors}"
    );
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn limit_depth_paths_and_robots_options_are_respected() {
    let site = spawn_crawl_site(None).await;
    let app = app().await;

    let id = start(&app, json!({"url": site.url("/"), "limit": 25})).await;
    let last = finished(&app, &id).await;
    assert_eq!(
        (last["total"].as_u64(), last["completed"].as_u64()),
        (Some(25), Some(25))
    );
    let (documents, _) = all_documents(&app, &id).await;
    assert!(documents.len() <= 25);

    // Below the start path by default; includes, excludes and link depth narrow it further.
    let id = start(
        &app,
        json!({
            "url": site.url("/docs/s3/"),
            "includePaths": ["^/docs/s3/p[0-9]\\.html$"],
            "excludePaths": ["p[7-9]"],
            "maxDiscoveryDepth": 1,
            "ignoreSitemap": true,
        }),
    )
    .await;
    finished(&app, &id).await;
    let (documents, _) = all_documents(&app, &id).await;
    let want: BTreeSet<String> = std::iter::once("/docs/s3/".to_string())
        .chain((0..7).map(|p| format!("/docs/s3/p{p}.html")))
        .collect();
    assert_eq!(paths(&site, &documents), want);

    // maxDepth counts path segments below the start URL's.
    let id = start(
        &app,
        json!({"url": site.url("/"), "maxDepth": 1, "ignoreSitemap": true, "limit": 1000}),
    )
    .await;
    finished(&app, &id).await;
    let (documents, _) = all_documents(&app, &id).await;
    assert!(
        paths(&site, &documents)
            .iter()
            .all(|p| !p.starts_with("/docs/s")),
        "nothing two segments deep"
    );

    // ignoreRobotsTxt reaches the disallowed page and never reads robots.txt for it.
    let before = site.count("/robots.txt");
    let id = start(
        &app,
        json!({"url": site.url("/private/secret.html"), "ignoreRobotsTxt": true, "ignoreSitemap": true}),
    )
    .await;
    let last = finished(&app, &id).await;
    assert_eq!(last["data"].as_array().map(Vec::len), Some(1), "{last}");
    assert_eq!(site.count("/private/secret.html"), 1);
    assert_eq!(site.count("/robots.txt"), before);
    app.shutdown().await.expect("clean shutdown");
}

/// Requests per rolling second, from the site's log.
fn busiest_second(site: &CrawlSite) -> usize {
    let times: Vec<_> = site.requests().into_iter().map(|(t, _)| t).collect();
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| t.duration_since(times[i]) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn the_per_host_rate_and_crawl_delay_are_never_exceeded() {
    let site = spawn_crawl_site(None).await;
    let app = spawn_app_with(|s| s.crawler.per_host_rps = 20.0).await;
    let id = start(&app, json!({"url": site.url("/docs/s1/"), "limit": 45})).await;
    finished(&app, &id).await;
    assert!(site.requests().len() >= 45);
    // Requests leave exactly 50 ms apart; the site logs arrivals, which a loaded machine can
    // bunch by a few milliseconds — one request of slack for that, no more.
    let busiest = busiest_second(&site);
    assert!(busiest <= 21, "{busiest} requests in one second at 20/s");
    app.shutdown().await.expect("clean shutdown");

    // Crawl-delay 0.2 s from robots.txt spaces page requests even with no rate configured.
    let site = spawn_crawl_site(Some(0.2)).await;
    let app = self::app().await;
    let id = start(
        &app,
        json!({"url": site.url("/docs/s2/"), "limit": 6, "ignoreSitemap": true}),
    )
    .await;
    finished(&app, &id).await;
    let pages: Vec<_> = site
        .requests()
        .into_iter()
        .filter(|(_, p)| p.starts_with("/docs/"))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(pages.len(), 6);
    // Five intervals of at least 200 ms (less arrival jitter), and no two requests together.
    let span = pages[5].duration_since(pages[0]);
    assert!(
        span >= Duration::from_millis(950),
        "6 requests within {span:?}"
    );
    for pair in pages.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(120),
            "{gap:?} between requests"
        );
    }
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn status_pages_are_cut_and_next_yields_every_document_once() {
    let site = spawn_crawl_site(None).await;
    let app = spawn_app_with(|s| {
        s.crawler.per_host_rps = 0.0;
        s.crawler.status_page_bytes = 4000;
    })
    .await;
    let id = start(
        &app,
        json!({"url": site.url("/docs/s4/"), "ignoreSitemap": true}),
    )
    .await;
    let last = finished(&app, &id).await;
    assert!(
        last["next"].is_string(),
        "more documents than one response holds"
    );
    let (documents, responses) = all_documents(&app, &id).await;
    assert!(responses > 3, "{responses} responses");
    assert_eq!(documents.len(), PAGES + 1);
    assert_eq!(
        paths(&site, &documents).len(),
        PAGES + 1,
        "no document twice"
    );
    assert_eq!(last["creditsUsed"].as_u64(), Some(PAGES as u64 + 1));

    // `limit` pages too, and `skip` past the end is an empty, final page.
    let body = status(&app, &format!("/v1/crawl/{id}?skip=3&limit=1")).await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1));
    assert!(
        body["next"]
            .as_str()
            .is_some_and(|n| n.ends_with("skip=4&limit=1"))
    );
    let body = status(&app, &format!("/v1/crawl/{id}?skip=1000")).await;
    assert_eq!(body["data"], json!([]));
    assert!(body.get("next").is_none());
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn cancel_stops_fetching() {
    let site = spawn_crawl_site(None).await;
    let app = spawn_app_with(|s| s.crawler.per_host_rps = 10.0).await;
    let id = start(&app, json!({"url": site.url("/"), "ignoreSitemap": true})).await;
    while site.requests().len() < 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = app
        .client
        .delete(app.url(Port::Crawler, &format!("/v1/crawl/{id}")))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body, json!({"success": true, "status": "cancelled"}));
    let fetched = site.requests().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(site.requests().len(), fetched, "no fetch after the cancel");
    let last = status(&app, &format!("/v1/crawl/{id}")).await;
    assert_eq!(last["status"], "cancelled");
    assert!(last.get("next").is_none());
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn replicas_sharing_redis_share_one_per_host_rate() {
    let redis = service_url("AURORA_TEST_REDIS_URL");
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let shared = |s: &mut aurora::settings::Settings| {
        s.crawler.per_host_rps = 10.0;
        s.redis.url = redis.clone();
        s.redis.key_prefix = prefix.clone();
    };
    let site = spawn_crawl_site(None).await;
    let (first, second) = (spawn_app_with(shared).await, spawn_app_with(shared).await);
    // One crawl on each replica, both of the same host, at the same time.
    let body =
        |section: &str| json!({"url": site.url(section), "limit": 20, "ignoreSitemap": true});
    let a = start(&first, body("/docs/s1/")).await;
    let b = start(&second, body("/docs/s2/")).await;
    finished(&first, &a).await;
    finished(&second, &b).await;
    assert!(site.requests().len() >= 40);
    // Alone, each replica would allow 10/s; together they still do (one request of slack for
    // arrival jitter on a loaded machine).
    let busiest = busiest_second(&site);
    assert!(busiest <= 11, "{busiest} requests in one second at 10/s");
    first.shutdown().await.expect("clean shutdown");
    second.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn another_instance_on_the_same_redis_answers_for_the_job() {
    let redis = service_url("AURORA_TEST_REDIS_URL");
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let shared = |s: &mut aurora::settings::Settings| {
        s.crawler.per_host_rps = 0.0;
        s.redis.url = redis.clone();
        s.redis.key_prefix = prefix.clone();
    };
    let site = spawn_crawl_site(None).await;
    let first = spawn_app_with(shared).await;
    let second = spawn_app_with(shared).await;
    let id = start(
        &first,
        json!({"url": site.url("/docs/s5/"), "ignoreSitemap": true}),
    )
    .await;
    let done = finished(&second, &id).await;
    assert_eq!(done["status"], "completed");
    let (from_second, _) = all_documents(&second, &id).await;
    let (from_first, _) = all_documents(&first, &id).await;
    assert_eq!(from_second.len(), PAGES + 1);
    assert_eq!(from_first, from_second);
    // Errors and cancel are answered by either instance too.
    let errors = status(&second, &format!("/v1/crawl/{id}/errors")).await;
    assert!(errors["robotsBlocked"].is_array());
    first.shutdown().await.expect("clean shutdown");
    second.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn pages_are_searchable_while_the_crawl_runs() {
    let site = spawn_crawl_site(None).await;
    let app = spawn_app_with(|s| s.crawler.per_host_rps = 4.0).await;
    let id = start(
        &app,
        json!({
            "url": site.url("/docs/s6/"),
            "ignoreSitemap": true,
            "ingest": {"collection": "crawled"},
        }),
    )
    .await;
    // A page's own words, findable before the crawl (51 pages at 4/s) is over.
    for _ in 0..600 {
        let (code, found) = app
            .post_json(
                Port::Core,
                "/v1/search",
                json!({"query": "topic6x0", "collection": "crawled", "k": 3}),
            )
            .await;
        let hit = code == 200
            && found["hits"].as_array().is_some_and(|h| {
                h.iter()
                    .any(|h| h["source_url"] == site.url("/docs/s6/p0.html"))
            });
        if hit {
            let now = status(&app, &format!("/v1/crawl/{id}")).await;
            assert_eq!(
                now["status"], "scraping",
                "found while the crawl still runs"
            );
            app.shutdown().await.expect("clean shutdown");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the first page never became searchable");
}

#[tokio::test]
async fn status_has_firecrawl_shapes_and_types() {
    let site = spawn_crawl_site(None).await;
    let app = app().await;
    let id = start(
        &app,
        json!({"url": site.url("/docs/s7/"), "ignoreSitemap": true, "limit": 3,
               "scrapeOptions": {"formats": ["markdown", "links"], "onlyMainContent": true}}),
    )
    .await;
    let body = finished(&app, &id).await;
    let keys: BTreeSet<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "success",
            "status",
            "total",
            "completed",
            "creditsUsed",
            "expiresAt",
            "data"
        ])
    );
    assert_eq!(body["success"], true);
    assert_eq!(body["status"], "completed");
    for key in ["total", "completed", "creditsUsed"] {
        assert!(body[key].is_u64(), "{key} is an integer: {body}");
    }
    let expires = body["expiresAt"].as_str().expect("expiresAt");
    let expires = humantime::parse_rfc3339(expires).expect("ISO 8601 expiresAt");
    let ttl = expires
        .duration_since(std::time::SystemTime::now())
        .expect("in the future");
    assert!(ttl > Duration::from_secs(23 * 3600), "24 h by default");
    let document = &body["data"][0];
    assert!(document["markdown"].is_string());
    assert!(document["links"].is_array(), "asked for links");
    assert!(document.get("html").is_none(), "not asked for");
    let metadata = &document["metadata"];
    assert!(metadata["statusCode"].is_u64());
    assert!(metadata["sourceURL"].is_string());
    assert!(metadata["url"].is_string());
    assert!(metadata["title"].is_string());

    let errors = status(&app, &format!("/v1/crawl/{id}/errors")).await;
    assert!(errors["errors"].is_array() && errors["robotsBlocked"].is_array());
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn bad_crawl_requests_are_refused_and_start_nothing() {
    let (site, trap) = (spawn_crawl_site(None).await, Trap::spawn().await);
    let app = app().await;
    let url = site.url("/");
    for (body, status, needle) in [
        (
            json!({"url": url, "includePaths": ["(unclosed"]}),
            400,
            "`includePaths[0]` is not a valid regular expression",
        ),
        (
            json!({"url": url, "excludePaths": ["ok", "[z-a]"]}),
            400,
            "`excludePaths[1]`",
        ),
        (
            json!({"url": url, "limit": -5}),
            400,
            "`limit` must be at least 1",
        ),
        (
            json!({"url": url, "maxDepth": -1}),
            400,
            "`maxDepth` must not be negative",
        ),
        (json!({"url": url, "delay": 99}), 400, "`delay`"),
        (
            json!({"url": url, "webhook": "not a url"}),
            400,
            "`webhook.url` must be an absolute http(s) URL",
        ),
        (
            json!({"url": url, "scrapeOptions": {"url": url}}),
            400,
            "scrapeOptions.url",
        ),
        (
            json!({"url": url, "ingest": {"collection": "x"}}),
            400,
            "ingest.collection",
        ),
        (json!({"url": url, "crawlSpeed": 9}), 400, "crawlSpeed"),
        (json!({"url": trap.url("/")}), 403, "127.0.0.2"),
        (json!({"url": "not a url"}), 400, "`url`"),
    ] {
        let (code, answer) = app
            .post_json(Port::Crawler, "/v1/crawl", body.clone())
            .await;
        assert_eq!(code, status, "{body} → {answer}");
        assert_eq!(answer["success"], false);
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{body}: {error}");
    }
    assert!(site.requests().is_empty(), "nothing started");
    trap.assert_untouched();

    for path in ["/v1/crawl/no-such-job", "/v1/crawl/no-such-job/errors"] {
        let response = app.get(Port::Crawler, path).await;
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["success"], false);
        assert_eq!(body["error"], "Job not found");
    }
    let response = app
        .client
        .delete(app.url(Port::Crawler, "/v1/crawl/no-such-job"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 404);
    let response = app.get(Port::Crawler, "/v1/crawl/x?skip=minus-one").await;
    assert_eq!(response.status(), 400);
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn batch_scrape_runs_a_list_of_urls_as_one_job() {
    let (site, trap) = (spawn_crawl_site(None).await, Trap::spawn().await);
    let app = app().await;
    let urls = json!([
        site.url("/docs/s8/p1.html"),
        site.url("/docs/s8/p2.html#part"),
        site.url("/broken"),
        "not a url",
        trap.url("/"),
    ]);
    let (code, answer) = app
        .post_json(
            Port::Crawler,
            "/v1/batch/scrape",
            json!({"urls": urls, "formats": ["markdown"]}),
        )
        .await;
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("`urls[3]`")),
        "{answer}"
    );
    let (code, answer) = app
        .post_json(
            Port::Crawler,
            "/v1/batch/scrape",
            json!({"urls": urls, "bogus": 1}),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("bogus")),
        "{answer}"
    );
    assert!(site.requests().is_empty(), "nothing started");

    let (code, started) = app
        .post_json(
            Port::Crawler,
            "/v1/batch/scrape",
            json!({"urls": urls, "ignoreInvalidURLs": true, "formats": ["markdown", "links"],
                   "origin": "python-sdk@4.5.0"}),
        )
        .await;
    assert_eq!(code, 200, "{started}");
    assert_eq!(started["invalidURLs"], json!(["not a url", trap.url("/")]));
    let id = started["id"].as_str().expect("id");
    assert_eq!(
        started["url"].as_str(),
        Some(
            app.url(Port::Crawler, &format!("/v1/batch/scrape/{id}"))
                .as_str()
        )
    );
    let mut last = Value::Null;
    for _ in 0..500 {
        last = status(&app, &format!("/v1/batch/scrape/{id}")).await;
        if last["status"] != "scraping" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(
        (last["total"].as_u64(), last["completed"].as_u64()),
        (Some(3), Some(3))
    );
    let paths = paths(&site, last["data"].as_array().expect("data"));
    assert_eq!(
        paths,
        // Scraped as given, like single scrapes.
        BTreeSet::from([
            "/docs/s8/p1.html".to_string(),
            "/docs/s8/p2.html#part".to_string()
        ])
    );
    assert_eq!(
        site.count("/robots.txt"),
        0,
        "a batch is scrapes, not a crawl"
    );
    let errors = status(&app, &format!("/v1/batch/scrape/{id}/errors")).await;
    assert_eq!(errors["errors"][0]["code"], "HTTP_500");
    trap.assert_untouched();
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn map_lists_a_sites_urls_from_sitemaps_and_links() {
    let (site, trap) = (spawn_crawl_site(None).await, Trap::spawn().await);
    let app = app().await;
    let links = |answer: &Value| -> BTreeSet<String> {
        answer["links"]
            .as_array()
            .expect("links")
            .iter()
            .map(|l| {
                let l = l.as_str().expect("string link");
                l.strip_prefix(&site.url("")).unwrap_or(l).to_string()
            })
            .collect()
    };
    let (code, answer) = app
        .post_json(Port::Crawler, "/v1/map", json!({"url": site.url("/")}))
        .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["success"], true);
    let all = links(&answer);
    for expected in [
        "/",
        "/docs/",
        "/docs/s9/",
        "/orphan.html",
        "/calendar?month=0",
    ] {
        assert!(all.contains(expected), "{expected} missing from {all:?}");
    }
    assert!(
        !all.iter()
            .any(|l| l.contains(".zip") || l.contains("example.invalid"))
    );

    // Without the sitemaps, the link crawl finds every page a visitor can reach: all sections'
    // pages, where a redirect lands, the calendar up to the trap bound; not what robots.txt
    // disallows, what answers an error, or what only a sitemap lists.
    let (code, answer) = app
        .post_json(
            Port::Crawler,
            "/v1/map",
            json!({"url": site.url("/"), "ignoreSitemap": true}),
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    let discovered = links(&answer);
    let mut reachable: BTreeSet<String> = ["/", "/docs/", "/landing.html", "/files/report.pdf"]
        .map(String::from)
        .into();
    for s in 0..SECTIONS {
        reachable.insert(format!("/docs/s{s}/"));
        reachable.extend((0..PAGES).map(|p| format!("/docs/s{s}/p{p}.html")));
    }
    let missing: Vec<_> = reachable.difference(&discovered).collect();
    assert!(missing.is_empty(), "not mapped: {missing:?}");
    for absent in ["/orphan.html", "/private/secret.html", "/broken", "/moved"] {
        assert!(!discovered.contains(absent), "{absent} listed");
    }
    let months = discovered
        .iter()
        .filter(|l| l.starts_with("/calendar"))
        .count();
    assert!(
        (2..=60).contains(&months),
        "the calendar is followed to the trap bound, not forever: {months}"
    );
    assert!(
        site.count("/private/secret.html") == 0,
        "robots.txt is obeyed"
    );

    // v2 lists objects, with what each page said about itself.
    let (code, answer) = app
        .post_json(
            Port::Crawler,
            "/v2/map",
            json!({"url": site.url("/docs/s3/"), "sitemap": "skip", "search": "topic3x7"}),
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        answer["links"][0]["url"],
        site.url("/docs/s3/p7.html"),
        "{answer}"
    );
    assert_eq!(answer["links"][0]["title"], "Page 3.7 about topic3x7");

    let (_, answer) = app
        .post_json(
            Port::Crawler,
            "/v1/map",
            json!({"url": site.url("/"), "search": "orphan"}),
        )
        .await;
    assert_eq!(links(&answer), BTreeSet::from(["/orphan.html".to_string()]));

    let (_, answer) = app
        .post_json(
            Port::Crawler,
            "/v1/map",
            json!({"url": site.url("/"), "sitemapOnly": true}),
        )
        .await;
    let only = links(&answer);
    assert_eq!(only.len(), SECTIONS + 1, "{only:?}");

    let (_, answer) = app
        .post_json(
            Port::Crawler,
            "/v1/map",
            json!({"url": site.url("/"), "limit": 3}),
        )
        .await;
    assert_eq!(links(&answer).len(), 3);

    let (code, _) = app
        .post_json(
            Port::Crawler,
            "/v1/map",
            json!({"url": site.url("/"), "limit": 0}),
        )
        .await;
    assert_eq!(code, 400);
    let (code, _) = app
        .post_json(Port::Crawler, "/v1/map", json!({"url": trap.url("/")}))
        .await;
    assert_eq!(code, 403);
    trap.assert_untouched();
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn v2_routes_take_v2_bodies_and_answer_v2_shapes() {
    let site = spawn_crawl_site(None).await;
    let app = app().await;

    // Scrape: format objects, parsers.
    let (code, scraped) = app
        .post_json(
            Port::Crawler,
            "/v2/scrape",
            json!({"url": site.url("/docs/s9/p3.html"),
                   "formats": [{"type": "markdown"}, "links"], "parsers": ["pdf"],
                   // What firecrawl-py 4.55's v2 client sends with every scrape.
                   "onlyMainContent": true, "mobile": false, "removeBase64Images": true,
                   "fastMode": false, "blockAds": true, "maxAge": 14400000, "storeInCache": true,
                   "origin": "python-sdk@4.55.0"}),
        )
        .await;
    assert_eq!(code, 200, "{scraped}");
    assert!(
        scraped["data"]["markdown"]
            .as_str()
            .is_some_and(|m| m.contains("topic9x3"))
    );
    assert!(scraped["data"]["links"].is_array());
    assert_eq!(scraped["data"]["metadata"]["statusCode"], 200);
    for (body, needle) in [
        (
            json!({"url": site.url("/"), "formats": [{"type": "summary"}]}),
            "summary",
        ),
        (
            json!({"url": site.url("/"), "formats": [{"type": "screenshot", "fullPage": true}]}),
            "screenshot",
        ),
        (
            json!({"url": site.url("/"), "formats": ["nonsense"]}),
            "nonsense",
        ),
        (json!({"url": site.url("/"), "madeUp": true}), "madeUp"),
        (
            json!({"url": site.url("/"), "redactPII": true}),
            "cloud feature",
        ),
    ] {
        let (code, answer) = app
            .post_json(Port::Crawler, "/v2/scrape", body.clone())
            .await;
        assert_eq!(code, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| e.contains(needle)),
            "{answer}"
        );
    }

    // Crawl: `sitemap: only` takes the sitemaps' pages and follows no link.
    let (code, started) = app
        .post_json(
            Port::Crawler,
            "/v2/crawl",
            json!({"url": site.url("/"), "sitemap": "only", "crawlEntireDomain": true,
                   "scrapeOptions": {"formats": [{"type": "markdown"}]}}),
        )
        .await;
    assert_eq!(code, 200, "{started}");
    let id = started["id"].as_str().expect("id");
    assert_eq!(
        started["url"].as_str(),
        Some(app.url(Port::Crawler, &format!("/v2/crawl/{id}")).as_str())
    );
    let mut last = Value::Null;
    for _ in 0..500 {
        last = status(&app, &format!("/v2/crawl/{id}")).await;
        if last["status"] != "scraping" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last["status"], "completed", "{last}");
    let mut want: BTreeSet<String> = (0..SECTIONS).map(|s| format!("/docs/s{s}/")).collect();
    want.extend(["/".to_string(), "/orphan.html".to_string()]);
    assert_eq!(paths(&site, last["data"].as_array().expect("data")), want);
    let errors = status(&app, &format!("/v2/crawl/{id}/errors")).await;
    assert!(errors["errors"].is_array());
    let (code, answer) = app
        .post_json(
            Port::Crawler,
            "/v2/crawl",
            json!({"url": site.url("/"), "prompt": "docs only"}),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("prompt"))
    );

    // Map: links are objects.
    let (code, mapped) = app
        .post_json(
            Port::Crawler,
            "/v2/map",
            json!({"url": site.url("/"), "sitemap": "only"}),
        )
        .await;
    assert_eq!(code, 200, "{mapped}");
    let links = mapped["links"].as_array().expect("links");
    assert_eq!(links.len(), SECTIONS + 1);
    assert!(links.iter().all(|l| l["url"].is_string()));

    // Batch scrape.
    let (code, started) = app
        .post_json(
            Port::Crawler,
            "/v2/batch/scrape",
            json!({"urls": [site.url("/docs/s9/p4.html")], "formats": [{"type": "markdown"}]}),
        )
        .await;
    assert_eq!(code, 200, "{started}");
    let id = started["id"].as_str().expect("id");
    assert!(
        started["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/v2/batch/scrape/{id}")))
    );
    for _ in 0..500 {
        last = status(&app, &format!("/v2/batch/scrape/{id}")).await;
        if last["status"] != "scraping" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last["status"], "completed");
    assert_eq!(last["data"].as_array().map(Vec::len), Some(1));
    app.shutdown().await.expect("clean shutdown");
}
