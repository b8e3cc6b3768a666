//! Politeness: how fast Aurora may hit one host. Two layers:
//! - a GCRA limit per host (`crawler.per_host_rps`) kept in the state store, so every crawl of
//!   every replica sharing it counts against one budget: N replicas together never exceed it;
//! - per crawl and host, a minimum interval from robots.txt's `Crawl-delay` or the request's
//!   `delay`, pushed further out when the host answers 429/503 with `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::ports::{Quota, StateStore};

/// The per-host limits every replica shares.
pub struct HostLimits {
    state: Arc<dyn StateStore>,
    /// One request per `1 / per_host_rps`, no burst; `None` = unlimited.
    quota: Option<Quota>,
}

impl HostLimits {
    /// `per_host_rps` 0 (or less) means no per-host limit.
    pub fn new(state: Arc<dyn StateStore>, per_host_rps: f64) -> Self {
        let quota = (per_host_rps > 0.0).then(|| Quota {
            // Burst 1: requests are spaced by the period, so no window ever exceeds the rate.
            limit: 1,
            period: Duration::from_secs_f64(1.0 / per_host_rps),
        });
        Self { state, quota }
    }

    /// Waits until `host` may be sent another request.
    pub async fn until_ready(&self, host: &str) {
        let Some(quota) = self.quota else { return };
        let key = format!("crawl-host:{host}");
        loop {
            match self.state.throttle(key.clone(), quota, 1).await {
                Ok(decision) if decision.allowed => return,
                Ok(decision) => {
                    tokio::time::sleep(decision.retry_after.max(Duration::from_millis(1))).await;
                }
                Err(error) => {
                    // No shared budget to ask: keep this replica to the rate on its own.
                    tracing::debug!(%error, host, "per-host limit unavailable; spacing locally");
                    tokio::time::sleep(quota.interval()).await;
                    return;
                }
            }
        }
    }
}

/// One crawl's schedule per host: the earliest time its next request may start.
#[derive(Default)]
pub struct HostClock {
    /// Locked only to read and bump a slot, never across an await.
    next: Mutex<HashMap<String, (Instant, Duration)>>,
}

impl HostClock {
    /// Sets the minimum spacing of requests to `host` (first caller wins; later ones agree).
    pub fn set_interval(&self, host: &str, interval: Duration) {
        if let Ok(mut next) = self.next.lock() {
            next.entry(host.to_string())
                .or_insert((Instant::now(), interval))
                .1 = interval;
        }
    }

    /// Reserves the next slot for `host` and waits for it.
    pub async fn wait_turn(&self, host: &str) {
        let at = {
            let Ok(mut next) = self.next.lock() else {
                return;
            };
            let now = Instant::now();
            let slot = next
                .entry(host.to_string())
                .or_insert((now, Duration::ZERO));
            let at = slot.0.max(now);
            slot.0 = at + slot.1;
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// The host asked us to wait (`Retry-After`, or backoff after 429/503).
    pub fn back_off(&self, host: &str, wait: Duration) {
        if let Ok(mut next) = self.next.lock() {
            let until = Instant::now() + wait;
            let slot = next
                .entry(host.to_string())
                .or_insert((until, Duration::ZERO));
            slot.0 = slot.0.max(until);
        }
    }
}

/// Exponential backoff with full jitter: a random wait in `[base·2ⁿ/2, base·2ⁿ]`, capped.
pub fn backoff(base: Duration, attempt: u32, cap: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let ceiling = base.saturating_mul(1 << attempt.min(16)).min(cap);
    // std's per-instance random keys are randomness enough for jitter.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = 0.5 + (random % 1000) as f64 / 2000.0;
    ceiling.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn crawl_delay_spaces_requests_and_retry_after_pushes_them_out() {
        let clock = HostClock::default();
        clock.set_interval("h", Duration::from_secs(2));
        let start = Instant::now();
        clock.wait_turn("h").await;
        clock.wait_turn("h").await;
        clock.wait_turn("h").await;
        assert_eq!(start.elapsed(), Duration::from_secs(4));
        clock.wait_turn("other").await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(4),
            "hosts are independent"
        );
        clock.back_off("h", Duration::from_secs(30));
        clock.wait_turn("h").await;
        assert_eq!(start.elapsed(), Duration::from_secs(34));
    }

    #[test]
    fn backoff_grows_with_jitter_under_a_cap() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(5);
        for attempt in 0..10 {
            let wait = backoff(base, attempt, cap);
            let ceiling = (base * 2u32.pow(attempt)).min(cap);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{attempt}: {wait:?}"
            );
        }
    }
}
