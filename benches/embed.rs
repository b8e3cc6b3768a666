//! Embedding throughput of the built-in models on what ingestion really embeds: the chunks of
//! two documentation pages (Markdown from the scraper, 1000/150-character chunks with their
//! title and heading, as `ingest.embed_context = "title_heading"` sends them).
//!
//! Reported per model: chunks per second (group `embed`) and tokens per second (group
//! `embed-tokens`, WordPiece tokens after truncation at 256). Needs `scripts/model`.
//!
//! `cargo bench --bench embed` (add a filter, e.g. `-- int8`, to run one model).

use std::path::{Path, PathBuf};
use std::time::Duration;

use aurora::adapters::local_model::MiniLm;
use aurora::adapters::onnx_model::{OnnxConfig, OnnxMiniLm};
use aurora_actors::ingest::chunking::Chunker;
use aurora_actors::ports::{EmbedKind, Embedder};
use aurora_actors::scraper::extract::{Options, Selectors, extract};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokenizers::{Tokenizer, TruncationParams};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// Every fourth chunk of both fixture pages (a sample of every section, small enough that ten
/// samples of the slowest model take minutes, not an hour), as ingestion embeds them.
fn chunks() -> Vec<String> {
    let selectors = Selectors::default();
    let chunker = Chunker::new(1000, 150).expect("chunker");
    let pages = [
        (
            include_str!("fixtures/cargo-semver.html"),
            "https://doc.example/semver.html",
        ),
        (
            include_str!("fixtures/std-binaryheap.html"),
            "https://doc.example/heap.html",
        ),
    ];
    let mut texts = Vec::new();
    for (html, url) in pages {
        let url = url.parse().expect("url");
        let page = extract(
            html,
            &url,
            &Options {
                only_main_content: true,
                selectors: &selectors,
                remove_base64_images: true,
                want_html: false,
            },
        );
        for chunk in chunker.chunk(&page.markdown).into_iter().step_by(4) {
            let title = page.title.as_deref().unwrap_or_default();
            texts.push(format!("{title}\n{}\n\n{}", chunk.heading, chunk.text));
        }
    }
    texts
}

fn tokens(texts: &[String]) -> u64 {
    let mut tokenizer =
        Tokenizer::from_file(models().join("all-minilm-l6-v2/tokenizer.json")).expect("tokenizer");
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: 256,
            ..TruncationParams::default()
        }))
        .expect("truncation");
    texts
        .iter()
        .map(|t| tokenizer.encode(t.as_str(), true).expect("encode").len() as u64)
        .sum()
}

fn int8(threads: usize) -> Option<OnnxMiniLm> {
    let loaded = OnnxMiniLm::load(OnnxConfig {
        runtime: models().join("onnxruntime/libonnxruntime.so.1.31.1"),
        model_dir: models().join("all-minilm-l6-v2-int8"),
        batch_size: 32,
        threads,
    });
    loaded
        .map_err(|e| eprintln!("skipping minilm-int8: {e}"))
        .ok()
}

fn embedding(c: &mut Criterion) {
    let texts = chunks();
    let tokens = tokens(&texts);
    eprintln!(
        "{} chunks, {tokens} tokens ({:.0} per chunk)",
        texts.len(),
        tokens as f64 / texts.len() as f64
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut candidates: Vec<(String, Box<dyn Embedder>)> = Vec::new();
    for threads in [1, 2] {
        if let Some(model) = int8(threads) {
            candidates.push((format!("minilm-int8, {threads} thread(s)"), Box::new(model)));
        }
    }
    match MiniLm::load(&models().join("all-minilm-l6-v2"), 32) {
        Ok(model) => candidates.push(("minilm f32 (candle)".into(), Box::new(model))),
        Err(e) => eprintln!("skipping minilm: {e}"),
    }

    for (group, throughput) in [
        ("embed", Throughput::Elements(texts.len() as u64)),
        ("embed-tokens", Throughput::Elements(tokens)),
    ] {
        let mut group = c.benchmark_group(group);
        group.throughput(throughput);
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(10));
        for (name, model) in &candidates {
            group.bench_function(name.as_str(), |b| {
                b.iter(|| {
                    runtime
                        .block_on(model.embed(&texts, EmbedKind::Document))
                        .expect("embed")
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, embedding);
criterion_main!(benches);
