//! Conformance suites: every port's backends — the production one against the real service that
//! `scripts/test` starts, and the in-process embedded default — must pass the same tests, so the
//! embedded default behaves like production.

// The suites are plain async fns run by generated #[test] wrappers: test code throughout.
#![allow(clippy::unwrap_used)]

/// Runs one check against both backends of a port whose module defines `redis()` and
/// `memory()` (the vector suite has its own: its backends need a ChromaDB per test).
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn redis() {
                super::$name(super::redis()).await;
            }
            #[tokio::test]
            async fn memory() {
                super::$name(super::memory()).await;
            }
        }
    };
}

mod jobs;
mod lexical;
mod state;
mod vectors;

/// A service URL that `scripts/test` exports.
pub fn service_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with scripts/test, which starts Redis and ChromaDB")
    })
}

/// A namespace no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
