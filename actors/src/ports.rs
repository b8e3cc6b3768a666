//! The traits the actors need from the outside world, in domain types only. The composition root
//! (`aurora::startup`) plugs network-backed implementations from `aurora::adapters` in here;
//! `crate::local` holds the in-process ones.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
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

/// A backend the process depends on (Redis, ChromaDB…), probed by `/ready`.
pub trait HealthCheck: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The backend cannot be reached (Redis down); callers may degrade (skip a cache).
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    #[error("state store error: {0}")]
    Backend(String),
}

/// Shared, expiring state — caches and counters — that every replica sees alike. Keys are
/// logical (`emb:{model}:{hash}`); the backend adds its namespace prefix.
pub trait StateStore: Send + Sync + 'static {
    /// `redis` or `memory`.
    fn backend(&self) -> &'static str;

    /// Values for `keys`, in order; `None` for missing or expired keys.
    fn get_many<'a>(
        &'a self,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, StateError>>;

    /// Stores every entry, each expiring after `ttl` (never when `None`).
    fn set_many(
        &self,
        entries: Vec<(String, Vec<u8>)>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'_, Result<(), StateError>>;

    /// Stores `value` under `key` only if no live entry is there (atomically, across replicas);
    /// returns whether it was stored. Claims one-time tokens such as idempotency keys.
    fn set_if_absent(
        &self,
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'_, Result<bool, StateError>>;

    /// Removes `keys`; returns how many existed.
    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<u64, StateError>>;

    /// Adds each delta to a named counter in the counter set `key` (atomically per counter).
    fn add_counts<'a>(
        &'a self,
        key: &'a str,
        deltas: &'a [(String, i64)],
    ) -> BoxFuture<'a, Result<(), StateError>>;

    /// The counters `fields` of the set `key`, in order; 0 for absent ones.
    fn get_counts<'a>(
        &'a self,
        key: &'a str,
        fields: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<i64>, StateError>>;

    /// Replaces the value of `key` with `new` only if it holds exactly `expected` now
    /// (atomically, across replicas); returns whether it did. A missing or expired key never
    /// matches, so a record deleted meanwhile (a logout) is not brought back.
    fn replace_if(
        &self,
        key: String,
        expected: Vec<u8>,
        new: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'_, Result<bool, StateError>>;

    /// Adds `members` to the set `key` (an index: users, API keys).
    fn set_add<'a>(
        &'a self,
        key: &'a str,
        members: &'a [String],
    ) -> BoxFuture<'a, Result<(), StateError>>;

    /// Removes `members` from the set `key`.
    fn set_remove<'a>(
        &'a self,
        key: &'a str,
        members: &'a [String],
    ) -> BoxFuture<'a, Result<(), StateError>>;

    /// Every member of the set `key`, in no particular order.
    fn set_members<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<String>, StateError>>;

    /// Adds `by` to the counter `key`; a counter starts at 0 when first touched and disappears
    /// `window` later (a fixed window: failed logins). Returns the new value and the time left.
    fn increment(
        &self,
        key: String,
        by: i64,
        window: Duration,
    ) -> BoxFuture<'_, Result<(i64, Duration), StateError>>;

    /// One rate-limit decision (GCRA): may `cost` more requests under `key` pass `quota`?
    /// Refused requests use nothing up. Atomic across replicas.
    fn throttle(
        &self,
        key: String,
        quota: Quota,
        cost: u32,
    ) -> BoxFuture<'_, Result<Throttle, StateError>>;
}

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

/// At most `limit` requests per `period`, all of which may come at once (burst = limit); then
/// one more every `period / limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    pub limit: u32,
    pub period: Duration,
}

impl Quota {
    /// The time one request's share of the quota takes to come back.
    pub fn interval(&self) -> Duration {
        self.period / self.limit.max(1)
    }
}

/// A rate-limit decision, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub allowed: bool,
    pub limit: u32,
    /// Requests that could still pass right now.
    pub remaining: u32,
    /// When refused: how long until this request would pass.
    pub retry_after: Duration,
    /// How long until the whole quota is available again.
    pub reset_after: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedError {
    /// The model's files are not where the settings say; the message says how to get them.
    #[error("{0}")]
    ModelMissing(String),
    /// A remote embedding service failed (down, quota, bad key…), with its own words.
    #[error("embedding service: {0}")]
    Service(String),
    #[error("embedding failed: {0}")]
    Failed(String),
}

