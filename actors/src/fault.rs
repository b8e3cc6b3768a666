//! Test-only faults: make a supervised actor crash on demand. Compiled only with the
//! `fault-injection` feature, which the workspace enables for its tests alone, so no release
//! binary can reach it.

use ractor::ActorRef;
use ractor::factory::FactoryMessage;

use crate::Names;
use crate::ingest::IngestJob;
use crate::pool::{JobKey, PoolJob};
use crate::rag::RagJob;
use crate::scraper::ScrapeJob;
use crate::session::SessionJob;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The router panics while handling this message.
    PanicRouter,
    /// One scraper worker panics (the factory replaces it).
    PanicScraperWorker,
    /// The whole scraper pool is killed (the root supervisor restarts it).
    KillScraperPool,
    /// One ingest worker panics.
    PanicIngestWorker,
    /// One RAG worker panics.
    PanicRagWorker,
    /// One session worker panics.
    PanicSessionWorker,
    /// The crawler actor is killed, and its consumer task with it (the root supervisor restarts
    /// it; the jobs it was working on are in the job store and are picked up again).
    KillCrawler,
    /// The browser pool is killed (the root supervisor restarts it).
    KillBrowserPool,
}

fn kill(name: &str) {
    if let Some(actor) = ractor::registry::where_is(name) {
        actor.kill();
    }
}

fn panic_worker<M: PoolJob>(pool: &str, job: M) {
    if let Some(pool) = ActorRef::<FactoryMessage<JobKey, M>>::where_is(pool) {
        let _ = pool.dispatch(JobKey::MAX, job);
    }
}

pub(crate) fn apply_in_router(names: &Names, fault: Fault) {
    match fault {
        Fault::PanicRouter => panic!("fault injection: router panics"),
        Fault::PanicScraperWorker => panic_worker(&names.scraper, ScrapeJob::Panic),
        Fault::PanicIngestWorker => panic_worker(&names.ingest, IngestJob::Panic),
        Fault::PanicRagWorker => panic_worker(&names.rag, RagJob::Panic),
        Fault::PanicSessionWorker => panic_worker(&names.session, SessionJob::Panic),
        Fault::KillScraperPool => kill(&names.scraper),
        Fault::KillCrawler => kill(&names.crawler),
        Fault::KillBrowserPool => kill(&names.browser),
    }
}
