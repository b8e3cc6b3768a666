//! [`MemoryState`]: the in-process state store — caches with TTL and counter sets in concurrent
//! maps. Expired entries are invisible at once and swept out every few thousand writes, so a
//! cache that is only written to still stays bounded by what is live.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures::future::BoxFuture;

use crate::ports::{StateError, StateStore};

/// Writes between two sweeps of expired entries.
const SWEEP_EVERY: u64 = 4096;

#[derive(Debug, Default)]
pub struct MemoryState {
    values: DashMap<String, Entry>,
    counters: DashMap<String, HashMap<String, i64>>,
    writes: AtomicU64,
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

    fn note_write(&self, n: usize) {
        let before = self.writes.fetch_add(n as u64, Ordering::Relaxed);
        if before / SWEEP_EVERY != (before + n as u64) / SWEEP_EVERY {
            let now = Instant::now();
            self.values.retain(|_, entry| entry.live(now));
        }
    }
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
            for (key, value) in entries {
                self.values.insert(key, Entry { value, expires });
            }
            self.note_write(n);
            Ok(())
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
            let stored = match self.values.entry(key) {
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
            Ok(stored)
        })
    }

    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<u64, StateError>> {
        Box::pin(async move {
            let now = Instant::now();
            let removed = keys
                .iter()
                .filter(|key| {
                    self.values
                        .remove(key.as_str())
                        .is_some_and(|(_, entry)| entry.live(now))
                })
                .count();
            Ok(removed as u64)
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
}
