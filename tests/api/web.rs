//! The web interface on :8080, end to end: real headless Chromium (Debian's chromium +
//! chromium-driver, driven by fantoccini) signing in, building a collection, crawling a local
//! site, asking with a streamed cited answer, and signing out; a reader who must not see or use
//! crawl and key controls; the keyboard reaching every control; and the security properties
//! (CSRF, CSP, the session cookie's flags, injected markup shown as text).
//!
//! On failure a browser test saves a screenshot and the page's HTML under
//! `target/web-artefacts/`; every page visited is also captured at desktop and phone width under
//! `target/web-screenshots/` (what the closing notes describe).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use aurora_actors::session::{Role, Secret};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use warp::Filter;

use crate::common::{ADMIN_PASSWORD, Port, TestApp, spawn_app, spawn_app_with};

// ---- a small site to crawl and a page that attacks ----------------------------------------

/// A site about an island: facts on known pages, a page whose title and text carry markup,
/// and (on `/attack.html`) a cross-site form aimed at Aurora.
struct Island {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Island {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn island_page(title: &str, body: &str, links: &[&str]) -> String {
    let links: String = links
        .iter()
        .map(|l| format!("<li><a href=\"{l}\">{l}</a></li>"))
        .collect();
    format!(
        "<!doctype html><html><head><title>{title}</title></head><body><main><h1>{title}</h1>{body}<ul>{links}</ul></main></body></html>"
    )
}

async fn spawn_island(core: String) -> Island {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let routes = warp::path::full().map(move |path: warp::path::FullPath| {
        let html = match path.as_str() {
            "/" => island_page(
                "Gull Island guide",
                "<p>Gull Island is a small island in the northern sea, reached by ferry from the harbour town.</p>",
                &["/lighthouse.html", "/ferry.html", "/birds.html", "/markup.html"],
            ),
            "/lighthouse.html" => island_page(
                "The Gull Island lighthouse",
                "<p>The lighthouse on Gull Island is painted ultramarine blue with a white lantern room.</p>\
                 <p>It was built in 1871 and its lamp can be seen from forty kilometres away.</p>",
                &["/"],
            ),
            "/ferry.html" => island_page(
                "The ferry",
                "<p>The ferry to Gull Island leaves the harbour town every morning at seven o'clock.</p>\
                 <p>The crossing takes ninety minutes when the sea is calm.</p>",
                &["/"],
            ),
            "/birds.html" => island_page(
                "Birds of Gull Island",
                "<p>Puffins nest on the western cliffs of Gull Island from April to August.</p>",
                &["/"],
            ),
            "/markup.html" => island_page(
                "Tricks &lt;script&gt;window.pwned=1&lt;/script&gt; &lt;img src=x onerror=window.pwned=2&gt;",
                "<p>The smugglers' cave tricks visitors: its sign reads &lt;script&gt;window.pwned=3&lt;/script&gt; in large letters.</p>",
                &["/"],
            ),
            "/attack.html" => format!(
                "<!doctype html><html><head><title>Win a prize</title></head><body>\
                 <form id=\"evil\" method=\"post\" action=\"{core}/collections\">\
                 <input type=\"hidden\" name=\"name\" value=\"forged-by-another-site\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"guessed\"></form>\
                 <script>document.getElementById('evil').submit()</script></body></html>"
            ),
            _ => String::new(),
        };
        let status = if html.is_empty() { 404 } else { 200 };
        warp::http::Response::builder()
            .status(status)
            .header("content-type", "text/html; charset=utf-8")
            .body(html)
            .expect("response")
    });
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        warp::serve(routes)
            .incoming(listener)
            .graceful(async {
                let _ = stopped.await;
            })
            .run()
            .await;
    });
    Island { addr, _stop: stop }
}

// ---- the browser -----------------------------------------------------------------------------

