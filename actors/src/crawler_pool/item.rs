//! One work item of a job, run to its recorded result: a page (robots.txt, politeness, the
//! scraper pool, links admitted to the frontier, the knowledge base) or a read of the site's
//! sitemaps. The result is recorded with bounded retries; webhook page events go out from the
//! delivery whose result counted, so once cluster-wide.
//!
//! Size: a page's steps (admit, fetch, extract, admit links, ingest, record) run in order and share
//! the item's context; they read as one sequence.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::consumer::{Done, Finished, JobContext};
use super::politeness::backoff;
use super::scope::Skip;
use super::store::{ErrorKind, JobError, JobKind, Work, encode_page, new_error, now_ms};
use super::{Shared, SitemapMode};
use crate::ingest::IngestRequest;
use crate::ingest::document::DocumentError;
use crate::knowledge::Document;
use crate::model::{Page, ProgressSink, TranscriptionProgress};
use crate::ports::{FetchError, LeaseRef, LeasedItem, Outcome, Recorded, RenderError};
use crate::scraper::ScrapeError;

/// Attempts at recording one result while the store is unreachable, before leaving the item to
/// its lease.
const RECORD_ATTEMPTS: u32 = 6;

/// Runs one item to its recorded result.
pub(super) async fn work(
    shared: Arc<Shared>,
    context: Arc<JobContext>,
    item: LeasedItem,
    cancel: CancellationToken,
) -> Finished {
    let job = context.meta.id.clone();
    let lease = item.lease.clone();
    let result = match serde_json::from_str::<Work>(&item.payload) {
        Ok(Work::Sitemaps { start }) => Some(sitemaps(&shared, &context, &start).await),
        Ok(Work::Page { url, hops, run }) => page(&shared, &context, &cancel, url, hops, run).await,
        Err(e) => Some(ItemResult::errors(
            &shared,
            vec![job_error(
                &context.meta.url,
                ErrorKind::Page,
                "INTERNAL",
                format!("a work item could not be read: {e}"),
            )],
        )),
    };
    let Some(result) = result else {
        return Finished {
            job,
            item: lease.item,
            done: Done::Abandoned,
        };
    };
    let done = record(&shared, &job, lease.clone(), result.outcome, &cancel).await;
    // Webhook page events go out once cluster-wide: from the delivery whose result counted.
    if let Done::Recorded(Recorded::Stored { document, .. }) = &done {
        if let (Some(page), Some(_)) = (&result.page, document) {
            context.notify(|n| n.page(page));
        }
        if let Some((url, error)) = &result.failure {
            context.notify(|n| n.page_failed(url, error));
        }
    }
    Finished {
        job,
        item: lease.item,
        done,
    }
}

