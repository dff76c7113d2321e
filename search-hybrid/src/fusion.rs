//! Score arithmetic, independent of any store.
//!
//! **Normalisation** makes each leg's score a number in `[0, 1]` that means the same on
//! every backend:
//! - keyword: `raw / best raw` of the leg's candidates. Keyword scores (BM25-style, ≥ 0)
//!   are only comparable within one result list and their scale differs between engines;
//!   dividing by the best keeps their ratios and puts the best match at 1 on any backend.
//! - semantic: the cosine similarity clamped to `[0, 1]` (it is already absolute: 0 is
//!   unrelated, 1 identical; negative similarity carries no useful signal).
//!
//! **Fusion** of the two legs:
//! - [`Fusion::Rrf`]: reciprocal rank fusion, `Σ wᵢ / (k + rankᵢ)`, divided by its
//!   maximum `Σ wᵢ / (k + 1)` so an entry ranked first by both legs scores 1. Robust to
//!   score scales; the default.
//! - [`Fusion::Convex`]: `Σ wᵢ · normᵢ / Σ wᵢ`, a leg that did not return the entry
//!   counting 0. Uses score magnitudes, so a near-perfect semantic match can beat a
//!   mediocre keyword match.

use serde::Serialize;

/// How hybrid search combines its legs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fusion {
    /// Reciprocal rank fusion with constant `k` (60 in the original paper).
    Rrf { k: f64 },
    /// Weighted mean of normalised scores.
    Convex,
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::Rrf { k: 60.0 }
    }
}

/// One leg's view of a hit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LegScore {
    /// 1-based rank within the leg's candidates.
    pub rank: usize,
    /// The backend's score: BM25-style relevance for keyword, cosine for semantic.
    pub raw: f64,
    /// In `[0, 1]`, see the module doc.
    pub normalized: f64,
}

/// Keyword raw scores → `[0, 1]` by the best score of the list.
pub fn normalize_keyword(raw: &[f64]) -> Vec<f64> {
    let best = raw.iter().copied().fold(0.0f64, f64::max);
    raw.iter()
        .map(|&s| {
            if best > 0.0 {
                (s / best).clamp(0.0, 1.0)
            } else {
                // Every match scored 0 (an engine that cannot rank): all equally relevant.
                1.0
            }
        })
        .collect()
}

/// Cosine similarity → `[0, 1]`.
pub fn normalize_semantic(cosine: f64) -> f64 {
    cosine.clamp(0.0, 1.0)
}

/// The fused score in `[0, 1]` of an entry with the given leg scores and weights.
pub fn fuse(
    fusion: Fusion,
    keyword: Option<&LegScore>,
    keyword_weight: f64,
    semantic: Option<&LegScore>,
    semantic_weight: f64,
) -> f64 {
    let total = keyword_weight + semantic_weight;
    if total <= 0.0 {
        return 0.0;
    }
    let score = match fusion {
        Fusion::Rrf { k } => {
            let part = |l: Option<&LegScore>, w: f64| l.map_or(0.0, |l| w / (k + l.rank as f64));
            let best = total / (k + 1.0);
            (part(keyword, keyword_weight) + part(semantic, semantic_weight)) / best
        }
        Fusion::Convex => {
            let part = |l: Option<&LegScore>, w: f64| l.map_or(0.0, |l| w * l.normalized);
            (part(keyword, keyword_weight) + part(semantic, semantic_weight)) / total
        }
    };
    score.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(rank: usize, normalized: f64) -> LegScore {
        LegScore {
            rank,
            raw: normalized,
            normalized,
        }
    }

    #[test]
    fn keyword_normalisation_keeps_ratios_and_tops_at_one() {
        assert_eq!(normalize_keyword(&[8.0, 4.0, 2.0]), [1.0, 0.5, 0.25]);
        assert_eq!(normalize_keyword(&[0.0, 0.0]), [1.0, 1.0]);
        assert!(normalize_keyword(&[]).is_empty());
        // The same ranking at another scale normalises identically (backend-independent).
        assert_eq!(normalize_keyword(&[0.8, 0.4, 0.2]), [1.0, 0.5, 0.25]);
    }

    #[test]
    fn semantic_normalisation_clamps_cosine() {
        assert_eq!(normalize_semantic(0.42), 0.42);
        assert_eq!(normalize_semantic(-0.3), 0.0);
        assert_eq!(normalize_semantic(1.0000001), 1.0);
    }

    #[test]
    fn rrf_matches_hand_computed_values() {
        let f = Fusion::Rrf { k: 60.0 };
        // First in both legs: the maximum, 1.
        assert!((fuse(f, Some(&leg(1, 0.1)), 1.0, Some(&leg(1, 0.1)), 1.0) - 1.0).abs() < 1e-12);
        // Rank 1 in one leg only: (1/61) / (2/61) = 0.5.
        assert!((fuse(f, Some(&leg(1, 1.0)), 1.0, None, 1.0) - 0.5).abs() < 1e-12);
        // Ranks 3 and 5: (1/63 + 1/65) / (2/61).
        let want = (1.0 / 63.0 + 1.0 / 65.0) / (2.0 / 61.0);
        assert!((fuse(f, Some(&leg(3, 0.0)), 1.0, Some(&leg(5, 0.0)), 1.0) - want).abs() < 1e-12);
        // Weights: keyword 3, semantic 1, keyword rank 1 only: (3/61) / (4/61) = 0.75.
        assert!((fuse(f, Some(&leg(1, 0.0)), 3.0, None, 1.0) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn both_legs_beat_one_strong_leg_under_rrf() {
        let f = Fusion::default();
        let both = fuse(f, Some(&leg(2, 0.9)), 1.0, Some(&leg(2, 0.9)), 1.0);
        let keyword_only = fuse(f, Some(&leg(1, 1.0)), 1.0, None, 1.0);
        let semantic_only = fuse(f, None, 1.0, Some(&leg(1, 1.0)), 1.0);
        assert!(both > keyword_only && both > semantic_only);
    }

    #[test]
    fn convex_is_the_weighted_mean_with_missing_legs_as_zero() {
        let f = Fusion::Convex;
        assert!((fuse(f, Some(&leg(1, 0.8)), 1.0, Some(&leg(4, 0.4)), 1.0) - 0.6).abs() < 1e-12);
        assert!((fuse(f, Some(&leg(1, 0.8)), 3.0, None, 1.0) - 0.6).abs() < 1e-12);
        assert_eq!(fuse(f, None, 1.0, None, 1.0), 0.0);
        assert_eq!(fuse(f, Some(&leg(1, 1.0)), 0.0, None, 0.0), 0.0);
    }
}
