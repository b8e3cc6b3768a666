//! The in-process BM25 inverted index ([`Index`]): the embedded store's own, and — wrapped as
//! [`MemoryLexical`] — the `LexicalIndex` port's embedded default (ChromaDB without Redis). It
//! ranks exactly as the Redis index does (the conformance suite holds both to the same results),
//! following the scoring rules on `ports::LexicalIndex`.
//!
//! Chunks get internal numbers; postings are `(number, weight)` per term, appended on write.
//! Removal only marks the number dead (scoring skips it) and keeps document frequencies exact;
//! the postings are rebuilt without the dead once they outnumber the live.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;

use crate::lexical::{self, TermCounts};
use crate::ports::{LexicalDoc, LexicalIndex, Ranked, StateError, Vocabulary};

#[derive(Debug, Default)]
pub(crate) struct Index {
    numbers: HashMap<String, u32>,
    /// By number; `None` once removed.
    docs: Vec<Option<Doc>>,
    /// term → (number, weight), possibly listing removed numbers.
    postings: HashMap<u32, Vec<(u32, f32)>>,
    /// term → live chunks holding it.
    frequencies: HashMap<u32, u64>,
    live: u64,
    total_length: u64,
    live_postings: usize,
    dead_postings: usize,
}

#[derive(Debug)]
struct Doc {
    id: String,
    length: u32,
    /// (term, weight), by term.
    weights: Vec<(u32, f32)>,
}

impl Index {
    /// Stores `docs` (the last version of a repeated id wins), all weighed with the average
    /// chunk length after the whole write.
    pub(crate) fn index(&mut self, docs: &[LexicalDoc]) {
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(docs.len());
        for (i, doc) in docs.iter().enumerate() {
            last.insert(doc.id.as_str(), i);
        }
        let written = docs
            .iter()
            .enumerate()
            .filter(|(i, doc)| last.get(doc.id.as_str()) == Some(i))
            .map(|(_, doc)| doc);
        let (mut chunks, mut total) = (self.live, self.total_length);
        for doc in written.clone() {
            if let Some(old) = self.doc(&doc.id) {
                chunks -= 1;
                total -= u64::from(old.length);
            }
            chunks += 1;
            total += u64::from(doc.terms.length);
        }
        let average = lexical::average(chunks, total);
        for doc in written {
            self.remove(&doc.id);
            self.insert(&doc.id, &doc.terms, average);
        }
    }

    fn doc(&self, id: &str) -> Option<&Doc> {
        let number = *self.numbers.get(id)?;
        self.docs[number as usize].as_ref()
    }

    fn insert(&mut self, id: &str, terms: &TermCounts, average: f32) {
        let number = self.docs.len() as u32;
        let weights = lexical::doc_vector(terms, average);
        for &(term, weight) in &weights {
            self.postings
                .entry(term)
                .or_default()
                .push((number, weight));
            *self.frequencies.entry(term).or_insert(0) += 1;
        }
        self.live_postings += weights.len();
        self.live += 1;
        self.total_length += u64::from(terms.length);
        self.numbers.insert(id.to_string(), number);
        self.docs.push(Some(Doc {
            id: id.to_string(),
            length: terms.length,
            weights,
        }));
    }

    pub(crate) fn remove(&mut self, id: &str) {
        let Some(number) = self.numbers.remove(id) else {
            return;
        };
        let Some(doc) = self.docs[number as usize].take() else {
            return;
        };
        // Postings dropped with their whole list (this chunk's own among them).
        let mut vanished = 0;
        for (term, _) in &doc.weights {
            if let Some(df) = self.frequencies.get_mut(term) {
                *df -= 1;
                if *df == 0 {
                    self.frequencies.remove(term);
                    vanished += self.postings.remove(term).map_or(0, |list| list.len());
                }
            }
        }
        self.live -= 1;
        self.total_length -= u64::from(doc.length);
        self.live_postings -= doc.weights.len();
        self.dead_postings = self.dead_postings + doc.weights.len() - vanished;
        if self.dead_postings > self.live_postings.max(1024) {
            self.compact();
        }
    }

    /// Rebuilds the postings from the live chunks, renumbering them.
    fn compact(&mut self) {
        let docs = std::mem::take(&mut self.docs);
        self.numbers.clear();
        self.postings.clear();
        for doc in docs.into_iter().flatten() {
            let number = self.docs.len() as u32;
            for &(term, weight) in &doc.weights {
                self.postings
                    .entry(term)
                    .or_default()
                    .push((number, weight));
            }
            self.numbers.insert(doc.id.clone(), number);
            self.docs.push(Some(doc));
        }
        self.dead_postings = 0;
    }