/// Records with bounded retries while the store is unreachable.
async fn record(
    shared: &Arc<Shared>,
    job: &str,
    lease: LeaseRef,
    outcome: Outcome,
    cancel: &CancellationToken,
) -> Done {
    for attempt in 0..RECORD_ATTEMPTS {
        match shared
            .store
            .queue
            .record(job, lease.clone(), outcome.clone())
            .await
        {
            Ok(recorded) => return Done::Recorded(recorded),
            Err(e) => {
                tracing::warn!(job, error = %e, attempt, "could not record a crawled page; retrying");
                let wait = backoff(Duration::from_millis(250), attempt, Duration::from_secs(5));
                tokio::select! {
                    () = cancel.cancelled() => return Done::Abandoned,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    // Left to its lease: another delivery will record it.
    Done::Abandoned
}

/// What an item's work produced: the result to record, and what its webhook will hear.
struct ItemResult {
    outcome: Outcome,
    /// The stored page (as the caller asked for it), for the `page` event.
    page: Option<Page>,
    /// A page that could not be scraped, for a `page` event with `success: false`.
    failure: Option<(Url, String)>,
}

impl ItemResult {
    /// Bookkeeping that fetched nothing: it does not use the limit up.
    fn errors(shared: &Shared, errors: Vec<JobError>) -> Self {
        ItemResult {
            outcome: Outcome {
                unstart: true,
                max_errors: shared.config.max_errors_per_job,
                errors: error_entries(&errors),
                ..Outcome::default()
            },
            page: None,
            failure: None,
        }
    }
}

fn error_entries(errors: &[JobError]) -> Vec<crate::ports::NewError> {
    errors
        .iter()
        .filter_map(|e| new_error(e, None).ok())
        .collect()
}

/// Reads the site's sitemaps and queues what they list (one link from the start).
async fn sitemaps(shared: &Arc<Shared>, context: &JobContext, start: &Url) -> ItemResult {
    let spec = &context.meta.spec;
    let (urls, problems) = shared
        .sitemap_urls(
            start,
            spec.limit.saturating_mul(2).max(100),
            spec.scrape.timeout,
        )
        .await;
    let errors: Vec<JobError> = problems
        .into_iter()
        .map(|problem| job_error(start.as_str(), ErrorKind::Sitemap, "SITEMAP", problem))
        .collect();
    let mut result = ItemResult::errors(shared, errors);
    let mut reported = Vec::new();
    for url in urls {
        admit(context, &url, 1, None, &mut result.outcome, &mut reported);
    }
    result
}

/// Queues `url` (found on `parent`, or in a sitemap) if the crawl's scope takes it; the store
/// drops what the job has seen already.
fn admit(
    context: &JobContext,
    url: &Url,
    hops: usize,
    parent: Option<(&Url, usize)>,
    outcome: &mut Outcome,
    reported: &mut Vec<Skip>,
) {
    let scope = &context.scope;
    let admitted = scope.admit(url, hops).and_then(|url| {
        let run = match parent {
            Some((parent, run)) => scope.shape_run(parent, run, &url)?,
            None => 0,
        };
        Ok((url, run))
    });
    match admitted {
        Ok((url, run)) => {
            let key = scope.seen_key(&url);
            if let Ok(item) = (Work::Page { url, hops, run }).item(key, true) {
                outcome.new_items.push(item);
            }
        }
        Err(skip) => {
            metrics::counter!("aurora_crawl_skipped_urls_total", "reason" => skip_label(skip))
                .increment(1);
            if let Skip::Trap(trap) = skip
                && !reported.contains(&skip)
            {
                reported.push(skip);
                let error = job_error(
                    url.as_str(),
                    ErrorKind::Bound,
                    &format!("TRAP_{}", trap.label().to_ascii_uppercase()),
                    trap.explain(scope.bounds(), url),
                );
                // Reported once per bound for the whole job, whichever replica meets it.
                if let Ok(entry) = new_error(&error, Some(format!("trap:{}", trap.label()))) {
                    outcome.errors.push(entry);
                }
            }
        }
    }
}

/// Fetches one page politely and turns it into a result; `None` when cancelled.
async fn page(
    shared: &Arc<Shared>,
    context: &JobContext,
    cancel: &CancellationToken,
    url: Url,
    hops: usize,
    run: usize,
) -> Option<ItemResult> {
    let spec = &context.meta.spec;
    let max_errors = shared.config.max_errors_per_job;
    let fetched = fetch(shared, context, cancel, url.clone()).await?;
    let page = match fetched {
        Fetched::Robots { reason } => {
            metrics::counter!("aurora_crawl_pages_total", "outcome" => "robots").increment(1);
            let mut result = ItemResult::errors(
                shared,
                vec![job_error(url.as_str(), ErrorKind::Robots, "ROBOTS", reason)],
            );
            result.outcome.counts = vec![("robots_blocked".into(), 1)];
            return Some(result);
        }
        Fetched::Failed { code, error } => {
            metrics::counter!("aurora_crawl_pages_total", "outcome" => failure_label(&code))
                .increment(1);
            let entry = job_error(url.as_str(), ErrorKind::Page, &code, error.clone());
            return Some(ItemResult {
                outcome: Outcome {
                    counts: vec![("completed".into(), 1), ("failed".into(), 1)],
                    errors: error_entries(&[entry]),
                    max_errors,
                    ..Outcome::default()
                },
                page: None,
                failure: Some((url, error)),
            });
        }
        Fetched::Page(page) => *page,
    };
    metrics::counter!("aurora_crawl_pages_total", "outcome" => "ok").increment(1);
    metrics::counter!("aurora_crawl_bytes_total").increment(page.body_bytes);
    let mut outcome = Outcome {
        counts: vec![
            ("completed".into(), 1),
            ("bytes".into(), page.body_bytes as i64),
        ],
        max_errors,
        ..Outcome::default()
    };
    let discover = context.meta.kind == JobKind::Crawl && spec.sitemap != SitemapMode::Only;
    if discover {
        let mut reported = Vec::new();
        for link in page.links.clone().unwrap_or_default() {
            if let Ok(link) = page.url.join(&link) {
                admit(
                    context,
                    &link,
                    hops + 1,
                    Some((&url, run)),
                    &mut outcome,
                    &mut reported,
                );
            }
        }
    }
    // A redirect can land on a page already stored under another link: stored once.
    let scope = &context.scope;
    outcome.result_key = Some(scope.seen_key(&super::urls::normalise(&page.url, false)));
    if let Some(feed) = &context.feed
        && page.markdown.is_some()
    {
        // Acknowledged only once ingested: a replica dying here leaves the item to another.
        let document = Document::from_page(&page, Some(context.meta.id.clone()));
        let (taken, problem) = feed.ingest(document).await;
        outcome.counts.push(("ingest_sent".into(), 1));
        outcome.counts.push(("ingested".into(), i64::from(taken)));
        if let Some(problem) = problem {
            outcome.errors.extend(error_entries(&[job_error(
                page.url.as_str(),
                ErrorKind::Ingest,
                "INGEST",
                problem,
            )]));
        }
    }
    // Store what the caller asked for, not what the crawl needed.
    let mut stored = page;
    if !spec.formats.links {
        stored.links = None;
    }
    if !spec.formats.markdown {
        stored.markdown = None;
    }
    match encode_page(&stored) {
        Ok(bytes) => outcome.document = Some(bytes),
        Err(e) => tracing::warn!(error = %e, "could not encode a crawled page"),
    }
    Some(ItemResult {
        outcome,
        page: Some(stored),
        failure: None,
    })
}

/// How one fetch ended.
enum Fetched {
    Page(Box<Page>),
    Failed { code: String, error: String },
    Robots { reason: String },
}

/// Fetches one URL politely: robots.txt, the host's schedule, the cluster's per-host rate, the
/// process's limits, then the scraper pool; 429/503 and transient failures are retried with
/// backoff. `None` when cancelled before or while fetching.
async fn fetch(
    shared: &Arc<Shared>,
    context: &JobContext,
    cancel: &CancellationToken,
    url: Url,
) -> Option<Fetched> {
    let spec = &context.meta.spec;
    let config = &shared.config;
    let host = url.host_str().unwrap_or_default().to_string();
    let delay = spec.delay.unwrap_or_default();
    if let Err(reason) = shared
        .robots_gate(&context.clock, &url, delay, spec.ignore_robots)
        .await
    {
        return Some(Fetched::Robots { reason });
    }
    let mut attempt = 0;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = shared.host_turn(&context.clock, &url) => {}
        }
        if cancel.is_cancelled() {
            return None;
        }
        let result = {
            let Ok(_slot) = shared.global.acquire().await else {
                return None;
            };
            let mut request = spec.scrape.clone();
            request.url = url.clone();
            request.cancel = Some(cancel.clone());
            // The crawl needs links to go on, and markdown to feed the knowledge base.
            request.formats.links = true;
            request.formats.markdown |= spec.ingest.is_some();
            let progress = Progress::start(shared, context, &url);
            request.progress = Some(progress.sink.clone());
            let result = shared.router.scrape(request).await;
            progress.finish(shared, context, &url).await;
            result
        };
        let retry = attempt < config.retries;
        let wait = |retry_after: Option<Duration>| {
            retry_after
                .unwrap_or_else(|| backoff(config.backoff, attempt, config.max_backoff))
                .min(config.max_backoff)
        };
        match result {
            Ok(page) if matches!(page.status_code, 429 | 503) && retry => {
                context.clock.back_off(&host, wait(page.retry_after));
            }
            Ok(page) if page.status_code >= 400 => {
                let status = page.status_code;
                return Some(failed(
                    &format!("HTTP_{status}"),
                    format!("the page answered HTTP {status}"),
                ));
            }
            Ok(page) => return Some(Fetched::Page(Box::new(page))),
            Err(ScrapeError::Cancelled) => return None,
            Err(_) if cancel.is_cancelled() => return None,
            Err(e) if retry && transient(&e) => {
                context.clock.back_off(&host, wait(None));
            }
            Err(e) => return Some(failed(scrape_code(&e), e.to_string())),
        }
        attempt += 1;
    }
}

/// Carries a long recording's progress from the scraper to the job's record, where status
/// requests on any replica see it. The scraper's callback must not block, so it only updates a
/// watch channel; one task per item writes the latest value out, in order.
struct Progress {
    sink: ProgressSink,
    reported: Arc<AtomicBool>,
    writer: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(shared: &Arc<Shared>, context: &JobContext, url: &Url) -> Self {
        let (tx, mut rx) = watch::channel(None::<TranscriptionProgress>);
        let reported = Arc::new(AtomicBool::new(false));
        let flag = reported.clone();
        let sink = ProgressSink::new(move |progress| {
            flag.store(true, Ordering::Relaxed);
            tx.send_replace(Some(progress));
        });
        let (shared, job, url) = (shared.clone(), context.meta.id.clone(), url.to_string());
        let ttl = Duration::from_millis(context.meta.expires_at.saturating_sub(now_ms()))
            .max(Duration::from_secs(60));
        let writer = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let latest = *rx.borrow_and_update();
                if let Some(progress) = latest
                    && let Err(e) = shared.store.report(&job, &url, &progress, ttl).await
                {
                    tracing::debug!(error = %e, "progress not recorded");
                }
            }
        });
        Self {
            sink,
            reported,
            writer,
        }
    }

    /// Stops reporting and, if anything was reported, clears it: the item's result says the rest.
    async fn finish(self, shared: &Shared, context: &JobContext, url: &Url) {
        self.writer.abort();
        let _ = self.writer.await;
        if self.reported.load(Ordering::Relaxed)
            && let Err(e) = shared.store.done_with(&context.meta.id, url.as_str()).await
        {
            tracing::debug!(error = %e, "progress not cleared; it expires with the job");
        }
    }
}

