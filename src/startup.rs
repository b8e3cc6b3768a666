//! The composition root: builds the adapters, spawns the supervision tree, binds both listeners,
//! and runs until a shutdown signal or an escalation — then shuts down in order: stop accepting,
//! drain in-flight requests, stop the tree.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aurora_actors::local::{EmbeddedStore, MemoryState};
use aurora_actors::ports::{Embedder, Generator, HealthCheck, Ports, StateStore, VectorStore};
use aurora_actors::supervisor::TreeExit;
use aurora_actors::{Handles, Tree};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::adapters::chroma::ChromaStore;
use crate::adapters::gemini::{GeminiChatConfig, GeminiConfig, GeminiEmbedder, GeminiGenerator};
use crate::adapters::http_fetch::{FetchConfig, HttpFetcher};
use crate::adapters::local_model::MiniLm;
use crate::adapters::openai::{OpenAiChatConfig, OpenAiConfig, OpenAiEmbedder, OpenAiGenerator};
use crate::adapters::redis::RedisState;
use crate::adapters::remote::RetryPolicy;
use crate::adapters::ssrf::AllowList;
use crate::adapters::static_model::StaticModel;
use crate::http::server::{self, ListenerConfig};
use crate::http::{AppState, Limits, core, crawler};
use crate::settings::{EmbeddingProvider, GeneratorProvider, Settings};
use crate::telemetry;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("configuration key `{key}`: {reason}")]
    Config { key: &'static str, reason: String },
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    #[error("HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error(transparent)]
    Tree(#[from] aurora_actors::TreeError),
    #[error("the embedded vector store: {0}")]
    VectorStore(aurora_actors::ports::StoreError),
    #[error("{0}")]
    Model(aurora_actors::ports::EmbedError),
    #[error("cannot listen on {addr} ({key}): {source}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "actor `{actor}` exceeded the restart intensity ({reason}); exiting so the orchestrator restarts Aurora"
    )]
    Escalated { actor: String, reason: String },
}

/// The process's parts, built and bound but not yet serving.
pub struct Application {
    core: TcpListener,
    crawler: TcpListener,
    core_addr: SocketAddr,
    crawler_addr: SocketAddr,
    tree: Tree,
    state: AppState,
    grace: Duration,
    header_read_timeout: Duration,
}

/// The HTTP fetcher the settings describe (SSRF allow-list, limits, user agent).
pub fn build_fetcher(settings: &Settings) -> Result<HttpFetcher, StartupError> {
    let allow =
        AllowList::parse(&settings.fetch.allow_private).map_err(|reason| StartupError::Config {
            key: "fetch.allow_private",
            reason,
        })?;
    Ok(HttpFetcher::new(FetchConfig {
        user_agent: settings.fetch.user_agent.clone(),
        connect_timeout: Duration::from_millis(settings.fetch.connect_timeout_ms),
        max_redirects: settings.fetch.max_redirects,
        max_body_bytes: settings.fetch.max_body_bytes,
        allow,
    })?)
}

/// The embedding model `embedding.provider` names.
pub fn build_embedder(settings: &Settings) -> Result<Arc<dyn Embedder>, StartupError> {
    let e = &settings.embedding;
    let key = |k: &str| (!k.is_empty()).then(|| k.to_string());
    Ok(match e.provider {
        EmbeddingProvider::Minilm => {
            Arc::new(MiniLm::new(&e.model_dir, e.batch_size).map_err(StartupError::Model)?)
        }
        EmbeddingProvider::Static => {
            Arc::new(StaticModel::load(&e.static_model_dir).map_err(StartupError::Model)?)
        }
        EmbeddingProvider::Openai => Arc::new(OpenAiEmbedder::new(
            OpenAiConfig {
                base_url: e.openai.base_url.clone(),
                model: e.openai.model.clone(),
                dimensions: e.openai.dimensions,
                send_dimensions: e.openai.send_dimensions,
                api_key: key(&e.openai.api_key),
            },
            RetryPolicy::default(),
        )?),
        EmbeddingProvider::Gemini => Arc::new(GeminiEmbedder::new(
            GeminiConfig {
                base_url: e.gemini.base_url.clone(),
                model: e.gemini.model.clone(),
                dimensions: e.gemini.dimensions,
                api_key: e.gemini.api_key.clone(),
            },
            RetryPolicy::default(),
        )?),
    })
}

/// The answer writer `generator.provider` names.
pub fn build_generator(settings: &Settings) -> Result<Arc<dyn Generator>, StartupError> {
    let g = &settings.generator;
    Ok(match g.provider {
        GeneratorProvider::Extractive => Arc::new(aurora_actors::rag::extractive::Extractive),
        GeneratorProvider::Openai => Arc::new(OpenAiGenerator::new(
            OpenAiChatConfig {
                base_url: g.openai.base_url.clone(),
                model: g.openai.model.clone(),
                api_key: (!g.openai.api_key.is_empty()).then(|| g.openai.api_key.clone()),
                stream_usage: g.openai.stream_usage,
                max_tokens: g.max_tokens,
                temperature: g.temperature,
            },
            RetryPolicy::default(),
        )?),
        GeneratorProvider::Gemini => Arc::new(GeminiGenerator::new(
            GeminiChatConfig {
                base_url: g.gemini.base_url.clone(),
                model: g.gemini.model.clone(),
                api_key: g.gemini.api_key.clone(),
                max_tokens: g.max_tokens,
                temperature: g.temperature,
            },
            RetryPolicy::default(),
        )?),
    })
}

