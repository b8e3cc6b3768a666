//! The `LexicalIndex` port: Redis (sorted-set postings, the threshold algorithm) and the
//! in-process index, held to the same behaviour and to the same scores, bit for bit.

use std::sync::Arc;

use aurora::adapters::redis::RedisState;
use aurora_actors::lexical::{self, TermCounts};
use aurora_actors::local::MemoryLexical;
use aurora_actors::ports::{LexicalDoc, LexicalIndex, Ranked};

use crate::{service_url, unique};

/// Redis with `cache_bytes` of posting-list cache, under `prefix`.
fn redis_with(prefix: &str, cache_bytes: usize) -> Arc<dyn LexicalIndex> {
    let state = RedisState::connect(&service_url("AURORA_TEST_REDIS_URL"), prefix)
        .expect("valid Redis URL");
    Arc::new(state.lexical(cache_bytes))
}

/// Every list cached: scored in process.
fn redis() -> Arc<dyn LexicalIndex> {
    redis_with(&unique("aurora-test"), 64 << 20)
}

/// No cache: the threshold algorithm over Redis for every query.
fn redis_uncached() -> Arc<dyn LexicalIndex> {
    redis_with(&unique("aurora-test"), 0)
}

/// A cache too small for the common terms' lists: both paths in one query.
fn redis_mixed() -> Arc<dyn LexicalIndex> {
    redis_with(&unique("aurora-test"), 16 * 1200)
}

fn memory() -> Arc<dyn LexicalIndex> {
    Arc::new(MemoryLexical::new())
}

fn doc(id: &str, text: &str) -> LexicalDoc {
    LexicalDoc::new(id, text)
}

fn query(text: &str) -> TermCounts {
    lexical::count_terms(text)
}

fn ids(ranked: &[Ranked]) -> Vec<&str> {
    ranked.iter().map(|r| r.id.as_str()).collect()
}

/// Words drawn from a skewed vocabulary (a few very common, many rare), deterministic per seed.
fn text(seed: u64, words: usize) -> String {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..words)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (state >> 33) % 1000;
            // Squaring skews towards small word numbers: "w0" is in most chunks.
            format!("w{}", r * r / 4000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// 1 200 chunks written in three calls (so three averages), one call replacing a hundred.
fn corpus_writes() -> Vec<Vec<LexicalDoc>> {
    let docs = |range: std::ops::Range<u64>, salt: u64| -> Vec<LexicalDoc> {
        range
            .map(|i| {
                doc(
                    &format!("c{i:05}"),
                    &text(i * 7 + salt, 20 + (i % 40) as usize),
                )
            })
            .collect()
    };
    vec![docs(0..600, 0), docs(600..1200, 0), docs(100..200, 99)]
}

async fn written(index: &dyn LexicalIndex) -> String {
    let name = unique("lex");
    for docs in corpus_writes() {
        index.index(&name, &docs).await.unwrap();
    }
    name
}

const QUERIES: [&str; 6] = [
    "w0",
    "w0 w1 w2",
    "w3 w40 w200",
    "w150 w151 w152 w153",
    "w0 w240",
    "w9 w9 w9 w17",
];

#[tokio::test]
async fn redis_and_memory_rank_alike_to_the_bit() {
    let memory = memory();
    let m = written(memory.as_ref()).await;
    assert_eq!(memory.len(&m).await.unwrap(), 1200);
    for redis in [redis(), redis_uncached(), redis_mixed()] {
        let r = written(redis.as_ref()).await;
        assert_eq!(redis.len(&r).await.unwrap(), 1200);
        // Twice: from Redis, then (where it caches) from this replica's cache.
        for _ in 0..2 {
            for q in QUERIES {
                for limit in [1, 5, 50, 2000] {
                    let a = redis.search(&r, &query(q), limit).await.unwrap();
                    let b = memory.search(&m, &query(q), limit).await.unwrap();
                    assert_eq!(a, b, "query {q:?}, limit {limit}");
                    assert!(!a.is_empty(), "{q}");
                }
            }
        }
    }
}

/// A replica's cached lists never hide another replica's writes.
#[tokio::test]
async fn a_cached_list_follows_writes_from_another_replica() {
    let prefix = unique("aurora-test");
    let (reader, writer) = (redis_with(&prefix, 64 << 20), redis_with(&prefix, 64 << 20));
    let name = unique("lex");
    writer
        .index(
            &name,
            &[doc("a", "frontier politeness"), doc("b", "frontier")],
        )
        .await
        .unwrap();
    let first = reader.search(&name, &query("frontier"), 5).await.unwrap();
    assert_eq!(ids(&first), ["b", "a"]);
    writer
        .index(&name, &[doc("c", "frontier frontier")])
        .await
        .unwrap();
    writer.remove(&name, &["b".to_string()]).await.unwrap();
    let second = reader.search(&name, &query("frontier"), 5).await.unwrap();
    assert_eq!(ids(&second), ["c", "a"]);
    writer
        .index(&name, &[doc("a", "nothing about it")])
        .await
        .unwrap();
    assert_eq!(
        ids(&reader
            .search(&name, &query("frontier politeness"), 5)
            .await
            .unwrap()),
        ["c"]
    );
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn redis() {
                super::$name(super::redis().as_ref()).await;
            }
            #[tokio::test]
            async fn redis_uncached() {
                super::$name(super::redis_uncached().as_ref()).await;
            }
            #[tokio::test]
            async fn memory() {
                super::$name(super::memory().as_ref()).await;
            }
        }
    };
}

