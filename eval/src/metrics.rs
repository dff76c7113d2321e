//! Ranking metrics with trec_eval's definitions (as pytrec_eval computes them).

use std::collections::HashMap;

/// Judgements of one query: document id → graded relevance (≤ 0 = not relevant).
pub type Judgements = HashMap<String, i32>;

/// nDCG@k with linear gains: Σ_{i≤k} gain_i / log2(i + 1) over the ranking, divided by the
/// same sum for the ideal ordering of all judged gains > 0. 0 when nothing is relevant.
pub fn ndcg_at(ranking: &[String], judged: &Judgements, k: usize) -> f64 {
    let gain = |d: &String| judged.get(d).copied().unwrap_or(0).max(0) as f64;
    let dcg: f64 = ranking
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, d)| gain(d) / ((i + 2) as f64).log2())
        .sum();
    let mut ideal: Vec<f64> = judged
        .values()
        .filter(|&&g| g > 0)
        .map(|&g| g as f64)
        .collect();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, g)| g / ((i + 2) as f64).log2())
        .sum();
    if idcg == 0.0 {
        0.0
    } else {
        dcg / idcg
    }
}

/// Fraction of the relevant documents (score > 0) found in the top k.
pub fn recall_at(ranking: &[String], judged: &Judgements, k: usize) -> f64 {
    let relevant = judged.values().filter(|&&g| g > 0).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = ranking
        .iter()
        .take(k)
        .filter(|d| judged.get(*d).is_some_and(|&g| g > 0))
        .count();
    found as f64 / relevant as f64
}

/// 1 / rank of the first relevant document within the top k, else 0.
pub fn mrr_at(ranking: &[String], judged: &Judgements, k: usize) -> f64 {
    ranking
        .iter()
        .take(k)
        .position(|d| judged.get(d).is_some_and(|&g| g > 0))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// Shared documents in two top-k lists, divided by k.
pub fn overlap_at(a: &[String], b: &[String], k: usize) -> f64 {
    let top: std::collections::HashSet<&String> = a.iter().take(k).collect();
    let shared = b.iter().take(k).filter(|d| top.contains(d)).count();
    shared as f64 / k.min(a.len().max(b.len())).max(1) as f64
}

/// The median of a non-empty sample (the lower middle for even sizes, as p50).
pub fn p50(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    samples[(samples.len() - 1) / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(pairs: &[(&str, i32)]) -> Judgements {
        pairs.iter().map(|(d, g)| (d.to_string(), *g)).collect()
    }

    fn ranking(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ndcg_matches_hand_computed_values() {
        // Gains 3 at rank 1, 0 at rank 2, 1 at rank 3; ideal 3, 2, 1.
        let j = judged(&[("a", 3), ("b", 2), ("c", 1), ("x", 0)]);
        let r = ranking(&["a", "x", "c", "b"]);
        let dcg = 3.0 + 0.0 + 1.0 / 4f64.log2() + 2.0 / 5f64.log2();
        let idcg = 3.0 + 2.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((ndcg_at(&r, &j, 10) - dcg / idcg).abs() < 1e-12);
        // Cut at 2: only rank 1 counts; the ideal is cut at 2 too.
        let want = 3.0 / (3.0 + 2.0 / 3f64.log2());
        assert!((ndcg_at(&r, &j, 2) - want).abs() < 1e-12);
        // Perfect order → 1; nothing relevant retrieved → 0; nothing relevant judged → 0.
        assert!((ndcg_at(&ranking(&["a", "b", "c"]), &j, 10) - 1.0).abs() < 1e-12);
        assert_eq!(ndcg_at(&ranking(&["x", "y"]), &j, 10), 0.0);
        assert_eq!(ndcg_at(&r, &judged(&[("a", 0)]), 10), 0.0);
    }

    #[test]
    fn recall_and_mrr_match_hand_computed_values() {
        let j = judged(&[("a", 1), ("b", 2), ("c", 1), ("d", 1), ("x", 0)]);
        let r = ranking(&["x", "y", "b", "a"]);
        assert_eq!(recall_at(&r, &j, 100), 0.5);
        assert_eq!(recall_at(&r, &j, 3), 0.25);
        assert!((mrr_at(&r, &j, 10) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(mrr_at(&r, &j, 2), 0.0);
        assert_eq!(recall_at(&r, &judged(&[]), 100), 0.0);
    }

    #[test]
    fn overlap_and_p50() {
        let a = ranking(&["1", "2", "3", "4"]);
        let b = ranking(&["4", "3", "9", "8"]);
        assert_eq!(overlap_at(&a, &b, 4), 0.5);
        assert_eq!(p50(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(p50(&mut [4.0, 1.0, 3.0, 2.0]), 2.0);
    }
}
