//! Domain types the actors and their ports speak: what a scrape asks for and what it yields.
//! No wire format lives here; the HTTP layer maps these to Firecrawl's camelCase or the core's
//! snake_case shapes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use url::Url;

/// Which representations of a page the caller wants back. Markdown is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Formats {
    pub markdown: bool,
    /// The cleaned HTML of the extracted content (after main-content and tag filtering).
    pub html: bool,
    /// The page exactly as served, decoded to UTF-8.
    pub raw_html: bool,
    pub links: bool,
}

impl Default for Formats {
    fn default() -> Self {
        Self {
            markdown: true,
            html: false,
            raw_html: false,
            links: false,
        }
    }
}

/// One page to fetch and extract. Serialisable (without its cancel token) because a crawl's
/// scrape options travel with the job to whichever replica fetches each page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScrapeRequest {
    pub url: Url,
    pub formats: Formats,
    /// Drop navigation, headers, footers, asides, forms and cookie banners.
    pub only_main_content: bool,
    /// CSS selectors: when non-empty, only matching elements make up the content.
    pub include_tags: Vec<String>,
    /// CSS selectors removed from the content.
    pub exclude_tags: Vec<String>,
    /// Extra request headers sent to the target (cookies, auth for the target site…).
    pub headers: Vec<(String, String)>,
    /// Total budget for the fetch: connect, redirects and body.
    pub timeout: Duration,
    /// Leave `data:` images out of the markdown (they are often megabytes of base64).
    pub remove_base64_images: bool,
    /// Accept invalid TLS certificates on the target (self-signed intranet sites).
    pub skip_tls_verification: bool,
    /// Whether the page goes through the headless browser (see [`RenderMode`]).
    #[serde(default)]
    pub render: RenderMode,
    /// Browser only: how long to let the page's scripts run after it loaded.
    #[serde(default)]
    pub wait_for: Duration,
    /// Browser only: a PNG of the page after rendering and actions.
    #[serde(default)]
    pub screenshot: Option<Screenshot>,
    /// Browser only: what to do on the page before it is captured, in order.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// Browser only: a phone's viewport and user agent.
    #[serde(default)]
    pub mobile: bool,
    /// Set by a crawl: once cancelled, a queued scrape never starts and a running one stops.
    #[serde(skip)]
    pub cancel: Option<CancellationToken>,
}

impl ScrapeRequest {
    /// Whether the request asks for something only a browser can do.
    pub fn needs_browser(&self) -> bool {
        self.wait_for > Duration::ZERO
            || self.screenshot.is_some()
            || !self.actions.is_empty()
            || self.mobile
    }
}

/// When a page is rendered in the headless browser rather than fetched over plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RenderMode {
    /// HTTP first; the browser only for a page that needs it (an application shell) or a
    /// request that asks for browser-only features. Without a browser, plain HTTP.
    #[default]
    Auto,
    /// Always the browser; an error when there is none.
    Always,
    /// Never the browser; browser-only features are refused.
    Never,
}

impl RenderMode {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "auto" => Some(Self::Auto),
            "always" => Some(Self::Always),
            "never" => Some(Self::Never),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Screenshot {
    /// The whole scrollable page rather than the viewport.
    pub full_page: bool,
}

/// One browser action, as Firecrawl defines them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Action {
    /// Wait a fixed time, or until `selector` is on the page.
    Wait {
        #[serde(default)]
        milliseconds: Option<u64>,
        #[serde(default)]
        selector: Option<String>,
    },
    Click {
        selector: String,
        /// Click every match rather than the first.
        #[serde(default)]
        all: bool,
    },
    /// Types into the focused element (click it first).
    Write {
        text: String,
    },
    /// A key such as `Enter`, `Tab`, `ArrowDown`, or a single character.
    Press {
        key: String,
    },
    Scroll {
        /// `down` (default) or `up`.
        #[serde(default)]
        direction: Option<String>,
        /// Scroll this element rather than the window.
        #[serde(default)]
        selector: Option<String>,
    },
    Screenshot {
        #[serde(default, rename = "fullPage")]
        full_page: bool,
    },
    /// Captures the page's HTML at this point.
    Scrape,
    ExecuteJavascript {
        script: String,
    },
}

/// What a page's actions produced, in the order the actions ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionResults {
    /// PNGs, base64.
    pub screenshots: Vec<String>,
    pub scrapes: Vec<ActionScrape>,
    pub javascript_returns: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionScrape {
    pub url: String,
    pub html: String,
}

impl ScrapeRequest {
    /// A request with the defaults Firecrawl uses: markdown only, main content, 30 s.
    pub fn new(url: Url) -> Self {
        Self {
            url,
            formats: Formats::default(),
            only_main_content: true,
            include_tags: Vec::new(),
            exclude_tags: Vec::new(),
            headers: Vec::new(),
            timeout: Duration::from_secs(30),
            remove_base64_images: true,
            skip_tls_verification: false,
            render: RenderMode::Auto,
            wait_for: Duration::ZERO,
            screenshot: None,
            actions: Vec::new(),
            mobile: false,
            cancel: None,
        }
    }
}

/// A scraped page. Optional representations are present exactly when asked for in [`Formats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// The URL that was asked for.
    pub source_url: Url,
    /// The URL the content came from, after redirects.
    pub url: Url,
    pub status_code: u16,
    pub content_type: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub language: Option<String>,
    pub canonical_url: Option<String>,
    /// Every `<meta name|property|itemprop=… content=…>` of the page, in document order per key.
    pub meta: BTreeMap<String, Vec<String>>,
    pub markdown: Option<String>,
    pub html: Option<String>,
    pub raw_html: Option<String>,
    pub links: Option<Vec<String>>,
    /// The body hit the size cap and was cut; the content covers what arrived.
    pub truncated: bool,
    /// Bytes of body received (after decompression).
    #[serde(default)]
    pub body_bytes: u64,
    /// Each URL that answered with a redirect, in order.
    pub redirects: Vec<Url>,
    pub fetched_at: SystemTime,
    pub timings: Timings,
    /// Things the caller should know that did not stop the scrape.
    pub warnings: Vec<String>,
    /// The server's `Retry-After`, when it sent one (429, 503): crawls slow down for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<Duration>,
    /// The content is the browser's rendering of the page, not the HTTP response.
    #[serde(default)]
    pub rendered: bool,
    /// A PNG of the rendered page, base64, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot: Option<String>,
    /// What the request's actions produced, when it had any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<ActionResults>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Timings {
    pub fetch: Duration,
    pub extract: Duration,
}

/// The media type of a `Content-Type` value, lower-cased: `Text/HTML; charset=x` → `text/html`.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}
