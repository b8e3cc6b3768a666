//! Where chunks live (`VectorStore`): collections, chunk records, filters and search hits.

use futures::future::BoxFuture;

use super::Ranked;

/// A chunk as stored and as found: its text and the metadata every backend keeps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkRecord {
    /// Stable per (source_url, chunk_index), so re-ingesting a page overwrites its chunks.
    pub id: String,
    pub text: String,
    pub source_url: String,
    pub title: String,
    /// The heading path, e.g. `Install > From source`.
    pub heading: String,
    pub chunk_index: u32,
    /// Hash of the whole document the chunk came from (unchanged page → nothing to do).
    pub content_hash: String,
    /// Unix seconds.
    pub fetched_at: u64,
    pub crawl_id: Option<String>,
    /// Where in its source the chunk sits (pages, a slide, a time range), for citations.
    pub locator: Option<crate::model::Locator>,
    /// The file the chunk came from: an upload's name, a document URL's last segment.
    pub file_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    pub record: ChunkRecord,
    pub embedding: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub chunk: ChunkRecord,
    /// Cosine similarity (dense) or BM25 (lexical); higher is better.
    pub score: f32,
}

/// What built a collection's vectors; checked on every write and query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionSpec {
    pub embedder: String,
    pub dimension: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionInfo {
    pub name: String,
    pub spec: CollectionSpec,
    pub chunks: u64,
}

/// Metadata a filter can look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    SourceUrl,
    Title,
    Heading,
    ChunkIndex,
    ContentHash,
    FetchedAt,
    CrawlId,
}

impl Field {
    pub const ALL: [Field; 7] = [
        Field::SourceUrl,
        Field::Title,
        Field::Heading,
        Field::ChunkIndex,
        Field::ContentHash,
        Field::FetchedAt,
        Field::CrawlId,
    ];

    /// The metadata key (the same in the API, in ChromaDB and in the embedded store).
    pub fn key(self) -> &'static str {
        match self {
            Field::SourceUrl => "source_url",
            Field::Title => "title",
            Field::Heading => "heading",
            Field::ChunkIndex => "chunk_index",
            Field::ContentHash => "content_hash",
            Field::FetchedAt => "fetched_at",
            Field::CrawlId => "crawl_id",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Field::ChunkIndex | Field::FetchedAt)
    }

    pub fn from_key(key: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.key() == key)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Text(String),
    Number(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Eq(Field, FilterValue),
    Ne(Field, FilterValue),
    In(Field, Vec<FilterValue>),
    NotIn(Field, Vec<FilterValue>),
    Gt(Field, i64),
    Gte(Field, i64),
    Lt(Field, i64),
    Lte(Field, i64),
}

/// Conditions that must all hold; the empty filter matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub all: Vec<Condition>,
}

impl Filter {
    pub fn source_url(url: &str) -> Self {
        Filter {
            all: vec![Condition::Eq(
                Field::SourceUrl,
                FilterValue::Text(url.to_string()),
            )],
        }
    }

    /// Whether `chunk` satisfies every condition (the embedded store's evaluation, and the
    /// reference the ChromaDB translation is tested against).
    pub fn matches(&self, chunk: &ChunkRecord) -> bool {
        self.all.iter().all(|condition| condition.matches(chunk))
    }
}

impl Condition {
    fn matches(&self, chunk: &ChunkRecord) -> bool {
        let value = |field: Field| -> Option<FilterValue> {
            Some(match field {
                Field::SourceUrl => FilterValue::Text(chunk.source_url.clone()),
                Field::Title => FilterValue::Text(chunk.title.clone()),
                Field::Heading => FilterValue::Text(chunk.heading.clone()),
                Field::ContentHash => FilterValue::Text(chunk.content_hash.clone()),
                Field::CrawlId => FilterValue::Text(chunk.crawl_id.clone()?),
                Field::ChunkIndex => FilterValue::Number(i64::from(chunk.chunk_index)),
                Field::FetchedAt => FilterValue::Number(chunk.fetched_at as i64),
            })
        };
        let number = |field: Field| match value(field) {
            Some(FilterValue::Number(n)) => Some(n),
            _ => None,
        };
        match self {
            Condition::Eq(f, v) => value(*f).as_ref() == Some(v),
            Condition::Ne(f, v) => value(*f).as_ref() != Some(v),
            Condition::In(f, vs) => value(*f).is_some_and(|x| vs.contains(&x)),
            Condition::NotIn(f, vs) => !value(*f).is_some_and(|x| vs.contains(&x)),
            Condition::Gt(f, n) => number(*f).is_some_and(|x| x > *n),
            Condition::Gte(f, n) => number(*f).is_some_and(|x| x >= *n),
            Condition::Lt(f, n) => number(*f).is_some_and(|x| x < *n),
            Condition::Lte(f, n) => number(*f).is_some_and(|x| x <= *n),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("collection `{0}` does not exist")]
    NotFound(String),
    #[error("collection `{0}` already exists")]
    AlreadyExists(String),
    #[error(
        "collection `{collection}` was built with {built_with}; it cannot be used with {given}"
    )]
    WrongEmbedder {
        collection: String,
        built_with: String,
        given: String,
    },
    #[error(
        "invalid collection name `{0}`: use 3–63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"
    )]
    InvalidName(String),
    /// The backend cannot be reached (ChromaDB down): retry later.
    #[error("vector store unavailable: {0}")]
    Unavailable(String),
    #[error("vector store error: {0}")]
    Backend(String),
}

