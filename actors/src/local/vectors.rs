//! [`EmbeddedStore`]: the in-process vector store — the default when no ChromaDB is configured.
//!
//! Search runs in memory: a dense scan and an inverted index scored with BM25 (`super::lexical`,
//! the same index the `LexicalIndex` port's embedded default uses, ranking as Redis does).
//! The dense scan reads int8 copies of the vectors (a quarter of the memory traffic of f32),
//! split across cores, then rescores the best candidates exactly in f32 — exact search in
//! practice, linear in the number of chunks: a few milliseconds at 100k chunks; past a few
//! hundred thousand per collection, use ChromaDB (HNSW).
//!
//! Durability, per collection under `{data_dir}/collections/{name}/`:
//! - `meta.json`: the embedder and dimension that built it (written to a temp file, renamed);
//! - `log.bin`: every write appended as a frame `[len u32][crc32 u32][postcard payload]` and
//!   fsynced before the write is acknowledged;
//! - `snapshot.bin`: the live chunks, in the same frames, written to a temp file, fsynced and
//!   renamed over the old one when the log outgrows it; the log is truncated afterwards.
//!
//! A crash can only tear the last frame of the log: loading stops at the first frame whose length
//! or checksum is wrong and truncates the log there. Replaying a log over a snapshot that already
//! holds its writes is harmless (upserts and deletes are idempotent), so a crash between the
//! snapshot's rename and the log's truncation loses nothing either.
//!
//! Size: one file on purpose. The collection type, its log and snapshot frames and its scan are one
//! set of invariants (what is in memory is exactly what replaying the files yields) and change
//! together.

