//! Health report and error hygiene.

use storage_core::*;

use crate::fixtures::*;

crate::area! {
    health, __health_cases:
    health_reports_counts_and_space,
    error_messages_hide_driver_text,
    only_transient_errors_are_retryable,
    concurrent_writers_and_readers_succeed,
    optimize_changes_no_result,
}

/// Health names the backend, schema version, counts and embedding space.
async fn health_reports_counts_and_space(s: S) -> Result<()> {
    kb(&s, "a").await?;
    kb(&s, "b").await?;
    put(&s, note("a", "1", "t", "")).await?;
    put(&s, note("a", "2", "t", "").lifecycle(Lifecycle::Archived)).await?;
    s.ensure_embedding_space(&space(3)).await?;
    let h = s.health().await?;
    assert!(!h.backend.is_empty());
    assert!(h.schema_version >= 1);
    assert_eq!(h.knowledge_bases, 2);
    assert_eq!(h.entries, 2);
    assert_eq!(h.embedding_space, Some(space(3)));
    assert!(h.pool.max_size >= 1);
    assert!(h.pool.size <= h.pool.max_size);
    Ok(())
}

/// Error messages are the layer's own words: no SQL, SQLSTATE or driver text.
async fn error_messages_hide_driver_text(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let errors = vec![
        s.create_kb(&NewKnowledgeBase::persistent("k"))
            .await
            .unwrap_err(),
        s.upsert_entry(&note("missing", "1", "t", ""))
            .await
            .unwrap_err(),
        s.search("\"open", &Filter::new()).await.unwrap_err(),
        s.count_entries(&Filter::new().metadata_eq("x'--", serde_json::json!(1)))
            .await
            .unwrap_err(),
        s.create_collection("missing", "c", "").await.unwrap_err(),
    ];
    for e in errors {
        let msg = e.to_string().to_lowercase();
        for leak in [
            "sqlite",
            "sqlstate",
            "syntax error",
            "constraint",
            "select ",
            "insert ",
            "postgres",
            "fts5",
            "tsquery",
        ] {
            assert!(!msg.contains(leak), "{msg:?} leaks {leak:?}");
        }
    }
    Ok(())
}

/// Only timeouts and unavailability are retryable.
async fn only_transient_errors_are_retryable(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let e = s
        .create_kb(&NewKnowledgeBase::persistent("k"))
        .await
        .unwrap_err();
    assert!(!e.is_retryable());
    let e = s.search("(", &Filter::new()).await.unwrap_err();
    assert!(!e.is_retryable());
    Ok(())
}

/// Many concurrent writers and readers all succeed.
async fn concurrent_writers_and_readers_succeed(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                s.upsert_entry(&note("k", &format!("{w}-{i}"), "concurrent", "text"))
                    .await?;
                s.count_entries(&Filter::new()).await?;
                s.search("concurrent", &Filter::new().limit(5)).await?;
            }
            Ok::<_, StorageError>(())
        }));
    }
    for t in tasks {
        t.await.expect("task")?;
    }
    assert_eq!(s.count_entries(&Filter::new()).await?, 80);
    Ok(())
}

/// Every result `optimize` must leave as it is: searches of each query shape, the list.
async fn snapshot(s: &S) -> Result<(Vec<Vec<SearchHit>>, Vec<Entry>)> {
    let mut hits = Vec::new();
    for q in [
        "apple OR pie",
        "pie",
        "apple pie",
        "\"apple pie\"",
        "pi*",
        "pie -apple",
    ] {
        hits.push(s.search(q, &Filter::new()).await?);
    }
    Ok((hits, s.list_entries(&Filter::new()).await?))
}

/// `optimize` after a bulk load, and after edits and deletes written one at a time,
/// changes no result, and later writes score as they would have without it.
async fn optimize_changes_no_result(s: S) -> Result<()> {
    crate::fixtures::food_corpus(&s).await?;
    let before = snapshot(&s).await?;
    s.optimize().await?;
    s.optimize().await?;
    assert_eq!(snapshot(&s).await?, before);

    // Blocks of single writes, a rewrite and a delete, then merged.
    let first = s.list_entries(&Filter::new()).await?;
    for e in first.iter().take(3) {
        s.upsert_entry(
            &NewEntry::new(&e.kb, &e.id)
                .title(&e.title)
                .body("apple pie again"),
        )
        .await?;
    }
    s.delete_entry(&first[3].key()).await?;
    let before = snapshot(&s).await?;
    s.optimize().await?;
    assert_eq!(snapshot(&s).await?, before);
    Ok(())
}
