//! RagActor — in code a ractor `Factory` of [`RagWorker`]s registered as `Names::rag` (the card's
//! one actor is a pool, so answers run side by side): it retrieves knowledge and answers from it.
//! - Search: hybrid search over a collection (`crate::knowledge`): the query embedded, dense and
//!   BM25 candidates, reciprocal rank fusion.
//! - Answer: search → keep what is relevant (dense similarity at least
//!   [`AnswerConfig::min_relevance`], else "I don't know"; and "I don't know" when the question
//!   names a word a large collection never holds, [`unheard`]) → diversify (maximal marginal
//!   relevance over the chunks' words, at most a few chunks per page) → number the sources →
//!   generate ([`Generator`] port; the built-in [`extractive::Extractive`] by default) → keep
//!   only citations to sources that were given.
//! - Streaming: with [`AnswerRequest::stream`] the sources, then the text as the generator writes
//!   it (citations checked on the fly, [`CitationStream`]) go to the caller before the reply.
//! - Cancel: the job stops when [`AnswerRequest::cancel`] fires or the stream's reader goes.
//! - Cache: answers are kept in the state store under the collection's version
//!   ([`Knowledge::version`], moved by every ingest), the normalised question and the request's
//!   parameters, so a repeat is served from there and any ingest makes it stale.
//!
//! Messages: [`RagJob::Search`], [`RagJob::Answer`] (+ a test-only panic), dispatched by the
//! router with the caller's reply port and admission permit.
//!
//! Restart: permanent child of the root supervisor; the factory replaces a crashed worker and
//! keeps its queued jobs; both jobs are read-only, so the caller's handle retries a lost one.
//!
//! Size: the worker's answer pipeline (retrieve, filter, diversify, generate, check citations,
//! cache) reads as one sequence; the answerers themselves live in `rag/`.

pub mod extractive;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Names;
use crate::admission::{AdmissionPermit, Refusal};
use crate::knowledge::{Knowledge, KnowledgeError, SearchHit};
use crate::pool::{self, JobHandler, PoolJob};
use crate::ports::{
    Filter, GenerateError, GenerateRequest, Generation, Generator, Piece, Source, StateStore, Usage,
};
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
    /// A question naming a word that no chunk of a collection this large holds is answered
    /// "I don't know", naming the word ([`Knowledge::unheard_words`]); 0 = never.
    pub unheard_min_chunks: u64,
    /// How long a cached answer is served; `None` turns the cache off.
    pub cache_ttl: Option<Duration>,
}