use std::collections::{BinaryHeap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::lexical::Index;
use crate::lexical;
use crate::ports::{
    ChunkRecord, CollectionInfo, CollectionSpec, Filter, LexicalDoc, NewChunk, Ranked, StoreError,
    VectorStore, Vocabulary, validate_collection_name,
};

/// Compact when the log is bigger than this and than the snapshot.
const COMPACT_LOG_BYTES: u64 = 32 << 20;
/// Chunks per snapshot frame.
const SNAPSHOT_FRAME_CHUNKS: usize = 1000;
/// 2: chunk records carry a locator and a file name. Format 1 collections are read and
/// rewritten as format 2 when they are opened.
const FORMAT: u32 = 2;

pub struct EmbeddedStore {
    root: PathBuf,
    /// Log size that triggers a compaction.
    compact_bytes: u64,
    /// Collection map; each collection has its own lock so one big write doesn't stall
    /// searches on the others.
    collections: RwLock<HashMap<String, Arc<RwLock<Collection>>>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    format: u32,
    name: String,
    embedder: String,
    dimension: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredChunk {
    record: ChunkRecord,
    embedding: Vec<f32>,
}

#[derive(Debug, Serialize, Deserialize)]
enum LogOp {
    Upsert(Vec<StoredChunk>),
    Delete(Vec<String>),
}

/// Format 1's frames: postcard is not self-describing, so the old layout is spelled out.
mod v1 {
    use serde::Deserialize;

    use crate::ports::ChunkRecord;

    #[derive(Deserialize)]
    pub(super) struct Record {
        id: String,
        text: String,
        source_url: String,
        title: String,
        heading: String,
        chunk_index: u32,
        content_hash: String,
        fetched_at: u64,
        crawl_id: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct Stored {
        record: Record,
        embedding: Vec<f32>,
    }

    #[derive(Deserialize)]
    pub(super) enum LogOp {
        Upsert(Vec<Stored>),
        Delete(Vec<String>),
    }

    impl From<LogOp> for super::LogOp {
        fn from(op: LogOp) -> Self {
            match op {
                LogOp::Delete(ids) => super::LogOp::Delete(ids),
                LogOp::Upsert(chunks) => super::LogOp::Upsert(
                    chunks
                        .into_iter()
                        .map(
                            |Stored {
                                 record: r,
                                 embedding,
                             }| super::StoredChunk {
                                record: ChunkRecord {
                                    id: r.id,
                                    text: r.text,
                                    source_url: r.source_url,
                                    title: r.title,
                                    heading: r.heading,
                                    chunk_index: r.chunk_index,
                                    content_hash: r.content_hash,
                                    fetched_at: r.fetched_at,
                                    crawl_id: r.crawl_id,
                                    locator: None,
                                    file_name: None,
                                },
                                embedding,
                            },
                        )
                        .collect(),
                ),
            }
        }
    }
}

struct Collection {
    compact_bytes: u64,
    name: String,
    spec: CollectionSpec,
    dir: PathBuf,
    /// `None` for deleted slots (reclaimed at compaction).
    records: Vec<Option<ChunkRecord>>,
    /// Whether each slot is live: the scan reads this, not the (large) records.
    alive: Vec<bool>,
    /// Slot-major: the vector of slot `i` is `vectors[i*dim..(i+1)*dim]`.
    vectors: Vec<f32>,
    /// The same vectors as int8, each scaled by its own `scales[i]`, for the coarse scan.
    quantized: Vec<i8>,
    scales: Vec<f32>,
    by_id: HashMap<String, usize>,
    /// BM25 over the live chunks, by id. Weights are fixed when a chunk is written, so a restart
    /// (which indexes the snapshot a frame at a time) may move scores by a rounding's worth.
    lexical: Index,
    live: u64,
    log: File,
    log_bytes: u64,
    snapshot_bytes: u64,
}

fn io_error(context: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{context} {}: {e}", path.display()))
}

impl EmbeddedStore {
    /// Opens (or creates) the store under `data_dir` and loads every collection.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_compaction(data_dir, COMPACT_LOG_BYTES)
    }

    /// As [`EmbeddedStore::open`], compacting a collection once its log exceeds `compact_bytes`
    /// (and its snapshot).
    pub fn open_with_compaction(data_dir: &Path, compact_bytes: u64) -> Result<Self, StoreError> {
        let root = data_dir.join("collections");
        fs::create_dir_all(&root).map_err(|e| io_error("cannot create", &root, e))?;
        let mut collections = HashMap::new();
        let entries = fs::read_dir(&root).map_err(|e| io_error("cannot read", &root, e))?;
        for entry in entries {
            let dir = entry.map_err(|e| io_error("cannot read", &root, e))?.path();
            if !dir.join("meta.json").is_file() {
                continue; // a half-created or half-deleted collection
            }
            let collection = Collection::load(&dir, compact_bytes)?;
            collections.insert(collection.name.clone(), Arc::new(RwLock::new(collection)));
        }
        Ok(Self {
            root,
            compact_bytes,
            collections: RwLock::new(collections),
        })
    }

    fn get(&self, name: &str) -> Result<Arc<RwLock<Collection>>, StoreError> {
        self.collections
            .read()
            .map_err(|_| poisoned())?
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(name.to_string()))
    }

    /// Runs `work` on the blocking pool: scans and fsyncs must not stall async threads.
    fn blocking<'a, T: Send + 'static>(
        work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        Box::pin(async move {
            tokio::task::spawn_blocking(work)
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))?
        })
    }
}

fn poisoned() -> StoreError {
    StoreError::Backend("a previous write panicked; restart Aurora".to_string())
}

