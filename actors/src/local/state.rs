//! [`MemoryState`]: the in-process state store — caches with TTL, counter sets, sets and rate
//! limits in concurrent maps. Expired entries are invisible at once and swept out every few
//! thousand writes, so a cache that is only written to still stays bounded by what is live.
//!
//! Opened with [`MemoryState::durable`], the keys under the given prefixes (users, API keys,
//! sessions) are also written to a file under the data directory after every change, so an
//! embedded Aurora keeps its accounts across restarts. Caches and counters stay in memory.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use futures::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota as GovernorQuota, RateLimiter};

use crate::ports::{Quota, StateError, StateStore, Throttle};

/// Writes between two sweeps of expired entries.
const SWEEP_EVERY: u64 = 4096;

type KeyedLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

#[derive(Debug, Default)]
pub struct MemoryState {
    values: DashMap<String, Entry>,
    counters: DashMap<String, HashMap<String, i64>>,
    sets: DashMap<String, HashSet<String>>,
    /// One governor keyed limiter per quota: governor fixes the quota per limiter.
    limiters: DashMap<Quota, Arc<KeyedLimiter>>,
    writes: AtomicU64,
    durable: Option<Durable>,
}

/// Where durable keys are persisted, and which keys are.
#[derive(Debug)]
struct Durable {
    path: PathBuf,
    prefixes: Vec<String>,
    /// Serialises snapshots: two writers must not interleave their temp files.
    writing: Mutex<()>,
}

/// The file's content: durable values (with absolute expiry, Unix milliseconds) and sets.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Snapshot {
    values: Vec<(String, Vec<u8>, Option<u64>)>,
    sets: Vec<(String, Vec<String>)>,
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

