//! Aurora's engine: the supervision tree of actors and the domain logic they run. No network
//! client crate lives here; the outside world comes in through [`ports`].
//!
//! ```text
//! aurora root (supervisor::Supervisor: one-for-one, backoff, intensity → escalation)
//! ├── session   ractor Factory of SessionWorker × auth.workers: logins (argon2), refresh,
//! │             logout, users, API keys; the per-request token check runs in the caller
//! ├── browser   ractor Factory of BrowserWorker × browser.pool_size: one headless browser
//! │             session each (launched on first use, recycled after N pages or any failure)
//! ├── scraper   ractor Factory of ScraperWorker × scraper_workers: fetch (HTTP, or the browser
//! │             when the page needs it) → decode → extract
//! ├── ingest    ractor Factory of IngestWorker × ingest_workers: clean → filter → chunk → embed → upsert
//! ├── rag       ractor Factory of RagWorker × rag_workers: hybrid search (dense + BM25, RRF)
//! ├── router    RouterActor: admission control (503 when full), routes jobs to the pools
//! └── crawler   CrawlerPool: crawl/batch jobs as durable work in the JobQueue port; its consumer
//!               leases items of every job (frontier, robots, politeness) over the scraper
//!               pool, streaming pages to ingest
//! ```
//!
//! Actors are registered under names unique to each tree ([`Names`]) so that several trees can
//! live in one process (tests) and callers always reach the current incarnation of an actor:
//! handles look actors up by name on every call and never keep an `ActorRef`.

pub mod admission;
pub mod browser;
pub mod crawler_pool;
pub mod ingest;
pub mod knowledge;
pub mod lexical;
pub mod local;
pub mod metrics;
pub mod model;
pub mod pool;
pub mod ports;
pub mod rag;
pub mod router;
pub mod scraper;
pub mod session;
pub mod supervisor;

#[cfg(feature = "fault-injection")]
pub mod fault;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why the tree (or one of its actors) could not start.
pub use ractor::SpawnErr;
use ractor::{Actor, ActorRef, Message};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::knowledge::{Knowledge, KnowledgeConfig, KnowledgeError};
use crate::ports::{HealthCheck, Ports};
use crate::supervisor::{RestartPolicy, Supervisor, SupervisorArgs, SupervisorMsg, TreeExit};

/// How long a readiness probe of a backend may take before it counts as down: `/ready` must
/// answer quickly even when a backend hangs (orchestrators poll it every few seconds).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the tree needs to know from the settings.
#[derive(Debug, Clone)]
pub struct TreeConfig {
    pub restart: RestartPolicy,
    /// Requests admitted at once; beyond that the router answers `Overloaded`.
    pub max_in_flight: usize,
    pub scraper_workers: usize,
    pub browser: browser::BrowserConfig,
    pub ingest_workers: usize,
    pub rag_workers: usize,
    pub knowledge: KnowledgeConfig,
    pub answer: rag::AnswerConfig,
    pub crawler: crawler_pool::CrawlerConfig,
    pub session: session::SessionConfig,
    /// Added to a request's own timeout to bound the whole call (queueing + extraction).
    pub call_margin: Duration,
    /// Bound on one ingest request (embedding is the slow part).
    pub ingest_timeout: Duration,
    /// Bound on one search or collection request.
    pub search_timeout: Duration,
    /// Bound on one answer (retrieval and generation).
    pub answer_timeout: Duration,
    /// How long a caller waits for an actor that is being restarted before giving up.
    pub lookup_grace: Duration,
    /// Added to scrape and ingest bounds for what may be a recording to transcribe. Set by the
    /// tree from the transcriber it is given (zero without one).
    pub transcription_allowance: Duration,
    /// How long each child gets to stop at shutdown before it is killed.
    pub shutdown_timeout: Duration,
}

/// Registered actor names of one tree.
#[derive(Debug)]
pub struct Names {
    pub root: String,
    pub session: String,
    pub router: String,
    pub scraper: String,
    pub browser: String,
    pub ingest: String,
    pub rag: String,
    pub crawler: String,
}

