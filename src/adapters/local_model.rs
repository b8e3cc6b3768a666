//! The built-in embedding model: all-MiniLM-L6-v2 (sentence-transformers) run in pure Rust with
//! candle — BERT, mean pooling over the attention mask, L2 normalisation — exactly what
//! sentence-transformers computes (checked against an independent reference in the tests).
//!
//! Inference is CPU work: it runs on the blocking pool, one batch at a time (candle's matrix
//! multiplications already use every core), with texts sorted by length so a batch pads little.
//!
//! The weights (90 MB) load on first use and are shared by every instance in the process that
//! names the same folder.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use aurora_actors::ports::{EmbedError, EmbedKind, Embedder};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use futures::future::BoxFuture;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
use tokio::sync::Semaphore;

/// sentence-transformers' `max_seq_length` for this model (the tokenizer file says 128).
const MAX_TOKENS: usize = 256;
const DIMENSION: usize = 384;

pub struct MiniLm {
    dir: PathBuf,
    inner: tokio::sync::OnceCell<Arc<Inner>>,
    batch_size: usize,
    /// One batch at a time: a batch already keeps every core busy.
    running: Semaphore,
}

/// Loaded models by folder, so instances share one copy of the weights.
static LOADED: Mutex<Vec<(PathBuf, Weak<Inner>)>> = Mutex::new(Vec::new());

struct Inner {
    model: BertModel,
    tokenizer: Tokenizer,
}

impl MiniLm {
    /// The model in `dir`, loaded on first use. Fails at once if its files are missing.
    pub fn new(dir: &Path, batch_size: usize) -> Result<Self, EmbedError> {
        for name in FILES {
            model_file(dir, name)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            inner: tokio::sync::OnceCell::new(),
            batch_size: batch_size.max(1),
            running: Semaphore::new(1),
        })
    }

    /// The model in `dir`, loaded now.
    pub fn load(dir: &Path, batch_size: usize) -> Result<Self, EmbedError> {
        let model = Self::new(dir, batch_size)?;
        let inner = Inner::shared(dir)?;
        let _ = model.inner.set(inner);
        Ok(model)
    }

    async fn inner(&self) -> Result<Arc<Inner>, EmbedError> {
        self.inner
            .get_or_try_init(|| async {
                let dir = self.dir.clone();
                tokio::task::spawn_blocking(move || Inner::shared(&dir))
                    .await
                    .map_err(|e| EmbedError::Failed(e.to_string()))?
            })
            .await
            .cloned()
    }
}

const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

fn model_file(dir: &Path, name: &str) -> Result<PathBuf, EmbedError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        // One line: it is what `aurora serve` prints before it exits.
        Err(EmbedError::ModelMissing(format!(
            "the embedding model is missing ({} not found): run scripts/model, or point \
             embedding.model_dir at a copy of all-MiniLM-L6-v2",
            path.display()
        )))
    }
}

impl Inner {
    /// The weights for `dir`, loaded once per process while anyone holds them.
    fn shared(dir: &Path) -> Result<Arc<Inner>, EmbedError> {
        let mut loaded = LOADED
            .lock()
            .map_err(|_| EmbedError::Failed("model cache poisoned".into()))?;
        loaded.retain(|(_, weak)| weak.strong_count() > 0);
        if let Some(inner) = loaded
            .iter()
            .find(|(path, _)| path == dir)
            .and_then(|(_, weak)| weak.upgrade())
        {
            return Ok(inner);
        }
        let inner = Arc::new(Inner::load(dir)?);
        loaded.push((dir.to_path_buf(), Arc::downgrade(&inner)));
        Ok(inner)
    }

    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    fn load(dir: &Path) -> Result<Self, EmbedError> {
        let file = |name: &str| model_file(dir, name);
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            EmbedError::Failed(format!("loading {what} from {}: {e}", dir.display()))
        };
        let config: Config = std::fs::read_to_string(file("config.json")?)
            .map_err(|e| failed("config.json", &e))
            .and_then(|text| serde_json::from_str(&text).map_err(|e| failed("config.json", &e)))?;
        let mut tokenizer = Tokenizer::from_file(file("tokenizer.json")?)
            .map_err(|e| failed("tokenizer.json", &e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| failed("tokenizer.json", &e))?;
        let weights = std::fs::read(file("model.safetensors")?)
            .map_err(|e| failed("model.safetensors", &e))?;
        let vars = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| failed("model.safetensors", &e))?;
        let model = BertModel::load(vars, &config).map_err(|e| failed("the model", &e))?;
        Ok(Inner { model, tokenizer })
    }

    /// Embeds one batch (already short enough to pad together).
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let fail = |e: &dyn std::fmt::Display| EmbedError::Failed(e.to_string());
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| fail(&e))?;
        let rows = encodings.len();
        let width = encodings.first().map_or(0, |e| e.get_ids().len());
        let flat = |pick: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings
                .iter()
                .flat_map(|e| pick(e).iter().copied())
                .collect()
        };
        let ids = Tensor::from_vec(flat(|e| e.get_ids()), (rows, width), &Device::Cpu)
            .map_err(|e| fail(&e))?;
        let mask = Tensor::from_vec(
            flat(|e| e.get_attention_mask()),
            (rows, width),
            &Device::Cpu,
        )
        .map_err(|e| fail(&e))?;
        let types = ids.zeros_like().map_err(|e| fail(&e))?;
        let hidden = self
            .model
            .forward(&ids, &types, Some(&mask))
            .map_err(|e| fail(&e))?;
        // Mean over real tokens only, then unit length.
        let mask = mask
            .to_dtype(DType::F32)
            .and_then(|m| m.unsqueeze(2))
            .map_err(|e| fail(&e))?;
        let pooled = hidden
            .broadcast_mul(&mask)
            .and_then(|h| h.sum(1))
            .and_then(|sum| sum.broadcast_div(&mask.sum(1)?))
            .map_err(|e| fail(&e))?;
        let normalised = pooled
            .sqr()
            .and_then(|sq| sq.sum_keepdim(1))
            .and_then(|n| n.sqrt())
            .and_then(|norm| pooled.broadcast_div(&norm))
            .map_err(|e| fail(&e))?;
        normalised.to_vec2::<f32>().map_err(|e| fail(&e))
    }
}

