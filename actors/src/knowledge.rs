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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use url::Url;

use crate::ingest::chunking::{self, Chunker};
use crate::ingest::quality::{self, Rules};
use crate::ports::{
    ChunkRecord, CollectionInfo, CollectionSpec, Condition, EmbedError, EmbedKind, Embedder, Field,
    Filter, FilterValue, NewChunk, Ranked, StateStore, StoreError, VectorStore,
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
    pub chunk_size: usize,
    pub chunk_overlap: usize,
    pub quality: Rules,
    pub embed_context: EmbedContext,
    pub embed_batch: usize,
    pub cache_ttl: Duration,
    /// Candidates each side of hybrid search contributes before fusion.
    pub candidates: usize,
    /// Reciprocal rank fusion: score = Σ weight / (rrf_k + rank).
    pub rrf_k: f32,
    pub dense_weight: f32,
    pub lexical_weight: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Html,
    Markdown,
    Text,
}

#[derive(Debug, Clone)]
pub struct Document {
    pub url: String,
    pub title: Option<String>,
    pub content: String,
    pub content_type: ContentType,
    /// Unix seconds; now when absent.
    pub fetched_at: Option<u64>,
    pub crawl_id: Option<String>,
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
            embedder,
            state,
            chunker,
            config,
        })
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
        for document in documents {
            let (title, text) = clean(&document);
            if let Err(rejection) = quality::check(&text, &self.config.quality) {
                metrics::counter!("aurora_ingest_rejected_total", "reason" => rejection.label())
                    .increment(1);
                report.rejected.push(Rejected {
                    url: document.url,
                    reason: rejection.to_string(),
                });
                continue;
            }
            let hash = hex(&Sha256::digest(text.as_bytes()))[..32].to_string();
            let stored = self
                .vectors
                .find(collection, &Filter::source_url(&document.url), 1)
                .await?;
            match stored.first() {
                Some(old) if old.content_hash == hash => {
                    report.skipped += 1;
                    continue;
                }
                Some(_) => replaced.push((document.url.clone(), hash.clone())),
                None => {}
            }
            let url_key = hex(&Sha256::digest(document.url.as_bytes()))[..16].to_string();
            for (index, chunk) in self.chunker.chunk(&text).into_iter().enumerate() {
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
        metrics::counter!("aurora_ingest_documents_total", "outcome" => "ingested")
            .increment(report.ingested as u64);
        metrics::counter!("aurora_ingest_documents_total", "outcome" => "skipped")
            .increment(report.skipped as u64);
        metrics::counter!("aurora_ingest_documents_total", "outcome" => "rejected")
            .increment(report.rejected.len() as u64);
        metrics::counter!("aurora_ingest_chunks_total").increment(report.chunks as u64);
        Ok(report)
    }

    fn embedding_text(&self, record: &ChunkRecord) -> String {
        match self.config.embed_context {
            EmbedContext::None => chunking::link_text(&record.text),
            EmbedContext::TitleAndHeading => {
                let mut text = String::with_capacity(record.text.len() + 128);
                for part in [&record.title, &record.heading] {
                    if !part.is_empty() {
                        text.push_str(part);
                        text.push('\n');
                    }
                }
                text.push('\n');
                text.push_str(&chunking::link_text(&record.text));
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
        let fused = fuse(&dense?, &lexical?, k, &self.config);
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

/// (title, clean markdown) of a document.
fn clean(document: &Document) -> (String, String) {
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
    let title = document
        .title
        .clone()
        .filter(|t| !t.trim().is_empty())
        .or(found_title)
        .unwrap_or_else(|| document.url.clone());
    (title, text)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> KnowledgeConfig {
        KnowledgeConfig {
            chunk_size: 800,
            chunk_overlap: 0,
            quality: Rules {
                min_chars: 10,
                max_link_ratio: 0.7,
            },
            embed_context: EmbedContext::TitleAndHeading,
            embed_batch: 8,
            cache_ttl: Duration::from_secs(60),
            candidates: 10,
            rrf_k: 60.0,
            dense_weight: 1.0,
            lexical_weight: 1.0,
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
        };
        assert_eq!(clean(&doc), ("Page".to_string(), "Body text.".to_string()));
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
}
