//! The browser adapter (the `Browser` port over fantoccini → chromedriver → Debian's chromium,
//! headless).
//!
//! Each session is its own chromedriver process, started in a process group of its own, with
//! one Chromium under it using a fresh profile folder. Dropping the session kills the whole
//! group at once (driver, browser, renderers, GPU and utility processes), reaps what it can and
//! removes the profile: a hung or crashed session never leaves processes behind. Aurora makes
//! itself the subreaper of its descendants so that Chromium processes orphaned by a dying
//! driver are reaped here rather than left as zombies.
//!
//! All of Chromium's traffic goes through [`GuardedProxy`] (no bypass, not even loopback), so
//! every request a page makes meets the SSRF guard. Downloads are denied; only http(s) pages are
//! rendered. Per page: extra headers, the mobile viewport and user agent are set over the
//! DevTools protocol (chromedriver's `goog/cdp/execute`), and cookies and storage are cleared
//! afterwards, so each page starts from a clean slate.
//!
//! Size: one file on purpose. The process group, the DevTools calls and the action runner all act
//! on one session type, and its clean-up rules (kill the group, reap, remove the profile) must hold
//! on every path through them.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aurora_actors::model::{Action, ActionResults, ActionScrape};
use aurora_actors::ports::{Browser, BrowserSession, RenderError, RenderRequest, Rendered};
use base64::Engine;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::wd::{TimeoutConfiguration, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::browser_proxy::{BLOCKED_TITLE, GuardedProxy};
use super::ssrf::AllowList;

/// A phone (the viewport and user agent of a recent iPhone, as Firecrawl's `mobile` emulates).
const MOBILE_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const DESKTOP_VIEWPORT: (u32, u32) = (1280, 800);

#[derive(Debug, Clone)]
pub struct ChromeConfig {
    pub chromedriver: PathBuf,
    /// Empty: chromedriver finds the browser itself (`/usr/bin/chromium` on Debian).
    pub chromium: Option<PathBuf>,
    /// Each session's profile folder is created under here and removed with the session.
    pub profile_root: PathBuf,
    pub launch_timeout: Duration,
    /// Chromium's renderer sandbox; forced off as root, where Chromium cannot start with it.
    pub sandbox: bool,
}

/// Launches Chromium sessions whose traffic passes the SSRF guard.
pub struct Chrome {
    config: ChromeConfig,
    proxy: GuardedProxy,
}

impl Chrome {
    /// Starts the guarded proxy the sessions will use. Sessions themselves start on demand.
    pub async fn start(
        config: ChromeConfig,
        allow: AllowList,
        connect_timeout: Duration,
    ) -> std::io::Result<Self> {
        // Chromium processes whose driver died are re-parented to us, not to init, and reaped
        // by the session's drop: no zombies whatever init runs (or fails to) in a container.
        match nix::sys::prctl::set_child_subreaper(true) {
            Ok(()) => start_reaper(),
            Err(error) => {
                tracing::warn!(%error, "could not become the subreaper of browser processes")
            }
        }
        Ok(Self {
            proxy: GuardedProxy::start(allow, connect_timeout).await?,
            config,
        })
    }

    /// Whether `chromedriver` can be found (a path, or a name on `PATH`).
    pub fn find_driver(driver: &std::path::Path) -> Option<PathBuf> {
        if driver.components().count() > 1 {
            return driver.is_file().then(|| driver.to_path_buf());
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(driver))
                .find(|candidate| candidate.is_file())
        })
    }

    fn capabilities(&self, profile: &std::path::Path) -> serde_json::Map<String, Value> {
        let mut args = vec![
            "--headless=new".to_string(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-default-apps".into(),
            "--disable-extensions".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--mute-audio".into(),
            "--disable-crash-reporter".into(),
            "--disable-breakpad".into(),
            "--hide-scrollbars".into(),
            format!(
                "--window-size={},{}",
                DESKTOP_VIEWPORT.0, DESKTOP_VIEWPORT.1
            ),
            format!("--user-data-dir={}", profile.display()),
            format!("--proxy-server=http://{}", self.proxy.addr()),
            // Chromium sends loopback straight out unless told otherwise; nothing may bypass.
            "--proxy-bypass-list=<-loopback>".into(),
            // WebRTC would otherwise open UDP sockets around the proxy.
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp".into(),
        ];
        if !self.config.sandbox || nix::unistd::geteuid().is_root() {
            args.push("--no-sandbox".into());
        }
        let mut options = json!({
            "args": args,
            "prefs": {
                "download_restrictions": 3,
                "download.prompt_for_download": false,
            },
        });
        if let Some(binary) = &self.config.chromium {
            options["binary"] = json!(binary.display().to_string());
        }
        let caps = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": options,
        });
        match caps {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    async fn launch_session(&self) -> Result<ChromeSession, RenderError> {
        // Process-wide, not per `Chrome`: two instances in one process (tests) must never hand
        // two browsers the same profile, which Chromium refuses.
        static LAUNCHED: AtomicU64 = AtomicU64::new(0);
        let n = LAUNCHED.fetch_add(1, Ordering::Relaxed);
        let profile = self
            .config
            .profile_root
            .join(format!("aurora-browser-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&profile).map_err(|e| {
            RenderError::Unavailable(format!(
                "cannot create the profile folder {}: {e}",
                profile.display()
            ))
        })?;
        let port = free_port().map_err(|e| RenderError::Crashed(format!("no free port: {e}")))?;
        let driver = tokio::process::Command::new(&self.config.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                RenderError::Unavailable(format!(
                    "cannot start {}: {e}",
                    self.config.chromedriver.display()
                ))
            })?;
        let mut group = ProcessGroup::new(driver, profile.clone());
        let endpoint = format!("http://127.0.0.1:{port}");
        group.wait_listening(port).await?;
        let mut builder = ClientBuilder::rustls()
            .map_err(|e| RenderError::Crashed(format!("TLS set-up for the driver: {e}")))?;
        builder.capabilities(self.capabilities(&profile));
        let client = builder.connect(&endpoint).await.map_err(|e| {
            RenderError::Crashed(format!("chromedriver could not start Chromium: {e}"))
        })?;
        cdp(
            &client,
            "Browser.setDownloadBehavior",
            json!({"behavior": "deny"}),
        )
        .await
        .map_err(|e| classify(e, self.config.launch_timeout))?;
        let desktop_ua = client
            .execute("return navigator.userAgent", vec![])
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
            // Headless Chromium says so in its user agent; sites treat that as a bot.
            .replace("HeadlessChrome", "Chrome");
        Ok(ChromeSession {
            client,
            group,
            desktop_ua,
        })
    }
}

