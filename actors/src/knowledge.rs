//! The knowledge base: documents in (clean → quality filter → chunk → embed → upsert), hybrid
//! search out (dense + BM25, fused by reciprocal rank). The ingest and RAG worker pools run this
//! code; the stores and the model come in through the ports.
//!
//! - **Idempotent by content**: a chunk's id is (URL, index) and every chunk records the hash of
//!   its whole document. Ingesting an unchanged page finds its hash stored and does nothing;
//!   a changed page overwrites its chunks and then deletes the ones the old version had beyond
//!   the new count (no orphans).
//! - **Embedding cache**: vectors are cached in the state store by (model, hash of the embedded
//!   text), so re-ingesting, re-crawling or asking the same question costs no inference.
//! - **One model per collection**: a collection records the embedder that built it; writing or
//!   searching with another one is refused.
//!
//! Size: one file on purpose. Ingest and search share the collection bookkeeping (the model check,
//! the version, document hashes, the embedding cache) that keeps what is written and what is
//! searched consistent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use url::Url;

use crate::admission::Refusal;
use crate::ingest::chunking::Chunker;
use crate::ingest::document::{self, Parsed};
use crate::ingest::plain;
use crate::ingest::quality::near_dup::{self, Signature};
use crate::ingest::quality::{self, Rules};
use crate::ingest::{Upload, media};
use crate::model::{Locator, Mark, Unit};
use crate::ports::{
    Audio, ChunkRecord, CollectionInfo, CollectionSpec, Condition, EmbedError, EmbedKind, Embedder,
    Field, Filter, FilterValue, NewChunk, Ranked, StateStore, StoreError, Transcriber, VectorStore,
};
use crate::scraper::extract::{self, Selectors};

/// What goes into a chunk's embedding besides its own text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedContext {
    /// The chunk text alone.
    None,
    /// Page title and heading path, then the text: chunks of one section stay findable by what
    /// the section is about, even when their own text never names it.
    TitleAndHeading,
}

#[derive(Debug, Clone)]
pub struct KnowledgeConfig {
    /// Bounds on reading one uploaded file.
    pub documents: document::Limits,
    pub chunk_size: usize,
    pub chunk_overlap: usize,
    pub quality: Rules,
    /// Skip documents that nearly duplicate one already in the collection.
    pub near_duplicates: bool,
    pub embed_context: EmbedContext,
    pub embed_batch: usize,
    pub cache_ttl: Duration,
    /// Candidates each side of hybrid search contributes before fusion.
    pub candidates: usize,
    /// Reciprocal rank fusion: score = Σ weight / (rrf_k + rank).
    pub rrf_k: f32,
    pub dense_weight: f32,
    pub lexical_weight: f32,
    /// How chunks of one page add up and give way to other pages.
    pub pages: PageRanking,
}

/// Pages as units of ranking. A question is answered by a page more than by a chunk: a page
/// several of whose chunks match is likelier the answer than one with a single lucky chunk, and
/// a reader wants the next page before the same page's third chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageRanking {
    /// Weight of a page's second-best chunk in its score (the third counts this squared…);
    /// 0 = a page is as good as its best chunk.
    pub evidence: f32,
    /// Factor on a page's later chunks as they compete with other pages' chunks (the second
    /// chunk of a page is scored × this, the third × this², …); 1 = no page diversity.
    pub same_page: f32,
    /// A page's chunks that count towards its score.
    pub evidence_chunks: usize,
}

