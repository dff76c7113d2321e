//! Passages: an entry's text split into several vectors; an entry scores as its best
//! passage, appears once in semantic results, and the hit carries that passage's text.

use storage_core::*;

use crate::fixtures::*;

crate::area! {
    passages, __passages_cases:
    passages_round_trip_in_order,
    entry_scores_as_its_best_passage,
    many_passages_of_one_entry_do_not_crowd_out_k,
    putting_passages_replaces_earlier_ones,
    bad_passage_batches_store_nothing,
    delete_vector_removes_every_passage,
}

fn key(id: &str) -> EntryKey {
    EntryKey::new("p", id)
}

fn passage(text: &str, v: [f32; 4]) -> PassageVector {
    PassageVector {
        text: Some(text.to_owned()),
        vector: v.to_vec(),
    }
}

fn hit_ids(h: &[SemanticHit]) -> Vec<&str> {
    h.iter().map(|h| h.entry.id.as_str()).collect()
}

/// Three entries: `long` has three passages (the second points at x), `a` and `b` one each.
async fn setup(s: &S) -> Result<()> {
    kb(s, "p").await?;
    s.ensure_embedding_space(&space(4)).await?;
    for id in ["long", "a", "b"] {
        put(s, note("p", id, id, "").tags(vec!["t"])).await?;
    }
    s.put_passages(&[
        EntryPassages {
            key: key("long"),
            passages: vec![
                passage("about y", [0.0, 1.0, 0.0, 0.0]),
                passage("about x", [1.0, 0.05, 0.0, 0.0]),
                passage("about z", [0.0, 0.0, 1.0, 0.0]),
            ],
        },
        EntryPassages {
            key: key("a"),
            passages: vec![passage("mostly x", [1.0, 0.5, 0.0, 0.0])],
        },
        EntryPassages {
            key: key("b"),
            passages: vec![passage("w", [0.0, 0.0, 0.0, 1.0])],
        },
    ])
    .await
}

/// Passages come back in order with their text and vectors.
async fn passages_round_trip_in_order(s: S) -> Result<()> {
    setup(&s).await?;
    let got = s.get_passages(&key("long")).await?;
    assert_eq!(got.len(), 3);
    assert_eq!(
        got.iter().map(|p| p.index).collect::<Vec<_>>(),
        [0, 1, 2],
        "{got:?}"
    );
    assert_eq!(got[1].text.as_deref(), Some("about x"));
    assert_eq!(got[1].vector, vec![1.0, 0.05, 0.0, 0.0]);
    assert_eq!(
        s.get_vector(&key("long")).await?,
        Some(vec![0.0, 1.0, 0.0, 0.0]),
        "get_vector is the first passage's"
    );
    assert!(s.get_passages(&key("ghost")).await?.is_empty());
    Ok(())
}

/// An entry scores as its best passage, appears once, and the hit names that passage.
async fn entry_scores_as_its_best_passage(s: S) -> Result<()> {
    setup(&s).await?;
    let hits = s
        .semantic_search(&SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], 10))
        .await?;
    assert_eq!(hit_ids(&hits), ["long", "a", "b"], "{hits:?}");
    assert_eq!(hits[0].passage, 1);
    assert_eq!(hits[0].passage_text.as_deref(), Some("about x"));
    let expected = 1.0 / (1.0f32 + 0.05 * 0.05).sqrt();
    assert!((hits[0].score - expected).abs() < 1e-4, "{}", hits[0].score);
    assert_eq!(hits[1].passage, 0);
    assert_eq!(hits[1].passage_text.as_deref(), Some("mostly x"));
    assert_eq!(
        hits.iter().map(|h| h.rank).collect::<Vec<_>>(),
        [1, 2, 3],
        "ranks count entries, not passages"
    );
    let hits = s
        .semantic_search(&SemanticQuery::new(vec![0.0, 0.0, 1.0, 0.0], 1))
        .await?;
    assert_eq!(hit_ids(&hits), ["long"]);
    assert_eq!(hits[0].passage_text.as_deref(), Some("about z"));
    Ok(())
}

