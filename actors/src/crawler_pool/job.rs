//! One crawl or batch job, run as a task of its own: a breadth-first frontier, robots.txt and
//! politeness per host, fetches through the scraper pool (never more than the job's and the
//! process's concurrency bounds), every result written to the job store as it arrives, and pages
//! streamed to the knowledge base while the crawl goes on.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::politeness::{HostClock, backoff};
use super::scope::{Scope, Skip, Trap};
use super::sitemap;
use super::store::{ErrorKind, JobError, JobKind, JobRecord, JobStatus, now_ms};
use super::webhook::Notifier;
use super::{JobSpec, Shared, SitemapMode};
use crate::ingest::IngestRequest;
use crate::knowledge::Document;
use crate::model::Page;
use crate::ports::FetchError;
use crate::scraper::ScrapeError;

/// A running job writes its record at least this often, so readers can tell it is alive.
const HEARTBEAT_MS: u64 = 5_000;

/// A URL waiting in the frontier.
#[derive(Debug, Clone)]
struct Queued {
    url: Url,
    /// Links followed from the start URL.
    hops: usize,
    /// Pages in a row of this URL's shape leading here (trap detection).
    run: usize,
}

/// How one URL ended.
enum Fetched {
    Page {
        queued: Queued,
        page: Box<Page>,
    },
    Failed {
        url: Url,
        code: String,
        error: String,
    },
    Robots {
        url: Url,
        reason: String,
    },
}

/// Runs the job to its end and writes its final state. Never panics on bad input or a failing
/// backend: failures end up in the job's record.
pub(crate) async fn run(
    shared: Arc<Shared>,
    record: JobRecord,
    spec: JobSpec,
    cancel: CancellationToken,
) {
    let started = std::time::Instant::now();
    let kind = record.kind;
    let mut job = Job::new(shared.clone(), record, spec, cancel);
    metrics::gauge!("aurora_crawl_jobs_running").increment(1.0);
    let status = job.run().await;
    metrics::gauge!("aurora_crawl_jobs_running").decrement(1.0);
    metrics::gauge!("aurora_crawl_frontier_urls").decrement(job.frontier.len() as f64);
    metrics::counter!("aurora_crawl_jobs_total",
        "kind" => match kind { JobKind::Crawl => "crawl", JobKind::Batch => "batch" },
        "status" => status.as_str())
    .increment(1);
    metrics::histogram!("aurora_crawl_job_duration_seconds")
        .record(started.elapsed().as_secs_f64());
}

struct Job {
    shared: Arc<Shared>,
    record: JobRecord,
    spec: JobSpec,
    cancel: CancellationToken,
    scope: Scope,
    /// URLs admitted and waiting, with their link distance from the start.
    frontier: VecDeque<Queued>,
    /// De-duplication keys of every URL admitted (queued, fetching or done).
    seen: HashSet<String>,
    /// Keys of the final URLs of stored pages: two links redirecting to one page store it once.
    stored: HashSet<String>,
    /// Fetches started; never more than the limit.
    started: usize,
    /// Admitted URLs robots.txt refused.
    robots_blocked: usize,
    clock: Arc<HostClock>,
    traps_reported: HashSet<Trap>,
    /// Errors found while admitting links (sync code), written with the next save.
    pending: Vec<JobError>,
    feed: Option<Feed>,
    notifier: Option<Notifier>,
    /// Set when the job stops before its frontier is empty.
    stopped: Option<(JobStatus, String)>,
}

impl Job {
    fn new(
        shared: Arc<Shared>,
        record: JobRecord,
        spec: JobSpec,
        cancel: CancellationToken,
    ) -> Self {
        let start = spec.seeds.first().cloned().unwrap_or_else(|| {
            // A spec always has a seed (checked when the job is started); this keeps `run` total.
            Url::parse("http://invalid.invalid/").unwrap_or_else(|_| unreachable!())
        });
        let scope = Scope::new(&start, spec.rules.clone(), shared.config.traps.clone());
        let feed = spec
            .ingest
            .clone()
            .map(|collection| Feed::start(&shared, collection, record.id.clone()));
        let notifier = spec.webhook.clone().map(|webhook| {
            Notifier::start(
                shared.fetcher.clone(),
                shared.config.webhooks.clone(),
                shared.shutdown.clone(),
                webhook,
                record.id.clone(),
                record.kind,
            )
        });
        Self {
            shared,
            record,
            spec,
            cancel,
            scope,
            notifier,
            frontier: VecDeque::new(),
            seen: HashSet::new(),
            stored: HashSet::new(),
            started: 0,
            robots_blocked: 0,
            clock: Arc::new(HostClock::default()),
            traps_reported: HashSet::new(),
            pending: Vec::new(),
            feed,
            stopped: None,
        }
    }

