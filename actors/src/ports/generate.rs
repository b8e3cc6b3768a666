//! Writing answers (`Generator`): numbered sources in, text (whole or streamed) out.

use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

/// A numbered source given to a generator; citations `[n]` refer to `n`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Source {
    pub n: usize,
    pub url: String,
    pub title: String,
    pub heading: String,
    pub text: String,
    /// Where in a document the passage sits (`page 12`, `t=01:23–01:41`).
    pub locator: Option<crate::model::Locator>,
    pub file_name: Option<String>,
}

/// A question to answer from numbered sources. Each backend builds its own prompt (an LLM gets
/// the sources and an instruction to cite them; the extractive answerer reads them directly).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    pub question: String,
    pub sources: Vec<Source>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The answer, citing sources as `[n]`.
    pub text: String,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// The model refused (safety block, content filter), in its own words.
    #[error("the model declined to answer: {0}")]
    Refused(String),
    /// Quota or rate limit; retry after the given time if known.
    #[error("the model's service is rate limited")]
    RateLimited(Option<Duration>),
    #[error("generation service: {0}")]
    Service(String),
}

/// Part of an answer being written: text as it comes, then (if the backend counts) the usage.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Usage(Usage),
}

/// Writes an answer from numbered sources.
pub trait Generator: Send + Sync + 'static {
    /// Names the backend and model, e.g. `extractive` or `gemini:gemini-2.0-flash`.
    fn id(&self) -> &str;

    /// The whole answer at once.
    fn generate(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<Generation, GenerateError>>;

    /// The answer as it is written (an LLM's tokens as they arrive). Dropping the stream stops
    /// the generation. The default writes it whole, then streams it in one piece.
    fn stream(&self, request: GenerateRequest) -> BoxStream<'_, Result<Piece, GenerateError>> {
        Box::pin(
            futures::stream::once(self.generate(request)).flat_map(|generated| {
                let pieces = match generated {
                    Ok(g) => vec![Ok(Piece::Text(g.text)), Ok(Piece::Usage(g.usage))],
                    Err(e) => vec![Err(e)],
                };
                futures::stream::iter(pieces)
            }),
        )
    }
}
