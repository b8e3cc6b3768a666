//! The default embedding model: all-MiniLM-L6-v2 with int8 weights, run by ONNX Runtime.
//!
//! The runtime is a shared library loaded when the model is first used (`embedding.onnxruntime`;
//! scripts/model takes it from PyPI's `onnxruntime` wheel, so nothing is downloaded at build
//! time). Its vectors agree with the f32 model's (`local_model`) at cosine ≥ 0.999, but they are
//! not the same vectors, so the model has an id of its own and a collection built with one is
//! never searched with the other.
//!
//! Throughput is the point of this model, so:
//! - texts are tokenised once, sorted by length and cut into batches of similar width, so little
//!   of each batch is padding;
//! - batches run on a pool of sessions with one intra-op thread each, as many as `threads`, in
//!   parallel: for a model this small, whole batches side by side keep the cores busier than one
//!   batch split across them (measured in `benches/embed.rs`);
//! - a query (`EmbedKind::Query`) has a session of its own, so a search never waits behind an
//!   ingest's batches.
//!
//! The weights load on first use; instances that name the same files and threads share them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use aurora_actors::ports::{EmbedError, EmbedKind, Embedder};
use futures::StreamExt;
use futures::future::BoxFuture;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;
use tokenizers::{Encoding, Tokenizer, TruncationParams};
use tokio::sync::Semaphore;
use tracing::Instrument;

/// sentence-transformers' `max_seq_length` for this model (the tokenizer file says 128).
const MAX_TOKENS: usize = 256;
const DIMENSION: usize = 384;
/// Tokens in one batch, padding included: small batches stay in the caches and spread evenly
/// over the sessions (measured in benches/embed.rs: 22 chunks/s at 2048 tokens, 15 unbounded).
const BATCH_TOKENS: usize = 2048;
/// The model file and the tokenizer, in the model folder.
const MODEL_FILE: &str = "model.onnx";
const TOKENIZER_FILE: &str = "tokenizer.json";

/// Where the model and its runtime are, and how hard to run them.
#[derive(Debug, Clone)]
pub struct OnnxConfig {
    /// The ONNX Runtime shared library (`libonnxruntime.so.1.31.1`).
    pub runtime: PathBuf,
    /// Holds `model.onnx` and `tokenizer.json`.
    pub model_dir: PathBuf,
    /// Texts per inference batch.
    pub batch_size: usize,
    /// Batches in flight at once (sessions for documents); 0 = one per core.
    pub threads: usize,
}

pub struct OnnxMiniLm {
    config: OnnxConfig,
    inner: tokio::sync::OnceCell<Arc<Inner>>,
}

/// Loaded models by runtime, folder and thread count, so instances share one copy of the weights.
static LOADED: Mutex<Vec<(LoadedKey, Weak<Inner>)>> = Mutex::new(Vec::new());

/// Runtime library, model folder, document sessions.
type LoadedKey = (PathBuf, PathBuf, usize);

/// ONNX Runtime allows one environment per process, ever (a second `build` fails even after
/// the first is dropped), so the first one is kept for the life of the process, with the
/// library it was loaded from.
static ENVIRONMENT: Mutex<Option<(PathBuf, ort::environment::Environment)>> = Mutex::new(None);

struct Inner {
    tokenizer: Tokenizer,
    documents: Arc<Sessions>,
    queries: Arc<Sessions>,
}

fn failed(what: &str, path: &Path, e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Failed(format!("{what} {}: {e}", path.display()))
}

fn present(path: &Path, what: &str) -> Result<(), EmbedError> {
    if path.is_file() {
        Ok(())
    } else {
        // One line: it is what `aurora serve` prints before it exits.
        Err(EmbedError::ModelMissing(format!(
            "{what} is missing ({} not found): run scripts/model, or choose another \
             embedding.provider",
            path.display()
        )))
    }
}

