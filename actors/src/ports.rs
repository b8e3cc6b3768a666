//! The traits the actors need from the outside world, in domain types only. The composition root
//! (`aurora::startup`) plugs network-backed implementations from `aurora::adapters` in here;
//! `crate::local` holds the in-process ones.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
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

/// Turns texts into vectors. Every vector is L2-normalised, so cosine similarity is a dot product.
pub trait Embedder: Send + Sync + 'static {
    /// Names the model and its output, e.g. `minilm-l6-v2`; stored with each collection so
    /// vectors from different models are never mixed.
    fn id(&self) -> &str;
    fn dimension(&self) -> usize;
    /// One vector per text, in order.
    fn embed<'a>(&'a self, texts: &'a [String])
    -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;
}

/// Everything the tree needs from outside, chosen by the composition root.
#[derive(Clone)]
pub struct Ports {
    pub fetcher: Arc<dyn Fetcher>,
    pub state: Arc<dyn StateStore>,
    pub health_checks: Vec<Arc<dyn HealthCheck>>,
}