/// One chromedriver (leading its own process group, with Chromium under it) and a WebDriver
/// session on it; the group is killed by its PID when dropped.
/// Empty when the page fits the viewport's width; otherwise how far it sticks out and the first
/// elements whose right edge lies past the screen (to name the culprit in the failure).
const OVERFLOWING: &str = r#"
const root = document.documentElement, width = root.clientWidth;
if (root.scrollWidth <= width) return "";
const past = [...document.body.querySelectorAll("*")]
  .filter((e) => e.getBoundingClientRect().right > width + 0.5)
  .slice(0, 5)
  .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`);
return `${root.scrollWidth - width}px too wide: ${past.join(", ")}`;
"#;

struct Browser {
    client: Client,
    driver: Child,
    /// Where this test's artefacts go (its name).
    name: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.driver.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Browser {
    async fn start(name: &str) -> Browser {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let profile = tempfile::tempdir().expect("profile dir").keep();
        let driver = Command::new(std::env::var("CHROMEDRIVER").unwrap_or("chromedriver".into()))
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver starts (scripts/setup installs chromium-driver)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut args = vec![
            "--headless=new".to_string(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        if nix::unistd::geteuid().is_root() {
            args.push("--no-sandbox".into());
        }
        let caps = json!({"browserName": "chrome", "goog:chromeOptions": {"args": args}});
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let mut last = None;
        for _ in 0..100 {
            let mut builder = ClientBuilder::rustls().expect("rustls");
            builder.capabilities(caps.clone());
            match builder.connect(&endpoint).await {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        name: name.to_string(),
                    };
                }
                Err(error) => last = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no WebDriver session: {last:?}");
    }

    /// Runs the test's steps; if one fails, saves the screenshot and HTML first.
    async fn run<F>(self, steps: F)
    where
        F: AsyncFnOnce(&Browser),
    {
        let outcome = AssertUnwindSafe(steps(&self)).catch_unwind().await;
        if let Err(panic) = outcome {
            self.save_artefacts().await;
            std::panic::resume_unwind(panic);
        }
    }

    async fn save_artefacts(&self) {
        let dir = workspace().join("target/web-artefacts");
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(dir.join(format!("{}.png", self.name)), png);
        }
        if let Ok(html) = self.client.source().await {
            let _ = std::fs::write(dir.join(format!("{}.html", self.name)), html);
        }
        eprintln!("saved {}/{}.png and .html", dir.display(), self.name);
    }

    /// Captures the current page at desktop and phone width, and checks that nothing on it is
    /// wider than the screen.
    async fn capture(&self, page: &str) {
        let dir = workspace().join("target/web-screenshots");
        let _ = std::fs::create_dir_all(&dir);
        for (label, width, height) in [("desktop", 1280, 900), ("phone", 390, 844)] {
            let _ = self.client.set_window_size(width, height).await;
            if let Ok(png) = self.client.screenshot().await {
                let _ = std::fs::write(dir.join(format!("{page}-{label}.png")), png);
            }
            // Readable at this width means no sideways scrolling of the page itself (wide tables
            // scroll inside their own box).
            let overflow = self.client.execute(OVERFLOWING, vec![]).await;
            let overflow = overflow.expect("script runs");
            assert_eq!(
                overflow.as_str(),
                Some(""),
                "the {page} page is wider than the screen at {label} width ({width} px)"
            );
        }
        let _ = self.client.set_window_size(1280, 900).await;
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigates");
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("`{css}` on the page: {e}"))
    }

    async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("query")
            .is_empty()
    }

    /// The element's text. A page that refreshes itself (the job page) can replace the element
    /// between finding and reading it: then it is found again.
    async fn text(&self, css: &str) -> String {
        for _ in 0..5 {
            match self.find(css).await.text().await {
                Ok(text) => return text,
                Err(e) if stale(&e) => continue,
                Err(e) => panic!("text of `{css}`: {e}"),
            }
        }
        panic!("`{css}` kept being replaced while read")
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    async fn script(&self, js: &str) -> Value {
        self.client.execute(js, vec![]).await.expect("script runs")
    }

    /// Waits (up to 60 s) until `js` returns true.
    async fn until(&self, what: &str, js: &str) {
        for _ in 0..600 {
            if self.script(js).await == Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("gave up waiting until {what}");
    }

    async fn sign_in(&self, core: &str, username: &str, password: &str) {
        self.goto(&format!("{core}/login")).await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("#sign-in").await;
        self.until("signed in", "return !!document.getElementById('who')")
            .await;
    }

    /// Every control the keyboard should reach, and what Tab reaches from the top of the page:
    /// both as `tag#id` / `tag[name]` / link text.
    async fn tab_order(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        const DESCRIBE: &str = "const d = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : e.name ? '[' + e.name + ']' : ':' + (e.getAttribute('aria-label') || e.textContent.trim()).slice(0, 40));";
        let controls = self
            .script(&format!(
                "{DESCRIBE} return [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')].filter(e => !e.closest('[hidden]') && !e.disabled && e.getClientRects().length).map(d);"
            ))
            .await;
        self.script(
            "document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);",
        )
        .await;
        let mut reached = BTreeSet::new();
        for _ in 0..80 {
            // A key press of the keyboard itself (not typed into an element: a file input
            // would take the keys as a path).
            use fantoccini::actions::{InputSource, KeyAction, KeyActions};
            let tab: char = fantoccini::key::Key::Tab.into();
            let press = KeyActions::new("keyboard".into())
                .then(KeyAction::Down { value: tab })
                .then(KeyAction::Up { value: tab });
            self.client.perform_actions(press).await.expect("tab");
            let current = self
                .script(&format!(
                    "{DESCRIBE} const e = document.activeElement; return e && e !== document.body ? d(e) : null;"
                ))
                .await;
            if let Some(current) = current.as_str() {
                reached.insert(current.to_string());
            }
        }
        let controls = controls
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect();
        (controls, reached)
    }

    async fn assert_keyboard_reaches_everything(&self, page: &str) {
        let (controls, reached) = self.tab_order().await;
        let missed: Vec<&String> = controls.difference(&reached).collect();
        assert!(
            missed.is_empty(),
            "on {page}, Tab never reaches {missed:?} (reached {reached:?})"
        );
    }
}

