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
use aurora_actors::knowledge::{
    ContentType, Document, EmbedContext, Knowledge, KnowledgeConfig, PageRanking,
};
use aurora_actors::local::{EmbeddedStore, MemoryState};
use aurora_actors::ports::{
    ChunkRecord, CollectionSpec, EmbedKind, Embedder, Filter, GenerateRequest, NewChunk,
    StateStore, VectorStore,
};
use aurora_actors::rag::extractive;
use aurora_actors::rag::{self, AnswerConfig, AnswerRequest};
use serde::Deserialize;

const BASE: &str = "https://docs.python.org/3.11/";

#[derive(Debug, Deserialize)]
struct Question {
    question: String,
    /// Accepted pages; empty for a question the corpus does not answer.
    answers: Vec<String>,
    kind: String,
}

/// A question set and the pages it is asked over.
struct Set {
    name: String,
    questions: Vec<Question>,
    pages: Pages,
}

/// One way of searching an index.
#[derive(Debug, Clone)]
struct Search {
    label: &'static str,
    dense: f32,
    lexical: f32,
    pages: PageRanking,
    /// Also score the extractive answers of this search.
    answers: bool,
}

/// One way of building the knowledge base, and the searches to score on it.
#[derive(Debug, Clone)]
struct Config {
    name: &'static str,
    /// The static tier instead of MiniLM.
    fast: bool,
    chunk_size: usize,
    chunk_overlap: usize,
    context: EmbedContext,
    searches: Vec<Search>,
}

const CHUNKS_ONLY: PageRanking = PageRanking {
    evidence: 0.0,
    same_page: 1.0,
    evidence_chunks: 3,
};

fn search(label: &'static str, dense: f32, lexical: f32, pages: PageRanking) -> Search {
    Search {
        label,
        dense,
        lexical,
        pages,
        answers: false,
    }
}

/// The searches every index is scored with: fusion weights, then pages as units.
fn searches() -> Vec<Search> {
    let pages = |evidence, same_page| PageRanking {
        evidence,
        same_page,
        evidence_chunks: 3,
    };
    vec![
        search("hybrid 1:1", 1.0, 1.0, CHUNKS_ONLY),
        search("hybrid 1:0.5", 1.0, 0.5, CHUNKS_ONLY),
        search("dense only", 1.0, 0.0, CHUNKS_ONLY),
        search("bm25 only", 0.0, 1.0, CHUNKS_ONLY),
        Search {
            answers: true,
            ..search("1:0.5 pages e0.3 d0.5", 1.0, 0.5, pages(0.3, 0.5))
        },
        search("1:0.5 pages e0.4 d0.3", 1.0, 0.5, pages(0.4, 0.3)),
        search("1:0.75 pages e0.3 d0.5", 1.0, 0.75, pages(0.3, 0.5)),
        search("1:0.5 pages e0.5 d0.5", 1.0, 0.5, pages(0.5, 0.5)),
        search("1:0.5 pages e0.3 d0.7", 1.0, 0.5, pages(0.3, 0.7)),
        search("1:0.5 pages e0 d0.5", 1.0, 0.5, pages(0.0, 0.5)),
        search("1:1 pages e0.3 d0.5", 1.0, 1.0, pages(0.3, 0.5)),
    ]
}