    pub(crate) fn len(&self) -> u64 {
        self.live
    }

    pub(crate) fn vocabulary(&self, terms: &[u32]) -> Vocabulary {
        Vocabulary {
            chunks: self.live,
            holds: terms
                .iter()
                .map(|term| self.frequencies.contains_key(term))
                .collect(),
        }
    }

    /// The query's distinct terms that some chunk holds, ascending, with their idf.
    fn query_terms(&self, query: &TermCounts) -> Vec<(u32, f32)> {
        query
            .counts
            .keys()
            .filter_map(|term| {
                let df = *self.frequencies.get(term)?;
                Some((*term, lexical::idf(self.live, df)))
            })
            .collect()
    }

    /// The `limit` best chunks that `accept` lets through, best first.
    pub(crate) fn search(
        &self,
        query: &TermCounts,
        limit: usize,
        accept: impl Fn(&str) -> bool,
    ) -> Vec<Ranked> {
        if limit == 0 || self.live == 0 {
            return Vec::new();
        }
        // Scores by number in a flat array: common terms touch most chunks, and indexing beats
        // hashing there. `touched` lists the numbers that scored, so the top-k pass skips the rest.
        let mut scores = vec![0.0f32; self.docs.len()];
        let mut touched: Vec<u32> = Vec::new();
        for (term, idf) in self.query_terms(query) {
            for &(number, weight) in self.postings.get(&term).into_iter().flatten() {
                let i = number as usize;
                if self.docs[i].is_none() {
                    continue;
                }
                if scores[i] == 0.0 {
                    touched.push(number);
                }
                scores[i] += idf * weight;
            }
        }
        let mut best = Best::new(limit);
        for number in touched {
            if let Some(doc) = &self.docs[number as usize]
                && accept(&doc.id)
            {
                best.push(scores[number as usize], &doc.id);
            }
        }
        best.into_ranked()
    }

    /// The scores of `ids` for `query` (see `LexicalIndex::score`).
    pub(crate) fn score(&self, query: &TermCounts, ids: &[String]) -> Vec<Ranked> {
        let terms = self.query_terms(query);
        ids.iter()
            .filter_map(|id| {
                let doc = self.doc(id)?;
                let mut score = 0.0f32;
                let mut shared = false;
                for &(term, idf) in &terms {
                    if let Ok(at) = doc.weights.binary_search_by_key(&term, |&(t, _)| t) {
                        score += idf * doc.weights[at].1;
                        shared = true;
                    }
                }
                shared.then(|| Ranked {
                    id: id.clone(),
                    score,
                })
            })
            .collect()
    }
}

/// The best `k` (score, id) seen so far: higher score first, then the smaller id.
pub(crate) struct Best<'a> {
    k: usize,
    /// The worst kept entry on top.
    heap: BinaryHeap<Entry<'a>>,
}

struct Entry<'a>(f32, &'a str);

impl PartialEq for Entry<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry<'_> {}

impl PartialOrd for Entry<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry<'_> {
    /// "Greater" is worse: a lower score, or the same score and a larger id.
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then_with(|| self.1.cmp(other.1))
    }
}

impl<'a> Best<'a> {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    pub(crate) fn push(&mut self, score: f32, id: &'a str) {
        if self.k == 0 {
            return;
        }
        let entry = Entry(score, id);
        if self.heap.len() < self.k {
            self.heap.push(entry);
        } else if self.heap.peek().is_some_and(|worst| entry < *worst) {
            self.heap.pop();
            self.heap.push(entry);
        }
    }

    pub(crate) fn into_ranked(self) -> Vec<Ranked> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Entry(score, id)| Ranked {
                id: id.to_string(),
                score,
            })
            .collect()
    }
}

/// The `LexicalIndex` port in process: one [`Index`] per name, each behind its own lock.
#[derive(Default)]
pub struct MemoryLexical {
    indexes: RwLock<HashMap<String, Arc<RwLock<Index>>>>,
}

