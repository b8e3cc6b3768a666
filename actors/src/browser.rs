//! BrowserPool: a ractor `factory` of `BrowserWorker`s, each owning at most one headless browser
//! session (the [`Browser`] port launches them), and the smart-mode decision of when a page
//! needs one at all ([`needs_render`]).
//!
//! Messages: [`BrowserJob::Render`] (+ a test-only panic), sent by scraper workers through
//! [`Handle::render`] while they hold the scrape's admission permit.
//!
//! Sessions: a worker launches its session on its first render and keeps it warm. It recycles
//! the session (closes it and starts a fresh one at once) after `max_pages` pages, and after any
//! failure that leaves it in doubt — a timeout, a crash, a killed driver — so the number of
//! running browsers returns to what it was. Each page starts from a clean slate inside the
//! session (cookies and storage cleared by the adapter).
//!
//! Restart: the pool is a permanent child of the root supervisor. A panicking worker is
//! replaced by the factory; its session is dropped with it, and dropping a session stops every
//! process it started. The render that was running fails with `Crashed`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ractor::RpcReplyPort;
use tokio::sync::Mutex;

use crate::Names;
use crate::pool::{self, JobHandler, PoolJob};
use crate::ports::{Browser, BrowserSession, RenderError, RenderRequest, Rendered};
use crate::supervisor::ChildSpec;

/// How long a warm session may take to prove it is alive before it is replaced.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct BrowserConfig {
    /// Sessions at most, hence pages rendered at once.
    pub pool_size: usize,
    /// Pages one session renders before it is replaced (bounds leaks inside the browser).
    pub max_pages: u32,
}

pub enum BrowserJob {
    Render {
        request: Box<RenderRequest>,
        reply: RpcReplyPort<Result<Rendered, RenderError>>,
    },
    #[cfg(feature = "fault-injection")]
    Panic,
}

impl PoolJob for BrowserJob {
    fn fail_unavailable(self) {
        match self {
            BrowserJob::Render { reply, .. } => {
                let _ = reply.send(Err(RenderError::Crashed(
                    "the browser pool is restarting".into(),
                )));
            }
            #[cfg(feature = "fault-injection")]
            BrowserJob::Panic => {}
        }
    }
}

/// One pool slot: its session, if running, and how many pages that session has rendered.
struct Slot {
    session: Option<Box<dyn BrowserSession>>,
    pages: u32,
}

pub struct BrowserWorker {
    browser: Arc<dyn Browser>,
    max_pages: u32,
    /// The worker runs one job at a time; the mutex only gives `run(&self)` a mutable slot and
    /// is never contended.
    slot: Mutex<Slot>,
}

impl JobHandler for BrowserWorker {
    type Job = BrowserJob;

    async fn run(&self, job: BrowserJob) {
        match job {
            BrowserJob::Render { request, reply } => {
                let mut slot = self.slot.lock().await;
                let started = Instant::now();
                let result = self.render(&mut slot, &request).await;
                metrics::histogram!("aurora_browser_render_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("aurora_browser_renders_total", "outcome" => outcome(&result))
                    .increment(1);
                let heal = match &result {
                    Ok(_) => slot.pages >= self.max_pages,
                    Err(error) => !error.session_is_sound(),
                };
                let _ = reply.send(result);
                if heal {
                    // Replaced right away, not at the next render: the pool keeps its size and
                    // the next page does not wait for a browser to start.
                    let reason = if slot.pages >= self.max_pages {
                        "recycled"
                    } else {
                        "failed"
                    };
                    self.replace(&mut slot, reason).await;
                }
            }
            #[cfg(feature = "fault-injection")]
            BrowserJob::Panic => panic!("fault injection: browser worker panics"),
        }
    }
}

impl BrowserWorker {
    async fn render(
        &self,
        slot: &mut Slot,
        request: &RenderRequest,
    ) -> Result<Rendered, RenderError> {
        let deadline = Instant::now() + request.timeout;
        // A warm session can have died while it idled (its browser killed or crashed): the page
        // is not at fault, so it goes to a fresh session instead. Probing first, rather than
        // retrying after a failure, keeps a page that crashes its own tab from running twice.
        if let Some(session) = slot.session.as_mut() {
            let probe = deadline
                .saturating_duration_since(Instant::now())
                .min(PROBE_TIMEOUT);
            if !tokio::time::timeout(probe, session.alive())
                .await
                .unwrap_or(false)
            {
                tracing::warn!("an idle browser session had died; starting a new one");
                self.replace(slot, "died_idle").await;
            }
        }
        self.render_once(slot, request, deadline).await
    }

