//! The `VectorStore` port: ChromaDB (with Redis holding its BM25 index) and the embedded store,
//! held to the same behaviour — and to the same hybrid ranking on a corpus of their own.

use std::sync::Arc;

use aurora::adapters::chroma::ChromaStore;
use aurora::adapters::redis::RedisState;
use aurora_actors::knowledge::{self, EmbedContext, KnowledgeConfig};
use aurora_actors::local::EmbeddedStore;
use aurora_actors::local::MemoryLexical;
use aurora_actors::model::{Locator, Unit};
use aurora_actors::ports::{
    ChunkRecord, CollectionSpec, Condition, Field, Filter, FilterValue, LexicalIndex, NewChunk,
    StoreError, VectorStore,
};

use crate::{service_url, unique};

/// A store plus whatever must outlive it (the embedded store's folder).
pub struct Subject {
    pub store: Arc<dyn VectorStore>,
    _dir: Option<tempfile::TempDir>,
}

pub fn chroma() -> Subject {
    let state = RedisState::connect(
        &service_url("AURORA_TEST_REDIS_URL"),
        &unique("aurora-test"),
    )
    .expect("valid Redis URL");
    chroma_with(Arc::new(state.lexical(64 << 20)), &unique("db"))
}

/// A ChromaDB store over database `database`, with `lexical` as its lexical index.
fn chroma_with(lexical: Arc<dyn LexicalIndex>, database: &str) -> Subject {
    let store = ChromaStore::new(
        &service_url("AURORA_TEST_CHROMA_URL"),
        "default_tenant",
        database,
        lexical,
    )
    .expect("valid Chroma URL");
    Subject {
        store: Arc::new(store),
        _dir: None,
    }
}

pub fn embedded() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    Subject {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

const DIM: usize = 8;

fn spec() -> CollectionSpec {
    CollectionSpec {
        embedder: "test-embedder".into(),
        dimension: DIM,
    }
}

/// A unit vector mostly along `axis`, tilted towards `axis + 1` by `tilt`.
fn vector(axis: usize, tilt: f32) -> Vec<f32> {
    let mut v = [0.0; DIM];
    v[axis % DIM] = 1.0;
    v[(axis + 1) % DIM] = tilt;
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

fn chunk(url: &str, index: u32, text: &str, embedding: Vec<f32>) -> NewChunk {
    NewChunk {
        record: ChunkRecord {
            id: format!("{url}#{index}"),
            text: text.to_string(),
            source_url: url.to_string(),
            title: format!("Title of {url}"),
            heading: format!("Section {index}"),
            chunk_index: index,
            content_hash: format!("hash-{url}"),
            fetched_at: 1_700_000_000 + u64::from(index),
            crawl_id: index.is_multiple_of(2).then(|| "crawl-1".to_string()),
            // Odd chunks come from documents: both stores keep where they sit.
            locator: (!index.is_multiple_of(2)).then_some(Locator {
                unit: Unit::Page,
                start: 3,
                end: 4,
            }),
            file_name: (!index.is_multiple_of(2)).then(|| "guide.pdf".to_string()),
        },
        embedding,
    }
}

/// Four chunks from two pages, on distinct axes and with distinct words.
fn corpus() -> Vec<NewChunk> {
    vec![
        chunk(
            "https://a.test/",
            0,
            "Actors supervise their children and restart them after a crash.",
            vector(0, 0.0),
        ),
        chunk(
            "https://a.test/",
            1,
            "The supervisor uses exponential backoff between restarts.",
            vector(1, 0.0),
        ),
        chunk(
            "https://b.test/",
            0,
            "Python json.dumps serialises objects to JSON text.",
            vector(2, 0.0),
        ),
        chunk(
            "https://b.test/",
            1,
            "Rust ownership rules prevent data races at compile time.",
            vector(3, 0.0),
        ),
    ]
}

async fn filled(store: &dyn VectorStore) -> String {
    let name = unique("c");
    store.create_collection(&name, &spec()).await.unwrap();
    store.upsert(&name, corpus()).await.unwrap();
    name
}

fn ids(hits: &[aurora_actors::ports::Hit]) -> Vec<String> {
    hits.iter().map(|h| h.chunk.id.clone()).collect()
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn chroma() {
                let subject = super::chroma();
                super::$name(subject.store.as_ref()).await;
            }
            #[tokio::test]
            async fn embedded() {
                let subject = super::embedded();
                super::$name(subject.store.as_ref()).await;
            }
        }
    };
}