/// k counts entries: many close passages of one entry do not crowd others out.
async fn many_passages_of_one_entry_do_not_crowd_out_k(s: S) -> Result<()> {
    kb(&s, "p").await?;
    s.ensure_embedding_space(&space(4)).await?;
    put(&s, note("p", "big", "big", "")).await?;
    let passages: Vec<PassageVector> = (0..200)
        .map(|i| passage(&format!("part {i}"), [1.0, 0.001 * i as f32, 0.0, 0.0]))
        .collect();
    s.put_passages(&[EntryPassages {
        key: key("big"),
        passages,
    }])
    .await?;
    for i in 0..5 {
        let id = format!("s{i}");
        put(&s, note("p", &id, "small", "")).await?;
        s.put_vector(&key(&id), &[0.5, 1.0 + i as f32, 0.0, 0.0])
            .await?;
    }
    for filter in [Filter::new(), Filter::new().kb("p")] {
        let hits = s
            .semantic_search(&SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], 4).filter(filter))
            .await?;
        assert_eq!(hit_ids(&hits), ["big", "s0", "s1", "s2"], "{hits:?}");
        assert_eq!(hits[0].passage, 0);
    }
    Ok(())
}

/// Writing passages replaces all earlier ones: fewer passages leave no stale tail.
async fn putting_passages_replaces_earlier_ones(s: S) -> Result<()> {
    setup(&s).await?;
    s.put_passages(&[EntryPassages {
        key: key("long"),
        passages: vec![passage("only w", [0.0, 0.0, 0.0, 1.0])],
    }])
    .await?;
    assert_eq!(s.get_passages(&key("long")).await?.len(), 1);
    let hits = s
        .semantic_search(&SemanticQuery::new(vec![0.0, 0.0, 1.0, 0.0], 3))
        .await?;
    assert!(
        hits.iter().all(|h| h.score < 0.5),
        "old passage still found: {hits:?}"
    );
    // A single vector written with put_vector is one passage without text.
    s.put_vector(&key("a"), &[0.0, 0.0, 1.0, 0.0]).await?;
    let got = s.get_passages(&key("a")).await?;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text, None);
    let hits = s
        .semantic_search(&SemanticQuery::new(vec![0.0, 0.0, 1.0, 0.0], 1))
        .await?;
    assert_eq!(hit_ids(&hits), ["a"]);
    assert_eq!(hits[0].passage_text, None);
    Ok(())
}

/// Bad passage batches (empty list, duplicate entry, wrong dimension, missing entry)
/// are rejected and store nothing.
async fn bad_passage_batches_store_nothing(s: S) -> Result<()> {
    setup(&s).await?;
    let before = s.get_passages(&key("a")).await?;
    let good = EntryPassages {
        key: key("a"),
        passages: vec![passage("new", [0.0, 0.0, 1.0, 0.0])],
    };
    let bad_batches = vec![
        vec![
            good.clone(),
            EntryPassages {
                key: key("b"),
                passages: vec![],
            },
        ],
        vec![good.clone(), good.clone()],
        vec![
            good.clone(),
            EntryPassages {
                key: key("b"),
                passages: vec![PassageVector {
                    text: None,
                    vector: vec![1.0, 0.0],
                }],
            },
        ],
        vec![
            good.clone(),
            EntryPassages {
                key: key("ghost"),
                passages: vec![passage("x", [1.0, 0.0, 0.0, 0.0])],
            },
        ],
    ];
    for batch in bad_batches {
        let err = s.put_passages(&batch).await.unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::InvalidInput { .. }
                    | StorageError::DimensionMismatch { .. }
                    | StorageError::NotFound { .. }
            ),
            "{err:?}"
        );
        assert_eq!(s.get_passages(&key("a")).await?, before);
    }
    Ok(())
}

/// Deleting an entry's vectors removes every passage; coverage counts entries, not passages.
async fn delete_vector_removes_every_passage(s: S) -> Result<()> {
    setup(&s).await?;
    assert_eq!(
        s.vector_coverage(&Filter::new()).await?,
        VectorCoverage {
            with_vector: 3,
            without_vector: 0
        }
    );
    assert!(s.delete_vector(&key("long")).await?);
    assert!(s.get_passages(&key("long")).await?.is_empty());
    let hits = s
        .semantic_search(&SemanticQuery::new(vec![0.0, 0.0, 1.0, 0.0], 5))
        .await?;
    assert!(!hit_ids(&hits).contains(&"long"), "{hits:?}");
    assert_eq!(
        s.vector_coverage(&Filter::new()).await?,
        VectorCoverage {
            with_vector: 2,
            without_vector: 1
        }
    );
    Ok(())
}
