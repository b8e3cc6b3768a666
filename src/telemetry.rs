//! Logs (tracing: JSON, or human-readable on a terminal) and the Prometheus recorder.
//!
//! Metric naming convention, for every metric Aurora exports:
//! - `aurora_<subsystem>_<what>[_<unit>]`, snake_case;
//! - counters end in `_total`; durations are histograms in `_seconds`; sizes are `_bytes`;
//! - label values come from small fixed sets (route templates, never raw paths or URLs);
//! - every metric has a help text (`describe_*`), so `promtool check metrics` passes.

use std::io::IsTerminal;
use std::sync::LazyLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::{LogFormat, LogSettings};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log filter `{0}`: {1}")]
    Filter(String, String),
    #[error("logging already initialised: {0}")]
    Logging(String),
    #[error("metrics recorder: {0}")]
    Metrics(String),
}

/// Bucket bounds (seconds) for every `_seconds` histogram: 1 ms … 2 min.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// A service's logs: stdout, at `log.level`.
    Stdout,
    /// A command whose stdout is its output: stderr, warnings and errors only.
    QuietStderr,
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `log.level`.
pub fn init_logging(settings: &LogSettings, target: LogTarget) -> Result<(), TelemetryError> {
    let level = match target {
        LogTarget::Stdout => settings.level.clone(),
        LogTarget::QuietStderr => "warn".to_string(),
    };
    let directive = std::env::var("RUST_LOG").unwrap_or(level);
    let filter = EnvFilter::try_new(&directive)
        .map_err(|e| TelemetryError::Filter(directive.clone(), e.to_string()))?;
    let (json, writer) = match target {
        LogTarget::Stdout => (
            match settings.format {
                LogFormat::Json => true,
                LogFormat::Pretty => false,
                LogFormat::Auto => !std::io::stdout().is_terminal(),
            },
            BoxMakeWriter::new(std::io::stdout),
        ),
        LogTarget::QuietStderr => (
            settings.format == LogFormat::Json,
            BoxMakeWriter::new(std::io::stderr),
        ),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        // The span list carries `request_id` (and the other fields of enclosing spans) into every
        // line logged while serving a request, actor messages included.
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .compact(),
            )
            .try_init()
    };
    result.map_err(|e| TelemetryError::Logging(e.to_string()))
}

/// The process-wide Prometheus recorder, installed on first use. Several applications in one
/// process (the tests) share it.
pub fn metrics() -> Result<PrometheusHandle, TelemetryError> {
    static HANDLE: LazyLock<Result<PrometheusHandle, String>> = LazyLock::new(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), SECONDS_BUCKETS)
            .map_err(|e| e.to_string())?
            .install_recorder()
            .map_err(|e| e.to_string())?;
        describe_metrics();
        Ok(handle)
    });
    HANDLE.clone().map_err(TelemetryError::Metrics)
}

fn describe_metrics() {
    describe_counter!(
        "aurora_auth_checks_total",
        "Requests checked by the authentication gate, by port and outcome (ok, missing, invalid, expired, forbidden, throttled, error)."
    );
    describe_counter!(
        "aurora_http_requests_total",
        "HTTP requests answered, by port, route template, method and status."
    );
    describe_histogram!(
        "aurora_http_request_duration_seconds",
        Unit::Seconds,
        "Time from request head to response head, by port, route template and method."
    );
    describe_gauge!(
        "aurora_http_requests_in_flight",
        "HTTP requests being served, by port."
    );
    describe_gauge!(
        "aurora_build_info",
        "Always 1; the labels carry the running version."
    );
    describe_counter!(
        "aurora_uploads_total",
        "File uploads (POST /v1/collections/{name}/files), by outcome (received, too_large, invalid)."
    );
    describe_counter!(
        "aurora_upload_bytes_total",
        "Bytes of files received by uploads."
    );
    describe_counter!(
        "aurora_transcriber_restarts_total",
        "Starts of the local transcription engine after it died."
    );
    describe_counter!(
        "aurora_remote_retries_total",
        "Retried calls to hosted model APIs, by service."
    );
    describe_counter!(
        "aurora_chroma_failures_total",
        "ChromaDB calls that failed after every retry."
    );
    describe_counter!(
        "aurora_lexical_lists_total",
        "BM25 posting lists read by a Redis-backed search, by source (cache, redis)."
    );
    describe_counter!(
        "aurora_answer_unheard_words_total",
        "Questions answered \"I don't know\" because they name a word the collection never holds."
    );
    describe_counter!(
        "aurora_lexical_rebuilds_total",
        "BM25 indexes rebuilt from ChromaDB because the state store had lost them."
    );
    describe_counter!(
        "aurora_embedding_tokens_total",
        "Tokens the built-in int8 model embedded, by kind: text (real tokens) or padding."
    );
    describe_histogram!(
        "aurora_embedding_inference_seconds",
        Unit::Seconds,
        "Time of one forward pass of the built-in int8 model, by kind of text (document, query)."
    );
    metrics::gauge!("aurora_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    aurora_actors::metrics::describe();
}