/// Checks a collection name against the rules every backend accepts.
/// Collection names, as ChromaDB takes them: [`COLLECTION_NAME_MIN`]–[`COLLECTION_NAME_MAX`]
/// letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit, no `..`.
pub const COLLECTION_NAME_MIN: usize = 3;
pub const COLLECTION_NAME_MAX: usize = 63;
/// The same rule (less the length) as a regular expression, for the OpenAPI documents; a test
/// holds it to [`validate_collection_name`].
pub const COLLECTION_NAME_PATTERN: &str =
    r"^[A-Za-z0-9](?:[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*\.?[A-Za-z0-9])?$";

pub fn validate_collection_name(name: &str) -> Result<(), StoreError> {
    let ok = (COLLECTION_NAME_MIN..=COLLECTION_NAME_MAX).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !name.contains("..");
    match ok {
        true => Ok(()),
        false => Err(StoreError::InvalidName(name.to_string())),
    }
}

/// Where chunks and their vectors live, searchable by vector and by words.
pub trait VectorStore: Send + Sync + 'static {
    /// `chroma` or `embedded`.
    fn backend(&self) -> &'static str;

    fn create_collection<'a>(
        &'a self,
        name: &'a str,
        spec: &'a CollectionSpec,
    ) -> BoxFuture<'a, Result<CollectionInfo, StoreError>>;

    fn collection<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<CollectionInfo>, StoreError>>;

    fn list_collections(&self) -> BoxFuture<'_, Result<Vec<CollectionInfo>, StoreError>>;

    /// What built the collection, `None` if there is none. Unlike [`VectorStore::collection`] it
    /// may answer from a cache (no chunk count): it is asked on every search. A collection
    /// deleted elsewhere shows up as missing at its next record operation.
    fn spec<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<CollectionSpec>, StoreError>>;

    /// Deletes the collection and everything in it; `false` if there was none.
    fn delete_collection<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Inserts or replaces chunks by id. Vectors must have the collection's dimension.
    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        chunks: Vec<NewChunk>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Deletes the chunks matching `filter`; returns how many.
    fn delete<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Chunks matching `filter`, in no particular order, at most `limit`.
    fn find<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ChunkRecord>, StoreError>>;

    /// The chunks with these ids, in no particular order (unknown ids are left out).
    fn get<'a>(
        &'a self,
        collection: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<ChunkRecord>, StoreError>>;

    /// The ids of the `k` chunks most similar to `vector`, with their cosine similarity, best
    /// first. Ids only: a search fuses rankings first and fetches just the chunks it returns.
    fn dense_rank<'a>(
        &'a self,
        collection: &'a str,
        vector: &'a [f32],
        k: usize,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StoreError>>;

    /// The ids of the `k` chunks that best match the words of `query` by BM25 (`crate::lexical`),
    /// with their scores, best first. Chunks sharing no term with the query are not returned.
    fn lexical_rank<'a>(
        &'a self,
        collection: &'a str,
        query: &'a str,
        k: usize,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StoreError>>;

    /// Which of `terms` (`lexical::term_id`s of stemmed words) some chunk of the collection
    /// holds, as its lexical index knows them.
    fn vocabulary<'a>(
        &'a self,
        collection: &'a str,
        terms: &'a [u32],
    ) -> BoxFuture<'a, Result<super::Vocabulary, StoreError>>;

    /// [`VectorStore::dense_rank`] with the chunks.
    fn dense_search<'a>(
        &'a self,
        collection: &'a str,
        vector: &'a [f32],
        k: usize,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Hit>, StoreError>> {
        Box::pin(async move {
            let ranked = self.dense_rank(collection, vector, k, filter).await?;
            with_chunks(self, collection, ranked).await
        })
    }

    /// [`VectorStore::lexical_rank`] with the chunks.
    fn lexical_search<'a>(
        &'a self,
        collection: &'a str,
        query: &'a str,
        k: usize,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Hit>, StoreError>> {
        Box::pin(async move {
            let ranked = self.lexical_rank(collection, query, k, filter).await?;
            with_chunks(self, collection, ranked).await
        })
    }
}

/// The chunks of `ranked`, in its order, each with its score; ids the store does not hold (a
/// write still on its way) are left out.
pub async fn with_chunks<S: VectorStore + ?Sized>(
    store: &S,
    collection: &str,
    ranked: Vec<Ranked>,
) -> Result<Vec<Hit>, StoreError> {
    if ranked.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = ranked.iter().map(|r| r.id.clone()).collect();
    let mut chunks: std::collections::HashMap<String, ChunkRecord> = store
        .get(collection, &ids)
        .await?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    Ok(ranked
        .into_iter()
        .filter_map(|r| {
            Some(Hit {
                chunk: chunks.remove(&r.id)?,
                score: r.score,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name of up to six characters over an alphabet with each kind of character: the
    /// pattern and the function agree on all of them.
    #[test]
    fn the_name_pattern_says_what_the_check_does() {
        let pattern = regex::Regex::new(COLLECTION_NAME_PATTERN).expect("pattern");
        let alphabet = ['a', 'Z', '7', '.', '-', '_', '!'];
        let (mut names, mut all) = (vec![String::new()], Vec::new());
        for _ in 0..6 {
            names = names
                .iter()
                .flat_map(|n| alphabet.iter().map(move |c| format!("{n}{c}")))
                .collect();
            all.extend(names.iter().cloned());
        }
        for name in all.iter().filter(|n| n.len() >= COLLECTION_NAME_MIN) {
            assert_eq!(
                pattern.is_match(name),
                validate_collection_name(name).is_ok(),
                "`{name}`"
            );
        }
    }
}