async fn create_user(app: &TestApp, name: &str, password: &str, role: Role) {
    let admin = app
        .handles
        .session()
        .authenticate(&app.admin_key)
        .await
        .expect("admin");
    app.handles
        .session()
        .create_user(name.into(), Secret(password.into()), role, admin)
        .await
        .expect("user created");
}

// ---- end to end in the browser -----------------------------------------------------------------

#[tokio::test]
async fn a_user_signs_in_builds_a_collection_crawls_and_asks_for_a_streamed_cited_answer() {
    let app = spawn_app().await;
    let core = app.core.clone();
    let island = spawn_island(core.clone()).await;
    let browser = Browser::start("end_to_end").await;
    browser
        .run(async |b| {
            // Signed out, a page sends the visitor to log in, then back where they were going.
            b.goto(&format!("{core}/collections")).await;
            assert_eq!(b.path().await, "/login?next=%2Fcollections");
            b.capture("login").await;
            b.assert_keyboard_reaches_everything("login").await;
            b.fill("#username", "admin").await;
            b.fill("#password", "wrong password").await;
            b.click("#sign-in").await;
            assert!(b.text("#login-error").await.contains("username or password"));
            b.fill("#password", ADMIN_PASSWORD).await;
            b.click("#sign-in").await;
            b.find("#who").await;
            assert_eq!(b.path().await, "/collections");
            assert_eq!(b.text("#who").await, "admin");
            assert_eq!(b.text("#role").await, "admin");

            // Create a collection.
            b.fill("#new-name", "island").await;
            b.click("#create").await;
            b.find("#crawl-form").await;
            assert_eq!(b.path().await, "/collections/island");
            b.capture("collection").await;
            b.assert_keyboard_reaches_everything("a collection").await;

            // Crawl the site into it and watch the progress reach done without reloading.
            b.fill("#crawl-url", &island.url("/")).await;
            b.fill("#crawl-limit", "10").await;
            b.script("window.sameDocument = true;").await;
            b.click("#start-crawl").await;
            b.find("#job-progress").await;
            assert!(b.path().await.starts_with("/jobs/"));
            b.script("window.sameDocument = true;").await;
            b.until(
                "the crawl is completed",
                "return document.getElementById('job-status').textContent === 'completed'",
            )
            .await;
            assert_eq!(
                b.script("return window.sameDocument === true").await,
                Value::Bool(true),
                "the progress updated in place, without a reload"
            );
            assert_eq!(b.text("#job-done").await, "5");
            assert_eq!(b.text("#job-total").await, "5");
            // (The quality filter may keep a page too thin to be worth storing out.)
            let stored: u64 = b.text("#job-ingested").await.parse().expect("a number");
            assert!((1..=5).contains(&stored), "stored {stored}");
            assert!(!b.find("#cancel-form").await.is_displayed().await.expect("shown?"));
            b.capture("job").await;
            b.goto(&format!("{core}/jobs")).await;
            assert!(b.text("#jobs").await.contains("completed"));
            b.capture("jobs").await;
            b.assert_keyboard_reaches_everything("crawls").await;

            // Ask: the answer streams in, cites the page that holds it, and links to it.
            b.goto(&format!("{core}/collections")).await;
            assert!(b.text("#collections").await.contains("island"));
            b.capture("collections").await;
            b.goto(&format!("{core}/ask?collection=island")).await;
            b.fill("#question", "What colour is the lighthouse on Gull Island painted?")
                .await;
            b.click("#ask-button").await;
            b.until(
                "the answer is done",
                "return !!document.querySelector('#answer .citations a.source')",
            )
            .await;
            let answer = b.text("#answer .text").await;
            assert!(answer.contains("ultramarine"), "answer: {answer}");
            // (The built-in extractive answerer writes its answer in one piece; a model's
            // answer streams in many: see the next test.)
            let sources: Vec<String> = serde_json::from_value(
                b.script("return [...document.querySelectorAll('#answer a.source')].map(a => a.href)")
                    .await,
            )
            .expect("links");
            assert!(
                sources.iter().any(|s| s == &island.url("/lighthouse.html")),
                "sources: {sources:?}"
            );
            let marker = b.find("#answer a.cite").await;
            let href = marker.attr("href").await.expect("attr").unwrap_or_default();
            assert!(sources.contains(&href), "[n] links to a source: {href}");
            b.capture("ask").await;

            // "I don't know" is said as such; the earlier question stays above as conversation.
            b.fill("#question", "What is the airspeed of an unladen swallow in Zorblax units?")
                .await;
            b.click("#ask-button").await;
            b.until(
                "the second answer is done",
                "return document.querySelector('#answer .question')?.textContent.includes('Zorblax') && document.getElementById('answer').getAttribute('aria-busy') === 'false'",
            )
            .await;
            assert!(b.exists("#answer .unknown").await, "not answered is shown as such");
            assert!(b.text("#conversation").await.contains("lighthouse"));
            b.capture("ask-conversation").await;
            b.assert_keyboard_reaches_everything("ask").await;

            // Keys: create one, see it once, revoke it.
            b.goto(&format!("{core}/keys")).await;
            b.fill("#key-name", "ci-bot").await;
            b.find("#key-role").await.select_by_value("reader").await.expect("role");
            b.click("#create-key").await;
            let key = b.find("#new-key").await.prop("value").await.expect("value").unwrap_or_default();
            assert!(key.starts_with("aur_"), "key shown once: {key}");
            let status = reqwest::Client::new()
                .get(format!("{core}/v1/collections"))
                .bearer_auth(&key)
                .send()
                .await
                .expect("sent")
                .status();
            assert_eq!(status, 200, "the new key works");
            b.capture("keys").await;
            b.assert_keyboard_reaches_everything("keys").await;
            b.goto(&format!("{core}/keys")).await;
            assert!(!b.exists("#new-key").await, "a key is shown once only");
            b.click("button[aria-label='Revoke ci-bot']").await;
            b.find("#key-form").await;
            assert!(!b.text("main").await.contains("ci-bot"));
            let status = reqwest::Client::new()
                .get(format!("{core}/v1/collections"))
                .bearer_auth(&key)
                .send()
                .await
                .expect("sent")
                .status();
            assert_eq!(status, 401, "a revoked key is refused");

            // Delete with confirmation.
            b.goto(&format!("{core}/collections/island")).await;
            b.click("#delete-link").await;
            b.capture("delete").await;
            b.click("#cancel-delete").await;
            assert_eq!(b.path().await, "/collections/island");

            // Log out: the pages are refused.
            b.click("#logout").await;
            b.find("#sign-in").await;
            assert_eq!(b.path().await, "/login?signed_out=1");
            for page in ["/collections", "/ask", "/jobs", "/keys"] {
                b.goto(&format!("{core}{page}")).await;
                assert!(b.path().await.starts_with("/login?next="), "{page} after logout");
            }
        })
        .await;
    drop(island);
}