/// The engine with its production ports: every adapter the settings ask for, the tree started.
pub async fn spawn_engine(settings: &Settings) -> Result<Tree, StartupError> {
    let fetcher = build_fetcher(settings)?;
    let mut health_checks: Vec<Arc<dyn HealthCheck>> = Vec::new();
    let state: Arc<dyn StateStore> = if settings.redis.url.is_empty() {
        Arc::new(MemoryState::new())
    } else {
        let redis = Arc::new(
            RedisState::connect(&settings.redis.url, &settings.redis.key_prefix).map_err(|e| {
                StartupError::Config {
                    key: "redis.url",
                    reason: e.to_string(),
                }
            })?,
        );
        health_checks.push(redis.clone());
        redis
    };
    let vectors: Arc<dyn VectorStore> = if settings.chroma.url.is_empty() {
        Arc::new(EmbeddedStore::open(&settings.data_dir).map_err(StartupError::VectorStore)?)
    } else {
        let chroma = Arc::new(
            ChromaStore::new(
                &settings.chroma.url,
                &settings.chroma.tenant,
                &settings.chroma.database,
                state.clone(),
            )
            .map_err(|reason| StartupError::Config {
                key: "chroma.url",
                reason,
            })?,
        );
        health_checks.push(chroma.clone());
        chroma
    };
    let embedder = build_embedder(settings)?;
    let ports = Ports {
        fetcher: Arc::new(fetcher),
        state,
        vectors,
        embedder,
        generator: build_generator(settings)?,
        health_checks,
    };
    Ok(aurora_actors::spawn_tree(ports, settings.tree_config()).await?)
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let metrics = telemetry::metrics()?;
        let tree = spawn_engine(&settings).await?;
        let host = settings.server.host;
        let bind = |key: &'static str, port: u16| async move {
            let addr = SocketAddr::new(host, port);
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartupError::Bind { key, addr, source })
        };
        let core = bind("server.core_port", settings.server.core_port).await?;
        let crawler = bind("server.crawler_port", settings.server.crawler_port).await?;
        let local = |listener: &TcpListener, key| {
            listener.local_addr().map_err(|source| StartupError::Bind {
                key,
                addr: SocketAddr::new(host, 0),
                source,
            })
        };
        let core_addr = local(&core, "server.core_port")?;
        let crawler_addr = local(&crawler, "server.crawler_port")?;
        let state = AppState {
            handles: tree.handles(),
            metrics,
            limits: Arc::new(Limits {
                body_bytes: settings.server.body_limit_bytes,
                ingest_body_bytes: settings.ingest.body_limit_bytes,
                max_documents: settings.ingest.max_documents,
                default_timeout: Duration::from_millis(settings.scraper.default_timeout_ms),
                max_timeout: Duration::from_millis(settings.scraper.max_timeout_ms),
                default_k: settings.search.default_k,
                max_k: settings.search.max_k,
                crawl_max_limit: settings.crawler.max_limit,
                crawl_default_ingest: Some(settings.crawler.default_ingest_collection.clone())
                    .filter(|c| !c.is_empty()),
                crawl_page_bytes: settings.crawler.status_page_bytes,
                answer_default_k: settings.answer.default_k,
                answer_max_k: settings.answer.max_k,
                max_question_chars: settings.answer.max_question_chars,
                default_collection: settings.answer.default_collection.clone(),
            }),
        };
        Ok(Self {
            core,
            crawler,
            core_addr,
            crawler_addr,
            tree,
            state,
            grace: Duration::from_secs(settings.server.shutdown_grace_secs),
            header_read_timeout: Duration::from_secs(settings.server.header_read_timeout_secs),
        })
    }

    pub fn core_addr(&self) -> SocketAddr {
        self.core_addr
    }

    pub fn crawler_addr(&self) -> SocketAddr {
        self.crawler_addr
    }

    pub fn handles(&self) -> Handles {
        self.state.handles.clone()
    }

    /// Serves until `shutdown` resolves (clean exit) or the tree escalates (error).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RunError> {
        // Flipped once to tell both listeners to stop accepting and drain.
        let (stop_tx, stop_rx) = watch::channel(false);
        let listener = |port, routes| ListenerConfig {
            port,
            routes,
            grace: self.grace,
            header_read_timeout: self.header_read_timeout,
        };
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let core = tokio::spawn(server::serve(
            self.core,
            warp::service(core::routes(self.state.clone())),
            listener("core", core::ROUTES),
            stopped(stop_rx.clone()),
        ));
        let crawler = tokio::spawn(server::serve(
            self.crawler,
            warp::service(crawler::routes(self.state.clone())),
            listener("crawler", crawler::ROUTES),
            stopped(stop_rx),
        ));
        tracing::info!(
            core = %self.core_addr,
            crawler = %self.crawler_addr,
            "Aurora is serving"
        );

        let mut tree = self.tree;
        let escalation = tokio::select! {
            () = shutdown => {
                tracing::info!("shutdown requested");
                None
            }
            exit = tree.stopped() => Some(exit),
        };
        let _ = stop_tx.send(true);
        let _ = tokio::join!(core, crawler);
        let exit = match escalation {
            Some(exit) => exit,
            None => tree.shutdown().await,
        };
        match exit {
            TreeExit::Shutdown => {
                tracing::info!("Aurora stopped");
                Ok(())
            }
            TreeExit::Escalated { actor, reason } => Err(RunError::Escalated { actor, reason }),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
