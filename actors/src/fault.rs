//! Test-only faults: make a supervised actor crash on demand. Compiled only with the
//! `fault-injection` feature, which the workspace enables for its tests alone, so no release
//! binary can reach it.

use crate::Names;
use crate::scraper::{ScrapeJob, ScraperPool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The router panics while handling this message.
    PanicRouter,
    /// One scraper worker panics (the factory replaces it).
    PanicScraperWorker,
    /// The whole scraper pool is killed (the root supervisor restarts it).
    KillScraperPool,
}

pub(crate) fn apply_in_router(names: &Names, fault: Fault) {
    match fault {
        Fault::PanicRouter => panic!("fault injection: router panics"),
        Fault::PanicScraperWorker => {
            if let Some(pool) = ScraperPool::where_is(&names.scraper) {
                let _ = pool.dispatch(u64::MAX, ScrapeJob::Panic);
            }
        }
        Fault::KillScraperPool => {
            if let Some(pool) = ractor::registry::where_is(names.scraper.clone()) {
                pool.kill();
            }
        }
    }
}
