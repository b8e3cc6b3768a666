//! Scraping real pages served on localhost, through both ports.

use crate::common::text;
use serde_json::json;

use crate::common::site::spawn_site;
use crate::common::trap::Trap;
use crate::common::{Port, spawn_app, spawn_app_with};

#[tokio::test]
async fn firecrawl_scrape_keeps_main_content_and_fills_metadata() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    let (status, body) = app
        .scrape(
            json!({"url": site.url("/article"), "formats": ["markdown", "links", "html", "rawHtml"],
                   "origin": "python-sdk@4.47.1", "integration": "test"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let data = &body["data"];
    let md = data["markdown"].as_str().unwrap();
    assert!(md.starts_with("# The northern lights"), "{md}");
    for kept in [
        "**charged particles**",
        "## Where to see them",
        "- Tromsø",
        "```python\nprint(\"aurora\")\n```",
        "| February | high   |",
    ] {
        assert!(md.contains(kept), "missing {kept:?} in {md}");
    }
    assert!(
        md.contains(&format!(
            "[viewing guide]({})",
            site.url("/guide#best-time")
        )),
        "links in markdown are absolute: {md}"
    );
    for dropped in [
        "Test Site home",
        "About us",
        "cookies",
        "parka",
        "all rights reserved",
        "script text",
    ] {
        assert!(!md.contains(dropped), "{dropped:?} leaked into {md}");
    }

    let links: Vec<&str> = data["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(links.contains(&site.url("/about").as_str()), "{links:?}");
    assert!(
        links.contains(&site.url("/guide").as_str()),
        "fragments removed: {links:?}"
    );
    assert!(links.contains(&"https://example.org/science"));
    assert!(links.iter().all(|l| l.starts_with("http")), "{links:?}");

    let html = data["html"].as_str().unwrap();
    assert!(
        html.contains("<h1>The northern lights</h1>") && !html.contains("<nav>"),
        "{html}"
    );
    assert!(text(&data["rawHtml"]).contains("<nav>"));

    let meta = &data["metadata"];
    assert_eq!(meta["title"], "Aurora test article");
    assert_eq!(meta["description"], "A page about the northern lights");
    assert_eq!(meta["language"], "en");
    assert_eq!(meta["sourceURL"], site.url("/article"));
    assert_eq!(meta["url"], site.url("/article"));
    assert_eq!(meta["statusCode"], 200);
    assert_eq!(meta["contentType"], "text/html; charset=utf-8");
    assert_eq!(meta["ogTitle"], "Northern lights");
    assert_eq!(meta["ogSiteName"], "Test Site");
    assert_eq!(meta["canonicalUrl"], site.url("/article"));
}

#[tokio::test]
async fn core_scrape_answers_in_snake_case() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/scrape",
            json!({"url": site.url("/article"), "formats": ["markdown", "raw_html"], "timeout_ms": 5000}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status_code"], 200);
    assert_eq!(body["title"], "Aurora test article");
    assert_eq!(body["source_url"], site.url("/article"));
    assert!(text(&body["markdown"]).contains("charged particles"));
    assert!(text(&body["raw_html"]).contains("<footer>"));
    assert!(body.get("links").is_none(), "not asked for");
    assert_eq!(body["meta"]["og:title"], "Northern lights");
    assert!(body["fetched_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn redirects_are_followed_and_loops_stopped() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    let (status, body) = app.scrape(json!({"url": site.url("/redirect")})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["metadata"]["sourceURL"], site.url("/redirect"));
    assert_eq!(body["data"]["metadata"]["url"], site.url("/article"));

    let (status, body) = app.scrape(json!({"url": site.url("/loop/a")})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["success"], false);
    assert!(text(&body["error"]).contains("redirect loop"), "{body}");

    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/scrape",
            json!({"url": site.url("/chain/0")}),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        text(&body["error"]["message"]).contains("too many redirects"),
        "{body}"
    );
}

#[tokio::test]
async fn a_404_is_a_page_with_its_status() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    let (status, body) = app.scrape(json!({"url": site.url("/missing")})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["metadata"]["statusCode"], 404);
    assert!(text(&body["data"]["markdown"]).contains("Page not found"));
}

#[tokio::test]
async fn a_slow_page_times_out_with_504() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    let (status, body) = app
        .scrape(json!({"url": site.url("/slow/5000"), "timeout": 300}))
        .await;
    assert_eq!(status, 504, "{body}");
    assert!(text(&body["error"]).contains("300 ms"), "{body}");
}

#[tokio::test]
async fn a_page_over_the_cap_is_cut_cleanly() {
    let app = spawn_app_with(|s| s.fetch.max_body_bytes = 64 * 1024).await;
    let site = spawn_site().await;
    let (status, body) = app
        .post_json(Port::Core, "/v1/scrape", json!({"url": site.url("/big")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["truncated"], true);
    let md = body["markdown"].as_str().unwrap();
    assert!(
        md.starts_with("# Big page") && md.contains("Paragraph number 100 "),
        "{}",
        &md[..200]
    );
    assert!(!md.contains("THE-END-MARKER"));
    assert!(md.len() < 64 * 1024);
    assert!(
        text(&body["warnings"][0]).contains("cut after 65536 bytes"),
        "{body}"
    );
}

#[tokio::test]
async fn latin1_pages_are_decoded() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    let (_, body) = app.scrape(json!({"url": site.url("/latin1")})).await;
    assert_eq!(body["data"]["markdown"], "Café crème, naïve façade ©");
    let (_, body) = app.scrape(json!({"url": site.url("/latin1-meta")})).await;
    assert_eq!(body["data"]["markdown"], "Grüße aus Köln");
}

#[tokio::test]
async fn compressed_pages_are_decompressed() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    let (_, body) = app.scrape(json!({"url": site.url("/gzip")})).await;
    assert_eq!(
        body["data"]["markdown"], "Compressed content arrives intact.",
        "{body}"
    );
}

#[tokio::test]
async fn a_damaged_document_is_refused_clearly() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    let (status, body) = app.scrape(json!({"url": site.url("/file.pdf")})).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        text(&body["error"]).contains("the file is damaged or not a valid PDF"),
        "{body}"
    );
}

