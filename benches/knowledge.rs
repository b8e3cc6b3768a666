//! Knowledge-base throughput and latency on this machine:
//! - chunking: Markdown → heading-aware chunks (characters per second);
//! - embedding: the built-in MiniLM, sentences per second at batch 32 (needs `scripts/setup`);
//! - search on the embedded store at 10k and 100k chunks: dense (exact scan), BM25, both.
//!
//! `cargo bench --bench knowledge` (add a filter, e.g. `-- search`, to run one group).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aurora::adapters::local_model::MiniLm;
use aurora_actors::ingest::chunking::Chunker;
use aurora_actors::local::EmbeddedStore;
use aurora_actors::ports::{
    ChunkRecord, CollectionSpec, EmbedKind, Embedder, Filter, NewChunk, VectorStore,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const DIM: usize = 384;

/// Deterministic pseudo-random numbers (xorshift), so every run builds the same collections.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit_vector(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..DIM)
            .map(|_| (self.next() % 2000) as f32 / 1000.0 - 1.0)
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }
}

/// A vocabulary of 5000 made-up words with a Zipf-like frequency, for realistic postings.
fn words() -> Vec<String> {
    (0..5000).map(|i| format!("w{i:x}q")).collect()
}

fn sentence(rng: &mut Rng, vocabulary: &[String], length: usize) -> String {
    (0..length)
        .map(|_| {
            // Squaring skews towards low indexes: a few words are very common.
            let r = (rng.next() % 10_000) as f64 / 10_000.0;
            vocabulary[((r * r) * vocabulary.len() as f64) as usize].as_str()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn chunking(c: &mut Criterion) {
    let html = include_str!("fixtures/cargo-semver.html");
    let url = "https://doc.example/semver.html".parse().expect("url");
    let selectors = aurora_actors::scraper::extract::Selectors::default();
    let page = aurora_actors::scraper::extract::extract(
        html,
        &url,
        &aurora_actors::scraper::extract::Options {
            only_main_content: true,
            selectors: &selectors,
            remove_base64_images: true,
            want_html: false,
        },
    );
    let chunker = Chunker::new(1000, 150).expect("chunker");
    let mut group = c.benchmark_group("chunking");
    group.throughput(Throughput::Bytes(page.markdown.len() as u64));
    group.bench_function("cargo-semver markdown, 1000/150 chars", |b| {
        b.iter(|| chunker.chunk(&page.markdown))
    });
    group.finish();
}

fn embedding(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-minilm-l6-v2");
    let model = match MiniLm::load(&dir, 32) {
        Ok(model) => model,
        Err(e) => {
            eprintln!("skipping the embedding bench: {e}");
            return;
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let vocabulary = [
        "the",
        "crawler",
        "fetches",
        "pages",
        "and",
        "extracts",
        "markdown",
        "from",
        "html",
        "answers",
        "questions",
        "with",
        "citations",
        "over",
        "knowledge",
        "stored",
        "in",
        "a",
        "vector",
        "index",
        "using",
        "hybrid",
        "search",
    ];
    let mut rng = Rng(7);
    // 30-word sentences, as in the crate notes' measurements.
    let sentences: Vec<String> = (0..256)
        .map(|_| {
            (0..30)
                .map(|_| vocabulary[(rng.next() % vocabulary.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut group = c.benchmark_group("embedding");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(sentences.len() as u64));
    group.bench_function("minilm 256 x 30-word sentences, batch 32", |b| {
        b.iter(|| {
            runtime
                .block_on(model.embed(&sentences, EmbedKind::Document))
                .expect("embeds")
        })
    });
    group.finish();
}

fn search(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let vocabulary = words();
    let mut group = c.benchmark_group("search");
    group.measurement_time(Duration::from_secs(10));
    for size in [10_000usize, 100_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn VectorStore> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
        let mut rng = Rng(42);
        runtime.block_on(async {
            store
                .create_collection(
                    "bench",
                    &CollectionSpec {
                        embedder: "bench".into(),
                        dimension: DIM,
                    },
                )
                .await
                .expect("collection");
            for batch in 0..size / 1000 {
                let chunks = (0..1000)
                    .map(|i| {
                        let n = batch * 1000 + i;
                        NewChunk {
                            record: ChunkRecord {
                                id: format!("c{n}"),
                                text: sentence(&mut rng, &vocabulary, 150),
                                source_url: format!("https://site.example/{}", n / 10),
                                title: "t".into(),
                                heading: String::new(),
                                chunk_index: (n % 10) as u32,
                                content_hash: "h".into(),
                                fetched_at: 0,
                                crawl_id: None,
                                locator: None,
                                file_name: None,
                            },
                            embedding: rng.unit_vector(),
                        }
                    })
                    .collect();
                store.upsert("bench", chunks).await.expect("upsert");
            }
        });
        let queries: Vec<(Vec<f32>, String)> = (0..64)
            .map(|_| (rng.unit_vector(), sentence(&mut rng, &vocabulary, 6)))
            .collect();
        let filter = Filter::default();
        let mut q = 0usize;
        group.bench_with_input(BenchmarkId::new("dense k=10", size), &size, |b, _| {
            b.iter(|| {
                q = (q + 1) % queries.len();
                runtime
                    .block_on(store.dense_search("bench", &queries[q].0, 10, &filter))
                    .expect("search")
            })
        });
        group.bench_with_input(BenchmarkId::new("bm25 k=10", size), &size, |b, _| {
            b.iter(|| {
                q = (q + 1) % queries.len();
                runtime
                    .block_on(store.lexical_search("bench", &queries[q].1, 10, &filter))
                    .expect("search")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, chunking, embedding, search);
criterion_main!(benches);
