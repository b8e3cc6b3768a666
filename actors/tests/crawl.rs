//! Crawl jobs on an in-memory site: what gets fetched, what is refused and why, and the bounds.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use aurora_actors::crawler_pool::{
    ErrorKind, JobKind, JobRecord, JobSpec, JobStatus, SitemapMode, scope::ScopeRules,
};
use aurora_actors::local::StaticSite;
use aurora_actors::model::{Formats, ScrapeRequest};
use aurora_actors::spawn_tree;
use common::{config, ports};
use url::Url;

const SECTIONS: usize = 5;
const PAGES: usize = 10;
const MONTHS: usize = 300;

fn page(title: &str, links: &[String]) -> String {
    let links: String = links
        .iter()
        .map(|l| format!("<li><a href=\"{l}\">{l}</a></li>"))
        .collect();
    format!(
        "<html><head><title>{title}</title></head><body><main><h1>{title}</h1>\
         <p>Text of {title}.</p><ul>{links}</ul></main></body></html>"
    )
}

/// A site with sections, duplicate links (fragments, tracking parameters), a robots.txt
/// disallow, an asset, an external link, a failing page and an endless calendar.
fn site() -> StaticSite {
    let mut pages: Vec<(String, u16, &'static str, String)> = vec![(
        "http://site.test/robots.txt".into(),
        200,
        "text/plain",
        "User-agent: *\nDisallow: /private/\n".into(),
    )];
    let sections: Vec<String> = (0..SECTIONS).map(|s| format!("/docs/s{s}/")).collect();
    let mut home_links = sections.clone();
    home_links.extend([
        "/private/secret.html".into(),
        "/img/logo.png".into(),
        "http://other.test/".into(),
        "/broken".into(),
        "/calendar?month=0".into(),
        "mailto:someone@site.test".into(),
    ]);
    pages.push((
        "http://site.test/".into(),
        200,
        "text/html",
        page("Home", &home_links),
    ));
    pages.push((
        "http://site.test/docs/".into(),
        200,
        "text/html",
        page("Docs", &sections),
    ));
    for s in 0..SECTIONS {
        let links: Vec<String> = (0..PAGES).map(|p| format!("p{p}.html")).collect();
        pages.push((
            format!("http://site.test/docs/s{s}/"),
            200,
            "text/html",
            page(&format!("Section {s}"), &links),
        ));
        for p in 0..PAGES {
            let links = vec![
                "/".to_string(),
                format!("p{}.html#part-2", (p + 1) % PAGES),
                format!("p{}.html?utm_source=feed&utm_medium=rss", (p + 2) % PAGES),
                "../".to_string(),
            ];
            pages.push((
                format!("http://site.test/docs/s{s}/p{p}.html"),
                200,
                "text/html",
                page(&format!("Page {s}.{p}"), &links),
            ));
        }
    }
    for m in 0..MONTHS {
        pages.push((
            format!("http://site.test/calendar?month={m}"),
            200,
            "text/html",
            page(
                &format!("Month {m}"),
                &[format!("/calendar?month={}", m + 1)],
            ),
        ));
    }
    pages.push((
        "http://site.test/broken".into(),
        500,
        "text/html",
        "<h1>oops</h1>".into(),
    ));
    pages.push((
        "http://site.test/private/secret.html".into(),
        200,
        "text/html",
        page("Secret", &[]),
    ));
    StaticSite::new(pages)
}

fn spec(start: &str, limit: usize) -> JobSpec {
    let url = Url::parse(start).unwrap();
    JobSpec {
        kind: JobKind::Crawl,
        seeds: vec![url.clone()],
        scrape: ScrapeRequest::new(url),
        formats: Formats::default(),
        rules: ScopeRules {
            crawl_entire_domain: true,
            ..ScopeRules::default()
        },
        limit,
        ignore_robots: false,
        sitemap: SitemapMode::Include,
        delay: None,
        max_concurrency: None,
        ingest: None,
        webhook: None,
        idempotency_key: None,
    }
}