impl VectorStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn create_collection<'a>(
        &'a self,
        name: &'a str,
        spec: &'a CollectionSpec,
    ) -> BoxFuture<'a, Result<CollectionInfo, StoreError>> {
        Box::pin(async move {
            validate_collection_name(name)?;
            let mut collections = self.collections.write().map_err(|_| poisoned())?;
            if collections.contains_key(name) {
                return Err(StoreError::AlreadyExists(name.to_string()));
            }
            let collection =
                Collection::create(&self.root.join(name), name, spec, self.compact_bytes)?;
            let info = collection.info();
            collections.insert(name.to_string(), Arc::new(RwLock::new(collection)));
            Ok(info)
        })
    }

    fn collection<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<CollectionInfo>, StoreError>> {
        Box::pin(async move {
            match self.get(name) {
                Ok(c) => Ok(Some(c.read().map_err(|_| poisoned())?.info())),
                Err(StoreError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn spec<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<CollectionSpec>, StoreError>> {
        Box::pin(async move {
            match self.get(name) {
                Ok(c) => Ok(Some(c.read().map_err(|_| poisoned())?.spec.clone())),
                Err(StoreError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn list_collections(&self) -> BoxFuture<'_, Result<Vec<CollectionInfo>, StoreError>> {
        Box::pin(async move {
            let collections = self.collections.read().map_err(|_| poisoned())?;
            let mut infos = collections
                .values()
                .map(|c| c.read().map(|c| c.info()).map_err(|_| poisoned()))
                .collect::<Result<Vec<_>, _>>()?;
            infos.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(infos)
        })
    }

    fn delete_collection<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let Some(collection) = self
                .collections
                .write()
                .map_err(|_| poisoned())?
                .remove(name)
            else {
                return Ok(false);
            };
            let dir = collection.read().map_err(|_| poisoned())?.dir.clone();
            Self::blocking(move || {
                // Remove meta.json first: without it a half-deleted folder is never loaded.
                let meta = dir.join("meta.json");
                fs::remove_file(&meta).map_err(|e| io_error("cannot delete", &meta, e))?;
                fs::remove_dir_all(&dir).map_err(|e| io_error("cannot delete", &dir, e))?;
                Ok(true)
            })
            .await
        })
    }

    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        chunks: Vec<NewChunk>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let collection = self.get(collection);
        Self::blocking(move || {
            let collection = collection?;
            let mut collection = collection.write().map_err(|_| poisoned())?;
            let dimension = collection.spec.dimension;
            if let Some(bad) = chunks.iter().find(|c| c.embedding.len() != dimension) {
                return Err(StoreError::Backend(format!(
                    "chunk `{}` has a {}-dimensional vector; collection `{}` holds {dimension}",
                    bad.record.id,
                    bad.embedding.len(),
                    collection.name
                )));
            }
            let stored: Vec<StoredChunk> = chunks
                .into_iter()
                .map(|c| StoredChunk {
                    record: c.record,
                    embedding: c.embedding,
                })
                .collect();
            collection.append(&LogOp::Upsert(stored))
        })
    }

    fn delete<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let collection = self.get(collection);
        let filter = filter.clone();
        Self::blocking(move || {
            let collection = collection?;
            let mut collection = collection.write().map_err(|_| poisoned())?;
            let ids: Vec<String> = collection
                .records
                .iter()
                .flatten()
                .filter(|r| filter.matches(r))
                .map(|r| r.id.clone())
                .collect();
            let n = ids.len() as u64;
            if n > 0 {
                collection.append(&LogOp::Delete(ids))?;
            }
            Ok(n)
        })
    }

    fn find<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ChunkRecord>, StoreError>> {
        let collection = self.get(collection);
        let filter = filter.clone();
        Self::blocking(move || {
            let collection = collection?;
            let collection = collection.read().map_err(|_| poisoned())?;
            Ok(collection
                .records
                .iter()
                .flatten()
                .filter(|r| filter.matches(r))
                .take(limit)
                .cloned()
                .collect())
        })
    }

    fn get<'a>(
        &'a self,
        collection: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<ChunkRecord>, StoreError>> {
        Box::pin(async move {
            let collection = self.get(collection)?;
            let collection = collection.read().map_err(|_| poisoned())?;
            Ok(ids
                .iter()
                .filter_map(|id| collection.records[*collection.by_id.get(id)?].clone())
                .collect())
        })
    }

    fn dense_rank<'a>(
        &'a self,
        collection: &'a str,
        vector: &'a [f32],
        k: usize,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StoreError>> {
        let collection = self.get(collection);
        let (vector, filter) = (vector.to_vec(), filter.clone());
        Self::blocking(move || {
            let collection = collection?;
            let collection = collection.read().map_err(|_| poisoned())?;
            collection.dense(&vector, k, &filter)
        })
    }

    fn lexical_rank<'a>(
        &'a self,
        collection: &'a str,
        query: &'a str,
        k: usize,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StoreError>> {
        let collection = self.get(collection);
        let (query, filter) = (query.to_string(), filter.clone());
        Self::blocking(move || {
            let collection = collection?;
            let collection = collection.read().map_err(|_| poisoned())?;
            Ok(collection.lexical(&query, k, &filter))
        })
    }

    fn vocabulary<'a>(
        &'a self,
        collection: &'a str,
        terms: &'a [u32],
    ) -> BoxFuture<'a, Result<Vocabulary, StoreError>> {
        let collection = self.get(collection);
        let terms = terms.to_vec();
        Self::blocking(move || {
            let collection = collection?;
            let collection = collection.read().map_err(|_| poisoned())?;
            Ok(collection.lexical.vocabulary(&terms))
        })
    }
}

impl Collection {
    fn create(
        dir: &Path,
        name: &str,
        spec: &CollectionSpec,
        compact_bytes: u64,
    ) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
        let meta = Meta {
            format: FORMAT,
            name: name.to_string(),
            embedder: spec.embedder.clone(),
            dimension: spec.dimension,
        };
        let json =
            serde_json::to_vec_pretty(&meta).map_err(|e| io_error("cannot encode", dir, e))?;
        write_atomically(&dir.join("meta.json"), &json)?;
        Collection::load(dir, compact_bytes)
    }

    fn load(dir: &Path, compact_bytes: u64) -> Result<Self, StoreError> {
        let meta_path = dir.join("meta.json");
        let meta: Meta = fs::read(&meta_path)
            .map_err(|e| io_error("cannot read", &meta_path, e))
            .and_then(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| io_error("cannot parse", &meta_path, e))
            })?;
        if meta.format != FORMAT && meta.format != 1 {
            return Err(io_error(
                "unsupported format in",
                &meta_path,
                format!("{} (this Aurora reads {FORMAT})", meta.format),
            ));
        }
        let log_path = dir.join("log.bin");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| io_error("cannot open", &log_path, e))?;
        let mut collection = Collection {
            compact_bytes,
            name: meta.name,
            spec: CollectionSpec {
                embedder: meta.embedder,
                dimension: meta.dimension,
            },
            dir: dir.to_path_buf(),
            records: Vec::new(),
            alive: Vec::new(),
            vectors: Vec::new(),
            quantized: Vec::new(),
            scales: Vec::new(),
            by_id: HashMap::new(),
            lexical: Index::default(),
            live: 0,
            log,
            log_bytes: 0,
            snapshot_bytes: 0,
        };
        let snapshot = dir.join("snapshot.bin");
        if snapshot.is_file() {
            let (ops, bytes, torn) = read_frames(&snapshot, meta.format)?;
            if torn {
                // The snapshot is only ever renamed into place whole.
                return Err(io_error("corrupt", &snapshot, "bad frame"));
            }
            collection.snapshot_bytes = bytes;
            ops.into_iter().for_each(|op| collection.apply(op));
        }
        let (ops, good_bytes, torn) = read_frames(&log_path, meta.format)?;
        if torn {
            tracing::warn!(log = %log_path.display(), kept_bytes = good_bytes,
                "cutting a torn write off the end of the log (crash during a write)");
            collection
                .log
                .set_len(good_bytes)
                .and_then(|()| collection.log.sync_all())
                .map_err(|e| io_error("cannot repair", &log_path, e))?;
        }
        collection.log_bytes = good_bytes;
        ops.into_iter().for_each(|op| collection.apply(op));
        if meta.format != FORMAT {
            // Rewrite everything in this format before anything is appended in it.
            collection.compact()?;
            let meta = Meta {
                format: FORMAT,
                name: collection.name.clone(),
                embedder: collection.spec.embedder.clone(),
                dimension: collection.spec.dimension,
            };
            let json = serde_json::to_vec_pretty(&meta)
                .map_err(|e| io_error("cannot encode", &meta_path, e))?;
            write_atomically(&meta_path, &json)?;
            tracing::info!(collection = %collection.name, from = 1, to = FORMAT,
                "embedded collection migrated");
        }
        Ok(collection)
    }

    fn info(&self) -> CollectionInfo {
        CollectionInfo {
            name: self.name.clone(),
            spec: self.spec.clone(),
            chunks: self.live,
        }
    }

    /// Durably logs `op`, then applies it in memory.
    fn append(&mut self, op: &LogOp) -> Result<(), StoreError> {
        let frame = encode_frame(op)?;
        let path = self.dir.join("log.bin");
        self.log
            .write_all(&frame)
            .and_then(|()| self.log.sync_data())
            .map_err(|e| io_error("cannot write", &path, e))?;
        self.log_bytes += frame.len() as u64;
        self.apply_ref(op);
        if self.log_bytes > self.compact_bytes && self.log_bytes > self.snapshot_bytes {
            self.compact()?;
        }
        Ok(())
    }

    fn apply(&mut self, op: LogOp) {
        self.apply_ref(&op);
    }

    fn apply_ref(&mut self, op: &LogOp) {
        match op {
            LogOp::Upsert(chunks) => {
                let docs: Vec<LexicalDoc> = chunks
                    .iter()
                    .map(|c| LexicalDoc::chunk(&c.record))
                    .collect();
                chunks
                    .iter()
                    .for_each(|c| self.insert(c.record.clone(), &c.embedding));
                // One write, one average: as the Redis index weighs an upsert.
                self.lexical.index(&docs);
            }
            LogOp::Delete(ids) => ids.iter().for_each(|id| self.remove(id)),
        }
    }

    /// The chunk and its vectors (the caller indexes its words).
    fn insert(&mut self, record: ChunkRecord, embedding: &[f32]) {
        self.remove_slot(&record.id);
        let slot = self.records.len();
        self.vectors.extend_from_slice(embedding);
        let (quantized, scale) = quantize(embedding);
        self.quantized.extend(quantized);
        self.scales.push(scale);
        self.by_id.insert(record.id.clone(), slot);
        self.records.push(Some(record));
        self.alive.push(true);
        self.live += 1;
    }

    fn remove(&mut self, id: &str) {
        self.remove_slot(id);
        self.lexical.remove(id);
    }

    /// Frees the chunk's slot (the lexical index is the caller's business).
    fn remove_slot(&mut self, id: &str) {
        let Some(slot) = self.by_id.remove(id) else {
            return;
        };
        self.alive[slot] = false;
        if self.records[slot].take().is_some() {
            self.live -= 1;
        }
    }

    /// Rewrites the live chunks as the new snapshot and empties the log.
    fn compact(&mut self) -> Result<(), StoreError> {
        let dim = self.spec.dimension;
        let live: Vec<(ChunkRecord, Vec<f32>)> = self
            .records
            .iter()
            .enumerate()
            .filter_map(|(slot, r)| {
                let vector = self.vectors[slot * dim..(slot + 1) * dim].to_vec();
                r.clone().map(|r| (r, vector))
            })
            .collect();
        let mut bytes = Vec::new();
        for batch in live.chunks(SNAPSHOT_FRAME_CHUNKS) {
            let op = LogOp::Upsert(
                batch
                    .iter()
                    .map(|(record, embedding)| StoredChunk {
                        record: record.clone(),
                        embedding: embedding.clone(),
                    })
                    .collect(),
            );
            bytes.extend(encode_frame(&op)?);
        }
        let snapshot = self.dir.join("snapshot.bin");
        write_atomically(&snapshot, &bytes)?;
        let log = self.dir.join("log.bin");
        self.log
            .set_len(0)
            .and_then(|()| self.log.sync_all())
            .map_err(|e| io_error("cannot truncate", &log, e))?;
        self.snapshot_bytes = bytes.len() as u64;
        self.log_bytes = 0;
        // Rebuild without the deleted slots. The lexical index is by id, not slot: it moves over
        // as it is, weights and all.
        let (spec, dir, name) = (self.spec.clone(), self.dir.clone(), self.name.clone());
        let log_file = self
            .log
            .try_clone()
            .map_err(|e| io_error("cannot reopen", &log, e))?;
        let mut fresh = Collection {
            compact_bytes: self.compact_bytes,
            name,
            spec,
            dir,
            records: Vec::with_capacity(live.len()),
            alive: Vec::with_capacity(live.len()),
            vectors: Vec::with_capacity(live.len() * dim),
            quantized: Vec::with_capacity(live.len() * dim),
            scales: Vec::with_capacity(live.len()),
            by_id: HashMap::with_capacity(live.len()),
            lexical: std::mem::take(&mut self.lexical),
            live: 0,
            log: log_file,
            log_bytes: 0,
            snapshot_bytes: self.snapshot_bytes,
        };
        for (record, vector) in live {
            fresh.insert(record, &vector);
        }
        *self = fresh;
        tracing::info!(collection = %self.name, chunks = self.live, bytes = self.snapshot_bytes,
            "embedded collection compacted");
        Ok(())
    }

    fn dense(&self, query: &[f32], k: usize, filter: &Filter) -> Result<Vec<Ranked>, StoreError> {
        let dim = self.spec.dimension;
        if query.len() != dim {
            return Err(StoreError::Backend(format!(
                "query vector has {} dimensions; collection `{}` holds {dim}",
                query.len(),
                self.name
            )));
        }
        if k == 0 {
            return Ok(Vec::new());
        }
        // Coarse pass over int8 vectors, in parallel stripes; keep a generous shortlist.
        let shortlist = (k * 8).max(64);
        let (query_q, query_scale) = quantize(query);
        let slots = self.records.len();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(slots / PARALLEL_SCAN_MIN + 1);
        let stripe = slots.div_ceil(threads.max(1)).max(1);
        let scan = |range: std::ops::Range<usize>| {
            let mut best = TopK::new(shortlist);
            for slot in range {
                if !self.alive[slot] {
                    continue;
                }
                if !filter.all.is_empty()
                    && !self.records[slot]
                        .as_ref()
                        .is_some_and(|r| filter.matches(r))
                {
                    continue;
                }
                let coarse = dot_i8(&self.quantized[slot * dim..(slot + 1) * dim], &query_q) as f32
                    * self.scales[slot]
                    * query_scale;
                best.push(coarse, slot);
            }
            best.into_sorted()
        };
        let candidates: Vec<(f32, usize)> = if threads <= 1 {
            scan(0..slots)
        } else {
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..slots)
                    .step_by(stripe)
                    .map(|start| {
                        let scan = &scan;
                        scope.spawn(move || scan(start..(start + stripe).min(slots)))
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap_or_default())
                    .collect()
            })
        };
        // Exact rescoring of the shortlist.
        let mut best = TopK::new(k);
        for (_, slot) in candidates {
            best.push(
                dot(&self.vectors[slot * dim..(slot + 1) * dim], query),
                slot,
            );
        }
        Ok(best
            .into_sorted()
            .into_iter()
            .filter_map(|(score, slot)| {
                let id = self.records[slot].as_ref()?.id.clone();
                Some(Ranked { id, score })
            })
            .collect())
    }

    fn lexical(&self, query: &str, k: usize, filter: &Filter) -> Vec<Ranked> {
        let accept = |id: &str| {
            filter.all.is_empty()
                || self
                    .by_id
                    .get(id)
                    .and_then(|&slot| self.records[slot].as_ref())
                    .is_some_and(|r| filter.matches(r))
        };
        self.lexical.search(&lexical::count_terms(query), k, accept)
    }
}

