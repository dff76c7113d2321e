//! The Searcher on both backends, on a small fixed corpus with hand-made vectors: fusion
//! ranks an entry strong on both legs first, filters hold on both legs, fused pages are
//! disjoint and complete, scores are in [0, 1] with explanations, hybrid degrades to
//! keyword without vectors, and a store of another model is refused at start-up.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

// The store openers and `on_both_backends!` are shared with the embed crate's tests.
#[path = "../../embed/tests/common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use embed::{Embedder, HashingEmbedder};
use search_hybrid::*;
use storage_core::*;

type S = Arc<dyn Store>;

/// Maps known queries to hand-made vectors (4-d); anything else gets a fixed vector.
#[derive(Debug)]
struct FixedEmbedder(HashMap<String, Vec<f32>>);

#[async_trait]
impl Embedder for FixedEmbedder {
    fn model_id(&self) -> &str {
        "fixed-4"
    }
    fn dimension(&self) -> usize {
        4
    }
    fn max_input_tokens(&self) -> usize {
        256
    }
    async fn embed(&self, texts: &[String]) -> embed::Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| self.0.get(t).cloned().unwrap_or(vec![0.0, 0.0, 0.0, 1.0]))
            .collect())
    }
}

fn embedder() -> Arc<dyn Embedder> {
    Arc::new(FixedEmbedder(HashMap::from([(
        "quantum".to_owned(),
        vec![1.0, 0.0, 0.0, 0.0],
    )])))
}

/// `kw` is the best keyword match with a far vector; `sem` is the nearest vector with no
/// keyword match; `both` is second on each leg; twelve `noise` entries sit between them
/// semantically, half tagged `keep`, some mentioning quantum once in a long body.
async fn corpus(s: &S, with_vectors: bool) {
    s.create_kb(&NewKnowledgeBase::persistent("h"))
        .await
        .unwrap();
    s.ensure_embedding_space(&EmbeddingSpace::new("fixed-4", 4))
        .await
        .unwrap();
    let mut entries = vec![
        (
            NewEntry::new("h", "kw")
                .title("Quantum quantum computing")
                .body("quantum error correction and quantum gates")
                .tags(vec!["keep"]),
            [0.0, 0.0, 1.0, 0.2],
        ),
        (
            NewEntry::new("h", "both")
                .title("Quantum sensing")
                .body("sensors near the standard limit")
                .tags(vec!["keep"]),
            [0.95, 0.3, 0.0, 0.0],
        ),
        (
            NewEntry::new("h", "sem")
                .title("Qubits in practice")
                .body("superconducting circuits")
                .tags(vec!["keep"]),
            [1.0, 0.05, 0.0, 0.0],
        ),
        (
            NewEntry::new("h", "secret")
                .title("Quantum quantum quantum")
                .body("quantum")
                .tags(vec!["drop"]),
            [1.0, 0.0, 0.0, 0.0],
        ),
    ];
    for i in 0..12 {
        let body = if i % 3 == 0 {
            format!("{} quantum", "filler text about other things ".repeat(8))
        } else {
            "filler text about other things".to_owned()
        };
        entries.push((
            NewEntry::new("h", format!("noise{i:02}"))
                .title(format!("Noise {i}"))
                .body(body)
                .tags(if i % 2 == 0 {
                    vec!["keep"]
                } else {
                    vec!["other"]
                }),
            [0.6 - 0.02 * i as f32, 0.8, 0.0, 0.0],
        ));
    }
    let news: Vec<NewEntry> = entries.iter().map(|(e, _)| e.clone()).collect();
    s.upsert_entries(&news).await.unwrap();
    if with_vectors {
        let vectors: Vec<(EntryKey, Vec<f32>)> = entries
            .iter()
            .map(|(e, v)| (EntryKey::new("h", &e.id), v.to_vec()))
            .collect();
        s.put_vectors(&vectors).await.unwrap();
    }
}

fn keep() -> Filter {
    Filter::new().tag("keep")
}

fn ids(r: &SearchResponse) -> Vec<&str> {
    r.hits.iter().map(|h| h.entry.id.as_str()).collect()
}

async fn searcher(s: &S, config: SearchConfig) -> Searcher {
    Searcher::new(s.clone(), embedder(), config).await.unwrap()
}

