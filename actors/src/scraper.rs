//! ScraperActor — in code a ractor `Factory` of [`ScraperWorker`]s registered as
//! `Names::scraper` (a pool, so fetches run side by side): each fetches one URL and extracts
//! markdown, metadata and links from it.
//!
//! Messages: [`ScrapeJob::Scrape`] (+ a test-only panic), dispatched by the router with the
//! caller's reply port and its admission permit. A worker awaits the fetch (I/O) and runs the
//! extraction (CPU) on the blocking pool, so async threads never stall on a large page.
//!
//! Rendering ([`RenderMode`]): `auto` fetches over HTTP and sends the page to the browser pool
//! only when it looks like an application shell ([`crate::browser::needs_render`]) or the
//! request wants a browser-only feature; `always` renders every page; `never` none.
//!
//! Restart: the pool is a permanent child of the root supervisor. The factory replaces a crashed
//! worker at once and keeps the jobs queued for it; the job that was running is lost, and the
//! caller's handle retries it once. Each replacement is reported to the root, which counts it
//! against its restart intensity.
//!
//! Size: the worker's fetch, escalation to the browser and hand-off to extraction read as one
//! sequence; extraction itself lives in `scraper/`.

pub mod charset;
pub mod extract;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ractor::RpcReplyPort;

use crate::Names;
use crate::admission::{AdmissionPermit, Refusal};
use crate::browser;
use crate::ingest::document::{self, DocumentError, Hint, Kind};
use crate::model::{Page, RenderMode, ScrapeRequest, Timings};
use crate::pool::{self, JobHandler, PoolJob};
use crate::ports::{
    Audio, FetchError, FetchRequest, FetchResponse, Fetcher, RenderError, RenderRequest,
    TranscribeError, Transcriber,
};
use crate::supervisor::ChildSpec;

/// Why a scrape produced no page. A target answering 4xx/5xx is *not* an error: it is a page
/// with that status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrapeError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Render(#[from] RenderError),
    /// A browser-only feature with `render: never`.
    #[error("{0} needs the browser, but the request says `render: never`")]
    BrowserOnly(String),
    /// A document (PDF, office file…) that could not be read, or a type Aurora cannot read.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// A recording that could not be transcribed.
    #[error(transparent)]
    Transcribe(#[from] TranscribeError),
    #[error("invalid CSS selector `{selector}`: {reason}")]
    InvalidSelector { selector: String, reason: String },
    #[error("too many requests in flight; retry shortly")]
    Overloaded,
    #[error("the {0} is restarting; retry shortly")]
    Unavailable(&'static str),
    #[error("the scrape did not finish within {} ms", .0.as_millis())]
    DeadlineExceeded(Duration),
    #[error("extraction failed: {0}")]
    Internal(String),
    /// The crawl this scrape belonged to was cancelled.
    #[error("cancelled")]
    Cancelled,
}

pub enum ScrapeJob {
    Scrape {
        request: Box<ScrapeRequest>,
        reply: RpcReplyPort<Result<Page, ScrapeError>>,
        permit: AdmissionPermit,
    },
    #[cfg(feature = "fault-injection")]
    Panic,
}

impl PoolJob for ScrapeJob {
    fn fail_unavailable(self) {
        match self {
            ScrapeJob::Scrape { reply, .. } => {
                let _ = reply.send(Err(ScrapeError::Unavailable("scraper pool")));
            }
            #[cfg(feature = "fault-injection")]
            ScrapeJob::Panic => {}
        }
    }
}

pub struct ScraperWorker {
    fetcher: Arc<dyn Fetcher>,
    browser: browser::Handle,
    transcriber: Arc<dyn Transcriber>,
}

impl JobHandler for ScraperWorker {
    type Job = ScrapeJob;

    async fn run(&self, job: ScrapeJob) {
        match job {
            ScrapeJob::Scrape {
                request,
                reply,
                permit,
            } => {
                let tools = Tools {
                    fetcher: self.fetcher.as_ref(),
                    browser: Some(&self.browser),
                    transcriber: Some(self.transcriber.as_ref()),
                };
                let result = scrape(&tools, *request).await;
                let _ = reply.send(result);
                drop(permit);
            }
            #[cfg(feature = "fault-injection")]
            ScrapeJob::Panic => panic!("fault injection: scraper worker panics"),
        }
    }
}

/// Extractions running at once, process-wide: one per core.
static EXTRACT_SLOTS: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    });

