//! SQLite-only: a filtered list in the default order (newest first, then kb and id)
//! walks one index and stops after the page, instead of scanning and sorting the whole
//! table (85 ms at 100k entries), once `optimize` has given the planner its statistics.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use storage_core::*;
use storage_sqlite::{SqliteConfig, SqliteStore};

#[tokio::test]
async fn a_filtered_list_in_the_default_order_walks_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.sqlite3");
    let store = SqliteStore::open(SqliteConfig::file(&path)).await.unwrap();
    store
        .create_kb(&NewKnowledgeBase::persistent("k"))
        .await
        .unwrap();
    let entries: Vec<NewEntry> = (0..20_000)
        .map(|i| {
            NewEntry::new("k", format!("e{i}"))
                .title(format!("entry {i}"))
                .tags([format!("t/{}", i % 100)])
                .importance(i % 10)
        })
        .collect();
    for chunk in entries.chunks(1_000) {
        store.upsert_entries(chunk).await.unwrap();
    }
    store.optimize().await.unwrap();
    drop(store);

    let c = rusqlite::Connection::open(&path).unwrap();
    storage_sqlite::register_tokenizer(&c).unwrap();
    // The list query the store runs for `Filter::new().min_importance(7)`.
    let plan: Vec<String> = c
        .prepare(
            "EXPLAIN QUERY PLAN SELECT e.id FROM live_entries e \
             WHERE e.lifecycle = 'active' AND e.importance >= 7 \
             ORDER BY e.updated_at DESC, e.kb ASC, e.id ASC LIMIT 10",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("entries_updated")),
        "the list scans instead of walking the index: {plan:?}"
    );
    assert!(
        !plan.iter().any(|l| l.contains("TEMP B-TREE")),
        "the page is sorted instead of read in index order: {plan:?}"
    );
}