#[tokio::test]
async fn a_model_s_answer_streams_into_the_page_piece_by_piece() {
    use crate::common::llm_server::{app_answering_with, spawn_llm};
    let llm = spawn_llm(
        "The lighthouse on Gull Island is painted ultramarine blue [1]. It dates from 1871 [1].",
    )
    .await;
    let app = app_answering_with(&llm).await;
    let core = app.core.clone();
    let island = spawn_island(core.clone()).await;
    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/scrape",
            json!({"url": island.url("/lighthouse.html"), "ingest": {"collection": "island", "create": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let browser = Browser::start("streaming").await;
    browser
        .run(async |b| {
            b.sign_in(&core, "admin", ADMIN_PASSWORD).await;
            b.goto(&format!("{core}/ask?collection=island")).await;
            // Counts the pieces of text added while the answer is being written.
            b.script(
                "window.pieces = 0; new MutationObserver((m) => { if (document.querySelector('#answer .streaming')) window.pieces += m.length; })\
                 .observe(document.getElementById('answer'), {childList: true, subtree: true, characterData: true});",
            )
            .await;
            b.fill("#question", "What colour is the lighthouse?").await;
            b.click("#ask-button").await;
            b.until(
                "the answer is done",
                "return !!document.querySelector('#answer .citations a.source')",
            )
            .await;
            let pieces = b.script("return window.pieces").await.as_u64().unwrap_or(0);
            assert!(pieces >= 4, "the answer arrived in {pieces} pieces: not streamed");
            let text = b.text("#answer .text").await;
            assert!(text.contains("ultramarine blue [1]"), "{text}");
            let href = b.find("#answer a.cite").await.attr("href").await.expect("attr");
            assert_eq!(href.as_deref(), Some(island.url("/lighthouse.html").as_str()));
        })
        .await;
}

#[tokio::test]
async fn a_reader_sees_no_crawl_or_key_controls_and_the_server_refuses_them() {
    let app = spawn_app().await;
    let core = app.core.clone();
    create_user(&app, "rita", "reader-password-1", Role::Reader).await;
    app.post_json(Port::Core, "/v1/collections", json!({"name": "shared"}))
        .await;
    let browser = Browser::start("reader").await;
    browser
        .run(async |b| {
            b.sign_in(&core, "rita", "reader-password-1").await;
            assert_eq!(b.text("#role").await, "reader");
            assert!(!b.exists("#nav-jobs").await && !b.exists("#nav-keys").await);
            b.goto(&format!("{core}/collections/shared")).await;
            b.find("#ask-here").await;
            for control in ["#crawl-form", "#scrape-form", "#upload-form", "#delete-link"] {
                assert!(!b.exists(control).await, "a reader sees {control}");
            }
            b.goto(&format!("{core}/collections")).await;
            assert!(!b.exists("#create-collection").await);
            for page in ["/keys", "/jobs", "/collections/shared/delete"] {
                b.goto(&format!("{core}{page}")).await;
                assert!(
                    b.text("#error-message").await.contains("needs the"),
                    "{page} is refused to a reader"
                );
            }
            // And the server refuses the forms themselves, token or not.
            b.goto(&format!("{core}/ask")).await;
            let csrf = b
                .script("return document.querySelector('meta[name=csrf-token]').content")
                .await;
            let form_post = format!(
                "const body = new URLSearchParams({{csrf: {csrf}, url: 'http://127.0.0.1/', name: 'x', role: 'admin'}});\
                 return Promise.all(['/collections/shared/crawl', '/keys', '/collections'].map(p => fetch(p, {{method: 'POST', body}}).then(r => r.status)));"
            );
            let statuses = b.script(&form_post).await;
            assert_eq!(statuses, json!([403, 403, 403]));
        })
        .await;
}

#[tokio::test]
async fn a_form_posted_from_another_site_is_refused_and_injected_markup_never_runs() {
    let app = spawn_app().await;
    let core = app.core.clone();
    let island = spawn_island(core.clone()).await;
    // A crawled page whose title and text carry markup, in a collection.
    let scraped = app
        .post_json(
            Port::Core,
            "/v1/scrape",
            json!({"url": island.url("/markup.html"), "ingest": {"collection": "tricks", "create": true}}),
        )
        .await;
    assert_eq!(scraped.0, 200, "{}", scraped.1);
    let browser = Browser::start("security").await;
    browser
        .run(async |b| {
            b.sign_in(&core, "admin", ADMIN_PASSWORD).await;
            // Another origin (the site's port) auto-submits a form at Aurora.
            b.goto(&island.url("/attack.html")).await;
            b.until(
                "the forged form was answered",
                "return location.href.includes('/collections')",
            )
            .await;
            assert!(b.text("body").await.contains("cross-site request refused"));
            b.goto(&format!("{core}/collections")).await;
            assert!(!b.text("main").await.contains("forged-by-another-site"));

            // Markup from a crawled page is shown as text and never runs.
            b.goto(&format!("{core}/ask?collection=tricks")).await;
            b.fill("#question", "What does the sign of the smugglers' cave read?").await;
            b.click("#ask-button").await;
            b.until(
                "the answer is done",
                "return document.getElementById('answer').getAttribute('aria-busy') === 'false' && !!document.querySelector('#answer .citations')",
            )
            .await;
            let sources = b.text("#answer .citations").await;
            assert!(sources.contains("<script>window.pwned=1</script>"), "{sources}");
            // (Markdown escapes the bracket: `\<script>`; either way it is text.)
            let text = b.text("#answer .text").await.replace('\\', "");
            assert!(text.contains("<script>window.pwned=3</script>"), "{text}");
            assert_eq!(b.script("return window.pwned === undefined").await, Value::Bool(true));
            // And through a key's name.
            b.goto(&format!("{core}/keys")).await;
            b.fill("#key-name", "<img src=x onerror=window.pwned=4>").await;
            b.click("#create-key").await;
            assert!(b.text("#keys").await.contains("<img src=x onerror=window.pwned=4>"));
            assert_eq!(b.script("return window.pwned === undefined").await, Value::Bool(true));
        })
        .await;
}

// ---- security properties over plain HTTP --------------------------------------------------------

/// A client that keeps cookies, signed in through the login form.
async fn signed_in(app: &TestApp) -> (reqwest::Client, reqwest::Response) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = client
        .post(format!("{}/login", app.core))
        .form(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("next", "/keys"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 303);
    (client, response)
}

async fn csrf_of(client: &reqwest::Client, app: &TestApp) -> String {
    let page = client
        .get(format!("{}/collections", app.core))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("page");
    let start = page
        .find("name=\"csrf-token\" content=\"")
        .expect("csrf meta")
        + 27;
    page[start..start + page[start..].find('"').expect("end")].to_string()
}

#[tokio::test]
async fn the_session_cookie_is_httponly_strict_and_secure_over_tls() {
    let app = spawn_app().await;
    let (_, response) = signed_in(&app).await;
    assert_eq!(response.headers()["location"], "/keys");
    let cookies: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in &cookies {
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Strict"), "{cookie}");
        assert!(cookie.contains("Path=/"), "{cookie}");
        assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    }
    // Behind TLS (HSTS configured), the cookies are Secure.
    let tls = spawn_app_with(|s| s.server.hsts_max_age_secs = 3600).await;
    let (_, response) = signed_in(&tls).await;
    for cookie in response.headers().get_all("set-cookie") {
        assert!(
            cookie.to_str().expect("ascii").contains("; Secure"),
            "{cookie:?}"
        );
    }
    // A `next` pointing at another site is not followed.
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = client
        .post(format!("{}/login", app.core))
        .form(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.headers()["location"], "/ask");
}

#[tokio::test]
async fn state_changes_on_the_session_cookie_need_the_csrf_token() {
    let app = spawn_app().await;
    let (client, _) = signed_in(&app).await;
    let csrf = csrf_of(&client, &app).await;
    let create = |token: Option<&str>, name: &str| {
        let mut form = vec![("name", name.to_string())];
        if let Some(token) = token {
            form.push(("csrf", token.to_string()));
        }
        client
            .post(format!("{}/collections", app.core))
            .form(&form)
            .send()
    };
    assert_eq!(create(None, "no-token").await.expect("sent").status(), 403);
    assert_eq!(
        create(Some("forged"), "bad-token")
            .await
            .expect("sent")
            .status(),
        403
    );
    let made = create(Some(&csrf), "good-token").await.expect("sent");
    assert_eq!(made.status(), 303);
    assert_eq!(made.headers()["location"], "/collections/good-token");
    // The JSON API on the cookie: the token in X-CSRF-Token, or refused.
    let api = |token: Option<&str>| {
        let mut request = client
            .post(format!("{}/v1/collections", app.core))
            .json(&json!({"name": format!("api-{}", token.map_or(0, str::len))}));
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        request.send()
    };
    // A form body past the cap is refused as too large, not as malformed.
    let huge = client
        .post(format!("{}/collections", app.core))
        .form(&[("name", "x".repeat(100 * 1024)), ("csrf", csrf.clone())])
        .send()
        .await
        .expect("sent");
    assert_eq!(huge.status(), 413);
    assert_eq!(api(None).await.expect("sent").status(), 403);
    assert_eq!(api(Some("forged")).await.expect("sent").status(), 403);
    assert_eq!(api(Some(&csrf)).await.expect("sent").status(), 201);
    // Reading needs no token; a bearer credential never does (another site cannot send one).
    let list = client
        .get(format!("{}/v1/collections", app.core))
        .send()
        .await
        .expect("sent");
    assert_eq!(list.status(), 200);
    let bearer = app
        .post_json(Port::Core, "/v1/collections", json!({"name": "by-key"}))
        .await;
    assert_eq!(bearer.0, 201);
    // A browser that says the request is cross-site is refused even with the token.
    let cross = client
        .post(format!("{}/collections", app.core))
        .header("sec-fetch-site", "same-site")
        .form(&[("name", "cross"), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(cross.status(), 403);
}

#[tokio::test]
async fn every_page_carries_a_strict_csp_and_no_inline_script_or_style() {
    let app = spawn_app().await;
    app.post_json(Port::Core, "/v1/collections", json!({"name": "pages"}))
        .await;
    let (client, _) = signed_in(&app).await;
    let mut weight = 0;
    for page in [
        "/login",
        "/collections",
        "/collections/pages",
        "/collections/pages/delete",
        "/jobs",
        "/ask",
        "/keys",
    ] {
        let response = client
            .get(format!("{}{page}", app.core))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200, "{page}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .to_string();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(directive), "{page}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{page}: {csp}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{page}");
        let html = response.text().await.expect("html");
        let lower = html.to_lowercase();
        assert!(
            !lower.contains("<script>") && !lower.contains("<style"),
            "{page}"
        );
        assert!(
            !lower.contains(" style=") && !lower.contains(" onclick="),
            "{page}"
        );
        assert!(
            lower.matches("<script").count()
                == lower.matches("<script type=\"module\" src=").count(),
            "{page}"
        );
        weight = weight.max(html.len());
    }
    // The assets: what a page weighs before an answer, under 100 KB with the largest page.
    let mut assets = 0;
    for asset in ["/assets/app.js", "/assets/style.css"] {
        let response = app
            .anonymous
            .get(format!("{}{asset}", app.core))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200, "{asset}");
        assets += response.bytes().await.expect("body").len();
    }
    assert!(
        weight + assets < 100_000,
        "page weight {weight} + assets {assets} bytes"
    );
}

#[tokio::test]
async fn an_expired_web_session_is_renewed_once_for_requests_that_race() {
    let app = spawn_app_with(|s| {
        s.auth.access_ttl_secs = 1;
        s.auth.leeway_secs = 0;
    })
    .await;
    let (client, _) = signed_in(&app).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Eight requests at once with the same expired access cookie: one refresh, shared.
    let pages = futures::future::join_all(
        (0..8).map(|_| client.get(format!("{}/collections", app.core)).send()),
    )
    .await;
    for page in pages {
        assert_eq!(page.expect("sent").status(), 200);
    }
    // The session lives on with the renewed cookies.
    let page = client
        .get(format!("{}/ask", app.core))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn with_auth_off_the_pages_need_no_sign_in() {
    let app = spawn_app_with(|s| s.auth.enabled = false).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = client
        .get(format!("{}/login", app.core))
        .send()
        .await
        .expect("sent");
    assert_eq!(login.status(), 303);
    let page = client
        .get(format!("{}/collections", app.core))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("id=\"who\">local<"), "the local admin");
    assert!(!html.contains("id=\"logout\""), "nobody to log out");
}

/// Whether the element was replaced under the reader. Chromium does not always say "stale
/// element reference": when the node goes between the driver's lookup and its read, it reports
/// an unknown error from its inspector instead.
fn stale(error: &fantoccini::error::CmdError) -> bool {
    use fantoccini::error::{CmdError, ErrorStatus};
    matches!(error, CmdError::Standard(e)
        if e.error == ErrorStatus::StaleElementReference
            || (e.error == ErrorStatus::UnknownError
                && e.message.contains("does not belong to the document")))
}