    async fn render_once(
        &self,
        slot: &mut Slot,
        request: &RenderRequest,
        deadline: Instant,
    ) -> Result<Rendered, RenderError> {
        if slot.session.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let launched = tokio::time::timeout(left, self.browser.launch())
                .await
                .map_err(|_| RenderError::Timeout(request.timeout))??;
            slot.session = Some(launched);
            slot.pages = 0;
            metrics::gauge!("aurora_browser_sessions").increment(1.0);
        }
        let Some(session) = slot.session.as_mut() else {
            return Err(RenderError::Crashed("no session".into()));
        };
        slot.pages += 1;
        metrics::gauge!("aurora_browser_sessions_busy").increment(1.0);
        let left = deadline.saturating_duration_since(Instant::now());
        let mut budget = request.clone();
        budget.timeout = left;
        let result = match tokio::time::timeout(left, session.render(&budget)).await {
            Ok(Err(RenderError::Timeout(_))) | Err(_) => Err(RenderError::Timeout(request.timeout)),
            Ok(result) => result,
        };
        metrics::gauge!("aurora_browser_sessions_busy").decrement(1.0);
        result
    }

    /// Closes the slot's session and starts a fresh one. A failed start leaves the slot empty:
    /// the next render tries again.
    async fn replace(&self, slot: &mut Slot, reason: &'static str) {
        if let Some(old) = slot.session.take() {
            metrics::gauge!("aurora_browser_sessions").decrement(1.0);
            tracing::info!(reason, pids = ?old.pids(), "replacing a browser session");
            old.close().await;
        }
        metrics::counter!("aurora_browser_session_restarts_total", "reason" => reason).increment(1);
        slot.pages = 0;
        match self.browser.launch().await {
            Ok(session) => {
                metrics::gauge!("aurora_browser_sessions").increment(1.0);
                slot.session = Some(session);
            }
            Err(error) => tracing::warn!(%error, "could not start a browser session"),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.session.is_some() {
            // The session's own drop stops its processes; only the gauge is ours to fix.
            metrics::gauge!("aurora_browser_sessions").decrement(1.0);
        }
    }
}

fn outcome(result: &Result<Rendered, RenderError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(RenderError::Unavailable(_)) => "unavailable",
        Err(RenderError::Timeout(_)) => "timeout",
        Err(RenderError::Crashed(_)) => "crashed",
        Err(RenderError::Blocked { .. }) => "blocked",
        Err(RenderError::Navigation(_)) => "navigation_error",
        Err(RenderError::Action { .. }) => "action_error",
    }
}

/// How scraper workers reach the pool: looked up by name on every call.
#[derive(Clone)]
pub struct Handle {
    names: Arc<Names>,
    available: bool,
    next_job: Arc<AtomicU64>,
    /// Added to a render's own timeout: time to queue for a slot and to start a session.
    margin: Duration,
}

impl Handle {
    pub(crate) fn new(names: Arc<Names>, available: bool, margin: Duration) -> Self {
        Self {
            names,
            available,
            next_job: Arc::new(AtomicU64::new(0)),
            margin,
        }
    }

    /// Whether a browser is installed and enabled.
    pub fn available(&self) -> bool {
        self.available
    }

    pub async fn render(&self, request: RenderRequest) -> Result<Rendered, RenderError> {
        if !self.available {
            return Err(RenderError::Unavailable(
                "Aurora runs without a browser (install chromium and chromium-driver, see the README)"
                    .into(),
            ));
        }
        let budget = request.timeout + self.margin;
        let (tx, rx) = ractor::concurrency::oneshot();
        let key = self.next_job.fetch_add(1, Ordering::Relaxed);
        pool::dispatch(
            &self.names.browser,
            key,
            BrowserJob::Render {
                request: Box::new(request),
                reply: tx.into(),
            },
        );
        match tokio::time::timeout(budget, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RenderError::Crashed(
                "the browser worker stopped while rendering".into(),
            )),
            Err(_) => Err(RenderError::Timeout(budget)),
        }
    }
}

pub(crate) fn child_spec(
    names: Arc<Names>,
    browser: Arc<dyn Browser>,
    config: &BrowserConfig,
) -> ChildSpec {
    let max_pages = config.max_pages.max(1);
    pool::child_spec(
        "browser",
        "browser_worker",
        names.browser.clone(),
        names.root.clone(),
        config.pool_size.max(1),
        move || BrowserWorker {
            browser: browser.clone(),
            max_pages,
            slot: Mutex::new(Slot {
                session: None,
                pages: 0,
            }),
        },
    )
}

/// Whether a page fetched over HTTP looks like an application shell that only a browser can
/// fill: scripts, and next to no visible text — or an empty mount point, or a `noscript` asking
/// for JavaScript. A single pass over the HTML, no tree: a static page pays microseconds.
pub fn needs_render(html: &str) -> bool {
    let scan = scan(html);
    if scan.scripts == 0 {
        return false;
    }
    scan.visible_chars < 200
        || (scan.empty_mount && scan.visible_chars < 1_000)
        || (scan.noscript_asks_for_js && scan.visible_chars < ENOUGH_TEXT)
}

