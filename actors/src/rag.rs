//! RagActor: a ractor `factory` pool that retrieves knowledge and answers from it.
//! - Search: hybrid search over a collection (`crate::knowledge`): the query embedded, dense and
//!   BM25 candidates, reciprocal rank fusion.
//! - Answer: search → keep what is relevant (dense similarity at least
//!   [`AnswerConfig::min_relevance`], else "I don't know") → diversify (maximal marginal
//!   relevance over the chunks' words, at most a few chunks per page) → number the sources →
//!   generate ([`Generator`] port; the built-in [`extractive::Extractive`] by default) → keep
//!   only citations to sources that were given.
//!
//! Messages: [`RagJob::Search`], [`RagJob::Answer`] (+ a test-only panic), dispatched by the
//! router with the caller's reply port and admission permit.
//!
//! Restart: permanent child of the root supervisor; the factory replaces a crashed worker and
//! keeps its queued jobs; both jobs are read-only, so the caller's handle retries a lost one.

pub mod extractive;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::RpcReplyPort;
use tracing::Instrument;

use crate::Names;
use crate::knowledge::{Knowledge, KnowledgeError, SearchHit};
use crate::pool::{self, JobHandler, PoolJob};
use crate::ports::{Filter, GenerateError, GenerateRequest, Generator, Source, Usage};
use crate::router::{AdmissionPermit, Refusal};
use crate::supervisor::ChildSpec;

/// How answers are made (from the settings).
#[derive(Debug, Clone)]
pub struct AnswerConfig {
    /// The best chunk's dense (cosine) similarity must reach this, or the answer is "I don't
    /// know". Chunks below it are not given to the generator either.
    pub min_relevance: f32,
    /// Candidates retrieved per source kept (diversification picks among them).
    pub candidates_per_source: usize,
    /// Chunks of one page among the sources at most.
    pub max_chunks_per_page: usize,
}