/// What a text is, for models that embed queries and documents differently (Gemini's task
/// types, instruction-tuned models); symmetric models ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedKind {
    Document,
    Query,
}

/// Turns texts into vectors. Every vector is L2-normalised, so cosine similarity is a dot product.
pub trait Embedder: Send + Sync + 'static {
    /// Names the model and its output, e.g. `minilm-l6-v2`; stored with each collection so
    /// vectors from different models are never mixed.
    fn id(&self) -> &str;
    fn dimension(&self) -> usize;
    /// One vector per text, in order.
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        kind: EmbedKind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;
}

/// A chunk as stored and as found: its text and the metadata every backend keeps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkRecord {
    /// Stable per (source_url, chunk_index), so re-ingesting a page overwrites its chunks.
    pub id: String,
    pub text: String,
    pub source_url: String,
    pub title: String,
    /// The heading path, e.g. `Install > From source`.
    pub heading: String,
    pub chunk_index: u32,
    /// Hash of the whole document the chunk came from (unchanged page → nothing to do).
    pub content_hash: String,
    /// Unix seconds.
    pub fetched_at: u64,
    pub crawl_id: Option<String>,
    /// Where in its source the chunk sits (pages, a slide, a time range), for citations.
    pub locator: Option<crate::model::Locator>,
    /// The file the chunk came from: an upload's name, a document URL's last segment.
    pub file_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    pub record: ChunkRecord,
    pub embedding: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub chunk: ChunkRecord,
    /// Cosine similarity (dense) or BM25 (lexical); higher is better.
    pub score: f32,
}

/// What built a collection's vectors; checked on every write and query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionSpec {
    pub embedder: String,
    pub dimension: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionInfo {
    pub name: String,
    pub spec: CollectionSpec,
    pub chunks: u64,
}

/// Metadata a filter can look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    SourceUrl,
    Title,
    Heading,
    ChunkIndex,
    ContentHash,
    FetchedAt,
    CrawlId,
}

impl Field {
    pub const ALL: [Field; 7] = [
        Field::SourceUrl,
        Field::Title,
        Field::Heading,
        Field::ChunkIndex,
        Field::ContentHash,
        Field::FetchedAt,
        Field::CrawlId,
    ];

    /// The metadata key (the same in the API, in ChromaDB and in the embedded store).
    pub fn key(self) -> &'static str {
        match self {
            Field::SourceUrl => "source_url",
            Field::Title => "title",
            Field::Heading => "heading",
            Field::ChunkIndex => "chunk_index",
            Field::ContentHash => "content_hash",
            Field::FetchedAt => "fetched_at",
            Field::CrawlId => "crawl_id",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Field::ChunkIndex | Field::FetchedAt)
    }

    pub fn from_key(key: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.key() == key)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Text(String),
    Number(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Eq(Field, FilterValue),
    Ne(Field, FilterValue),
    In(Field, Vec<FilterValue>),
    NotIn(Field, Vec<FilterValue>),
    Gt(Field, i64),
    Gte(Field, i64),
    Lt(Field, i64),
    Lte(Field, i64),
}

/// Conditions that must all hold; the empty filter matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub all: Vec<Condition>,
}

impl Filter {
    pub fn source_url(url: &str) -> Self {
        Filter {
            all: vec![Condition::Eq(
                Field::SourceUrl,
                FilterValue::Text(url.to_string()),
            )],
        }
    }

    /// Whether `chunk` satisfies every condition (the embedded store's evaluation, and the
    /// reference the ChromaDB translation is tested against).
    pub fn matches(&self, chunk: &ChunkRecord) -> bool {
        self.all.iter().all(|condition| condition.matches(chunk))
    }
}

