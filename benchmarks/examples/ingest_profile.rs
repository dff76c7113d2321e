//! Loads the benchmark corpus through the SQLite backend; a target for profilers
//! (`valgrind --tool=callgrind target/release/examples/ingest_profile 3000`).

use storage_core::prelude::*;
use storage_core::NewKnowledgeBase;
use storage_sqlite::{SqliteConfig, SqliteStore};

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3000);
    let entries = benchmarks::Corpus::new(42).entries("bench", n);
    let store = SqliteStore::open(SqliteConfig::temporary())
        .await
        .expect("open");
    store
        .create_kb(&NewKnowledgeBase::persistent("bench"))
        .await
        .expect("kb");
    let start = std::time::Instant::now();
    for chunk in entries.chunks(1000) {
        store.upsert_entries(chunk).await.expect("upsert");
    }
    eprintln!("{n} entries in {:?}", start.elapsed());
}