/// Collections smaller than this are scanned on one thread (spawning costs more than it saves).
const PARALLEL_SCAN_MIN: usize = 20_000;

/// Symmetric int8 quantisation with a per-vector scale: `v ≈ q · scale`.
fn quantize(vector: &[f32]) -> (Vec<i8>, f32) {
    let max = vector.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return (vec![0; vector.len()], 0.0);
    }
    let scale = max / 127.0;
    let quantized = vector
        .iter()
        .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (quantized, scale)
}

/// int8 dot product in i32, shaped for the auto-vectoriser (16 lanes, independent sums).
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..16 {
            acc[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    acc.iter().sum::<i32>() + tail
}

/// Dot product written for the auto-vectoriser: eight independent accumulators.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The `k` best (score, slot) pairs seen so far.
struct TopK {
    k: usize,
    /// A min-heap on score (via `Reverse`-like ordering), so the worst is on top.
    heap: BinaryHeap<Scored>,
}

#[derive(PartialEq)]
struct Scored(f32, usize);

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    /// Reversed: the heap keeps the lowest score on top. Ties go to the earlier slot.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    fn push(&mut self, score: f32, slot: usize) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Scored(score, slot));
        } else if self.heap.peek().is_some_and(|worst| score > worst.0) {
            self.heap.pop();
            self.heap.push(Scored(score, slot));
        }
    }

    fn into_sorted(self) -> Vec<(f32, usize)> {
        // Ascending in the reversed order = best first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Scored(score, slot)| (score, slot))
            .collect()
    }
}

