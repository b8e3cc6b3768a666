//! Aurora: crawl the web, turn pages into searchable knowledge, answer questions with citations.
//!
//! This package is the composition root over the engine crate `aurora_actors`:
//! - [`settings`]: typed, layered configuration;
//! - [`telemetry`]: logs and the Prometheus recorder (and the metric naming convention);
//! - [`adapters`]: network-backed implementations of the engine's ports (HTTP fetching, Redis,
//!   ChromaDB) and the SSRF guard;
//! - [`http`]: the two warp listeners, :8080 core (API and the web interface) and :8001 crawler
//!   (Firecrawl-compatible);
//! - [`startup`]: builds all of it and runs it with an ordered shutdown;
//! - [`cli`]: `aurora serve`, `scrape`, `crawl`, `ask` and `model distill`.

pub mod adapters;
pub mod cli;
pub mod http;
pub mod settings;
pub mod startup;
pub mod telemetry;
