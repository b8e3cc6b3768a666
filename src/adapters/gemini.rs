//! Google's Gemini API: embeddings through `models/{model}:batchEmbedContents`, with the task
//! type telling documents from queries.

use aurora_actors::ports::{EmbedError, EmbedKind, Embedder};
use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::remote::{self, RetryPolicy};

/// Requests per batch call (the API's limit).
const MAX_REQUESTS: usize = 100;
const SERVICE: &str = "the Gemini API";

#[derive(Debug, Clone)]
pub struct GeminiConfig {
    /// e.g. `https://generativelanguage.googleapis.com/v1beta`.
    pub base_url: String,
    pub model: String,
    pub dimensions: usize,
    pub api_key: String,
}

pub struct GeminiEmbedder {
    client: reqwest::Client,
    url: String,
    config: GeminiConfig,
    id: String,
    policy: RetryPolicy,
}

impl GeminiEmbedder {
    pub fn new(config: GeminiConfig, policy: RetryPolicy) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: remote::client()?,
            url: format!(
                "{}/models/{}:batchEmbedContents",
                config.base_url.trim_end_matches('/'),
                config.model
            ),
            id: format!("gemini:{}:{}", config.model, config.dimensions),
            config,
            policy,
        })
    }

    async fn batch(&self, texts: &[String], kind: EmbedKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        let task = match kind {
            EmbedKind::Document => "RETRIEVAL_DOCUMENT",
            EmbedKind::Query => "RETRIEVAL_QUERY",
        };
        let model = format!("models/{}", self.config.model);
        let requests: Vec<Value> = texts
            .iter()
            .map(|text| {
                json!({
                    "model": model,
                    "content": {"parts": [{"text": text}]},
                    "taskType": task,
                    "outputDimensionality": self.config.dimensions,
                })
            })
            .collect();
        let mut headers = HeaderMap::new();
        let key = HeaderValue::from_str(&self.config.api_key)
            .map_err(|_| EmbedError::Service("the API key is not a valid header value".into()))?;
        headers.insert("x-goog-api-key", key);
        let answer = remote::post_json(
            &self.client,
            SERVICE,
            &self.url,
            headers,
            &json!({"requests": requests}),
            &self.policy,
        )
        .await
        .map_err(|e| EmbedError::Service(e.to_string()))?;
        parse(&answer, texts.len(), self.config.dimensions)
    }
}

/// `{"embeddings":[{"values":[…]},…]}` → vectors, in order.
fn parse(answer: &Value, expected: usize, dimensions: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    let reader = remote::VectorReader {
        service: SERVICE,
        setting: "embedding.gemini.dimensions",
        dimensions,
    };
    reader
        .items(answer, "embeddings", expected)?
        .iter()
        .enumerate()
        .map(|(i, item)| reader.vector(&item["values"], i))
        .collect()
}

impl Embedder for GeminiEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dimension(&self) -> usize {
        self.config.dimensions
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        kind: EmbedKind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            let mut vectors = Vec::with_capacity(texts.len());
            for batch in texts.chunks(MAX_REQUESTS) {
                vectors.extend(self.batch(batch, kind).await?);
            }
            Ok(vectors)
        })
    }
}
