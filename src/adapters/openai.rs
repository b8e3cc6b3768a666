//! OpenAI-compatible APIs — OpenAI itself, Ollama, vLLM, Text Embeddings Inference, LocalAI… —
//! for embeddings (`POST {base_url}/embeddings`).

use aurora_actors::ports::{EmbedError, EmbedKind, Embedder};
use futures::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::remote::{self, RetryPolicy};

/// Inputs per request (OpenAI accepts 2048; servers differ, so stay well below).
const MAX_INPUTS: usize = 256;
const SERVICE: &str = "the OpenAI-compatible embeddings API";

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// e.g. `https://api.openai.com/v1` or `http://localhost:11434/v1` (Ollama).
    pub base_url: String,
    pub model: String,
    pub dimensions: usize,
    /// Ask the server for `dimensions` (text-embedding-3 models can shorten their vectors;
    /// other servers reject the parameter).
    pub send_dimensions: bool,
    pub api_key: Option<String>,
}

pub struct OpenAiEmbedder {
    client: reqwest::Client,
    url: String,
    config: OpenAiConfig,
    id: String,
    policy: RetryPolicy,
}

impl OpenAiEmbedder {
    pub fn new(config: OpenAiConfig, policy: RetryPolicy) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: remote::client()?,
            url: format!("{}/embeddings", config.base_url.trim_end_matches('/')),
            id: format!("openai:{}:{}", config.model, config.dimensions),
            config,
            policy,
        })
    }

    fn headers(&self) -> Result<HeaderMap, EmbedError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.config.api_key {
            let value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                EmbedError::Service("the API key is not a valid header value".into())
            })?;
            headers.insert(AUTHORIZATION, value);
        }
        Ok(headers)
    }

    async fn batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut body = json!({
            "model": self.config.model,
            "input": texts,
            "encoding_format": "float",
        });
        if self.config.send_dimensions {
            body["dimensions"] = json!(self.config.dimensions);
        }
        let answer = remote::post_json(
            &self.client,
            SERVICE,
            &self.url,
            self.headers()?,
            &body,
            &self.policy,
        )
        .await
        .map_err(|e| EmbedError::Service(e.to_string()))?;
        parse(&answer, texts.len(), self.config.dimensions)
    }
}

/// `{"data":[{"index":0,"embedding":[…]},…]}` → vectors in input order.
fn parse(answer: &Value, expected: usize, dimensions: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    let reader = remote::VectorReader {
        service: SERVICE,
        setting: "embedding.openai.dimensions",
        dimensions,
    };
    let mut vectors = vec![Vec::new(); expected];
    for (position, item) in reader.items(answer, "data", expected)?.iter().enumerate() {
        let index = item["index"].as_u64().map_or(position, |i| i as usize);
        let vector = reader.vector(&item["embedding"], index)?;
        let slot = vectors
            .get_mut(index)
            .ok_or_else(|| reader.malformed(format_args!("index {index} out of range")))?;
        *slot = vector;
    }
    // A repeated index leaves another input without a vector.
    if let Some(missing) = vectors.iter().position(Vec::is_empty) {
        return Err(reader.malformed(format_args!("no vector for input {missing}")));
    }
    Ok(vectors)
}

impl Embedder for OpenAiEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dimension(&self) -> usize {
        self.config.dimensions
    }

    /// OpenAI-style models embed queries and documents alike.
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        _kind: EmbedKind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            let mut vectors = Vec::with_capacity(texts.len());
            for batch in texts.chunks(MAX_INPUTS) {
                vectors.extend(self.batch(batch).await?);
            }
            Ok(vectors)
        })
    }
}
