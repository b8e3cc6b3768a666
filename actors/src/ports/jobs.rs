//! Durable crawl and batch work (`JobQueue`): jobs, their frontier and leased work items.

use std::time::Duration;

use futures::future::BoxFuture;

use super::StateError;

/// Durable crawl work shared by every replica: jobs, their frontier (queued items and the seen
/// set) and per-URL work items leased to consumers. Delivery is at least once: a leased item
/// whose consumer stops renewing is reclaimed after its lease and handed out again; recording a
/// result is idempotent (the first result recorded for an item wins, and a page is stored once
/// per result key), so a redelivered item never duplicates anything. A job completes, atomically
/// with the result that empties it, when no item is queued (or the limit is reached) and none is
/// leased. Payloads are opaque here: the crawler owns their encoding.
pub trait JobQueue: Send + Sync + 'static {
    /// `redis` or `memory`.
    fn backend(&self) -> &'static str;

    /// Stores a new job with its first items and lists it as active.
    fn create(&self, job: NewJob) -> BoxFuture<'_, Result<(), StateError>>;

    /// Ids of the jobs that may have work (a finished one stays until someone `retire`s it).
    fn active(&self) -> BoxFuture<'_, Result<Vec<String>, StateError>>;

    /// Takes the job off the active list (it has ended or expired).
    fn retire<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<(), StateError>>;

    /// Reclaims the job's expired leases, then leases up to `max` queued items to `consumer`
    /// for `lease`. Completes the job when nothing is left to do.
    fn lease<'a>(
        &'a self,
        job: &'a str,
        consumer: &'a str,
        max: usize,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Leased, StateError>>;

    /// Extends the leases still held; which ones are, in order, and whether the job still runs.
    fn renew<'a>(
        &'a self,
        job: &'a str,
        items: &'a [LeaseRef],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Renewed, StateError>>;

    /// Records an item's result and acknowledges it (see the trait's doc for idempotence).
    fn record<'a>(
        &'a self,
        job: &'a str,
        item: LeaseRef,
        outcome: Outcome,
    ) -> BoxFuture<'a, Result<Recorded, StateError>>;

    /// Gives leased items back untouched (a consumer that stops): queued again at the front.
    fn release<'a>(
        &'a self,
        job: &'a str,
        items: &'a [LeaseRef],
    ) -> BoxFuture<'a, Result<(), StateError>>;

    /// Ends a running job with `status` (cancelled, a bound reached, failed) and `reason`, and
    /// stores `error` (an entry saying why) with it; false if it had already ended. Items still
    /// leased are dropped by their consumers at their next renewal.
    fn finish<'a>(
        &'a self,
        job: &'a str,
        status: &'a str,
        reason: &'a str,
        error: Option<String>,
    ) -> BoxFuture<'a, Result<bool, StateError>>;

    /// The job's description, status and counters; `None` when unknown or expired.
    fn snapshot<'a>(
        &'a self,
        job: &'a str,
    ) -> BoxFuture<'a, Result<Option<JobSnapshot>, StateError>>;

    /// Stored documents `from..to`, in order (missing ones skipped).
    fn documents<'a>(
        &'a self,
        job: &'a str,
        from: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<Vec<Vec<u8>>, StateError>>;

    /// Stored errors `from..to`, in order.
    fn errors<'a>(
        &'a self,
        job: &'a str,
        from: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<Vec<String>, StateError>>;
}

/// The status of a job that is still running; anything else is an end.
pub const JOB_RUNNING: &str = "scraping";

/// A job to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub id: String,
    /// What the job is (its spec and record fields), opaque to the queue.
    pub meta: String,
    /// Items leased at most over the job's life, less those given back or `unstart`ed.
    pub limit: u64,
    /// Unix milliseconds; every key of the job expires then.
    pub expires_at: u64,
    pub items: Vec<NewItem>,
}

/// A candidate for the frontier: queued only if its key was never seen in this job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub key: String,
    pub payload: String,
    /// Counted in the job's `admitted` counter (a page, not bookkeeping work).
    pub counted: bool,
}

/// Names one lease of one item; a lease taken over by another consumer has another token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseRef {
    pub item: u64,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedItem {
    pub lease: LeaseRef,
    pub payload: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leased {
    /// Items now held (possibly none: everything is queued beyond the limit or leased).
    Items {
        items: Vec<LeasedItem>,
        /// Expired leases put back in the queue by this call.
        reclaimed: u64,
    },
    /// The job had already ended (or is unknown): stop working on it.
    Ended,
    /// This call found nothing left and completed the job: the caller announces the end.
    Completed { status: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewed {
    pub held: Vec<bool>,
    pub running: bool,
}

/// What became of an item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// The page's identity (its final URL): a document is stored once per key.
    pub result_key: Option<String>,
    pub document: Option<Vec<u8>>,
    /// Added to the job's counters.
    pub counts: Vec<(String, i64)>,
    /// Error entries (JSON); one with a `once` key is stored only the first time that key comes.
    pub errors: Vec<NewError>,
    /// Entries beyond this many are not stored.
    pub max_errors: u64,
    pub new_items: Vec<NewItem>,
    /// The item did no work that counts against the limit (robots refused it, bookkeeping).
    pub unstart: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewError {
    pub once: Option<String>,
    pub entry: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Stored; `document` is the stored document's index (none if not stored, e.g. a
    /// redirect onto a page already stored). `completed` when this result finished the job.
    Stored {
        document: Option<u64>,
        counters: std::collections::BTreeMap<String, i64>,
        completed: Option<String>,
    },
    /// Another delivery of the item was recorded first: nothing changed.
    Duplicate,
    /// The job has ended: nothing recorded.
    Ended,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobSnapshot {
    pub meta: String,
    pub status: String,
    pub reason: Option<String>,
    /// Unix milliseconds of the last change.
    pub updated_at: u64,
    pub counters: std::collections::BTreeMap<String, i64>,
    pub queued: u64,
    pub leased: u64,
}