impl Browser for Chrome {
    fn available(&self) -> bool {
        true
    }

    fn launch(&self) -> BoxFuture<'_, Result<Box<dyn BrowserSession>, RenderError>> {
        Box::pin(async move {
            let started = Instant::now();
            let session = tokio::time::timeout(self.config.launch_timeout, self.launch_session())
                .await
                .map_err(|_| RenderError::Timeout(self.config.launch_timeout))??;
            metrics::histogram!("aurora_browser_launch_seconds")
                .record(started.elapsed().as_secs_f64());
            tracing::info!(pids = ?session.pids(), "browser session started");
            Ok(Box::new(session) as Box<dyn BrowserSession>)
        })
    }
}

/// One chromedriver + Chromium, driven over WebDriver.
pub struct ChromeSession {
    client: Client,
    group: ProcessGroup,
    desktop_ua: String,
}

impl BrowserSession for ChromeSession {
    fn render<'a>(
        &'a mut self,
        request: &'a RenderRequest,
    ) -> BoxFuture<'a, Result<Rendered, RenderError>> {
        Box::pin(async move {
            let deadline = Instant::now() + request.timeout;
            let result = self.render_page(request, deadline).await;
            // Whatever happened, the next page must not see this one's cookies or storage.
            if result.is_ok() || result.as_ref().is_err_and(RenderError::session_is_sound) {
                self.reset().await;
            }
            result
        })
    }

    fn alive(&mut self) -> BoxFuture<'_, bool> {
        // A script needs the driver, the browser and a live renderer: it fails at once when any
        // of them is gone (the driver answers some commands, such as window handles, from what
        // it remembers).
        Box::pin(async move { self.client.execute("return 1", Vec::new()).await.is_ok() })
    }

    fn pids(&self) -> Vec<u32> {
        self.group.pids()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let ChromeSession { client, group, .. } = *self;
            // A polite close lets Chromium flush and exit; the group kill catches the rest.
            let _ = tokio::time::timeout(Duration::from_secs(2), client.close()).await;
            drop(group);
        })
    }
}

