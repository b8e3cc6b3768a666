//! This replica's crawl consumer: one loop that leases work items of every active job from the
//! [`JobQueue`](crate::ports::JobQueue), runs each in a task of its own (robots.txt, politeness,
//! the scraper pool, the knowledge base) and records its result; it renews the leases it holds,
//! and hears of a cancel or a job ended elsewhere at that renewal.
//!
//! Delivery is at least once, recording exactly once: an item whose result cannot be recorded
//! (the store is away past a few retries) is simply left to its lease, and handed out again once
//! that lapses. While the store is unreachable the loop takes no new work, retries with backoff
//! and says so on `/ready`. At shutdown it gives its leases back so other replicas go on at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::Shared;
use super::item::{self, Feed};
use super::politeness::{HostClock, backoff};
use super::scope::Scope;
use super::store::{ErrorKind, JobKind, JobMeta, JobStatus, now_ms};
use super::webhook::Notifier;
use crate::ports::{LeaseRef, Leased, Recorded};

/// What this replica keeps about a job it works on; rebuilt from the store on any replica.
pub(crate) struct JobContext {
    pub meta: JobMeta,
    pub(super) scope: Scope,
    /// Crawl-delay / `delay` spacing per host for this job's fetches from this replica.
    pub(super) clock: HostClock,
    /// Cancelled when the job ends (or this replica stops): its fetches in flight stop.
    cancel: CancellationToken,
    pub(super) feed: Option<Feed>,
    /// Taken by whoever announces the end.
    notifier: Mutex<Option<Notifier>>,
}

impl JobContext {
    /// The context of a job already in the store: its webhook posts at once.
    pub fn new(shared: &Arc<Shared>, meta: JobMeta) -> Arc<Self> {
        let context = Self::unopened(shared, meta);
        context.notify(Notifier::open);
        context
    }

    /// The context of a job about to be stored: its webhook holds events until
    /// [`JobContext::open`], so a job that fails to be created announces nothing.
    pub fn unopened(shared: &Arc<Shared>, meta: JobMeta) -> Arc<Self> {
        let spec = &meta.spec;
        let start = spec.seeds.first().cloned().unwrap_or_else(|| {
            Url::parse("http://invalid.invalid/").unwrap_or_else(|_| unreachable!())
        });
        let scope = Scope::new(&start, spec.rules.clone(), shared.config.traps.clone())
            .with_media(shared.config.follow_media);
        let feed = spec
            .ingest
            .clone()
            .map(|collection| Feed::start(shared, collection, meta.id.clone()));
        let notifier = spec.webhook.clone().map(|webhook| {
            Notifier::new(
                shared.fetcher.clone(),
                shared.config.webhooks.clone(),
                shared.shutdown.clone(),
                webhook,
                meta.id.clone(),
                meta.kind,
            )
        });
        Arc::new(Self {
            scope,
            clock: HostClock::default(),
            cancel: shared.shutdown.child_token(),
            feed,
            notifier: Mutex::new(notifier),
            meta,
        })
    }

    pub fn started(&self) {
        self.notify(|n| n.started());
    }

    pub fn open(&self) {
        self.notify(Notifier::open);
    }

    pub fn notify(&self, event: impl FnOnce(&mut Notifier)) {
        if let Ok(mut notifier) = self.notifier.lock()
            && let Some(notifier) = notifier.as_mut()
        {
            event(notifier);
        }
    }

    fn concurrency(&self, shared: &Shared) -> usize {
        self.meta
            .spec
            .max_concurrency
            .unwrap_or(shared.config.job_concurrency)
            .clamp(1, shared.config.max_concurrency.max(1))
    }
}

