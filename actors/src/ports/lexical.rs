//! The word side of hybrid search (`LexicalIndex`): per-chunk term weights and top-k reads.

use futures::future::BoxFuture;

use super::StateError;

/// One chunk's terms, as the lexical index takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexicalDoc {
    pub id: String,
    pub terms: crate::lexical::TermCounts,
}

impl LexicalDoc {
    /// The terms of a chunk's text.
    pub fn new(id: &str, text: &str) -> Self {
        Self {
            id: id.to_string(),
            terms: crate::lexical::count_terms(text),
        }
    }

    /// The terms a stored chunk is found by: its page's title and its heading path as well as
    /// its text. Why: a question names the page's subject ("heap queue") more often than the
    /// chunk that answers it repeats it, and every chunk of a page then shares that evidence.
    pub fn chunk(record: &super::ChunkRecord) -> Self {
        let mut text = String::with_capacity(
            record.title.len() + record.heading.len() + record.text.len() + 2,
        );
        for part in [&record.title, &record.heading, &record.text] {
            text.push_str(part);
            text.push('\n');
        }
        Self::new(&record.id, &text)
    }
}

/// Which of some terms an index holds, and over how many chunks. A word missing from a large
/// collection names something it does not cover; from a small one, maybe only a word it never
/// needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vocabulary {
    pub chunks: u64,
    /// Per term asked about, in order: whether some chunk holds it.
    pub holds: Vec<bool>,
}

/// A chunk ranked by BM25.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub id: String,
    pub score: f32,
}

/// BM25's inverted index, kept in the state store (Redis in production) so lexical search never
/// scans the vector store and every replica ranks alike. One index per collection, named by the
/// caller (qualified by whatever namespaces the collection).
///
/// Scoring is the same in every backend, to the bit: a chunk's weight for a term is
/// `lexical::doc_weight` with the index's average chunk length after the write that stored it
/// (fixed then, so a query is a sparse dot product); a query term weighs `lexical::idf` of the
/// live chunk count and its document frequency; a chunk's score is the sum over the query's
/// distinct terms in ascending term id order. Ties rank the smaller chunk id first.
pub trait LexicalIndex: Send + Sync + 'static {
    /// `redis` or `memory`.
    fn backend(&self) -> &'static str;

    /// Stores `docs`, replacing whatever earlier versions of the same ids put there. Within one
    /// call the last version of an id wins, and every doc is weighed with one average: the
    /// index's after the whole call.
    fn index<'a>(
        &'a self,
        index: &'a str,
        docs: &'a [LexicalDoc],
    ) -> BoxFuture<'a, Result<(), StateError>>;

    /// Takes the chunks out (unknown ids are ignored).
    fn remove<'a>(
        &'a self,
        index: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<(), StateError>>;

    /// The `limit` best chunks for `query`'s terms, best first; chunks sharing no term with it
    /// are not returned.
    fn search<'a>(
        &'a self,
        index: &'a str,
        query: &'a crate::lexical::TermCounts,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StateError>>;

    /// The scores of `ids` for `query`, in no particular order; ids sharing no term with it (or
    /// unknown) are left out. How a filtered search ranks the few chunks a filter admits.
    fn score<'a>(
        &'a self,
        index: &'a str,
        query: &'a crate::lexical::TermCounts,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StateError>>;

    /// How many chunks the index holds.
    fn len<'a>(&'a self, index: &'a str) -> BoxFuture<'a, Result<u64, StateError>>;

    /// Which of `terms` some chunk holds (an unknown index holds none, over 0 chunks).
    fn vocabulary<'a>(
        &'a self,
        index: &'a str,
        terms: &'a [u32],
    ) -> BoxFuture<'a, Result<Vocabulary, StateError>>;

    /// Drops the whole index.
    fn clear<'a>(&'a self, index: &'a str) -> BoxFuture<'a, Result<(), StateError>>;
}
