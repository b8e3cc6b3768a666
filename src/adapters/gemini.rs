//! Google's Gemini API: embeddings through `models/{model}:batchEmbedContents`, with the task
//! type telling documents from queries, and answers through `models/{model}:generateContent` or,
//! streamed, `models/{model}:streamGenerateContent?alt=sse`. Safety blocks become refusals;
//! quota errors (429 `RESOURCE_EXHAUSTED`, with a `RetryInfo` delay) are retried, then reported
//! as rate limiting.

use aurora_actors::ports::{
    EmbedError, EmbedKind, Embedder, GenerateError, GenerateRequest, Generation, Generator, Piece,
    Usage,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use reqwest::header::HeaderName;
use serde_json::{Value, json};

use super::llm;
use super::remote::{self, Endpoint, RetryPolicy, SetupError};

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
    endpoint: Endpoint,
    config: GeminiConfig,
    id: String,
}

impl GeminiEmbedder {
    pub fn new(config: GeminiConfig, policy: RetryPolicy) -> Result<Self, SetupError> {
        Ok(Self {
            endpoint: Endpoint::new(
                SERVICE,
                format!(
                    "{}:batchEmbedContents",
                    model_url(&config.base_url, &config.model)
                ),
                Some(key_header(&config.api_key)),
                policy,
            )?,
            id: format!("gemini:{}:{}", config.model, config.dimensions),
            config,
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
        let answer = self
            .endpoint
            .post_json(&json!({"requests": requests}))
            .await
            .map_err(|e| EmbedError::Service(e.to_string()))?;
        parse(&answer, texts.len(), self.config.dimensions)
    }
}

/// The key goes in a header, never in the URL (URLs end up in logs).
fn key_header(key: &str) -> (HeaderName, String) {
    (HeaderName::from_static("x-goog-api-key"), key.to_string())
}

/// `{base}/models/{model}`; the method is appended after a `:`.
fn model_url(base_url: &str, model: &str) -> String {
    format!("{}/models/{model}", base_url.trim_end_matches('/'))
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

const GENERATE_SERVICE: &str = "the Gemini API";

#[derive(Debug, Clone)]
pub struct GeminiChatConfig {
    /// e.g. `https://generativelanguage.googleapis.com/v1beta`.
    pub base_url: String,
    pub model: String,
    pub api_key: String,
    /// Used when a request names none.
    pub max_tokens: u32,
    pub temperature: f32,
}

/// Answers through Gemini's `generateContent`.
pub struct GeminiGenerator {
    /// `generateContent`: the whole answer.
    whole: Endpoint,
    /// `streamGenerateContent?alt=sse`: the answer as it is written.
    streamed: Endpoint,
    config: GeminiChatConfig,
    id: String,
}

impl GeminiGenerator {
    pub fn new(config: GeminiChatConfig, policy: RetryPolicy) -> Result<Self, SetupError> {
        let model = model_url(&config.base_url, &config.model);
        let whole = Endpoint::new(
            GENERATE_SERVICE,
            format!("{model}:generateContent"),
            Some(key_header(&config.api_key)),
            policy,
        )?;
        Ok(Self {
            streamed: whole.at(format!("{model}:streamGenerateContent?alt=sse")),
            whole,
            id: format!("gemini:{}", config.model),
            config,
        })
    }

    fn body(&self, request: &GenerateRequest) -> Value {
        json!({
            "systemInstruction": {"parts": [{"text": llm::INSTRUCTIONS}]},
            "contents": [{"role": "user", "parts": [{"text": llm::prompt(request)}]}],
            "generationConfig": {
                "maxOutputTokens": request.max_tokens.unwrap_or(self.config.max_tokens),
                "temperature": request.temperature.unwrap_or(self.config.temperature),
            },
        })
    }
}

/// Finish reasons that mean the answer was withheld rather than finished.
const BLOCKED: [&str; 6] = [
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
];

/// One `GenerateContentResponse` (whole, or one event of a stream) → its text and usage.
fn response_pieces(response: &Value) -> Result<Vec<Piece>, GenerateError> {
    if let Some(reason) = response["promptFeedback"]["blockReason"].as_str() {
        return Err(GenerateError::Refused(format!(
            "Gemini blocked the prompt ({reason})"
        )));
    }
    let mut pieces = Vec::new();
    if let Some(candidate) = response["candidates"].get(0) {
        if let Some(reason) = candidate["finishReason"].as_str()
            && BLOCKED.contains(&reason)
        {
            return Err(GenerateError::Refused(format!(
                "Gemini withheld the answer ({reason})"
            )));
        }
        let text: String = candidate["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
            // A thinking model's thoughts are not the answer.
            .filter(|part| part["thought"] != true)
            .filter_map(|part| part["text"].as_str())
            .collect();
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
    }
    let metadata = &response["usageMetadata"];
    if let Some(prompt) = metadata["promptTokenCount"].as_u64() {
        pieces.push(Piece::Usage(Usage {
            prompt_tokens: prompt as u32,
            completion_tokens: metadata["candidatesTokenCount"].as_u64().unwrap_or(0) as u32,
        }));
    }
    Ok(pieces)
}

/// One event of `streamGenerateContent?alt=sse`: a `GenerateContentResponse` of its own.
fn event_pieces(data: &str) -> Result<Vec<Piece>, GenerateError> {
    let event: Value =
        serde_json::from_str(data).map_err(|e| malformed(format_args!("{e}: {data}")))?;
    response_pieces(&event)
}

fn malformed(what: impl std::fmt::Display) -> GenerateError {
    GenerateError::Service(format!(
        "{GENERATE_SERVICE} sent an unexpected answer: {what}"
    ))
}

impl Generator for GeminiGenerator {
    fn id(&self) -> &str {
        &self.id
    }

    fn generate(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<Generation, GenerateError>> {
        Box::pin(async move {
            let response = self
                .whole
                .post_json(&self.body(&request))
                .await
                .map_err(llm::generate_error)?;
            if response["candidates"].get(0).is_none()
                && response["promptFeedback"]["blockReason"].is_null()
            {
                return Err(malformed("no candidates"));
            }
            let mut generation = Generation {
                text: String::new(),
                usage: Usage::default(),
            };
            for piece in response_pieces(&response)? {
                match piece {
                    Piece::Text(text) => generation.text.push_str(&text),
                    Piece::Usage(usage) => generation.usage = usage,
                }
            }
            Ok(generation)
        })
    }

    fn stream(&self, request: GenerateRequest) -> BoxStream<'_, Result<Piece, GenerateError>> {
        futures::stream::once(async move {
            self.streamed
                .post(&self.body(&request))
                .await
                .map_err(llm::generate_error)
        })
        .flat_map(|sent| llm::pieces(sent, GENERATE_SERVICE, event_pieces))
        .boxed()
    }
}