impl Default for PageRanking {
    fn default() -> Self {
        Self {
            evidence: 0.0,
            same_page: 1.0,
            evidence_chunks: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentType {
    Html,
    #[default]
    Markdown,
    Text,
}

#[derive(Debug, Clone, Default)]
pub struct Document {
    pub url: String,
    pub title: Option<String>,
    pub content: String,
    pub content_type: ContentType,
    /// Unix seconds; now when absent.
    pub fetched_at: Option<u64>,
    pub crawl_id: Option<String>,
    /// Where each page, slide or chapter starts in `content` (Markdown only), in order.
    pub marks: Vec<Mark>,
    /// The file it came from, for citations.
    pub file_name: Option<String>,
    /// Share of the text that repeated on most of a document's pages (see
    /// [`crate::model::DocumentFacts::boilerplate`]).
    pub boilerplate: Option<f32>,
}

impl Document {
    /// A scraped page as a document: its markdown, title and fetch time.
    pub fn from_page(page: &crate::model::Page, crawl_id: Option<String>) -> Self {
        Self {
            url: page.url.to_string(),
            title: page.title.clone(),
            content: page.markdown.clone().unwrap_or_default(),
            content_type: ContentType::Markdown,
            fetched_at: page
                .fetched_at
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs()),
            crawl_id,
            marks: page
                .document
                .as_ref()
                .map(|d| d.marks.clone())
                .unwrap_or_default(),
            file_name: page.document.as_ref().and_then(|d| d.file_name.clone()),
            boilerplate: page.document.as_ref().and_then(|d| d.boilerplate),
        }
    }

    /// A parsed file (an upload) as a document; `url` is what identifies it in the collection.
    pub fn from_file(url: String, file_name: &str, parsed: Parsed) -> Self {
        Self {
            url,
            title: parsed.title.or_else(|| Some(file_name.to_string())),
            content: parsed.markdown,
            content_type: ContentType::Markdown,
            fetched_at: None,
            crawl_id: None,
            marks: parsed.marks,
            file_name: Some(file_name.to_string()),
            boilerplate: parsed.boilerplate,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Documents stored (new or changed).
    pub ingested: usize,
    /// Documents unchanged since they were last ingested.
    pub skipped: usize,
    /// Chunks written.
    pub chunks: usize,
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub url: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub chunk: ChunkRecord,
    /// The fused score (higher is better).
    pub score: f32,
    pub dense_score: Option<f32>,
    pub lexical_score: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KnowledgeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("{0}")]
    Invalid(String),
    #[error("too many requests in flight; retry shortly")]
    Overloaded,
    #[error("the {0} is restarting; retry shortly")]
    Unavailable(&'static str),
    #[error("the request did not finish within {} s", .0.as_secs())]
    DeadlineExceeded(Duration),
}

/// The counter set holding each collection's version (`Knowledge::version`).
const VERSIONS: &str = "collection-versions";

pub struct Knowledge {
    vectors: Arc<dyn VectorStore>,
    /// Audio and video uploads become transcripts through it.
    transcriber: Arc<dyn Transcriber>,
    embedder: Arc<dyn Embedder>,
    state: Arc<dyn StateStore>,
    chunker: Chunker,
    config: KnowledgeConfig,
}

impl Knowledge {
    pub fn new(
        vectors: Arc<dyn VectorStore>,
        embedder: Arc<dyn Embedder>,
        state: Arc<dyn StateStore>,
        config: KnowledgeConfig,
    ) -> Result<Self, KnowledgeError> {
        let chunker = Chunker::new(config.chunk_size, config.chunk_overlap)
            .map_err(|e| KnowledgeError::Invalid(format!("chunking settings: {e}")))?;
        Ok(Self {
            vectors,
            transcriber: Arc::new(crate::local::NoTranscriber),
            embedder,
            state,
            chunker,
            config,
        })
    }

    /// Reads audio and video uploads through `transcriber`.
    pub fn with_transcriber(mut self, transcriber: Arc<dyn Transcriber>) -> Self {
        self.transcriber = transcriber;
        self
    }

    fn spec(&self) -> CollectionSpec {
        CollectionSpec {
            embedder: self.embedder.id().to_string(),
            dimension: self.embedder.dimension(),
        }
    }

    pub async fn create_collection(&self, name: &str) -> Result<CollectionInfo, KnowledgeError> {
        Ok(self.vectors.create_collection(name, &self.spec()).await?)
    }

    pub async fn collection(&self, name: &str) -> Result<CollectionInfo, KnowledgeError> {
        self.vectors
            .collection(name)
            .await?
            .ok_or_else(|| StoreError::NotFound(name.to_string()).into())
    }

    pub async fn list_collections(&self) -> Result<Vec<CollectionInfo>, KnowledgeError> {
        Ok(self.vectors.list_collections().await?)
    }

    pub async fn delete_collection(&self, name: &str) -> Result<bool, KnowledgeError> {
        let deleted = self.vectors.delete_collection(name).await?;
        self.changed(name).await;
        Ok(deleted)
    }

    /// A number that moves whenever the collection's contents change, on every replica: what is
    /// derived from the contents (cached answers) is keyed by it. `None` when the state store
    /// cannot say, and then nothing derived should be trusted.
    pub async fn version(&self, collection: &str) -> Option<i64> {
        let fields = [collection.to_string()];
        match self.state.get_counts(VERSIONS, &fields).await {
            Ok(counts) => counts.first().copied(),
            Err(e) => {
                tracing::warn!(error = %e, "collection version unavailable");
                None
            }
        }
    }

    async fn changed(&self, collection: &str) {
        let delta = [(collection.to_string(), 1)];
        if let Err(e) = self.state.add_counts(VERSIONS, &delta).await {
            // Cached answers for the collection may be served until they expire.
            tracing::warn!(error = %e, collection, "collection version not advanced");
        }
    }

    /// Checks that the collection exists (creating it if asked) and that this embedder built it.
    async fn usable(&self, name: &str, create: bool) -> Result<(), KnowledgeError> {
        let built_with = match self.vectors.spec(name).await? {
            Some(spec) => spec,
            None if create => match self.create_collection(name).await {
                Err(KnowledgeError::Store(StoreError::AlreadyExists(_))) => {
                    self.collection(name).await?.spec // created meanwhile by someone else
                }
                other => other?.spec,
            },
            None => return Err(StoreError::NotFound(name.to_string()).into()),
        };
        let spec = self.spec();
        if built_with != spec {
            return Err(StoreError::WrongEmbedder {
                collection: name.to_string(),
                built_with: format!(
                    "{} ({} dimensions)",
                    built_with.embedder, built_with.dimension
                ),
                given: format!("{} ({} dimensions)", spec.embedder, spec.dimension),
            }
            .into());
        }
        Ok(())
    }

    /// Reads each file into a document (a file that cannot be read is rejected with its reason;
    /// the others go on), then ingests them with `documents`.
    pub async fn ingest_with_files(
        &self,
        collection: &str,
        mut documents: Vec<Document>,
        files: Vec<Upload>,
        create: bool,
    ) -> Result<IngestReport, KnowledgeError> {
        if files.is_empty() {
            return self.ingest(collection, documents, create).await;
        }
        // The collection is checked before any file is parsed: a typo costs no CPU.
        self.usable(collection, create).await?;
        let mut unreadable = Vec::new();
        for file in files {
            let url = upload_url(&file.file_name);
            let hint = document::OwnedHint {
                content_type: file.content_type,
                file_name: Some(file.file_name.clone()),
            };
            let bytes = file.bytes;
            let parsed = match document::detect(
                &bytes,
                document::Hint {
                    content_type: hint.content_type.as_deref(),
                    file_name: hint.file_name.as_deref(),
                },
            ) {
                Ok(document::Kind::Audio(mime)) => {
                    let audio = Audio {
                        bytes,
                        file_name: file.file_name.clone(),
                        mime: mime.to_string(),
                        language: None,
                    };
                    media::transcribe(self.transcriber.as_ref(), audio, None)
                        .await
                        .map_err(|e| (e.to_string(), "transcription"))
                }
                _ => document::parse_blocking(bytes, hint, self.config.documents)
                    .await
                    .map_err(|e| (e.to_string(), e.label())),
            };
            match parsed {
                Ok(parsed) => documents.push(Document::from_file(url, &file.file_name, parsed)),
                Err((reason, label)) => {
                    metrics::counter!("aurora_ingest_rejected_total", "reason" => label)
                        .increment(1);
                    unreadable.push(Rejected { url, reason });
                }
            }
        }
        let mut report = self.ingest(collection, documents, create).await?;
        unreadable.append(&mut report.rejected);
        report.rejected = unreadable;
        Ok(report)
    }

    pub async fn ingest(
        &self,
        collection: &str,
        documents: Vec<Document>,
        create: bool,
    ) -> Result<IngestReport, KnowledgeError> {
        self.usable(collection, create).await?;
        let mut report = IngestReport::default();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());

        // Clean, filter and chunk every document; remember which ones replace older versions.
        let mut records: Vec<(ChunkRecord, String)> = Vec::new();
        let mut replaced: Vec<(String, String)> = Vec::new();
        // Documents accepted earlier in this batch: they count as in the collection for the
        // near-duplicate check before they are written.
        let mut accepted: HashSet<String> = HashSet::new();
        let mut signatures: Vec<(String, Signature)> = Vec::new();
        for document in documents {
            let (title, marked_up, marks) = clean(&document);
            let mut verdict = self.quality(&document, &marked_up);
            // Links leave the text once the quality filter has judged their share: what is
            // chunked, embedded, hashed and shown is the text a reader reads.
            let unlinked = plain::unlink(&marked_up);
            let marks: Vec<Mark> = marks
                .into_iter()
                .map(|m| Mark {
                    offset: unlinked.map(m.offset),
                    locator: m.locator,
                })
                .collect();
            let text = unlinked.text;
            let hash = hex(&Sha256::digest(text.as_bytes()))[..32].to_string();
            let stored = match verdict {
                Ok(()) => {
                    self.vectors
                        .find(collection, &Filter::source_url(&document.url), 1)
                        .await?
                }
                Err(_) => Vec::new(),
            };
            match stored.first() {
                Some(old) if old.content_hash == hash => {
                    report.skipped += 1;
                    continue;
                }
                Some(_) => replaced.push((document.url.clone(), hash.clone())),
                None => {}
            }
            let signature = match (&verdict, self.config.near_duplicates) {
                (Ok(()), true) => Signature::of(&text),
                _ => None,
            };
            if let Some(signature) = &signature {
                verdict = self
                    .near_duplicate(collection, &document.url, signature, &accepted)
                    .await;
            }
            if let Err(rejection) = verdict {
                metrics::counter!("aurora_ingest_rejected_total", "reason" => rejection.label())
                    .increment(1);
                replaced.retain(|(url, _)| url != &document.url);
                report.rejected.push(Rejected {
                    url: document.url,
                    reason: rejection.to_string(),
                });
                continue;
            }
            accepted.insert(document.url.clone());
            if let Some(signature) = signature {
                signatures.push((document.url.clone(), signature));
            }
            let url_key = hex(&Sha256::digest(document.url.as_bytes()))[..16].to_string();
            let cuts = cuts(&marks, self.config.chunk_size / 4);
            let chunks = self.chunker.chunk_with_cuts(&text, &cuts);
            for (index, chunk) in chunks.into_iter().enumerate() {
                let locator = locate(&marks, chunk.offset, chunk.offset + chunk.text.len());
                let record = ChunkRecord {
                    id: format!("{url_key}:{index}"),
                    text: chunk.text,
                    source_url: document.url.clone(),
                    title: title.clone(),
                    heading: chunk.heading,
                    chunk_index: index as u32,
                    content_hash: hash.clone(),
                    fetched_at: document.fetched_at.unwrap_or(now),
                    crawl_id: document.crawl_id.clone(),
                    locator,
                    file_name: document.file_name.clone(),
                };
                let embedded = self.embedding_text(&record);
                records.push((record, embedded));
            }
            report.ingested += 1;
        }

        // Embed everything at once (batched, cached), then write.
        let texts: Vec<String> = records.iter().map(|(_, text)| text.clone()).collect();
        let vectors = self.embed_cached(&texts, EmbedKind::Document).await?;
        let chunks: Vec<NewChunk> = records
            .into_iter()
            .zip(vectors)
            .map(|((record, _), embedding)| NewChunk { record, embedding })
            .collect();
        report.chunks = chunks.len();
        let changes = !chunks.is_empty() || !replaced.is_empty();
        self.vectors.upsert(collection, chunks).await?;
        for (url, hash) in replaced {
            let stale = Filter {
                all: vec![
                    Condition::Eq(Field::SourceUrl, FilterValue::Text(url)),
                    Condition::Ne(Field::ContentHash, FilterValue::Text(hash)),
                ],
            };
            self.vectors.delete(collection, &stale).await?;
        }
        if changes {
            self.changed(collection).await;
        }
        self.remember_signatures(collection, signatures).await;
        metrics::counter!("aurora_ingest_documents_total", "outcome" => "ingested")
            .increment(report.ingested as u64);
        metrics::counter!("aurora_ingest_documents_total", "outcome" => "skipped")
            .increment(report.skipped as u64);
        metrics::counter!("aurora_ingest_documents_total", "outcome" => "rejected")
            .increment(report.rejected.len() as u64);
        metrics::counter!("aurora_ingest_chunks_total").increment(report.chunks as u64);
        Ok(report)
    }

    /// The quality filter: the rules on the text, and on a many-page document its share of
    /// repeated lines.
    fn quality(&self, document: &Document, text: &str) -> Result<(), quality::Rejection> {
        let rules = &self.config.quality;
        if let Some(ratio) = document.boilerplate
            && ratio > rules.max_boilerplate_ratio
        {
            return Err(quality::Rejection::Boilerplate {
                percent: (ratio * 100.0).round() as u32,
                max: (rules.max_boilerplate_ratio * 100.0).round() as u32,
            });
        }
        quality::check(text, rules)
    }

    /// Whether a document already in the collection (or accepted earlier in this batch) says
    /// nearly the same: candidates come from the MinHash bands in the state store, shared by
    /// every replica; each is confirmed by its full signature and by still being stored.
    /// The state store being down costs only the check.
    async fn near_duplicate(
        &self,
        collection: &str,
        url: &str,
        signature: &Signature,
        accepted: &HashSet<String>,
    ) -> Result<(), quality::Rejection> {
        let bands: Vec<String> = signature
            .bands()
            .into_iter()
            .map(|band| format!("dup:{collection}:{band}"))
            .collect();
        let found = match self.state.get_many(&bands).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "near-duplicate check skipped");
                return Ok(());
            }
        };
        let mut candidates: Vec<String> = found
            .into_iter()
            .flatten()
            .filter_map(|bytes| String::from_utf8(bytes).ok())
            .filter(|candidate| candidate != url)
            .collect();
        candidates.sort();
        candidates.dedup();
        if candidates.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = candidates
            .iter()
            .map(|c| signature_key(collection, c))
            .collect();
        let stored = self.state.get_many(&keys).await.unwrap_or_default();
        for (candidate, bytes) in candidates.iter().zip(stored) {
            let Some(theirs) = bytes.as_deref().and_then(Signature::from_bytes) else {
                continue;
            };
            let similarity = signature.similarity(&theirs);
            if similarity < near_dup::NEAR_DUPLICATE {
                continue;
            }
            let present = accepted.contains(candidate)
                || self
                    .vectors
                    .find(collection, &Filter::source_url(candidate), 1)
                    .await
                    .is_ok_and(|found| !found.is_empty());
            if present {
                return Err(quality::Rejection::near_duplicate(
                    candidate.clone(),
                    similarity,
                ));
            }
        }
        Ok(())
    }