/// Visible characters past which no rule above can call a page a shell: the scan stops there, so
/// a real article costs a few kilobytes of scanning, not the whole page (smart mode must cost a
/// static site nothing).
const ENOUGH_TEXT: usize = 2_000;

/// Elements whose content is never shown as text, with their closing tags.
const HIDDEN: [(&str, &str); 5] = [
    ("script", "</script"),
    ("style", "</style"),
    ("noscript", "</noscript"),
    ("template", "</template"),
    ("svg", "</svg"),
];

/// The mount points of client-side applications (`<div id="root"></div>`), either quote.
const MOUNTS: [&str; 10] = [
    "id=\"root\"",
    "id='root'",
    "id=\"app\"",
    "id='app'",
    "id=\"__next\"",
    "id='__next'",
    "id=\"__nuxt\"",
    "id='__nuxt'",
    "id=\"svelte\"",
    "id='svelte'",
];

#[derive(Debug, Default, PartialEq)]
struct Scan {
    scripts: usize,
    visible_chars: usize,
    empty_mount: bool,
    noscript_asks_for_js: bool,
}

fn scan(html: &str) -> Scan {
    let mut scan = Scan::default();
    let lower = html.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut i = 0;
    let mut in_body = !lower.contains("<body");
    while i < bytes.len() {
        if bytes[i] != b'<' {
            if in_body && !bytes[i].is_ascii_whitespace() {
                scan.visible_chars += 1;
                if scan.visible_chars >= ENOUGH_TEXT {
                    return scan;
                }
            }
            i += 1;
            continue;
        }
        if lower[i..].starts_with("<!--") {
            i = lower[i..].find("-->").map_or(bytes.len(), |e| i + e + 3);
            continue;
        }
        let tag_end = lower[i..].find('>').map_or(bytes.len(), |e| i + e + 1);
        let tag = &lower[i..tag_end];
        if tag.starts_with("<body") {
            in_body = true;
        }
        let hidden = HIDDEN.into_iter().find(|(name, _)| {
            tag[1..]
                .strip_prefix(name)
                .is_some_and(|t| t.starts_with(['>', ' ', '\t', '\n', '\r', '/']))
        });
        if let Some((name, close)) = hidden {
            let end = lower[tag_end..]
                .find(close)
                .map_or(bytes.len(), |e| tag_end + e);
            let inner = &lower[tag_end.min(end)..end];
            match name {
                "script" => scan.scripts += 1,
                "noscript" if inner.contains("javascript") => scan.noscript_asks_for_js = true,
                _ => {}
            }
            i = end;
            continue;
        }
        if !scan.empty_mount
            && tag.contains("id=")
            && MOUNTS.iter().any(|mount| tag.contains(mount))
            && lower[tag_end..].trim_start().starts_with("</")
        {
            scan.empty_mount = true;
        }
        i = tag_end;
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_application_shell_needs_a_browser() {
        let shell = r#"<!doctype html><html><head><title>App</title>
            <script src="/static/app.3f2a.js" defer></script></head>
            <body><div id="root"></div></body></html>"#;
        assert!(needs_render(shell));
        let spa_with_nav = format!(
            r#"<html><body><nav>{}</nav><div id="app"></div>
            <script src="/bundle.js"></script></body></html>"#,
            "Home About Pricing Docs Blog ".repeat(10)
        );
        assert!(needs_render(&spa_with_nav));
        let noscript = format!(
            r#"<html><body><noscript>You need to enable JavaScript to run this app.</noscript>
            <header>{}</header><script src="/main.js"></script></body></html>"#,
            "Menu ".repeat(100)
        );
        assert!(needs_render(&noscript));
    }

    #[test]
    fn a_static_page_does_not() {
        let article = format!(
            r#"<html><head><script src="/analytics.js"></script></head><body>
            <article><h1>Title</h1><p>{}</p></article></body></html>"#,
            "Plenty of words served by the server itself. ".repeat(40)
        );
        assert!(!needs_render(&article));
        // Short, but no scripts: nothing a browser would add.
        assert!(!needs_render("<html><body><p>Hello.</p></body></html>"));
        // The marker text inside a script is not visible text, and a comment is not a tag.
        let scan = scan(
            "<body><!-- <div id=\"root\"></div> --><script>var a='<p>x</p>';</script><p>ab</p></body>",
        );
        assert_eq!(scan.scripts, 1);
        assert_eq!(scan.visible_chars, 2);
        assert!(!scan.empty_mount);
        // Past the text no shell has, the rest of the page is not read.
        let long = format!(
            "<body><p>{}</p><script src=/late.js></script></body>",
            "x".repeat(5_000)
        );
        let stopped = super::scan(&long);
        assert_eq!(stopped.scripts, 0);
        assert_eq!(stopped.visible_chars, ENOUGH_TEXT);
    }
}