impl OnnxMiniLm {
    /// The model `config` names, loaded on first use. Fails at once if a file is missing.
    pub fn new(mut config: OnnxConfig) -> Result<Self, EmbedError> {
        present(&config.runtime, "the ONNX Runtime library")?;
        present(
            &config.model_dir.join(MODEL_FILE),
            "the int8 embedding model",
        )?;
        present(
            &config.model_dir.join(TOKENIZER_FILE),
            "the embedding model's tokenizer",
        )?;
        config.batch_size = config.batch_size.max(1);
        if config.threads == 0 {
            config.threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        }
        Ok(Self {
            config,
            inner: tokio::sync::OnceCell::new(),
        })
    }

    /// The model `config` names, loaded now.
    pub fn load(config: OnnxConfig) -> Result<Self, EmbedError> {
        let model = Self::new(config)?;
        let inner = Inner::shared(&model.config)?;
        let _ = model.inner.set(inner);
        Ok(model)
    }

    async fn inner(&self) -> Result<Arc<Inner>, EmbedError> {
        self.inner
            .get_or_try_init(|| async {
                let config = self.config.clone();
                tokio::task::spawn_blocking(move || Inner::shared(&config))
                    .await
                    .map_err(|e| EmbedError::Failed(e.to_string()))?
            })
            .await
            .cloned()
    }
}

/// The process's ONNX Runtime environment, loading the library from `runtime` the first time.
fn environment(runtime: &Path) -> Result<ort::environment::Environment, EmbedError> {
    let mut slot = ENVIRONMENT
        .lock()
        .map_err(|_| EmbedError::Failed("ONNX Runtime environment poisoned".into()))?;
    // An absolute path: ort resolves a relative one against the executable's folder.
    let runtime = std::path::absolute(runtime).map_err(|e| failed("resolving", runtime, e))?;
    if let Some((loaded, environment)) = slot.as_ref() {
        return if loaded == &runtime {
            Ok(environment.clone())
        } else {
            Err(EmbedError::Failed(format!(
                "cannot load ONNX Runtime from {}: this process already runs the one in {}",
                runtime.display(),
                loaded.display()
            )))
        };
    }
    let environment = ort::init_from(&runtime)
        .map_err(|e| failed("loading ONNX Runtime from", &runtime, e))?
        .with_name("aurora")
        .with_telemetry(false)
        .build()
        .map_err(|e| failed("starting ONNX Runtime from", &runtime, e))?;
    *slot = Some((runtime, environment.clone()));
    Ok(environment)
}

impl Inner {
    /// The model for `config`, loaded once per process while anyone holds it.
    fn shared(config: &OnnxConfig) -> Result<Arc<Inner>, EmbedError> {
        let mut loaded = LOADED
            .lock()
            .map_err(|_| EmbedError::Failed("model cache poisoned".into()))?;
        loaded.retain(|(_, weak)| weak.strong_count() > 0);
        let key = (
            config.runtime.clone(),
            config.model_dir.clone(),
            config.threads,
        );
        if let Some(inner) = loaded
            .iter()
            .find(|(loaded, _)| loaded == &key)
            .and_then(|(_, weak)| weak.upgrade())
        {
            return Ok(inner);
        }
        let inner = Arc::new(Inner::load(config)?);
        loaded.push((key, Arc::downgrade(&inner)));
        Ok(inner)
    }

    fn load(config: &OnnxConfig) -> Result<Self, EmbedError> {
        let environment = environment(&config.runtime)?;
        let tokenizer_path = config.model_dir.join(TOKENIZER_FILE);
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| failed("reading", &tokenizer_path, e))?;
        // Each text is tokenised alone; a batch is padded here, to its own width.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| failed("reading", &tokenizer_path, e))?;
        let model_path = config.model_dir.join(MODEL_FILE);
        // Read once, for every session built from it.
        let model = std::fs::read(&model_path).map_err(|e| failed("reading", &model_path, e))?;
        let fail = |e: ort::Error| failed("loading", &model_path, e);
        let session = || -> Result<Session, EmbedError> {
            Session::builder(&environment)
                .map_err(fail)?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(|e| fail(e.into()))?
                .with_intra_threads(1)
                .map_err(|e| fail(e.into()))?
                .with_inter_threads(1)
                .map_err(|e| fail(e.into()))?
                .commit_from_memory(&model)
                .map_err(fail)
        };
        let documents = (0..config.threads)
            .map(|_| session())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Inner {
            tokenizer,
            documents: Sessions::new(documents),
            queries: Sessions::new(vec![session()?]),
        })
    }

    /// Tokenises `texts` and cuts them, shortest first, into batches of similar width: at most
    /// `batch_size` texts and about `BATCH_TOKENS` tokens with padding each.
    fn plan(&self, texts: Vec<String>, batch_size: usize) -> Result<Vec<Batch>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts, true)
            .map_err(|e| EmbedError::Failed(format!("tokenising: {e}")))?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut batches = Vec::new();
        let mut rest = order.as_slice();
        while !rest.is_empty() {
            // Sorted: the last row of a batch is its widest.
            let rows = (1..=rest.len().min(batch_size))
                .take_while(|&rows| {
                    rows == 1 || rows * encodings[rest[rows - 1]].get_ids().len() <= BATCH_TOKENS
                })
                .last()
                .unwrap_or(1);
            let (slots, tail) = rest.split_at(rows);
            let encoded: Vec<&Encoding> = slots.iter().map(|&i| &encodings[i]).collect();
            batches.push(Batch::new(slots.to_vec(), &encoded));
            rest = tail;
        }
        Ok(batches)
    }
}

