//! Knowledge bases: create, get, list, delete, TTL garbage collection.

use chrono::{Duration, Utc};
use storage_core::*;

use crate::fixtures::*;

crate::area! {
    kb, __kb_cases:
    create_then_get_returns_it,
    create_duplicate_is_already_exists,
    get_missing_kb_is_none,
    list_kbs_is_ordered_by_name,
    invalid_kb_name_is_invalid_input,
    delete_kb_removes_its_entries,
    delete_kb_removes_settings_collections_and_stars,
    ephemeral_kb_records_expiry,
    gc_removes_exactly_expired_kbs_and_their_entries,
    gc_respects_the_given_now,
    delete_kb_removes_vectors_from_semantic_search,
    concurrent_creates_of_one_name_have_one_winner_and_the_rest_already_exist,
}

/// A created KB can be read back with its description and no expiry.
async fn create_then_get_returns_it(s: S) -> Result<()> {
    let made = s
        .create_kb(&NewKnowledgeBase::persistent("notes").description("my notes"))
        .await?;
    let got = s.get_kb("notes").await?.expect("kb exists");
    assert_eq!(got, made);
    assert_eq!(got.description, "my notes");
    assert!(!got.is_ephemeral());
    Ok(())
}

/// Creating a KB whose name is taken is `AlreadyExists`.
async fn create_duplicate_is_already_exists(s: S) -> Result<()> {
    kb(&s, "dup").await?;
    let err = s
        .create_kb(&NewKnowledgeBase::persistent("dup"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err:?}");
    Ok(())
}

/// Getting a missing KB is `Ok(None)`, not an error.
async fn get_missing_kb_is_none(s: S) -> Result<()> {
    assert!(s.get_kb("nope").await?.is_none());
    Ok(())
}

/// KBs are listed ordered by name.
async fn list_kbs_is_ordered_by_name(s: S) -> Result<()> {
    for n in ["zeta", "alpha", "mid"] {
        kb(&s, n).await?;
    }
    let names: Vec<String> = s.list_kbs().await?.into_iter().map(|k| k.name).collect();
    assert_eq!(names, ["alpha", "mid", "zeta"]);
    Ok(())
}

/// Names outside `[A-Za-z0-9_.-]` are rejected as `InvalidInput`.
async fn invalid_kb_name_is_invalid_input(s: S) -> Result<()> {
    for bad in [
        "",
        "has space",
        "semi;colon",
        "-dash",
        "ünï",
        &"x".repeat(200),
    ] {
        let err = s
            .create_kb(&NewKnowledgeBase::persistent(bad))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidInput { .. }),
            "{bad:?}: {err:?}"
        );
    }
    Ok(())
}

/// Deleting a KB reports true once, removes its entries, and then reports false.
async fn delete_kb_removes_its_entries(s: S) -> Result<()> {
    kb(&s, "gone").await?;
    kb(&s, "kept").await?;
    put(&s, note("gone", "1", "doomed apple", "")).await?;
    put(&s, note("kept", "1", "kept apple", "")).await?;
    assert!(s.delete_kb("gone").await?);
    assert!(!s.delete_kb("gone").await?);
    assert!(s.get_entry(&EntryKey::new("gone", "1")).await?.is_none());
    assert_eq!(
        s.count_entries(&Filter::new().lifecycle(LifecycleFilter::Any))
            .await?,
        1
    );
    let hits = s.search("apple", &Filter::new()).await?;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].entry.kb, "kept");
    Ok(())
}

/// Deleting a KB removes its settings, collections and stars too.
async fn delete_kb_removes_settings_collections_and_stars(s: S) -> Result<()> {
    kb(&s, "k").await?;
    put(&s, note("k", "1", "t", "")).await?;
    s.set_setting(
        &SettingScope::Kb("k".into()),
        "theme",
        &serde_json::json!("dark"),
    )
    .await?;
    s.create_collection("k", "reading", "").await?;
    s.add_to_collection("k", "reading", "1", None).await?;
    s.star(&EntryKey::new("k", "1")).await?;
    s.delete_kb("k").await?;
    kb(&s, "k").await?;
    assert_eq!(
        s.get_setting(&SettingScope::Kb("k".into()), "theme")
            .await?,
        None
    );
    assert!(s.list_collections("k").await?.is_empty());
    assert!(s.starred(None).await?.is_empty());
    Ok(())
}