fn failed(code: &str, error: String) -> Fetched {
    Fetched::Failed {
        code: code.to_string(),
        error,
    }
}

/// Failures worth another try: the target or Aurora was briefly unable.
fn transient(error: &ScrapeError) -> bool {
    matches!(
        error,
        ScrapeError::Overloaded
            | ScrapeError::Unavailable(_)
            | ScrapeError::DeadlineExceeded(_)
            | ScrapeError::Fetch(FetchError::Timeout(_) | FetchError::Unreachable(_))
            | ScrapeError::Render(RenderError::Crashed(_))
    )
}

fn scrape_code(error: &ScrapeError) -> &'static str {
    match error {
        ScrapeError::Fetch(FetchError::Timeout(_)) | ScrapeError::DeadlineExceeded(_) => "TIMEOUT",
        ScrapeError::Fetch(FetchError::Blocked { .. }) => "BLOCKED",
        ScrapeError::Fetch(FetchError::Unreachable(_)) => "UNREACHABLE",
        ScrapeError::Fetch(
            FetchError::TooManyRedirects { .. }
            | FetchError::RedirectLoop(_)
            | FetchError::BadRedirect(_),
        ) => "REDIRECT",
        ScrapeError::Fetch(FetchError::UnsupportedScheme(_) | FetchError::InvalidHeader(_))
        | ScrapeError::InvalidSelector { .. } => "INVALID_REQUEST",
        ScrapeError::Document(DocumentError::Unsupported(_)) => "UNSUPPORTED_CONTENT_TYPE",
        ScrapeError::Document(_) => "DOCUMENT_UNREADABLE",
        ScrapeError::Transcribe(_) => "TRANSCRIPTION_FAILED",
        ScrapeError::Overloaded | ScrapeError::Unavailable(_) => "UNAVAILABLE",
        ScrapeError::Cancelled => "CANCELLED",
        ScrapeError::Internal(_) => "INTERNAL",
        ScrapeError::Render(RenderError::Timeout(_)) => "TIMEOUT",
        ScrapeError::Render(RenderError::Blocked { .. }) => "BLOCKED",
        ScrapeError::Render(RenderError::Unavailable(_)) | ScrapeError::BrowserOnly(_) => {
            "INVALID_REQUEST"
        }
        ScrapeError::Render(RenderError::Crashed(_)) => "BROWSER_CRASHED",
        ScrapeError::Render(RenderError::Navigation(_)) => "UNREACHABLE",
        ScrapeError::Render(RenderError::Action { .. }) => "ACTION_FAILED",
    }
}