/// The job ended (completed, failed, cancelled, a bound): tell its webhook, count it, and drop
/// this replica's context. Called by whoever ended it — exactly one caller cluster-wide.
pub(crate) async fn announce_end(
    shared: &Arc<Shared>,
    id: &str,
    status: JobStatus,
    reason: Option<&str>,
) {
    let context = match shared.contexts.remove(id) {
        Some((_, context)) => Some(context),
        None => match shared.store.load(id).await {
            Ok(Some((meta, _))) => Some(JobContext::new(shared, meta)),
            _ => None,
        },
    };
    let Some(context) = context else { return };
    context.cancel.cancel();
    let notifier = context.notifier.lock().ok().and_then(|mut n| n.take());
    if let Some(notifier) = notifier {
        notifier.finish(status, reason);
    }
    metrics::counter!("aurora_crawl_jobs_total",
        "kind" => match context.meta.kind { JobKind::Crawl => "crawl", JobKind::Batch => "batch" },
        "status" => status.as_str())
    .increment(1);
    metrics::histogram!("aurora_crawl_job_duration_seconds")
        .record(now_ms().saturating_sub(context.meta.created_at) as f64 / 1000.0);
    let _ = shared.store.queue.retire(id).await;
    tracing::info!(job = %id, status = status.as_str(), "job finished");
}

/// The queue completed the job (nothing left): announce it with the reason the queue stored.
async fn announce_completion(shared: &Arc<Shared>, id: &str, status: &str) {
    let reason = match shared.store.queue.snapshot(id).await {
        Ok(Some(snapshot)) => snapshot.reason,
        _ => None,
    };
    announce_end(shared, id, JobStatus::parse(status), reason.as_deref()).await;
}

/// One item in flight here.
struct Held {
    lease: LeaseRef,
    cancel: CancellationToken,
    since: Instant,
}

/// How an item's task ended.
pub(super) enum Done {
    Recorded(Recorded),
    /// Not recorded (cancelled, shutting down, the store away): give the lease back if held.
    Abandoned,
}

pub(super) struct Finished {
    pub job: String,
    pub item: u64,
    pub done: Done,
}

/// The consumer loop; returns once `stop` is cancelled and its leases are given back.
pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut held: HashMap<String, HashMap<u64, Held>> = HashMap::new();
    let mut tasks: JoinSet<Finished> = JoinSet::new();
    let mut renew = tokio::time::interval(shared.config.cancel_poll);
    let mut poll = tokio::time::interval(shared.config.poll);
    let mut pause = Pause::default();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(finished) = tasks.join_next() => {
                if let Ok(finished) = finished {
                    settle(&shared, &mut held, finished).await;
                }
                fill(&shared, &mut held, &mut tasks, &mut pause).await;
            }
            _ = renew.tick() => renew_all(&shared, &mut held, &mut pause).await,
            () = shared.wake.notified() => fill(&shared, &mut held, &mut tasks, &mut pause).await,
            _ = poll.tick() => fill(&shared, &mut held, &mut tasks, &mut pause).await,
        }
        metrics::gauge!("aurora_crawl_items_in_flight")
            .set(held.values().map(HashMap::len).sum::<usize>() as f64);
    }
    // Stop what runs, then hand every lease back so another replica takes it at once.
    for items in held.values() {
        for item in items.values() {
            item.cancel.cancel();
        }
    }
    while tasks.join_next().await.is_some() {}
    for (job, items) in held {
        let leases: Vec<LeaseRef> = items.into_values().map(|h| h.lease).collect();
        let _ = shared.store.queue.release(&job, &leases).await;
    }
    for context in shared.contexts.iter() {
        context.cancel.cancel();
    }
    shared.contexts.clear();
}

/// Backoff while the store is unreachable (and when the queue gauges were last read: at most
/// once a second, as they cost a read per job).
#[derive(Default)]
struct Pause {
    until: Option<tokio::time::Instant>,
    attempts: u32,
    gauges_at: Option<Instant>,
}

impl Pause {
    fn active(&self) -> bool {
        self.until
            .is_some_and(|until| tokio::time::Instant::now() < until)
    }

    fn fail(&mut self, shared: &Shared, error: &crate::ports::StateError) {
        let wait = backoff(
            Duration::from_millis(200),
            self.attempts,
            Duration::from_secs(5),
        );
        self.attempts += 1;
        self.until = Some(tokio::time::Instant::now() + wait);
        let why = format!("crawling paused: the state store is unreachable ({error})");
        if let Ok(mut paused) = shared.paused.lock() {
            if paused.is_none() {
                tracing::warn!(%error, "crawling paused: the state store is unreachable");
            }
            *paused = Some(why);
        }
    }