#[tokio::test]
async fn ssrf_guard_refuses_private_targets() {
    let (app, site, trap) = (spawn_app().await, spawn_site().await, Trap::spawn().await);
    // 127.0.0.1 is allow-listed in the test config; the rest of 127/8 is not. Other ranges
    // (private, link-local, metadata) are the guard's unit tests: no socket aims at them.
    for url in [
        trap.url("/article"),
        // Checked again on every redirect hop.
        site.url(&format!("/redirect-to?url={}", trap.url("/admin"))),
    ] {
        let (status, body) = app.scrape(json!({"url": url})).await;
        assert_eq!(status, 403, "{url}: {body}");
        assert!(
            text(&body["error"]).contains("127.0.0.2 is a loopback address"),
            "{url}: {body}"
        );
    }
    trap.assert_untouched();

    // Without the allow-list even the test site is refused — and names are checked after DNS.
    let strict = spawn_app_with(|s| s.fetch.allow_private.clear()).await;
    let named = site.url("/article").replace("127.0.0.1", "localhost");
    for url in [site.url("/article"), named] {
        let (status, body) = strict
            .post_json(Port::Core, "/v1/scrape", json!({"url": url}))
            .await;
        assert_eq!(status, 403, "{url}: {body}");
        assert_eq!(body["error"]["code"], "target_forbidden");
        assert!(
            text(&body["error"]["message"]).contains("loopback"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn request_headers_reach_the_target_but_not_other_origins() {
    let (app, site, other) = (spawn_app().await, spawn_site().await, spawn_site().await);
    let headers = json!({"Authorization": "Bearer s3cret", "X-Custom": "yes"});
    let (_, body) = app
        .scrape(json!({"url": site.url("/headers"), "headers": headers,
                   "location": {"country": "US", "languages": ["de-DE", "en"]}}))
        .await;
    let md = body["data"]["markdown"].as_str().unwrap();
    assert!(
        md.contains("authorization=Bearer s3cret") && md.contains("x-custom=yes"),
        "{md}"
    );
    assert!(md.contains("user-agent=AuroraBot/"), "{md}");
    assert!(md.contains("accept-language=de-DE, en"), "{md}");

    let hop = site.url(&format!("/redirect-to?url={}", other.url("/headers")));
    let (_, body) = app.scrape(json!({"url": hop, "headers": headers})).await;
    let md = body["data"]["markdown"].as_str().unwrap();
    assert!(md.contains("x-custom=yes"), "{md}");
    assert!(
        !md.contains("s3cret"),
        "credentials must not follow a cross-origin redirect: {md}"
    );
}

#[tokio::test]
async fn include_and_exclude_tags() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    let (status, body) = app.scrape(json!({"url": site.url("/article"), "includeTags": ["main"], "excludeTags": ["table", "pre"]})).await;
    assert_eq!(status, 200, "{body}");
    let md = body["data"]["markdown"].as_str().unwrap();
    assert!(
        md.contains("charged particles") && !md.contains("Month") && !md.contains("print("),
        "{md}"
    );

    let (status, body) = app
        .scrape(json!({"url": site.url("/article"), "onlyMainContent": false}))
        .await;
    assert_eq!(status, 200);
    let md = body["data"]["markdown"].as_str().unwrap();
    assert!(
        md.contains("About us") && md.contains("all rights reserved"),
        "{md}"
    );
    assert!(!md.contains("script text"), "{md}");

    let (status, body) = app
        .scrape(json!({"url": site.url("/article"), "includeTags": ["p:::nope"]}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(text(&body["error"]).contains("invalid CSS selector `p:::nope`"));
}

#[tokio::test]
async fn browser_features_without_a_browser_are_a_clear_error() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    let (status, body) = app
        .scrape(json!({"url": site.url("/article"), "waitFor": 1000}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        text(&body["error"]).contains("`waitFor` needs a browser, and Aurora runs without one"),
        "{body}"
    );
    // `render: never` says no browser, so a browser-only feature contradicts the request.
    let (status, body) = app
        .scrape(json!({"url": site.url("/article"), "mobile": true, "render": "never"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        text(&body["error"]).contains("`mobile` needs the browser"),
        "{body}"
    );
    // Plain scrapes are untouched.
    let (status, body) = app
        .scrape(json!({"url": site.url("/article"), "render": "auto"}))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn unreachable_targets_are_502_with_the_cause() {
    let app = spawn_app().await;
    // A port nothing listens on: bind one, note it, close it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/scrape",
            json!({"url": format!("http://127.0.0.1:{port}/")}),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        text(&body["error"]["message"]).contains("Connection refused"),
        "{body}"
    );
}
