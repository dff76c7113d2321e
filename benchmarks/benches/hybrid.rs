//! Search-layer latency over 10,000 entries with 384-d vectors, on both backends: the
//! `Searcher` in keyword, semantic and hybrid mode (RRF and convex), against the store
//! calls it makes. The query vector comes from the corpus (a fixed embedder), so this
//! measures search and fusion, not the model; `cargo bench -p embed` measures the model.
//!
//! Run with `cargo xtask bench hybrid` (provisions Postgres unless `KB_PG_URL` is set);
//! `cargo bench-hybrid` runs it on SQLite alone, or on both with `KB_PG_URL` set.

use std::sync::Arc;

use benchmarks::{load, pg_store, pg_url, runtime, sqlite_store, Corpus, FixedQuery, SEED};
use criterion::{criterion_group, criterion_main, Criterion};
use embed::Embedder;
use search_hybrid::{Fusion, SearchConfig, SearchMode, SearchRequest, Searcher};
use storage_core::*;

const ENTRIES: usize = 10_000;

/// The 10k corpus with vectors, then what autovacuum does shortly after a load:
/// planner statistics for the new rows.
async fn prepare(store: &dyn Store, pg: Option<&storage_postgres::PgStore>, corpus: &Corpus) {
    let entries = corpus.entries("bench", ENTRIES);
    load(store, pg, &entries, Some(corpus)).await;
    store.optimize().await.unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let corpus = Corpus::new(SEED);
    // Two frequent-ish words: a few hundred matches, like a real two-word query.
    let query = format!("{} OR {}", corpus.word(30), corpus.word(31));
    let embedder: Arc<dyn Embedder> = Arc::new(FixedQuery(corpus.query_vector(7, 1)));
    let sqlite: Arc<dyn Store> = Arc::new(rt.block_on(sqlite_store()));
    rt.block_on(prepare(sqlite.as_ref(), None, &corpus));
    let mut backends = vec![("sqlite", sqlite)];
    match pg_url() {
        Some(url) => {
            let pg = rt.block_on(pg_store(&url, 100));
            rt.block_on(prepare(&pg, Some(&pg), &corpus));
            backends.push(("postgres", Arc::new(pg) as Arc<dyn Store>));
        }
        None => eprintln!("KB_PG_URL not set: SQLite only (`cargo xtask bench hybrid` runs both)"),
    }
    let mut g = c.benchmark_group("hybrid_10k");
    g.sample_size(30);
    for (name, store) in &backends {
        let cases = [
            ("keyword", SearchMode::Keyword, Fusion::default()),
            ("semantic", SearchMode::Semantic, Fusion::default()),
            ("hybrid_rrf", SearchMode::Hybrid, Fusion::default()),
            ("hybrid_convex", SearchMode::Hybrid, Fusion::Convex),
        ];
        for (case, mode, fusion) in cases {
            let searcher = rt
                .block_on(Searcher::new(
                    store.clone(),
                    embedder.clone(),
                    SearchConfig {
                        fusion,
                        ..Default::default()
                    },
                ))
                .unwrap();
            let req = SearchRequest::new(query.clone(), mode).filter(Filter::new().limit(10));
            let n = rt.block_on(searcher.search(&req)).unwrap().hits.len();
            assert_eq!(n, 10, "{name}/{case} returns a full page");
            g.bench_function(format!("{name}/{case}"), |b| {
                b.to_async(&rt).iter(|| searcher.search(&req))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