impl Default for AnswerConfig {
    fn default() -> Self {
        Self {
            min_relevance: 0.45,
            candidates_per_source: 3,
            max_chunks_per_page: 2,
            unheard_min_chunks: 2000,
            cache_ttl: Some(Duration::from_secs(3600)),
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
    /// Where the answer goes as it is written; `None` for the whole answer at once.
    pub stream: Option<mpsc::Sender<AnswerEvent>>,
    /// Fired when the caller no longer wants the answer (its client went away).
    pub cancel: CancellationToken,
}

impl AnswerRequest {
    /// A question over a collection, with no history, filter or generation options.
    pub fn new(collection: impl Into<String>, question: impl Into<String>, k: usize) -> Self {
        Self {
            collection: collection.into(),
            question: question.into(),
            history: Vec::new(),
            k,
            filter: Filter::default(),
            max_tokens: None,
            temperature: None,
            stream: None,
            cancel: CancellationToken::new(),
        }
    }
}

/// What a streamed answer sends while it is made; the reply then carries the whole [`Answer`].
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerEvent {
    /// The numbered sources the answer may cite, once, before any text.
    Sources(Vec<Citation>),
    /// The next piece of the answer, its citations already checked.
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    pub n: usize,
    pub source_url: String,
    pub title: String,
    pub heading: String,
    pub snippet: String,
    /// Where in a document the passage sits: a page, slides, a time range.
    #[serde(default)]
    pub locator: Option<crate::model::Locator>,
    #[serde(default)]
    pub file_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Served from the answer cache.
    #[serde(default)]
    pub cached: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// The caller went away before the answer was finished.
    #[error("the answer was cancelled")]
    Cancelled,
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
    /// Holds the answer cache.
    state: Arc<dyn StateStore>,
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
                let cancel = request.cancel.clone();
                let stream = request.stream.clone();
                let result = tokio::select! {
                    result = self.answer(*request).instrument(span) => result,
                    () = abandoned(&cancel, stream.as_ref()) => Err(AnswerError::Cancelled),
                };
                let outcome = match &result {
                    Ok(answer) if answer.answered => "answered",
                    Ok(_) => "unknown",
                    Err(AnswerError::Cancelled) => "cancelled",
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
        let cache_key = self.cache_key(&request).await;
        if let Some(key) = &cache_key
            && let Some(mut answer) = self.cached(key).await
        {
            answer.retrieval = started.elapsed();
            if let Some(tx) = &request.stream {
                send(tx, AnswerEvent::Sources(answer.citations.clone())).await?;
                send(tx, AnswerEvent::Text(answer.text.clone())).await?;
            }
            return Ok(answer);
        }
        // Side by side: the gate is one lexical-index round trip, and asked even when nothing
        // turns out relevant, since naming the missing word tells the user more.
        let (sources, never_mentioned) = futures::future::join(
            retrieve(&self.knowledge, &self.config, &request),
            unheard(&self.knowledge, &self.config, &request),
        )
        .await;
        let mut sources = sources?;
        if !never_mentioned.is_empty() {
            metrics::counter!("aurora_answer_unheard_words_total").increment(1);
            sources.clear();
        }
        let retrieval = started.elapsed();
        let given: Vec<Citation> = sources.iter().map(citation).collect();
        if let Some(tx) = &request.stream {
            send(tx, AnswerEvent::Sources(given.clone())).await?;
        }
        let generating = Instant::now();
        let generation = match sources.is_empty() {
            true => {
                let text = dont_know(&never_mentioned);
                if let Some(tx) = &request.stream {
                    send(tx, AnswerEvent::Text(text.clone())).await?;
                }
                Generation {
                    text,
                    usage: Usage::default(),
                }
            }
            false => {
                let generate = GenerateRequest {
                    question: request.question,
                    sources,
                    max_tokens: request.max_tokens,
                    temperature: request.temperature,
                };
                self.write(generate, request.stream.as_ref()).await?
            }
        };
        let (text, cited) = validate_citations(&generation.text, given.len());
        let citations: Vec<Citation> = cited
            .iter()
            .filter_map(|n| given.get(n - 1).cloned())
            .collect();
        let answer = Answer {
            answered: !citations.is_empty() || !is_dont_know(&text),
            text,
            citations,
            generator: self.generator.id().to_string(),
            usage: generation.usage,
            retrieval,
            generation: generating.elapsed(),
            cached: false,
        };
        if let Some(key) = cache_key {
            self.remember(key, &answer).await;
        }
        Ok(answer)
    }
}

/// The numbered sources an answer is written from: search (the latest earlier question joins
/// the query), keep what is relevant, diversify. Empty when nothing is relevant enough.
pub async fn retrieve(
    knowledge: &Knowledge,
    config: &AnswerConfig,
    request: &AnswerRequest,
) -> Result<Vec<Source>, KnowledgeError> {
    let k = request.k.max(1);
    let query = match request.history.last() {
        Some(previous) => format!("{previous}\n{}", request.question),
        None => request.question.clone(),
    };
    let hits = knowledge
        .search(
            &request.collection,
            &query,
            k * config.candidates_per_source.max(1),
            &request.filter,
        )
        .await?;
    let relevant: Vec<SearchHit> = hits
        .into_iter()
        .filter(|hit| match hit.dense_score {
            Some(similarity) => similarity >= config.min_relevance,
            // A lexical-only backend: a BM25 match is all the evidence there is.
            None => hit.lexical_score.is_some_and(|s| s > 0.0),
        })
        .collect();
    Ok(diversify(relevant, k, config.max_chunks_per_page)
        .into_iter()
        .enumerate()
        .map(|(i, hit)| Source {
            n: i + 1,
            url: hit.chunk.source_url,
            title: hit.chunk.title,
            heading: hit.chunk.heading,
            text: hit.chunk.text,
            locator: hit.chunk.locator,
            file_name: hit.chunk.file_name,
        })
        .collect())
}

/// The words of the question (not of earlier ones) that the collection never holds, when the
/// gate is on ([`AnswerConfig::unheard_min_chunks`]). Only a gate: if the lexical index cannot
/// say, the question goes on to the generator.
pub async fn unheard(
    knowledge: &Knowledge,
    config: &AnswerConfig,
    request: &AnswerRequest,
) -> Vec<String> {
    if config.unheard_min_chunks == 0 {
        return Vec::new();
    }
    knowledge
        .unheard_words(
            &request.collection,
            &request.question,
            config.unheard_min_chunks,
        )
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot look the question's words up; answering anyway");
            Vec::new()
        })
}

