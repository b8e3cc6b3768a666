//! [`HashingEmbedder`]: a deterministic, dependency-free embedder — words, word pairs and
//! character trigrams hashed into signed buckets, L2-normalised. It captures lexical overlap
//! only (paraphrases with different words score low), so it is what actor tests run on, not a
//! substitute for the built-in model.

use futures::future::BoxFuture;

use crate::lexical::{term_id, terms};
use crate::ports::{EmbedError, EmbedKind, Embedder};

#[derive(Debug, Clone)]
pub struct HashingEmbedder {
    dimension: usize,
}

impl HashingEmbedder {
    pub fn new(dimension: usize) -> Self {
        Self {
            dimension: dimension.max(8),
        }
    }

    fn vector(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dimension];
        let mut add = |feature: &str, weight: f32| {
            let h = term_id(feature);
            let sign = if h & 1 == 0 { 1.0 } else { -1.0 };
            v[(h >> 1) as usize % self.dimension] += sign * weight;
        };
        let words: Vec<String> = terms(text).collect();
        for word in &words {
            add(word, 1.0);
            let padded: Vec<char> = format!("#{word}#").chars().collect();
            for gram in padded.windows(3) {
                add(&gram.iter().collect::<String>(), 0.5);
            }
        }
        for pair in words.windows(2) {
            add(&format!("{} {}", pair[0], pair[1]), 0.7);
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

impl Embedder for HashingEmbedder {
    fn id(&self) -> &str {
        "hashing"
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        _kind: EmbedKind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move { Ok(texts.iter().map(|t| self.vector(t)).collect()) })
    }
}
