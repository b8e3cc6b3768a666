//! ChromaDB (v2 REST API) as the `VectorStore`, and its `/ready` probe.
//!
//! - Tenant and database come from settings and are created on first use, so Aurora starts
//!   (and reports not-ready) while Chroma is down. Collections use the cosine space; Aurora sends
//!   the embeddings, and records the embedder and dimension in the collection's metadata.
//! - Writes go in batches of the server's `max_batch_size` (pre-flight checks), capped lower to
//!   keep request bodies small. Every call is idempotent, so transient failures (connection
//!   errors, 5xx) are retried with backoff; a server that stays down is `Unavailable`.
//! - Lexical search. A local Chroma has neither sparse vectors nor `/search` (both answer 501),
//!   and its `where_document` filters scan without scoring. So BM25 lives outside it, in the
//!   `LexicalIndex` (Redis in production: every replica ranks alike): every write indexes its
//!   chunks' terms before Chroma stores them, a query ranks ids there and fetches just those
//!   chunks from Chroma by id. A filtered query ranks exactly the chunks the filter admits when
//!   they are few, else the best overall, filtered, reading deeper until enough pass. An index
//!   found empty while the collection is not (Redis lost it, or the collection predates the
//!   index) is rebuilt from Chroma's chunks on the spot.
//!
//! Size: one file on purpose. The REST calls and the lexical index's upkeep (indexed before stored,
//! rebuilt when found empty) are one consistency contract between two backends.

use std::sync::Arc;
use std::time::Duration;

use aurora_actors::lexical;
use aurora_actors::model::{Locator, Unit};
use aurora_actors::ports::{
    ChunkRecord, CollectionInfo, CollectionSpec, Condition, Field, Filter, FilterValue,
    HealthCheck, LexicalDoc, LexicalIndex, NewChunk, Ranked, StateError, StoreError, VectorStore,
    Vocabulary, validate_collection_name,
};
use dashmap::DashMap;
use futures::future::BoxFuture;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// Records per write request, whatever the server allows (a 384-d batch of 500 is ~2 MB of JSON).
const MAX_WRITE_BATCH: usize = 500;
/// A filter admitting at most this many chunks has them ranked exactly, one by one.
const FILTERED_EXACT: usize = 2000;
/// How deep a filtered query admitting more reads the overall ranking, at most.
const FILTERED_DEPTH: usize = 4096;
/// Chunks per page when rebuilding a lost lexical index from Chroma.
const REBUILD_PAGE: usize = 500;
const ATTEMPTS: u32 = 3;
const EMBEDDER_KEY: &str = "aurora_embedder";
const DIMENSION_KEY: &str = "aurora_dimension";

pub struct ChromaStore {
    http: reqwest::Client,
    base: String,
    collections_url: String,
    tenant: String,
    database: String,
    /// BM25 postings of every collection, shared by every replica.
    lexical: Arc<dyn LexicalIndex>,
    /// One rebuild of a lost lexical index at a time.
    rebuilding: tokio::sync::Mutex<()>,
    /// name → (id, spec); a collection deleted elsewhere is dropped on its first 404.
    known: DashMap<String, (String, CollectionSpec)>,
    /// Tenant and database exist (created once per process).
    ready: OnceCell<()>,
    max_batch: OnceCell<usize>,
}

