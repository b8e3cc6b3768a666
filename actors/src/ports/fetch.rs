//! Reaching the web: plain HTTP fetches and posts (`Fetcher`), and headless browser sessions
//! (`Browser`) for pages that need JavaScript.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use url::Url;

/// One HTTP GET, with redirects followed under the fetcher's own rules.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub url: Url,
    pub headers: Vec<(String, String)>,
    /// Budget for the whole exchange: resolution, connect, every redirect hop and the body.
    pub timeout: Duration,
    pub skip_tls_verification: bool,
}

#[derive(Debug, Clone)]
pub struct FetchResponse {
    /// Where the body came from, after redirects.
    pub final_url: Url,
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// The body was longer than the fetcher's cap and was cut there.
    pub truncated: bool,
    /// Each URL that answered with a redirect, in order.
    pub redirects: Vec<Url>,
    /// The server's `Retry-After` (seconds form), sent with 429 and 503.
    pub retry_after: Option<Duration>,
}

/// One HTTP POST of a JSON body (a webhook delivery). Redirects are not followed: a receiver
/// answers for itself.
#[derive(Debug, Clone)]
pub struct PostRequest {
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Arc<Vec<u8>>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("unsupported URL scheme `{0}`: only http and https can be fetched")]
    UnsupportedScheme(String),
    /// The SSRF guard refused the destination.
    #[error("refused to fetch {target}: {reason}")]
    Blocked { target: String, reason: String },
    #[error("the target did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// DNS failure, refused or reset connection, TLS failure…
    #[error("could not reach the target: {0}")]
    Unreachable(String),
    #[error("too many redirects: stopped after {limit} at {last}")]
    TooManyRedirects { limit: usize, last: Url },
    #[error("redirect loop: {0} redirects back to a URL already visited")]
    RedirectLoop(Url),
    #[error("invalid redirect: {0}")]
    BadRedirect(String),
    #[error("invalid request header: {0}")]
    InvalidHeader(String),
}

/// Fetches a URL. Implementations enforce the SSRF policy, redirect limits and the body cap.
pub trait Fetcher: Send + Sync + 'static {
    fn fetch(&self, request: FetchRequest) -> BoxFuture<'_, Result<FetchResponse, FetchError>>;

    /// Whether the fetcher's policy (SSRF guard) lets `url` through, checked before a job is
    /// accepted so that a refused crawl starts nothing. Resolution failures are not refusals.
    fn admits<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<(), FetchError>> {
        let _ = url;
        Box::pin(async { Ok(()) })
    }

    /// Posts `request.body` as JSON under the same policy as fetches; the receiver's status.
    fn post(&self, request: PostRequest) -> BoxFuture<'_, Result<u16, FetchError>>;
}

/// One page for the headless browser: load it, let its scripts run, act on it, capture it.
#[derive(Debug, Clone)]
pub struct RenderRequest {
    pub url: Url,
    /// Sent with every request the page makes to its own origin.
    pub headers: Vec<(String, String)>,
    /// Budget for the whole render: navigation, waiting, actions and capture.
    pub timeout: Duration,
    /// Extra time for the page's scripts after the load event.
    pub wait_for: Duration,
    pub actions: Vec<crate::model::Action>,
    pub screenshot: Option<crate::model::Screenshot>,
    pub mobile: bool,
}

/// A rendered page: the live DOM after scripts and actions.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub final_url: Url,
    /// The navigation's HTTP status as the browser saw it (200 when it cannot tell).
    pub status: u16,
    pub content_type: Option<String>,
    pub html: String,
    /// PNG bytes, when the request asked for a screenshot.
    pub screenshot: Option<Vec<u8>>,
    pub actions: Option<crate::model::ActionResults>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// No browser is installed or configured.
    #[error("no browser is available: {0}")]
    Unavailable(String),
    #[error("the page did not finish rendering within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The browser, its driver or the page's tab died.
    #[error("the browser failed: {0}")]
    Crashed(String),
    /// The SSRF guard refused the page itself.
    #[error("refused to render {target}: {reason}")]
    Blocked { target: String, reason: String },
    #[error("the browser could not load the page: {0}")]
    Navigation(String),
    /// Action number `index` (from 0) could not be carried out; nothing was captured.
    #[error("action {index} ({kind}) failed: {reason}")]
    Action {
        index: usize,
        kind: &'static str,
        reason: String,
    },
}

impl RenderError {
    /// Whether the session that produced this error may serve another page. A timeout or a
    /// crash leaves it in an unknown state; a refused page or a failed action does not.
    pub fn session_is_sound(&self) -> bool {
        matches!(
            self,
            Self::Blocked { .. } | Self::Action { .. } | Self::Navigation(_)
        )
    }
}

/// Starts browser sessions. The pool in [`crate::browser`] decides how many, when to recycle
/// them and what to do when one fails; the implementation only launches and drives one.
pub trait Browser: Send + Sync + 'static {
    /// Whether sessions can be launched at all (a browser is installed and enabled).
    fn available(&self) -> bool;

    /// A new session with nothing in it: own processes, own profile.
    fn launch(&self) -> BoxFuture<'_, Result<Box<dyn BrowserSession>, RenderError>>;
}

/// One running browser. Dropping it must stop every process it started, whatever state it is in.
pub trait BrowserSession: Send + 'static {
    fn render<'a>(
        &'a mut self,
        request: &'a RenderRequest,
    ) -> BoxFuture<'a, Result<Rendered, RenderError>>;

    /// Whether the session still answers (its driver and browser are running). Checked before
    /// a warm session takes a page, so a browser that died while idle costs that page nothing.
    fn alive(&mut self) -> BoxFuture<'_, bool>;

    /// The operating-system processes this session started (driver first), for diagnostics.
    fn pids(&self) -> Vec<u32>;

    /// Ends the session politely, then stops its processes.
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}