/// Sessions that run one batch at a time each (`Session::run` needs `&mut`).
struct Sessions {
    /// Idle sessions; holding a permit of `free` guarantees one is here.
    idle: Mutex<Vec<Session>>,
    /// Counts idle sessions, so callers wait without spinning while all are busy.
    free: Arc<Semaphore>,
    size: usize,
}

/// Texts of similar length, tokenised and padded to one width, ready for the model.
struct Batch {
    /// Where each row's vector goes in the caller's order.
    slots: Vec<usize>,
    width: usize,
    ids: Vec<i64>,
    mask: Vec<i64>,
}

impl Batch {
    fn new(slots: Vec<usize>, encodings: &[&Encoding]) -> Self {
        let width = encodings
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0);
        let mut ids = vec![0_i64; encodings.len() * width];
        let mut mask = vec![0_i64; encodings.len() * width];
        for (row, encoding) in encodings.iter().enumerate() {
            let start = row * width;
            for (i, &id) in encoding.get_ids().iter().enumerate() {
                ids[start + i] = i64::from(id);
                mask[start + i] = 1;
            }
        }
        Self {
            slots,
            width,
            ids,
            mask,
        }
    }

    fn rows(&self) -> usize {
        self.slots.len()
    }
}

impl Sessions {
    fn new(sessions: Vec<Session>) -> Arc<Self> {
        let size = sessions.len();
        Arc::new(Self {
            free: Arc::new(Semaphore::new(size)),
            idle: Mutex::new(sessions),
            size,
        })
    }

    /// Runs `batch` on an idle session, waiting for one while all are busy. The session goes
    /// back to the pool when the work ends, even if the caller has stopped waiting.
    async fn run(
        self: &Arc<Self>,
        batch: Batch,
        kind: &'static str,
    ) -> Result<(Batch, Vec<f32>), EmbedError> {
        let permit = self
            .free
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| EmbedError::Failed(e.to_string()))?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut lease = Lease::take(&pool)?;
            let started = std::time::Instant::now();
            let vectors = infer(lease.session()?, &batch)?;
            metrics::histogram!("aurora_embedding_inference_seconds", "kind" => kind)
                .record(started.elapsed().as_secs_f64());
            let real = batch.mask.iter().filter(|&&m| m == 1).count() as u64;
            metrics::counter!("aurora_embedding_tokens_total", "kind" => "text").increment(real);
            metrics::counter!("aurora_embedding_tokens_total", "kind" => "padding")
                .increment(batch.mask.len() as u64 - real);
            Ok((batch, vectors))
        })
        .await
        .map_err(|e| EmbedError::Failed(e.to_string()))?
    }
}

/// A session out of its pool; it goes back when the lease ends, however it ends.
struct Lease<'p> {
    pool: &'p Sessions,
    session: Option<Session>,
}

impl<'p> Lease<'p> {
    fn take(pool: &'p Sessions) -> Result<Self, EmbedError> {
        let session = pool
            .idle
            .lock()
            .map_err(|_| EmbedError::Failed("embedding sessions poisoned".into()))?
            .pop()
            .ok_or_else(|| EmbedError::Failed("no idle embedding session".into()))?;
        Ok(Self {
            pool,
            session: Some(session),
        })
    }

