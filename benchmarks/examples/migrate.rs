//! `kb migrate` throughput: a SQLite store of `ENTRIES` (default 100,000) corpus entries
//! with one 384-d vector each is migrated to Postgres (`KB_PG_URL`, a fresh schema)
//! and back into a fresh SQLite file, then verified.
//!
//! `KB_PG_URL=postgres://… cargo run --release -p benchmarks --example migrate`

use std::time::Instant;
use storage_core::prelude::*;

use kb_app::{migrate, DatabaseConfig, NoProgress, OpenMode, OpenStore};
use storage_core::{EmbeddingSpace, EntryKey, NewKnowledgeBase};

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let url = benchmarks::require_pg_url();
    let tmp = tempfile::tempdir().unwrap();
    let sqlite = |name: &str| DatabaseConfig::Sqlite {
        path: tmp.path().join(name),
        pool_size: None,
        busy_timeout: None,
        durability: None,
    };
    let src = OpenStore::open(&sqlite("src.db"), OpenMode::Create)
        .await
        .unwrap();
    let s = src.store();
    let corpus = benchmarks::Corpus::new(7);
    s.create_kb(&NewKnowledgeBase::persistent("bench"))
        .await
        .unwrap();
    s.ensure_embedding_space(&EmbeddingSpace::new("bench-384", 384))
        .await
        .unwrap();
    let t = Instant::now();
    for start in (0..n).step_by(1_000) {
        let batch: Vec<_> = (start..(start + 1_000).min(n))
            .map(|i| corpus.entry("bench", i))
            .collect();
        s.upsert_entries(&batch).await.unwrap();
        let vectors: Vec<_> = batch
            .iter()
            .enumerate()
            .map(|(j, e)| (EntryKey::new("bench", &e.id), corpus.vector(start + j)))
            .collect();
        s.put_vectors(&vectors).await.unwrap();
    }
    // The source's queue is settled as a worker would leave it.
    loop {
        let items = s
            .claim_embedding_batch("loader", 5_000, std::time::Duration::from_secs(60))
            .await
            .unwrap();
        if items.is_empty() {
            break;
        }
        s.complete_embedding(&items).await.unwrap();
    }
    println!(
        "loaded {n} entries + vectors into SQLite in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let schema = format!("kb_migrate_bench_{}", std::process::id());
    let pg = OpenStore::open(
        &DatabaseConfig::Postgres(Box::new(
            storage_postgres::PgConfig::new(url).schema(schema),
        )),
        OpenMode::Create,
    )
    .await
    .unwrap();
    let back = OpenStore::open(&sqlite("back.db"), OpenMode::Create)
        .await
        .unwrap();
    for (name, from, to) in [
        ("sqlite → postgres", &src, &pg),
        ("postgres → sqlite", &pg, &back),
    ] {
        let r = migrate::migrate(from, to, 1_000, &NoProgress)
            .await
            .unwrap();
        println!(
            "{name}: {} entries, {} passages in {:.1} s = {:.0} entries/s",
            r.entries_copied,
            r.passages_copied,
            r.elapsed_ms as f64 / 1e3,
            r.entries_per_sec
        );
        let t = Instant::now();
        let again = migrate::migrate(from, to, 1_000, &NoProgress)
            .await
            .unwrap();
        println!(
            "{name} again: {} copied in {:.1} s",
            again.entries_copied + again.passages_copied,
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    let v = migrate::verify(&src, &back).await.unwrap();
    println!(
        "verify sqlite ↔ sqlite after the round trip: equal = {} ({:.1} s)",
        v.equal,
        t.elapsed().as_secs_f64()
    );
}