/// "I don't know", saying which of the question's words the collection never mentions when
/// that is why.
pub fn dont_know(unheard: &[String]) -> String {
    if unheard.is_empty() {
        return extractive::DONT_KNOW.to_string();
    }
    let words: Vec<String> = unheard.iter().map(|w| format!("“{w}”")).collect();
    format!(
        "I don't know: the sources never mention {}.",
        words.join(", ")
    )
}

impl RagWorker {
    /// Generates, streaming the text (citations checked) to `stream` when there is one.
    async fn write(
        &self,
        request: GenerateRequest,
        stream: Option<&mpsc::Sender<AnswerEvent>>,
    ) -> Result<Generation, AnswerError> {
        let Some(tx) = stream else {
            return Ok(self.generator.generate(request).await?);
        };
        let mut checked = CitationStream::new(request.sources.len());
        let mut pieces = self.generator.stream(request);
        let mut generation = Generation {
            text: String::new(),
            usage: Usage::default(),
        };
        while let Some(piece) = pieces.next().await {
            match piece? {
                Piece::Text(text) => {
                    generation.text.push_str(&text);
                    send(tx, AnswerEvent::Text(checked.push(&text))).await?;
                }
                Piece::Usage(usage) => generation.usage = usage,
            }
        }
        send(tx, AnswerEvent::Text(checked.finish())).await?;
        Ok(generation)
    }