    async fn run(&mut self) -> JobStatus {
        if let Some(notifier) = &mut self.notifier {
            notifier.started();
        }
        self.seed().await;
        self.crawl().await;
        if let Some(feed) = self.feed.take() {
            let (sent, ingested, errors) = feed.finish().await;
            self.record.ingest_sent = sent;
            self.record.ingested = ingested;
            for error in errors {
                self.error(error).await;
            }
        }
        let (status, reason) = match self.stopped.take() {
            Some((status, reason)) => (status, Some(reason)),
            None if self.record.documents == 0 && self.record.failed > 0 => (
                JobStatus::Failed,
                Some("no page could be scraped; see the job's errors".to_string()),
            ),
            None => (JobStatus::Completed, None),
        };
        let dropped = self.notifier.as_ref().map_or(0, |n| n.dropped);
        if dropped > 0 {
            let url = self.spec.seeds.first().cloned();
            if let Some(url) = url {
                let error = format!(
                    "the webhook receiver fell behind: {dropped} page events were not sent"
                );
                self.error(job_error(
                    &url,
                    ErrorKind::Webhook,
                    "WEBHOOK_DROPPED",
                    error,
                ))
                .await;
            }
        }
        self.record.status = status;
        self.record.end_reason = reason;
        self.save().await;
        if let Some(notifier) = self.notifier.take() {
            notifier.finish(status, self.record.end_reason.as_deref());
        }
        tracing::info!(job = %self.record.id, status = status.as_str(),
            pages = self.record.documents, failed = self.record.failed, "job finished");
        status
    }

    /// The first URLs: the batch's list, or the start URL plus what the site's sitemaps list.
    async fn seed(&mut self) {
        let seeds = self.spec.seeds.clone();
        if self.record.kind == JobKind::Batch {
            for url in seeds {
                let key = url.as_str().to_string();
                if self.seen.insert(key) {
                    self.push(url, 0, 0);
                }
            }
            self.save().await;
            return;
        }
        let Some(start) = seeds.into_iter().next() else {
            return;
        };
        let start = super::urls::normalise(&start, self.spec.rules.ignore_query_parameters);
        self.seen.insert(self.scope.seen_key(&start));
        self.push(start.clone(), 0, 0);
        if self.spec.sitemap != SitemapMode::Skip {
            let rules = self.shared.robots.rules(&start).await;
            let mut roots: Vec<Url> = rules
                .sitemaps()
                .iter()
                .filter_map(|s| start.join(s).ok())
                .collect();
            if let Ok(default) = start.join("/sitemap.xml")
                && !roots.contains(&default)
            {
                roots.push(default);
            }
            let (urls, problems) = sitemap::discover(
                self.shared.fetcher.as_ref(),
                &self.shared.hosts,
                roots,
                self.spec.limit.saturating_mul(2).max(100),
                self.spec.scrape.timeout,
            )
            .await;
            for url in urls {
                self.admit(&url, 1, None);
            }
            for problem in problems {
                self.error(job_error(&start, ErrorKind::Sitemap, "SITEMAP", problem))
                    .await;
            }
        }
        self.save().await;
    }

