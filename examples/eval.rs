//! Retrieval evaluation: hit@k and MRR@10 of Aurora's knowledge pipeline on a question set,
//! next to the naive pipeline most users build. Run by hand through `scripts/eval`.
//!
//! Each configuration ingests the corpus into its own in-process store with the built-in model,
//! then asks every question. Embeddings are cached in a state store (Redis with `--redis`, which
//! makes repeated runs cheap), keyed by text, so configurations that embed the same texts share
//! the work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aurora::adapters::local_model::MiniLm;
use aurora::adapters::onnx_model::{OnnxConfig, OnnxMiniLm};
use aurora::adapters::redis::RedisState;
use aurora::adapters::static_model::StaticModel;
use aurora_actors::ingest::quality::Rules;
use aurora_actors::knowledge::{ContentType, Document, EmbedContext, Knowledge, KnowledgeConfig};
use aurora_actors::local::{EmbeddedStore, MemoryState};
use aurora_actors::ports::{
    ChunkRecord, CollectionSpec, EmbedKind, Embedder, Filter, NewChunk, StateStore, VectorStore,
};
use serde::Deserialize;

const BASE: &str = "https://docs.python.org/3.11/";

#[derive(Debug, Deserialize)]
struct Question {
    question: String,
    answers: Vec<String>,
    kind: String,
}

/// One way of building and searching the knowledge base.
#[derive(Debug, Clone)]
struct Config {
    name: &'static str,
    /// The static tier instead of MiniLM.
    fast: bool,
    chunk_size: usize,
    chunk_overlap: usize,
    context: EmbedContext,
    /// (label, dense weight, lexical weight) of the searches to score on the same index.
    searches: Vec<(&'static str, f32, f32)>,
}

fn configs() -> Vec<Config> {
    let fusions = vec![
        ("hybrid 1:1", 1.0, 1.0),
        ("hybrid 1:0.5", 1.0, 0.5),
        ("hybrid 0.5:1", 0.5, 1.0),
        ("hybrid 0.25:1", 0.25, 1.0),
        ("dense only", 1.0, 0.0),
        ("bm25 only", 0.0, 1.0),
    ];
    vec![
        Config {
            name: "aurora-1000",
            fast: false,
            chunk_size: 1000,
            chunk_overlap: 150,
            context: EmbedContext::TitleAndHeading,
            searches: fusions.clone(),
        },
        Config {
            name: "aurora-1000-nocontext",
            fast: false,
            chunk_size: 1000,
            chunk_overlap: 150,
            context: EmbedContext::None,
            searches: vec![("hybrid 1:1", 1.0, 1.0), ("dense only", 1.0, 0.0)],
        },
        Config {
            name: "aurora-500",
            fast: false,
            chunk_size: 500,
            chunk_overlap: 75,
            context: EmbedContext::TitleAndHeading,
            searches: fusions.clone(),
        },
        Config {
            name: "aurora-1500",
            fast: false,
            chunk_size: 1500,
            chunk_overlap: 200,
            context: EmbedContext::TitleAndHeading,
            searches: fusions.clone(),
        },
        Config {
            name: "static-1000",
            fast: true,
            chunk_size: 1000,
            chunk_overlap: 150,
            context: EmbedContext::TitleAndHeading,
            searches: fusions.clone(),
        },
        Config {
            name: "static-500",
            fast: true,
            chunk_size: 500,
            chunk_overlap: 75,
            context: EmbedContext::TitleAndHeading,
            searches: fusions,
        },
    ]
}

#[derive(Debug, Default, Clone)]
struct Score {
    n: usize,
    hits: [usize; 4], // @1 @3 @5 @10
    reciprocal: f64,
}

impl Score {
    fn add(&mut self, rank: Option<usize>) {
        self.n += 1;
        if let Some(rank) = rank {
            for (i, k) in [1, 3, 5, 10].iter().enumerate() {
                if rank <= *k {
                    self.hits[i] += 1;
                }
            }
            self.reciprocal += 1.0 / rank as f64;
        }
    }