    /// Files each stored document's MinHash bands and signature for later near-duplicate checks.
    async fn remember_signatures(&self, collection: &str, signatures: Vec<(String, Signature)>) {
        if signatures.is_empty() {
            return;
        }
        let mut entries = Vec::with_capacity(signatures.len() * 33);
        for (url, signature) in signatures {
            for band in signature.bands() {
                entries.push((format!("dup:{collection}:{band}"), url.clone().into_bytes()));
            }
            entries.push((signature_key(collection, &url), signature.to_bytes()));
        }
        if let Err(e) = self.state.set_many(entries, None).await {
            tracing::warn!(error = %e, "near-duplicate signatures not stored");
        }
    }

    fn embedding_text(&self, record: &ChunkRecord) -> String {
        match self.config.embed_context {
            EmbedContext::None => plain::link_text(&record.text),
            EmbedContext::TitleAndHeading => {
                let mut text = String::with_capacity(record.text.len() + 128);
                for part in [&record.title, &record.heading] {
                    if !part.is_empty() {
                        text.push_str(part);
                        text.push('\n');
                    }
                }
                text.push('\n');
                text.push_str(&plain::link_text(&record.text));
                text
            }
        }
    }

    /// Vectors for `texts`, from the cache where possible; the state store being down only
    /// costs the cache.
    async fn embed_cached(
        &self,
        texts: &[String],
        kind: EmbedKind,
    ) -> Result<Vec<Vec<f32>>, KnowledgeError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let model = self.embedder.id().to_string();
        let tag = match kind {
            EmbedKind::Document => "d",
            EmbedKind::Query => "q",
        };
        let keys: Vec<String> = texts
            .iter()
            .map(|t| {
                format!(
                    "emb:{model}:{tag}:{}",
                    &hex(&Sha256::digest(t.as_bytes()))[..32]
                )
            })
            .collect();
        let cached = self.state.get_many(&keys).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "embedding cache unavailable; embedding everything");
            vec![None; keys.len()]
        });
        let dimension = self.embedder.dimension();
        let mut vectors: Vec<Option<Vec<f32>>> = cached
            .into_iter()
            .map(|bytes| bytes.and_then(|b| decode_vector(&b, dimension)))
            .collect();
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| vectors[i].is_none()).collect();
        metrics::counter!("aurora_embedding_cache_total", "outcome" => "hit")
            .increment((texts.len() - missing.len()) as u64);
        metrics::counter!("aurora_embedding_cache_total", "outcome" => "miss")
            .increment(missing.len() as u64);
        let mut fresh = Vec::new();
        for batch in missing.chunks(self.config.embed_batch.max(1)) {
            let batch_texts: Vec<String> = batch.iter().map(|&i| texts[i].clone()).collect();
            let started = std::time::Instant::now();
            let embedded = self.embedder.embed(&batch_texts, kind).await?;
            metrics::histogram!("aurora_embedding_batch_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            if embedded.len() != batch.len() {
                return Err(EmbedError::Failed(format!(
                    "asked for {} vectors, got {}",
                    batch.len(),
                    embedded.len()
                ))
                .into());
            }
            for (&i, vector) in batch.iter().zip(embedded) {
                fresh.push((keys[i].clone(), encode_vector(&vector)));
                vectors[i] = Some(vector);
            }
        }
        if !fresh.is_empty()
            && let Err(e) = self
                .state
                .set_many(fresh, Some(self.config.cache_ttl))
                .await
        {
            tracing::warn!(error = %e, "could not fill the embedding cache");
        }
        vectors
            .into_iter()
            .map(|v| v.ok_or_else(|| EmbedError::Failed("a vector went missing".into()).into()))
            .collect()
    }

    /// Hybrid search: dense and BM25 candidates fused by weighted reciprocal rank.
    pub async fn search(
        &self,
        collection: &str,
        query: &str,
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<SearchHit>, KnowledgeError> {
        self.usable(collection, false).await?;
        if k == 0 || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let candidates = self.config.candidates.max(k);
        let vector = self
            .embed_cached(&[query.to_string()], EmbedKind::Query)
            .await?
            .pop()
            .unwrap_or_default();
        let (dense, lexical) = futures::future::join(
            self.vectors
                .dense_rank(collection, &vector, candidates, filter),
            self.vectors
                .lexical_rank(collection, query, candidates, filter),
        )
        .await;
        let fused = fuse(&dense?, &lexical?, usize::MAX, &self.config);
        let fused = by_page(fused, k, &self.config.pages);
        // Only now the chunks, and only the ones returned.
        let ids: Vec<String> = fused.iter().map(|f| f.id.clone()).collect();
        let mut chunks: HashMap<String, ChunkRecord> = self
            .vectors
            .get(collection, &ids)
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        Ok(fused
            .into_iter()
            .filter_map(|f| {
                Some(SearchHit {
                    chunk: chunks.remove(&f.id)?,
                    score: f.score,
                    dense_score: f.dense_score,
                    lexical_score: f.lexical_score,
                })
            })
            .collect())
    }

    /// The words of `text` that no chunk of the collection holds (stemmed as search stems them;
    /// numbers and words under three letters aside), when it holds `min_chunks` chunks or more:
    /// a collection that large has met the common words of its language, so a word it never
    /// holds names something it does not cover. Empty for a smaller collection.
    pub async fn unheard_words(
        &self,
        collection: &str,
        text: &str,
        min_chunks: u64,
    ) -> Result<Vec<String>, KnowledgeError> {
        let mut words: Vec<(String, u32)> = Vec::new();
        for word in crate::lexical::words(text) {
            if word.chars().count() < 3 || word.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let term = crate::lexical::term_id(&crate::lexical::stem(&word));
            if !words.iter().any(|(_, t)| *t == term) {
                words.push((word, term));
            }
        }
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let terms: Vec<u32> = words.iter().map(|(_, t)| *t).collect();
        let vocabulary = self.vectors.vocabulary(collection, &terms).await?;
        if vocabulary.chunks < min_chunks.max(1) {
            return Ok(Vec::new());
        }
        Ok(words
            .into_iter()
            .zip(vocabulary.holds)
            .filter(|(_, held)| !held)
            .map(|((word, _), _)| word)
            .collect())
    }
}

