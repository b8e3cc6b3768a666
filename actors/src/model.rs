//! Domain types the actors and their ports speak: what a scrape asks for and what it yields.
//! No wire format lives here; the HTTP layer maps these to Firecrawl's camelCase or the core's
//! snake_case shapes.

use std::collections::BTreeMap;
use std::sync::Arc;
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
    /// A PDF becomes Markdown (true, Firecrawl's default) or comes back as the file itself,
    /// base64, in `markdown` and `html` (false), as Firecrawl documents it.
    #[serde(default = "yes")]
    pub parse_pdf: bool,
    /// Set by a crawl: once cancelled, a queued scrape never starts and a running one stops.
    #[serde(skip)]
    pub cancel: Option<CancellationToken>,
    /// Set by a batch job or crawl: hears how far a long recording's transcription has got.
    #[serde(skip)]
    pub progress: Option<ProgressSink>,
}

/// How far the transcription of one long recording has got, piece by piece.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptionProgress {
    pub pieces_done: u32,
    pub pieces_total: u32,
    /// Seconds of audio transcribed so far, and in all.
    pub seconds_done: f64,
    pub seconds_total: f64,
}

/// Where [`TranscriptionProgress`] is reported; called from the scraper, so it must not block.
#[derive(Clone)]
pub struct ProgressSink(pub Arc<dyn Fn(TranscriptionProgress) + Send + Sync>);

impl ProgressSink {
    pub fn new(report: impl Fn(TranscriptionProgress) + Send + Sync + 'static) -> Self {
        Self(Arc::new(report))
    }

    pub fn report(&self, progress: TranscriptionProgress) {
        (self.0)(progress);
    }
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
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

fn yes() -> bool {
    true
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
            parse_pdf: true,
            progress: None,
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
    /// A document (PDF, office file, EPUB…) rather than a web page: its kind and what it says
    /// about itself, and where each of its pages, slides or chapters starts in `markdown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<DocumentFacts>,
}

/// What a scraped or uploaded document says about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocumentFacts {
    /// `pdf`, `docx`, `pptx`, `odt`, `epub`, …
    pub kind: String,
    pub author: Option<String>,
    /// Pages of a PDF, slides of a presentation, chapters of an EPUB.
    pub parts: Option<u32>,
    /// The file's name: the upload's, or the last segment of the URL.
    pub file_name: Option<String>,
    /// Where each part starts in the Markdown, in order.
    pub marks: Vec<Mark>,
    /// Share of the text in lines repeated on most parts (running headers and footers, removed
    /// from the Markdown), for the quality filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boilerplate: Option<f32>,
}

/// Where a passage sits in its source, for a citation: `page 12`, `slides 3–4`, `t=01:23`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Locator {
    pub unit: Unit,
    /// First page/slide/chapter (1-based), or the start in milliseconds.
    pub start: u64,
    /// Last page/slide/chapter, or the end in milliseconds; `start` for a single part.
    pub end: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Page,
    Slide,
    Chapter,
    /// A time range of a recording, in milliseconds.
    Time,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Page => "page",
            Unit::Slide => "slide",
            Unit::Chapter => "chapter",
            Unit::Time => "time",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "page" => Some(Unit::Page),
            "slide" => Some(Unit::Slide),
            "chapter" => Some(Unit::Chapter),
            "time" => Some(Unit::Time),
            _ => None,
        }
    }
}

impl Locator {
    pub fn one(unit: Unit, n: u64) -> Self {
        Self {
            unit,
            start: n,
            end: n,
        }
    }

    /// The span covering both (same unit; `self` wins otherwise).
    pub fn merge(self, other: Locator) -> Locator {
        if self.unit != other.unit {
            return self;
        }
        Locator {
            unit: self.unit,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

impl std::fmt::Display for Locator {
    /// `page 12`, `pages 12–13`, `slide 3`, `t=01:23–01:41` (hours shown when there are any).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.unit == Unit::Time {
            return match self.start == self.end {
                true => write!(f, "t={}", clock(self.start)),
                false => write!(f, "t={}–{}", clock(self.start), clock(self.end)),
            };
        }
        let unit = self.unit.as_str();
        match self.start == self.end {
            true => write!(f, "{unit} {}", self.start),
            false => write!(f, "{unit}s {}–{}", self.start, self.end),
        }
    }
}

/// Milliseconds as `mm:ss`, or `h:mm:ss` past the hour.
fn clock(ms: u64) -> String {
    let seconds = ms / 1000;
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match h {
        0 => format!("{m:02}:{s:02}"),
        _ => format!("{h}:{m:02}:{s:02}"),
    }
}

/// A part of a document starts at this byte offset of its Markdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub offset: usize,
    pub locator: Locator,
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