both!(search_agrees_with_scoring_every_chunk);
/// The top of the ranking, however deep the index had to be read, is what scoring every chunk
/// and sorting gives.
async fn search_agrees_with_scoring_every_chunk(index: &dyn LexicalIndex) {
    let name = written(index).await;
    let every: Vec<String> = (0..1200).map(|i| format!("c{i:05}")).collect();
    for q in QUERIES {
        let mut all = index.score(&name, &query(q), &every).await.unwrap();
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        for limit in [1, 3, 10, 100] {
            let top = index.search(&name, &query(q), limit).await.unwrap();
            assert_eq!(
                top,
                all[..limit.min(all.len())],
                "query {q:?}, limit {limit}"
            );
        }
    }
}

both!(writes_replace_and_removals_forget);
async fn writes_replace_and_removals_forget(index: &dyn LexicalIndex) {
    let name = unique("lex");
    index
        .index(
            &name,
            &[
                doc("a", "supervisors restart crashed actors"),
                doc("b", "json serialises objects"),
                doc("b", "rust ownership prevents data races"), // the last version wins
            ],
        )
        .await
        .unwrap();
    assert_eq!(index.len(&name).await.unwrap(), 2);
    assert!(
        index
            .search(&name, &query("json"), 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(&index.search(&name, &query("ownership"), 5).await.unwrap()),
        ["b"]
    );
    // Replaced: the old words no longer find it, the new ones do (stemmed).
    index
        .index(&name, &[doc("a", "exponential backoff between restarts")])
        .await
        .unwrap();
    assert_eq!(index.len(&name).await.unwrap(), 2);
    assert!(
        index
            .search(&name, &query("actors"), 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(&index.search(&name, &query("restarting"), 5).await.unwrap()),
        ["a"]
    );
    index
        .remove(&name, &["a".to_string(), "nope".to_string()])
        .await
        .unwrap();
    assert_eq!(index.len(&name).await.unwrap(), 1);
    assert!(
        index
            .search(&name, &query("backoff"), 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        index
            .score(&name, &query("backoff"), &["a".to_string()])
            .await
            .unwrap()
            .is_empty()
    );
    index.clear(&name).await.unwrap();
    assert_eq!(index.len(&name).await.unwrap(), 0);
    assert!(
        index
            .search(&name, &query("ownership"), 5)
            .await
            .unwrap()
            .is_empty()
    );
    // Cleared means gone: the name starts afresh.
    index.index(&name, &[doc("z", "ownership")]).await.unwrap();
    assert_eq!(index.len(&name).await.unwrap(), 1);
}

both!(the_vocabulary_follows_writes_and_removals);
/// What a question's words are looked up in: held while some chunk holds them (stemmed), over
/// the live chunk count.
async fn the_vocabulary_follows_writes_and_removals(index: &dyn LexicalIndex) {
    let name = unique("lex");
    let terms = |words: &[&str]| -> Vec<u32> {
        words
            .iter()
            .map(|w| lexical::term_id(&lexical::stem(w)))
            .collect()
    };
    let asked = terms(&["restarting", "json", "kubernetes"]);
    let none = index.vocabulary(&name, &asked).await.unwrap();
    assert_eq!((none.chunks, none.holds), (0, vec![false, false, false]));
    index
        .index(
            &name,
            &[
                doc("a", "supervisors restart crashed actors"),
                doc("b", "json serialises objects"),
            ],
        )
        .await
        .unwrap();
    let held = index.vocabulary(&name, &asked).await.unwrap();
    assert_eq!((held.chunks, held.holds), (2, vec![true, true, false]));
    index.remove(&name, &["b".to_string()]).await.unwrap();
    let held = index.vocabulary(&name, &asked).await.unwrap();
    assert_eq!((held.chunks, held.holds), (1, vec![true, false, false]));
    assert!(index.vocabulary(&name, &[]).await.unwrap().holds.is_empty());
}

both!(scores_follow_bm25_and_ties_go_to_the_smaller_id);
async fn scores_follow_bm25_and_ties_go_to_the_smaller_id(index: &dyn LexicalIndex) {
    let name = unique("lex");
    let docs = [
        doc("d3", "crawler frontier"),
        doc("d1", "crawler frontier"),
        doc("d2", "crawler crawler frontier politeness"),
        doc("d4", "nothing in common"),
    ];
    index.index(&name, &docs).await.unwrap();
    let ranked = index.search(&name, &query("crawler"), 10).await.unwrap();
    assert_eq!(ids(&ranked), ["d2", "d1", "d3"]);
    // By hand: one write, so one average over the four chunks; idf of a term in 3 of 4.
    let average = lexical::average(4, docs.iter().map(|d| u64::from(d.terms.length)).sum());
    let idf = lexical::idf(4, 3);
    let weight = |d: &LexicalDoc| {
        let term = lexical::term_id("crawler");
        lexical::doc_weight(d.terms.counts[&term], d.terms.length, average)
    };
    assert_eq!(ranked[0].score, idf * weight(&docs[2]));
    assert_eq!(ranked[1].score, idf * weight(&docs[1]));
    assert_eq!(ranked[1].score, ranked[2].score);
    assert!(
        index
            .search(&name, &query("the of"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        index
            .search(&name, &query("crawler"), 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        index
            .search(&unique("never-written"), &query("crawler"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}