/// The `outcome` label of a failed page: a small fixed set.
fn failure_label(code: &str) -> &'static str {
    match code {
        c if c.starts_with("HTTP_4") => "http_4xx",
        c if c.starts_with("HTTP_5") => "http_5xx",
        "TIMEOUT" => "timeout",
        "BLOCKED" => "blocked",
        "UNREACHABLE" => "unreachable",
        "REDIRECT" => "redirect_error",
        "UNSUPPORTED_CONTENT_TYPE" => "unsupported_content_type",
        "CANCELLED" => "cancelled",
        _ => "other",
    }
}

fn skip_label(skip: Skip) -> &'static str {
    match skip {
        Skip::NotHttp => "not_http",
        Skip::External => "external",
        Skip::OutsideStartPath => "outside_start_path",
        Skip::Excluded => "excluded",
        Skip::NotIncluded => "not_included",
        Skip::TooDeep => "too_deep",
        Skip::Asset => "asset",
        Skip::Trap(trap) => trap.label(),
    }
}

pub(crate) fn job_error(url: &str, kind: ErrorKind, code: &str, error: String) -> JobError {
    JobError {
        timestamp: now_ms(),
        url: url.to_string(),
        kind,
        code: code.to_string(),
        error,
    }
}

/// Streams one job's pages to the knowledge base from this replica, in small batches: each
/// page's item waits for its own batch, so it is acknowledged only once ingested.
pub(super) struct Feed {
    /// Bounded: when embedding falls behind, items wait rather than piling pages up.
    tx: mpsc::Sender<(Document, oneshot::Sender<Ingested>)>,
}