async fn finished(crawler: &aurora_actors::crawler_pool::Handle, id: &str) -> JobRecord {
    for _ in 0..1000 {
        let record = crawler.status(id).await.unwrap();
        if record.status != JobStatus::Scraping {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the crawl did not finish");
}

#[tokio::test]
async fn crawls_exactly_the_reachable_allowed_pages() {
    let site = site();
    let mut config = config();
    config.crawler.per_host_rps = 0.0;
    config.crawler.traps.max_shape_run = 59;
    let tree = spawn_tree(ports(site.clone()), config).await.unwrap();
    let crawler = tree.handles().crawler();

    let job = crawler
        .start(spec("http://site.test/", 1000))
        .await
        .unwrap();
    let record = finished(&crawler, &job.id).await;
    assert_eq!(record.status, JobStatus::Completed, "{record:?}");

    let pages = crawler.pages(&job.id, 0, record.documents).await.unwrap();
    let urls: BTreeSet<String> = pages
        .iter()
        .map(|p| {
            p.url.path().to_string()
                + p.url
                    .query()
                    .map(|q| format!("?{q}"))
                    .as_deref()
                    .unwrap_or("")
        })
        .collect();
    let mut want = BTreeSet::from(["/".to_string(), "/docs/".to_string()]);
    for s in 0..SECTIONS {
        want.insert(format!("/docs/s{s}/"));
        for p in 0..PAGES {
            want.insert(format!("/docs/s{s}/p{p}.html"));
        }
    }
    for m in 0..60 {
        want.insert(format!("/calendar?month={m}"));
    }
    assert_eq!(urls, want);
    assert_eq!(pages.len(), want.len(), "each page stored once");
    assert_eq!(record.documents as usize, want.len());
    let errors = crawler.errors(&job.id).await.unwrap();
    assert_eq!(record.failed, 1, "the 500 page: {errors:#?}");
    assert_eq!(record.completed, record.total, "{record:?}");

    // Every page fetched once, despite fragment and tracking-parameter duplicates.
    for s in 0..SECTIONS {
        for p in 0..PAGES {
            assert_eq!(
                site.requests(&format!("http://site.test/docs/s{s}/p{p}.html")),
                1
            );
        }
    }
    assert_eq!(site.requests("http://site.test/private/secret.html"), 0);
    assert_eq!(site.requests("http://site.test/img/logo.png"), 0);
    assert_eq!(site.requests("http://site.test/calendar?month=60"), 0);
    assert_eq!(site.requests("http://site.test/robots.txt"), 1);

    let errors = crawler.errors(&job.id).await.unwrap();
    let codes: BTreeSet<(ErrorKind, String)> =
        errors.iter().map(|e| (e.kind, e.code.clone())).collect();
    assert_eq!(
        codes,
        BTreeSet::from([
            (ErrorKind::Page, "HTTP_500".to_string()),
            (ErrorKind::Robots, "ROBOTS".to_string()),
            (ErrorKind::Bound, "TRAP_SHAPE_RUN".to_string()),
        ]),
        "{errors:#?}"
    );
    let robots = errors.iter().find(|e| e.kind == ErrorKind::Robots).unwrap();
    assert_eq!(robots.url, "http://site.test/private/secret.html");
    tree.shutdown().await;
}

#[tokio::test]
async fn limit_depth_and_paths_are_respected() {
    let site = site();
    let mut config = config();
    config.crawler.per_host_rps = 0.0;
    let tree = spawn_tree(ports(site.clone()), config).await.unwrap();
    let crawler = tree.handles().crawler();

    let job = crawler.start(spec("http://site.test/", 7)).await.unwrap();
    let record = finished(&crawler, &job.id).await;
    // The limit counts fetches (the 500 page is one); robots-refused URLs are not fetched.
    assert_eq!(
        (
            record.documents + record.failed,
            record.total,
            record.completed
        ),
        (7, 7, 7),
        "{record:?}"
    );

    // Below the start path only (the default), two link hops from a section.
    let mut below = spec("http://site.test/docs/s1/", 1000);
    below.rules = ScopeRules {
        max_discovery_depth: Some(1),
        exclude_paths: vec![regex::Regex::new("p[5-9]").unwrap()],
        ..ScopeRules::default()
    };
    let job = crawler.start(below).await.unwrap();
    let record = finished(&crawler, &job.id).await;
    let pages = crawler.pages(&job.id, 0, record.documents).await.unwrap();
    let paths: BTreeSet<String> = pages.iter().map(|p| p.url.path().to_string()).collect();
    let want: BTreeSet<String> = std::iter::once("/docs/s1/".to_string())
        .chain((0..5).map(|p| format!("/docs/s1/p{p}.html")))
        .collect();
    assert_eq!(paths, want);
    tree.shutdown().await;
}

#[tokio::test]
async fn ignoring_robots_fetches_disallowed_pages() {
    let site = site();
    let mut config = config();
    config.crawler.per_host_rps = 0.0;
    let tree = spawn_tree(ports(site.clone()), config).await.unwrap();
    let crawler = tree.handles().crawler();
    let mut spec = spec("http://site.test/private/secret.html", 5);
    spec.ignore_robots = true;
    spec.sitemap = SitemapMode::Skip;
    let job = crawler.start(spec).await.unwrap();
    let record = finished(&crawler, &job.id).await;
    assert_eq!(record.documents, 1, "{record:?}");
    assert_eq!(site.requests("http://site.test/private/secret.html"), 1);
    assert_eq!(site.requests("http://site.test/robots.txt"), 0);
    tree.shutdown().await;
}

/// The bodies posted to `hook`, once `last` has arrived.
async fn deliveries(site: &StaticSite, hook: &str, last: &str) -> Vec<serde_json::Value> {
    for _ in 0..1000 {
        let posts: Vec<serde_json::Value> = site
            .posts(hook)
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect();
        if posts.iter().any(|p| p["type"] == last) {
            return posts;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {last} delivery");
}

#[tokio::test]
async fn webhooks_hear_of_every_page_and_of_a_cancel() {
    use aurora_actors::crawler_pool::webhook::{Event, Webhook};
    let site = site();
    let mut config = config();
    config.crawler.per_host_rps = 0.0;
    let tree = spawn_tree(ports(site.clone()), config).await.unwrap();
    let crawler = tree.handles().crawler();
    let webhook = |hook: &str| Webhook {
        url: Url::parse(hook).unwrap(),
        headers: Vec::new(),
        metadata: serde_json::Map::new(),
        events: Event::ALL.to_vec(),
    };

    let mut crawl = spec("http://site.test/docs/s1/", 100);
    crawl.rules.crawl_entire_domain = false;
    crawl.webhook = Some(webhook("http://hooks.test/a"));
    let job = crawler.start(crawl).await.unwrap();
    let record = finished(&crawler, &job.id).await;
    let posts = deliveries(&site, "http://hooks.test/a", "crawl.completed").await;
    let types: Vec<&str> = posts.iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"crawl.started"));
    assert_eq!(types.last(), Some(&"crawl.completed"));
    assert_eq!(
        types.iter().filter(|t| **t == "crawl.page").count() as u64,
        record.documents,
        "{types:?}"
    );

    // A cancelled job ends with `failed`, saying why.
    let mut slow = spec("http://site.test/", 1000);
    slow.delay = Some(Duration::from_millis(200));
    slow.webhook = Some(webhook("http://hooks.test/b"));
    let job = crawler.start(slow).await.unwrap();
    crawler.cancel(&job.id).await.unwrap();
    let posts = deliveries(&site, "http://hooks.test/b", "crawl.failed").await;
    let last = posts.last().unwrap();
    assert_eq!(last["success"], false);
    assert_eq!(last["error"], "cancelled");
    tree.shutdown().await;
}