impl MemoryState {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose keys under `prefixes` live in `path` too: loaded now, rewritten (atomically,
    /// owner-only permissions) after every change to one of them.
    pub fn durable(path: &Path, prefixes: &[&str]) -> Result<Self, StateError> {
        let state = MemoryState {
            durable: Some(Durable {
                path: path.to_path_buf(),
                prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
                writing: Mutex::new(()),
            }),
            ..Self::default()
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(state),
            Err(e) => {
                return Err(StateError::Backend(format!(
                    "reading {}: {e}",
                    path.display()
                )));
            }
        };
        let snapshot: Snapshot = serde_json::from_slice(&bytes)
            .map_err(|e| StateError::Backend(format!("{} is damaged: {e}", path.display())))?;
        let (now, wall) = (Instant::now(), unix_millis());
        for (key, value, expires_at) in snapshot.values {
            let expires = match expires_at {
                Some(at) if at <= wall => continue,
                Some(at) => Some(now + Duration::from_millis(at - wall)),
                None => None,
            };
            state.values.insert(key, Entry { value, expires });
        }
        for (key, members) in snapshot.sets {
            state.sets.insert(key, members.into_iter().collect());
        }
        Ok(state)
    }

    fn note_write(&self, n: usize) {
        let before = self.writes.fetch_add(n as u64, Ordering::Relaxed);
        if before / SWEEP_EVERY != (before + n as u64) / SWEEP_EVERY {
            let now = Instant::now();
            self.values.retain(|_, entry| entry.live(now));
            for limiter in self.limiters.iter() {
                limiter.retain_recent();
            }
        }
    }

    /// Persists the durable keys if `key` is one of them.
    fn persist_if_durable(&self, key: &str) -> Result<(), StateError> {
        match &self.durable {
            Some(durable) if durable.prefixes.iter().any(|p| key.starts_with(p)) => {
                self.persist(durable)
            }
            _ => Ok(()),
        }
    }

    fn persist(&self, durable: &Durable) -> Result<(), StateError> {
        let _one_writer = durable
            .writing
            .lock()
            .map_err(|_| StateError::Backend("a snapshot writer panicked".into()))?;
        let is_durable = |key: &str| durable.prefixes.iter().any(|p| key.starts_with(p));
        let (now, wall) = (Instant::now(), unix_millis());
        let mut snapshot = Snapshot::default();
        for entry in self.values.iter() {
            if is_durable(entry.key()) && entry.live(now) {
                let expires_at = entry
                    .expires
                    .map(|at| wall + at.saturating_duration_since(now).as_millis() as u64);
                snapshot
                    .values
                    .push((entry.key().clone(), entry.value.clone(), expires_at));
            }
        }
        for set in self.sets.iter() {
            if is_durable(set.key()) {
                snapshot
                    .sets
                    .push((set.key().clone(), set.value().iter().cloned().collect()));
            }
        }
        let bytes = serde_json::to_vec(&snapshot)
            .map_err(|e| StateError::Backend(format!("encoding the snapshot: {e}")))?;
        write_private(&durable.path, &bytes)
            .map_err(|e| StateError::Backend(format!("writing {}: {e}", durable.path.display())))
    }

    fn limiter(&self, quota: Quota) -> Arc<KeyedLimiter> {
        self.limiters
            .entry(quota)
            .or_insert_with(|| {
                let limit = NonZeroU32::new(quota.limit.max(1)).unwrap_or(NonZeroU32::MIN);
                let interval = quota.interval().max(Duration::from_nanos(1));
                let governor = GovernorQuota::with_period(interval)
                    .unwrap_or_else(|| GovernorQuota::per_second(limit))
                    .allow_burst(limit);
                Arc::new(RateLimiter::keyed(governor).with_middleware())
            })
            .clone()
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash leaves the old
/// file or the new one, never half of one; readable by the owner only (password hashes, secrets).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)
}

impl StateStore for MemoryState {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn get_many<'a>(
        &'a self,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, StateError>> {
        Box::pin(async move {
            let now = Instant::now();
            Ok(keys
                .iter()
                .map(|key| {
                    self.values
                        .get(key)
                        .filter(|entry| entry.live(now))
                        .map(|entry| entry.value.clone())
                })
                .collect())
        })
    }

    fn set_many(
        &self,
        entries: Vec<(String, Vec<u8>)>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'_, Result<(), StateError>> {
        Box::pin(async move {
            let expires = ttl.map(|ttl| Instant::now() + ttl);
            let n = entries.len();
            let durable = self.durable.as_ref().and_then(|durable| {
                entries
                    .iter()
                    .find(|(key, _)| durable.prefixes.iter().any(|p| key.starts_with(p)))
                    .map(|(key, _)| key.clone())
            });
            for (key, value) in entries {
                self.values.insert(key, Entry { value, expires });
            }
            self.note_write(n);
            match durable {
                Some(key) => self.persist_if_durable(&key),
                None => Ok(()),
            }
        })
    }

    fn set_if_absent(
        &self,
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'_, Result<bool, StateError>> {
        Box::pin(async move {
            let now = Instant::now();
            let entry = Entry {
                value,
                expires: ttl.map(|ttl| now + ttl),
            };
            // The map's entry lock makes check-and-set one step.
            let stored = match self.values.entry(key.clone()) {
                dashmap::Entry::Occupied(mut live) if !live.get().live(now) => {
                    live.insert(entry);
                    true
                }
                dashmap::Entry::Occupied(_) => false,
                dashmap::Entry::Vacant(slot) => {
                    slot.insert(entry);
                    true
                }
            };
            self.note_write(1);
            if stored {
                self.persist_if_durable(&key)?;
            }
            Ok(stored)
        })
    }

    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<u64, StateError>> {
        Box::pin(async move {
            let now = Instant::now();
            let removed: Vec<&String> = keys
                .iter()
                .filter(|key| {
                    self.values
                        .remove(key.as_str())
                        .is_some_and(|(_, entry)| entry.live(now))
                })
                .collect();
            for key in &removed {
                self.persist_if_durable(key)?;
            }
            Ok(removed.len() as u64)
        })
    }

    fn add_counts<'a>(
        &'a self,
        key: &'a str,
        deltas: &'a [(String, i64)],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            let mut set = self.counters.entry(key.to_string()).or_default();
            for (field, delta) in deltas {
                *set.entry(field.clone()).or_insert(0) += delta;
            }
            Ok(())
        })
    }

    fn get_counts<'a>(
        &'a self,
        key: &'a str,
        fields: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<i64>, StateError>> {
        Box::pin(async move {
            let set = self.counters.get(key);
            Ok(fields
                .iter()
                .map(|f| set.as_ref().and_then(|s| s.get(f).copied()).unwrap_or(0))
                .collect())
        })
    }

    fn replace_if(
        &self,
        key: String,
        expected: Vec<u8>,
        new: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'_, Result<bool, StateError>> {
        Box::pin(async move {
            let now = Instant::now();
            let replaced = match self.values.get_mut(&key) {
                Some(mut entry) if entry.live(now) && entry.value == expected => {
                    *entry = Entry {
                        value: new,
                        expires: ttl.map(|ttl| now + ttl),
                    };
                    true
                }
                _ => false,
            };
            if replaced {
                self.note_write(1);
                self.persist_if_durable(&key)?;
            }
            Ok(replaced)
        })
    }

    fn set_add<'a>(
        &'a self,
        key: &'a str,
        members: &'a [String],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            self.sets
                .entry(key.to_string())
                .or_default()
                .extend(members.iter().cloned());
            self.persist_if_durable(key)
        })
    }

    fn set_remove<'a>(
        &'a self,
        key: &'a str,
        members: &'a [String],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            if let Some(mut set) = self.sets.get_mut(key) {
                for member in members {
                    set.remove(member);
                }
            }
            self.sets.remove_if(key, |_, set| set.is_empty());
            self.persist_if_durable(key)
        })
    }

    fn set_members<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<String>, StateError>> {
        Box::pin(async move {
            Ok(self
                .sets
                .get(key)
                .map(|set| set.iter().cloned().collect())
                .unwrap_or_default())
        })
    }

    fn increment(
        &self,
        key: String,
        by: i64,
        window: Duration,
    ) -> BoxFuture<'_, Result<(i64, Duration), StateError>> {
        Box::pin(async move {
            let now = Instant::now();
            let mut entry = self.values.entry(key).or_insert_with(|| Entry {
                value: b"0".to_vec(),
                expires: Some(now + window),
            });
            if !entry.live(now) {
                *entry = Entry {
                    value: b"0".to_vec(),
                    expires: Some(now + window),
                };
            }
            let current: i64 = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StateError::Backend("the value is not a counter".into()))?;
            let value = current + by;
            entry.value = value.to_string().into_bytes();
            let left = entry
                .expires
                .map_or(window, |at| at.saturating_duration_since(now));
            drop(entry);
            self.note_write(1);
            Ok((value, left))
        })
    }

    fn throttle(
        &self,
        key: String,
        quota: Quota,
        cost: u32,
    ) -> BoxFuture<'_, Result<Throttle, StateError>> {
        Box::pin(async move {
            let limiter = self.limiter(quota);
            let interval = quota.interval();
            let n = NonZeroU32::new(cost.max(1)).unwrap_or(NonZeroU32::MIN);
            let refused = |retry_after: Duration| Throttle {
                allowed: false,
                limit: quota.limit,
                remaining: 0,
                retry_after,
                reset_after: retry_after + interval * quota.limit.saturating_sub(n.get()),
            };
            let decision = match limiter.check_key_n(&key, n) {
                Ok(Ok(snapshot)) => {
                    let remaining = snapshot.remaining_burst_capacity();
                    Throttle {
                        allowed: true,
                        limit: quota.limit,
                        remaining,
                        retry_after: Duration::ZERO,
                        reset_after: interval * quota.limit.saturating_sub(remaining),
                    }
                }
                Ok(Err(not_until)) => refused(not_until.wait_time_from(limiter.clock().now())),
                // More than the whole quota at once can never pass.
                Err(_) => refused(quota.period),
            };
            self.note_write(1);
            Ok(decision)
        })
    }
}
