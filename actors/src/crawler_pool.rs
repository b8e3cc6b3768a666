//! CrawlerPool: crawl and batch-scrape jobs. It accepts a job (validated by the caller, written
//! to the job store before the id is handed out) and runs it as a task of its own over the
//! scraper pool (`job`), with robots.txt, sitemaps and per-host politeness.
//!
//! Messages: [`CrawlerMsg::Start`] (reply: the job's first record) and [`CrawlerMsg::Cancel`]
//! (local half of a cancel; the store's cancel key reaches jobs on other replicas).
//! Status, pages and errors are read straight from the job store by [`Handle`]: any replica can
//! answer them, and no read waits behind a mailbox.
//!
//! Restart: permanent child of the root supervisor. Running jobs and their cancel tokens belong
//! to the tree ([`Shared`]), not to the actor, so a restart of the actor loses no job. A job task
//! that panics is recorded as failed. A job whose replica died stops sending heartbeats and is
//! reported failed once stale (its frontier lived in that process).

mod job;
pub mod politeness;
pub mod robots;
pub mod scope;
pub mod sitemap;
pub mod store;
pub mod urls;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::Names;
use crate::model::{Formats, Page, ScrapeRequest};
use crate::ports::{Fetcher, StateError, StateStore};
use crate::router;
use crate::supervisor::ChildSpec;
use politeness::HostLimits;
use robots::RobotsCache;
use scope::{ScopeRules, TrapBounds};
pub use store::{ErrorKind, JobError, JobKind, JobRecord, JobStatus};
use store::{JobStore, now_ms};

/// The crawler's settings.
#[derive(Debug, Clone)]
pub struct CrawlerConfig {
    /// Crawl fetches in flight in this process, across all jobs.
    pub max_concurrency: usize,
    /// Fetches in flight per job unless the request says otherwise (capped by the above).
    pub job_concurrency: usize,
    /// Requests per second to one host, across all jobs of this process; 0 = unlimited.
    pub per_host_rps: f64,
    /// The robots.txt product token (`AuroraBot`).
    pub robots_agent: String,
    pub robots_ttl: Duration,
    pub traps: TrapBounds,
    pub max_bytes_per_job: u64,
    pub max_job_duration: Duration,
    /// The error list keeps this many entries (later ones are only counted in metrics).
    pub max_errors_per_job: u64,
    /// Job state (status, pages, errors) expires this long after the job starts.
    pub job_ttl: Duration,
    /// Retries of a page after 429/503 or a transient failure.
    pub retries: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// How often a job looks for a cancel made on another replica (and saves a heartbeat).
    pub cancel_poll: Duration,
    /// How long a cancel waits for the job to confirm it stopped.
    pub cancel_wait: Duration,
    /// A running job not heard from for this long is reported failed (its replica died).
    pub stale_after: Duration,
    /// Pages per ingest call when a crawl feeds the knowledge base.
    pub ingest_batch: usize,
    pub webhooks: webhook::DeliveryConfig,
}

impl Default for CrawlerConfig {
    fn default() -> Self {
        Self {
            max_concurrency: 32,
            job_concurrency: 8,
            per_host_rps: 10.0,
            robots_agent: "AuroraBot".to_string(),
            robots_ttl: Duration::from_secs(3600),
            traps: TrapBounds::default(),
            max_bytes_per_job: 1 << 30,
            max_job_duration: Duration::from_secs(3600),
            max_errors_per_job: 1000,
            job_ttl: Duration::from_secs(24 * 3600),
            retries: 3,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            cancel_poll: Duration::from_millis(250),
            cancel_wait: Duration::from_secs(5),
            stale_after: Duration::from_secs(120),
            ingest_batch: 16,
            webhooks: webhook::DeliveryConfig::default(),
        }
    }
}

/// Whether a crawl reads the site's sitemaps (Firecrawl v2 `sitemap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SitemapMode {
    Skip,
    Include,
    /// Only the sitemaps' URLs (and the start URL); links are not followed.
    Only,
}

/// What a map should list (Firecrawl `map`): a site's URLs from its sitemaps and the links of its
/// start page, without scraping the pages themselves.
#[derive(Debug, Clone)]
pub struct MapSpec {
    pub url: Url,
    /// Keep only URLs containing one of these words (case-insensitive), best matches first.
    pub search: Option<String>,
    pub sitemap: SitemapMode,
    pub include_subdomains: bool,
    pub ignore_query_parameters: bool,
    pub limit: usize,
    pub timeout: Duration,
}