    fn row(&self) -> String {
        let pct = |h: usize| 100.0 * h as f64 / self.n.max(1) as f64;
        format!(
            "{:5.1} | {:5.1} | {:5.1} | {:5.1} | {:.3}",
            pct(self.hits[0]),
            pct(self.hits[1]),
            pct(self.hits[2]),
            pct(self.hits[3]),
            self.reciprocal / self.n.max(1) as f64
        )
    }
}

/// Scores rankings of URLs: overall and per question kind.
fn score(questions: &[Question], rankings: &[Vec<String>]) -> BTreeMap<String, Score> {
    let mut scores: BTreeMap<String, Score> = BTreeMap::new();
    for (question, ranking) in questions.iter().zip(rankings) {
        let rank = ranking
            .iter()
            .position(|url| {
                question
                    .answers
                    .iter()
                    .any(|a| url.strip_prefix(BASE) == Some(a.as_str()))
            })
            .map(|i| i + 1);
        scores.entry("all".into()).or_default().add(rank);
        scores.entry(question.kind.clone()).or_default().add(rank);
    }
    scores
}

/// The URLs of the top 10 results, one entry per chunk.
fn urls(hits: impl IntoIterator<Item = ChunkRecord>) -> Vec<String> {
    hits.into_iter().map(|c| c.source_url).take(10).collect()
}

struct Args {
    corpus_root: PathBuf,
    set: PathBuf,
    model: PathBuf,
    static_model: PathBuf,
    /// `minilm-int8` (the default model) or `minilm` (f32, candle).
    embedder: String,
    int8_model: PathBuf,
    onnxruntime: PathBuf,
    redis: Option<String>,
    only: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        corpus_root: PathBuf::from("/usr/share/doc/python3.11/html"),
        set: PathBuf::from("eval/python-docs"),
        model: PathBuf::from("models/all-minilm-l6-v2"),
        static_model: PathBuf::from("models/static-minilm-l6-v2"),
        embedder: "minilm-int8".into(),
        int8_model: PathBuf::from("models/all-minilm-l6-v2-int8"),
        onnxruntime: PathBuf::from("models/onnxruntime/libonnxruntime.so.1.31.1"),
        redis: None,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--corpus-root" => args.corpus_root = value()?.into(),
            "--set" => args.set = value()?.into(),
            "--model" => args.model = value()?.into(),
            "--static-model" => args.static_model = value()?.into(),
            "--embedder" => args.embedder = value()?,
            "--int8-model" => args.int8_model = value()?.into(),
            "--onnxruntime" => args.onnxruntime = value()?.into(),
            "--redis" => args.redis = Some(value()?),
            "--only" => args.only = Some(value()?),
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

/// (URL, HTML) of every corpus page.
type Pages = Vec<(String, String)>;

fn load(args: &Args) -> anyhow::Result<(Pages, Vec<Question>)> {
    let list = std::fs::read_to_string(args.set.join("corpus.txt"))?;
    let mut pages = Vec::new();
    for path in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bytes = std::fs::read(args.corpus_root.join(path))
            .with_context(|| format!("reading {path}: install python3.11-doc"))?;
        pages.push((
            format!("{BASE}{path}"),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    let questions = std::fs::read_to_string(args.set.join("questions.jsonl"))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<Vec<Question>, _>>()?;
    Ok((pages, questions))
}

fn knowledge_config(config: &Config, dense: f32, lexical: f32) -> KnowledgeConfig {
    KnowledgeConfig {
        documents: Default::default(),
        chunk_size: config.chunk_size,
        chunk_overlap: config.chunk_overlap,
        quality: Rules {
            min_chars: 100,
            max_link_ratio: 0.7,
            ..Rules::default()
        },
        near_duplicates: false,
        embed_context: config.context,
        embed_batch: 32,
        cache_ttl: Duration::from_secs(30 * 86_400),
        candidates: 50,
        rrf_k: 60.0,
        dense_weight: dense,
        lexical_weight: lexical,
    }
}

/// The naive pipeline: all the page's text (like BeautifulSoup's `get_text()`), fixed
/// 1000-character windows, MiniLM on the bare chunk, cosine top-k.
async fn baseline(
    pages: &[(String, String)],
    questions: &[Question],
    embedder: &Arc<dyn Embedder>,
    state: &Arc<dyn StateStore>,
) -> anyhow::Result<BTreeMap<String, Score>> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path())?;
    let spec = CollectionSpec {
        embedder: embedder.id().to_string(),
        dimension: embedder.dimension(),
    };
    store.create_collection("baseline", &spec).await?;
    let mut records = Vec::new();
    for (url, html) in pages {
        let text: String = scraper::Html::parse_document(html)
            .root_element()
            .text()
            .collect::<Vec<_>>()
            .join(" ");
        let chars: Vec<char> = text.chars().collect();
        for (i, window) in chars.chunks(1000).enumerate() {
            records.push(ChunkRecord {
                id: format!("{url}#{i}"),
                text: window.iter().collect(),
                source_url: url.clone(),
                title: String::new(),
                heading: String::new(),
                chunk_index: i as u32,
                content_hash: String::new(),
                fetched_at: 0,
                crawl_id: None,
                locator: None,
                file_name: None,
            });
        }
    }
    eprintln!("baseline: {} chunks", records.len());
    let texts: Vec<String> = records.iter().map(|r| r.text.clone()).collect();
    let vectors = cached_embed(embedder, state, &texts).await?;
    let chunks = records
        .into_iter()
        .zip(vectors)
        .map(|(record, embedding)| NewChunk { record, embedding })
        .collect::<Vec<_>>();
    for part in chunks.chunks(1000) {
        store.upsert("baseline", part.to_vec()).await?;
    }
    let mut rankings = Vec::new();
    for question in questions {
        let query = cached_embed(embedder, state, std::slice::from_ref(&question.question)).await?;
        let hits = store
            .dense_search("baseline", &query[0], 10, &Filter::default())
            .await?;
        rankings.push(urls(hits.into_iter().map(|h| h.chunk)));
    }
    Ok(score(questions, &rankings))
}

/// The baseline embeds through the same cache as Aurora (a "b:" namespace of its own).
async fn cached_embed(
    embedder: &Arc<dyn Embedder>,
    state: &Arc<dyn StateStore>,
    texts: &[String],
) -> anyhow::Result<Vec<Vec<f32>>> {
    use sha2::{Digest, Sha256};
    let keys: Vec<String> = texts
        .iter()
        .map(|t| {
            let hash: String = Sha256::digest(t.as_bytes())[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("eval:b:{}:{hash}", embedder.id())
        })
        .collect();
    let cached = state
        .get_many(&keys)
        .await
        .unwrap_or_else(|_| vec![None; keys.len()]);
    let mut out: Vec<Option<Vec<f32>>> = cached
        .into_iter()
        .map(|b| {
            b.map(|b| {
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            })
        })
        .collect();
    let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
    for batch in missing.chunks(256) {
        let batch_texts: Vec<String> = batch.iter().map(|&i| texts[i].clone()).collect();
        let vectors = embedder.embed(&batch_texts, EmbedKind::Document).await?;
        let entries = batch
            .iter()
            .zip(&vectors)
            .map(|(&i, v)| {
                (
                    keys[i].clone(),
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
            })
            .collect();
        let _ = state.set_many(entries, None).await;
        for (&i, v) in batch.iter().zip(vectors) {
            out[i] = Some(v);
        }
    }
    Ok(out.into_iter().map(Option::unwrap_or_default).collect())
}

async fn aurora(
    config: &Config,
    pages: &[(String, String)],
    questions: &[Question],
    embedder: &Arc<dyn Embedder>,
    state: &Arc<dyn StateStore>,
) -> anyhow::Result<Vec<(&'static str, BTreeMap<String, Score>)>> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn VectorStore> = Arc::new(EmbeddedStore::open(dir.path())?);
    let ingest = Knowledge::new(
        store.clone(),
        embedder.clone(),
        state.clone(),
        knowledge_config(config, 1.0, 1.0),
    )?;
    ingest.create_collection("eval").await?;
    let started = Instant::now();
    for batch in pages.chunks(20) {
        let documents = batch
            .iter()
            .map(|(url, html)| Document {
                url: url.clone(),
                title: None,
                content: html.clone(),
                content_type: ContentType::Html,
                fetched_at: None,
                crawl_id: None,
                ..Default::default()
            })
            .collect();
        let report = ingest.ingest("eval", documents, false).await?;
        for rejected in report.rejected {
            eprintln!("  rejected {}: {}", rejected.url, rejected.reason);
        }
    }
    let chunks = ingest.collection("eval").await?.chunks;
    eprintln!(
        "{}: {chunks} chunks, ingested in {:.0?}",
        config.name,
        started.elapsed()
    );
    let mut results = Vec::new();
    for (label, dense, lexical) in &config.searches {
        let knowledge = Knowledge::new(
            store.clone(),
            embedder.clone(),
            state.clone(),
            knowledge_config(config, *dense, *lexical),
        )?;
        let mut rankings = Vec::new();
        for question in questions {
            let hits = knowledge
                .search("eval", &question.question, 10, &Filter::default())
                .await?;
            rankings.push(urls(hits.into_iter().map(|h| h.chunk)));
        }
        results.push((*label, score(questions, &rankings)));
    }
    Ok(results)
}

fn print_table(title: &str, rows: &[(String, BTreeMap<String, Score>)]) {
    println!("\n### {title}\n");
    println!("| configuration | hit@1 | hit@3 | hit@5 | hit@10 | MRR@10 |");
    println!("|---|---|---|---|---|---|");
    for (name, scores) in rows {
        if let Some(score) = scores.get(title) {
            println!("| {name} | {} |", score.row());
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let (pages, questions) = load(&args)?;
    eprintln!("{} pages, {} questions", pages.len(), questions.len());
    let embedder: Arc<dyn Embedder> = match args.embedder.as_str() {
        "minilm" => Arc::new(MiniLm::load(&args.model, 32)?),
        "minilm-int8" => Arc::new(OnnxMiniLm::load(OnnxConfig {
            runtime: args.onnxruntime.clone(),
            model_dir: args.int8_model.clone(),
            batch_size: 32,
            threads: 0,
        })?),
        other => bail!("unknown embedder {other}: minilm-int8 or minilm"),
    };
    eprintln!("embedder: {}", embedder.id());
    let fast: Option<Arc<dyn Embedder>> = StaticModel::load(&args.static_model)
        .ok()
        .map(|m| Arc::new(m) as Arc<dyn Embedder>);
    let state: Arc<dyn StateStore> = match &args.redis {
        Some(url) => Arc::new(RedisState::connect(url, "aurora-eval")?),
        None => Arc::new(MemoryState::new()),
    };
    let wanted = |name: &str| {
        args.only
            .as_deref()
            .is_none_or(|only| only.split(',').any(|o| o == name))
    };
    let mut rows: Vec<(String, BTreeMap<String, Score>)> = Vec::new();
    if wanted("baseline") {
        let started = Instant::now();
        rows.push((
            "naive baseline (page text, 1000 chars, dense)".into(),
            baseline(&pages, &questions, &embedder, &state).await?,
        ));
        eprintln!("baseline done in {:.0?}", started.elapsed());
    }
    for config in configs().iter().filter(|c| wanted(c.name)) {
        let embedder = match (config.fast, &fast) {
            (false, _) => &embedder,
            (true, Some(fast)) => fast,
            (true, None) => {
                eprintln!(
                    "skipping {}: no static model (aurora model distill)",
                    config.name
                );
                continue;
            }
        };
        for (label, scores) in aurora(config, &pages, &questions, embedder, &state).await? {
            rows.push((format!("{} {label}", config.name), scores));
        }
    }
    let mut kinds: Vec<String> = questions.iter().map(|q| q.kind.clone()).collect();
    kinds.sort();
    kinds.dedup();
    println!(
        "## Retrieval eval: {} questions over {} pages ({})",
        questions.len(),
        pages.len(),
        Path::new(&args.set).display()
    );
    print_table("all", &rows);
    for kind in kinds {
        print_table(&kind, &rows);
    }
    Ok(())
}
