//! Calling hosted model APIs (OpenAI-compatible, Gemini): JSON over HTTPS with the retry rules
//! such APIs need. 429 and 5xx are retried with exponential backoff — honouring `Retry-After`
//! when the service sends one, up to a cap — and connection errors likewise; any other answer is
//! final. Failures keep the service's own error message.

use std::time::Duration;

use aurora_actors::ports::EmbedError;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Client, StatusCode};
use serde_json::Value;

/// The longest `Retry-After` honoured; beyond it the request fails rather than hang.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            first_backoff: Duration::from_millis(250),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The service answered with an error status (after retries, for retryable ones).
    #[error("{service} answered {status}: {message}")]
    Status {
        service: &'static str,
        status: StatusCode,
        message: String,
        /// When the service said to try again (`Retry-After`, or Google's `RetryInfo`).
        retry_after: Option<Duration>,
    },
    #[error("{service} is unreachable: {message}")]
    Unreachable {
        service: &'static str,
        message: String,
    },
    #[error("{service} sent an unexpected answer: {message}")]
    Malformed {
        service: &'static str,
        message: String,
    },
}

/// The error message inside an OpenAI (`{"error":{"message"}}`) or Google
/// (`{"error":{"message","status"}}`) error body, else the body itself.
pub fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    parsed
        .as_ref()
        .and_then(|v| v["error"]["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(300).collect())
}

fn client() -> Result<Client, reqwest::Error> {
    Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(120))
        .build()
}

/// Building an [`Endpoint`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("{service}: the API key is not a valid header value")]
    Key { service: &'static str },
}

/// One method of a hosted API: its URL, its name in errors, the headers every call carries (the
/// key) and the retry policy. An adapter holds one per method it calls.
#[derive(Debug, Clone)]
pub struct Endpoint {
    client: Client,
    service: &'static str,
    url: String,
    headers: HeaderMap,
    policy: RetryPolicy,
}

impl Endpoint {
    /// `key` is a header (`Authorization: Bearer …`, `x-goog-api-key: …`) when the API wants one.
    pub fn new(
        service: &'static str,
        url: String,
        key: Option<(HeaderName, String)>,
        policy: RetryPolicy,
    ) -> Result<Self, SetupError> {
        let mut headers = HeaderMap::new();
        if let Some((name, value)) = key {
            let mut value =
                HeaderValue::from_str(&value).map_err(|_| SetupError::Key { service })?;
            // Keeps the key out of debug output.
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Self {
            client: client()?,
            service,
            url,
            headers,
            policy,
        })
    }

    /// The same API (client, key, policy) at another URL: a second method.
    pub fn at(&self, url: String) -> Self {
        Self {
            url,
            ..self.clone()
        }
    }

    /// POSTs `body` and returns the JSON answer, retrying what may succeed later.
    pub async fn post_json(&self, body: &Value) -> Result<Value, RemoteError> {
        let service = self.service;
        let text = self
            .post(body)
            .await?
            .text()
            .await
            .map_err(|e| RemoteError::Unreachable {
                service,
                message: e.to_string(),
            })?;
        serde_json::from_str(&text).map_err(|e| RemoteError::Malformed {
            service,
            message: format!("{e}: {}", text.chars().take(200).collect::<String>()),
        })
    }

    /// POSTs `body` until it is answered with success, retrying what may succeed later; the
    /// answer is left to read (a stream, for a streamed answer).
    pub async fn post(&self, body: &Value) -> Result<reqwest::Response, RemoteError> {
        send(self.service, &self.policy, || {
            self.client
                .post(&self.url)
                .headers(self.headers.clone())
                .json(body)
        })
        .await
    }
}