    /// The fetch loop: keep up to the job's concurrency in flight, record each result.
    async fn crawl(&mut self) {
        let concurrency = self
            .spec
            .max_concurrency
            .unwrap_or(self.shared.config.job_concurrency)
            .clamp(1, self.shared.config.max_concurrency.max(1));
        let deadline = Instant::now() + self.shared.config.max_job_duration;
        let mut in_flight = FuturesUnordered::new();
        let mut cancel_poll = tokio::time::interval(self.shared.config.cancel_poll);
        loop {
            while self.stopped.is_none() && in_flight.len() < concurrency {
                let Some(queued) = self.next_url() else {
                    break;
                };
                self.started += 1;
                in_flight.push(fetch(
                    self.shared.clone(),
                    self.clock.clone(),
                    self.spec.clone(),
                    self.cancel.clone(),
                    queued,
                ));
            }
            if in_flight.is_empty() || self.stopped.is_some() {
                break;
            }
            tokio::select! {
                () = self.cancel.cancelled() => {
                    self.stopped = Some(if self.shared.shutdown.is_cancelled() {
                        (JobStatus::Failed, "Aurora shut down while the job ran; start it again".to_string())
                    } else {
                        (JobStatus::Cancelled, "cancelled".to_string())
                    });
                }
                () = tokio::time::sleep_until(deadline) => {
                    let reason = format!(
                        "the job ran for its maximum of {} s; the rest of the site was not crawled",
                        self.shared.config.max_job_duration.as_secs()
                    );
                    self.bound(reason).await;
                }
                _ = cancel_poll.tick() => {
                    if matches!(self.shared.store.cancel_requested(&self.record.id).await, Ok(true)) {
                        self.cancel.cancel();
                    } else if now_ms().saturating_sub(self.record.updated_at) > HEARTBEAT_MS {
                        // Slow hosts (Crawl-delay) can leave the record unwritten for long.
                        self.save().await;
                    }
                }
                Some(fetched) = in_flight.next() => self.record_fetched(fetched).await,
            }
        }
        // Dropping the futures abandons their scrapes; the token stops the ones already running.
        if self.stopped.is_some() {
            self.cancel.cancel();
        }
    }

    fn next_url(&mut self) -> Option<Queued> {
        if self.started >= self.spec.limit {
            return None;
        }
        let next = self.frontier.pop_front();
        if next.is_some() {
            metrics::gauge!("aurora_crawl_frontier_urls").decrement(1.0);
        }
        next
    }

    fn push(&mut self, url: Url, hops: usize, run: usize) {
        metrics::gauge!("aurora_crawl_frontier_urls").increment(1.0);
        self.frontier.push_back(Queued { url, hops, run });
        self.update_total();
    }

    /// Pages the job will fetch: admitted ones, less those robots.txt refused, within the limit.
    fn update_total(&mut self) {
        let admitted = self.seen.len() - self.robots_blocked;
        self.record.total = admitted.min(self.spec.limit) as u64;
    }

    /// Queues `url` (found on `parent`) if the crawl's scope takes it and it is new.
    fn admit(&mut self, url: &Url, hops: usize, parent: Option<&Queued>) {
        let admitted = self.scope.admit(url, hops).and_then(|url| {
            let key = self.scope.seen_key(&url);
            if self.seen.contains(&key) {
                return Ok(None);
            }
            let run = match parent {
                Some(parent) => self.scope.shape_run(&parent.url, parent.run, &url)?,
                None => 0,
            };
            Ok(Some((key, url, run)))
        });
        match admitted {
            Ok(None) => {}
            Ok(Some((key, url, run))) => {
                self.seen.insert(key);
                self.push(url, hops, run);
            }
            Err(skip) => {
                metrics::counter!("aurora_crawl_skipped_urls_total", "reason" => skip_label(skip))
                    .increment(1);
                if let Skip::Trap(trap) = skip
                    && self.traps_reported.insert(trap)
                {
                    // Reported once per bound.
                    let error = job_error(
                        url,
                        ErrorKind::Bound,
                        &format!("TRAP_{}", trap.label().to_ascii_uppercase()),
                        trap.explain(self.scope.bounds(), url),
                    );
                    self.pending.push(error);
                }
            }
        }
    }

    async fn record_fetched(&mut self, fetched: Fetched) {
        self.record.completed += 1;
        match fetched {
            Fetched::Page { queued, page } => self.record_page(&queued, *page).await,
            Fetched::Failed { url, code, error } => {
                metrics::counter!("aurora_crawl_pages_total", "outcome" => failure_label(&code))
                    .increment(1);
                self.record.failed += 1;
                if let Some(notifier) = &mut self.notifier {
                    notifier.page_failed(&url, &error);
                }
                self.error(job_error(&url, ErrorKind::Page, &code, error))
                    .await;
            }
            Fetched::Robots { url, reason } => {
                metrics::counter!("aurora_crawl_pages_total", "outcome" => "robots").increment(1);
                // Nothing was fetched: the URL neither uses up the limit nor counts as a page.
                self.started -= 1;
                self.robots_blocked += 1;
                self.record.completed -= 1;
                self.update_total();
                self.error(job_error(&url, ErrorKind::Robots, "ROBOTS", reason))
                    .await;
            }
        }
        for error in std::mem::take(&mut self.pending) {
            self.error(error).await;
        }
        if let Some(feed) = &self.feed {
            for error in feed.take_errors() {
                self.error(error).await;
            }
        }
    }