/// Every vocabulary token's vector — `[CLS] token [SEP]` through the model, mean-pooled — the raw
/// material of the static tier (`adapters::static_model::distill`). `progress(done, total)` is
/// called after each batch.
pub fn token_vectors(
    dir: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<(Vec<Vec<f32>>, Tokenizer), EmbedError> {
    let inner = Inner::load(dir)?;
    let tokenizer = inner.tokenizer.clone();
    let fail = |e: &dyn std::fmt::Display| EmbedError::Failed(e.to_string());
    let special = |t: &str| {
        tokenizer
            .token_to_id(t)
            .ok_or_else(|| EmbedError::Failed(format!("the tokenizer has no {t} token")))
    };
    let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
    let vocabulary = tokenizer.get_vocab_size(false);
    let mut vectors = Vec::with_capacity(vocabulary);
    for start in (0..vocabulary).step_by(512) {
        let ids: Vec<u32> = (start..(start + 512).min(vocabulary))
            .flat_map(|t| [cls, t as u32, sep])
            .collect();
        let rows = ids.len() / 3;
        let ids = Tensor::from_vec(ids, (rows, 3), &Device::Cpu).map_err(|e| fail(&e))?;
        let ones = ids.ones_like().map_err(|e| fail(&e))?;
        let types = ids.zeros_like().map_err(|e| fail(&e))?;
        let hidden = inner
            .model
            .forward(&ids, &types, Some(&ones))
            .map_err(|e| fail(&e))?;
        let pooled = hidden.mean(1).map_err(|e| fail(&e))?;
        vectors.extend(pooled.to_vec2::<f32>().map_err(|e| fail(&e))?);
        progress(vectors.len(), vocabulary);
    }
    Ok((vectors, tokenizer))
}

impl Embedder for MiniLm {
    fn id(&self) -> &str {
        "minilm-l6-v2"
    }

    fn dimension(&self) -> usize {
        DIMENSION
    }

    /// Symmetric model: queries and documents are embedded alike.
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        _kind: EmbedKind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let _turn = self
                .running
                .acquire()
                .await
                .map_err(|e| EmbedError::Failed(e.to_string()))?;
            let inner = self.inner().await?;
            let texts = texts.to_vec();
            let batch_size = self.batch_size;
            tokio::task::spawn_blocking(move || {
                // Sort by length so each batch pads to a similar width; restore order after.
                let mut order: Vec<usize> = (0..texts.len()).collect();
                order.sort_by_key(|&i| texts[i].len());
                let mut vectors = vec![Vec::new(); texts.len()];
                for chunk in order.chunks(batch_size) {
                    let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
                    for (&i, vector) in chunk.iter().zip(inner.embed_batch(&batch)?) {
                        vectors[i] = vector;
                    }
                }
                Ok(vectors)
            })
            .await
            .map_err(|e| EmbedError::Failed(e.to_string()))?
        })
    }
}