fn encode_frame(op: &LogOp) -> Result<Vec<u8>, StoreError> {
    let payload =
        postcard::to_allocvec(op).map_err(|e| StoreError::Backend(format!("encoding: {e}")))?;
    let mut frame = Vec::with_capacity(payload.len() + 8);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Every whole, intact frame; the byte length they cover; whether a damaged tail followed.
fn read_frames(path: &Path, format: u32) -> Result<(Vec<LogOp>, u64, bool), StoreError> {
    let file = File::open(path).map_err(|e| io_error("cannot open", path, e))?;
    let total = file
        .metadata()
        .map_err(|e| io_error("cannot stat", path, e))?
        .len();
    let mut reader = BufReader::new(file);
    let (mut ops, mut offset) = (Vec::new(), 0u64);
    loop {
        let mut header = [0u8; 8];
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok((ops, offset, offset != total));
            }
            Err(e) => return Err(io_error("cannot read", path, e)),
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as u64;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if offset + 8 + len > total {
            return Ok((ops, offset, true));
        }
        let mut payload = vec![0u8; len as usize];
        reader
            .read_exact(&mut payload)
            .map_err(|e| io_error("cannot read", path, e))?;
        if crc32fast::hash(&payload) != crc {
            return Ok((ops, offset, true));
        }
        let op = match format {
            1 => postcard::from_bytes::<v1::LogOp>(&payload).map(LogOp::from),
            _ => postcard::from_bytes::<LogOp>(&payload),
        };
        match op {
            Ok(op) => ops.push(op),
            Err(_) => return Ok((ops, offset, true)),
        }
        offset += 8 + len;
    }
}

