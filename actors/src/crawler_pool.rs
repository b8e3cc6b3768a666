//! CrawlerPool — in code the one stateful actor `CrawlerPool` registered as `Names::crawler`,
//! not a pool of actors: the name is the card's, and the pool is of crawl jobs (its consumer task
//! runs items of every job concurrently over the scraper pool).
//!
//! Crawl and batch-scrape jobs are durable work shared by every replica. Starting a job writes it
//! to the [`JobQueue`](crate::ports::JobQueue) — its description, its first work items — before
//! the id is handed out; from then on the job belongs to the store, not to a
//! process. Each replica's consumer ([`consumer`]) leases items of every active job, fetches them
//! politely through the scraper pool and records each result atomically (page stored once, new
//! links admitted, counters moved), so a job outlives the replica that started it: items a dead
//! replica held are reclaimed when their leases expire. Status, pages, errors and cancel are read
//! and written in the store by [`Handle`], so any replica answers them without a mailbox.
//!
//! Messages: [`CrawlerMsg::Start`] (reply: the job's first record) and
//! [`CrawlerMsg::ConsumerStopped`] (the consumer task ended unexpectedly: fail, to be restarted).
//!
//! Restart: permanent child of the root supervisor. The actor owns its consumer task: stopping
//! the actor stops the consumer, which gives its leases back; a restarted actor starts a new one.
//! Nothing accepted is lost either way: it is in the store.
//!
//! Size: the actor, its settings and the job handle that every replica uses; the consumer, the work
//! items and the webhook live in `crawler_pool/`.

mod consumer;
mod item;
pub mod map;
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
use tokio_util::sync::{CancellationToken, DropGuard};
use url::Url;

use crate::Names;
use crate::model::{Formats, Page, ScrapeRequest};
use crate::ports::{Fetcher, JobQueue, StateError, StateStore};
use crate::router;
use crate::supervisor::ChildSpec;
pub use map::{MapSpec, Mapped};
use politeness::{HostClock, HostLimits};
use robots::RobotsCache;
use scope::{ScopeRules, TrapBounds};
pub use store::{ErrorKind, JobError, JobKind, JobRecord, JobStatus};
use store::{JobMeta, JobStore, Work, now_ms};

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
    /// How often a consumer renews its leases, which is also how soon it hears of a cancel.
    pub cancel_poll: Duration,
    /// How long a cancel waits for every replica to let go of the job's items.
    pub cancel_wait: Duration,
    /// A leased item not renewed for this long is handed to another consumer.
    pub lease: Duration,
    /// How often an idle consumer looks for new work.
    pub poll: Duration,
    /// Pages per ingest call when a crawl feeds the knowledge base.
    pub ingest_batch: usize,
    pub webhooks: webhook::DeliveryConfig,
    /// Follow links to recordings: set when a transcriber is configured.
    pub follow_media: bool,
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
            lease: Duration::from_secs(10),
            poll: Duration::from_millis(100),
            ingest_batch: 16,
            webhooks: webhook::DeliveryConfig::default(),
            follow_media: false,
        }
    }
}

/// Whether a crawl reads the site's sitemaps (Firecrawl v2 `sitemap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SitemapMode {
    Skip,
    Include,
    /// Only the sitemaps' URLs (and the start URL); links are not followed.
    Only,
}

/// What a job should do; the HTTP layer builds it from a Firecrawl request. Stored with the job,
/// so every replica works from it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    #[serde(skip)]
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
    /// The consumer task ended while the actor runs: fail, so the supervisor restarts both.
    ConsumerStopped(String),
}

/// What the tree's crawling shares; owned by the tree so it outlives actor restarts.
pub(crate) struct Shared {
    pub config: CrawlerConfig,
    pub store: JobStore,
    pub robots: RobotsCache,
    pub hosts: Arc<HostLimits>,
    /// Bounds crawl fetches in flight in this process, across jobs.
    pub global: Semaphore,
    pub router: router::Handle,
    /// Robots.txt and sitemaps are read directly; pages go through the scraper pool.
    pub fetcher: Arc<dyn Fetcher>,
    /// This replica's view of the jobs it works on (spec, scope, webhook, ingest feed), by id.
    pub contexts: DashMap<String, Arc<consumer::JobContext>>,
    /// Names this process's leases; unique per tree.
    pub consumer_id: String,
    /// Why the consumer is not taking work (the store is unreachable), for `/ready`.
    pub paused: std::sync::Mutex<Option<String>>,
    /// Woken when a job starts here, so the consumer need not wait for its next poll.
    pub wake: tokio::sync::Notify,
    /// Cancelled at shutdown: the consumer gives its leases back and stops.
    pub shutdown: CancellationToken,
}

