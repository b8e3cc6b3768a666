//! Shared small state (`StateStore`): sessions, users, keys, caches, counters and rate limits,
//! in Redis or in process.

use std::time::Duration;

use futures::future::BoxFuture;

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
