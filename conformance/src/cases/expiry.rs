//! Per-entry expiry: an entry past its `expires_at` is absent from every read, before
//! top-k cuts, until `gc_expired` deletes it with what hangs off it.

use chrono::{Duration, Utc};
use storage_core::*;

use crate::fixtures::*;

crate::area! {
    expiry, __expiry_cases:
    an_expired_entry_is_absent_from_every_read,
    expiry_round_trips_and_a_live_entry_keeps_it,
    expired_entries_leave_graph_walks,
    semantic_search_and_similar_skip_expired_entries_before_top_k,
    coordination_does_not_see_an_expired_entry,
    stars_and_collections_hide_members_once_expired,
    gc_removes_expired_entries_and_a_rewrite_starts_afresh,
    gc_with_a_clock_ahead_of_the_stores_keeps_entries_readers_still_see,
}

fn key(id: &str) -> EntryKey {
    EntryKey::new("m", id)
}

/// `live` and `soon` (expires in an hour) stay; `gone` (expired a second ago) shares their
/// words, tags, type and date, so every read that does not hide it would return it.
async fn three(s: &S) -> Result<()> {
    kb(s, "m").await?;
    let base = |id: &str| {
        note("m", id, "Shared memory", "falcon harbour")
            .tags(["topic/birds"])
            .entry_type("memory")
            .date(date(2026, 5, 1))
            .status("open")
    };
    s.upsert_entries(&[
        base("live"),
        base("soon").ttl(Duration::hours(1)),
        base("gone").expires_at(Utc::now() - Duration::seconds(1)),
    ])
    .await
    .map(|_| ())
}

/// Get, list, count, types, tags, search and timeline all leave an expired entry out.
async fn an_expired_entry_is_absent_from_every_read(s: S) -> Result<()> {
    three(&s).await?;
    assert!(s.get_entry(&key("gone")).await?.is_none());
    let got = s.get_entries(&[key("gone"), key("live")]).await?;
    assert_eq!(ids(&got), ["live"]);
    let f = Filter::new().kb("m");
    assert_eq!(id_set(&s.list_entries(&f).await?), ["live", "soon"]);
    assert_eq!(s.count_entries(&f).await?, 2);
    assert_eq!(s.entry_types(&f).await?, vec![("memory".to_owned(), 2)]);
    assert_eq!(s.tags(Some("m")).await?[0].count, 2);
    assert_eq!(s.tags_with_prefix(Some("m"), "topic").await?[0].count, 2);
    let hits = s.search("falcon", &f).await?;
    assert_eq!(id_set(hits.iter().map(|h| &h.entry)), ["live", "soon"]);
    assert_eq!(id_set(&s.timeline(&f).await?), ["live", "soon"]);
    Ok(())
}

/// An entry that expires later is returned with its expiry, to the microsecond.
async fn expiry_round_trips_and_a_live_entry_keeps_it(s: S) -> Result<()> {
    kb(&s, "m").await?;
    let at = Utc::now() + Duration::days(3);
    let written = put(&s, note("m", "a", "A", "").expires_at(at)).await?;
    let read = s.get_entry(&key("a")).await?.expect("live");
    assert_eq!(read, written);
    assert_eq!(
        read.expires_at.map(|t| t.timestamp_micros()),
        Some(at.timestamp_micros())
    );
    assert_eq!(read.to_new().expires_at, read.expires_at);
    Ok(())
}

/// Backlinks, neighbourhoods, most-linked and orphans walk only live entries: an expired
/// entry is like a deleted one (its links are not followed; a link to it leads nowhere).
async fn expired_entries_leave_graph_walks(s: S) -> Result<()> {
    kb(&s, "m").await?;
    s.upsert_entries(&[
        note("m", "a", "A", "").link(Link::to("b")),
        note("m", "b", "B", "")
            .link(Link::to("a"))
            .link(Link::to("c"))
            .expires_at(Utc::now() - Duration::seconds(1)),
        note("m", "c", "C", ""),
        note("m", "d", "D", "").link(Link::to("c")),
    ])
    .await?;
    assert!(s.backlinks(&key("a")).await?.is_empty());
    let g = s.neighbourhood(&GraphQuery::new(key("a"), 3)).await?;
    let titled: Vec<&str> = g
        .nodes
        .iter()
        .filter(|n| n.title.is_some())
        .map(|n| n.key.id.as_str())
        .collect();
    assert_eq!(titled, ["a"], "only a is live in a's neighbourhood: {g:?}");
    assert!(g.edges.iter().all(|e| e.source.id != "b"), "{g:?}");
    let most = s.most_linked(Some("m"), 10).await?;
    assert_eq!(
        most.iter()
            .map(|l| (l.key.id.as_str(), l.count))
            .collect::<Vec<_>>(),
        [("c", 1)],
        "b's links do not count and b is not a target"
    );
    assert!(matches!(
        s.neighbourhood(&GraphQuery::new(key("b"), 1)).await,
        Err(StorageError::NotFound { .. })
    ));
    Ok(())
}