/// One chunk of a fused ranking: the fused score and what each side scored it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    pub id: String,
    pub score: f32,
    pub dense_score: Option<f32>,
    pub lexical_score: Option<f32>,
}

/// Weighted reciprocal rank fusion of two rankings (1-based ranks), best first; ties go to the
/// smaller id.
pub fn fuse<'a>(
    dense: &'a [Ranked],
    lexical: &'a [Ranked],
    k: usize,
    config: &KnowledgeConfig,
) -> Vec<Fused> {
    let mut fused: HashMap<&'a str, Fused> = HashMap::new();
    let mut add = |ranked: &'a [Ranked], weight: f32, is_dense: bool| {
        for (rank, hit) in ranked.iter().enumerate() {
            let entry = fused.entry(hit.id.as_str()).or_insert_with(|| Fused {
                id: hit.id.clone(),
                score: 0.0,
                dense_score: None,
                lexical_score: None,
            });
            entry.score += weight / (config.rrf_k + rank as f32 + 1.0);
            if is_dense {
                entry.dense_score = Some(hit.score);
            } else {
                entry.lexical_score = Some(hit.score);
            }
        }
    };
    add(dense, config.dense_weight, true);
    add(lexical, config.lexical_weight, false);
    let mut hits: Vec<Fused> = fused.into_values().collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    hits.truncate(k);
    hits
}

