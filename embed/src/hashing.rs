//! A deterministic, dependency-free embedder for tests: **lexical, not semantic**.
//!
//! Each lower-cased word (and each pair of adjacent words) adds ±1 to a bucket chosen by
//! its BLAKE3 hash. Texts sharing words get similar vectors; paraphrases with different
//! words do not. Use it to test plumbing (queue, passages, fusion), never to judge
//! retrieval quality.

use async_trait::async_trait;

use crate::{Embedder, Result};

#[derive(Debug, Clone)]
pub struct HashingEmbedder {
    dimension: usize,
    model_id: String,
    max_tokens: usize,
}

impl HashingEmbedder {
    pub fn new(dimension: usize) -> Self {
        assert!(dimension > 0, "dimension must be positive");
        Self {
            dimension,
            model_id: format!("hashing-{dimension}"),
            max_tokens: 256,
        }
    }

    /// Overrides the token window (one word is one token), to exercise passage splitting.
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = max_tokens.max(1);
        self
    }

    fn bucket(&self, feature: &str) -> (usize, f32) {
        let h = blake3::hash(feature.as_bytes());
        let b = h.as_bytes();
        let n = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
        let sign = if b[8] & 1 == 0 { 1.0 } else { -1.0 };
        ((n % self.dimension as u64) as usize, sign)
    }

    pub fn embed_text(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dimension];
        let words: Vec<String> = words(text).map(str::to_lowercase).collect();
        for w in &words {
            let (i, s) = self.bucket(w);
            v[i] += s;
        }
        for pair in words.windows(2) {
            let (i, s) = self.bucket(&format!("{} {}", pair[0], pair[1]));
            v[i] += 0.5 * s;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm == 0.0 {
            // An empty text still gets a valid (non-zero) vector.
            v[0] = 1.0;
        } else {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

#[async_trait]
impl Embedder for HashingEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }
    fn dimension(&self) -> usize {
        self.dimension
    }
    fn max_input_tokens(&self) -> usize {
        self.max_tokens
    }
    fn count_tokens(&self, text: &str) -> usize {
        words(text).count()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.embed_text(t)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn shared_words_score_higher_than_disjoint_ones() {
        let e = HashingEmbedder::new(256);
        let a = e.embed_text("rust storage engine");
        let b = e.embed_text("A storage engine in Rust");
        let c = e.embed_text("baking bread at home");
        assert!(cos(&a, &b) > 0.5, "{}", cos(&a, &b));
        assert!(cos(&a, &c) < 0.3, "{}", cos(&a, &c));
        assert_eq!(a, e.embed_text("rust storage engine"), "deterministic");
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        assert!(e.embed_text("").iter().any(|&x| x != 0.0));
    }
}