impl Condition {
    fn matches(&self, chunk: &ChunkRecord) -> bool {
        let value = |field: Field| -> Option<FilterValue> {
            Some(match field {
                Field::SourceUrl => FilterValue::Text(chunk.source_url.clone()),
                Field::Title => FilterValue::Text(chunk.title.clone()),
                Field::Heading => FilterValue::Text(chunk.heading.clone()),
                Field::ContentHash => FilterValue::Text(chunk.content_hash.clone()),
                Field::CrawlId => FilterValue::Text(chunk.crawl_id.clone()?),
                Field::ChunkIndex => FilterValue::Number(i64::from(chunk.chunk_index)),
                Field::FetchedAt => FilterValue::Number(chunk.fetched_at as i64),
            })
        };
        let number = |field: Field| match value(field) {
            Some(FilterValue::Number(n)) => Some(n),
            _ => None,
        };
        match self {
            Condition::Eq(f, v) => value(*f).as_ref() == Some(v),
            Condition::Ne(f, v) => value(*f).as_ref() != Some(v),
            Condition::In(f, vs) => value(*f).is_some_and(|x| vs.contains(&x)),
            Condition::NotIn(f, vs) => !value(*f).is_some_and(|x| vs.contains(&x)),
            Condition::Gt(f, n) => number(*f).is_some_and(|x| x > *n),
            Condition::Gte(f, n) => number(*f).is_some_and(|x| x >= *n),
            Condition::Lt(f, n) => number(*f).is_some_and(|x| x < *n),
            Condition::Lte(f, n) => number(*f).is_some_and(|x| x <= *n),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("collection `{0}` does not exist")]
    NotFound(String),
    #[error("collection `{0}` already exists")]
    AlreadyExists(String),
    #[error(
        "collection `{collection}` was built with {built_with}; it cannot be used with {given}"
    )]
    WrongEmbedder {
        collection: String,
        built_with: String,
        given: String,
    },
    #[error(
        "invalid collection name `{0}`: use 3–63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"
    )]
    InvalidName(String),
    /// The backend cannot be reached (ChromaDB down): retry later.
    #[error("vector store unavailable: {0}")]
    Unavailable(String),
    #[error("vector store error: {0}")]
    Backend(String),
}

/// Checks a collection name against the rules every backend accepts.
pub fn validate_collection_name(name: &str) -> Result<(), StoreError> {
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !name.contains("..");
    match ok {
        true => Ok(()),
        false => Err(StoreError::InvalidName(name.to_string())),
    }
}

/// Where chunks and their vectors live, searchable by vector and by words.
pub trait VectorStore: Send + Sync + 'static {
    /// `chroma` or `embedded`.
    fn backend(&self) -> &'static str;

    fn create_collection<'a>(
        &'a self,
        name: &'a str,
        spec: &'a CollectionSpec,
    ) -> BoxFuture<'a, Result<CollectionInfo, StoreError>>;

    fn collection<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<CollectionInfo>, StoreError>>;

    fn list_collections(&self) -> BoxFuture<'_, Result<Vec<CollectionInfo>, StoreError>>;

    /// What built the collection, `None` if there is none. Unlike [`VectorStore::collection`] it
    /// may answer from a cache (no chunk count): it is asked on every search. A collection
    /// deleted elsewhere shows up as missing at its next record operation.
    fn spec<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<CollectionSpec>, StoreError>>;

    /// Deletes the collection and everything in it; `false` if there was none.
    fn delete_collection<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Inserts or replaces chunks by id. Vectors must have the collection's dimension.
    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        chunks: Vec<NewChunk>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Deletes the chunks matching `filter`; returns how many.
    fn delete<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Chunks matching `filter`, in no particular order, at most `limit`.
    fn find<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ChunkRecord>, StoreError>>;

    /// The chunks with these ids, in no particular order (unknown ids are left out).
    fn get<'a>(
        &'a self,
        collection: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<ChunkRecord>, StoreError>>;

    /// The ids of the `k` chunks most similar to `vector`, with their cosine similarity, best
    /// first. Ids only: a search fuses rankings first and fetches just the chunks it returns.
    fn dense_rank<'a>(
        &'a self,
        collection: &'a str,
        vector: &'a [f32],
        k: usize,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StoreError>>;

    /// The ids of the `k` chunks that best match the words of `query` by BM25 (`crate::lexical`),
    /// with their scores, best first. Chunks sharing no term with the query are not returned.
    fn lexical_rank<'a>(
        &'a self,
        collection: &'a str,
        query: &'a str,
        k: usize,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StoreError>>;

    /// [`VectorStore::dense_rank`] with the chunks.
    fn dense_search<'a>(
        &'a self,
        collection: &'a str,
        vector: &'a [f32],
        k: usize,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Hit>, StoreError>> {
        Box::pin(async move {
            let ranked = self.dense_rank(collection, vector, k, filter).await?;
            with_chunks(self, collection, ranked).await
        })
    }

    /// [`VectorStore::lexical_rank`] with the chunks.
    fn lexical_search<'a>(
        &'a self,
        collection: &'a str,
        query: &'a str,
        k: usize,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Hit>, StoreError>> {
        Box::pin(async move {
            let ranked = self.lexical_rank(collection, query, k, filter).await?;
            with_chunks(self, collection, ranked).await
        })
    }
}

