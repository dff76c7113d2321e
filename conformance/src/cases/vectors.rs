//! Embeddings: the embedding space, vector storage, exact k-NN, filtered k-NN, similar.

use storage_core::*;

use crate::fixtures::*;

crate::area! {
    vectors, __vectors_cases:
    embedding_space_is_fixed_on_first_use,
    other_model_or_dimension_is_model_mismatch,
    reset_embedding_space_lets_another_model_embed_the_store,
    wrong_dimension_is_dimension_mismatch,
    vector_without_space_is_invalid_input,
    degenerate_vectors_are_invalid_input,
    vector_for_missing_entry_is_not_found,
    vectors_round_trip,
    knn_returns_known_neighbours_in_order,
    knn_is_scale_invariant_and_bounded_by_k,
    min_score_drops_weak_hits,
    filters_apply_before_top_k,
    selective_filter_still_returns_k,
    archived_entries_are_excluded_from_semantic_search,
    replacing_a_vector_moves_the_entry,
    similar_excludes_the_entry_itself,
    deleted_vectors_leave_search,
    coverage_counts_entries_with_and_without_vectors,
    semantic_search_without_vectors_is_empty,
    vector_batches_are_all_or_nothing,
    semantic_search_rejects_a_huge_k,
    vectors_whose_norm_underflows_are_invalid_input,
}

fn key(id: &str) -> EntryKey {
    EntryKey::new("v", id)
}

/// Five entries with hand-made 4-d vectors whose order from [1,0,0,0] is v1 > v2 > v3 > v4 > v5.
async fn known(s: &S) -> Result<()> {
    kb(s, "v").await?;
    s.ensure_embedding_space(&space(4)).await?;
    let vecs: [(&str, [f32; 4]); 5] = [
        ("v1", [1.0, 0.0, 0.0, 0.0]),
        ("v2", [0.9, 0.1, 0.0, 0.0]),
        ("v3", [0.5, 1.0, 0.0, 0.0]),
        ("v4", [0.0, 0.0, 1.0, 0.0]),
        ("v5", [-1.0, 0.0, 0.0, 0.2]),
    ];
    for (i, (id, v)) in vecs.iter().enumerate() {
        put(
            s,
            note("v", id, id, "")
                .importance(i as i32)
                .tags(if i % 2 == 0 {
                    vec!["even"]
                } else {
                    vec!["odd"]
                }),
        )
        .await?;
        s.put_vector(&key(id), v).await?;
    }
    Ok(())
}

fn hit_ids(h: &[SemanticHit]) -> Vec<&str> {
    h.iter().map(|h| h.entry.id.as_str()).collect()
}

/// The first `ensure_embedding_space` fixes the space; the same space is accepted again.
async fn embedding_space_is_fixed_on_first_use(s: S) -> Result<()> {
    assert_eq!(s.embedding_space().await?, None);
    let sp = EmbeddingSpace::new("mini", 384);
    assert_eq!(s.ensure_embedding_space(&sp).await?, sp);
    assert_eq!(s.ensure_embedding_space(&sp).await?, sp);
    assert_eq!(s.embedding_space().await?, Some(sp));
    Ok(())
}

/// Another model or dimension is `ModelMismatch`, naming both spaces.
async fn other_model_or_dimension_is_model_mismatch(s: S) -> Result<()> {
    s.ensure_embedding_space(&EmbeddingSpace::new("mini", 384))
        .await?;
    for other in [
        EmbeddingSpace::new("big", 384),
        EmbeddingSpace::new("mini", 768),
    ] {
        let err = s.ensure_embedding_space(&other).await.unwrap_err();
        assert!(matches!(err, StorageError::ModelMismatch { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("mini")
                && msg.contains(&other.model)
                && msg.contains(&other.dimension.to_string()),
            "{msg}"
        );
    }
    Ok(())
}

/// A vector of the wrong length is `DimensionMismatch` naming both lengths, and is not stored.
async fn wrong_dimension_is_dimension_mismatch(s: S) -> Result<()> {
    known(&s).await?;
    let err = s
        .put_vector(&key("v1"), &[1.0, 2.0, 3.0])
        .await
        .unwrap_err();
    match &err {
        StorageError::DimensionMismatch {
            expected: 4,
            actual: 3,
        } => {}
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains('4') && err.to_string().contains('3'));
    assert_eq!(
        s.get_vector(&key("v1")).await?.unwrap(),
        vec![1.0, 0.0, 0.0, 0.0]
    );
    let q = SemanticQuery::new(vec![1.0; 5], 3);
    assert!(matches!(
        s.semantic_search(&q).await,
        Err(StorageError::DimensionMismatch { .. })
    ));
    Ok(())
}

/// Storing a vector before any embedding space exists is `InvalidInput`.
async fn vector_without_space_is_invalid_input(s: S) -> Result<()> {
    kb(&s, "v").await?;
    put(&s, note("v", "1", "t", "")).await?;
    let err = s.put_vector(&key("1"), &[1.0, 0.0]).await.unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }), "{err:?}");
    Ok(())
}

