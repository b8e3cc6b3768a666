//! The lexical side of hybrid search: text → stemmed terms → hashed term ids with counts, and the
//! BM25 arithmetic. Both vector stores score lexical matches with these functions, so the
//! embedded store and ChromaDB rank alike.
//!
//! BM25 is split so that a plain sparse dot product computes it: a chunk stores
//! `tf·(k1+1) / (tf + k1·(1 − b + b·len/avgdl))` per term (fixed at write time, with the average
//! chunk length after that write: [`average`]), and a query weighs each of its terms by `idf`
//! (from document frequencies at query time). Fixed weights let an index keep each term's
//! postings sorted by weight, so a top-k query reads the heads of a few lists instead of all of
//! them (`ports::LexicalIndex`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};

pub const K1: f32 = 1.2;
pub const B: f32 = 0.75;

static STEMMER: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// Words too common to say anything about a chunk. Kept short: BM25's idf already discounts
/// frequent terms; this only spares the index the very top of the distribution.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this",
    "to", "was", "will", "with", "i", "you", "we", "do", "does", "how", "what", "which", "can",
];

/// A chunk's (or a query's) terms: id → occurrences, plus how many terms it has in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermCounts {
    pub counts: BTreeMap<u32, u32>,
    pub length: u32,
}

/// Lower-cased, stemmed words of `text`; identifiers split at `_` and `.` as well. The one
/// tokeniser of words: search, result diversity and the extractive answerer all use it.
pub fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    words(text).map(|word| stem(&word))
}

/// Lower-cased words of `text` without stopwords, before stemming (for callers that drop more
/// words of their own first).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty() && word.len() <= 64)
        .map(str::to_lowercase)
        .filter(|word| !is_stopword(word))
}

pub fn stem(word: &str) -> String {
    STEMMER.stem(word).into_owned()
}

/// Whether a (lower-case) word is too common to be a search term.
pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

/// FNV-1a: a stable 32-bit id per term (the same in every process and release).
pub fn term_id(term: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in term.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

pub fn count_terms(text: &str) -> TermCounts {
    let mut counts = TermCounts::default();
    for term in terms(text) {
        *counts.counts.entry(term_id(&term)).or_insert(0) += 1;
        counts.length += 1;
    }
    counts
}

/// The document side of BM25 for one term.
pub fn doc_weight(tf: u32, length: u32, avg_length: f32) -> f32 {
    let tf = tf as f32;
    let norm = 1.0 - B + B * length as f32 / avg_length.max(1.0);
    tf * (K1 + 1.0) / (tf + K1 * norm)
}

/// Sparse BM25 document weights, sorted by term id.
pub fn doc_vector(counts: &TermCounts, avg_length: f32) -> Vec<(u32, f32)> {
    counts
        .counts
        .iter()
        .map(|(&id, &tf)| (id, doc_weight(tf, counts.length, avg_length)))
        .collect()
}

/// The average chunk length a write weighs its chunks with: the index's, after the write.
pub fn average(chunks: u64, total_length: u64) -> f32 {
    if chunks == 0 {
        return 1.0;
    }
    total_length as f32 / chunks as f32
}

/// BM25's (never negative) inverse document frequency.
pub fn idf(documents: u64, frequency: u64) -> f32 {
    let n = documents as f32;
    let df = frequency.min(documents) as f32;
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_stemmed_lowercase_words_without_stopwords() {
        let got: Vec<String> = terms("The Running dogs ran to json.dumps() and os_path!").collect();
        assert_eq!(got, ["run", "dog", "ran", "json", "dump", "os", "path"]);
    }

    #[test]
    fn counts_and_ids_are_stable() {
        let counts = count_terms("cache caching cached CACHE");
        assert_eq!(counts.length, 4);
        assert_eq!(counts.counts.len(), 1, "one stem: {counts:?}");
        assert_eq!(counts.counts[&term_id("cach")], 4);
        assert_eq!(term_id("rust"), term_id("rust"));
        assert_ne!(term_id("rust"), term_id("rest"));
    }

    #[test]
    fn bm25_pieces_behave() {
        // Saturation: more occurrences help, with diminishing returns.
        assert!(doc_weight(2, 100, 100.0) > doc_weight(1, 100, 100.0));
        assert!(doc_weight(2, 100, 100.0) - doc_weight(1, 100, 100.0) < doc_weight(1, 100, 100.0));
        // Length normalisation: the same count in a longer chunk weighs less.
        assert!(doc_weight(1, 50, 100.0) > doc_weight(1, 200, 100.0));
        // Rare terms weigh more; idf never goes negative.
        assert!(idf(1000, 1) > idf(1000, 500));
        assert!(idf(10, 10) > 0.0 && idf(0, 5) > 0.0);
    }
}
