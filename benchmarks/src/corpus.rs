//! The seeded corpus every bench shares, so the numbers of all backends compare.
//!
//! Titles of 3–12 words and bodies of 50–400 words drawn from a 30,000-word pseudo-word
//! vocabulary with a Zipf(1.1) distribution; 1–4 tags from 200 hierarchical tags
//! (`topic/sub`); 384-d vectors made of one of 100 Gaussian topic centroids plus noise,
//! normalised. The same seed always yields the same corpus.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Zipf};
use storage_core::NewEntry;

pub const VOCABULARY: usize = 30_000;
pub const TOPICS: usize = 100;
pub const DIMENSION: usize = 384;

/// A deterministic corpus generator.
pub struct Corpus {
    vocab: Vec<String>,
    tags: Vec<String>,
    centroids: Vec<Vec<f32>>,
    seed: u64,
}

const SYLLABLES: [&str; 40] = [
    "ka", "lo", "mi", "ne", "su", "ta", "ri", "vo", "pe", "da", "go", "zu", "be", "fi", "ho", "ja",
    "ku", "ly", "mo", "nu", "pa", "qui", "ro", "sa", "te", "ul", "ve", "wa", "xe", "yo", "zen",
    "bar", "cor", "dul", "fen", "gal", "hir", "jun", "kel", "lom",
];

fn pseudo_word(mut i: usize) -> String {
    // Bijective base-40 over syllables, at least two syllables: unique and pronounceable.
    let mut w = String::new();
    let mut n = 0;
    loop {
        w.push_str(SYLLABLES[i % SYLLABLES.len()]);
        i /= SYLLABLES.len();
        n += 1;
        if i == 0 && n >= 2 {
            break;
        }
    }
    w
}

impl Corpus {
    pub fn new(seed: u64) -> Self {
        let vocab: Vec<String> = (0..VOCABULARY).map(|i| pseudo_word(i + 41)).collect();
        let mut tags = Vec::with_capacity(200);
        for t in 0..20 {
            for s in 0..10 {
                tags.push(format!(
                    "{}/{}",
                    pseudo_word(t + 2000),
                    pseudo_word(s + 3000)
                ));
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC0FFEE);
        let normal = Normal::new(0.0f32, 1.0).expect("valid normal");
        let centroids = (0..TOPICS)
            .map(|_| normalise((0..DIMENSION).map(|_| normal.sample(&mut rng)).collect()))
            .collect();
        Self {
            vocab,
            tags,
            centroids,
            seed,
        }
    }

    /// The word at Zipf rank `rank` (0 = most frequent).
    pub fn word(&self, rank: usize) -> &str {
        &self.vocab[rank]
    }

    /// `n` entries in `kb`, ids `e000000…`; entry `i` is the same for every `n`.
    pub fn entries(&self, kb: &str, n: usize) -> Vec<NewEntry> {
        (0..n).map(|i| self.entry(kb, i)).collect()
    }

    pub fn entry(&self, kb: &str, i: usize) -> NewEntry {
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        let zipf = Zipf::new(VOCABULARY as u64, 1.1).expect("valid zipf");
        let words = |k: usize, rng: &mut ChaCha8Rng| {
            (0..k)
                .map(|_| self.vocab[zipf.sample(rng) as usize - 1].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let title_len = rng.gen_range(3..=12);
        let body_len = rng.gen_range(50..=400);
        let title = words(title_len, &mut rng);
        let body = words(body_len, &mut rng);
        let ntags = rng.gen_range(1..=4);
        let tags: Vec<String> = (0..ntags)
            .map(|_| self.tags[rng.gen_range(0..self.tags.len())].clone())
            .collect();
        NewEntry::new(kb, format!("e{i:06}"))
            .title(title)
            .body(body)
            .tags(tags)
            .importance(rng.gen_range(0..10))
    }

    /// The topic of entry `i` (its vector's centroid).
    pub fn topic_of(&self, i: usize) -> usize {
        (i.wrapping_mul(2_654_435_761)) % TOPICS
    }

    /// Entry `i`'s vector: its topic centroid plus Gaussian noise, normalised.
    pub fn vector(&self, i: usize) -> Vec<f32> {
        self.noisy(self.topic_of(i), 0x5EED ^ i as u64)
    }

    /// A query vector near topic `t`.
    pub fn query_vector(&self, t: usize, salt: u64) -> Vec<f32> {
        self.noisy(t % TOPICS, 0xFACE ^ salt)
    }

    fn noisy(&self, topic: usize, salt: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed.wrapping_add(salt.wrapping_mul(31)));
        let noise = Normal::new(0.0f32, 0.08).expect("valid normal");
        normalise(
            self.centroids[topic]
                .iter()
                .map(|c| c + noise.sample(&mut rng))
                .collect(),
        )
    }
}

fn normalise(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_deterministic_and_shaped_as_documented() {
        let a = Corpus::new(7);
        let b = Corpus::new(7);
        assert_eq!(a.entry("k", 5), b.entry("k", 5));
        assert_eq!(a.vector(5), b.vector(5));
        let e = a.entry("k", 9);
        let words = e.body.split(' ').count();
        assert!((50..=400).contains(&words));
        assert!((3..=12).contains(&e.title.split(' ').count()));
        assert!((1..=4).contains(&e.tags.len()) && e.tags.iter().all(|t| t.contains('/')));
        let n: f32 = a.vector(3).iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-4);
        let uniq: std::collections::HashSet<_> = a.vocab.iter().collect();
        assert_eq!(uniq.len(), VOCABULARY);
    }
}