    fn ok(&mut self, shared: &Shared) {
        if self.attempts > 0 {
            tracing::info!("the state store is back; crawling resumes");
        }
        self.attempts = 0;
        self.until = None;
        if let Ok(mut paused) = shared.paused.lock() {
            *paused = None;
        }
    }
}

/// Leases what this replica has room for, across every active job.
async fn fill(
    shared: &Arc<Shared>,
    held: &mut HashMap<String, HashMap<u64, Held>>,
    tasks: &mut JoinSet<Finished>,
    pause: &mut Pause,
) {
    if pause.active() || shared.shutdown.is_cancelled() {
        return;
    }
    let queue = shared.store.queue.clone();
    let jobs = match queue.active().await {
        Ok(jobs) => jobs,
        Err(e) => return pause.fail(shared, &e),
    };
    pause.ok(shared);
    let gauges = pause
        .gauges_at
        .is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
    if gauges {
        pause.gauges_at = Some(Instant::now());
        metrics::gauge!("aurora_crawl_jobs_active").set(jobs.len() as f64);
    }
    let mut queued_total = 0u64;
    let mut leased_total = 0u64;
    // The largest job's backlog: per-job figures without a label per job id (unbounded).
    let mut backlog_max = 0u64;
    for id in jobs {
        let in_flight: usize = held.values().map(HashMap::len).sum();
        let room = shared
            .config
            .max_concurrency
            .max(1)
            .saturating_sub(in_flight);
        let Some(context) = context(shared, &id).await else {
            continue;
        };
        if now_ms() > context.meta.created_at + shared.config.max_job_duration.as_millis() as u64 {
            let reason = format!(
                "the job ran for its maximum of {} s; the rest of the site was not crawled",
                shared.config.max_job_duration.as_secs()
            );
            end_on_bound(shared, &context, reason).await;
            continue;
        }
        let mine = held.get(&id).map_or(0, HashMap::len);
        let want = context.concurrency(shared).saturating_sub(mine).min(room);
        if want == 0 {
            continue;
        }
        let leased = queue
            .lease(&id, &shared.consumer_id, want, shared.config.lease)
            .await;
        match leased {
            Err(e) => return pause.fail(shared, &e),
            Ok(Leased::Items { items, reclaimed }) => {
                metrics::counter!("aurora_crawl_queue_leased_total").increment(items.len() as u64);
                metrics::counter!("aurora_crawl_queue_reclaimed_total").increment(reclaimed);
                for item in items {
                    let cancel = context.cancel.child_token();
                    held.entry(id.clone()).or_default().insert(
                        item.lease.item,
                        Held {
                            lease: item.lease.clone(),
                            cancel: cancel.clone(),
                            since: Instant::now(),
                        },
                    );
                    tasks.spawn(item::work(shared.clone(), context.clone(), item, cancel));
                }
            }
            Ok(Leased::Completed { status }) => announce_completion(shared, &id, &status).await,
            Ok(Leased::Ended) => forget(shared, held, &id).await,
        }
        if gauges && let Ok(Some(snapshot)) = queue.snapshot(&id).await {
            queued_total += snapshot.queued;
            leased_total += snapshot.leased;
            backlog_max = backlog_max.max(snapshot.queued + snapshot.leased);
        }
    }
    if gauges {
        metrics::gauge!("aurora_crawl_job_backlog_max_items").set(backlog_max as f64);
        metrics::gauge!("aurora_crawl_queue_items", "state" => "queued").set(queued_total as f64);
        metrics::gauge!("aurora_crawl_queue_items", "state" => "leased").set(leased_total as f64);
    }
}

/// This replica's context of job `id`, loaded from the store the first time; `None` (and the job
/// retired) once it has ended or expired.
async fn context(shared: &Arc<Shared>, id: &str) -> Option<Arc<JobContext>> {
    if let Some(context) = shared.contexts.get(id) {
        return Some(context.clone());
    }
    match shared.store.load(id).await {
        Ok(Some((meta, snapshot))) if snapshot.status == crate::ports::JOB_RUNNING => {
            let context = JobContext::new(shared, meta);
            shared.contexts.insert(id.to_string(), context.clone());
            Some(context)
        }
        Ok(_) => {
            // Ended or expired, and whoever ended it did not get to retire it.
            let _ = shared.store.queue.retire(id).await;
            None
        }
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "cannot read a job's description");
            None
        }
    }
}