/// Zero, NaN and infinite vectors are rejected.
async fn degenerate_vectors_are_invalid_input(s: S) -> Result<()> {
    known(&s).await?;
    for bad in [
        [0.0f32; 4],
        [f32::NAN, 0.0, 0.0, 1.0],
        [f32::INFINITY, 0.0, 0.0, 1.0],
    ] {
        let err = s.put_vector(&key("v1"), &bad).await.unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidInput { .. }),
            "{bad:?}: {err:?}"
        );
    }
    Ok(())
}

/// A vector for a missing entry is `NotFound`.
async fn vector_for_missing_entry_is_not_found(s: S) -> Result<()> {
    known(&s).await?;
    let err = s
        .put_vector(&key("ghost"), &[1.0, 0.0, 0.0, 0.0])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }));
    Ok(())
}

/// Vectors round-trip exactly as given (not normalised).
async fn vectors_round_trip(s: S) -> Result<()> {
    known(&s).await?;
    assert_eq!(
        s.get_vector(&key("v3")).await?.unwrap(),
        vec![0.5, 1.0, 0.0, 0.0]
    );
    assert_eq!(s.get_vector(&key("missing")).await?, None);
    Ok(())
}

/// k-NN returns the known nearest neighbours, best first, with cosine scores.
async fn knn_returns_known_neighbours_in_order(s: S) -> Result<()> {
    known(&s).await?;
    let hits = s
        .semantic_search(&SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], 5))
        .await?;
    assert_eq!(hit_ids(&hits), ["v1", "v2", "v3", "v4", "v5"]);
    assert!((hits[0].score - 1.0).abs() < 1e-5);
    assert!((hits[1].score - 0.99388).abs() < 1e-3, "{}", hits[1].score);
    assert!((hits[2].score - 0.44721).abs() < 1e-3);
    assert!(hits[3].score.abs() < 1e-5);
    assert!(hits[4].score < -0.9);
    assert_eq!(
        hits.iter().map(|h| h.rank).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    Ok(())
}

/// The query vector's length does not matter (cosine), and k bounds the result.
async fn knn_is_scale_invariant_and_bounded_by_k(s: S) -> Result<()> {
    known(&s).await?;
    let hits = s
        .semantic_search(&SemanticQuery::new(vec![0.0, 10.0, 0.0, 0.0], 2))
        .await?;
    assert_eq!(hit_ids(&hits), ["v3", "v2"]);
    assert!(s
        .semantic_search(&SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], 0))
        .await?
        .is_empty());
    assert_eq!(
        s.semantic_search(&SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], 50))
            .await?
            .len(),
        5
    );
    Ok(())
}

/// `min_score` drops hits below it.
async fn min_score_drops_weak_hits(s: S) -> Result<()> {
    known(&s).await?;
    let q = SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], 5).min_score(0.4);
    assert_eq!(hit_ids(&s.semantic_search(&q).await?), ["v1", "v2", "v3"]);
    Ok(())
}

/// Filters apply before the top-k cut.
async fn filters_apply_before_top_k(s: S) -> Result<()> {
    known(&s).await?;
    let q = SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], 2).filter(Filter::new().tag("even"));
    assert_eq!(hit_ids(&s.semantic_search(&q).await?), ["v1", "v3"]);
    let q = SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], 5).filter(Filter::new().min_importance(3));
    assert_eq!(hit_ids(&s.semantic_search(&q).await?), ["v4", "v5"]);
    Ok(())
}

/// A selective filter still yields k hits when at least k entries match it.
async fn selective_filter_still_returns_k(s: S) -> Result<()> {
    kb(&s, "v").await?;
    s.ensure_embedding_space(&space(8)).await?;
    let mut batch = Vec::new();
    for i in 0..400 {
        let rare = i % 80 == 0;
        batch.push(note("v", &format!("{i:03}"), "t", "").tags([if rare {
            "rare"
        } else {
            "common"
        }]));
    }
    s.upsert_entries(&batch).await?;
    for i in 0..400usize {
        let rare = i % 80 == 0;
        // Common entries sit near the query, rare ones far from it.
        let mut v = [0.0f32; 8];
        if rare {
            v[7] = 1.0;
            v[i % 7] = 0.1;
        } else {
            v[0] = 1.0;
            v[1 + i % 6] = (i as f32) / 1000.0;
        }
        s.put_vector(&key(&format!("{i:03}")), &v).await?;
    }
    let q = SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 5)
        .filter(Filter::new().tag("rare"));
    let hits = s.semantic_search(&q).await?;
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| h.entry.tags == ["rare"]));
    let q = SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 10)
        .filter(Filter::new().tag("rare"));
    assert_eq!(s.semantic_search(&q).await?.len(), 5);
    Ok(())
}