    /// The cache key of a request: collection version, generator, normalised question and every
    /// parameter that changes the answer. `None` when the cache is off or the version unknown.
    async fn cache_key(&self, request: &AnswerRequest) -> Option<String> {
        self.config.cache_ttl?;
        let version = self.knowledge.version(&request.collection).await?;
        let mut hash = Sha256::new();
        let previous = request.history.last().map(|q| normalise_question(q));
        let parts = [
            request.collection.clone(),
            version.to_string(),
            self.generator.id().to_string(),
            normalise_question(&request.question),
            previous.unwrap_or_default(),
            request.k.to_string(),
            format!("{:?}", request.filter),
            format!("{:?}/{:?}", request.max_tokens, request.temperature),
        ];
        for part in parts {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        Some(format!(
            "answer:{}",
            crate::knowledge::hex(&hash.finalize()[..16])
        ))
    }

    async fn cached(&self, key: &str) -> Option<Answer> {
        let found = match self.state.get_many(&[key.to_string()]).await {
            Ok(mut values) => values.pop().flatten(),
            Err(e) => {
                tracing::warn!(error = %e, "answer cache unavailable");
                None
            }
        };
        let answer = found.and_then(|bytes| serde_json::from_slice::<Answer>(&bytes).ok());
        let outcome = if answer.is_some() { "hit" } else { "miss" };
        metrics::counter!("aurora_answer_cache_total", "outcome" => outcome).increment(1);
        answer.map(|answer| Answer {
            cached: true,
            generation: Duration::ZERO,
            ..answer
        })
    }

    async fn remember(&self, key: String, answer: &Answer) {
        let Ok(bytes) = serde_json::to_vec(answer) else {
            return;
        };
        if let Err(e) = self
            .state
            .set_many(vec![(key, bytes)], self.config.cache_ttl)
            .await
        {
            tracing::warn!(error = %e, "answer not cached");
        }
    }
}

/// Sends an event to a streaming caller; a caller who stopped reading cancels the answer.
async fn send(tx: &mpsc::Sender<AnswerEvent>, event: AnswerEvent) -> Result<(), AnswerError> {
    if event == AnswerEvent::Text(String::new()) {
        return Ok(());
    }
    tx.send(event).await.map_err(|_| AnswerError::Cancelled)
}

/// Resolves when the caller has gone: cancelled, or no longer reading its stream.
async fn abandoned(cancel: &CancellationToken, stream: Option<&mpsc::Sender<AnswerEvent>>) {
    match stream {
        Some(tx) => tokio::select! {
            () = cancel.cancelled() => {}
            () = tx.closed() => {}
        },
        None => cancel.cancelled().await,
    }
}

fn citation(source: &Source) -> Citation {
    Citation {
        n: source.n,
        source_url: source.url.clone(),
        title: source.title.clone(),
        heading: source.heading.clone(),
        snippet: snippet(&source.text),
        locator: source.locator,
        file_name: source.file_name.clone(),
    }
}

/// An LLM told to say [`extractive::DONT_KNOW`] may say it in its own words around it.
fn is_dont_know(text: &str) -> bool {
    text.trim().starts_with("I don't know")
}

/// The question as the cache sees it: case, spacing and closing punctuation do not matter.
fn normalise_question(question: &str) -> String {
    question
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(['?', '.', '!', ' '])
        .to_lowercase()
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
        .map(|h| crate::lexical::terms(&h.chunk.text).collect())
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

/// [`validate_citations`] applied to text that arrives in pieces: each piece is passed on as soon
/// as no citation can still be open in it, so what comes out, joined, is exactly what
/// `validate_citations` makes of the whole text.
#[derive(Debug)]
pub struct CitationStream {
    sources: usize,
    /// Text that might still belong to a citation (an open `[` of digits, or the spaces a dropped
    /// citation would take with it).
    pending: String,
}

impl CitationStream {
    pub fn new(sources: usize) -> Self {
        Self {
            sources,
            pending: String::new(),
        }
    }

    /// The checked text that `piece` completes (possibly empty).
    pub fn push(&mut self, piece: &str) -> String {
        self.pending.push_str(piece);
        let ready = self.settled();
        let text: String = self.pending.drain(..ready).collect();
        validate_citations(&text, self.sources).0
    }

    /// The rest, at the end of the text.
    pub fn finish(&mut self) -> String {
        let text = std::mem::take(&mut self.pending);
        validate_citations(&text, self.sources).0
    }

    /// Bytes of `pending` that nothing later can change.
    fn settled(&self) -> usize {
        let pending = self.pending.as_str();
        let open = pending.rfind('[').filter(|&open| {
            pending[open + 1..]
                .chars()
                .all(|c| c.is_ascii_digit() || c == ',' || c == ' ')
        });
        let before = match open {
            Some(open) => &pending[..open],
            None => pending,
        };
        before.trim_end_matches(' ').len()
    }
}

/// The start of a source, for showing next to a citation.
fn snippet(text: &str) -> String {
    let text = crate::ingest::plain::link_text(text);
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
    state: Arc<dyn StateStore>,
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
            state: state.clone(),
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

    #[test]
    fn streamed_citations_are_checked_exactly_as_the_whole_text() {
        let texts = [
            "A [2]. B [7]. C [1, 9][3]. D [x] [0].",
            "Cats sleep [1][12] a lot [3 ] and [1,2]; arrays [i] start [0] [",
            "Trailing open [1",
            "Spaces   [9]   and [ 2 ] end",
        ];
        for text in texts {
            let whole = validate_citations(text, 3).0;
            // Every way of cutting the text in two, and one character at a time.
            let chars: Vec<(usize, char)> = text.char_indices().collect();
            for &(cut, _) in &chars {
                let mut stream = CitationStream::new(3);
                let mut out = stream.push(&text[..cut]);
                out.push_str(&stream.push(&text[cut..]));
                out.push_str(&stream.finish());
                assert_eq!(out, whole, "cut at {cut} of {text:?}");
            }
            let mut stream = CitationStream::new(3);
            let mut out: String = chars
                .iter()
                .map(|(_, c)| stream.push(&c.to_string()))
                .collect();
            out.push_str(&stream.finish());
            assert_eq!(out, whole, "char by char: {text:?}");
        }
    }

    #[test]
    fn questions_normalise_for_the_cache() {
        assert_eq!(
            normalise_question("  How do  cats SLEEP?? "),
            normalise_question("how do cats sleep")
        );
    }
}