/// The chunks of `ranked`, in its order, each with its score; ids the store does not hold (a
/// write still on its way) are left out.
pub async fn with_chunks<S: VectorStore + ?Sized>(
    store: &S,
    collection: &str,
    ranked: Vec<Ranked>,
) -> Result<Vec<Hit>, StoreError> {
    if ranked.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = ranked.iter().map(|r| r.id.clone()).collect();
    let mut chunks: std::collections::HashMap<String, ChunkRecord> = store
        .get(collection, &ids)
        .await?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    Ok(ranked
        .into_iter()
        .filter_map(|r| {
            Some(Hit {
                chunk: chunks.remove(&r.id)?,
                score: r.score,
            })
        })
        .collect())
}

/// One chunk's terms, as the lexical index takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexicalDoc {
    pub id: String,
    pub terms: crate::lexical::TermCounts,
}

impl LexicalDoc {
    /// The terms of a chunk's text.
    pub fn new(id: &str, text: &str) -> Self {
        Self {
            id: id.to_string(),
            terms: crate::lexical::count_terms(text),
        }
    }
}

/// A chunk ranked by BM25.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub id: String,
    pub score: f32,
}

/// BM25's inverted index, kept in the state store (Redis in production) so lexical search never
/// scans the vector store and every replica ranks alike. One index per collection, named by the
/// caller (qualified by whatever namespaces the collection).
///
/// Scoring is the same in every backend, to the bit: a chunk's weight for a term is
/// `lexical::doc_weight` with the index's average chunk length after the write that stored it
/// (fixed then, so a query is a sparse dot product); a query term weighs `lexical::idf` of the
/// live chunk count and its document frequency; a chunk's score is the sum over the query's
/// distinct terms in ascending term id order. Ties rank the smaller chunk id first.
pub trait LexicalIndex: Send + Sync + 'static {
    /// `redis` or `memory`.
    fn backend(&self) -> &'static str;

    /// Stores `docs`, replacing whatever earlier versions of the same ids put there. Within one
    /// call the last version of an id wins, and every doc is weighed with one average: the
    /// index's after the whole call.
    fn index<'a>(
        &'a self,
        index: &'a str,
        docs: &'a [LexicalDoc],
    ) -> BoxFuture<'a, Result<(), StateError>>;

    /// Takes the chunks out (unknown ids are ignored).
    fn remove<'a>(
        &'a self,
        index: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<(), StateError>>;

    /// The `limit` best chunks for `query`'s terms, best first; chunks sharing no term with it
    /// are not returned.
    fn search<'a>(
        &'a self,
        index: &'a str,
        query: &'a crate::lexical::TermCounts,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StateError>>;

    /// The scores of `ids` for `query`, in no particular order; ids sharing no term with it (or
    /// unknown) are left out. How a filtered search ranks the few chunks a filter admits.
    fn score<'a>(
        &'a self,
        index: &'a str,
        query: &'a crate::lexical::TermCounts,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StateError>>;

    /// How many chunks the index holds.
    fn len<'a>(&'a self, index: &'a str) -> BoxFuture<'a, Result<u64, StateError>>;

    /// Drops the whole index.
    fn clear<'a>(&'a self, index: &'a str) -> BoxFuture<'a, Result<(), StateError>>;
}

/// Everything the tree needs from outside, chosen by the composition root.
#[derive(Clone)]
pub struct Ports {
    pub fetcher: Arc<dyn Fetcher>,
    /// Headless browser sessions; `crate::local::NoBrowser` when none is installed or enabled.
    pub browser: Arc<dyn Browser>,
    pub state: Arc<dyn StateStore>,
    /// Crawl and batch jobs as durable work (Redis when configured, else in process).
    pub jobs: Arc<dyn JobQueue>,
    pub vectors: Arc<dyn VectorStore>,
    pub embedder: Arc<dyn Embedder>,
    /// Writes answers; `crate::rag::extractive::Extractive` when no model is configured.
    pub generator: Arc<dyn Generator>,
    /// Speech to text; `crate::local::NoTranscriber` when none is configured.
    pub transcriber: Arc<dyn Transcriber>,
    pub health_checks: Vec<Arc<dyn HealthCheck>>,
}