/// What a scrape may use besides the network: the browser for pages that need one, the
/// transcriber for recordings. The CLI and benches pass neither; the pool passes both.
pub struct Tools<'a> {
    pub fetcher: &'a dyn Fetcher,
    pub browser: Option<&'a browser::Handle>,
    pub transcriber: Option<&'a dyn Transcriber>,
}

/// Fetch (or render) + extract one page. Public for the CLI's and benches' sake; the pool is the
/// normal path.
pub async fn scrape(tools: &Tools<'_>, request: ScrapeRequest) -> Result<Page, ScrapeError> {
    let result = match request.cancel.clone() {
        Some(cancel) => tokio::select! {
            biased;
            () = cancel.cancelled() => Err(ScrapeError::Cancelled),
            result = scrape_inner(tools, request) => result,
        },
        None => scrape_inner(tools, request).await,
    };
    metrics::counter!("aurora_scrapes_total", "outcome" => outcome_label(&result)).increment(1);
    result
}

async fn scrape_inner(tools: &Tools<'_>, request: ScrapeRequest) -> Result<Page, ScrapeError> {
    let (fetcher, browser) = (tools.fetcher, tools.browser);
    // Selectors are checked before any network traffic: a typo should not cost a fetch.
    let selectors = extract::Selectors::compile(&request.include_tags, &request.exclude_tags)?;
    if request.needs_browser() {
        if request.render == RenderMode::Never {
            return Err(ScrapeError::BrowserOnly(browser_features(&request)));
        }
        return rendered(fetcher, browser, request, selectors, Vec::new()).await;
    }
    if request.render == RenderMode::Always {
        return rendered(fetcher, browser, request, selectors, Vec::new()).await;
    }
    let started = Instant::now();
    let fetched = fetcher
        .fetch(FetchRequest {
            url: request.url.clone(),
            headers: request.headers.clone(),
            timeout: request.timeout,
            skip_tls_verification: request.skip_tls_verification,
        })
        .await?;
    let fetch_time = started.elapsed();
    metrics::histogram!("aurora_scrape_fetch_duration_seconds").record(fetch_time.as_secs_f64());
    metrics::counter!("aurora_scrape_fetched_bytes_total").increment(fetched.body.len() as u64);

    // Smart mode: a page that only a browser can fill goes to the browser, when there is one.
    let shell = request.render == RenderMode::Auto
        && fetched.status < 400
        && extract::is_html(fetched.content_type.as_deref().unwrap_or(""), &fetched.body)
        && browser::needs_render(&String::from_utf8_lossy(&fetched.body));
    let available = browser.is_some_and(browser::Handle::available);
    metrics::counter!("aurora_render_decisions_total", "decision" => match (shell, available) {
        (false, _) => "http",
        (true, true) => "browser",
        (true, false) => "http_no_browser",
    })
    .increment(1);
    if shell && available {
        let fallback = (request.clone(), fetched.clone(), fetch_time);
        return match rendered(fetcher, browser, request, selectors.clone(), Vec::new()).await {
            Ok(page) => Ok(page),
            // The HTTP page is still a page: better an application shell with a warning than
            // nothing at all.
            Err(ScrapeError::Render(error)) => {
                let (request, fetched, fetch_time) = fallback;
                let warning = format!(
                    "the page looks like it needs JavaScript, but rendering it failed ({error}); this is the page as served over HTTP"
                );
                extract_page(request, fetched, fetch_time, selectors, vec![warning]).await
            }
            Err(other) => Err(other),
        };
    }
    // A recording is transcribed (awaiting the transcriber) rather than extracted; a web page
    // is not even sniffed for it.
    let content_type = fetched.content_type.as_deref().unwrap_or("");
    if fetched.status < 400
        && !extract::is_html(content_type, &fetched.body)
        && let Ok(Kind::Audio(mime)) = document::detect(
            &fetched.body,
            Hint {
                content_type: Some(content_type),
                file_name: None,
            },
        )
    {
        return transcribed_page(tools.transcriber, request, fetched, fetch_time, mime).await;
    }
    let mut warnings = Vec::new();
    if shell {
        warnings.push(
            "the page looks like it needs JavaScript to show its content, and Aurora runs without a browser"
                .to_string(),
        );
    }
    extract_page(request, fetched, fetch_time, selectors, warnings).await
}

