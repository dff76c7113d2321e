//! Both backends side by side on the shared seeded corpus, each beside raw SQL on its
//! engine ([`benchmarks::raw`]), so the layer's cost and the engines' differences show.
//!
//! Run with `cargo xtask bench backends` (provisions Postgres unless `KB_PG_URL` is set).
//! `KB_BENCH_ENTRIES` (default 100,000) sizes the query corpus; ingest loads 10,000.
//! Loads of the query corpus are timed once and printed (they take minutes on Postgres).

use std::sync::Arc;
use std::time::{Duration, Instant};

use benchmarks::{
    keyword_queries, load, pg_store, query_entries, raw, require_pg_url, runtime, sqlite_store,
    total, Corpus, BATCH, DIMENSION, INGEST, K, SEED,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pgvector::Vector;
use storage_core::*;
use storage_postgres::{PgConfig, PgStore};

fn ingest(c: &mut Criterion) {
    let rt = runtime();
    let corpus = Corpus::new(SEED);
    let entries = corpus.entries("bench", INGEST);
    let mut g = c.benchmark_group("ingest_10k");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .throughput(criterion::Throughput::Elements(INGEST as u64));
    g.bench_function("sqlite/text", |b| {
        b.iter_custom(|n| {
            total(n, || {
                rt.block_on(async { load(&sqlite_store().await, None, &entries, None).await })
            })
        })
    });
    g.bench_function("sqlite/text+vectors", |b| {
        b.iter_custom(|n| {
            total(n, || {
                rt.block_on(async {
                    load(&sqlite_store().await, None, &entries, Some(&corpus)).await
                })
            })
        })
    });
    g.bench_function("raw_sqlite/text", |b| {
        b.iter_custom(|n| total(n, || raw::sqlite(&tempfile::tempdir().unwrap(), &entries).1))
    });
    g.bench_function("postgres/text", |b| {
        b.iter_custom(|n| {
            total(n, || {
                rt.block_on(async {
                    let s = pg_store(&require_pg_url(), 100).await;
                    load(&s, Some(&s), &entries, None).await
                })
            })
        })
    });
    g.bench_function("postgres/text+vectors", |b| {
        b.iter_custom(|n| {
            total(n, || {
                rt.block_on(async {
                    let s = pg_store(&require_pg_url(), 100).await;
                    load(&s, Some(&s), &entries, Some(&corpus)).await
                })
            })
        })
    });
    g.bench_function("raw_postgres/text", |b| {
        b.iter_custom(|n| {
            total(n, || {
                rt.block_on(async {
                    let client = raw::postgres_client(&require_pg_url()).await;
                    raw::postgres(&client, "raw_ingest", &entries).await
                })
            })
        })
    });
    g.finish();
}

fn queries(c: &mut Criterion) {
    let rt = runtime();
    let url = require_pg_url();
    let n = query_entries();
    let corpus = Corpus::new(SEED);
    let entries = corpus.entries("bench", n);
    let per_s = |d: Duration| n as f64 / d.as_secs_f64();

    let sqlite = rt.block_on(sqlite_store());
    let t = rt.block_on(load(&sqlite, None, &entries, Some(&corpus)));
    eprintln!(
        "load {n}: sqlite text+vectors {:.1}s ({:.0} entries/s)",
        t.as_secs_f64(),
        per_s(t)
    );
    let dir = tempfile::tempdir().unwrap();
    let (raw_lite, t) = raw::sqlite(&dir, &entries);
    eprintln!(
        "load {n}: raw_sqlite text {:.1}s ({:.0} entries/s)",
        t.as_secs_f64(),
        per_s(t)
    );

    let pg = rt.block_on(pg_store(&url, 100));
    let started = Instant::now();
    let t_text = rt.block_on(async {
        pg.create_kb(&NewKnowledgeBase::persistent("bench"))
            .await
            .unwrap();
        pg.ensure_embedding_space(&EmbeddingSpace::new("bench", DIMENSION))
            .await
            .unwrap();
        pg.drop_vector_index().await.unwrap();
        let s = Instant::now();
        for chunk in entries.chunks(BATCH) {
            pg.upsert_entries(chunk).await.unwrap();
        }
        s.elapsed()
    });
    let t_vec = rt.block_on(async {
        let s = Instant::now();
        for (b, chunk) in entries.chunks(BATCH).enumerate() {
            let items: Vec<(EntryKey, Vec<f32>)> = chunk
                .iter()
                .enumerate()
                .map(|(i, e)| (e.key(), corpus.vector(b * BATCH + i)))
                .collect();
            pg.put_vectors(&items).await.unwrap();
        }
        s.elapsed()
    });
    let t_idx = rt.block_on(async {
        let s = Instant::now();
        pg.build_vector_index().await.unwrap();
        s.elapsed()
    });
    eprintln!(
        "load {n}: postgres text {:.1}s ({:.0} entries/s), vectors {:.1}s, HNSW build {:.1}s, total {:.1}s",
        t_text.as_secs_f64(),
        per_s(t_text),
        t_vec.as_secs_f64(),
        t_idx.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let raw = rt.block_on(raw::postgres_client(&url));
    let t = rt.block_on(raw::postgres(&raw, "raw_docs", &entries));
    eprintln!(
        "load {n}: raw_postgres text {:.1}s ({:.0} entries/s)",
        t.as_secs_f64(),
        per_s(t)
    );
    // What a user does after a bulk load (and autovacuum does a little later): on
    // Postgres, VACUUM ANALYZE of every table (visibility maps for index-only scans of the
    // postings, planner statistics); on SQLite, FTS5's segment merge and PRAGMA optimize.
    rt.block_on(async {
        pg.optimize().await.unwrap();
        sqlite.optimize().await.unwrap();
        raw.batch_execute("VACUUM ANALYZE raw_docs").await.unwrap();
    });

    let sqlite: Arc<dyn Store> = Arc::new(sqlite);
    let pg_dyn: Arc<dyn Store> = Arc::new(pg.clone());
    let mut g = c.benchmark_group(format!("keyword_{}k", n / 1000));
    let page = Filter::new().limit(K);
    let raw_pg_search = raw::postgres_search("raw_docs");
    for q in keyword_queries(&corpus) {
        let name = q.name;
        let hits = rt
            .block_on(pg_dyn.search(&q.query, &Filter::new().limit(MAX_PAGE_SIZE)))
            .unwrap()
            .len();
        let lite_hits = rt
            .block_on(sqlite.search(&q.query, &Filter::new().limit(MAX_PAGE_SIZE)))
            .unwrap()
            .len();
        eprintln!("{name}: {lite_hits} matches on sqlite, {hits} on postgres");
        g.bench_with_input(BenchmarkId::new("sqlite", name), &q.query, |b, q| {
            b.to_async(&rt)
                .iter(|| async { sqlite.search(q, &page).await.unwrap() })
        });
        let mut stmt = raw_lite.prepare(raw::SQLITE_SEARCH).unwrap();
        g.bench_with_input(BenchmarkId::new("raw_sqlite", name), &q.query, |b, q| {
            b.iter(|| {
                stmt.query_map([q], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, f64>(3)?,
                    ))
                })
                .unwrap()
                .count()
            })
        });
        g.bench_with_input(BenchmarkId::new("postgres", name), &q.query, |b, q| {
            b.to_async(&rt)
                .iter(|| async { pg_dyn.search(q, &page).await.unwrap() })
        });
        g.bench_with_input(
            BenchmarkId::new("raw_postgres", name),
            &q.tsquery,
            |b, q| {
                b.to_async(&rt)
                    .iter(|| async { raw.query(raw_pg_search.as_str(), &[q]).await.unwrap() })
            },
        );
    }
    g.finish();

    // Semantic: SQLite is exact; Postgres at three ef_search settings, recall against exact.
    let queries: Vec<Vec<f32>> = (0..20)
        .map(|i| corpus.query_vector(i * 5, i as u64))
        .collect();
    let exact: Vec<Vec<String>> = queries
        .iter()
        .map(|q| {
            rt.block_on(sqlite.semantic_search(&SemanticQuery::new(q.clone(), K)))
                .unwrap()
                .into_iter()
                .map(|h| h.entry.id)
                .collect()
        })
        .collect();
    let mut g = c.benchmark_group(format!("semantic_{}k", n / 1000));
    g.bench_function("sqlite/exact", |b| {
        let mut i = 0;
        b.to_async(&rt).iter(|| {
            i += 1;
            let q = SemanticQuery::new(queries[i % queries.len()].clone(), K);
            let s = sqlite.clone();
            async move { s.semantic_search(&q).await.unwrap() }
        })
    });
    for ef in [40u32, 100, 200] {
        let mut cfg = PgConfig::new(&url).schema(pg.schema());
        cfg.ef_search = ef;
        let store: Arc<dyn Store> = Arc::new(rt.block_on(PgStore::open(cfg)).unwrap());
        let mut found = 0;
        for (q, want) in queries.iter().zip(&exact) {
            let got = rt
                .block_on(store.semantic_search(&SemanticQuery::new(q.clone(), K)))
                .unwrap();
            found += got.iter().filter(|h| want.contains(&h.entry.id)).count();
        }
        eprintln!(
            "postgres ef_search {ef}: recall@10 vs exact = {:.3}",
            found as f64 / (K * queries.len()) as f64
        );
        g.bench_function(format!("postgres/ef{ef}"), |b| {
            let mut i = 0;
            b.to_async(&rt).iter(|| {
                i += 1;
                let q = SemanticQuery::new(queries[i % queries.len()].clone(), K);
                let s = store.clone();
                async move { s.semantic_search(&q).await.unwrap() }
            })
        });
    }
    let raw_sql = format!(
        "SELECT entry FROM {}.vectors ORDER BY embedding <=> $1 LIMIT 10",
        pg.schema()
    );
    g.bench_function("raw_postgres/ef100", |b| {
        let mut i = 0;
        b.to_async(&rt).iter(|| {
            i += 1;
            let v = Vector::from(queries[i % queries.len()].clone());
            let (raw, sql) = (&raw, &raw_sql);
            async move {
                raw.batch_execute("BEGIN; SET LOCAL hnsw.ef_search = 100")
                    .await
                    .unwrap();
                let rows = raw.query(sql.as_str(), &[&v]).await.unwrap();
                raw.batch_execute("COMMIT").await.unwrap();
                rows
            }
        })
    });
    g.finish();

    // Filtered semantic: a tag (~1% of entries) and importance >= 7 (~30%).
    let tag = entries[0].tags[0].clone();
    let filters = [
        ("tag_1pct", Filter::new().tag(tag)),
        ("importance_30pct", Filter::new().min_importance(7)),
    ];
    let mut g = c.benchmark_group(format!("semantic_filtered_{}k", n / 1000));
    for (name, f) in &filters {
        let selected = rt.block_on(sqlite.count_entries(f)).unwrap();
        for (backend, store) in [("sqlite", &sqlite), ("postgres", &pg_dyn)] {
            let q = SemanticQuery::new(queries[0].clone(), K).filter(f.clone());
            let got = rt.block_on(store.semantic_search(&q)).unwrap().len();
            eprintln!("{name} ({selected} selected): {backend} returned {got} of {K}");
            assert_eq!(
                got,
                K.min(selected as usize),
                "{backend} {name} returned {got}"
            );
            g.bench_function(format!("{backend}/{name}"), |b| {
                b.to_async(&rt)
                    .iter(|| async { store.semantic_search(&q).await.unwrap() })
            });
        }
    }
    g.finish();
    rt.block_on(async {
        raw.batch_execute("DROP TABLE IF EXISTS raw_docs, raw_ingest")
            .await
            .unwrap()
    });
}

criterion_group!(benches, ingest, queries);
criterion_main!(benches);