/// Archived entries are excluded from semantic search by default.
async fn archived_entries_are_excluded_from_semantic_search(s: S) -> Result<()> {
    known(&s).await?;
    put(&s, note("v", "v1", "v1", "").lifecycle(Lifecycle::Archived)).await?;
    let hits = s
        .semantic_search(&SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], 1))
        .await?;
    assert_eq!(hit_ids(&hits), ["v2"]);
    let q = SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], 1)
        .filter(Filter::new().lifecycle(LifecycleFilter::Any));
    assert_eq!(hit_ids(&s.semantic_search(&q).await?), ["v1"]);
    Ok(())
}

/// Replacing a vector changes the entry's neighbours.
async fn replacing_a_vector_moves_the_entry(s: S) -> Result<()> {
    known(&s).await?;
    s.put_vector(&key("v5"), &[1.0, 0.0, 0.0, 0.0]).await?;
    let hits = s
        .semantic_search(&SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], 2))
        .await?;
    assert_eq!(hit_ids(&hits), ["v1", "v5"]);
    Ok(())
}

/// `similar` finds an entry's neighbours, excluding the entry itself.
async fn similar_excludes_the_entry_itself(s: S) -> Result<()> {
    known(&s).await?;
    let hits = s.similar(&key("v1"), 2, &Filter::new()).await?;
    assert_eq!(hit_ids(&hits), ["v2", "v3"]);
    assert_eq!(hits[0].rank, 1);
    let err = s
        .similar(&key("missing"), 2, &Filter::new())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }));
    Ok(())
}

/// Deleting a vector or its entry removes it from search and coverage.
async fn deleted_vectors_leave_search(s: S) -> Result<()> {
    known(&s).await?;
    assert!(s.delete_vector(&key("v1")).await?);
    assert!(!s.delete_vector(&key("v1")).await?);
    s.delete_entry(&key("v2")).await?;
    let hits = s
        .semantic_search(&SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], 5))
        .await?;
    assert_eq!(hit_ids(&hits), ["v3", "v4", "v5"]);
    assert_eq!(s.get_vector(&key("v1")).await?, None);
    Ok(())
}

/// Coverage counts selected entries with and without vectors.
async fn coverage_counts_entries_with_and_without_vectors(s: S) -> Result<()> {
    known(&s).await?;
    put(&s, note("v", "novec", "t", "")).await?;
    let c = s.vector_coverage(&Filter::new()).await?;
    assert_eq!(
        c,
        VectorCoverage {
            with_vector: 5,
            without_vector: 1
        }
    );
    let c = s.vector_coverage(&Filter::new().tag("even")).await?;
    assert_eq!(
        c,
        VectorCoverage {
            with_vector: 3,
            without_vector: 0
        }
    );
    Ok(())
}

/// Semantic search on a store with no vectors is empty, not an error.
async fn semantic_search_without_vectors_is_empty(s: S) -> Result<()> {
    kb(&s, "v").await?;
    put(&s, note("v", "1", "t", "")).await?;
    assert!(s
        .semantic_search(&SemanticQuery::new(vec![1.0, 0.0], 3))
        .await?
        .is_empty());
    s.ensure_embedding_space(&space(2)).await?;
    assert!(s
        .semantic_search(&SemanticQuery::new(vec![1.0, 0.0], 3))
        .await?
        .is_empty());
    Ok(())
}