/// What a job should do; the HTTP layer builds it from a Firecrawl request.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub kind: JobKind,
    /// The start URL (crawl) or every URL (batch). Never empty.
    pub seeds: Vec<Url>,
    /// How each page is scraped; the URL is filled in per page.
    pub scrape: ScrapeRequest,
    /// What the caller asked to get back (the crawl itself also needs links, and markdown when
    /// it ingests).
    pub formats: Formats,
    pub rules: ScopeRules,
    /// Pages fetched at most.
    pub limit: usize,
    pub ignore_robots: bool,
    pub sitemap: SitemapMode,
    /// Minimum spacing of requests to one host (Firecrawl `delay`).
    pub delay: Option<Duration>,
    pub max_concurrency: Option<usize>,
    /// Stream pages into this collection as they are crawled.
    pub ingest: Option<String>,
    /// Told of the job's progress as it goes.
    pub webhook: Option<webhook::Webhook>,
    /// The client's `x-idempotency-key`: a second start with it is refused.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrawlError {
    #[error("{0}")]
    Invalid(String),
    #[error("Job not found")]
    NotFound,
    /// The idempotency key was used before (within the job expiry).
    #[error("Idempotency key already used")]
    Duplicate,
    #[error("the {0} is restarting; retry shortly")]
    Unavailable(&'static str),
    /// The fetcher's policy refuses the job's URL (SSRF guard).
    #[error(transparent)]
    Refused(crate::ports::FetchError),
    #[error(transparent)]
    State(#[from] StateError),
}

pub enum CrawlerMsg {
    Start {
        spec: Box<JobSpec>,
        reply: RpcReplyPort<Result<JobRecord, CrawlError>>,
    },
    /// Stops a job running in this process (no-op for others).
    Cancel { id: String },
}

/// What every job of the tree shares; owned by the tree so it outlives actor restarts.
pub(crate) struct Shared {
    pub config: CrawlerConfig,
    pub store: JobStore,
    pub robots: RobotsCache,
    pub hosts: Arc<HostLimits>,
    /// Bounds crawl fetches in flight across jobs.
    pub global: Semaphore,
    pub router: router::Handle,
    /// Robots.txt and sitemaps are read directly; pages go through the scraper pool.
    pub fetcher: Arc<dyn Fetcher>,
    /// Cancel tokens of the jobs running here, by id.
    pub running: DashMap<String, CancellationToken>,
    /// Cancelled at shutdown: running jobs stop and record why.
    pub shutdown: CancellationToken,
}

impl Shared {
    pub fn new(
        config: CrawlerConfig,
        state: Arc<dyn StateStore>,
        fetcher: Arc<dyn Fetcher>,
        router: router::Handle,
    ) -> Self {
        let hosts = Arc::new(HostLimits::new(state.clone(), config.per_host_rps));
        Self {
            store: JobStore::new(state),
            robots: RobotsCache::new(
                fetcher.clone(),
                hosts.clone(),
                config.robots_agent.clone(),
                config.robots_ttl,
            ),
            hosts,
            global: Semaphore::new(config.max_concurrency.max(1)),
            router,
            fetcher,
            running: DashMap::new(),
            shutdown: CancellationToken::new(),
            config,
        }
    }

    /// Stops every job of this process and waits (up to `bound`) for them to record it.
    pub async fn shut_down(&self, bound: Duration) {
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + bound;
        while !self.running.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub(crate) struct CrawlerPool;

impl Actor for CrawlerPool {
    type Msg = CrawlerMsg;
    type State = Arc<Shared>;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _myself: ActorRef<CrawlerMsg>,
        shared: Arc<Shared>,
    ) -> Result<Arc<Shared>, ActorProcessingErr> {
        Ok(shared)
    }

    async fn handle(
        &self,
        _myself: ActorRef<CrawlerMsg>,
        message: CrawlerMsg,
        shared: &mut Arc<Shared>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CrawlerMsg::Start { spec, reply } => {
                let _ = reply.send(start(shared, *spec).await);
            }
            CrawlerMsg::Cancel { id } => {
                if let Some(token) = shared.running.get(&id) {
                    token.cancel();
                }
            }
        }
        Ok(())
    }
}

/// Writes the job's first record, then runs it in a task watched for panics.
async fn start(shared: &Arc<Shared>, spec: JobSpec) -> Result<JobRecord, CrawlError> {
    let Some(first) = spec.seeds.first() else {
        return Err(CrawlError::Invalid("a job needs at least one URL".into()));
    };

    let now = now_ms();
    let mut record = JobRecord {
        id: uuid::Uuid::new_v4().to_string(),
        kind: spec.kind,
        url: first.to_string(),
        status: JobStatus::Scraping,
        created_at: now,
        updated_at: now,
        expires_at: now + shared.config.job_ttl.as_millis() as u64,
        total: spec.seeds.len().min(spec.limit) as u64,
        completed: 0,
        failed: 0,
        documents: 0,
        errors: 0,
        bytes: 0,
        ingest_sent: 0,
        ingested: 0,
        collection: spec.ingest.clone(),
        end_reason: None,
    };
    shared.store.save(&mut record).await?;
    let cancel = shared.shutdown.child_token();
    shared.running.insert(record.id.clone(), cancel.clone());
    let task = tokio::spawn(job::run(shared.clone(), record.clone(), spec, cancel));
    let (watcher, id) = (shared.clone(), record.id.clone());
    tokio::spawn(async move {
        if let Err(e) = task.await {
            tracing::error!(job = %id, error = %e, "crawl job task failed");
            if let Ok(Some(mut record)) = watcher.store.get(&id).await {
                record.status = JobStatus::Failed;
                record.end_reason = Some("the job stopped unexpectedly (internal error)".into());
                let _ = watcher.store.save(&mut record).await;
            }
        }
        watcher.running.remove(&id);
    });
    tracing::info!(job = %record.id, url = %record.url, kind = ?record.kind, "job started");
    Ok(record)
}

pub(crate) fn child_spec(names: Arc<Names>, shared: Arc<Shared>) -> ChildSpec {
    ChildSpec {
        label: "crawler",
        start: Arc::new(move |supervisor| {
            let (name, shared) = (names.crawler.clone(), shared.clone());
            Box::pin(async move {
                let (actor, _) =
                    Actor::spawn_linked(Some(name), CrawlerPool, shared, supervisor).await?;
                Ok(actor.get_cell())
            })
        }),
    }
}

/// The typed way in, for the HTTP layer and the CLI.
#[derive(Clone)]
pub struct Handle {
    pub(crate) names: Arc<Names>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) lookup_grace: Duration,
}

