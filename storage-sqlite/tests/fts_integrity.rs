//! SQLite-only: the FTS5 index, written by the store rather than by triggers, stays
//! consistent with the entries table through inserts, rewrites, duplicates in a batch,
//! deletes and KB deletion (FTS5's own integrity-check compares the two).

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use storage_core::*;
use storage_sqlite::{SqliteConfig, SqliteStore};

#[tokio::test]
async fn full_text_index_matches_entries_after_every_kind_of_write() {
    let store = SqliteStore::open(SqliteConfig::temporary()).await.unwrap();
    for kb in ["a", "b"] {
        store
            .create_kb(&NewKnowledgeBase::persistent(kb))
            .await
            .unwrap();
    }
    let e = |kb: &str, id: &str, t: &str| {
        NewEntry::new(kb, id)
            .title(t)
            .body(format!("{t} body words"))
            .tags(["x/y"])
    };
    store
        .upsert_entries(&[
            e("a", "1", "first"),
            e("a", "2", "second"),
            e("a", "1", "again"),
            e("b", "1", "other"),
        ])
        .await
        .unwrap();
    store.upsert_entry(&e("a", "2", "rewritten")).await.unwrap();
    store
        .upsert_entry(&e("a", "2", "rewritten").status("done"))
        .await
        .unwrap();
    store.delete_entry(&EntryKey::new("a", "1")).await.unwrap();
    store.upsert_entry(&e("a", "3", "third")).await.unwrap();
    store.delete_kb("b").await.unwrap();

    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.execute(
        "INSERT INTO entries_fts (entries_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )
    .expect("FTS5 index is consistent with the entries table");
    let found: Vec<String> = store
        .search(
            "rewritten OR third OR again OR other OR first",
            &Filter::new(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.entry.id)
        .collect();
    let mut found = found;
    found.sort();
    assert_eq!(found, ["2", "3"]);
}
