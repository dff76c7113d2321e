//! SQLite alone (no Postgres needed): ingest and queries over the shared seeded corpus,
//! each beside the same work on the raw engine ([`benchmarks::raw`]), plus semantic
//! search against a brute-force scan of the same vectors.
//!
//! `cargo bench-sqlite` runs it. `KB_BENCH_ENTRIES` sets the size of the query corpus
//! (default 100,000); ingest always loads 10,000 entries.

use std::sync::Arc;
use std::time::Duration;

use benchmarks::{
    keyword_queries, load, query_entries, raw, runtime, sqlite_store, total, Corpus, DIMENSION,
    INGEST, K, SEED,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use storage_core::prelude::*;
use storage_core::{Filter, NewEntry, SemanticQuery};
use storage_sqlite::{Durability, SqliteConfig, SqliteStore};

/// A fresh store with `entries` (and their vectors) loaded, and the load's time.
async fn loaded(entries: &[NewEntry], vectors: Option<&Corpus>) -> (SqliteStore, Duration) {
    let store = sqlite_store().await;
    let took = load(&store, None, entries, vectors).await;
    (store, took)
}

fn ingest(c: &mut Criterion) {
    let rt = runtime();
    let corpus = Corpus::new(SEED);
    let entries = corpus.entries("bench", INGEST);
    let mut g = c.benchmark_group("ingest_10k");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(criterion::Throughput::Elements(INGEST as u64));
    g.bench_function("layer/text", |b| {
        b.iter_custom(|iters| total(iters, || rt.block_on(loaded(&entries, None)).1))
    });
    g.bench_function("layer/text+vectors", |b| {
        b.iter_custom(|iters| total(iters, || rt.block_on(loaded(&entries, Some(&corpus))).1))
    });
    // The cost of durability: the same load into a file with each `synchronous` level
    // (the temporary store above runs NORMAL; a file store defaults to FULL).
    for (name, durability) in [
        ("layer/text_file_full", Durability::Full),
        ("layer/text_file_normal", Durability::Normal),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                total(iters, || {
                    let dir = tempfile::tempdir().unwrap();
                    let mut config = SqliteConfig::file(dir.path().join("kb.db"));
                    config.durability = durability;
                    rt.block_on(async {
                        let store = SqliteStore::open(config).await.unwrap();
                        load(&store, None, &entries, None).await
                    })
                })
            })
        });
    }
    g.bench_function("raw/text", |b| {
        b.iter_custom(|iters| {
            total(iters, || {
                raw::sqlite(&tempfile::tempdir().unwrap(), &entries).1
            })
        })
    });
    g.finish();
}

/// One entry per write, the agent-memory case: where durability costs (one fsync per
/// commit at FULL).
fn single_upserts(c: &mut Criterion) {
    let rt = runtime();
    let corpus = Corpus::new(SEED);
    let mut g = c.benchmark_group("upsert_one");
    for (name, durability) in [
        ("file_full", Durability::Full),
        ("file_normal", Durability::Normal),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SqliteConfig::file(dir.path().join("kb.db"));
        config.durability = durability;
        let store = rt.block_on(async {
            let store = SqliteStore::open(config).await.unwrap();
            store
                .create_kb(&storage_core::NewKnowledgeBase::persistent("bench"))
                .await
                .unwrap();
            store
        });
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let e = corpus.entry("bench", i);
                rt.block_on(store.upsert_entries(std::slice::from_ref(&e)))
                    .unwrap()
            })
        });
    }
    g.finish();
}

fn queries(c: &mut Criterion) {
    let rt = runtime();
    let n = query_entries();
    let corpus = Corpus::new(SEED);
    let entries = corpus.entries("bench", n);
    eprintln!("building the {n}-entry query corpus (layer and raw)…");
    let (store, took) = rt.block_on(loaded(&entries, Some(&corpus)));
    eprintln!(
        "layer load of {n} entries with vectors: {:.1}s",
        took.as_secs_f64()
    );
    let store: Arc<dyn Store> = Arc::new(store);
    let dir = tempfile::tempdir().unwrap();
    let (raw_conn, raw_took) = raw::sqlite(&dir, &entries);
    eprintln!(
        "raw load of {n} entries (text only): {:.1}s",
        raw_took.as_secs_f64()
    );

    let mut g = c.benchmark_group(format!("keyword_{}k", n / 1000));
    let page = Filter::new().limit(K);
    for q in keyword_queries(&corpus) {
        let matches: i64 = raw_conn
            .query_row(
                "SELECT COUNT(*) FROM docs_fts WHERE docs_fts MATCH ?1",
                [&q.query],
                |r| r.get(0),
            )
            .unwrap();
        eprintln!("{}: {matches} matching entries", q.name);
        g.bench_with_input(BenchmarkId::new("layer", q.name), &q.query, |b, q| {
            b.to_async(&rt)
                .iter(|| async { store.search(q, &page).await.expect("search") })
        });
        let mut stmt = raw_conn.prepare(raw::SQLITE_SEARCH).unwrap();
        g.bench_with_input(BenchmarkId::new("raw", q.name), &q.query, |b, q| {
            b.iter(|| {
                stmt.query_map([q], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, f64>(3)?,
                    ))
                })
                .unwrap()
                .count()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group(format!("semantic_{}k", n / 1000));
    let q = corpus.query_vector(3, 1);
    rt.block_on(store.semantic_search(&SemanticQuery::new(q.clone(), K)))
        .unwrap();
    g.bench_function("layer/k10", |b| {
        b.to_async(&rt).iter(|| async {
            store
                .semantic_search(&SemanticQuery::new(q.clone(), K))
                .await
                .unwrap()
        })
    });
    let tagged =
        SemanticQuery::new(q.clone(), K).filter(Filter::new().tag(entries[0].tags[0].clone()));
    g.bench_function("layer/k10_filtered_tag", |b| {
        b.to_async(&rt)
            .iter(|| async { store.semantic_search(&tagged).await.unwrap() })
    });
    let matrix: Vec<f32> = (0..n).flat_map(|i| corpus.vector(i)).collect();
    g.bench_function("raw/scan_k10", |b| b.iter(|| raw::scan(&matrix, &q, K)));
    g.finish();

    // Semantic search at 10k, beside the 10k ingest.
    let small: Vec<NewEntry> = entries[..INGEST.min(n)].to_vec();
    let (small_store, _) = rt.block_on(loaded(&small, Some(&corpus)));
    rt.block_on(small_store.semantic_search(&SemanticQuery::new(q.clone(), K)))
        .unwrap();
    let mut g = c.benchmark_group("semantic_10k");
    g.bench_function("layer/k10", |b| {
        b.to_async(&rt).iter(|| async {
            small_store
                .semantic_search(&SemanticQuery::new(q.clone(), K))
                .await
                .unwrap()
        })
    });
    let small_matrix = &matrix[..small.len() * DIMENSION];
    g.bench_function("raw/scan_k10", |b| {
        b.iter(|| raw::scan(small_matrix, &q, K))
    });
    g.finish();
}

criterion_group!(benches, ingest, single_upserts, queries);
criterion_main!(benches);
