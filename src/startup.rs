//! The composition root: builds the adapters, spawns the supervision tree, binds both listeners,
//! and runs until a shutdown signal or an escalation — then shuts down in order: stop accepting,
//! drain in-flight requests, stop the tree.
//!
//! Size: the composition root chooses every adapter from settings in one place, so the whole wiring
//! is read in one file.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aurora_actors::local::{
    EmbeddedStore, MemoryJobs, MemoryLexical, MemoryState, NoBrowser, write_private,
};
use aurora_actors::ports::{
    Browser, Embedder, Generator, HealthCheck, JobQueue, LexicalIndex, Pieces, Ports, StateStore,
    Transcriber, VectorStore,
};
use aurora_actors::session::{AuthError, SigningKey};
use aurora_actors::supervisor::TreeExit;
use aurora_actors::{Handles, Tree};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::adapters::browser::{Chrome, ChromeConfig};
use crate::adapters::chroma::ChromaStore;
use crate::adapters::gemini::{GeminiChatConfig, GeminiConfig, GeminiEmbedder, GeminiGenerator};
use crate::adapters::http_fetch::{FetchConfig, HttpFetcher};
use crate::adapters::local_model::MiniLm;
use crate::adapters::onnx_model::{OnnxConfig, OnnxMiniLm};
use crate::adapters::openai::{OpenAiChatConfig, OpenAiConfig, OpenAiEmbedder, OpenAiGenerator};
use crate::adapters::redis::RedisState;
use crate::adapters::remote::RetryPolicy;
use crate::adapters::ssrf::AllowList;
use crate::adapters::static_model::StaticModel;
use crate::adapters::transcribe::{OpenAiTranscriber, OpenAiTranscriberConfig};
use crate::adapters::whisper_sidecar::{LocalWhisper, LocalWhisperConfig};
use crate::http::gate::{Cors, ErrorStyle, Gate, Route, parse_networks};
use crate::http::server::{self, ListenerConfig};
use crate::http::{AppState, Limits, core, crawler};
use crate::settings::{
    BrowserEnabled, EmbeddingProvider, GeneratorProvider, JwtAlgorithm, Settings,
    TranscriptionEngine,
};
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
    Remote(#[from] crate::adapters::remote::SetupError),
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
    core_gate: Arc<Gate>,
    crawler_gate: Arc<Gate>,
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

/// The headless browser `browser.enabled` asks for: Chromium through chromedriver when it is
/// installed (`auto`) or required (`on`), else none (render requests fail clearly).
pub async fn build_browser(settings: &Settings) -> Result<Arc<dyn Browser>, StartupError> {
    let b = &settings.browser;
    if b.enabled == BrowserEnabled::Off {
        return Ok(Arc::new(NoBrowser::new(
            "the browser is off (browser.enabled = \"off\")",
        )));
    }
    let Some(driver) = Chrome::find_driver(&b.chromedriver) else {
        let reason = format!(
            "`{}` was not found (install chromium and chromium-driver, or set browser.chromedriver)",
            b.chromedriver.display()
        );
        if b.enabled == BrowserEnabled::On {
            return Err(StartupError::Config {
                key: "browser.chromedriver",
                reason,
            });
        }
        tracing::info!(%reason, "running without a browser");
        return Ok(Arc::new(NoBrowser::new(reason)));
    };
    let allow =
        AllowList::parse(&settings.fetch.allow_private).map_err(|reason| StartupError::Config {
            key: "fetch.allow_private",
            reason,
        })?;
    let profile_root = if b.profile_dir.as_os_str().is_empty() {
        std::env::temp_dir()
    } else {
        b.profile_dir.clone()
    };
    let chrome = Chrome::start(
        ChromeConfig {
            chromedriver: driver,
            chromium: (!b.chromium.as_os_str().is_empty()).then(|| b.chromium.clone()),
            profile_root,
            launch_timeout: Duration::from_millis(b.launch_timeout_ms),
            sandbox: b.sandbox,
        },
        allow,
        Duration::from_millis(settings.fetch.connect_timeout_ms),
    )
    .await
    .map_err(|e| StartupError::Config {
        key: "browser.enabled",
        reason: format!("cannot start the browser's proxy: {e}"),
    })?;
    Ok(Arc::new(chrome))
}

/// The embedding model `embedding.provider` names.
pub fn build_embedder(settings: &Settings) -> Result<Arc<dyn Embedder>, StartupError> {
    let e = &settings.embedding;
    let key = |k: &str| (!k.is_empty()).then(|| k.to_string());
    Ok(match e.provider {
        EmbeddingProvider::Minilm => {
            Arc::new(MiniLm::new(&e.model_dir, e.batch_size).map_err(StartupError::Model)?)
        }
        EmbeddingProvider::MinilmInt8 => Arc::new(
            OnnxMiniLm::new(OnnxConfig {
                runtime: e.onnxruntime.clone(),
                model_dir: e.int8_model_dir.clone(),
                batch_size: e.batch_size,
                threads: e.threads,
            })
            .map_err(StartupError::Model)?,
        ),
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

/// Speech to text, as `transcription.engine` says.
pub fn build_transcriber(settings: &Settings) -> Result<Arc<dyn Transcriber>, StartupError> {
    let t = &settings.transcription;
    let timeout = Duration::from_secs(t.timeout_secs);
    let pieces = Pieces {
        seconds: t.piece_secs.max(1),
        max_recording_secs: t.max_recording_secs,
        recording_timeout: Duration::from_secs(t.recording_timeout_secs.max(t.timeout_secs)),
    };
    Ok(match t.engine {
        TranscriptionEngine::None => Arc::new(aurora_actors::local::NoTranscriber),
        TranscriptionEngine::Openai => Arc::new(
            OpenAiTranscriber::new(OpenAiTranscriberConfig {
                base_url: t.openai.base_url.clone(),
                model: t.openai.model.clone(),
                api_key: (!t.openai.api_key.is_empty()).then(|| t.openai.api_key.clone()),
                timeout,
                id: "openai",
                pieces,
            })
            .map_err(|e| StartupError::Config {
                key: "transcription.openai",
                reason: e.to_string(),
            })?,
        ),
        TranscriptionEngine::Local => Arc::new(LocalWhisper::new(LocalWhisperConfig {
            python: home(&t.local.python),
            script: t.local.script.clone(),
            threads: t.local.threads.max(1),
            timeout,
            pieces,
        })),
    })
}

/// `~/x` as a path under `$HOME`.
fn home(path: &std::path::Path) -> std::path::PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => std::path::PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

/// The engine with its production ports: every adapter the settings ask for, the tree started.
pub async fn spawn_engine(settings: &Settings) -> Result<Tree, StartupError> {
    let fetcher = build_fetcher(settings)?;
    let mut health_checks: Vec<Arc<dyn HealthCheck>> = Vec::new();
    let (state, jobs, lexical): (
        Arc<dyn StateStore>,
        Arc<dyn JobQueue>,
        Arc<dyn LexicalIndex>,
    ) = if settings.redis.url.is_empty() {
        let data_error = |e: aurora_actors::ports::StateError| StartupError::Config {
            key: "data_dir",
            reason: e.to_string(),
        };
        let dir = settings.data_dir.join("state");
        // Accounts (users, keys, sessions) and crawl jobs outlive a restart; caches do not.
        let accounts = MemoryState::durable(
            &dir.join("accounts.json"),
            &aurora_actors::session::DURABLE_PREFIXES,
        )
        .map_err(data_error)?;
        let jobs = MemoryJobs::open(&dir).map_err(data_error)?;
        // Only a ChromaDB deployment reads it (the embedded store keeps its own); it is rebuilt
        // from ChromaDB after a restart.
        let lexical = Arc::new(MemoryLexical::new());
        (Arc::new(accounts), Arc::new(jobs), lexical)
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
        let jobs = Arc::new(redis.jobs());
        let lexical = Arc::new(redis.lexical(settings.search.lexical_cache_mb << 20));
        (redis, jobs, lexical)
    };
    let vectors: Arc<dyn VectorStore> = if settings.chroma.url.is_empty() {
        Arc::new(EmbeddedStore::open(&settings.data_dir).map_err(StartupError::VectorStore)?)
    } else {
        let chroma = Arc::new(
            ChromaStore::new(
                &settings.chroma.url,
                &settings.chroma.tenant,
                &settings.chroma.database,
                lexical,
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
        browser: build_browser(settings).await?,
        state,
        jobs,
        vectors,
        embedder,
        generator: build_generator(settings)?,
        transcriber: build_transcriber(settings)?,
        health_checks,
    };
    let mut config = settings.tree_config();
    config.crawler.webhooks.render = crate::http::crawler::crawl_v1::webhook_document;
    if let Some(key) = signing_key(settings)? {
        config.session.signing = Some(key);
    }
    Ok(aurora_actors::spawn_tree(ports, config).await?)
}

/// The EdDSA or RS256 key pair `auth.jwt_*_key_file` name (HS256 needs no files).
fn signing_key(settings: &Settings) -> Result<Option<SigningKey>, StartupError> {
    let a = &settings.auth;
    let read = |key: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| StartupError::Config {
            key,
            reason: format!("reading {}: {e}", path.display()),
        })
    };
    let pair = || -> Result<(Vec<u8>, Vec<u8>), StartupError> {
        Ok((
            read("auth.jwt_private_key_file", &a.jwt_private_key_file)?,
            read("auth.jwt_public_key_file", &a.jwt_public_key_file)?,
        ))
    };
    Ok(match a.jwt_algorithm {
        JwtAlgorithm::HS256 => None,
        JwtAlgorithm::EdDSA => {
            let (private_pem, public_pem) = pair()?;
            Some(SigningKey::EdDsa {
                private_pem,
                public_pem,
            })
        }
        JwtAlgorithm::RS256 => {
            let (private_pem, public_pem) = pair()?;
            Some(SigningKey::Rs256 {
                private_pem,
                public_pem,
            })
        }
    })
}

/// Creates the first admin (and the signing keys) if they are not there yet. A generated
/// password is printed once and written to `{data_dir}/admin-password`, readable by the owner
/// only. A state store that is not up yet is not fatal: the keys are made on first use.
async fn bootstrap_accounts(settings: &Settings, handles: &Handles) -> Result<(), StartupError> {
    match handles.session().bootstrap().await {
        Ok(Some(password)) => {
            let path = settings.data_dir.join("admin-password");
            write_private(&path, password.0.as_bytes()).map_err(|e| StartupError::Config {
                key: "data_dir",
                reason: format!("writing {}: {e}", path.display()),
            })?;
            // Deliberately not through tracing: log pipelines keep lines; this is shown once.
            eprintln!(
                "\nAurora created the user `admin` with a generated password:\n\n    {}\n\n\
                 It is also in {} (mode 0600). Change it with POST /v1/auth/password.\n",
                password.0,
                path.display()
            );
            tracing::info!(target: "aurora::audit", event = "admin_bootstrap", file = %path.display(), "generated the admin password");
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(AuthError::Config(reason)) => Err(StartupError::Config {
            key: "auth.jwt_algorithm",
            reason,
        }),
        Err(error) => {
            tracing::warn!(%error, "accounts not ready yet; retrying on first use");
            Ok(())
        }
    }
}

/// The authentication gate of one listener.
fn gate(
    settings: &Settings,
    handles: &Handles,
    routes: &'static [Route],
    style: ErrorStyle,
) -> Result<Arc<Gate>, StartupError> {
    let s = &settings.server;
    Ok(Arc::new(Gate {
        routes,
        enabled: settings.auth.enabled,
        session: handles.session(),
        metrics_token: Some(settings.auth.metrics_token.clone()).filter(|t| !t.is_empty()),
        cors: Cors::parse(&s.cors_origins),
        trusted_proxies: parse_networks(&s.trusted_proxies).map_err(|reason| {
            StartupError::Config {
                key: "server.trusted_proxies",
                reason,
            }
        })?,
        hsts_max_age: (s.hsts_max_age_secs > 0).then_some(s.hsts_max_age_secs),
        style,
        cookie_max_age: settings.auth.refresh_ttl_secs,
    }))
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let metrics = telemetry::metrics()?;
        let tree = spawn_engine(&settings).await?;
        bootstrap_accounts(&settings, &tree.handles()).await?;
        let core_gate = gate(&settings, &tree.handles(), core::ROUTES, ErrorStyle::Core)?;
        let crawler_gate = gate(
            &settings,
            &tree.handles(),
            crawler::ROUTES,
            ErrorStyle::Firecrawl,
        )?;
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
                upload_bytes: settings.ingest.upload_limit_bytes,
                max_file_bytes: settings.ingest.max_file_bytes,
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
                min_password_chars: settings.auth.min_password_chars,
                default_collection: settings.answer.default_collection.clone(),
                cookie_max_age: settings.auth.refresh_ttl_secs,
                auth_enabled: settings.auth.enabled,
            }),
        };
        Ok(Self {
            core,
            crawler,
            core_addr,
            crawler_addr,
            tree,
            state,
            core_gate,
            crawler_gate,
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
            self.core_gate,
            stopped(stop_rx.clone()),
        ));
        let crawler = tokio::spawn(server::serve(
            self.crawler,
            warp::service(crawler::routes(self.state.clone())),
            listener("crawler", crawler::ROUTES),
            self.crawler_gate,
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
