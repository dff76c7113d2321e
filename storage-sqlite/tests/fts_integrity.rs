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
    storage_sqlite::register_tokenizer(&conn).unwrap();
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

/// A database of schema version 4 (its index tokenised by `unicode61`, which keeps a run
/// of CJK characters as one token) is re-indexed by the upgrade: a word inside a
/// Japanese sentence is found, and the index is consistent with the entries.
#[tokio::test]
async fn upgrading_a_version_4_database_reindexes_cjk_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.sqlite3");
    let store = SqliteStore::open(SqliteConfig::file(&path)).await.unwrap();
    store
        .create_kb(&NewKnowledgeBase::persistent("k"))
        .await
        .unwrap();
    store
        .upsert_entry(
            &NewEntry::new("k", "ja")
                .title("日記")
                .body("私は東京に住んでいます"),
        )
        .await
        .unwrap();
    drop(store);
    {
        // Version 4's index, as it was built.
        let conn = rusqlite::Connection::open(&path).unwrap();
        storage_sqlite::register_tokenizer(&conn).unwrap();
        conn.execute_batch(
            "DROP TABLE entries_fts;
             CREATE VIRTUAL TABLE entries_fts USING fts5(
                 title, tags_text, summary, body, content = 'entries', content_rowid = 'rowid',
                 tokenize = 'porter unicode61 remove_diacritics 2');
             INSERT INTO entries_fts(entries_fts) VALUES ('rebuild');
             ALTER TABLE embed_queue DROP COLUMN lease;
             DELETE FROM schema_version WHERE version >= 5;",
        )
        .unwrap();
        let old: i64 = conn
            .query_row(
                "SELECT count(*) FROM entries_fts WHERE entries_fts MATCH '\"東京\"'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old, 0, "version 4 could not find the word");
    }
    let store = SqliteStore::open(SqliteConfig::file(&path)).await.unwrap();
    assert_eq!(
        store.health().await.unwrap().schema_version,
        storage_sqlite::SCHEMA_VERSION
    );
    let hits = store.search("東京", &Filter::new()).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].snippet.highlighted(), ["東京"]);
    let conn = rusqlite::Connection::open(&path).unwrap();
    storage_sqlite::register_tokenizer(&conn).unwrap();
    conn.execute(
        "INSERT INTO entries_fts (entries_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )
    .expect("the rebuilt index is consistent with the entries table");
}