/// Whether the knowledge base took a page, and why not.
type Ingested = (bool, Option<String>);

impl Feed {
    pub(super) fn start(shared: &Arc<Shared>, collection: String, job: String) -> Self {
        let batch_size = shared.config.ingest_batch.max(1);
        let (tx, mut rx) =
            mpsc::channel::<(Document, oneshot::Sender<(bool, Option<String>)>)>(batch_size * 4);
        let router = shared.router.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(batch_size);
            while rx.recv_many(&mut batch, batch_size).await > 0 {
                let (documents, replies): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut batch).into_iter().unzip();
                let urls: Vec<String> = documents.iter().map(|d| d.url.clone()).collect();
                let request = IngestRequest {
                    collection: collection.clone(),
                    documents,
                    files: Vec::new(),
                    create: true,
                };
                match router.ingest(request).await {
                    Ok(report) => {
                        let rejected: HashMap<String, String> = report
                            .rejected
                            .into_iter()
                            .map(|r| (r.url, format!("not ingested: {}", r.reason)))
                            .collect();
                        for (url, reply) in urls.iter().zip(replies) {
                            let problem = rejected.get(url).cloned();
                            let _ = reply.send((problem.is_none(), problem));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(job = %job, error = %e, "crawled pages not ingested");
                        for reply in replies {
                            let _ = reply.send((false, Some(format!("not ingested: {e}"))));
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Ingests one page: whether the knowledge base took it, and why not.
    async fn ingest(&self, document: Document) -> Ingested {
        let (reply, answer) = oneshot::channel();
        if self.tx.send((document, reply)).await.is_err() {
            return (false, Some("not ingested: the feed stopped".into()));
        }
        answer
            .await
            .unwrap_or((false, Some("not ingested: the feed stopped".into())))
    }
}