    fn session(&mut self) -> Result<&mut Session, EmbedError> {
        // Present from `take` until `drop`.
        self.session
            .as_mut()
            .ok_or_else(|| EmbedError::Failed("lease without a session".into()))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let (Some(session), Ok(mut idle)) = (self.session.take(), self.pool.idle.lock()) {
            idle.push(session);
        }
    }
}

/// One forward pass: mean of the real tokens' hidden states, scaled to unit length, row after
/// row (`rows × DIMENSION`).
fn infer(session: &mut Session, batch: &Batch) -> Result<Vec<f32>, EmbedError> {
    let fail = |e: ort::Error| EmbedError::Failed(format!("embedding model: {e}"));
    let shape = [batch.rows(), batch.width];
    let types = vec![0_i64; batch.ids.len()];
    let outputs = session
        .run(ort::inputs![
            "input_ids" => TensorRef::from_array_view((shape, batch.ids.as_slice())).map_err(fail)?,
            "attention_mask" => TensorRef::from_array_view((shape, batch.mask.as_slice())).map_err(fail)?,
            "token_type_ids" => TensorRef::from_array_view((shape, types.as_slice())).map_err(fail)?,
        ])
        .map_err(fail)?;
    let (dims, hidden) = outputs[0].try_extract_tensor::<f32>().map_err(fail)?;
    if dims.len() != 3
        || dims[0] as usize != batch.rows()
        || dims[1] as usize != batch.width
        || dims[2] as usize != DIMENSION
    {
        return Err(EmbedError::Failed(format!(
            "embedding model: unexpected output shape {dims:?}"
        )));
    }
    let mut pooled = vec![0_f32; batch.rows() * DIMENSION];
    for (row, out) in pooled.chunks_exact_mut(DIMENSION).enumerate() {
        let mask = &batch.mask[row * batch.width..(row + 1) * batch.width];
        let mut tokens = 0_f32;
        for (position, _) in mask.iter().enumerate().filter(|(_, m)| **m == 1) {
            let start = (row * batch.width + position) * DIMENSION;
            for (o, h) in out.iter_mut().zip(&hidden[start..start + DIMENSION]) {
                *o += h;
            }
            tokens += 1.0;
        }
        // The mean's scale cancels in the normalisation; only the direction matters.
        let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
        if tokens > 0.0 && norm > 0.0 {
            out.iter_mut().for_each(|x| *x /= norm);
        }
    }
    Ok(pooled)
}

impl Embedder for OnnxMiniLm {
    fn id(&self) -> &str {
        "minilm-l6-v2-int8"
    }

    fn dimension(&self) -> usize {
        DIMENSION
    }

    /// Symmetric model: queries and documents are embedded alike, on sessions of their own.
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        kind: EmbedKind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        let span = tracing::debug_span!("embed", texts = texts.len(), kind = ?kind);
        Box::pin(
            async move {
                if texts.is_empty() {
                    return Ok(Vec::new());
                }
                let inner = self.inner().await?;
                let batch_size = self.config.batch_size;
                let batches = {
                    let inner = inner.clone();
                    let texts = texts.to_vec();
                    tokio::task::spawn_blocking(move || inner.plan(texts, batch_size))
                        .await
                        .map_err(|e| EmbedError::Failed(e.to_string()))??
                };
                let (sessions, label) = match kind {
                    EmbedKind::Document => (&inner.documents, "document"),
                    EmbedKind::Query => (&inner.queries, "query"),
                };
                let mut vectors = vec![Vec::new(); texts.len()];
                let mut done = futures::stream::iter(batches)
                    .map(|batch| sessions.run(batch, label))
                    .buffer_unordered(sessions.size);
                while let Some(result) = done.next().await {
                    let (batch, flat) = result?;
                    for (&slot, vector) in batch.slots.iter().zip(flat.chunks_exact(DIMENSION)) {
                        vectors[slot] = vector.to_vec();
                    }
                }
                Ok(vectors)
            }
            .instrument(span),
        )
    }
}