impl Names {
    fn unique() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let ns = format!(
            "aurora-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self {
            root: format!("{ns}/root"),
            session: format!("{ns}/session"),
            router: format!("{ns}/router"),
            scraper: format!("{ns}/scraper"),
            browser: format!("{ns}/browser"),
            ingest: format!("{ns}/ingest"),
            rag: format!("{ns}/rag"),
            crawler: format!("{ns}/crawler"),
        }
    }
}

/// Finds a registered actor, waiting up to `grace` for one that is being restarted.
pub(crate) async fn lookup<M: Message>(name: &str, grace: Duration) -> Option<ActorRef<M>> {
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        if let Some(actor) = ActorRef::<M>::where_is(name) {
            return Some(actor);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Cheap to clone; what the HTTP layer and the CLI hold.
#[derive(Clone)]
pub struct Handles {
    names: Arc<Names>,
    config: Arc<TreeConfig>,
    crawls: Arc<crawler_pool::Shared>,
    session: session::Handle,
    health_checks: Arc<[Arc<dyn HealthCheck>]>,
}

/// One line of `/ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: Option<String>,
}

impl Handles {
    pub fn router(&self) -> router::Handle {
        router_handle(&self.names, &self.config)
    }

    pub fn session(&self) -> session::Handle {
        self.session.clone()
    }

    pub fn crawler(&self) -> crawler_pool::Handle {
        crawler_pool::Handle {
            names: self.names.clone(),
            shared: self.crawls.clone(),
            lookup_grace: self.config.lookup_grace,
        }
    }

    /// Whether every actor is running and every configured backend answers.
    pub async fn readiness(&self) -> Vec<Check> {
        let mut checks: Vec<Check> = [
            ("actor:session", &self.names.session),
            ("actor:router", &self.names.router),
            ("actor:scraper", &self.names.scraper),
            ("actor:browser", &self.names.browser),
            ("actor:ingest", &self.names.ingest),
            ("actor:rag", &self.names.rag),
            ("actor:crawler", &self.names.crawler),
        ]
        .into_iter()
        .map(|(name, registered)| {
            let ok = ractor::registry::where_is(registered.clone()).is_some();
            Check {
                name: name.to_string(),
                ok,
                detail: (!ok).then(|| "restarting".to_string()),
            }
        })
        .collect();
        // The crawler's consumer may be paused although its actor runs: say why.
        checks.push(Check {
            name: "crawler:consumer".to_string(),
            ok: self.crawls.paused().is_none(),
            detail: self.crawls.paused(),
        });
        let probes = self.health_checks.iter().map(|probe| async move {
            let result = tokio::time::timeout(PROBE_TIMEOUT, probe.check()).await;
            let detail = match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            Check {
                name: probe.name().to_string(),
                ok: detail.is_none(),
                detail,
            }
        });
        checks.extend(futures::future::join_all(probes).await);
        checks
    }
}

fn router_handle(names: &Arc<Names>, config: &TreeConfig) -> router::Handle {
    router::Handle {
        names: names.clone(),
        call_margin: config.call_margin,
        lookup_grace: config.lookup_grace,
        ingest_timeout: config.ingest_timeout,
        transcription_allowance: config.transcription_allowance,
        search_timeout: config.search_timeout,
        answer_timeout: config.answer_timeout,
    }
}

/// A running supervision tree.
pub struct Tree {
    handles: Handles,
    root: ActorRef<SupervisorMsg>,
    join: JoinHandle<()>,
    exit: watch::Receiver<Option<TreeExit>>,
    shutdown_timeout: Duration,
    /// How many children the root supervises, each of which gets `shutdown_timeout` to stop.
    children: u32,
}

impl Tree {
    pub fn handles(&self) -> Handles {
        self.handles.clone()
    }

    /// Resolves when the tree has stopped on its own: restart intensity exceeded, or the root
    /// died. (After [`Tree::shutdown`] there is nothing left to wait for.)
    pub async fn stopped(&mut self) -> TreeExit {
        match self.exit.wait_for(Option::is_some).await {
            Ok(exit) => exit.clone().unwrap_or(TreeExit::Shutdown),
            Err(_) => TreeExit::Escalated {
                actor: "root".to_string(),
                reason: "the root supervisor stopped unexpectedly".to_string(),
            },
        }
    }

    /// Stops every actor, children in reverse start order, and waits for the root to end.
    pub async fn shutdown(self) -> TreeExit {
        // Each child gets `shutdown_timeout`; the root waits for all of them plus a little.
        // The crawl consumer first: it gives its leases back while the store is still there,
        // so another replica (or this one, restarted) takes the items at once.
        self.handles.crawls.shut_down(self.shutdown_timeout).await;
        let bound = self.shutdown_timeout * (self.children + 1);
        let _ = self
            .root
            .stop_and_wait(Some("shutdown".to_string()), Some(bound))
            .await;
        let _ = tokio::time::timeout(bound, self.join).await;
        self.exit.borrow().clone().unwrap_or(TreeExit::Shutdown)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("starting the actor tree: {0}")]
    Spawn(#[from] SpawnErr),
    #[error(transparent)]
    Config(#[from] KnowledgeError),
}

/// Starts the tree: pools first, then the router that feeds them.
pub async fn spawn_tree(ports: Ports, config: TreeConfig) -> Result<Tree, TreeError> {
    metrics::describe();
    let names = Arc::new(Names::unique());
    let admission = admission::Admission::new(config.max_in_flight);
    let knowledge = Arc::new(
        Knowledge::new(
            ports.vectors.clone(),
            ports.embedder.clone(),
            ports.state.clone(),
            config.knowledge.clone(),
        )?
        .with_transcriber(ports.transcriber.clone()),
    );
    let mut config = config;
    config.crawler.follow_media = ports.transcriber.available();
    config.transcription_allowance = match ports.transcriber.available() {
        true => ports.transcriber.pieces().recording_timeout,
        false => Duration::ZERO,
    };
    let config = Arc::new(config);
    let router_handle = router_handle(&names, &config);
    let crawls = Arc::new(crawler_pool::Shared::new(
        config.crawler.clone(),
        ports.state.clone(),
        ports.jobs.clone(),
        ports.fetcher.clone(),
        router_handle,
    ));
    let accounts = Arc::new(session::Accounts::new(
        ports.state.clone(),
        config.session.clone(),
    ));
    let session = session::Handle {
        names: names.clone(),
        accounts: accounts.clone(),
        pending: Arc::new(tokio::sync::Semaphore::new(
            config.session.max_pending.max(1),
        )),
        next_job: Arc::new(AtomicU64::new(0)),
    };
    let children = vec![
        session::child_spec(&names, accounts, config.session.workers),
        browser::child_spec(names.clone(), ports.browser.clone(), &config.browser),
        scraper::child_spec(
            names.clone(),
            ports.fetcher.clone(),
            browser::Handle::new(names.clone(), ports.browser.available(), config.call_margin),
            ports.transcriber.clone(),
            config.scraper_workers,
        ),
        ingest::child_spec(&names, knowledge.clone(), config.ingest_workers),
        rag::child_spec(
            &names,
            knowledge,
            ports.generator.clone(),
            ports.state.clone(),
            config.answer.clone(),
            config.rag_workers,
        ),
        router::child_spec(names.clone(), admission),
        crawler_pool::child_spec(names.clone(), crawls.clone()),
    ];
    let child_count = u32::try_from(children.len()).unwrap_or(u32::MAX);
    let (exit_tx, exit_rx) = watch::channel(None);
    let (root, join) = Actor::spawn(
        Some(names.root.clone()),
        Supervisor,
        SupervisorArgs {
            children,
            policy: config.restart.clone(),
            shutdown_timeout: config.shutdown_timeout,
            exit: exit_tx,
        },
    )
    .await?;
    Ok(Tree {
        handles: Handles {
            names,
            health_checks: ports.health_checks.into(),
            config: config.clone(),
            crawls,
            session,
        },
        root,
        join,
        exit: exit_rx,
        shutdown_timeout: config.shutdown_timeout,
        children: child_count,
    })
}
