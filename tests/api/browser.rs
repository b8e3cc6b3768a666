//! The headless browser, end to end: real chromedriver + Debian Chromium (installed by
//! scripts/setup) rendering a JavaScript site of the test's own, through the SSRF-guarded proxy.

use crate::common::text;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use warp::Filter;
use warp::http::Response;

use crate::common::trap::Trap;
use crate::common::{Port, TestApp, spawn_app_with};

/// A site whose content only scripts make: an application shell that fetches its text as JSON,
/// a button revealing text, an endless feed, a page that never finishes loading, and pages whose
/// scripts reach for the trap.
struct JsSite {
    addr: SocketAddr,
    /// Paths served, in order: how many times the browser really loaded a page.
    served: Arc<Mutex<Vec<String>>>,
    _stop: oneshot::Sender<()>,
}

impl JsSite {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self, path: &str) -> usize {
        self.served
            .lock()
            .expect("the request log")
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

fn html(body: String) -> Response<String> {
    Response::builder()
        .header("content-type", "text/html; charset=utf-8")
        .body(body)
        .expect("response")
}

/// An application shell: nothing but a mount point and a bundle.
fn shell(title: &str, script: &str) -> Response<String> {
    html(format!(
        r#"<!doctype html><html><head><title>{title}</title></head>
<body><div id="root"></div><script src="{script}"></script></body></html>"#
    ))
}

/// The bundle: fetches /data/{page}.json and renders it, with links to the other pages. The
/// text is only in the JSON, so nothing of it is in the HTML a plain fetch sees.
const APP_JS: &str = r#"
const page = location.pathname.split('/').pop() || '1';
fetch('/data/' + page + '.json').then(r => r.json()).then(data => {
  const root = document.getElementById('root');
  root.innerHTML = '<main><h1>' + data.title + '</h1><p>' + data.body + '</p>' +
    data.links.map(l => '<a href="/app/' + l + '">page ' + l + '</a>').join(' ') + '</main>';
});
"#;

const BUTTON_PAGE: &str = r#"<!doctype html><html><head><title>Button page</title></head><body>
<main><h1>Secrets</h1><p>Press the button to see the secret of this page.</p>
<input id="name" placeholder="your name">
<button id="reveal" onclick="
  const secret = document.createElement('p');
  secret.id = 'secret';
  secret.textContent = ['the','secret','is', 'ultraviolet-' + (40 + 2)].join(' ');
  document.querySelector('main').appendChild(secret);
  const hello = document.createElement('p');
  hello.id = 'hello';
  hello.textContent = 'hello ' + document.getElementById('name').value;
  document.querySelector('main').appendChild(hello);
">Reveal</button></main></body></html>"#;

/// Five items, five more each time the reader reaches the bottom.
const FEED_PAGE: &str = r#"<!doctype html><html><head><title>Feed</title>
<style>.item { height: 400px; }</style></head><body><main id="feed"></main><script>
let next = 1;
function more() {
  for (let i = 0; i < 5; i++, next++) {
    const item = document.createElement('p');
    item.className = 'item';
    item.textContent = 'feed item number ' + next;
    document.getElementById('feed').appendChild(item);
  }
}
more();
window.addEventListener('scroll', () => {
  if (window.innerHeight + window.scrollY >= document.body.scrollHeight - 50) more();
});
</script></body></html>"#;

async fn spawn_js_site(trap: &Trap) -> JsSite {
    let trap_data = trap.url("/secret.json");
    let trap_page = trap.url("/internal");
    let app_page = warp::path!("app" / String).map(|_| shell("Rendered app", "/app.js"));
    let app_js = warp::path!("app.js").map(|| {
        Response::builder()
            .header("content-type", "application/javascript")
            .body(APP_JS.to_string())
            .expect("response")
    });
    let data = warp::path!("data" / String).map(|file: String| {
        let n: u32 = file.trim_end_matches(".json").parse().unwrap_or(1);
        let links: Vec<u32> = (1..=4).filter(|l| *l != n).collect();
        let body = json!({
            "title": format!("Rendered page {n}"),
            "body": format!(
                "Only a browser sees this text, fetched as JSON for page {n}. It tells of green \
                 curtains of light rippling over a harbour town on long winter nights."
            ),
            "links": links,
        });
        Response::builder()
            .header("content-type", "application/json")
            .body(body.to_string())
            .expect("response")
    });
    let button = warp::path!("button").map(|| html(BUTTON_PAGE.to_string()));
    let feed = warp::path!("feed").map(|| html(FEED_PAGE.to_string()));
    // The load event waits for an image that never arrives.
    let forever = warp::path!("forever").map(|| {
        html(r#"<html><head><title>Forever</title></head><body><p>Loading…</p><img src="/hang"></body></html>"#.to_string())
    });
    let hang = warp::path!("hang").then(|| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        "never"
    });
    let sneaky = warp::path!("sneaky").map(move || {
        html(format!(
            r#"<html><head><title>Sneaky</title></head><body><div id="root"></div><script>
fetch('{trap_data}').then(r => r.text()).then(t => {{
  document.getElementById('root').textContent = 'stolen: ' + t;
}}).catch(e => {{ document.getElementById('root').textContent = 'fetch failed: ' + e; }});
</script></body></html>"#
        ))
    });
    let bounce = warp::path!("bounce").map(move || {
        Response::builder()
            .status(302)
            .header("location", trap_page.clone())
            .body(String::new())
            .expect("response")
    });
    let doomed = warp::path!("doomed").map(|| {
        html("<html><head><title>Doomed</title></head><body><main><p>This tab is about to crash.</p></main></body></html>".to_string())
    });
    let served: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = {
        let served = served.clone();
        warp::log::custom(move |info| {
            served
                .lock()
                .expect("the request log")
                .push(info.path().to_string())
        })
    };
    let routes = doomed
        .or(app_page)
        .or(app_js)
        .or(data)
        .or(button)
        .or(feed)
        .or(forever)
        .or(hang)
        .or(sneaky)
        .or(bounce)
        .with(log);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the JS site");
    let addr = listener.local_addr().expect("bound");
    let stop = crate::common::serve_until_dropped(listener, routes);
    JsSite {
        addr,
        served,
        _stop: stop,
    }
}

async fn browser_app(pool_size: usize) -> TestApp {
    spawn_app_with(|s| {
        s.browser.enabled = aurora::settings::BrowserEnabled::On;
        s.browser.pool_size = pool_size;
    })
    .await
}

#[tokio::test]
async fn a_page_built_by_scripts_is_rendered_and_a_static_one_is_not() {
    let trap = Trap::spawn().await;
    let (app, site) = (browser_app(1).await, spawn_js_site(&trap).await);
    let (status, body) = app.scrape(json!({"url": site.url("/app/1")})).await;
    assert_eq!(status, 200, "{body}");
    let markdown = body["data"]["markdown"].as_str().unwrap();
    assert!(
        markdown.contains("Only a browser sees this text, fetched as JSON for page 1"),
        "{markdown}"
    );
    assert!(markdown.contains("# Rendered page 1"), "{markdown}");
    assert_eq!(body["data"]["metadata"]["statusCode"], 200, "{body}");
    assert_eq!(body["data"]["metadata"]["title"], "Rendered app", "{body}");

    // `never`: the shell as served, with nothing a script would add.
    let (status, body) = app.scrape(json!({"url": site.url("/app/1"), "render": "never", "formats": ["markdown", "rawHtml"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body["data"]["rawHtml"]
            .as_str()
            .unwrap()
            .contains("Only a browser")
    );

    // rawHtml after rendering is the live DOM.
    let (status, body) = app
        .scrape(json!({"url": site.url("/app/2"), "render": "always", "formats": ["rawHtml"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        text(&body["data"]["rawHtml"]).contains("fetched as JSON for page 2"),
        "{body}"
    );
    let rendered = app
        .metric(r#"aurora_render_decisions_total{decision="browser"}"#)
        .await
        .unwrap_or(0.0);
    assert!(rendered >= 1.0);
    trap.assert_untouched();
}

#[tokio::test]
async fn actions_click_write_and_capture_in_firecrawls_shape() {
    let trap = Trap::spawn().await;
    let (app, site) = (browser_app(1).await, spawn_js_site(&trap).await);
    let (status, body) = app.scrape(json!({
            "url": site.url("/button"),
            "formats": ["markdown", "screenshot@fullPage"],
            "actions": [
                {"type": "click", "selector": "#name"},
                {"type": "write", "text": "Ada"},
                {"type": "press", "key": "Tab"},
                {"type": "click", "selector": "#reveal"},
                {"type": "wait", "selector": "#secret"},
                {"type": "screenshot"},
                {"type": "executeJavascript", "script": "document.getElementById('secret').textContent"},
                {"type": "executeJavascript", "script": "return 6 * 7;"},
                {"type": "scrape"},
            ],
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    let markdown = data["markdown"].as_str().unwrap();
    assert!(
        markdown.contains("the secret is ultraviolet-42"),
        "{markdown}"
    );
    assert!(markdown.contains("hello Ada"), "{markdown}");
    let actions = &data["actions"];
    assert_eq!(
        actions["javascriptReturns"],
        json!([
            {"type": "string", "value": "the secret is ultraviolet-42"},
            {"type": "number", "value": 42},
        ]),
        "{actions}"
    );
    assert_eq!(actions["scrapes"][0]["url"], site.url("/button"));
    assert!(text(&actions["scrapes"][0]["html"]).contains("ultraviolet-42"));
    for shot in [&actions["screenshots"][0], &data["screenshot"]] {
        let png = decode_png(shot.as_str().unwrap());
        assert!(png.len() > 1000);
    }

    // An action that cannot be carried out names itself; nothing half-done comes back.
    let (status, body) = app
        .scrape(json!({"url": site.url("/button"), "actions": [
            {"type": "wait", "milliseconds": 10},
            {"type": "click", "selector": "#no-such-button"},
        ]}))
        .await;
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("action 1 (click) failed: no element matches `#no-such-button`"),
        "{error}"
    );
    trap.assert_untouched();
}

/// The core API's own scrape and a deep dive render through the same pool, and a v2 batch scrape
/// carries its actions to every page.
#[tokio::test]
async fn the_core_api_and_batch_jobs_render_through_the_pool() {
    let trap = Trap::spawn().await;
    let (app, site) = (browser_app(1).await, spawn_js_site(&trap).await);

    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/scrape",
            json!({"url": site.url("/app/2"), "render": "always", "wait_for_ms": 100}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        text(&body["markdown"]).contains("fetched as JSON for page 2"),
        "{body}"
    );
    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/scrape",
            json!({"url": site.url("/app/2"), "render": "never"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body["markdown"]
            .as_str()
            .unwrap()
            .contains("fetched as JSON")
    );

    // A deep dive into an application shell: smart mode renders it before it is stored.
    let (status, answer) = app
        .post_json(
            Port::Core,
            "/v1/query",
            json!({"question": "What does only a browser see on page 3?", "collection": "js-app",
                   "urls": [site.url("/app/3")]}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["pages"][0].get("error").is_none(), "{answer:#}");
    let (status, found) = app
        .post_json(
            Port::Core,
            "/v1/search",
            json!({"query": "fetched as JSON for page 3", "collection": "js-app"}),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert!(
        found.to_string().contains("fetched as JSON for page 3"),
        "{found:#}"
    );

    // A v2 batch: the same click on every page.
    let (status, started) = app
        .post_json(
            Port::Crawler,
            "/v2/batch/scrape",
            json!({"urls": [site.url("/button")], "formats": ["markdown"],
                   "actions": [{"type": "click", "selector": "#reveal"}]}),
        )
        .await;
    assert_eq!(status, 200, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let mut last = Value::Null;
    for _ in 0..600 {
        last = app
            .get(Port::Crawler, &format!("/v2/batch/scrape/{id}"))
            .await
            .json::<Value>()
            .await
            .unwrap();
        if last["status"] != "scraping" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["status"], "completed", "{last}");
    assert!(
        text(&last["data"][0]["markdown"]).contains("ultraviolet-42"),
        "{last}"
    );
    trap.assert_untouched();
}

/// `data:image/png;base64,…` → PNG bytes (checked by signature).
fn decode_png(data_url: &str) -> Vec<u8> {
    let b64 = data_url
        .strip_prefix("data:image/png;base64,")
        .unwrap_or_else(|| {
            panic!(
                "not a PNG data URL: {}",
                &data_url[..40.min(data_url.len())]
            )
        });
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    png
}

#[tokio::test]
async fn scrolling_an_endless_feed_loads_more_of_it() {
    let trap = Trap::spawn().await;
    let (app, site) = (browser_app(1).await, spawn_js_site(&trap).await);
    let scroll = json!({"type": "scroll", "direction": "down"});
    let (status, body) = app
        .scrape(json!({
            "url": site.url("/feed"),
            "actions": [scroll, scroll, scroll, scroll, scroll, scroll, scroll, scroll],
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    let markdown = body["data"]["markdown"].as_str().unwrap();
    assert!(markdown.contains("feed item number 5"), "{markdown}");
    assert!(markdown.contains("feed item number 10"), "{markdown}");
    // Without scrolling, only the first five.
    let (_, body) = app
        .scrape(json!({"url": site.url("/feed"), "render": "always"}))
        .await;
    let markdown = body["data"]["markdown"].as_str().unwrap();
    assert!(!markdown.contains("feed item number 6"), "{markdown}");
}

#[tokio::test]
async fn the_browser_reaches_nothing_the_guard_forbids() {
    let trap = Trap::spawn().await;
    let (app, site) = (browser_app(1).await, spawn_js_site(&trap).await);
    // A page on an allowed host whose script fetches from a forbidden address gets nothing.
    let (status, body) = app
        .scrape(json!({"url": site.url("/sneaky"), "render": "always", "waitFor": 500}))
        .await;
    assert_eq!(status, 200, "{body}");
    let markdown = body["data"]["markdown"].as_str().unwrap();
    assert!(!markdown.contains("trapped"), "{markdown}");
    assert!(!markdown.contains("stolen: trapped"), "{markdown}");
    // A redirect into it is refused, and says so.
    let (status, body) = app
        .scrape(json!({"url": site.url("/bounce"), "render": "always"}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(text(&body["error"]).contains("127.0.0.2"), "{body}");
    // The page itself: refused before the browser is asked.
    let (status, _) = app
        .scrape(json!({"url": trap.url("/"), "render": "always"}))
        .await;
    assert_eq!(status, 403);
    // Other schemes never reach the browser.
    let (status, _) = app
        .scrape(json!({"url": "file:///etc/passwd", "render": "always"}))
        .await;
    assert_eq!(status, 400);
    trap.assert_untouched();
}

#[tokio::test]
async fn a_page_that_never_loads_times_out_and_the_session_is_replaced() {
    let trap = Trap::spawn().await;
    let (app, site) = (browser_app(1).await, spawn_js_site(&trap).await);
    let (status, body) = app
        .scrape(json!({"url": site.url("/forever"), "render": "always", "timeout": 4000}))
        .await;
    assert_eq!(status, 504, "{body}");
    assert!(
        text(&body["error"]).contains("did not finish rendering within 4000 ms"),
        "{body}"
    );
    // The pool replaced the session, and the next page renders.
    let (status, body) = app.scrape(json!({"url": site.url("/app/3")})).await;
    assert_eq!(status, 200, "{body}");
    assert!(text(&body["data"]["markdown"]).contains("page 3"));
    let restarts = app
        .metric(r#"aurora_browser_session_restarts_total{reason="failed"}"#)
        .await
        .unwrap_or(0.0);
    assert!(restarts >= 1.0);
}

#[tokio::test]
async fn a_crawl_follows_links_only_rendering_reveals() {
    let trap = Trap::spawn().await;
    let (app, site) = (browser_app(1).await, spawn_js_site(&trap).await);
    let (status, body) = app
        .post_json(
            Port::Crawler,
            "/v1/crawl",
            json!({"url": site.url("/app/1"), "limit": 10, "ignoreSitemap": true, "allowBackwardLinks": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let mut urls = HashSet::new();
    for _ in 0..600 {
        let status = app
            .get(Port::Crawler, &format!("/v1/crawl/{id}"))
            .await
            .json::<Value>()
            .await
            .unwrap();
        if status["status"] == "completed" {
            for page in status["data"].as_array().unwrap() {
                urls.insert(page["metadata"]["sourceURL"].as_str().unwrap().to_string());
                assert!(
                    text(&page["markdown"]).contains("Only a browser sees this text"),
                    "{page}"
                );
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expected: HashSet<String> = (1..=4).map(|n| site.url(&format!("/app/{n}"))).collect();
    let errors = app
        .get(Port::Crawler, &format!("/v1/crawl/{id}/errors"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(urls, expected, "errors: {errors}");
}

/// Live processes whose parent is `ppid`.
fn children(ppid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat(*pid).is_some_and(|(_, parent)| parent == ppid))
        .collect()
}

/// (state, parent) of a process.
fn stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((
        fields.first()?.chars().next()?,
        fields.get(1)?.parse().ok()?,
    ))
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The browser sessions of the whole test process: (driver, browser) per session, where the
/// browser is the Chromium main process (no `--type=`) the driver started with our profiles.
fn sessions(profiles: &str) -> Vec<(u32, u32)> {
    let me = std::process::id();
    children(me)
        .into_iter()
        .filter(|pid| cmdline(*pid).contains("chromedriver"))
        .filter_map(|driver| {
            let browser = children(driver).into_iter().find(|pid| {
                let cmd = cmdline(*pid);
                cmd.contains(profiles) && !cmd.contains("--type=")
            })?;
            Some((driver, browser))
        })
        .collect()
}

fn zombies() -> Vec<u32> {
    children(std::process::id())
        .into_iter()
        .filter(|pid| stat(*pid).is_some_and(|(state, _)| state == 'Z'))
        .collect()
}

#[tokio::test]
async fn killed_browsers_fail_their_render_cleanly_and_the_pool_heals() {
    let trap = Trap::spawn().await;
    let profiles = tempfile::tempdir().unwrap();
    let marker = profiles.path().display().to_string();
    let site = spawn_js_site(&trap).await;
    let app = spawn_app_with(|s| {
        s.browser.enabled = aurora::settings::BrowserEnabled::On;
        s.browser.pool_size = 2;
        s.browser.profile_dir = profiles.path().to_path_buf();
    })
    .await;
    // Two renders at once: both sessions start.
    let warm = futures::future::join(
        app.scrape(json!({"url": site.url("/app/1"), "render": "always"})),
        app.scrape(json!({"url": site.url("/app/2"), "render": "always"})),
    )
    .await;
    assert_eq!((warm.0.0, warm.1.0), (200, 200));
    let before = sessions(&marker);
    assert_eq!(before.len(), 2, "{before:?}");

    // Mid-render (the page waits 3 s for its scripts), kill one session's driver and browser.
    let app = Arc::new(app);
    let slow = {
        let (app, url) = (app.clone(), site.url("/app/3"));
        tokio::spawn(async move {
            app.scrape(json!({"url": url, "render": "always", "waitFor": 3000}))
                .await
        })
    };
    let victims: Arc<Mutex<Vec<u32>>> = Arc::default();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The busy session is the one whose browser has a renderer showing our page; either will
    // do for the test, so kill the first and remember it.
    let (driver, browser) = before[0];
    victims.lock().unwrap().extend([driver, browser]);
    for pid in [driver, browser] {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let (status, body) = slow.await.unwrap();
    // Either the killed session had the page (a clean 502) or the other one did (a 200).
    assert!(status == 200 || status == 502, "{status} {body}");
    if status == 502 {
        assert!(text(&body["error"]).contains("browser"), "{body}");
    }

    // The pool heals: a request on each slot works, and the count is back to two sessions.
    let again = futures::future::join(
        app.scrape(json!({"url": site.url("/app/1"), "render": "always"})),
        app.scrape(json!({"url": site.url("/app/4"), "render": "always"})),
    )
    .await;
    assert_eq!((again.0.0, again.1.0), (200, 200), "{again:?}");
    let mut after = sessions(&marker);
    for _ in 0..100 {
        if after.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = sessions(&marker);
    }
    assert_eq!(after.len(), 2, "{after:?}");
    for pid in victims.lock().unwrap().iter() {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || stat(*pid).is_some_and(|(s, _)| s == 'Z'),
            "process {pid} survived"
        );
    }
    // Every process the killed session had is gone, zombies included.
    let mut left = zombies();
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = zombies();
    }
    let described: Vec<String> = left
        .iter()
        .map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
        .collect();
    assert!(left.is_empty(), "zombies: {described:?}");
    let stray: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = cmdline(*pid);
            cmd.contains(&marker) && !cmd.contains("--type=")
        })
        .collect();
    assert_eq!(
        stray.len(),
        2,
        "browsers running with our profiles: {stray:?}"
    );
}

/// Every live process below `pid`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = children(pid);
    let mut i = 0;
    while i < found.len() {
        let more = children(found[i]);
        found.extend(more);
        i += 1;
    }
    found
}

/// A tab that dies under its page, the way an out-of-memory or a renderer bug kills it
/// ("Aw, Snap!"): the renderer process showing the page is killed mid-render. The browser and
/// its driver live on, so only the page's own render may fail, and only once.
#[tokio::test]
async fn a_page_whose_tab_crashes_fails_cleanly_and_the_session_is_replaced() {
    let trap = Trap::spawn().await;
    let profiles = tempfile::tempdir().unwrap();
    let marker = profiles.path().display().to_string();
    let site = spawn_js_site(&trap).await;
    let app = Arc::new(
        spawn_app_with(|s| {
            s.browser.enabled = aurora::settings::BrowserEnabled::On;
            s.browser.pool_size = 1;
            s.browser.profile_dir = profiles.path().to_path_buf();
        })
        .await,
    );
    let (status, _) = app
        .scrape(json!({"url": site.url("/app/1"), "render": "always"}))
        .await;
    assert_eq!(status, 200);
    let [(_, browser)] = sessions(&marker)[..] else {
        panic!("one session expected: {:?}", sessions(&marker));
    };

    let restarts_before = app
        .metric(r#"aurora_browser_session_restarts_total{reason="failed"}"#)
        .await
        .unwrap_or(0.0);
    let doomed = {
        let (app, url) = (app.clone(), site.url("/doomed"));
        tokio::spawn(async move {
            app.scrape(json!({"url": url, "render": "always", "waitFor": 5000}))
                .await
        })
    };
    // Once the browser has loaded the page (and sits in its wait), crash every tab it has.
    for _ in 0..200 {
        if site.hits("/doomed") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(site.hits("/doomed"), 1, "the browser never loaded the page");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut killed = Vec::new();
    for pid in descendants(browser) {
        if cmdline(pid).contains("--type=renderer") {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            killed.push(pid);
        }
    }
    assert!(
        !killed.is_empty(),
        "no renderer found below browser {browser}"
    );
    let (status, body) = doomed.await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(text(&body["error"]).contains("browser failed"), "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(
        site.hits("/doomed"),
        1,
        "a page that crashed its tab is not retried"
    );

    // The session was replaced at once, and the next page renders on it.
    // The replacement is counted once the old session is closed, just after the reply.
    let mut restarts = 0.0;
    for _ in 0..100 {
        restarts = app
            .metric(r#"aurora_browser_session_restarts_total{reason="failed"}"#)
            .await
            .unwrap_or(0.0);
        if restarts > restarts_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(restarts > restarts_before);
    let (status, body) = app
        .scrape(json!({"url": site.url("/app/2"), "render": "always"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(text(&body["data"]["markdown"]).contains("page 2"));
    let after = sessions(&marker);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after[0].1, browser, "the crashed browser was replaced");
    assert!(
        !std::path::Path::new(&format!("/proc/{browser}")).exists()
            || stat(browser).is_some_and(|(s, _)| s == 'Z'),
        "the old browser {browser} still runs"
    );
    trap.assert_untouched();
}

/// A browser that dies while its session idles costs the next page nothing: the pool finds it
/// dead before handing it the page and starts a fresh one.
#[tokio::test]
async fn a_session_that_died_while_idle_is_replaced_before_the_next_page() {
    let trap = Trap::spawn().await;
    let profiles = tempfile::tempdir().unwrap();
    let marker = profiles.path().display().to_string();
    let site = spawn_js_site(&trap).await;
    let app = spawn_app_with(|s| {
        s.browser.enabled = aurora::settings::BrowserEnabled::On;
        s.browser.pool_size = 1;
        s.browser.profile_dir = profiles.path().to_path_buf();
    })
    .await;
    let (status, _) = app
        .scrape(json!({"url": site.url("/app/1"), "render": "always"}))
        .await;
    assert_eq!(status, 200);
    let [(_, browser)] = sessions(&marker)[..] else {
        panic!("one session expected: {:?}", sessions(&marker));
    };
    let died_before = app
        .metric(r#"aurora_browser_session_restarts_total{reason="died_idle"}"#)
        .await
        .unwrap_or(0.0);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(browser as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let (status, body) = app
        .scrape(json!({"url": site.url("/app/2"), "render": "always"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(text(&body["data"]["markdown"]).contains("page 2"));
    let died = app
        .metric(r#"aurora_browser_session_restarts_total{reason="died_idle"}"#)
        .await
        .unwrap_or(0.0);
    assert!(
        died > died_before,
        "the dead session was noticed before the page"
    );
    let after = sessions(&marker);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after[0].1, browser);
    trap.assert_untouched();
}

#[tokio::test]
async fn the_unmodified_firecrawl_sdk_gets_rendered_pages_actions_and_screenshots() {
    let trap = Trap::spawn().await;
    let (app, site) = (browser_app(1).await, spawn_js_site(&trap).await);
    let script = r##"
import base64, json, sys
from firecrawl import Firecrawl, V1FirecrawlApp
api_url, key, app_page, button = sys.argv[1:5]
actions = [{"type": "click", "selector": "#reveal"}, {"type": "wait", "selector": "#secret"},
           {"type": "screenshot"}, {"type": "executeJavascript", "script": "document.title"}]
v2 = Firecrawl(api_key=key, api_url=api_url)
shell = v2.scrape(app_page, formats=["markdown"])
acted = v2.scrape(button, formats=["markdown", {"type": "screenshot", "fullPage": True}], actions=actions)
v1 = V1FirecrawlApp(api_key=key, api_url=api_url).scrape_url(button, formats=["markdown", "screenshot"], actions=actions)
def png(data_url):
    raw = base64.b64decode(data_url.split(",", 1)[1])
    return raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 1000
def returns(actions):
    # The v1 SDK's action model keeps only screenshots and pdfs.
    got = actions.get("javascriptReturns") if isinstance(actions, dict) else getattr(actions, "javascript_returns", None)
    return None if got is None else [r if isinstance(r, dict) else r.model_dump() for r in got]
def shots(actions):
    return actions["screenshots"] if isinstance(actions, dict) else actions.screenshots
print(json.dumps({
    "shell": shell.markdown,
    "v2": acted.markdown, "v2_png": png(acted.screenshot), "v2_action_png": png(shots(acted.actions)[0]),
    "v2_js": returns(acted.actions),
    "v1": v1.markdown, "v1_png": png(v1.screenshot), "v1_action_png": png(shots(v1.actions)[0]),
    "v1_js": returns(v1.actions),
}))
"##;
    let python = crate::common::service_url("AURORA_TEST_PYTHON");
    let (api_url, key) = (app.crawler.clone(), app.admin_key.clone());
    let (app_page, button) = (site.url("/app/4"), site.url("/button"));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(["-c", script, &api_url, &key, &app_page, &button])
            .output()
    })
    .await
    .unwrap()
    .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        text(&seen["shell"]).contains("fetched as JSON for page 4"),
        "{seen}"
    );
    for version in ["v1", "v2"] {
        assert!(text(&seen[version]).contains("ultraviolet-42"), "{seen}");
        assert_eq!(seen[format!("{version}_png")], true, "{seen}");
        assert_eq!(seen[format!("{version}_action_png")], true, "{seen}");
    }
    assert_eq!(
        seen["v2_js"],
        json!([{"type": "string", "value": "Button page"}]),
        "{seen}"
    );
}
