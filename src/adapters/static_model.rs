//! The fast static tier: a Model2Vec-style table with one vector per vocabulary token, distilled
//! from the built-in model by `aurora model distill`. A text's vector is the mean of its tokens'
//! rows, normalised — a table lookup instead of a transformer, five orders of magnitude faster,
//! for some loss of quality (measured by `scripts/eval`).
//!
//! The folder is Model2Vec's format (`model.safetensors` with an `embeddings` tensor,
//! `tokenizer.json`, `config.json`), so Model2Vec's own tools load it too.

use std::path::Path;

use aurora_actors::ports::{EmbedError, EmbedKind, Embedder};
use candle_core::{DType, Device, Tensor};
use futures::future::BoxFuture;
use tokenizers::Tokenizer;

/// Tokens read per text; Model2Vec truncates long inputs likewise.
const MAX_TOKENS: usize = 512;

pub struct StaticModel {
    /// Row-major `vocabulary × dimension`.
    table: Vec<f32>,
    dimension: usize,
    tokenizer: Tokenizer,
    unknown: Option<u32>,
}

fn failed(what: &str, dir: &Path, e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Failed(format!("{what} {}: {e}", dir.display()))
}

impl StaticModel {
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(EmbedError::ModelMissing(format!(
                "the static model is missing: {} not found. Build it from the built-in model with \
                 `aurora model distill --to {}` (about a minute)",
                weights.display(),
                dir.display()
            )));
        }
        let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
            .map_err(|e| failed("reading", &weights, e))?;
        let embeddings = tensors
            .get("embeddings")
            .ok_or_else(|| failed("no `embeddings` tensor in", &weights, "missing"))?
            .to_dtype(DType::F32)
            .map_err(|e| failed("reading", &weights, e))?;
        let (rows, dimension) = embeddings
            .dims2()
            .map_err(|e| failed("reading", &weights, e))?;
        let table = embeddings
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| failed("reading", &weights, e))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| failed("reading tokenizer.json in", dir, e))?;
        tokenizer.with_padding(None);
        let _ = tokenizer.with_truncation(None);
        if tokenizer.get_vocab_size(false) > rows {
            return Err(failed(
                "the tokenizer is larger than the table in",
                dir,
                rows,
            ));
        }
        let unknown = tokenizer.token_to_id("[UNK]");
        Ok(Self {
            table,
            dimension,
            tokenizer,
            unknown,
        })
    }

    fn vector(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| EmbedError::Failed(e.to_string()))?;
        let mut sum = vec![0.0f32; self.dimension];
        let mut n = 0;
        for &id in encoding.get_ids().iter().take(MAX_TOKENS) {
            if Some(id) == self.unknown {
                continue;
            }
            let row = &self.table[id as usize * self.dimension..(id as usize + 1) * self.dimension];
            sum.iter_mut().zip(row).for_each(|(s, x)| *s += x);
            n += 1;
        }
        if n == 0 {
            return Ok(sum);
        }
        let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            sum.iter_mut().for_each(|x| *x /= norm);
        }
        Ok(sum)
    }
}

impl Embedder for StaticModel {
    fn id(&self) -> &str {
        "static-minilm-l6-v2"
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        _kind: EmbedKind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        // Microseconds per text: not worth a trip to the blocking pool.
        Box::pin(async move { texts.iter().map(|t| self.vector(t)).collect() })
    }
}

/// What `distill` did.
#[derive(Debug, Clone)]
pub struct Distilled {
    pub tokens: usize,
    pub dimension: usize,
    pub bytes: u64,
}

/// Builds the static table from the built-in model in `from`, into `to`: every token through the
/// model, rows centred (the shared component carries no meaning and dominates means of many
/// rows), then scaled by `ln(1 + rank)` — WordPiece vocabularies list frequent tokens first, so
/// frequent tokens weigh less (Model2Vec's "Zipf" weighting).
pub fn distill(
    from: &Path,
    to: &Path,
    progress: impl FnMut(usize, usize),
) -> Result<Distilled, EmbedError> {
    let (mut rows, tokenizer) = super::local_model::token_vectors(from, progress)?;
    let tokens = rows.len();
    let dimension = rows.first().map_or(0, Vec::len);
    let mut mean = vec![0.0f64; dimension];
    for row in &rows {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, x)| *m += f64::from(*x));
    }
    mean.iter_mut().for_each(|m| *m /= tokens.max(1) as f64);
    for (rank, row) in rows.iter_mut().enumerate() {
        let weight = ((1 + rank) as f64).ln();
        row.iter_mut()
            .zip(&mean)
            .for_each(|(x, m)| *x = ((f64::from(*x) - m) * weight) as f32);
    }
    let fail = |e: &dyn std::fmt::Display| failed("writing", to, e);
    std::fs::create_dir_all(to).map_err(|e| fail(&e))?;
    let table =
        Tensor::from_vec(rows.concat(), (tokens, dimension), &Device::Cpu).map_err(|e| fail(&e))?;
    let tensors = std::collections::HashMap::from([("embeddings".to_string(), table)]);
    let weights = to.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &weights).map_err(|e| fail(&e))?;
    let mut tokenizer = tokenizer;
    tokenizer.with_padding(None);
    let _ = tokenizer.with_truncation(None);
    tokenizer
        .save(to.join("tokenizer.json"), false)
        .map_err(|e| fail(&e))?;
    let config = serde_json::json!({
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "tokenizer_name": "sentence-transformers/all-MiniLM-L6-v2",
        "apply_pca": null,
        "apply_zipf": true,
        "hidden_dim": dimension,
        "seq_length": 1_000_000,
        "normalize": true,
    });
    std::fs::write(to.join("config.json"), config.to_string()).map_err(|e| fail(&e))?;
    let bytes = std::fs::metadata(&weights).map_err(|e| fail(&e))?.len();
    Ok(Distilled {
        tokens,
        dimension,
        bytes,
    })
}