/// The job ended elsewhere: stop its items here and drop its context.
async fn forget(shared: &Arc<Shared>, held: &mut HashMap<String, HashMap<u64, Held>>, id: &str) {
    if let Some((_, context)) = shared.contexts.remove(id) {
        context.cancel.cancel();
    }
    if held.get(id).is_none_or(HashMap::is_empty) {
        let _ = shared.store.queue.retire(id).await;
    }
}

/// A job-wide bound was reached: end the job, keep what was crawled, say why.
async fn end_on_bound(shared: &Arc<Shared>, context: &JobContext, reason: String) {
    let id = &context.meta.id;
    let error = item::job_error(
        &context.meta.url,
        ErrorKind::Bound,
        "JOB_BOUND",
        reason.clone(),
    );
    match shared
        .store
        .finish(id, JobStatus::Completed, &reason, Some(&error))
        .await
    {
        Ok(true) => announce_end(shared, id, JobStatus::Completed, Some(&reason)).await,
        Ok(false) => {}
        Err(e) => tracing::warn!(job = %id, error = %e, "could not end a job at its bound"),
    }
}

/// An item's task ended: drop its lease from the books (giving it back if it was not recorded),
/// and act on what its result said about the job.
async fn settle(
    shared: &Arc<Shared>,
    held: &mut HashMap<String, HashMap<u64, Held>>,
    finished: Finished,
) {
    let Some(item) = held
        .get_mut(&finished.job)
        .and_then(|items| items.remove(&finished.item))
    else {
        return;
    };
    if held.get(&finished.job).is_some_and(HashMap::is_empty) {
        held.remove(&finished.job);
    }
    metrics::histogram!("aurora_crawl_lease_age_seconds")
        .record(item.since.elapsed().as_secs_f64());
    let id = finished.job;
    match finished.done {
        Done::Abandoned => {
            let _ = shared
                .store
                .queue
                .release(&id, std::slice::from_ref(&item.lease))
                .await;
        }
        Done::Recorded(Recorded::Stored {
            completed: Some(status),
            ..
        }) => {
            announce_completion(shared, &id, &status).await;
        }
        Done::Recorded(Recorded::Stored { counters, .. }) => {
            let bytes = counters.get("bytes").copied().unwrap_or(0).max(0) as u64;
            if bytes > shared.config.max_bytes_per_job
                && let Some(context) = shared.contexts.get(&id).map(|c| c.clone())
            {
                let reason = format!(
                    "the job fetched more than its maximum of {} bytes; the rest of the site was not crawled",
                    shared.config.max_bytes_per_job
                );
                end_on_bound(shared, &context, reason).await;
            }
        }
        Done::Recorded(Recorded::Ended) => forget(shared, held, &id).await,
        Done::Recorded(Recorded::Duplicate) => {}
    }
}

/// Renews every lease held here; lost ones stop, and a job ended elsewhere stops entirely.
async fn renew_all(
    shared: &Arc<Shared>,
    held: &mut HashMap<String, HashMap<u64, Held>>,
    pause: &mut Pause,
) {
    let jobs: Vec<String> = held.keys().cloned().collect();
    for id in jobs {
        let Some(items) = held.get(&id) else { continue };
        let leases: Vec<LeaseRef> = items.values().map(|h| h.lease.clone()).collect();
        match shared
            .store
            .queue
            .renew(&id, &leases, shared.config.lease)
            .await
        {
            Err(e) => return pause.fail(shared, &e),
            Ok(renewed) => {
                for (lease, kept) in leases.iter().zip(&renewed.held) {
                    if !kept && let Some(item) = items.get(&lease.item) {
                        // Reclaimed by another consumer: its result will count, not ours.
                        item.cancel.cancel();
                    }
                }
                if !renewed.running {
                    forget(shared, held, &id).await;
                }
            }
        }
    }
}