/// Writes `bytes` to a temp file, fsyncs it, renames it over `path`, and fsyncs the folder.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut file =
        BufWriter::new(File::create(&tmp).map_err(|e| io_error("cannot create", &tmp, e))?);
    file.write_all(bytes)
        .and_then(|()| file.flush())
        .map_err(|e| io_error("cannot write", &tmp, e))?;
    file.get_ref()
        .sync_all()
        .map_err(|e| io_error("cannot sync", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_error("cannot rename", &tmp, e))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("cannot sync", dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_best_in_order() {
        let mut top = TopK::new(3);
        for (score, slot) in [(0.1, 0), (0.9, 1), (0.5, 2), (0.7, 3), (0.2, 4)] {
            top.push(score, slot);
        }
        assert_eq!(top.into_sorted(), vec![(0.9, 1), (0.7, 3), (0.5, 2)]);
        let mut none = TopK::new(0);
        none.push(1.0, 0);
        assert!(none.into_sorted().is_empty());
    }

    #[test]
    fn quantised_dot_products_track_the_exact_ones() {
        let unit = |v: Vec<f32>| {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
        };
        let a = unit((0..384).map(|i| (i as f32 * 0.37).sin()).collect());
        let b = unit((0..384).map(|i| (i as f32 * 0.11).cos() + 0.3).collect());
        let ((qa, sa), (qb, sb)) = (quantize(&a), quantize(&b));
        let coarse = dot_i8(&qa, &qb) as f32 * sa * sb;
        let exact = dot(&a, &b);
        assert!((coarse - exact).abs() < 0.005, "{coarse} vs {exact}");
        assert_eq!(quantize(&[0.0, 0.0]), (vec![0, 0], 0.0));
    }

    #[test]
    fn dot_matches_the_naive_sum() {
        let a: Vec<f32> = (0..387).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..387).map(|i| (i as f32 * 0.11).cos()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }
}