both!(collections_have_a_lifecycle);
async fn collections_have_a_lifecycle(store: &dyn VectorStore) {
    let name = unique("life");
    let info = store.create_collection(&name, &spec()).await.unwrap();
    assert_eq!(
        (info.name.as_str(), info.spec.clone(), info.chunks),
        (name.as_str(), spec(), 0)
    );
    assert_eq!(
        store.create_collection(&name, &spec()).await.unwrap_err(),
        StoreError::AlreadyExists(name.clone())
    );
    assert_eq!(store.collection(&name).await.unwrap().unwrap().spec, spec());
    assert!(store.collection(&unique("nope")).await.unwrap().is_none());
    let listed = store.list_collections().await.unwrap();
    assert!(
        listed.iter().any(|c| c.name == name && c.spec == spec()),
        "{listed:?}"
    );
    for bad in ["ab", "-leading", "has space", "a..b", "trailing_"] {
        assert!(
            matches!(
                store.create_collection(bad, &spec()).await,
                Err(StoreError::InvalidName(_))
            ),
            "{bad}"
        );
    }
    assert!(store.delete_collection(&name).await.unwrap());
    assert!(!store.delete_collection(&name).await.unwrap());
    assert!(store.collection(&name).await.unwrap().is_none());
    assert_eq!(
        store.upsert(&name, corpus()).await.unwrap_err(),
        StoreError::NotFound(name.clone())
    );
}

both!(upsert_replaces_by_id_and_find_filters);
async fn upsert_replaces_by_id_and_find_filters(store: &dyn VectorStore) {
    let name = filled(store).await;
    assert_eq!(store.collection(&name).await.unwrap().unwrap().chunks, 4);
    let mut a = store
        .find(&name, &Filter::source_url("https://a.test/"), 10)
        .await
        .unwrap();
    a.sort_by_key(|r| r.chunk_index);
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].title, "Title of https://a.test/");
    assert_eq!(a[0].crawl_id.as_deref(), Some("crawl-1"));
    assert_eq!(a[1].crawl_id, None);
    assert_eq!(a[1].fetched_at, 1_700_000_001);
    assert_eq!((a[0].locator, a[0].file_name.as_deref()), (None, None));
    assert_eq!(
        (
            a[1].locator.map(|l| l.to_string()),
            a[1].file_name.as_deref()
        ),
        (Some("pages 3–4".to_string()), Some("guide.pdf"))
    );

    // Same id, new text: replaced, not added.
    let changed = chunk(
        "https://a.test/",
        1,
        "Rewritten: backoff doubles each time.",
        vector(1, 0.0),
    );
    store.upsert(&name, vec![changed]).await.unwrap();
    assert_eq!(store.collection(&name).await.unwrap().unwrap().chunks, 4);
    let again = store
        .find(&name, &Filter::source_url("https://a.test/"), 10)
        .await
        .unwrap();
    assert!(again.iter().any(|r| r.text.starts_with("Rewritten")));
    assert!(
        store
            .find(&name, &Filter::default(), 3)
            .await
            .unwrap()
            .len()
            == 3,
        "limit applies"
    );
}