/// The page a chunk belongs to: its id is `{hash of the URL}:{index}`.
fn page_of(id: &str) -> &str {
    id.rsplit_once(':').map_or(id, |(page, _)| page)
}

/// A fused ranking re-ordered with pages as units (see [`PageRanking`]): a page's best chunk
/// carries the page's score, its later chunks their own, discounted; best first, `k` at most.
pub fn by_page(fused: Vec<Fused>, k: usize, ranking: &PageRanking) -> Vec<Fused> {
    let neutral = ranking.evidence == 0.0 && ranking.same_page == 1.0;
    if neutral {
        let mut fused = fused;
        fused.truncate(k);
        return fused;
    }
    // `fused` is best first, so each page's chunks arrive best first too.
    let mut pages: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, hit) in fused.iter().enumerate() {
        pages.entry(page_of(&hit.id)).or_default().push(i);
    }
    let mut scored: Vec<(f32, usize)> = Vec::with_capacity(fused.len());
    for chunks in pages.values() {
        let evidence: f32 = chunks
            .iter()
            .take(ranking.evidence_chunks.max(1))
            .zip(std::iter::successors(Some(1.0f32), |w| {
                Some(w * ranking.evidence)
            }))
            .map(|(&i, weight)| fused[i].score * weight)
            .sum();
        let mut discount = 1.0f32;
        for (j, &i) in chunks.iter().enumerate() {
            let score = if j == 0 {
                evidence
            } else {
                fused[i].score * discount
            };
            scored.push((score, i));
            discount *= ranking.same_page;
        }
    }
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| fused[a.1].id.cmp(&fused[b.1].id))
    });
    scored.truncate(k);
    let mut fused: Vec<Option<Fused>> = fused.into_iter().map(Some).collect();
    scored
        .into_iter()
        .filter_map(|(score, i)| {
            let mut hit = fused[i].take()?;
            hit.score = score;
            Some(hit)
        })
        .collect()
}

