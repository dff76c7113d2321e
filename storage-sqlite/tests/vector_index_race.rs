//! Semantic search while GC and KB deletion drop the in-memory vector index: every query
//! must answer (no panic), however the two interleave.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use std::sync::Arc;

use storage_core::*;
use storage_sqlite::{SqliteConfig, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn semantic_search_survives_the_index_being_dropped_concurrently() {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(SqliteConfig::temporary()).await.unwrap());
    store
        .create_kb(&NewKnowledgeBase::persistent("keep"))
        .await
        .unwrap();
    store
        .ensure_embedding_space(&EmbeddingSpace::new("m", 8))
        .await
        .unwrap();
    for i in 0..200 {
        let key = EntryKey::new("keep", format!("e{i}"));
        store
            .upsert_entry(&NewEntry::new("keep", &key.id).title("t"))
            .await
            .unwrap();
        let v: Vec<f32> = (0..8).map(|d| ((i * 7 + d) % 11) as f32 + 1.0).collect();
        store.put_vector(&key, &v).await.unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Each round writes an entry that has already expired, so every `gc_expired` removes
    // something and drops the index, which the next query reloads.
    let dropper = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let e = NewEntry::new("keep", format!("x{n}"))
                    .title("t")
                    .expires_at(chrono::Utc::now() - chrono::Duration::seconds(1));
                store.upsert_entry(&e).await.unwrap();
                store.gc_expired(chrono::Utc::now()).await.unwrap();
                n += 1;
            }
            n
        })
    };
    let mut searchers = Vec::new();
    for _ in 0..3 {
        let store = store.clone();
        searchers.push(tokio::spawn(async move {
            for _ in 0..400 {
                let q = SemanticQuery::new(vec![1.0; 8], 5);
                let hits = store.semantic_search(&q).await.expect("query answers");
                assert_eq!(hits.len(), 5);
            }
        }));
    }
    for s in searchers {
        s.await.expect("no search panicked");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = dropper.await.unwrap();
    assert!(rounds > 0);
}