impl Handle {
    /// Starts a job; its record is stored before this returns, so any replica can answer for it.
    pub async fn start(&self, spec: JobSpec) -> Result<JobRecord, CrawlError> {
        // Checked here, in the caller's task: resolving names must not hold up the mailbox.
        for url in &spec.seeds {
            self.shared
                .fetcher
                .admits(url)
                .await
                .map_err(CrawlError::Refused)?;
        }
        if let Some(webhook) = &spec.webhook {
            // Deliveries go through the same SSRF guard; refuse now rather than fail later.
            self.shared
                .fetcher
                .admits(&webhook.url)
                .await
                .map_err(|e| CrawlError::Invalid(format!("`webhook.url` is refused: {e}")))?;
        }
        let key = spec.idempotency_key.clone();
        if let Some(key) = &key
            && !self
                .shared
                .store
                .claim(key, self.shared.config.job_ttl)
                .await?
        {
            return Err(CrawlError::Duplicate);
        }
        let started = self.start_claimed(spec).await;
        if let (Some(key), Err(_)) = (&key, &started) {
            // Nothing started, so the key is free for the client's retry.
            let _ = self.shared.store.release(key).await;
        }
        started
    }

    async fn start_claimed(&self, spec: JobSpec) -> Result<JobRecord, CrawlError> {
        let actor = crate::lookup::<CrawlerMsg>(&self.names.crawler, self.lookup_grace)
            .await
            .ok_or(CrawlError::Unavailable("crawler"))?;
        let spec = Box::new(spec);
        match actor
            .call(
                |reply| CrawlerMsg::Start {
                    spec: spec.clone(),
                    reply,
                },
                Some(Duration::from_secs(30)),
            )
            .await
        {
            Ok(CallResult::Success(result)) => result,
            _ => Err(CrawlError::Unavailable("crawler")),
        }
    }

    /// Whether the fetcher's policy lets `url` through (the SSRF guard), as `start` checks it.
    pub async fn check(&self, url: &Url) -> Result<(), CrawlError> {
        self.shared
            .fetcher
            .admits(url)
            .await
            .map_err(CrawlError::Refused)
    }

