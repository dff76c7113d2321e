//! SQLite-only: writers of one process wait for their turn without holding a pooled
//! connection, so searches (and the writers themselves) always find one. Before, every
//! connection of a small pool was held by a writer waiting for the write lock, and the
//! others waited for a connection until the pool's timeout (here the writers failed
//! first).

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use std::sync::Arc;
use std::time::{Duration, Instant};

use storage_core::*;
use storage_sqlite::{SqliteConfig, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_find_a_connection_while_many_writers_wait() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SqliteConfig::file(dir.path().join("kb.sqlite3"));
    config.pool_size = 2;
    config.connection_timeout = Duration::from_millis(100);
    let store = Arc::new(SqliteStore::open(config).await.unwrap());
    store
        .create_kb(&NewKnowledgeBase::persistent("k"))
        .await
        .unwrap();
    let end = Instant::now() + Duration::from_secs(3);
    let writers: Vec<_> = (0..48)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut round = 0;
                while Instant::now() < end {
                    let batch: Vec<NewEntry> = (0..500)
                        .map(|i| {
                            NewEntry::new("k", format!("w{w}-{round}-{i}"))
                                .title("a note")
                                .body("words of a note, written while others search ".repeat(20))
                        })
                        .collect();
                    store
                        .upsert_entries(&batch)
                        .await
                        .expect("a writer finds a connection while others wait");
                    round += 1;
                }
            })
        })
        .collect();
    let mut searches = 0;
    while Instant::now() < end {
        store
            .search("note", &Filter::new().limit(10))
            .await
            .expect("a search finds a connection while writers wait");
        searches += 1;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(searches > 0);
}