impl Shared {
    pub fn new(
        config: CrawlerConfig,
        state: Arc<dyn StateStore>,
        jobs: Arc<dyn JobQueue>,
        fetcher: Arc<dyn Fetcher>,
        router: router::Handle,
    ) -> Self {
        let hosts = Arc::new(HostLimits::new(state.clone(), config.per_host_rps));
        Self {
            store: JobStore::new(jobs, state),
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
            contexts: DashMap::new(),
            consumer_id: uuid::Uuid::new_v4().simple().to_string(),
            paused: std::sync::Mutex::new(None),
            wake: tokio::sync::Notify::new(),
            shutdown: CancellationToken::new(),
            config,
        }
    }

    /// Stops this process's consumer and waits (up to `bound`) until it gave its leases back.
    pub async fn shut_down(&self, bound: Duration) {
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + bound;
        while !self.contexts.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Robots.txt's verdict on `url` (the refusal when disallowed); when allowed, spaces the
    /// host's requests on `clock` by the larger of `delay` and the site's Crawl-delay.
    pub(crate) async fn robots_gate(
        &self,
        clock: &HostClock,
        url: &Url,
        delay: Duration,
        ignore_robots: bool,
    ) -> Result<(), String> {
        let mut interval = delay;
        if !ignore_robots {
            let rules = self.robots.rules(url).await;
            if !rules.allowed(url) {
                return Err(rules.refusal().to_string());
            }
            interval = interval.max(rules.crawl_delay().unwrap_or_default());
        }
        if !interval.is_zero() {
            clock.set_interval(url.host_str().unwrap_or_default(), interval);
        }
        Ok(())
    }

    /// The URLs a site's sitemaps list (robots.txt's sitemaps, else `/sitemap.xml`), at most
    /// `max`, with the problems met reading them.
    pub(crate) async fn sitemap_urls(
        &self,
        start: &Url,
        max: usize,
        budget: Duration,
    ) -> (Vec<Url>, Vec<String>) {
        let rules = self.robots.rules(start).await;
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
        sitemap::discover(self.fetcher.as_ref(), &self.hosts, roots, max, budget).await
    }

    /// Waits for the next slot of `url`'s host: this crawl's spacing, then the cluster's rate.
    pub(crate) async fn host_turn(&self, clock: &HostClock, url: &Url) {
        let host = url.host_str().unwrap_or_default();
        clock.wait_turn(host).await;
        self.hosts.until_ready(host).await;
    }

    /// Why this replica takes no crawl work now, if it does not.
    pub fn paused(&self) -> Option<String> {
        self.paused.lock().ok().and_then(|p| p.clone())
    }
}

/// The actor's state: its consumer task, stopped with it. A guard rather than a `post_stop`
/// hook, because ractor skips `post_stop` when an actor is killed or fails: the consumer would
/// outlive its actor and the restarted one would start a second.
pub(crate) struct Running {
    shared: Arc<Shared>,
    _stop: DropGuard,
}

pub(crate) struct CrawlerPool;

impl Actor for CrawlerPool {
    type Msg = CrawlerMsg;
    type State = Running;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<CrawlerMsg>,
        shared: Arc<Shared>,
    ) -> Result<Running, ActorProcessingErr> {
        let stop = shared.shutdown.child_token();
        let task = tokio::spawn(consumer::run(shared.clone(), stop.clone()));
        let watched = stop.clone();
        tokio::spawn(async move {
            let ended = task.await;
            if !watched.is_cancelled() {
                let why = match ended {
                    Err(e) => format!("the crawl consumer panicked: {e}"),
                    Ok(()) => "the crawl consumer stopped".to_string(),
                };
                let _ = myself.cast(CrawlerMsg::ConsumerStopped(why));
            }
        });
        Ok(Running {
            shared,
            _stop: stop.drop_guard(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<CrawlerMsg>,
        message: CrawlerMsg,
        running: &mut Running,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CrawlerMsg::Start { spec, reply } => {
                let _ = reply.send(start(&running.shared, *spec).await);
            }
            CrawlerMsg::ConsumerStopped(why) => return Err(why.into()),
        }
        Ok(())
    }
}

/// Stores the job with its first work items; the consumers (this one woken first) take it on.
async fn start(shared: &Arc<Shared>, spec: JobSpec) -> Result<JobRecord, CrawlError> {
    let Some(first) = spec.seeds.first().cloned() else {
        return Err(CrawlError::Invalid("a job needs at least one URL".into()));
    };
    let now = now_ms();
    let meta = JobMeta {
        id: uuid::Uuid::new_v4().to_string(),
        kind: spec.kind,
        url: first.to_string(),
        created_at: now,
        expires_at: now + shared.config.job_ttl.as_millis() as u64,
        collection: spec.ingest.clone(),
        spec,
    };
    let items = first_items(&meta, &shared.config)?;
    // The context goes in before the job is visible: a consumer that leases its first item
    // must find this one, not build a second whose page events would race `completed`.
    let context = consumer::JobContext::unopened(shared, meta.clone());
    context.started();
    shared.contexts.insert(meta.id.clone(), context.clone());
    if let Err(e) = shared.store.create(&meta, items).await {
        shared.contexts.remove(&meta.id);
        return Err(e.into());
    }
    context.open();
    shared.wake.notify_one();
    tracing::info!(job = %meta.id, url = %meta.url, kind = ?meta.kind, "job started");
    let record = shared
        .store
        .get(&meta.id)
        .await?
        .ok_or(CrawlError::NotFound)?;
    Ok(record)
}

/// A batch's URLs, or a crawl's start URL and (unless skipped) the job of reading its sitemaps.
fn first_items(
    meta: &JobMeta,
    config: &CrawlerConfig,
) -> Result<Vec<crate::ports::NewItem>, StateError> {
    let spec = &meta.spec;
    let page = |url: Url| Work::Page {
        url,
        hops: 0,
        run: 0,
    };
    if meta.kind == JobKind::Batch {
        return spec
            .seeds
            .iter()
            .map(|url| page(url.clone()).item(url.as_str().to_string(), true))
            .collect();
    }
    let Some(first) = spec.seeds.first() else {
        return Ok(Vec::new());
    };
    let start = urls::normalise(first, spec.rules.ignore_query_parameters);
    let scope = scope::Scope::new(first, spec.rules.clone(), config.traps.clone())
        .with_media(config.follow_media);
    let mut items = vec![page(start.clone()).item(scope.seen_key(&start), true)?];
    if spec.sitemap != SitemapMode::Skip {
        items.push(Work::Sitemaps { start }.item("sitemaps:".to_string(), false)?);
    }
    Ok(items)
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

    /// A site's URLs, from its sitemaps and a link-only crawl (no job: answered right away).
    pub async fn map(&self, spec: MapSpec) -> Result<Vec<Mapped>, CrawlError> {
        map::map(&self.shared, spec).await
    }

    /// The job's record.
    pub async fn status(&self, id: &str) -> Result<JobRecord, CrawlError> {
        self.shared.store.get(id).await?.ok_or(CrawlError::NotFound)
    }

    /// The newest `max` jobs of every replica, running or ended, newest first.
    pub async fn recent(&self, max: usize) -> Result<Vec<JobRecord>, CrawlError> {
        Ok(self.shared.store.recent(max).await?)
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

    /// Cancels a job wherever it runs and waits (a bounded time) until every replica has let go
    /// of its items, so nothing is fetched for it once this returns.
    pub async fn cancel(&self, id: &str) -> Result<JobRecord, CrawlError> {
        let record = self.status(id).await?;
        if record.status != JobStatus::Scraping {
            return Ok(record);
        }
        if self
            .shared
            .store
            .finish(id, JobStatus::Cancelled, "cancelled", None)
            .await?
        {
            consumer::announce_end(&self.shared, id, JobStatus::Cancelled, Some("cancelled")).await;
        }
        let deadline = tokio::time::Instant::now() + self.shared.config.cancel_wait;
        loop {
            let held = match self.shared.store.load(id).await? {
                Some((_, snapshot)) => snapshot.leased,
                None => 0,
            };
            if held == 0 || tokio::time::Instant::now() >= deadline {
                // Past the deadline a holder's replica may be gone; its lease lapses on its own.
                return self.status(id).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