/// The state-store key of a stored document's MinHash signature.
fn signature_key(collection: &str, url: &str) -> String {
    let url_key = hex(&Sha256::digest(url.as_bytes()));
    format!("dupsig:{collection}:{}", &url_key[..32])
}

/// What identifies an uploaded file in its collection: uploading a file of the same name again
/// replaces it, as re-ingesting a URL does.
pub fn upload_url(file_name: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(file_name.as_bytes()).collect();
    format!("upload:{}", encoded.replace('+', "%20"))
}

/// Where chunks must break: at every page, slide and chapter; and between a recording's
/// segments once `window` characters have gathered since the last break, so a chunk of a
/// transcript covers a short stretch of time (about 15 s at the default size) and cites it
/// precisely.
fn cuts(marks: &[Mark], window: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut last = 0;
    for mark in marks {
        if mark.locator.unit != Unit::Time || mark.offset >= last + window {
            cuts.push(mark.offset);
            last = mark.offset;
        }
    }
    cuts
}

/// Where a chunk spanning `start..end` of its document's Markdown sits: the part it starts in,
/// merged with every part that starts inside it (a time range over several segments).
fn locate(marks: &[Mark], start: usize, end: usize) -> Option<Locator> {
    let first = marks.partition_point(|m| m.offset <= start);
    let mut locator = match first {
        0 => marks.first().filter(|m| m.offset < end)?.locator,
        i => marks[i - 1].locator,
    };
    for mark in marks[first..].iter().take_while(|m| m.offset < end) {
        locator = locator.merge(mark.locator);
    }
    Some(locator)
}