impl Default for AnswerConfig {
    fn default() -> Self {
        Self {
            min_relevance: 0.3,
            candidates_per_source: 3,
            max_chunks_per_page: 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AnswerRequest {
    pub collection: String,
    pub question: String,
    /// Earlier questions of a conversation, oldest first: the latest joins the retrieval query,
    /// so a follow-up ("and how long do they sleep?") finds what the conversation is about.
    pub history: Vec<String>,
    /// Sources given to the generator at most.
    pub k: usize,
    pub filter: Filter,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Citation {
    pub n: usize,
    pub source_url: String,
    pub title: String,
    pub heading: String,
    pub snippet: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Cites sources as `[n]`; every `n` is in `citations`.
    pub text: String,
    pub citations: Vec<Citation>,
    /// False when nothing relevant was found (the text says so).
    pub answered: bool,
    pub generator: String,
    pub usage: Usage,
    pub retrieval: Duration,
    pub generation: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
}

impl Refusal for AnswerError {
    fn overloaded() -> Self {
        AnswerError::Knowledge(KnowledgeError::Overloaded)
    }
    fn unavailable(what: &'static str) -> Self {
        AnswerError::Knowledge(KnowledgeError::Unavailable(what))
    }
    fn deadline(after: Duration) -> Self {
        AnswerError::Knowledge(KnowledgeError::DeadlineExceeded(after))
    }
    fn is_unavailable(&self) -> bool {
        matches!(self, AnswerError::Knowledge(KnowledgeError::Unavailable(_)))
    }
}

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub collection: String,
    pub query: String,
    pub k: usize,
    pub filter: Filter,
}

pub enum RagJob {
    Search {
        request: Box<SearchRequest>,
        reply: RpcReplyPort<Result<Vec<SearchHit>, KnowledgeError>>,
        permit: AdmissionPermit,
    },
    Answer {
        request: Box<AnswerRequest>,
        reply: RpcReplyPort<Result<Answer, AnswerError>>,
        permit: AdmissionPermit,
    },
    #[cfg(feature = "fault-injection")]
    Panic,
}

impl PoolJob for RagJob {
    fn fail_unavailable(self) {
        match self {
            RagJob::Search { reply, .. } => {
                let _ = reply.send(Err(KnowledgeError::Unavailable("rag pool")));
            }
            RagJob::Answer { reply, .. } => {
                let _ = reply.send(Err(AnswerError::unavailable("rag pool")));
            }
            #[cfg(feature = "fault-injection")]
            RagJob::Panic => {}
        }
    }
}

pub struct RagWorker {
    knowledge: Arc<Knowledge>,
    generator: Arc<dyn Generator>,
    config: AnswerConfig,
}

impl JobHandler for RagWorker {
    type Job = RagJob;

    async fn run(&self, job: RagJob) {
        match job {
            RagJob::Search {
                request,
                reply,
                permit,
            } => {
                let started = std::time::Instant::now();
                let SearchRequest {
                    collection,
                    query,
                    k,
                    filter,
                } = *request;
                let result = self.knowledge.search(&collection, &query, k, &filter).await;
                metrics::histogram!("aurora_search_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                let _ = reply.send(result);
                drop(permit);
            }
            RagJob::Answer {
                request,
                reply,
                permit,
            } => {
                let started = Instant::now();
                let span =
                    tracing::info_span!("answer", collection = %request.collection, k = request.k);
                let result = self.answer(*request).instrument(span).await;
                let outcome = match &result {
                    Ok(answer) if answer.answered => "answered",
                    Ok(_) => "unknown",
                    Err(_) => "error",
                };
                metrics::counter!("aurora_answers_total", "outcome" => outcome).increment(1);
                metrics::histogram!("aurora_answer_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                let _ = reply.send(result);
                drop(permit);
            }
            #[cfg(feature = "fault-injection")]
            RagJob::Panic => panic!("fault injection: rag worker panics"),
        }
    }
}

impl RagWorker {
    async fn answer(&self, request: AnswerRequest) -> Result<Answer, AnswerError> {
        let started = Instant::now();
        let k = request.k.max(1);
        let query = match request.history.last() {
            Some(previous) => format!("{previous}\n{}", request.question),
            None => request.question.clone(),
        };
        let hits = self
            .knowledge
            .search(
                &request.collection,
                &query,
                k * self.config.candidates_per_source.max(1),
                &request.filter,
            )
            .await?;
        let relevant: Vec<SearchHit> = hits
            .into_iter()
            .filter(|hit| match hit.dense_score {
                Some(similarity) => similarity >= self.config.min_relevance,
                // A lexical-only backend: a BM25 match is all the evidence there is.
                None => hit.lexical_score.is_some_and(|s| s > 0.0),
            })
            .collect();
        let chosen = diversify(relevant, k, self.config.max_chunks_per_page);
        let retrieval = started.elapsed();
        let sources: Vec<Source> = chosen
            .into_iter()
            .enumerate()
            .map(|(i, hit)| Source {
                n: i + 1,
                url: hit.chunk.source_url,
                title: hit.chunk.title,
                heading: hit.chunk.heading,
                text: hit.chunk.text,
            })
            .collect();
        if sources.is_empty() {
            return Ok(Answer {
                text: extractive::DONT_KNOW.to_string(),
                citations: Vec::new(),
                answered: false,
                generator: self.generator.id().to_string(),
                usage: Usage::default(),
                retrieval,
                generation: Duration::ZERO,
            });
        }
        let generating = Instant::now();
        let generation = self
            .generator
            .generate(GenerateRequest {
                question: request.question,
                sources: sources.clone(),
                max_tokens: request.max_tokens,
                temperature: request.temperature,
            })
            .await?;
        let (text, cited) = validate_citations(&generation.text, sources.len());
        let citations: Vec<Citation> = cited
            .iter()
            .filter_map(|n| sources.get(n - 1))
            .map(|s| Citation {
                n: s.n,
                source_url: s.url.clone(),
                title: s.title.clone(),
                heading: s.heading.clone(),
                snippet: snippet(&s.text),
            })
            .collect();
        Ok(Answer {
            answered: !citations.is_empty() || text != extractive::DONT_KNOW,
            text,
            citations,
            generator: self.generator.id().to_string(),
            usage: generation.usage,
            retrieval,
            generation: generating.elapsed(),
        })
    }
}

/// Up to `k` hits in fused-score order, each penalised by its word overlap with those already
/// chosen (maximal marginal relevance, λ = 0.7), and at most `per_page` chunks of one page.
fn diversify(hits: Vec<SearchHit>, k: usize, per_page: usize) -> Vec<SearchHit> {
    let top = hits
        .iter()
        .map(|h| h.score)
        .fold(f32::MIN, f32::max)
        .max(f32::EPSILON);
    let words: Vec<HashSet<String>> = hits
        .iter()
        .map(|h| {
            h.chunk
                .text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.len() > 2)
                .map(str::to_lowercase)
                .collect()
        })
        .collect();
    let mut chosen: Vec<usize> = Vec::new();
    while chosen.len() < k {
        let next = (0..hits.len())
            .filter(|i| !chosen.contains(i))
            .filter(|&i| {
                chosen
                    .iter()
                    .filter(|&&c| hits[c].chunk.source_url == hits[i].chunk.source_url)
                    .count()
                    < per_page.max(1)
            })
            .map(|i| {
                let overlap = chosen
                    .iter()
                    .map(|&c| extractive::jaccard(&words[i], &words[c]))
                    .fold(0.0f32, f32::max);
                (i, 0.7 * hits[i].score / top - 0.3 * overlap)
            })
            .fold(None::<(usize, f32)>, |acc, (i, s)| match acc {
                Some((_, best)) if best >= s => acc,
                _ => Some((i, s)),
            });
        match next {
            Some((i, _)) => chosen.push(i),
            None => break,
        }
    }
    let mut hits: Vec<Option<SearchHit>> = hits.into_iter().map(Some).collect();
    chosen.into_iter().filter_map(|i| hits[i].take()).collect()
}

/// The text with citations to sources that were not given removed, and the sources cited (in
/// order of first citation). Understands `[2]`, `[1, 3]` and `[1][2]`.
pub fn validate_citations(text: &str, sources: usize) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut cited: Vec<usize> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find(']');
        let numbers: Option<Vec<usize>> = close.and_then(|close| {
            after[..close]
                .split(',')
                .map(|n| n.trim().parse::<usize>().ok())
                .collect()
        });
        match (close, numbers) {
            (Some(close), Some(numbers)) => {
                let kept: Vec<usize> = numbers
                    .into_iter()
                    .filter(|n| (1..=sources).contains(n))
                    .collect();
                for n in &kept {
                    if !cited.contains(n) {
                        cited.push(*n);
                    }
                }
                if !kept.is_empty() {
                    let list: Vec<String> = kept.iter().map(usize::to_string).collect();
                    out.push_str(&format!("[{}]", list.join(", ")));
                } else if out.ends_with(' ') {
                    out.pop();
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, cited)
}

/// The start of a source, for showing next to a citation.
fn snippet(text: &str) -> String {
    let text = crate::ingest::chunking::link_text(text);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(240) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

pub(crate) fn child_spec(
    names: &Names,
    knowledge: Arc<Knowledge>,
    generator: Arc<dyn Generator>,
    config: AnswerConfig,
    workers: usize,
) -> ChildSpec {
    pool::child_spec(
        "rag",
        "rag_worker",
        names.rag.clone(),
        names.root.clone(),
        workers,
        move || RagWorker {
            knowledge: knowledge.clone(),
            generator: generator.clone(),
            config: config.clone(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_to_sources_not_given_are_dropped() {
        let (text, cited) = validate_citations("A [2]. B [7]. C [1, 9][3]. D [x] [0].", 3);
        assert_eq!(text, "A [2]. B. C [1][3]. D [x].");
        assert_eq!(cited, vec![2, 1, 3]);
    }
}