/// Sends the request `build` makes until it is answered with success, retrying what may succeed
/// later (a fresh request each time: a multipart body can be sent only once).
pub async fn send(
    service: &'static str,
    policy: &RetryPolicy,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, RemoteError> {
    let mut backoff = policy.first_backoff;
    let mut attempt = 1;
    loop {
        let outcome = build().send().await;
        let (retryable, wait, error) = match outcome {
            Ok(response) if response.status().is_success() => return Ok(response),
            Ok(response) => {
                let status = response.status();
                let header = retry_after(response.headers());
                let body = response.text().await.unwrap_or_default();
                let retry_after = header.or_else(|| retry_delay(&body));
                let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                let error = RemoteError::Status {
                    service,
                    status,
                    message: error_message(&body),
                    retry_after,
                };
                (retryable, retry_after, error)
            }
            Err(e) => (
                true,
                None,
                RemoteError::Unreachable {
                    service,
                    message: e.to_string(),
                },
            ),
        };
        let wait = wait.unwrap_or(backoff);
        if !retryable || attempt >= policy.attempts || wait > MAX_RETRY_AFTER {
            return Err(error);
        }
        tracing::warn!(service, attempt, wait_ms = wait.as_millis() as u64, %error, "retrying");
        metrics::counter!("aurora_remote_retries_total", "service" => service).increment(1);
        tokio::time::sleep(wait).await;
        backoff *= 2;
        attempt += 1;
    }
}

/// The delay in a Google error's `RetryInfo` detail (`"retryDelay": "37s"`), which Gemini sends
/// with quota errors instead of a `Retry-After` header.
fn retry_delay(body: &str) -> Option<Duration> {
    let parsed: Value = serde_json::from_str(body).ok()?;
    parsed["error"]["details"]
        .as_array()?
        .iter()
        .find_map(|detail| detail["retryDelay"].as_str())?
        .strip_suffix('s')?
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// `Retry-After` in seconds (the HTTP-date form is rare from these APIs and is ignored).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Reads the vectors out of a hosted embeddings answer, with errors that name the service and
/// the setting to fix.
pub struct VectorReader {
    pub service: &'static str,
    /// The setting holding the expected dimension, e.g. `embedding.openai.dimensions`.
    pub setting: &'static str,
    pub dimensions: usize,
}

impl VectorReader {
    pub fn malformed(&self, what: impl std::fmt::Display) -> EmbedError {
        EmbedError::Service(format!(
            "{} sent an unexpected answer: {what}",
            self.service
        ))
    }

    /// The array under `field`, which must hold one item per input.
    pub fn items<'v>(
        &self,
        answer: &'v Value,
        field: &str,
        expected: usize,
    ) -> Result<&'v [Value], EmbedError> {
        let items = answer[field]
            .as_array()
            .ok_or_else(|| self.malformed(format_args!("no `{field}` array")))?;
        if items.len() != expected {
            return Err(self.malformed(format_args!(
                "{} vectors for {expected} inputs",
                items.len()
            )));
        }
        Ok(items)
    }

    /// The numbers of `value` (item `index`) as a unit vector of the configured dimension.
    pub fn vector(&self, value: &Value, index: usize) -> Result<Vec<f32>, EmbedError> {
        let vector: Vec<f32> = value
            .as_array()
            .ok_or_else(|| self.malformed(format_args!("item {index} has no vector")))?
            .iter()
            .map(|x| x.as_f64().map(|x| x as f32))
            .collect::<Option<_>>()
            .ok_or_else(|| self.malformed(format_args!("item {index} holds a non-number")))?;
        if vector.len() != self.dimensions {
            return Err(EmbedError::Service(format!(
                "{} returned {}-dimensional vectors; {} says {}",
                self.service,
                vector.len(),
                self.setting,
                self.dimensions
            )));
        }
        Ok(normalise(vector))
    }
}

/// Scales `vector` to unit length (hosted models do not all return normalised vectors, e.g.
/// Gemini with a reduced `outputDimensionality`).
pub fn normalise(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_either_envelope() {
        assert_eq!(
            error_message(
                r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#
            ),
            "Incorrect API key provided"
        );
        assert_eq!(
            error_message(
                r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#
            ),
            "Quota exceeded"
        );
        assert_eq!(error_message("plain text"), "plain text");
    }

    #[test]
    fn google_retry_info_gives_the_delay() {
        let body = r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure"},
                       {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
        assert_eq!(retry_delay(body), Some(Duration::from_secs(37)));
        assert_eq!(retry_delay(r#"{"error":{"message":"x"}}"#), None);
    }

    #[test]
    fn vectors_are_normalised() {
        assert_eq!(normalise(vec![3.0, 4.0]), vec![0.6, 0.8]);
        assert_eq!(normalise(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }
}