/// The request's browser-only features, named as the API names them.
fn browser_features(request: &ScrapeRequest) -> String {
    let mut features = Vec::new();
    if request.wait_for > Duration::ZERO {
        features.push("`waitFor`");
    }
    if request.screenshot.is_some() {
        features.push("the `screenshot` format");
    }
    if !request.actions.is_empty() {
        features.push("`actions`");
    }
    if request.mobile {
        features.push("`mobile`");
    }
    features.join(", ")
}

/// Renders the page in the browser pool, then extracts it like a fetched one.
async fn rendered(
    fetcher: &dyn Fetcher,
    browser: Option<&browser::Handle>,
    request: ScrapeRequest,
    selectors: extract::Selectors,
    warnings: Vec<String>,
) -> Result<Page, ScrapeError> {
    let Some(browser) = browser.filter(|b| b.available()) else {
        let what = match request.needs_browser() {
            true => browser_features(&request),
            false => "`render: always`".to_string(),
        };
        return Err(ScrapeError::Render(RenderError::Unavailable(format!(
            "{what} needs a browser, and Aurora runs without one (install chromium and chromium-driver)"
        ))));
    };
    // The page itself gets the HTTP fetcher's clear refusal; everything it loads meets the
    // same guard in the browser's proxy.
    fetcher.admits(&request.url).await?;
    let started = Instant::now();
    let page = browser
        .render(RenderRequest {
            url: request.url.clone(),
            headers: request.headers.clone(),
            timeout: request.timeout,
            wait_for: request.wait_for,
            actions: request.actions.clone(),
            screenshot: request.screenshot,
            mobile: request.mobile,
        })
        .await?;
    let fetch_time = started.elapsed();
    let screenshot = page.screenshot.as_deref().map(to_base64);
    let actions = page.actions.clone();
    let fetched = FetchResponse {
        final_url: page.final_url,
        status: page.status,
        content_type: Some(
            page.content_type
                .unwrap_or_else(|| "text/html; charset=utf-8".to_string()),
        ),
        body: page.html.into_bytes(),
        truncated: false,
        redirects: Vec::new(),
        retry_after: None,
    };
    let mut page = extract_page(request, fetched, fetch_time, selectors, warnings).await?;
    page.rendered = true;
    page.screenshot = screenshot;
    page.actions = actions;
    Ok(page)
}

fn to_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn extract_page(
    request: ScrapeRequest,
    fetched: FetchResponse,
    fetch_time: Duration,
    selectors: extract::Selectors,
    warnings: Vec<String>,
) -> Result<Page, ScrapeError> {
    // Extraction is CPU-bound: more at once than there are cores only adds parsed DOMs in
    // memory (a 100 KB page is megabytes of tree) and lock contention, not throughput.
    let _slot = EXTRACT_SLOTS.acquire().await;
    let page = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut page = build_page(request, fetched, &selectors)?;
        page.timings = Timings {
            fetch: fetch_time,
            extract: started.elapsed(),
        };
        page.warnings.extend(warnings);
        metrics::histogram!("aurora_scrape_extract_duration_seconds")
            .record(page.timings.extract.as_secs_f64());
        Ok::<_, ScrapeError>(page)
    })
    .await
    .map_err(|join| ScrapeError::Internal(join.to_string()))??;
    Ok(page)
}