async fn hybrid_ranks_an_entry_strong_on_both_legs_first(s: S) {
    corpus(&s, true).await;
    for fusion in [Fusion::Rrf { k: 60.0 }, Fusion::Convex] {
        let sr = searcher(
            &s,
            SearchConfig {
                fusion,
                ..Default::default()
            },
        )
        .await;
        let req = SearchRequest::new("quantum", SearchMode::Hybrid).filter(keep().limit(5));
        let r = sr.search(&req).await.unwrap();
        assert_eq!(r.legs, [SearchMode::Keyword, SearchMode::Semantic]);
        assert_eq!(r.degraded, None);
        assert_eq!(ids(&r)[0], "both", "{fusion:?}: {:#?}", r.hits);
        let top = &r.hits[0].explanation;
        assert!(top.keyword.is_some() && top.semantic.is_some());
        // The single-leg champions are each first on their own leg.
        let kw = sr
            .search(&SearchRequest::new("quantum", SearchMode::Keyword).filter(keep().limit(5)))
            .await
            .unwrap();
        assert_eq!(ids(&kw)[0], "kw");
        let sem = sr
            .search(&SearchRequest::new("quantum", SearchMode::Semantic).filter(keep().limit(5)))
            .await
            .unwrap();
        assert_eq!(ids(&sem)[0], "sem");
        assert!(ids(&r).contains(&"kw") && ids(&r).contains(&"sem"));
    }
}

async fn filters_hold_on_both_legs(s: S) {
    corpus(&s, true).await;
    let sr = searcher(&s, SearchConfig::default()).await;
    for mode in [
        SearchMode::Keyword,
        SearchMode::Semantic,
        SearchMode::Hybrid,
    ] {
        let r = sr
            .search(&SearchRequest::new("quantum", mode).filter(keep().limit(50)))
            .await
            .unwrap();
        assert!(!r.hits.is_empty());
        for h in &r.hits {
            assert!(
                h.entry.tags.contains(&"keep".to_owned()),
                "{mode:?}: {}",
                h.entry.id
            );
        }
        // `secret` is the best match on both legs, but the filter excludes it.
        assert!(!ids(&r).contains(&"secret"), "{mode:?}");
    }
    let all = sr
        .search(&SearchRequest::new("quantum", SearchMode::Hybrid).filter(Filter::new().limit(3)))
        .await
        .unwrap();
    assert_eq!(ids(&all)[0], "secret");
}

async fn fused_pages_are_disjoint_and_complete(s: S) {
    corpus(&s, true).await;
    let sr = searcher(&s, SearchConfig::default()).await;
    for mode in [
        SearchMode::Keyword,
        SearchMode::Semantic,
        SearchMode::Hybrid,
    ] {
        let full = sr
            .search(&SearchRequest::new("quantum", mode).filter(Filter::new().limit(100)))
            .await
            .unwrap();
        let mut paged = Vec::new();
        for page in 0.. {
            let r = sr
                .search(
                    &SearchRequest::new("quantum", mode)
                        .filter(Filter::new().limit(3).offset(page * 3)),
                )
                .await
                .unwrap();
            if r.hits.is_empty() {
                break;
            }
            for (i, h) in r.hits.iter().enumerate() {
                assert_eq!(h.rank, page * 3 + i + 1, "ranks continue across pages");
            }
            paged.extend(r.hits);
        }
        let full_ids: Vec<&str> = ids(&full);
        let paged_ids: Vec<&str> = paged.iter().map(|h| h.entry.id.as_str()).collect();
        assert_eq!(paged_ids, full_ids, "{mode:?}");
        assert_eq!(
            paged_ids.iter().collect::<HashSet<_>>().len(),
            paged_ids.len(),
            "disjoint"
        );
    }
}