    async fn record_page(&mut self, queued: &Queued, mut page: Page) {
        metrics::counter!("aurora_crawl_pages_total", "outcome" => "ok").increment(1);
        metrics::counter!("aurora_crawl_bytes_total").increment(page.body_bytes);
        self.record.bytes += page.body_bytes;
        let discover = self.record.kind == JobKind::Crawl && self.spec.sitemap != SitemapMode::Only;
        if discover {
            let links = page.links.clone().unwrap_or_default();
            for link in &links {
                if let Ok(url) = page.url.join(link) {
                    self.admit(&url, queued.hops + 1, Some(queued));
                }
            }
        }
        // A redirect can land on a page already stored under another link.
        let final_key = self
            .scope
            .seen_key(&super::urls::normalise(&page.url, false));
        if !self.stored.insert(final_key) {
            return;
        }
        self.seen.insert(self.scope.seen_key(&page.url));
        if let Some(feed) = &mut self.feed {
            feed.send(&page).await;
        }
        // Store what the caller asked for, not what the crawl needed.
        let wanted = self.spec.formats;
        if !wanted.links {
            page.links = None;
        }
        if !wanted.markdown {
            page.markdown = None;
        }
        if let Some(feed) = &self.feed {
            self.record.ingest_sent = feed.sent;
        }
        if let Err(e) = self.shared.store.add_page(&mut self.record, &page).await {
            tracing::warn!(job = %self.record.id, error = %e, "could not store a crawled page");
        }
        if let Some(notifier) = &mut self.notifier {
            notifier.page(&page);
        }
        if self.record.bytes > self.shared.config.max_bytes_per_job {
            let reason = format!(
                "the job fetched more than its maximum of {} bytes; the rest of the site was not crawled",
                self.shared.config.max_bytes_per_job
            );
            self.bound(reason).await;
        }
    }

    /// A job-wide bound was reached: stop fetching, keep what was crawled, say why.
    async fn bound(&mut self, reason: String) {
        let url = self.spec.seeds.first().cloned();
        if let Some(url) = url {
            self.error(job_error(
                &url,
                ErrorKind::Bound,
                "JOB_BOUND",
                reason.clone(),
            ))
            .await;
        }
        self.stopped = Some((JobStatus::Completed, reason));
    }

    async fn error(&mut self, error: JobError) {
        if self.record.errors >= self.shared.config.max_errors_per_job {
            return; // counted in metrics; the list itself stays bounded
        }
        if let Err(e) = self.shared.store.add_error(&mut self.record, &error).await {
            tracing::warn!(job = %self.record.id, error = %e, "could not store a job error");
        }
    }

    async fn save(&mut self) {
        for error in std::mem::take(&mut self.pending) {
            self.error(error).await;
        }
        if let Err(e) = self.shared.store.save(&mut self.record).await {
            tracing::warn!(job = %self.record.id, error = %e, "could not save the job's state");
        }
    }
}

/// Fetches one URL politely: robots.txt, the host's schedule, the process's limits, then the
/// scraper pool; 429/503 and transient failures are retried with backoff.
async fn fetch(
    shared: Arc<Shared>,
    clock: Arc<HostClock>,
    spec: JobSpec,
    cancel: CancellationToken,
    queued: Queued,
) -> Fetched {
    let url = queued.url.clone();
    let config = &shared.config;
    let host = url.host_str().unwrap_or_default().to_string();
    let mut interval = spec.delay.unwrap_or_default();
    if !spec.ignore_robots {
        let rules = shared.robots.rules(&url).await;
        if !rules.allowed(&url) {
            return Fetched::Robots {
                reason: rules.refusal().to_string(),
                url,
            };
        }
        interval = interval.max(rules.crawl_delay().unwrap_or_default());
    }
    if !interval.is_zero() {
        clock.set_interval(&host, interval);
    }
    let mut attempt = 0;
    loop {
        clock.wait_turn(&host).await;
        shared.hosts.until_ready(&host).await;
        let result = {
            let Ok(_slot) = shared.global.acquire().await else {
                return failed(url, "INTERNAL", "the crawler is shutting down".into());
            };
            let mut request = spec.scrape.clone();
            request.url = url.clone();
            request.cancel = Some(cancel.clone());
            // The crawl needs links to go on, and markdown to feed the knowledge base.
            request.formats.links = true;
            request.formats.markdown |= spec.ingest.is_some();
            shared.router.scrape(request).await
        };
        let retry = attempt < config.retries;
        let wait = |retry_after: Option<Duration>| {
            retry_after
                .unwrap_or_else(|| backoff(config.backoff, attempt, config.max_backoff))
                .min(config.max_backoff)
        };
        match result {
            Ok(page) if matches!(page.status_code, 429 | 503) && retry => {
                clock.back_off(&host, wait(page.retry_after));
            }
            Ok(page) if page.status_code >= 400 => {
                let status = page.status_code;
                return failed(
                    url,
                    &format!("HTTP_{status}"),
                    format!("the page answered HTTP {status}"),
                );
            }
            Ok(page) => {
                return Fetched::Page {
                    queued,
                    page: Box::new(page),
                };
            }
            Err(e) if retry && transient(&e) => {
                clock.back_off(&host, wait(None));
            }
            Err(e) => return failed(url, scrape_code(&e), e.to_string()),
        }
        attempt += 1;
    }
}