impl MemoryLexical {
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&self, name: &str) -> Result<Option<Arc<RwLock<Index>>>, StateError> {
        Ok(self
            .indexes
            .read()
            .map_err(|_| poisoned())?
            .get(name)
            .cloned())
    }

    fn get_or_create(&self, name: &str) -> Result<Arc<RwLock<Index>>, StateError> {
        if let Some(index) = self.get(name)? {
            return Ok(index);
        }
        let mut indexes = self.indexes.write().map_err(|_| poisoned())?;
        Ok(indexes.entry(name.to_string()).or_default().clone())
    }

    /// Runs `read` on the named index, or answers `empty` when there is none.
    fn read<T>(
        &self,
        name: &str,
        empty: T,
        read: impl FnOnce(&Index) -> T,
    ) -> Result<T, StateError> {
        match self.get(name)? {
            Some(index) => {
                let index = index.read().map_err(|_| poisoned())?;
                Ok(read(&index))
            }
            None => Ok(empty),
        }
    }
}

fn poisoned() -> StateError {
    StateError::Backend("a previous lexical index write panicked".to_string())
}

impl LexicalIndex for MemoryLexical {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn index<'a>(
        &'a self,
        index: &'a str,
        docs: &'a [LexicalDoc],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            if docs.is_empty() {
                return Ok(());
            }
            let index = self.get_or_create(index)?;
            index.write().map_err(|_| poisoned())?.index(docs);
            Ok(())
        })
    }

    fn remove<'a>(
        &'a self,
        index: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            if let Some(index) = self.get(index)? {
                let mut index = index.write().map_err(|_| poisoned())?;
                ids.iter().for_each(|id| index.remove(id));
            }
            Ok(())
        })
    }

    fn search<'a>(
        &'a self,
        index: &'a str,
        query: &'a TermCounts,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StateError>> {
        Box::pin(async move {
            self.read(index, Vec::new(), |index| {
                index.search(query, limit, |_| true)
            })
        })
    }

    fn score<'a>(
        &'a self,
        index: &'a str,
        query: &'a TermCounts,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StateError>> {
        Box::pin(async move { self.read(index, Vec::new(), |index| index.score(query, ids)) })
    }

    fn len<'a>(&'a self, index: &'a str) -> BoxFuture<'a, Result<u64, StateError>> {
        Box::pin(async move { self.read(index, 0, Index::len) })
    }

    fn vocabulary<'a>(
        &'a self,
        index: &'a str,
        terms: &'a [u32],
    ) -> BoxFuture<'a, Result<Vocabulary, StateError>> {
        Box::pin(async move {
            let none = Vocabulary {
                chunks: 0,
                holds: vec![false; terms.len()],
            };
            self.read(index, none, |index| index.vocabulary(terms))
        })
    }

    fn clear<'a>(&'a self, index: &'a str) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            self.indexes.write().map_err(|_| poisoned())?.remove(index);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, text: &str) -> LexicalDoc {
        LexicalDoc::new(id, text)
    }

    #[test]
    fn removed_chunks_leave_frequencies_and_scores_exact_across_compaction() {
        let mut index = Index::default();
        let docs: Vec<LexicalDoc> = (0..3000)
            .map(|i| {
                doc(
                    &format!("d{i}"),
                    &format!("common word{} other{}", i % 7, i % 13),
                )
            })
            .collect();
        index.index(&docs);
        let query = lexical::count_terms("common word3");
        let before = index.search(&query, 5, |_| true);
        // Remove everything but the top five, then search again: the compaction in between
        // renumbers chunks but must not change what they score.
        let keep: Vec<&str> = before.iter().map(|r| r.id.as_str()).collect();
        for d in &docs {
            if !keep.contains(&d.id.as_str()) {
                index.remove(&d.id);
            }
        }
        assert_eq!(index.len(), 5);
        assert!(index.docs.len() < 3000, "compacted (renumbered) on the way");
        let after = index.search(&query, 5, |_| true);
        assert_eq!(
            after.iter().map(|r| &r.id).collect::<Vec<_>>(),
            before.iter().map(|r| &r.id).collect::<Vec<_>>()
        );
        // Fewer chunks, so idf (and the scores) change; the scores still agree with `score`.
        let scored = index.score(
            &query,
            &after.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        );
        for ranked in &after {
            let same = scored.iter().find(|s| s.id == ranked.id).map(|s| s.score);
            assert_eq!(same, Some(ranked.score));
        }
    }

    #[test]
    fn ties_rank_the_smaller_id_first() {
        let mut index = Index::default();
        index.index(&[
            doc("b", "same words"),
            doc("a", "same words"),
            doc("c", "same words"),
        ]);
        let ranked = index.search(&lexical::count_terms("same"), 2, |_| true);
        assert_eq!(
            ranked.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }
}