/// The document's title, its Markdown, and its part marks moved to match the Markdown.
fn clean(document: &Document) -> (String, String, Vec<Mark>) {
    let (found_title, text) = match document.content_type {
        ContentType::Html => {
            let base = Url::parse(&document.url)
                .unwrap_or_else(|_| Url::parse("http://invalid.local/").expect("static URL"));
            let selectors = Selectors::default();
            let page = extract::extract(
                &document.content,
                &base,
                &extract::Options {
                    only_main_content: true,
                    selectors: &selectors,
                    remove_base64_images: true,
                    want_html: false,
                },
            );
            (page.title, page.markdown)
        }
        ContentType::Markdown | ContentType::Text => {
            let first_heading = document.content.lines().find_map(|l| {
                l.trim_start()
                    .strip_prefix('#')
                    .map(|t| t.trim_start_matches('#').trim().to_string())
            });
            (first_heading, document.content.trim().to_string())
        }
    };
    // Trimming moved the text: the marks move with it. HTML has no marks.
    let lead = document.content.len() - document.content.trim_start().len();
    let marks = match document.content_type {
        ContentType::Html => Vec::new(),
        _ => document
            .marks
            .iter()
            .filter(|m| m.offset < lead + text.len())
            .map(|m| Mark {
                offset: m.offset.saturating_sub(lead),
                locator: m.locator,
            })
            .collect(),
    };
    let title = document
        .title
        .clone()
        .filter(|t| !t.trim().is_empty())
        .or(found_title)
        .unwrap_or_else(|| document.url.clone());
    (title, text, marks)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_vector(bytes: &[u8], dimension: usize) -> Option<Vec<f32>> {
    (bytes.len() == dimension * 4).then(|| {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    })
}

impl Refusal for KnowledgeError {
    fn overloaded() -> Self {
        KnowledgeError::Overloaded
    }
    fn unavailable(what: &'static str) -> Self {
        KnowledgeError::Unavailable(what)
    }
    fn deadline(after: Duration) -> Self {
        KnowledgeError::DeadlineExceeded(after)
    }
    fn is_unavailable(&self) -> bool {
        matches!(self, KnowledgeError::Unavailable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> KnowledgeConfig {
        KnowledgeConfig {
            documents: Default::default(),
            chunk_size: 800,
            chunk_overlap: 0,
            quality: Rules {
                min_chars: 10,
                max_link_ratio: 0.7,
                min_unique_words: 0,
                ..Default::default()
            },
            near_duplicates: false,
            embed_context: EmbedContext::TitleAndHeading,
            embed_batch: 8,
            cache_ttl: Duration::from_secs(60),
            candidates: 10,
            rrf_k: 60.0,
            dense_weight: 1.0,
            lexical_weight: 1.0,
            pages: PageRanking::default(),
        }
    }

    fn hit(id: &str, score: f32) -> Ranked {
        Ranked {
            id: id.to_string(),
            score,
        }
    }

    #[test]
    fn fusion_rewards_agreement_and_keeps_both_scores() {
        let dense = [hit("a", 0.9), hit("b", 0.8), hit("c", 0.7)];
        let lexical = [hit("c", 12.0), hit("d", 9.0)];
        let fused = fuse(&dense, &lexical, 3, &config());
        let ids: Vec<&str> = fused.iter().map(|h| h.id.as_str()).collect();
        // c is found by both; b and d tie (rank 2 on one side each) and break by id.
        assert_eq!(ids, ["c", "a", "b"]);
        assert_eq!(
            (fused[0].dense_score, fused[0].lexical_score),
            (Some(0.7), Some(12.0))
        );
        assert_eq!(fused[1].lexical_score, None);
    }

    #[test]
    fn vectors_round_trip_through_the_cache_encoding() {
        let v = vec![0.25, -1.5, 3.0];
        assert_eq!(decode_vector(&encode_vector(&v), 3), Some(v));
        assert_eq!(decode_vector(&[0, 1, 2], 3), None);
    }

    #[test]
    fn html_is_cleaned_and_titles_found() {
        let doc = Document {
            url: "https://x.test/a".into(),
            title: None,
            content: "<title>Page</title><nav>menu</nav><main><p>Body text.</p></main>".into(),
            content_type: ContentType::Html,
            fetched_at: None,
            crawl_id: None,
            ..Default::default()
        };
        assert_eq!(
            clean(&doc),
            ("Page".to_string(), "Body text.".to_string(), Vec::new())
        );
        let md = Document {
            content: "# Heading one\n\ntext".into(),
            content_type: ContentType::Markdown,
            ..doc.clone()
        };
        assert_eq!(clean(&md).0, "Heading one");
        let given = Document {
            title: Some("Given".into()),
            ..md
        };
        assert_eq!(clean(&given).0, "Given");
    }

    #[test]
    fn a_chunk_cites_the_parts_it_covers() {
        let mark = |offset, unit, start, end| Mark {
            offset,
            locator: Locator { unit, start, end },
        };
        let pages = [mark(0, Unit::Page, 1, 1), mark(100, Unit::Page, 2, 2)];
        assert_eq!(
            locate(&pages, 10, 90).map(|l| l.to_string()),
            Some("page 1".into())
        );
        assert_eq!(
            locate(&pages, 100, 150).map(|l| l.to_string()),
            Some("page 2".into())
        );
        assert_eq!(
            locate(&pages, 50, 150).map(|l| l.to_string()),
            Some("pages 1–2".into())
        );
        let speech = [
            mark(0, Unit::Time, 0, 4_000),
            mark(40, Unit::Time, 4_000, 83_500),
            mark(80, Unit::Time, 83_500, 101_000),
        ];
        assert_eq!(
            locate(&speech, 45, 120).map(|l| l.to_string()),
            Some("t=00:04–01:41".into())
        );
        assert_eq!(locate(&[], 0, 10), None);
        assert_eq!(cuts(&speech, 50), [80]);
        assert_eq!(cuts(&pages, 1000), [0, 100]);
        // Text before the first part (a title) belongs to no part unless the chunk reaches one.
        let late = [mark(20, Unit::Slide, 1, 1)];
        assert_eq!(locate(&late, 0, 10), None);
        assert_eq!(
            locate(&late, 0, 30).map(|l| l.to_string()),
            Some("slide 1".into())
        );
    }
}