/// Semantic search and `similar` drop expired entries before the top-k cut: k live hits
/// come back even when the nearest vectors belong to expired entries.
async fn semantic_search_and_similar_skip_expired_entries_before_top_k(s: S) -> Result<()> {
    kb(&s, "m").await?;
    s.ensure_embedding_space(&space(3)).await?;
    let ids_ = ["a", "b", "c", "d", "e"];
    s.upsert_entries(&ids_.map(|i| note("m", i, i, "text")))
        .await?;
    let vecs = [
        [1.0, 0.0, 0.0],
        [0.99, 0.1, 0.0],
        [0.98, 0.2, 0.0],
        [0.5, 0.5, 0.5],
        [0.0, 1.0, 0.0],
    ];
    for (i, v) in ids_.iter().zip(vecs) {
        s.put_vector(&key(i), &v).await?;
    }
    // b and c, the nearest to a, expire (same text: their vectors stay).
    let past = Utc::now() - Duration::seconds(1);
    s.upsert_entries(&[
        note("m", "b", "b", "text").expires_at(past),
        note("m", "c", "c", "text").expires_at(past),
    ])
    .await?;
    let q = SemanticQuery::new(vec![1.0, 0.0, 0.0], 2);
    let hits = s.semantic_search(&q).await?;
    let got: Vec<&str> = hits.iter().map(|h| h.entry.id.as_str()).collect();
    assert_eq!(got, ["a", "d"]);
    let sim = s.similar(&key("a"), 2, &Filter::new()).await?;
    let got: Vec<&str> = sim.iter().map(|h| h.entry.id.as_str()).collect();
    assert_eq!(got, ["d", "e"]);
    assert!(matches!(
        s.similar(&key("b"), 2, &Filter::new()).await,
        Err(StorageError::NotFound { .. })
    ));
    let cov = s.vector_coverage(&Filter::new().kb("m")).await?;
    assert_eq!(cov.with_vector, 3);
    Ok(())
}

/// Claims, metadata compare-and-set, stars and collections find nothing to act on.
async fn coordination_does_not_see_an_expired_entry(s: S) -> Result<()> {
    three(&s).await?;
    assert!(matches!(
        s.claim(&key("gone"), Some("open"), "taken", "ann").await?,
        ClaimOutcome::NotFound
    ));
    assert!(matches!(
        s.cas_metadata(&key("gone"), "x", None, &serde_json::json!(1))
            .await?,
        CasOutcome::NotFound
    ));
    assert!(matches!(
        s.star(&key("gone")).await,
        Err(StorageError::NotFound { .. })
    ));
    s.create_collection("m", "c", "").await?;
    assert!(matches!(
        s.add_to_collection("m", "c", "gone", None).await,
        Err(StorageError::NotFound { .. })
    ));
    Ok(())
}

/// Stars and collection memberships of an entry that expires later disappear with it.
async fn stars_and_collections_hide_members_once_expired(s: S) -> Result<()> {
    kb(&s, "m").await?;
    put(&s, note("m", "a", "A", "")).await?;
    put(&s, note("m", "b", "B", "")).await?;
    s.star(&key("a")).await?;
    s.star(&key("b")).await?;
    s.create_collection("m", "c", "").await?;
    s.add_to_collection("m", "c", "a", None).await?;
    s.add_to_collection("m", "c", "b", None).await?;
    put(
        &s,
        note("m", "a", "A", "").expires_at(Utc::now() - Duration::seconds(1)),
    )
    .await?;
    let starred: Vec<String> = s
        .starred(Some("m"))
        .await?
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(starred, ["b"]);
    assert_eq!(s.collection_entries("m", "c").await?, ["b"]);
    Ok(())
}

/// `gc_expired` deletes expired entries (counted in its report) with their vectors and
/// queue items, keeps the others, and a later write of the same id starts afresh.
async fn gc_removes_expired_entries_and_a_rewrite_starts_afresh(s: S) -> Result<()> {
    three(&s).await?;
    s.ensure_embedding_space(&space(2)).await?;
    let before = s.queue_stats().await?;
    let report = s.gc_expired(Utc::now()).await?;
    assert!(report.kbs.is_empty());
    assert_eq!(report.entries, 1);
    let after = s.queue_stats().await?;
    assert_eq!(after.pending + 1, before.pending, "its queue item went too");
    assert_eq!(s.gc_expired(Utc::now()).await?, GcReport::default());
    assert_eq!(s.count_entries(&Filter::new().kb("m")).await?, 2);
    // A write over an expired (not yet collected) entry is a new entry.
    let old = put(&s, note("m", "x", "X", "")).await?;
    put(
        &s,
        note("m", "x", "X", "").expires_at(Utc::now() - Duration::seconds(1)),
    )
    .await?;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let fresh = put(&s, note("m", "x", "Y", "")).await?;
    assert!(fresh.created_at > old.created_at, "created afresh");
    assert_eq!(fresh.expires_at, None);
    assert_eq!(s.get_entry(&key("x")).await?, Some(fresh));
    Ok(())
}

/// `gc_expired` given a time ahead of the store's clock (another host's, running fast)
/// deletes no entry that reads still show: for entries, the store's clock decides.
async fn gc_with_a_clock_ahead_of_the_stores_keeps_entries_readers_still_see(s: S) -> Result<()> {
    kb(&s, "m").await?;
    put(&s, note("m", "soon", "t", "b").ttl(Duration::hours(1))).await?;
    let report = s.gc_expired(Utc::now() + Duration::hours(2)).await?;
    assert_eq!(report.entries, 0);
    assert!(s.get_entry(&key("soon")).await?.is_some());
    Ok(())
}