fn failed(url: Url, code: &str, error: String) -> Fetched {
    Fetched::Failed {
        url,
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
        ScrapeError::UnsupportedContentType(_) => "UNSUPPORTED_CONTENT_TYPE",
        ScrapeError::Overloaded | ScrapeError::Unavailable(_) => "UNAVAILABLE",
        ScrapeError::Cancelled => "CANCELLED",
        ScrapeError::Internal(_) => "INTERNAL",
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

fn job_error(url: &Url, kind: ErrorKind, code: &str, error: String) -> JobError {
    JobError {
        timestamp: now_ms(),
        url: url.to_string(),
        kind,
        code: code.to_string(),
        error,
    }
}

/// Streams a crawl's pages to the knowledge base in small batches, off the fetch loop.
struct Feed {
    /// Bounded: when embedding falls behind, the crawl waits rather than piling pages up.
    tx: mpsc::Sender<Document>,
    task: JoinHandle<u64>,
    sent: u64,
    /// Ingest failures, drained into the job's error list by the fetch loop.
    errors: Arc<Mutex<Vec<JobError>>>,
    /// Stored on every chunk, so a crawl's knowledge can be found (and filtered) as one.
    crawl_id: String,
}

impl Feed {
    fn start(shared: &Arc<Shared>, collection: String, crawl_id: String) -> Self {
        let (tx, mut rx) = mpsc::channel::<Document>(shared.config.ingest_batch * 4);
        let errors = Arc::new(Mutex::new(Vec::new()));
        let router = shared.router.clone();
        let batch_size = shared.config.ingest_batch.max(1);
        let sink = errors.clone();
        let task = tokio::spawn(async move {
            let mut ingested = 0u64;
            let mut batch = Vec::with_capacity(batch_size);
            while rx.recv_many(&mut batch, batch_size).await > 0 {
                let urls: Vec<String> = batch.iter().map(|d| d.url.clone()).collect();
                let request = IngestRequest {
                    collection: collection.clone(),
                    documents: std::mem::take(&mut batch),
                    create: true,
                };
                let problem = match router.ingest(request).await {
                    Ok(report) => {
                        ingested += (report.ingested + report.skipped) as u64;
                        report
                            .rejected
                            .into_iter()
                            .map(|r| (r.url, format!("not ingested: {}", r.reason)))
                            .collect()
                    }
                    Err(e) => urls
                        .into_iter()
                        .map(|url| (url, format!("not ingested: {e}")))
                        .collect::<Vec<_>>(),
                };
                if let Ok(mut sink) = sink.lock() {
                    sink.extend(problem.into_iter().map(|(url, error)| JobError {
                        timestamp: now_ms(),
                        url,
                        kind: ErrorKind::Ingest,
                        code: "INGEST".to_string(),
                        error,
                    }));
                }
            }
            ingested
        });
        Self {
            tx,
            task,
            sent: 0,
            errors,
            crawl_id,
        }
    }

    async fn send(&mut self, page: &Page) {
        if page.markdown.is_none() {
            return;
        }
        let document = Document::from_page(page, Some(self.crawl_id.clone()));
        if self.tx.send(document).await.is_ok() {
            self.sent += 1;
        }
    }

    fn take_errors(&self) -> Vec<JobError> {
        self.errors
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }

    /// Waits for every page sent to be ingested: (sent, taken, errors).
    async fn finish(self) -> (u64, u64, Vec<JobError>) {
        drop(self.tx);
        let ingested = self.task.await.unwrap_or(0);
        let errors = self
            .errors
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default();
        (self.sent, ingested, errors)
    }
}