impl ChromaStore {
    pub fn new(
        url: &str,
        tenant: &str,
        database: &str,
        lexical: Arc<dyn LexicalIndex>,
    ) -> Result<Self, String> {
        let base = url.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            collections_url: format!(
                "{base}/api/v2/tenants/{tenant}/databases/{database}/collections"
            ),
            base,
            http,
            tenant: tenant.to_string(),
            database: database.to_string(),
            lexical,
            rebuilding: tokio::sync::Mutex::new(()),
            known: DashMap::new(),
            ready: OnceCell::new(),
            max_batch: OnceCell::new(),
        })
    }

    /// One call with retries; `Ok((status, body))` for any answer that is not a transient error.
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), StoreError> {
        let mut delay = Duration::from_millis(100);
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let mut request = self.http.request(method.clone(), url);
            if let Some(body) = body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(response) if response.status().is_server_error() && attempt < ATTEMPTS => {
                    last = format!("{} answered {}", self.base, response.status());
                }
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                    return Ok((status, body));
                }
                Err(e) => last = format!("ChromaDB at {} is unreachable: {e}", self.base),
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
        }
        metrics::counter!("aurora_chroma_failures_total").increment(1);
        Err(StoreError::Unavailable(last))
    }

    /// A call that must succeed (2xx); other answers become errors with Chroma's message.
    async fn ok(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, StoreError> {
        let (status, body) = self.call(method, url, body).await?;
        match status {
            s if s.is_success() => Ok(body),
            s if s.is_server_error() => Err(StoreError::Unavailable(format!(
                "ChromaDB answered {s}: {}",
                message(&body)
            ))),
            s => Err(StoreError::Backend(format!(
                "ChromaDB answered {s}: {}",
                message(&body)
            ))),
        }
    }

    /// Creates the tenant and database when missing (409 means they exist).
    async fn ensure_database(&self) -> Result<(), StoreError> {
        self.ready
            .get_or_try_init(|| async {
                let tenants = format!("{}/api/v2/tenants", self.base);
                let (status, body) = self
                    .call(Method::POST, &tenants, Some(&json!({"name": self.tenant})))
                    .await?;
                if !(status.is_success() || status == StatusCode::CONFLICT) {
                    return Err(StoreError::Backend(format!(
                        "creating tenant `{}`: {status} {}",
                        self.tenant,
                        message(&body)
                    )));
                }
                let databases = format!("{tenants}/{}/databases", self.tenant);
                let (status, body) = self
                    .call(
                        Method::POST,
                        &databases,
                        Some(&json!({"name": self.database})),
                    )
                    .await?;
                if !(status.is_success() || status == StatusCode::CONFLICT) {
                    return Err(StoreError::Backend(format!(
                        "creating database `{}`: {status} {}",
                        self.database,
                        message(&body)
                    )));
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    async fn max_batch(&self) -> usize {
        let url = format!("{}/api/v2/pre-flight-checks", self.base);
        *self
            .max_batch
            .get_or_init(|| async {
                let reported = match self.ok(Method::GET, &url, None).await {
                    Ok(body) => body["max_batch_size"].as_u64().unwrap_or(100) as usize,
                    Err(_) => 100,
                };
                reported.clamp(1, MAX_WRITE_BATCH)
            })
            .await
    }

    /// The collection's id and spec, from the cache or from Chroma.
    async fn resolve(&self, name: &str) -> Result<(String, CollectionSpec), StoreError> {
        if let Some(known) = self.known.get(name) {
            return Ok(known.clone());
        }
        self.ensure_database().await?;
        let url = format!("{}/{name}", self.collections_url);
        let (status, body) = self.call(Method::GET, &url, None).await?;
        match status {
            s if s.is_success() => {
                let resolved = parse_collection(&body)
                    .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
                self.known
                    .insert(name.to_string(), (resolved.1.clone(), resolved.2.clone()));
                Ok((resolved.1, resolved.2))
            }
            StatusCode::NOT_FOUND => Err(StoreError::NotFound(name.to_string())),
            s => Err(StoreError::Backend(format!("{s}: {}", message(&body)))),
        }
    }

    /// A record operation on a collection; a 404 means it was deleted (perhaps elsewhere).
    async fn record_op(
        &self,
        collection: &str,
        op: &str,
        body: &Value,
    ) -> Result<Value, StoreError> {
        let (id, _) = self.resolve(collection).await?;
        let url = format!("{}/{id}/{op}", self.collections_url);
        let (status, answer) = self.call(Method::POST, &url, Some(body)).await?;
        match status {
            s if s.is_success() => Ok(answer),
            StatusCode::NOT_FOUND => {
                self.known.remove(collection);
                Err(StoreError::NotFound(collection.to_string()))
            }
            s if s.is_server_error() => Err(StoreError::Unavailable(format!(
                "ChromaDB answered {s}: {}",
                message(&answer)
            ))),
            s => Err(StoreError::Backend(format!(
                "ChromaDB {op} answered {s}: {}",
                message(&answer)
            ))),
        }
    }

    async fn count(&self, id: &str) -> Result<u64, StoreError> {
        let url = format!("{}/{id}/count", self.collections_url);
        Ok(self
            .ok(Method::GET, &url, None)
            .await?
            .as_u64()
            .unwrap_or(0))
    }

    /// The collection's lexical index, named within this tenant and database.
    fn index_name(&self, collection: &str) -> String {
        format!("{}/{}/{collection}", self.tenant, self.database)
    }

    /// Ids (only) of the chunks matching `filter`, at most `limit` (all with `None`).
    async fn ids_where(
        &self,
        collection: &str,
        filter: &Filter,
        limit: Option<usize>,
    ) -> Result<Vec<String>, StoreError> {
        let mut body = with_where(json!({"include": []}), filter);
        if let Some(limit) = limit {
            body["limit"] = json!(limit);
        }
        let answer = self.record_op(collection, "get", &body).await?;
        Ok(answer["ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// BM25's best `k` chunks for `terms` that pass `filter`.
    async fn rank(
        &self,
        collection: &str,
        terms: &lexical::TermCounts,
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<Ranked>, StoreError> {
        let index = self.index_name(collection);
        if filter.all.is_empty() {
            return self
                .lexical
                .search(&index, terms, k)
                .await
                .map_err(unavailable);
        }
        let admitted = self
            .ids_where(collection, filter, Some(FILTERED_EXACT + 1))
            .await?;
        if admitted.len() <= FILTERED_EXACT {
            let mut ranked = self
                .lexical
                .score(&index, terms, &admitted)
                .await
                .map_err(unavailable)?;
            ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
            ranked.truncate(k);
            return Ok(ranked);
        }
        let mut depth = (k * 4).min(FILTERED_DEPTH);
        loop {
            let ranked = self
                .lexical
                .search(&index, terms, depth)
                .await
                .map_err(unavailable)?;
            let exhausted = ranked.len() < depth;
            let ids: Vec<String> = ranked.iter().map(|r| r.id.clone()).collect();
            let mut body = with_where(json!({"ids": ids, "include": []}), filter);
            body["limit"] = json!(ids.len());
            let passing: std::collections::HashSet<String> =
                self.record_op(collection, "get", &body).await?["ids"]
                    .as_array()
                    .map(|ids| {
                        ids.iter()
                            .filter_map(|id| id.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
            let mut kept: Vec<Ranked> = ranked
                .into_iter()
                .filter(|r| passing.contains(&r.id))
                .collect();
            if kept.len() >= k || exhausted || depth >= FILTERED_DEPTH {
                kept.truncate(k);
                return Ok(kept);
            }
            depth = (depth * 4).min(FILTERED_DEPTH);
        }
    }

    /// After the lexical index answered empty: it may have been lost with Redis while Chroma
    /// still holds the chunks. Rebuilds it if so; true = ask it again.
    async fn lexical_lost(&self, collection: &str) -> Result<bool, StoreError> {
        let (id, _) = self.resolve(collection).await?;
        self.rebuild_if_lost(collection, &id).await
    }

    /// Rebuilds the collection's lexical index from Chroma's chunks when it is empty while the
    /// collection is not; whether it did.
    async fn rebuild_if_lost(&self, collection: &str, id: &str) -> Result<bool, StoreError> {
        let index = self.index_name(collection);
        let _one_at_a_time = self.rebuilding.lock().await;
        if self.lexical.len(&index).await.map_err(unavailable)? > 0 || self.count(id).await? == 0 {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        let mut indexed = 0;
        for offset in (0..).step_by(REBUILD_PAGE) {
            let page = self
                .get_records(collection, json!({"limit": REBUILD_PAGE, "offset": offset}))
                .await?;
            let docs: Vec<LexicalDoc> = page.iter().map(LexicalDoc::chunk).collect();
            self.lexical
                .index(&index, &docs)
                .await
                .map_err(unavailable)?;
            indexed += docs.len();
            if page.len() < REBUILD_PAGE {
                break;
            }
        }
        metrics::counter!("aurora_lexical_rebuilds_total").increment(1);
        tracing::warn!(
            collection,
            chunks = indexed,
            seconds = started.elapsed().as_secs_f64(),
            "lexical index was empty while the collection was not: rebuilt from ChromaDB"
        );
        Ok(true)
    }

    /// Records (with text) matching a `/get` body.
    async fn get_records(
        &self,
        collection: &str,
        mut body: Value,
    ) -> Result<Vec<ChunkRecord>, StoreError> {
        body["include"] = json!(["documents", "metadatas"]);
        let answer = self.record_op(collection, "get", &body).await?;
        Ok(records(
            &answer["ids"],
            &answer["documents"],
            &answer["metadatas"],
        ))
    }
}

/// The lexical index is part of the store: its state store being away is the store being away.
fn unavailable(e: StateError) -> StoreError {
    StoreError::Unavailable(format!("lexical index: {e}"))
}

fn message(body: &Value) -> String {
    body.get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string())
}

/// (name, id, spec) of a collection answer that Aurora created.
fn parse_collection(body: &Value) -> Option<(String, String, CollectionSpec)> {
    let meta = &body["metadata"];
    Some((
        body["name"].as_str()?.to_string(),
        body["id"].as_str()?.to_string(),
        CollectionSpec {
            embedder: meta[EMBEDDER_KEY].as_str()?.to_string(),
            dimension: meta[DIMENSION_KEY].as_u64()? as usize,
        },
    ))
}

fn metadata(record: &ChunkRecord) -> Value {
    let mut meta = json!({
        "source_url": record.source_url,
        "title": record.title,
        "heading": record.heading,
        "chunk_index": record.chunk_index,
        "content_hash": record.content_hash,
        "fetched_at": record.fetched_at,
    });
    if let Some(crawl) = &record.crawl_id {
        meta["crawl_id"] = json!(crawl);
    }
    if let Some(name) = &record.file_name {
        meta["file_name"] = json!(name);
    }
    // Chroma metadata is flat scalars: the locator is three of them.
    if let Some(locator) = &record.locator {
        meta["loc_unit"] = json!(locator.unit.as_str());
        meta["loc_start"] = json!(locator.start);
        meta["loc_end"] = json!(locator.end);
    }
    meta
}

fn record(id: &Value, document: &Value, meta: &Value) -> Option<ChunkRecord> {
    let text = |key: &str| meta[key].as_str().unwrap_or_default().to_string();
    Some(ChunkRecord {
        id: id.as_str()?.to_string(),
        text: document.as_str().unwrap_or_default().to_string(),
        source_url: text("source_url"),
        title: text("title"),
        heading: text("heading"),
        chunk_index: meta["chunk_index"].as_u64().unwrap_or(0) as u32,
        content_hash: text("content_hash"),
        fetched_at: meta["fetched_at"].as_u64().unwrap_or(0),
        crawl_id: meta["crawl_id"].as_str().map(str::to_string),
        locator: meta["loc_unit"]
            .as_str()
            .and_then(Unit::parse)
            .map(|unit| Locator {
                unit,
                start: meta["loc_start"].as_u64().unwrap_or(0),
                end: meta["loc_end"].as_u64().unwrap_or(0),
            }),
        file_name: meta["file_name"].as_str().map(str::to_string),
    })
}

fn records(ids: &Value, documents: &Value, metadatas: &Value) -> Vec<ChunkRecord> {
    let ids = ids.as_array().map(Vec::as_slice).unwrap_or_default();
    ids.iter()
        .enumerate()
        .filter_map(|(i, id)| record(id, &documents[i], &metadatas[i]))
        .collect()
}

fn value(v: &FilterValue) -> Value {
    match v {
        FilterValue::Text(s) => json!(s),
        FilterValue::Number(n) => json!(n),
    }
}

/// The `where` clause for `filter`, or `None` for the empty filter.
fn where_clause(filter: &Filter) -> Option<Value> {
    let one = |c: &Condition| -> Value {
        let (field, op, v): (Field, &str, Value) = match c {
            Condition::Eq(f, v) => (*f, "$eq", value(v)),
            Condition::Ne(f, v) => (*f, "$ne", value(v)),
            Condition::In(f, vs) => (
                *f,
                "$in",
                Value::from(vs.iter().map(value).collect::<Vec<_>>()),
            ),
            Condition::NotIn(f, vs) => (
                *f,
                "$nin",
                Value::from(vs.iter().map(value).collect::<Vec<_>>()),
            ),
            Condition::Gt(f, n) => (*f, "$gt", json!(n)),
            Condition::Gte(f, n) => (*f, "$gte", json!(n)),
            Condition::Lt(f, n) => (*f, "$lt", json!(n)),
            Condition::Lte(f, n) => (*f, "$lte", json!(n)),
        };
        json!({ field.key(): { op: v } })
    };
    match filter.all.as_slice() {
        [] => None,
        [single] => Some(one(single)),
        many => Some(json!({"$and": many.iter().map(one).collect::<Vec<_>>()})),
    }
}

fn with_where(mut body: Value, filter: &Filter) -> Value {
    if let Some(clause) = where_clause(filter) {
        body["where"] = clause;
    }
    body
}

impl VectorStore for ChromaStore {
    fn backend(&self) -> &'static str {
        "chroma"
    }

    fn create_collection<'a>(
        &'a self,
        name: &'a str,
        spec: &'a CollectionSpec,
    ) -> BoxFuture<'a, Result<CollectionInfo, StoreError>> {
        Box::pin(async move {
            validate_collection_name(name)?;
            self.ensure_database().await?;
            // Postings a collection of the same name left behind must not rank its chunks.
            self.lexical
                .clear(&self.index_name(name))
                .await
                .map_err(unavailable)?;
            let body = json!({
                "name": name,
                "configuration": {"hnsw": {"space": "cosine"}},
                "metadata": {EMBEDDER_KEY: spec.embedder, DIMENSION_KEY: spec.dimension},
            });
            let (status, answer) = self
                .call(Method::POST, &self.collections_url, Some(&body))
                .await?;
            match status {
                s if s.is_success() => {
                    let (_, id, spec) = parse_collection(&answer).ok_or_else(|| {
                        StoreError::Backend(format!("unexpected answer: {answer}"))
                    })?;
                    self.known.insert(name.to_string(), (id, spec.clone()));
                    Ok(CollectionInfo {
                        name: name.to_string(),
                        spec,
                        chunks: 0,
                    })
                }
                StatusCode::CONFLICT => Err(StoreError::AlreadyExists(name.to_string())),
                s => Err(StoreError::Backend(format!("{s}: {}", message(&answer)))),
            }
        })
    }

    fn collection<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<CollectionInfo>, StoreError>> {
        Box::pin(async move {
            self.known.remove(name); // always ask: another replica may have changed it
            match self.resolve(name).await {
                Ok((id, spec)) => Ok(Some(CollectionInfo {
                    name: name.to_string(),
                    chunks: self.count(&id).await?,
                    spec,
                })),
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
            match self.resolve(name).await {
                Ok((_, spec)) => Ok(Some(spec)),
                Err(StoreError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn list_collections(&self) -> BoxFuture<'_, Result<Vec<CollectionInfo>, StoreError>> {
        Box::pin(async move {
            self.ensure_database().await?;
            let mut all = Vec::new();
            let page = 100;
            for offset in (0..).step_by(page) {
                let url = format!("{}?limit={page}&offset={offset}", self.collections_url);
                let answer = self.ok(Method::GET, &url, None).await?;
                let items = answer.as_array().cloned().unwrap_or_default();
                // Collections Aurora did not create (no embedder recorded) are not ours.
                all.extend(items.iter().filter_map(parse_collection));
                if items.len() < page {
                    break;
                }
            }
            let counts =
                futures::future::join_all(all.iter().map(|(_, id, _)| self.count(id))).await;
            let mut infos = Vec::with_capacity(all.len());
            for ((name, id, spec), count) in all.into_iter().zip(counts) {
                self.known.insert(name.clone(), (id, spec.clone()));
                infos.push(CollectionInfo {
                    name,
                    spec,
                    chunks: count?,
                });
            }
            infos.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(infos)
        })
    }

    fn delete_collection<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.ensure_database().await?;
            self.known.remove(name);
            let url = format!("{}/{name}", self.collections_url);
            let (status, answer) = self.call(Method::DELETE, &url, None).await?;
            match status {
                s if s.is_success() => {
                    // Left behind, the postings are cleared when the name is used again.
                    if let Err(e) = self.lexical.clear(&self.index_name(name)).await {
                        tracing::warn!(collection = name, error = %e,
                            "lexical index of a deleted collection not cleared");
                    }
                    Ok(true)
                }
                StatusCode::NOT_FOUND => Ok(false),
                s => Err(StoreError::Backend(format!("{s}: {}", message(&answer)))),
            }
        })
    }

    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        chunks: Vec<NewChunk>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (_, spec) = self.resolve(collection).await?;
            if let Some(bad) = chunks.iter().find(|c| c.embedding.len() != spec.dimension) {
                return Err(StoreError::Backend(format!(
                    "chunk `{}` has a {}-dimensional vector; collection `{collection}` holds {}",
                    bad.record.id,
                    bad.embedding.len(),
                    spec.dimension
                )));
            }
            // Indexed first: a chunk Chroma holds is always findable by its words, and one the
            // index names but Chroma lacks (this write failing half-way) is simply skipped.
            let docs: Vec<LexicalDoc> = chunks
                .iter()
                .map(|c| LexicalDoc::chunk(&c.record))
                .collect();
            self.lexical
                .index(&self.index_name(collection), &docs)
                .await
                .map_err(unavailable)?;
            let batch = self.max_batch().await;
            for part in chunks.chunks(batch) {
                let ids: Vec<&str> = part.iter().map(|c| c.record.id.as_str()).collect();
                let body = json!({
                    "ids": ids,
                    "embeddings": part.iter().map(|c| &c.embedding).collect::<Vec<_>>(),
                    "documents": part.iter().map(|c| &c.record.text).collect::<Vec<_>>(),
                    "metadatas": part.iter().map(|c| metadata(&c.record)).collect::<Vec<_>>(),
                });
                self.record_op(collection, "upsert", &body).await?;
            }
            Ok(())
        })
    }

    fn delete<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let doomed = self.ids_where(collection, filter, None).await?;
            if doomed.is_empty() {
                return Ok(0);
            }
            for part in doomed.chunks(self.max_batch().await) {
                self.record_op(collection, "delete", &json!({"ids": part}))
                    .await?;
                self.lexical
                    .remove(&self.index_name(collection), part)
                    .await
                    .map_err(unavailable)?;
            }
            Ok(doomed.len() as u64)
        })
    }

    fn find<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ChunkRecord>, StoreError>> {
        Box::pin(async move {
            self.get_records(collection, with_where(json!({"limit": limit}), filter))
                .await
        })
    }

    fn get<'a>(
        &'a self,
        collection: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<ChunkRecord>, StoreError>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            self.get_records(collection, json!({"ids": ids})).await
        })
    }

    fn dense_rank<'a>(
        &'a self,
        collection: &'a str,
        vector: &'a [f32],
        k: usize,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StoreError>> {
        Box::pin(async move {
            if k == 0 {
                return Ok(Vec::new());
            }
            // Ids and distances only: the chunks a search returns are fetched once it has fused
            // its rankings, so Chroma never reads (nor sends) the text of every candidate.
            let body = with_where(
                json!({
                    "query_embeddings": [vector],
                    "n_results": k,
                    "include": ["distances"],
                }),
                filter,
            );
            let answer = self.record_op(collection, "query", &body).await?;
            let ids = answer["ids"][0]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let distances = answer["distances"][0]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            Ok(ids
                .iter()
                .zip(distances)
                .filter_map(|(id, distance)| {
                    Some(Ranked {
                        id: id.as_str()?.to_string(),
                        // Cosine distance → similarity (Chroma may return tiny negatives for 0).
                        score: 1.0 - distance.as_f64().unwrap_or(1.0) as f32,
                    })
                })
                .collect())
        })
    }

    fn lexical_rank<'a>(
        &'a self,
        collection: &'a str,
        query: &'a str,
        k: usize,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StoreError>> {
        Box::pin(async move {
            let terms = lexical::count_terms(query);
            if k == 0 || terms.counts.is_empty() {
                return Ok(Vec::new());
            }
            let ranked = self.rank(collection, &terms, k, filter).await?;
            if !ranked.is_empty() {
                return Ok(ranked);
            }
            match self.lexical_lost(collection).await? {
                true => self.rank(collection, &terms, k, filter).await,
                false => Ok(ranked),
            }
        })
    }

    fn vocabulary<'a>(
        &'a self,
        collection: &'a str,
        terms: &'a [u32],
    ) -> BoxFuture<'a, Result<Vocabulary, StoreError>> {
        Box::pin(async move {
            let index = self.index_name(collection);
            let vocabulary = self
                .lexical
                .vocabulary(&index, terms)
                .await
                .map_err(unavailable)?;
            if vocabulary.chunks > 0 {
                return Ok(vocabulary);
            }
            match self.lexical_lost(collection).await? {
                true => self
                    .lexical
                    .vocabulary(&index, terms)
                    .await
                    .map_err(unavailable),
                false => Ok(vocabulary),
            }
        })
    }
}

impl HealthCheck for ChromaStore {
    fn name(&self) -> &'static str {
        "chroma"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let url = format!("{}/api/v2/heartbeat", self.base);
            let response = self
                .http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map_err(|e| format!("cannot reach {url}: {e}"))?;
            match response.status().is_success() {
                true => Ok(()),
                false => Err(format!("{url} answered {}", response.status())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_translate_to_where_clauses() {
        assert_eq!(where_clause(&Filter::default()), None);
        assert_eq!(
            where_clause(&Filter::source_url("https://a")),
            Some(json!({"source_url": {"$eq": "https://a"}}))
        );
        let filter = Filter {
            all: vec![
                Condition::In(Field::Title, vec![FilterValue::Text("x".into())]),
                Condition::Gte(Field::FetchedAt, 10),
            ],
        };
        assert_eq!(
            where_clause(&filter),
            Some(json!({"$and": [{"title": {"$in": ["x"]}}, {"fetched_at": {"$gte": 10}}]}))
        );
    }
}
