//! OpenAI-compatible APIs — OpenAI itself, Ollama, vLLM, llama.cpp server, Text Embeddings
//! Inference, LocalAI… — for embeddings (`POST {base_url}/embeddings`) and for answers
//! (`POST {base_url}/chat/completions`, whole or streamed as server-sent events).

use aurora_actors::ports::{
    EmbedError, EmbedKind, Embedder, GenerateError, GenerateRequest, Generation, Generator, Piece,
    Usage,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use reqwest::header::{AUTHORIZATION, HeaderName};
use serde_json::{Value, json};

use super::llm;
use super::remote::{self, Endpoint, RetryPolicy, SetupError};

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
    endpoint: Endpoint,
    config: OpenAiConfig,
    id: String,
}

impl OpenAiEmbedder {
    pub fn new(config: OpenAiConfig, policy: RetryPolicy) -> Result<Self, SetupError> {
        Ok(Self {
            endpoint: Endpoint::new(
                SERVICE,
                format!("{}/embeddings", config.base_url.trim_end_matches('/')),
                bearer(config.api_key.as_deref()),
                policy,
            )?,
            id: format!("openai:{}:{}", config.model, config.dimensions),
            config,
        })
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
        let answer = self
            .endpoint
            .post_json(&body)
            .await
            .map_err(|e| EmbedError::Service(e.to_string()))?;
        parse(&answer, texts.len(), self.config.dimensions)
    }
}

/// `Authorization: Bearer {key}`, or no header without a key (local servers need none).
fn bearer(key: Option<&str>) -> Option<(HeaderName, String)> {
    key.map(|key| (AUTHORIZATION, format!("Bearer {key}")))
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

const CHAT_SERVICE: &str = "the OpenAI-compatible chat API";

#[derive(Debug, Clone)]
pub struct OpenAiChatConfig {
    /// e.g. `https://api.openai.com/v1` or `http://localhost:11434/v1` (Ollama).
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    /// Ask for usage at the end of a stream (`stream_options.include_usage`).
    pub stream_usage: bool,
    /// Used when a request names none.
    pub max_tokens: u32,
    pub temperature: f32,
}

/// Answers through a chat completions API.
pub struct OpenAiGenerator {
    endpoint: Endpoint,
    config: OpenAiChatConfig,
    id: String,
}

impl OpenAiGenerator {
    pub fn new(config: OpenAiChatConfig, policy: RetryPolicy) -> Result<Self, SetupError> {
        Ok(Self {
            endpoint: Endpoint::new(
                CHAT_SERVICE,
                format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
                bearer(config.api_key.as_deref()),
                policy,
            )?,
            id: format!("openai:{}", config.model),
            config,
        })
    }

    fn body(&self, request: &GenerateRequest, stream: bool) -> Value {
        let mut body = json!({
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": llm::INSTRUCTIONS},
                {"role": "user", "content": llm::prompt(request)},
            ],
            "max_tokens": request.max_tokens.unwrap_or(self.config.max_tokens),
            "temperature": request.temperature.unwrap_or(self.config.temperature),
            "stream": stream,
        });
        if stream && self.config.stream_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }
}

fn malformed(what: impl std::fmt::Display) -> GenerateError {
    GenerateError::Service(format!("{CHAT_SERVICE} sent an unexpected answer: {what}"))
}

fn usage(value: &Value) -> Option<Usage> {
    Some(Usage {
        prompt_tokens: value["prompt_tokens"].as_u64()? as u32,
        completion_tokens: value["completion_tokens"].as_u64()? as u32,
    })
}

/// A choice that stopped on the content filter, or a model's explicit `refusal`, is a refusal.
fn refusal(choice: &Value, text_field: &str) -> Option<GenerateError> {
    if let Some(refusal) = choice[text_field]["refusal"].as_str() {
        return Some(GenerateError::Refused(refusal.to_string()));
    }
    (choice["finish_reason"] == "content_filter")
        .then(|| GenerateError::Refused("the answer was stopped by the content filter".to_string()))
}

/// One `chat.completion.chunk` → its text and usage, or the error a server put in the stream.
fn chunk_pieces(data: &str) -> Result<Vec<Piece>, GenerateError> {
    let chunk: Value = serde_json::from_str(data).map_err(|e| malformed(format!("{e}: {data}")))?;
    if chunk["error"].is_object() {
        return Err(GenerateError::Service(format!(
            "{CHAT_SERVICE} failed mid-answer: {}",
            remote::error_message(data)
        )));
    }
    let mut pieces = Vec::new();
    if let Some(choice) = chunk["choices"].get(0) {
        if let Some(refused) = refusal(choice, "delta") {
            return Err(refused);
        }
        if let Some(text) = choice["delta"]["content"].as_str()
            && !text.is_empty()
        {
            pieces.push(Piece::Text(text.to_string()));
        }
    }
    if let Some(usage) = usage(&chunk["usage"]) {
        pieces.push(Piece::Usage(usage));
    }
    Ok(pieces)
}

impl Generator for OpenAiGenerator {
    fn id(&self) -> &str {
        &self.id
    }

    fn generate(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<Generation, GenerateError>> {
        Box::pin(async move {
            let answer = self
                .endpoint
                .post_json(&self.body(&request, false))
                .await
                .map_err(llm::generate_error)?;
            let choice = answer["choices"]
                .get(0)
                .ok_or_else(|| malformed("no choices"))?;
            if let Some(refused) = refusal(choice, "message") {
                return Err(refused);
            }
            let text = choice["message"]["content"]
                .as_str()
                .ok_or_else(|| malformed("no message content"))?;
            Ok(Generation {
                text: text.to_string(),
                usage: usage(&answer["usage"]).unwrap_or_default(),
            })
        })
    }

    fn stream(&self, request: GenerateRequest) -> BoxStream<'_, Result<Piece, GenerateError>> {
        futures::stream::once(async move {
            self.endpoint
                .post(&self.body(&request, true))
                .await
                .map_err(llm::generate_error)
        })
        .flat_map(|sent| llm::pieces(sent, CHAT_SERVICE, chunk_pieces))
        .boxed()
    }
}