/// Speech to text: an OpenAI-compatible `/v1/audio/transcriptions` server (OpenAI, Groq,
/// faster-whisper-server, whisper.cpp's server, LocalAI, or Aurora's own local engine), or none.
pub trait Transcriber: Send + Sync + 'static {
    /// Whether transcription can work at all (false for the embedded default).
    fn available(&self) -> bool;
    /// Bounded label for metrics and the transcript's provenance: `openai`, `local`, `none`.
    fn id(&self) -> &'static str;
    fn transcribe(&self, audio: Audio) -> BoxFuture<'_, Result<Transcript, TranscribeError>>;
    /// How long recordings are cut up before they reach [`Transcriber::transcribe`].
    fn pieces(&self) -> Pieces {
        Pieces::default()
    }
}

/// Long recordings go to the engine in pieces (a server's upload cap, its timeouts, progress
/// a user can watch); `crate::ingest::media` does the cutting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pieces {
    /// Longest piece, in seconds; a recording up to this long goes whole, as it came.
    pub seconds: u32,
    /// Longest recording accepted at all, in seconds.
    pub max_recording_secs: u32,
    /// One recording's transcription, all its pieces, gives up after this long.
    pub recording_timeout: Duration,
}

impl Default for Pieces {
    fn default() -> Self {
        // Ten minutes of 16 kHz 16-bit audio are 19.2 MB: under OpenAI's 25 MB cap.
        Self {
            seconds: 600,
            max_recording_secs: 4 * 3600,
            recording_timeout: Duration::from_secs(900),
        }
    }
}

/// A recording to transcribe.
#[derive(Debug, Clone)]
pub struct Audio {
    pub bytes: Vec<u8>,
    /// A name with the right extension: servers pick their decoder by it.
    pub file_name: String,
    pub mime: String,
    /// ISO 639-1, when known; otherwise the engine detects it.
    pub language: Option<String>,
}

/// What was said, in timed segments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    pub language: Option<String>,
    /// Seconds of audio, when the engine says.
    pub duration: Option<f64>,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscribeError {
    /// No transcriber is configured, or it cannot run here.
    #[error("{0}")]
    Unavailable(String),
    /// The engine refused this recording (format, size, content).
    #[error("the transcriber refused the recording: {0}")]
    Rejected(String),
    #[error("transcription failed: {0}")]
    Failed(String),
    #[error("transcription did not finish within {} s", .0.as_secs())]
    Timeout(Duration),
}

/// A numbered source given to a generator; citations `[n]` refer to `n`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Source {
    pub n: usize,
    pub url: String,
    pub title: String,
    pub heading: String,
    pub text: String,
    /// Where in a document the passage sits (`page 12`, `t=01:23–01:41`).
    pub locator: Option<crate::model::Locator>,
    pub file_name: Option<String>,
}

/// A question to answer from numbered sources. Each backend builds its own prompt (an LLM gets
/// the sources and an instruction to cite them; the extractive answerer reads them directly).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    pub question: String,
    pub sources: Vec<Source>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The answer, citing sources as `[n]`.
    pub text: String,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// The model refused (safety block, content filter), in its own words.
    #[error("the model declined to answer: {0}")]
    Refused(String),
    /// Quota or rate limit; retry after the given time if known.
    #[error("the model's service is rate limited")]
    RateLimited(Option<Duration>),
    #[error("generation service: {0}")]
    Service(String),
}

/// Part of an answer being written: text as it comes, then (if the backend counts) the usage.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Usage(Usage),
}

/// Writes an answer from numbered sources.
pub trait Generator: Send + Sync + 'static {
    /// Names the backend and model, e.g. `extractive` or `gemini:gemini-2.0-flash`.
    fn id(&self) -> &str;

    /// The whole answer at once.
    fn generate(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<Generation, GenerateError>>;

    /// The answer as it is written (an LLM's tokens as they arrive). Dropping the stream stops
    /// the generation. The default writes it whole, then streams it in one piece.
    fn stream(&self, request: GenerateRequest) -> BoxStream<'_, Result<Piece, GenerateError>> {
        Box::pin(
            futures::stream::once(self.generate(request)).flat_map(|generated| {
                let pieces = match generated {
                    Ok(g) => vec![Ok(Piece::Text(g.text)), Ok(Piece::Usage(g.usage))],
                    Err(e) => vec![Err(e)],
                };
                futures::stream::iter(pieces)
            }),
        )
    }
}