/// Turns a fetched response into a page: decode, check it is HTML, extract.
pub fn build_page(
    request: ScrapeRequest,
    fetched: FetchResponse,
    selectors: &extract::Selectors,
) -> Result<Page, ScrapeError> {
    let content_type = fetched.content_type.clone().unwrap_or_default();
    // Content decides: a PDF served as text/html is still a PDF.
    let is_html =
        extract::is_html(&content_type, &fetched.body) && !document::looks_packaged(&fetched.body);
    // An error page that is not HTML still reports its status, as Firecrawl does.
    if !is_html && fetched.status < 400 {
        return document_page(request, fetched);
    }
    let (html, _encoding) = charset::decode(
        &fetched.body,
        fetched.content_type.as_deref(),
        fetched.truncated,
    );
    let html = if fetched.truncated {
        // A cut can split a multi-byte character; drop the replacement character it leaves.
        html.trim_end_matches('\u{FFFD}').to_string()
    } else {
        html
    };
    let mut warnings = Vec::new();
    if fetched.truncated {
        warnings.push(format!(
            "the page was larger than the size cap and was cut after {} bytes",
            fetched.body.len()
        ));
    }

    let formats = request.formats;
    let extracted = if is_html && !formats.markdown && !formats.html {
        // Only links and metadata wanted (a crawl passing through, a map): no tree, no content.
        extract::facts(&html, &fetched.final_url)
    } else if is_html {
        extract::extract(
            &html,
            &fetched.final_url,
            &extract::Options {
                only_main_content: request.only_main_content,
                selectors,
                remove_base64_images: request.remove_base64_images,
                want_html: formats.html,
            },
        )
    } else {
        extract::Extracted::default()
    };

    Ok(Page {
        source_url: request.url,
        url: fetched.final_url,
        status_code: fetched.status,
        content_type,
        title: extracted.title,
        description: extracted.description,
        language: extracted.language,
        canonical_url: extracted.canonical_url,
        meta: extracted.meta,
        markdown: formats.markdown.then_some(extracted.markdown),
        html: if formats.html { extracted.html } else { None },
        raw_html: formats.raw_html.then_some(html),
        links: formats.links.then_some(extracted.links),
        truncated: fetched.truncated,
        body_bytes: fetched.body.len() as u64,
        redirects: fetched.redirects,
        fetched_at: SystemTime::now(),
        timings: Timings::default(),
        warnings,
        retry_after: fetched.retry_after,
        rendered: false,
        screenshot: None,
        actions: None,
        document: None,
    })
}

/// A recording as a page: its transcript, each segment marked with its time range.
async fn transcribed_page(
    transcriber: Option<&dyn Transcriber>,
    request: ScrapeRequest,
    fetched: FetchResponse,
    fetch_time: Duration,
    mime: &'static str,
) -> Result<Page, ScrapeError> {
    if fetched.truncated {
        return Err(too_large(&fetched));
    }
    let Some(transcriber) = transcriber else {
        return Err(DocumentError::NeedsTranscription(mime.to_string()).into());
    };
    let file_name = file_name(&fetched.final_url).unwrap_or_else(|| "recording".to_string());
    let started = Instant::now();
    let audio = Audio {
        bytes: fetched.body.clone(),
        file_name: file_name.clone(),
        mime: mime.to_string(),
        language: None,
    };
    let parsed =
        crate::ingest::media::transcribe(transcriber, audio, request.progress.as_ref()).await?;
    let formats = request.formats;
    let mut page = blank_page(request, fetched);
    page.timings = Timings {
        fetch: fetch_time,
        extract: started.elapsed(),
    };
    fill(&mut page, formats, parsed, Some(file_name));
    Ok(page)
}

/// Half a document is a corrupt one: say why instead.
fn too_large(fetched: &FetchResponse) -> ScrapeError {
    DocumentError::TooLarge {
        size: fetched.body.len(),
        max: fetched.body.len(),
    }
    .into()
}

/// A fetched document (PDF, office file, e-book, text) as a page: its Markdown, title and
/// parts. With `parse_pdf: false` a PDF comes back as itself, base64, as Firecrawl does.
fn document_page(request: ScrapeRequest, fetched: FetchResponse) -> Result<Page, ScrapeError> {
    let file_name = file_name(&fetched.final_url);
    let hint = Hint {
        content_type: fetched.content_type.as_deref(),
        file_name: file_name.as_deref(),
    };
    let kind = document::detect(&fetched.body, hint)?;
    if fetched.truncated {
        return Err(too_large(&fetched));
    }
    let formats = request.formats;
    if kind == Kind::Pdf && !request.parse_pdf {
        let encoded = to_base64(&fetched.body);
        let mut page = blank_page(request, fetched);
        page.html = formats.html.then(|| encoded.clone());
        page.markdown = formats.markdown.then_some(encoded);
        page.document = Some(crate::model::DocumentFacts {
            kind: kind.label().to_string(),
            file_name,
            ..Default::default()
        });
        return Ok(page);
    }
    let parsed = document::parse(&fetched.body, hint, &document::Limits::unbounded_size())?;
    let mut page = blank_page(request, fetched);
    fill(&mut page, formats, parsed, file_name);
    Ok(page)
}