impl ChromeSession {
    async fn render_page(
        &mut self,
        request: &RenderRequest,
        deadline: Instant,
    ) -> Result<Rendered, RenderError> {
        let timeout = request.timeout;
        let fail = |e: CmdError| classify(e, timeout);
        let client = &self.client;
        let headers: serde_json::Map<String, Value> = request
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        cdp(client, "Network.enable", json!({}))
            .await
            .map_err(fail)?;
        cdp(
            client,
            "Network.setExtraHTTPHeaders",
            json!({ "headers": headers }),
        )
        .await
        .map_err(fail)?;
        if request.mobile {
            cdp(
                client,
                "Emulation.setDeviceMetricsOverride",
                json!({"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": true}),
            )
            .await
            .map_err(fail)?;
            cdp(
                client,
                "Emulation.setUserAgentOverride",
                json!({"userAgent": MOBILE_UA}),
            )
            .await
            .map_err(fail)?;
        } else {
            cdp(client, "Emulation.clearDeviceMetricsOverride", json!({}))
                .await
                .map_err(fail)?;
            cdp(
                client,
                "Emulation.setUserAgentOverride",
                json!({"userAgent": self.desktop_ua}),
            )
            .await
            .map_err(fail)?;
        }
        let left = remaining(deadline);
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(left),
                Some(left),
                Some(Duration::ZERO),
            ))
            .await
            .map_err(fail)?;
        client.goto(request.url.as_str()).await.map_err(fail)?;
        if client.title().await.map_err(fail)? == BLOCKED_TITLE {
            let reason = client
                .find(Locator::Id("aurora-proxy"))
                .await
                .map_err(fail)?
                .text()
                .await
                .map_err(fail)?;
            let target = client
                .current_url()
                .await
                .map_or_else(|_| request.url.to_string(), |u| u.to_string());
            return Err(RenderError::Blocked { target, reason });
        }
        settle(client, deadline).await.map_err(fail)?;
        if request.wait_for > Duration::ZERO {
            tokio::time::sleep(request.wait_for.min(remaining(deadline))).await;
        }
        let actions = if request.actions.is_empty() {
            None
        } else {
            Some(run_actions(client, &request.actions, deadline, timeout).await?)
        };
        let screenshot = match request.screenshot {
            Some(shot) => Some(screenshot(client, shot.full_page).await.map_err(fail)?),
            None => None,
        };
        let html = client.source().await.map_err(fail)?;
        let final_url = client.current_url().await.map_err(fail)?;
        let facts = client
            .execute(
                "const n = performance.getEntriesByType('navigation')[0];
                 return [n && n.responseStatus ? n.responseStatus : 0, document.contentType];",
                vec![],
            )
            .await
            .map_err(fail)?;
        let status = facts
            .get(0)
            .and_then(Value::as_u64)
            .filter(|s| *s > 0)
            .map_or(200, |s| s as u16);
        let content_type = facts.get(1).and_then(Value::as_str).map(str::to_string);
        Ok(Rendered {
            final_url,
            status,
            content_type,
            html,
            screenshot,
            actions,
        })
    }

    /// Cookies, cache and the last origin's storage cleared; the tab back on a blank page so
    /// no script of the last page keeps running.
    async fn reset(&self) {
        let client = &self.client;
        let origin = client
            .current_url()
            .await
            .ok()
            .map(|u| u.origin().ascii_serialization());
        let _ = cdp(client, "Network.clearBrowserCookies", json!({})).await;
        if let Some(origin) = origin.filter(|o| o != "null") {
            let _ = cdp(
                client,
                "Storage.clearDataForOrigin",
                json!({"origin": origin, "storageTypes": "all"}),
            )
            .await;
        }
        let _ = client.goto("about:blank").await;
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Waits until the page stops changing: its markup and its resource count unchanged over three
/// polls 100 ms apart (content fetched by scripts after the load event lands in that time), at
/// most 3 s or the deadline.
async fn settle(client: &Client, deadline: Instant) -> Result<(), CmdError> {
    let limit = Instant::now() + Duration::from_secs(3);
    let mut last = Value::Null;
    let mut stable = 0;
    while Instant::now() < limit.min(deadline) {
        let now = client
            .execute(
                "return [document.readyState, document.documentElement ? document.documentElement.outerHTML.length : 0, performance.getEntriesByType('resource').length];",
                vec![],
            )
            .await?;
        if now == last && now.get(0).and_then(Value::as_str) == Some("complete") {
            stable += 1;
            if stable >= 3 {
                return Ok(());
            }
        } else {
            stable = 0;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn run_actions(
    client: &Client,
    actions: &[Action],
    deadline: Instant,
    timeout: Duration,
) -> Result<ActionResults, RenderError> {
    let mut results = ActionResults::default();
    for (index, action) in actions.iter().enumerate() {
        let kind = action_kind(action);
        let failed = |reason: String| RenderError::Action {
            index,
            kind,
            reason,
        };
        // An error of the browser itself (a crash, the deadline) is not the action's fault.
        let lift = |e: CmdError| match classify(e, timeout) {
            RenderError::Navigation(reason) => failed(reason),
            other => other,
        };
        match action {
            Action::Wait {
                milliseconds,
                selector,
            } => match (milliseconds, selector) {
                (_, Some(selector)) => {
                    client
                        .wait()
                        .at_most(remaining(deadline))
                        .for_element(Locator::Css(selector))
                        .await
                        .map_err(|e| match e {
                            CmdError::WaitTimeout => {
                                failed(format!("`{selector}` did not appear in time"))
                            }
                            other => lift(other),
                        })?;
                }
                (Some(ms), None) => {
                    tokio::time::sleep(Duration::from_millis(*ms).min(remaining(deadline))).await;
                }
                (None, None) => {
                    return Err(failed("needs `milliseconds` or `selector`".into()));
                }
            },
            Action::Click { selector, all } => {
                let elements = if *all {
                    client
                        .find_all(Locator::Css(selector))
                        .await
                        .map_err(lift)?
                } else {
                    vec![client.find(Locator::Css(selector)).await.map_err(|e| {
                        if e.is_no_such_element() {
                            failed(format!("no element matches `{selector}`"))
                        } else {
                            lift(e)
                        }
                    })?]
                };
                if elements.is_empty() {
                    return Err(failed(format!("no element matches `{selector}`")));
                }
                for element in elements {
                    // A real click first; an element covered by another one still gets a
                    // script click, as a user's intent is clear.
                    if element.click().await.is_err() {
                        let handle = serde_json::to_value(&element).unwrap_or(Value::Null);
                        client
                            .execute("arguments[0].click();", vec![handle])
                            .await
                            .map_err(lift)?;
                    }
                }
                settle(client, deadline).await.map_err(lift)?;
            }
            Action::Write { text } => {
                client
                    .active_element()
                    .await
                    .map_err(lift)?
                    .send_keys(text)
                    .await
                    .map_err(lift)?;
            }
            Action::Press { key } => {
                let Some(key) = key_code(key) else {
                    return Err(failed(format!("unknown key `{key}`")));
                };
                client
                    .active_element()
                    .await
                    .map_err(lift)?
                    .send_keys(&key)
                    .await
                    .map_err(lift)?;
                settle(client, deadline).await.map_err(lift)?;
            }
            Action::Scroll {
                direction,
                selector,
            } => {
                let sign = match direction.as_deref() {
                    None | Some("down") => 1,
                    Some("up") => -1,
                    Some(other) => {
                        return Err(failed(format!(
                            "direction must be `up` or `down`, got `{other}`"
                        )));
                    }
                };
                let moved = client
                    .execute(
                        "const [selector, sign] = arguments;
                         const target = selector ? document.querySelector(selector) : null;
                         if (selector && !target) return false;
                         const by = sign * (target ? target.clientHeight : window.innerHeight);
                         (target || window).scrollBy(0, by);
                         return true;",
                        vec![json!(selector), json!(sign)],
                    )
                    .await
                    .map_err(lift)?;
                if moved == Value::Bool(false) {
                    return Err(failed(format!(
                        "no element matches `{}`",
                        selector.as_deref().unwrap_or_default()
                    )));
                }
                settle(client, deadline).await.map_err(lift)?;
            }
            Action::Screenshot { full_page } => {
                let png = screenshot(client, *full_page).await.map_err(lift)?;
                results
                    .screenshots
                    .push(base64::engine::general_purpose::STANDARD.encode(&png));
            }
            Action::Scrape => {
                let url = client.current_url().await.map_err(lift)?.to_string();
                let html = client.source().await.map_err(lift)?;
                results.scrapes.push(ActionScrape { url, html });
            }
            Action::ExecuteJavascript { script } => {
                let value = evaluate(client, script).await.map_err(lift)?;
                results.javascript_returns.push(json!({
                    "type": json_type(&value),
                    "value": value,
                }));
            }
        }
    }
    Ok(results)
}

/// Runs `script` as Firecrawl does: the value of its last expression; a script with a
/// top-level `return` runs as a function body instead.
async fn evaluate(client: &Client, script: &str) -> Result<Value, CmdError> {
    match client
        .execute("return eval(arguments[0]);", vec![json!(script)])
        .await
    {
        Err(CmdError::Standard(e)) if e.message.contains("Illegal return") => {
            client.execute(script, vec![]).await
        }
        other => other,
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn action_kind(action: &Action) -> &'static str {
    match action {
        Action::Wait { .. } => "wait",
        Action::Click { .. } => "click",
        Action::Write { .. } => "write",
        Action::Press { .. } => "press",
        Action::Scroll { .. } => "scroll",
        Action::Screenshot { .. } => "screenshot",
        Action::Scrape => "scrape",
        Action::ExecuteJavascript { .. } => "executeJavascript",
    }
}

/// Firecrawl's key names (those of Playwright) → WebDriver's key code points.
fn key_code(key: &str) -> Option<String> {
    let code = match key {
        "Enter" => '\u{E007}',
        "Tab" => '\u{E004}',
        "Escape" => '\u{E00C}',
        "Backspace" => '\u{E003}',
        "Delete" => '\u{E017}',
        "Space" | " " => ' ',
        "ArrowUp" => '\u{E013}',
        "ArrowDown" => '\u{E015}',
        "ArrowLeft" => '\u{E012}',
        "ArrowRight" => '\u{E014}',
        "PageUp" => '\u{E00E}',
        "PageDown" => '\u{E00F}',
        "Home" => '\u{E011}',
        "End" => '\u{E010}',
        single if single.chars().count() == 1 => return Some(single.to_string()),
        _ => return None,
    };
    Some(code.to_string())
}

/// A PNG of the viewport, or of the whole page.
async fn screenshot(client: &Client, full_page: bool) -> Result<Vec<u8>, CmdError> {
    if !full_page {
        return client.screenshot().await;
    }
    let metrics = cdp(client, "Page.getLayoutMetrics", json!({})).await?;
    let size = &metrics["cssContentSize"];
    let width = size["width"].as_f64().unwrap_or(DESKTOP_VIEWPORT.0 as f64);
    // Bounded: an infinite page would otherwise make a gigapixel image.
    let height = size["height"]
        .as_f64()
        .unwrap_or(DESKTOP_VIEWPORT.1 as f64)
        .min(16_384.0);
    let shot = cdp(
        client,
        "Page.captureScreenshot",
        json!({
            "format": "png",
            "captureBeyondViewport": true,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        }),
    )
    .await?;
    base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap_or_default())
        .map_err(|e| CmdError::NotJson(format!("screenshot is not base64: {e}")))
}

/// A DevTools protocol command through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"cmd": self.cmd, "params": self.params}).to_string()),
        )
    }
}

async fn cdp(client: &Client, cmd: &'static str, params: Value) -> Result<Value, CmdError> {
    client.issue_cmd(Cdp { cmd, params }).await
}

/// A WebDriver failure, sorted by what it means for the page and the session.
fn classify(error: CmdError, timeout: Duration) -> RenderError {
    match &error {
        CmdError::Standard(e) => {
            let message = e.message.to_string();
            let lower = message.to_ascii_lowercase();
            if matches!(e.error, ErrorStatus::Timeout | ErrorStatus::ScriptTimeout)
                || lower.contains("timed out receiving message from renderer")
            {
                RenderError::Timeout(timeout)
            } else if lower.contains("crash")
                || lower.contains("not reachable")
                || lower.contains("disconnected")
                || lower.contains("invalid session")
                || matches!(
                    e.error,
                    ErrorStatus::InvalidSessionId | ErrorStatus::SessionNotCreated
                )
            {
                RenderError::Crashed(message)
            } else if lower.contains("net::err_") {
                RenderError::Navigation(message)
            } else {
                RenderError::Navigation(format!("{}: {message}", e.error))
            }
        }
        CmdError::WaitTimeout => RenderError::Timeout(timeout),
        // The driver is gone or answers nonsense.
        _ => RenderError::Crashed(error.to_string()),
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// A session's processes: chromedriver leads a process group that Chromium and its helpers
/// join. Dropping it kills the group, reaps what was ours and removes the profile.
struct ProcessGroup {
    driver: Option<tokio::process::Child>,
    pgid: Option<u32>,
    profile: PathBuf,
}

impl ProcessGroup {
    fn new(driver: tokio::process::Child, profile: PathBuf) -> Self {
        Self {
            pgid: driver.id(),
            driver: Some(driver),
            profile,
        }
    }

    /// Waits until chromedriver accepts connections (or exits).
    async fn wait_listening(&mut self, port: u16) -> Result<(), RenderError> {
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if let Some(driver) = self.driver.as_mut()
                && let Ok(Some(status)) = driver.try_wait()
            {
                return Err(RenderError::Unavailable(format!(
                    "chromedriver exited at start ({status})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every live process of the group, driver first.
    fn pids(&self) -> Vec<u32> {
        let Some(pgid) = self.pgid else {
            return Vec::new();
        };
        let mut pids = group_members(pgid);
        pids.sort_by_key(|pid| *pid != pgid);
        pids
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            // The driver is tokio's child (reaped by it, kill_on_drop); the others were its
            // children and are now ours, reaped by the reaper.
            let group = nix::unistd::Pid::from_raw(pgid as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
        drop(self.driver.take());
        let profile = std::mem::take(&mut self.profile);
        if !profile.as_os_str().is_empty() {
            // Chromium may still be writing for a moment after the kill.
            std::thread::spawn(move || {
                for _ in 0..20 {
                    if std::fs::remove_dir_all(&profile).is_ok() || !profile.exists() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
    }
}

/// Reaps the browser processes that were re-parented to us once they exit: Chromium helpers
/// whose driver died, and the intermediate processes of crashpad's daemonising double fork
/// (in process groups of their own, so no session's kill sees them). Only processes named like
/// Chromium's are touched: everything else we start is waited for by its owner (tokio reaps
/// chromedriver).
fn start_reaper() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("browser-reaper".into())
            .spawn(|| {
                let me = std::process::id();
                loop {
                    for pid in browser_zombies(me) {
                        let _ = nix::sys::wait::waitpid(
                            nix::unistd::Pid::from_raw(pid as i32),
                            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                        );
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "could not start the browser process reaper");
        }
    });
}

/// Our zombie children that are Chromium processes.
fn browser_zombies(me: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let comm = head.split_once('(').map_or("", |(_, c)| c);
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() == Some(&"Z")
                && fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(me)
                && (comm.starts_with("chrome") || comm.starts_with("chromium"))
                && comm != "chromedriver"
        })
        .collect()
}

/// The processes whose process group is `pgid`, from `/proc`.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
                    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                    fields.get(2)?.parse::<u32>().ok()
                })
                == Some(pgid)
        })
        .collect()
}