/// A vector batch is stored all or nothing.
async fn vector_batches_are_all_or_nothing(s: S) -> Result<()> {
    known(&s).await?;
    put(&s, note("v", "new", "t", "")).await?;
    let bad = vec![
        (key("new"), vec![0.0, 1.0, 0.0, 0.0]),
        (key("ghost"), vec![1.0, 0.0, 0.0, 0.0]),
    ];
    assert!(matches!(
        s.put_vectors(&bad).await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(s.get_vector(&key("new")).await?, None);
    let bad = vec![
        (key("new"), vec![0.0, 1.0, 0.0, 0.0]),
        (key("v1"), vec![1.0, 0.0]),
    ];
    assert!(matches!(
        s.put_vectors(&bad).await,
        Err(StorageError::DimensionMismatch { .. })
    ));
    assert_eq!(s.get_vector(&key("new")).await?, None);
    let good = vec![
        (key("new"), vec![0.0, 0.0, 0.0, 1.0]),
        (key("v1"), vec![0.0, 0.0, 0.0, 2.0]),
    ];
    s.put_vectors(&good).await?;
    let hits = s
        .semantic_search(&SemanticQuery::new(vec![0.0, 0.0, 0.0, 1.0], 2))
        .await?;
    assert_eq!(hit_ids(&hits), ["new", "v1"]);
    Ok(())
}

/// A `k` above `MAX_K` (in `semantic_search` and `similar`) is `InvalidInput` naming k,
/// never a crash; `MAX_K` itself is accepted.
async fn semantic_search_rejects_a_huge_k(s: S) -> Result<()> {
    known(&s).await?;
    for k in [MAX_K + 1, usize::MAX / 2, usize::MAX] {
        let err = s
            .semantic_search(&SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], k))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidInput { .. }),
            "{k}: {err:?}"
        );
        assert!(err.to_string().contains(&k.to_string()), "{err}");
        let err = s.similar(&key("v1"), k, &Filter::new()).await.unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidInput { .. }),
            "{k}: {err:?}"
        );
    }
    let q = SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], MAX_K);
    assert_eq!(s.semantic_search(&q).await?.len(), 5);
    assert_eq!(s.similar(&key("v1"), MAX_K, &Filter::new()).await?.len(), 4);
    let q = SemanticQuery::new(vec![1.0, 0.0, 0.0, 0.0], 5).min_score(f32::NAN);
    assert!(matches!(
        s.semantic_search(&q).await,
        Err(StorageError::InvalidInput { .. })
    ));
    Ok(())
}

/// Vectors whose squared norm underflows (`[1e-23; d]`) or overflows (`[1e20; d]`) in
/// 32-bit floats cannot be normalised: storing or querying with one is `InvalidInput`,
/// and nothing is stored.
async fn vectors_whose_norm_underflows_are_invalid_input(s: S) -> Result<()> {
    known(&s).await?;
    for bad in [[1e-23f32; 4], [1e-30, 0.0, 0.0, 0.0], [1e20f32; 4]] {
        let err = s.put_vector(&key("v1"), &bad).await.unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidInput { .. }),
            "{bad:?}: {err:?}"
        );
        let passages = [EntryPassages {
            key: key("v2"),
            passages: vec![PassageVector {
                text: Some("p".into()),
                vector: bad.to_vec(),
            }],
        }];
        let err = s.put_passages(&passages).await.unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidInput { .. }),
            "{bad:?}: {err:?}"
        );
        let err = s
            .semantic_search(&SemanticQuery::new(bad.to_vec(), 3))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidInput { .. }),
            "{bad:?}: {err:?}"
        );
    }
    assert_eq!(
        s.get_vector(&key("v1")).await?.unwrap(),
        vec![1.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(
        s.get_vector(&key("v2")).await?.unwrap(),
        vec![0.9, 0.1, 0.0, 0.0]
    );
    // Small and large but representable vectors still work, scale-invariantly.
    s.put_vector(&key("v5"), &[1e-18, 0.0, 0.0, 0.0]).await?;
    let hits = s
        .semantic_search(&SemanticQuery::new(vec![1e18, 0.0, 0.0, 0.0], 2))
        .await?;
    // Both score 1 up to rounding, so their order is not asserted.
    let mut found = hit_ids(&hits);
    found.sort();
    assert_eq!(found, ["v1", "v5"]);
    assert!(
        hits.iter().all(|h| (h.score - 1.0).abs() < 1e-4),
        "{hits:?}"
    );
    Ok(())
}

/// `reset_embedding_space` forgets the model and every vector and queues every entry with
/// text again, so another model (of another dimension) can embed the store; it is refused
/// while a worker holds a live lease.
async fn reset_embedding_space_lets_another_model_embed_the_store(s: S) -> Result<()> {
    known(&s).await?;
    let leased = s
        .claim_embedding_batch("w", 1, std::time::Duration::from_secs(600))
        .await?;
    assert_eq!(leased.len(), 1);
    assert!(matches!(
        s.reset_embedding_space().await,
        Err(StorageError::Conflict { .. })
    ));
    s.complete_embedding(&leased).await?;
    let before = s.queue_stats().await?;
    let queued = s.reset_embedding_space().await?;
    assert_eq!(queued, 5);
    assert_eq!(s.embedding_space().await?, None);
    assert!(s.get_passages(&key("v1")).await?.is_empty());
    assert_eq!(
        s.queue_stats().await?.pending,
        5,
        "every entry queued (was {before:?})"
    );
    let other = EmbeddingSpace::new("other-model", 3);
    assert_eq!(s.ensure_embedding_space(&other).await?, other);
    s.put_vector(&key("v2"), &[0.0, 1.0, 0.0]).await?;
    let hits = s
        .semantic_search(&SemanticQuery::new(vec![0.0, 1.0, 0.0], 3))
        .await?;
    assert_eq!(hit_ids(&hits), ["v2"]);
    assert!(s
        .put_vector(&key("v1"), &[1.0, 0.0, 0.0, 0.0])
        .await
        .is_err());
    Ok(())
}
