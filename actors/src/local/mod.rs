//! In-process implementations of the ports: the embedded defaults (what runs with no Redis or
//! ChromaDB configured) and the backends actor tests run on. Each behaves like its production
//! counterpart: the conformance suites in the root package's `tests/` run against both.
//! `StaticSite` and `HashingEmbedder` exist only for tests (the `test-support` feature).

mod browser;
#[cfg(any(test, feature = "test-support"))]
mod embedder;
#[cfg(any(test, feature = "test-support"))]
mod fetcher;
mod jobs;
mod lexical;
mod state;
mod transcriber;
mod vectors;

pub use browser::NoBrowser;
#[cfg(any(test, feature = "test-support"))]
pub use embedder::HashingEmbedder;
#[cfg(any(test, feature = "test-support"))]
pub use fetcher::StaticSite;
pub use jobs::MemoryJobs;
pub use lexical::MemoryLexical;
pub use state::{MemoryState, write_private};
pub use transcriber::NoTranscriber;
pub use vectors::EmbeddedStore;