/// An ephemeral KB records its expiry.
async fn ephemeral_kb_records_expiry(s: S) -> Result<()> {
    let k = s
        .create_kb(&NewKnowledgeBase::ephemeral("tmp", Duration::hours(1)))
        .await?;
    assert!(k.is_ephemeral());
    let exp = s.get_kb("tmp").await?.unwrap().expires_at.unwrap();
    let left = exp - Utc::now();
    assert!(
        left > Duration::minutes(59) && left <= Duration::hours(1),
        "{left:?}"
    );
    Ok(())
}

/// `gc_expired` removes exactly the KBs expired at `now`, with their entries, and reports them.
async fn gc_removes_exactly_expired_kbs_and_their_entries(s: S) -> Result<()> {
    let now = Utc::now();
    let mk = |name: &str, exp: Option<chrono::DateTime<Utc>>| NewKnowledgeBase {
        name: name.into(),
        description: String::new(),
        expires_at: exp,
    };
    s.create_kb(&mk("old1", Some(now - Duration::minutes(5))))
        .await?;
    s.create_kb(&mk("old2", Some(now - Duration::seconds(1))))
        .await?;
    s.create_kb(&mk("fresh", Some(now + Duration::minutes(5))))
        .await?;
    s.create_kb(&mk("forever", None)).await?;
    for k in ["old1", "old1", "old2", "fresh", "forever"] {
        let n = s.count_entries(&Filter::new().kb(k)).await?;
        put(&s, note(k, &format!("e{n}"), "x", "")).await?;
    }
    let removed = s.gc_expired(now).await?;
    assert_eq!(removed.entries, 0);
    assert_eq!(
        removed.kbs,
        vec![
            RemovedKnowledgeBase {
                name: "old1".into(),
                entries: 2
            },
            RemovedKnowledgeBase {
                name: "old2".into(),
                entries: 1
            },
        ]
    );
    let names: Vec<String> = s.list_kbs().await?.into_iter().map(|k| k.name).collect();
    assert_eq!(names, ["forever", "fresh"]);
    assert_eq!(s.count_entries(&Filter::new()).await?, 2);
    Ok(())
}

/// `gc_expired` with nothing expired removes nothing; later it removes the KB.
async fn gc_respects_the_given_now(s: S) -> Result<()> {
    let k = s
        .create_kb(&NewKnowledgeBase::ephemeral("soon", Duration::minutes(10)))
        .await?;
    assert!(s.gc_expired(Utc::now()).await?.is_empty());
    let later = k.expires_at.unwrap() + Duration::seconds(1);
    let removed = s.gc_expired(later).await?;
    assert_eq!(removed.kbs.len(), 1);
    assert!(s.get_kb("soon").await?.is_none());
    Ok(())
}

/// Deleting a KB removes its entries' vectors from semantic search.
async fn delete_kb_removes_vectors_from_semantic_search(s: S) -> Result<()> {
    s.ensure_embedding_space(&space(2)).await?;
    kb(&s, "a").await?;
    kb(&s, "b").await?;
    put(&s, note("a", "1", "x", "")).await?;
    put(&s, note("b", "1", "y", "")).await?;
    s.put_vector(&EntryKey::new("a", "1"), &[1.0, 0.0]).await?;
    s.put_vector(&EntryKey::new("b", "1"), &[1.0, 0.1]).await?;
    assert_eq!(
        s.semantic_search(&SemanticQuery::new(vec![1.0, 0.0], 5))
            .await?
            .len(),
        2
    );
    s.delete_kb("a").await?;
    let hits = s
        .semantic_search(&SemanticQuery::new(vec![1.0, 0.0], 5))
        .await?;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].entry.kb, "b");
    Ok(())
}

/// Of many concurrent creates of one KB name, exactly one succeeds and every other is
/// `AlreadyExists` (a duplicate key, whichever check catches it: never `Conflict` or
/// `Backend`).
async fn concurrent_creates_of_one_name_have_one_winner_and_the_rest_already_exist(
    s: S,
) -> Result<()> {
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.create_kb(&NewKnowledgeBase::persistent("race")).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => won += 1,
            Err(StorageError::AlreadyExists { .. }) => {}
            Err(other) => panic!("a losing create must be AlreadyExists, got {other:?}"),
        }
    }
    assert_eq!(won, 1);
    Ok(())
}