both!(dense_search_ranks_by_cosine);
async fn dense_search_ranks_by_cosine(store: &dyn VectorStore) {
    let name = filled(store).await;
    let query = vector(1, 0.3); // nearest axis 1, then axis 2
    let hits = store
        .dense_search(&name, &query, 2, &Filter::default())
        .await
        .unwrap();
    assert_eq!(ids(&hits), ["https://a.test/#1", "https://b.test/#0"]);
    assert!(
        (hits[0].score - 0.958).abs() < 0.01,
        "cosine similarity: {}",
        hits[0].score
    );
    assert!(hits[0].score > hits[1].score);
    let filtered = store
        .dense_search(&name, &query, 4, &Filter::source_url("https://b.test/"))
        .await
        .unwrap();
    assert!(
        filtered
            .iter()
            .all(|h| h.chunk.source_url == "https://b.test/")
    );
    assert_eq!(filtered.len(), 2);
    assert!(
        store
            .dense_search(&name, &query, 0, &Filter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .dense_search(&name, &[1.0, 0.0], 2, &Filter::default())
            .await
            .is_err(),
        "a vector of the wrong dimension is refused"
    );
}

both!(lexical_search_ranks_by_bm25);
async fn lexical_search_ranks_by_bm25(store: &dyn VectorStore) {
    let name = filled(store).await;
    let hits = store
        .lexical_search(&name, "json serialise", 4, &Filter::default())
        .await
        .unwrap();
    assert_eq!(
        ids(&hits),
        ["https://b.test/#0"],
        "stems match: serialises ~ serialise"
    );
    // Both supervisor chunks share words; the one with more of the query ranks first.
    let hits = store
        .lexical_search(&name, "supervisor restarts backoff", 4, &Filter::default())
        .await
        .unwrap();
    assert_eq!(ids(&hits)[0], "https://a.test/#1");
    assert!(ids(&hits).contains(&"https://a.test/#0".to_string()));
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(
        store
            .lexical_search(&name, "kubernetes", 4, &Filter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .lexical_search(&name, "the of and", 4, &Filter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let filtered = store
        .lexical_search(
            &name,
            "restart supervise json",
            4,
            &Filter::source_url("https://b.test/"),
        )
        .await
        .unwrap();
    assert_eq!(ids(&filtered), ["https://b.test/#0"]);
}

both!(delete_removes_chunks_from_every_search);
async fn delete_removes_chunks_from_every_search(store: &dyn VectorStore) {
    let name = filled(store).await;
    assert_eq!(
        store
            .delete(&name, &Filter::source_url("https://b.test/"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .delete(&name, &Filter::source_url("https://b.test/"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.collection(&name).await.unwrap().unwrap().chunks, 2);
    assert!(
        store
            .lexical_search(&name, "json", 4, &Filter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let dense = store
        .dense_search(&name, &vector(2, 0.0), 4, &Filter::default())
        .await
        .unwrap();
    assert!(
        dense
            .iter()
            .all(|h| h.chunk.source_url == "https://a.test/")
    );
}

both!(filters_support_every_operator);
async fn filters_support_every_operator(store: &dyn VectorStore) {
    let name = filled(store).await;
    let name = name.as_str();
    let count = |conditions: Vec<Condition>| {
        let filter = Filter { all: conditions };
        async move { store.find(name, &filter, 10).await.unwrap().len() }
    };
    let text = |s: &str| FilterValue::Text(s.to_string());
    assert_eq!(
        count(vec![Condition::Ne(
            Field::SourceUrl,
            text("https://a.test/")
        )])
        .await,
        2
    );
    assert_eq!(
        count(vec![Condition::In(
            Field::SourceUrl,
            vec![text("https://a.test/"), text("x")]
        )])
        .await,
        2
    );
    assert_eq!(
        count(vec![Condition::NotIn(
            Field::ChunkIndex,
            vec![FilterValue::Number(0)]
        )])
        .await,
        2
    );
    assert_eq!(count(vec![Condition::Gt(Field::ChunkIndex, 0)]).await, 2);
    assert_eq!(
        count(vec![Condition::Gte(Field::FetchedAt, 1_700_000_000)]).await,
        4
    );
    assert_eq!(
        count(vec![Condition::Lt(Field::FetchedAt, 1_700_000_001)]).await,
        2
    );
    assert_eq!(count(vec![Condition::Lte(Field::ChunkIndex, 1)]).await, 4);
    assert_eq!(
        count(vec![Condition::Eq(Field::CrawlId, text("crawl-1"))]).await,
        2
    );
    assert_eq!(
        count(vec![
            Condition::Eq(Field::SourceUrl, text("https://b.test/")),
            Condition::Eq(Field::ChunkIndex, FilterValue::Number(1)),
        ])
        .await,
        1
    );
}

/// `n` chunks over 50 pages, with words from a skewed vocabulary and vectors drawn at random
/// (signed, so similarities spread out), written in upserts of 700.
fn big_corpus(n: u32) -> Vec<Vec<NewChunk>> {
    let mut state: u64 = 7;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    let chunks: Vec<NewChunk> = (0..n)
        .map(|i| {
            let words: Vec<String> = (0..30)
                .map(|_| {
                    let r = next() % 1000;
                    format!("w{}", r * r / 4000)
                })
                .collect();
            let mut v: Vec<f32> = (0..DIM)
                .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            chunk(
                &format!("https://big.test/p{}", i % 50),
                i / 50,
                &words.join(" "),
                v,
            )
        })
        .collect();
    chunks.chunks(700).map(<[NewChunk]>::to_vec).collect()
}

/// The same collection, written the same way, in both stores.
async fn both_filled(n: u32) -> (Subject, Subject, String) {
    let (chroma, embedded) = (chroma(), embedded());
    let name = unique("big");
    for store in [chroma.store.as_ref(), embedded.store.as_ref()] {
        store.create_collection(&name, &spec()).await.unwrap();
        for part in big_corpus(n) {
            store.upsert(&name, part).await.unwrap();
        }
    }
    (chroma, embedded, name)
}

const QUERIES: [&str; 4] = ["w0 w3", "w120 w7", "w200 w201 w202", "w1 w240"];

fn page_seven() -> Filter {
    Filter::source_url("https://big.test/p7")
}

/// BM25 over ChromaDB (Redis postings) and over the embedded store: the same chunks with the
/// same scores, to the bit, with and without filters — one admitting 50 chunks (ranked one by
/// one) and one admitting 2 450 (the overall ranking, filtered).
#[tokio::test]
async fn lexical_search_ranks_alike_on_chroma_and_embedded() {
    let (chroma, embedded, name) = both_filled(2500).await;
    let most = Filter {
        all: vec![Condition::Ne(
            Field::SourceUrl,
            FilterValue::Text("https://big.test/p7".into()),
        )],
    };
    for query in QUERIES {
        for filter in [Filter::default(), page_seven(), most.clone()] {
            let mut found = Vec::new();
            for store in [chroma.store.as_ref(), embedded.store.as_ref()] {
                let hits = store
                    .lexical_search(&name, query, 50, &filter)
                    .await
                    .unwrap();
                assert!(!hits.is_empty(), "{query} {filter:?}");
                assert!(hits.iter().all(|h| filter.matches(&h.chunk)));
                found.push(
                    hits.iter()
                        .map(|h| (h.chunk.id.clone(), h.score))
                        .collect::<Vec<_>>(),
                );
            }
            assert_eq!(found[0], found[1], "{query:?} {filter:?}");
        }
    }
}

fn fusion() -> KnowledgeConfig {
    KnowledgeConfig {
        documents: Default::default(),
        chunk_size: 1000,
        chunk_overlap: 150,
        quality: aurora_actors::ingest::quality::Rules {
            min_chars: 10,
            max_link_ratio: 0.7,
            min_unique_words: 0,
            ..Default::default()
        },
        near_duplicates: false,
        embed_context: EmbedContext::None,
        embed_batch: 16,
        cache_ttl: std::time::Duration::from_secs(60),
        candidates: 50,
        rrf_k: 60.0,
        dense_weight: 1.0,
        lexical_weight: 0.5,
        pages: Default::default(),
    }
}

/// Hybrid search (dense + BM25, fused as the knowledge base fuses them) ranks alike on both
/// stores. Small enough that ChromaDB's HNSW finds the exact nearest neighbours.
#[tokio::test]
async fn hybrid_search_ranks_alike_on_chroma_and_embedded() {
    let (chroma, embedded, name) = both_filled(400).await;
    for (q, query) in QUERIES.iter().enumerate() {
        let mut vector = vec![0.2f32; DIM];
        vector[q % DIM] = -1.0;
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        vector.iter_mut().for_each(|x| *x /= norm);
        for filter in [Filter::default(), page_seven()] {
            let mut fused = Vec::new();
            for store in [chroma.store.as_ref(), embedded.store.as_ref()] {
                let dense = store.dense_rank(&name, &vector, 50, &filter).await.unwrap();
                let lexical = store.lexical_rank(&name, query, 50, &filter).await.unwrap();
                fused.push(
                    knowledge::fuse(&dense, &lexical, 10, &fusion())
                        .iter()
                        .map(|h| h.id.clone())
                        .collect::<Vec<_>>(),
                );
            }
            assert!(!fused[0].is_empty(), "{query:?} {filter:?}");
            assert_eq!(fused[0], fused[1], "{query:?} {filter:?}");
        }
    }
}

/// A collection whose lexical index is lost (Redis flushed, or written before the index existed)
/// is found by its words again: the index is rebuilt from ChromaDB at the first search.
#[tokio::test]
async fn a_lost_lexical_index_is_rebuilt_from_chroma() {
    let database = unique("db");
    let first = chroma_with(Arc::new(MemoryLexical::new()), &database);
    let name = filled(first.store.as_ref()).await;
    let expected = ids(&first
        .store
        .lexical_search(&name, "supervisor restarts", 4, &Filter::default())
        .await
        .unwrap());
    assert_eq!(expected.len(), 2);
    // The same collection through a store whose index is empty.
    let second = chroma_with(Arc::new(MemoryLexical::new()), &database);
    let hits = second
        .store
        .lexical_search(&name, "supervisor restarts", 4, &Filter::default())
        .await
        .unwrap();
    assert_eq!(ids(&hits), expected);
    let filtered = second
        .store
        .lexical_search(&name, "json", 4, &Filter::source_url("https://b.test/"))
        .await
        .unwrap();
    assert_eq!(ids(&filtered), ["https://b.test/#0"]);
}