    /// A site's URLs from its sitemaps and start page (no job: answered right away).
    pub async fn map(&self, spec: MapSpec) -> Result<Vec<Url>, CrawlError> {
        let shared = &self.shared;
        shared
            .fetcher
            .admits(&spec.url)
            .await
            .map_err(CrawlError::Refused)?;
        let rules = ScopeRules {
            crawl_entire_domain: true,
            allow_subdomains: spec.include_subdomains,
            ignore_query_parameters: spec.ignore_query_parameters,
            ..ScopeRules::default()
        };
        let scope = scope::Scope::new(&spec.url, rules, shared.config.traps.clone());
        let mut found: Vec<Url> = Vec::new();
        if spec.sitemap != SitemapMode::Only {
            let mut request = ScrapeRequest::new(spec.url.clone());
            request.formats = Formats {
                markdown: false,
                html: false,
                raw_html: false,
                links: true,
            };
            request.timeout = spec.timeout;
            if let Ok(page) = shared.router.scrape(request).await {
                found.push(page.url.clone());
                found.extend(
                    page.links
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|l| page.url.join(l).ok()),
                );
            }
        }
        if spec.sitemap != SitemapMode::Skip {
            let robots = shared.robots.rules(&spec.url).await;
            let mut roots: Vec<Url> = robots
                .sitemaps()
                .iter()
                .filter_map(|s| spec.url.join(s).ok())
                .collect();
            if let Ok(default) = spec.url.join("/sitemap.xml")
                && !roots.contains(&default)
            {
                roots.push(default);
            }
            let (urls, _) = sitemap::discover(
                shared.fetcher.as_ref(),
                &shared.hosts,
                roots,
                spec.limit.saturating_mul(4).max(1000),
                spec.timeout,
            )
            .await;
            found.extend(urls);
        }
        let terms: Vec<String> = spec
            .search
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut listed: Vec<(usize, Url)> = found
            .iter()
            .filter_map(|url| scope.admit(url, 0).ok())
            .filter(|url| seen.insert(scope.seen_key(url)))
            .filter_map(|url| {
                let text = url.as_str().to_lowercase();
                let matched = terms.iter().filter(|t| text.contains(t.as_str())).count();
                (terms.is_empty() || matched > 0).then_some((matched, url))
            })
            .collect();
        // Best matches first; otherwise the order found (start page, its links, sitemaps).
        listed.sort_by_key(|(matched, _)| std::cmp::Reverse(*matched));
        metrics::counter!("aurora_crawl_maps_total").increment(1);
        Ok(listed
            .into_iter()
            .map(|(_, url)| url)
            .take(spec.limit)
            .collect())
    }

    /// The job's record; a running job whose replica stopped answering is reported failed.
    pub async fn status(&self, id: &str) -> Result<JobRecord, CrawlError> {
        let mut record = self
            .shared
            .store
            .get(id)
            .await?
            .ok_or(CrawlError::NotFound)?;
        let stale = self.shared.config.stale_after.as_millis() as u64;
        if record.status == JobStatus::Scraping
            && now_ms().saturating_sub(record.updated_at) > stale
        {
            record.status = JobStatus::Failed;
            record.end_reason = Some(
                "the Aurora instance running this job stopped; start the job again".to_string(),
            );
        }
        Ok(record)
    }

    /// Pages `from..to` of the job.
    pub async fn pages(&self, id: &str, from: u64, to: u64) -> Result<Vec<Page>, CrawlError> {
        Ok(self.shared.store.pages(id, from, to).await?)
    }

    /// Every stored error of the job.
    pub async fn errors(&self, id: &str) -> Result<Vec<JobError>, CrawlError> {
        let record = self.status(id).await?;
        Ok(self.shared.store.errors(id, 0, record.errors).await?)
    }

    /// Cancels a job wherever it runs and waits (a bounded time) until it has stopped fetching.
    pub async fn cancel(&self, id: &str) -> Result<JobRecord, CrawlError> {
        let record = self.status(id).await?;
        if record.status != JobStatus::Scraping {
            return Ok(record);
        }
        self.shared.store.request_cancel(&record).await?;
        if let Some(actor) = ActorRef::<CrawlerMsg>::where_is(self.names.crawler.clone()) {
            let _ = actor.cast(CrawlerMsg::Cancel { id: id.to_string() });
        }
        let deadline = tokio::time::Instant::now() + self.shared.config.cancel_wait;
        loop {
            let record = self.status(id).await?;
            if record.status != JobStatus::Scraping {
                return Ok(record);
            }
            if tokio::time::Instant::now() >= deadline {
                // The job has not confirmed (its replica may be gone): record the cancel so
                // clients see it; a live job stops at its next cancel poll.
                let mut record = record;
                record.status = JobStatus::Cancelled;
                record.end_reason = Some("cancelled".to_string());
                self.shared.store.save(&mut record).await?;
                return Ok(record);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
