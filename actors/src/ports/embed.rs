//! Text to vectors (`Embedder`).

use futures::future::BoxFuture;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedError {
    /// The model's files are not where the settings say; the message says how to get them.
    #[error("{0}")]
    ModelMissing(String),
    /// A remote embedding service failed (down, quota, bad key…), with its own words.
    #[error("embedding service: {0}")]
    Service(String),
    #[error("embedding failed: {0}")]
    Failed(String),
}

/// What a text is, for models that embed queries and documents differently (Gemini's task
/// types, instruction-tuned models); symmetric models ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedKind {
    Document,
    Query,
}

/// Turns texts into vectors. Every vector is L2-normalised, so cosine similarity is a dot product.
pub trait Embedder: Send + Sync + 'static {
    /// Names the model and its output, e.g. `minilm-l6-v2`; stored with each collection so
    /// vectors from different models are never mixed.
    fn id(&self) -> &str;
    fn dimension(&self) -> usize;
    /// One vector per text, in order.
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        kind: EmbedKind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;
}