/// A page for a fetched file, before its content is filled in.
fn blank_page(request: ScrapeRequest, fetched: FetchResponse) -> Page {
    Page {
        source_url: request.url,
        url: fetched.final_url,
        status_code: fetched.status,
        content_type: fetched.content_type.unwrap_or_default(),
        title: None,
        description: None,
        language: None,
        canonical_url: None,
        meta: Default::default(),
        markdown: None,
        html: None,
        raw_html: None,
        links: request.formats.links.then(Vec::new),
        truncated: false,
        body_bytes: fetched.body.len() as u64,
        redirects: fetched.redirects,
        fetched_at: SystemTime::now(),
        timings: Timings::default(),
        warnings: Vec::new(),
        retry_after: fetched.retry_after,
        rendered: false,
        screenshot: None,
        actions: None,
        document: None,
    }
}

/// A parsed document's content and facts, in the formats asked for.
fn fill(
    page: &mut Page,
    formats: crate::model::Formats,
    parsed: document::Parsed,
    file_name: Option<String>,
) {
    page.title = parsed.title.clone();
    if let Some(author) = &parsed.author {
        page.meta.insert("author".to_string(), vec![author.clone()]);
    }
    page.html = formats.html.then(|| document::to_html(&parsed.markdown));
    page.document = Some(parsed.facts(file_name));
    page.warnings = parsed.warnings;
    page.markdown = formats.markdown.then_some(parsed.markdown);
}

/// The last segment of a URL's path, decoded: `report%202024.pdf` → `report 2024.pdf`.
fn file_name(url: &url::Url) -> Option<String> {
    let last = url.path_segments()?.rev().find(|s| !s.is_empty())?;
    let decoded = url::form_urlencoded::parse(format!("x={}", last.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    (!decoded.is_empty()).then_some(decoded)
}

fn outcome_label(result: &Result<Page, ScrapeError>) -> &'static str {
    match result {
        Ok(page) if page.status_code >= 400 => "http_error",
        Ok(_) => "ok",
        Err(ScrapeError::Fetch(FetchError::Timeout(_))) | Err(ScrapeError::DeadlineExceeded(_)) => {
            "timeout"
        }
        Err(ScrapeError::Fetch(FetchError::Blocked { .. })) => "blocked",
        Err(ScrapeError::Fetch(FetchError::Unreachable(_))) => "unreachable",
        Err(ScrapeError::Fetch(
            FetchError::TooManyRedirects { .. }
            | FetchError::RedirectLoop(_)
            | FetchError::BadRedirect(_),
        )) => "redirect_error",
        Err(ScrapeError::Fetch(
            FetchError::UnsupportedScheme(_) | FetchError::InvalidHeader(_),
        ))
        | Err(ScrapeError::InvalidSelector { .. }) => "invalid_request",
        Err(ScrapeError::Document(DocumentError::Unsupported(_))) => "unsupported_content_type",
        Err(ScrapeError::Document(_)) => "document_error",
        Err(ScrapeError::Transcribe(_)) => "transcription_error",
        Err(ScrapeError::Overloaded) | Err(ScrapeError::Unavailable(_)) => "unavailable",
        Err(ScrapeError::Internal(_)) => "internal",
        Err(ScrapeError::Render(RenderError::Timeout(_))) => "timeout",
        Err(ScrapeError::Render(RenderError::Blocked { .. })) => "blocked",
        Err(ScrapeError::Render(RenderError::Unavailable(_)))
        | Err(ScrapeError::BrowserOnly(_)) => "invalid_request",
        Err(ScrapeError::Render(_)) => "render_error",
        Err(ScrapeError::Cancelled) => "cancelled",
    }
}

pub(crate) fn child_spec(
    names: Arc<Names>,
    fetcher: Arc<dyn Fetcher>,
    browser: browser::Handle,
    transcriber: Arc<dyn Transcriber>,
    workers: usize,
) -> ChildSpec {
    pool::child_spec(
        "scraper",
        "scraper_worker",
        names.scraper.clone(),
        names.root.clone(),
        workers,
        move || ScraperWorker {
            fetcher: fetcher.clone(),
            browser: browser.clone(),
            transcriber: transcriber.clone(),
        },
    )
}

impl Refusal for ScrapeError {
    fn overloaded() -> Self {
        ScrapeError::Overloaded
    }
    fn unavailable(what: &'static str) -> Self {
        ScrapeError::Unavailable(what)
    }
    fn deadline(after: Duration) -> Self {
        ScrapeError::DeadlineExceeded(after)
    }
    fn is_unavailable(&self) -> bool {
        matches!(self, ScrapeError::Unavailable(_))
    }
}