async fn scores_are_in_unit_interval_with_explanations(s: S) {
    corpus(&s, true).await;
    let sr = searcher(&s, SearchConfig::default()).await;
    for mode in [
        SearchMode::Keyword,
        SearchMode::Semantic,
        SearchMode::Hybrid,
    ] {
        let r = sr
            .search(&SearchRequest::new("quantum", mode).filter(Filter::new().limit(100)))
            .await
            .unwrap();
        for w in r.hits.windows(2) {
            assert!(w[0].score >= w[1].score, "{mode:?}: sorted by score");
        }
        for h in &r.hits {
            assert!((0.0..=1.0).contains(&h.score), "{mode:?} {}", h.score);
            let e = &h.explanation;
            for leg in [e.keyword, e.semantic].into_iter().flatten() {
                assert!((0.0..=1.0).contains(&leg.normalized));
                assert!(leg.rank >= 1);
            }
            match mode {
                SearchMode::Keyword => {
                    assert!(e.keyword.is_some() && e.semantic.is_none());
                    assert!(
                        !h.snippet.highlights.is_empty(),
                        "keyword snippets highlight"
                    );
                }
                SearchMode::Semantic => {
                    assert!(e.semantic.is_some() && e.keyword.is_none());
                    assert_eq!(h.passage, Some(0));
                }
                SearchMode::Hybrid => assert!(e.keyword.is_some() || e.semantic.is_some()),
            }
        }
        if mode == SearchMode::Keyword {
            assert_eq!(
                r.hits[0].score, 1.0,
                "the best keyword match normalises to 1"
            );
        }
        if mode == SearchMode::Semantic {
            let top = r.hits[0].explanation.semantic.unwrap();
            assert!(
                (top.raw - 1.0).abs() < 1e-5,
                "cosine of identical directions"
            );
        }
    }
}

async fn hybrid_degrades_to_keyword_without_vectors(s: S) {
    corpus(&s, false).await;
    let sr = searcher(&s, SearchConfig::default()).await;
    let r = sr
        .search(&SearchRequest::new("quantum", SearchMode::Hybrid).filter(keep().limit(5)))
        .await
        .unwrap();
    assert_eq!(r.legs, [SearchMode::Keyword]);
    let why = r.degraded.as_deref().unwrap();
    assert!(
        why.contains("no vectors yet") && why.contains("keyword"),
        "{why}"
    );
    assert_eq!(ids(&r)[0], "kw");
    let kw = sr
        .search(&SearchRequest::new("quantum", SearchMode::Keyword).filter(keep().limit(5)))
        .await
        .unwrap();
    assert_eq!(ids(&r), ids(&kw));
    let sem = sr
        .search(&SearchRequest::new("quantum", SearchMode::Semantic))
        .await
        .unwrap();
    assert!(sem.hits.is_empty() && sem.degraded.is_some());
}

async fn a_store_of_another_model_is_refused_at_start(s: S) {
    corpus(&s, true).await;
    let err = Searcher::new(
        s.clone(),
        Arc::new(HashingEmbedder::new(384)),
        SearchConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SearchError::ModelMismatch { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("fixed-4") && msg.contains("hashing-384") && msg.contains("re-embed"),
        "{msg}"
    );
}

async fn bad_query_syntax_is_a_clear_error(s: S) {
    corpus(&s, true).await;
    let sr = searcher(&s, SearchConfig::default()).await;
    let err = sr
        .search(&SearchRequest::new("\"unclosed", SearchMode::Hybrid))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SearchError::Storage(StorageError::InvalidQuery { .. })),
        "{err:?}"
    );
}

on_both_backends!(
    hybrid_ranks_an_entry_strong_on_both_legs_first,
    filters_hold_on_both_legs,
    fused_pages_are_disjoint_and_complete,
    scores_are_in_unit_interval_with_explanations,
    hybrid_degrades_to_keyword_without_vectors,
    a_store_of_another_model_is_refused_at_start,
    bad_query_syntax_is_a_clear_error,
);

/// The same requests give the same rankings and the same scores on SQLite and Postgres
/// (both rank keywords by the same BM25), under RRF and convex fusion.
#[cfg(feature = "postgres-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_agree() {
    let (a, b) = (common::sqlite_store().await, common::postgres_store().await);
    corpus(&a, true).await;
    corpus(&b, true).await;
    let (sa, sb) = (
        searcher(&a, SearchConfig::default()).await,
        searcher(&b, SearchConfig::default()).await,
    );
    for mode in [
        SearchMode::Keyword,
        SearchMode::Semantic,
        SearchMode::Hybrid,
    ] {
        for filter in [Filter::new().limit(100), keep().limit(100)] {
            let req = SearchRequest::new("quantum", mode).filter(filter);
            let (ra, rb) = (
                sa.search(&req).await.unwrap(),
                sb.search(&req).await.unwrap(),
            );
            assert_eq!(ids(&ra), ids(&rb), "{mode:?}");
            if mode != SearchMode::Keyword {
                for (x, y) in ra.hits.iter().zip(&rb.hits) {
                    assert!(
                        (x.score - y.score).abs() < 1e-6,
                        "{mode:?}: {} vs {}",
                        x.score,
                        y.score
                    );
                }
            }
        }
    }
}