fn configs() -> Vec<Config> {
    let config = |name, fast, chunk_size, chunk_overlap, context| Config {
        name,
        fast,
        chunk_size,
        chunk_overlap,
        context,
        searches: searches(),
    };
    vec![
        config(
            "aurora-1000",
            false,
            1000,
            150,
            EmbedContext::TitleAndHeading,
        ),
        config(
            "aurora-1000-nocontext",
            false,
            1000,
            150,
            EmbedContext::None,
        ),
        config("aurora-500", false, 500, 100, EmbedContext::TitleAndHeading),
        config("aurora-750", false, 750, 150, EmbedContext::TitleAndHeading),
        config(
            "aurora-1500",
            false,
            1500,
            200,
            EmbedContext::TitleAndHeading,
        ),
        config(
            "static-1000",
            true,
            1000,
            150,
            EmbedContext::TitleAndHeading,
        ),
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

/// Scores rankings of URLs: overall and per question kind. Questions the corpus does not answer
/// have no rank to score.
fn score(questions: &[Question], rankings: &[Vec<String>]) -> BTreeMap<String, Score> {
    let mut scores: BTreeMap<String, Score> = BTreeMap::new();
    for (question, ranking) in questions.iter().zip(rankings) {
        if question.answers.is_empty() {
            continue;
        }
        let rank = ranking
            .iter()
            .position(|url| accepted(question, url))
            .map(|i| i + 1);
        scores.entry("all".into()).or_default().add(rank);
        scores.entry(question.kind.clone()).or_default().add(rank);
    }
    scores
}

fn accepted(question: &Question, url: &str) -> bool {
    question
        .answers
        .iter()
        .any(|a| url.strip_prefix(BASE) == Some(a.as_str()))
}

/// The URLs of the top 10 results, one entry per chunk.
fn urls(hits: impl IntoIterator<Item = ChunkRecord>) -> Vec<String> {
    hits.into_iter().map(|c| c.source_url).take(10).collect()
}

/// Answerable questions whose first result is not an accepted page, and the pages that took
/// rank 1 most often: what a ranking change has to fix.
fn print_misses(questions: &[Question], rankings: &[Vec<String>]) {
    let mut thieves: BTreeMap<&str, usize> = BTreeMap::new();
    println!("\n#### Rank-1 misses\n");
    for (question, ranking) in questions.iter().zip(rankings) {
        let Some(first) = ranking.first() else {
            continue;
        };
        if question.answers.is_empty() || accepted(question, first) {
            continue;
        }
        let first = first.strip_prefix(BASE).unwrap_or(first);
        *thieves.entry(first).or_default() += 1;
        let rank = ranking.iter().position(|url| accepted(question, url));
        println!(
            "- [{}] {} → {first} (accepted at {}; wants {})",
            question.kind,
            question.question,
            rank.map_or("-".to_string(), |r| (r + 1).to_string()),
            question.answers.join(", ")
        );
    }
    let mut thieves: Vec<_> = thieves.into_iter().filter(|(_, n)| *n > 1).collect();
    thieves.sort_by_key(|t| std::cmp::Reverse(t.1));
    println!("\nPages first more than once when wrong: {thieves:?}");
}

/// How the extractive answers fared: answerable questions answered with a citation of an
/// accepted page, and unanswerable ones declined.
#[derive(Debug, Default, Clone, Copy)]
struct AnswerScore {
    answerable: usize,
    cited: usize,
    /// Answered, but citing no accepted page.
    wrong: usize,
    unanswerable: usize,
    declined: usize,
}

impl AnswerScore {
    fn row(&self) -> String {
        let pct = |a: usize, n: usize| 100.0 * a as f64 / n.max(1) as f64;
        format!(
            "{} | {:5.1} | {:5.1} | {} | {:5.1}",
            self.answerable,
            pct(self.cited, self.answerable),
            pct(self.wrong, self.answerable),
            self.unanswerable,
            pct(self.declined, self.unanswerable),
        )
    }
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
    /// Print the extractive answers of the answer eval.
    show_answers: bool,
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
        show_answers: false,
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
            "--show-answers" => args.show_answers = true,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

/// (URL, HTML) of every corpus page.
type Pages = Vec<(String, String)>;

fn read_pages(root: &Path, paths: &[String]) -> anyhow::Result<Pages> {
    paths
        .iter()
        .map(|path| {
            let bytes = std::fs::read(root.join(path))
                .with_context(|| format!("reading {path}: install python3.11-doc"))?;
            Ok((
                format!("{BASE}{path}"),
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        })
        .collect()
}

/// Every HTML page under `root`, as paths relative to it, sorted.
fn all_pages(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "html")
                && let Ok(relative) = path.strip_prefix(root)
            {
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    Ok(found)
}

fn read_questions(path: &Path) -> anyhow::Result<Vec<Question>> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(anyhow::Error::from))
        .collect()
}

/// The question sets in `args.set`: `questions.jsonl` over the pages of `corpus.txt`, and
/// `hard.jsonl` (when present) over every page of the corpus.
fn load(args: &Args) -> anyhow::Result<Vec<Set>> {
    let list: Vec<String> = std::fs::read_to_string(args.set.join("corpus.txt"))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let mut sets = vec![Set {
        name: format!(
            "{} (questions.jsonl, {} pages)",
            args.set.display(),
            list.len()
        ),
        questions: read_questions(&args.set.join("questions.jsonl"))?,
        pages: read_pages(&args.corpus_root, &list)?,
    }];
    let hard = args.set.join("hard.jsonl");
    if hard.exists() {
        let all = all_pages(&args.corpus_root)?;
        sets.push(Set {
            name: format!(
                "{} (hard.jsonl, all {} pages)",
                args.set.display(),
                all.len()
            ),
            questions: read_questions(&hard)?,
            pages: read_pages(&args.corpus_root, &all)?,
        });
    }
    Ok(sets)
}

fn knowledge_config(config: &Config, search: &Search) -> KnowledgeConfig {
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
        dense_weight: search.dense,
        lexical_weight: search.lexical,
        pages: search.pages,
    }
}

/// The naive pipeline: all the page's text (like BeautifulSoup's `get_text()`), fixed
/// 1000-character windows, MiniLM on the bare chunk, cosine top-k.
async fn baseline(
    set: &Set,
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
    for (url, html) in &set.pages {
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
    for question in &set.questions {
        let query = cached_embed(embedder, state, std::slice::from_ref(&question.question)).await?;
        let hits = store
            .dense_search("baseline", &query[0], 10, &Filter::default())
            .await?;
        rankings.push(urls(hits.into_iter().map(|h| h.chunk)));
    }
    Ok(score(&set.questions, &rankings))
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

/// What one configuration scored on one set: retrieval per search, answers where asked.
struct Outcome {
    chunks: u64,
    retrieval: Vec<(&'static str, BTreeMap<String, Score>)>,
    answers: Vec<(String, AnswerScore)>,
}

async fn aurora(
    config: &Config,
    set: &Set,
    embedder: &Arc<dyn Embedder>,
    state: &Arc<dyn StateStore>,
    show_answers: bool,
) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn VectorStore> = Arc::new(EmbeddedStore::open(dir.path())?);
    let ingest = Knowledge::new(
        store.clone(),
        embedder.clone(),
        state.clone(),
        knowledge_config(config, &config.searches[0]),
    )?;
    ingest.create_collection("eval").await?;
    let started = Instant::now();
    for batch in set.pages.chunks(20) {
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
    let mut outcome = Outcome {
        chunks,
        retrieval: Vec::new(),
        answers: Vec::new(),
    };
    for search in &config.searches {
        let knowledge = Knowledge::new(
            store.clone(),
            embedder.clone(),
            state.clone(),
            knowledge_config(config, search),
        )?;
        let mut rankings = Vec::new();
        for question in &set.questions {
            let hits = knowledge
                .search("eval", &question.question, 10, &Filter::default())
                .await?;
            rankings.push(urls(hits.into_iter().map(|h| h.chunk)));
        }
        outcome
            .retrieval
            .push((search.label, score(&set.questions, &rankings)));
        if search.answers && show_answers {
            print_misses(&set.questions, &rankings);
        }
        if search.answers {
            for (floors, score) in answer_eval(&knowledge, &set.questions, show_answers).await? {
                outcome
                    .answers
                    .push((format!("{}, {floors}", search.label), score));
            }
        }
    }
    Ok(outcome)
}

/// Floors the answer eval tries: the dense similarity a source needs to be given at all…
const RELEVANCE_FLOORS: [f32; 4] = [0.3, 0.4, 0.45, 0.5];
/// …and the share of the question the best sentence must cover.
const COVERAGE_FLOORS: [f32; 5] = [0.0, 0.1, 0.15, 0.2, 0.25];
/// …with the unheard-words gate off and at its default.
const UNHEARD_GATES: [u64; 2] = [0, 2000];

/// Asks every question as `POST /v1/query` does, with the built-in extractive answerer, under
/// each pair of floors; prints the answers under the defaults when `show`.
async fn answer_eval(
    knowledge: &Knowledge,
    questions: &[Question],
    show: bool,
) -> anyhow::Result<Vec<(String, AnswerScore)>> {
    let defaults = AnswerConfig::default();
    let mut scores = Vec::new();
    for (relevance, gate) in RELEVANCE_FLOORS
        .into_iter()
        .flat_map(|r| UNHEARD_GATES.map(|g| (r, g)))
    {
        let config = AnswerConfig {
            min_relevance: relevance,
            unheard_min_chunks: gate,
            ..AnswerConfig::default()
        };
        let mut grid = [AnswerScore::default(); COVERAGE_FLOORS.len()];
        for question in questions {
            let request = AnswerRequest::new("eval", question.question.clone(), 5);
            let mut sources = rag::retrieve(knowledge, &config, &request).await?;
            let unheard = rag::unheard(knowledge, &config, &request).await;
            if !unheard.is_empty() {
                sources.clear();
            }
            let given: Vec<String> = sources.iter().map(|s| s.url.clone()).collect();
            let request = GenerateRequest {
                question: question.question.clone(),
                sources,
                max_tokens: None,
                temperature: None,
            };
            for (score, coverage) in grid.iter_mut().zip(COVERAGE_FLOORS) {
                let text = match request.sources.is_empty() {
                    true => None,
                    false => extractive::answer_with_floor(&request, coverage),
                }
                .unwrap_or_else(|| rag::dont_know(&unheard));
                let (text, cited) = rag::validate_citations(&text, given.len());
                let cited_accepted = cited
                    .iter()
                    .any(|&n| given.get(n - 1).is_some_and(|url| accepted(question, url)));
                let answered = !cited.is_empty();
                if question.answers.is_empty() {
                    score.unanswerable += 1;
                    score.declined += usize::from(!answered);
                } else {
                    score.answerable += 1;
                    score.cited += usize::from(cited_accepted);
                    score.wrong += usize::from(answered && !cited_accepted);
                }
                let default = relevance == defaults.min_relevance
                    && coverage == extractive::MIN_COVERAGE
                    && gate == defaults.unheard_min_chunks;
                if show && default {
                    let verdict = match (question.answers.is_empty(), answered, cited_accepted) {
                        (true, false, _) | (false, true, true) => "ok",
                        _ => "MISS",
                    };
                    println!(
                        "- {verdict} [{}] {}\n  {text}",
                        question.kind, question.question
                    );
                }
            }
        }
        for (score, coverage) in grid.into_iter().zip(COVERAGE_FLOORS) {
            scores.push((
                format!(
                    "relevance ≥ {relevance:.2}, coverage ≥ {coverage:.2}, unheard gate {}",
                    match gate {
                        0 => "off".to_string(),
                        n => format!("≥ {n} chunks"),
                    }
                ),
                score,
            ));
        }
    }
    Ok(scores)
}

fn print_table(title: &str, rows: &[(String, BTreeMap<String, Score>)]) {
    println!("\n#### {title}\n");
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
    let sets = load(&args)?;
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
    for set in &sets {
        eprintln!("{}: {} questions", set.name, set.questions.len());
        let mut rows: Vec<(String, BTreeMap<String, Score>)> = Vec::new();
        let mut answers: Vec<(String, AnswerScore)> = Vec::new();
        if wanted("baseline") {
            rows.push((
                "naive baseline (page text, 1000 chars, dense)".into(),
                baseline(set, &embedder, &state).await?,
            ));
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
            let outcome = aurora(config, set, embedder, &state, args.show_answers).await?;
            for (label, scores) in outcome.retrieval {
                rows.push((
                    format!("{} ({} chunks) {label}", config.name, outcome.chunks),
                    scores,
                ));
            }
            for (label, score) in outcome.answers {
                answers.push((format!("{} {label}", config.name), score));
            }
        }
        let mut kinds: Vec<String> = set
            .questions
            .iter()
            .filter(|q| !q.answers.is_empty())
            .map(|q| q.kind.clone())
            .collect();
        kinds.sort();
        kinds.dedup();
        println!("\n## {}: {} questions\n", set.name, set.questions.len());
        println!("### Retrieval (answerable questions)");
        print_table("all", &rows);
        for kind in kinds {
            print_table(&kind, &rows);
        }
        if !answers.is_empty() {
            println!("\n### Extractive answers\n");
            println!(
                "| configuration | answerable | cited an accepted page % | cited another page % | unanswerable | declined % |"
            );
            println!("|---|---|---|---|---|---|");
            for (name, score) in answers {
                println!("| {name} | {} |", score.row());
            }
        }
    }
    Ok(())
}
