//! SQLite backend benchmarks over the shared seeded corpus (`conformance::corpus`), each
//! workload beside the same work done on the raw engine (rusqlite, no layer), so the
//! layer's overhead is visible.
//!
//! `cargo xtask bench` runs them. `KB_BENCH_ENTRIES` sets the size of the query corpus
//! (default 100,000); ingest always loads 10,000 entries.

use std::sync::Arc;
use std::time::{Duration, Instant};
use storage_core::prelude::*;

use conformance::corpus::{Corpus, DIMENSION};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rusqlite::{params, Connection};
use storage_core::{
    EmbeddingSpace, EntryKey, Filter, NewEntry, NewKnowledgeBase, SemanticQuery, Store,
};
use storage_sqlite::{SqliteConfig, SqliteStore};

const SEED: u64 = 42;
const INGEST: usize = 10_000;
const BATCH: usize = 1_000;

fn query_entries() -> usize {
    std::env::var("KB_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn layer_store(entries: &[NewEntry], vectors: Option<&Corpus>) -> (SqliteStore, Duration) {
    let store = SqliteStore::open(SqliteConfig::temporary())
        .await
        .expect("open");
    store
        .create_kb(&NewKnowledgeBase::persistent("bench"))
        .await
        .expect("kb");
    store
        .ensure_embedding_space(&EmbeddingSpace::new("bench", DIMENSION))
        .await
        .expect("space");
    let start = Instant::now();
    for (b, chunk) in entries.chunks(BATCH).enumerate() {
        store.upsert_entries(chunk).await.expect("upsert");
        if let Some(c) = vectors {
            let items: Vec<(EntryKey, Vec<f32>)> = chunk
                .iter()
                .enumerate()
                .map(|(i, e)| (e.key(), c.vector(b * BATCH + i)))
                .collect();
            store.put_vectors(&items).await.expect("vectors");
        }
    }
    (store, start.elapsed())
}

/// The raw engine: one transaction, prepared inserts, external-content FTS5.
fn raw_store(dir: &tempfile::TempDir, entries: &[NewEntry]) -> (Connection, Duration) {
    let conn = Connection::open(dir.path().join("raw.sqlite3")).expect("open raw");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE docs (rowid INTEGER PRIMARY KEY, id TEXT UNIQUE, title TEXT, tags TEXT, body TEXT);
         CREATE VIRTUAL TABLE docs_fts USING fts5(title, tags, body, content = 'docs',
             content_rowid = 'rowid', tokenize = 'porter unicode61 remove_diacritics 2');",
    )
    .expect("raw schema");
    let start = Instant::now();
    for chunk in entries.chunks(BATCH) {
        let tx = conn.unchecked_transaction().expect("tx");
        {
            let mut ins = tx
                .prepare_cached("INSERT INTO docs (id, title, tags, body) VALUES (?1, ?2, ?3, ?4)")
                .unwrap();
            let mut fts = tx
                .prepare_cached(
                    "INSERT INTO docs_fts (rowid, title, tags, body) VALUES (?1, ?2, ?3, ?4)",
                )
                .unwrap();
            for e in chunk {
                let tags = e.tags.join(" ");
                ins.execute(params![e.id, e.title, tags, e.body]).unwrap();
                fts.execute(params![tx.last_insert_rowid(), e.title, tags, e.body])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    (conn, start.elapsed())
}

fn ingest(c: &mut Criterion) {
    let rt = rt();
    let corpus = Corpus::new(SEED);
    let entries = corpus.entries("bench", INGEST);
    let mut g = c.benchmark_group("ingest_10k");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(criterion::Throughput::Elements(INGEST as u64));
    g.bench_function("layer/text", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(layer_store(&entries, None)).1)
                .sum()
        })
    });
    g.bench_function("layer/text+vectors", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(layer_store(&entries, Some(&corpus))).1)
                .sum()
        })
    });
    g.bench_function("raw/text", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let dir = tempfile::tempdir().unwrap();
                    raw_store(&dir, &entries).1
                })
                .sum()
        })
    });
    g.finish();
}

/// Queries of 1, 2 and 5 terms: frequent-enough words picked by Zipf rank.
fn keyword_queries(corpus: &Corpus) -> Vec<(&'static str, String, String)> {
    let w = |r| corpus.word(r).to_string();
    vec![
        ("1term", w(1700), w(1700)),
        (
            "2terms_and",
            format!("{} {}", w(300), w(400)),
            format!("{} AND {}", w(300), w(400)),
        ),
        (
            "5terms_or",
            (1500..1505).map(w).collect::<Vec<_>>().join(" OR "),
            (1500..1505).map(w).collect::<Vec<_>>().join(" OR "),
        ),
    ]
}

fn queries(c: &mut Criterion) {
    let rt = rt();
    let n = query_entries();
    let corpus = Corpus::new(SEED);
    let entries = corpus.entries("bench", n);
    eprintln!("building the {n}-entry query corpus (layer and raw)…");
    let (store, load) = rt.block_on(layer_store(&entries, Some(&corpus)));
    eprintln!(
        "layer load of {n} entries with vectors: {:.1}s",
        load.as_secs_f64()
    );
    let store: Arc<dyn Store> = Arc::new(store);
    let dir = tempfile::tempdir().unwrap();
    let (raw, raw_load) = raw_store(&dir, &entries);
    eprintln!(
        "raw load of {n} entries (text only): {:.1}s",
        raw_load.as_secs_f64()
    );

    let mut g = c.benchmark_group(format!("keyword_{}k", n / 1000));
    for (name, layer_q, raw_q) in keyword_queries(&corpus) {
        let matches: i64 = raw
            .query_row(
                "SELECT COUNT(*) FROM docs_fts WHERE docs_fts MATCH ?1",
                [&raw_q],
                |r| r.get(0),
            )
            .unwrap();
        eprintln!("{name}: {matches} matching entries");
        let f = Filter::new().limit(10);
        g.bench_with_input(BenchmarkId::new("layer", name), &layer_q, |b, q| {
            b.to_async(&rt)
                .iter(|| async { store.search(q, &f).await.expect("search") })
        });
        let mut stmt = raw
            .prepare(
                "SELECT d.id, d.title, d.body, -bm25(docs_fts) FROM docs_fts JOIN docs d ON d.rowid = docs_fts.rowid \
                 WHERE docs_fts MATCH ?1 ORDER BY bm25(docs_fts) LIMIT 10",
            )
            .unwrap();
        g.bench_with_input(BenchmarkId::new("raw", name), &raw_q, |b, q| {
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
    rt.block_on(store.semantic_search(&SemanticQuery::new(q.clone(), 10)))
        .unwrap();
    g.bench_function("layer/k10", |b| {
        b.to_async(&rt).iter(|| async {
            store
                .semantic_search(&SemanticQuery::new(q.clone(), 10))
                .await
                .unwrap()
        })
    });
    let tagged =
        SemanticQuery::new(q.clone(), 10).filter(Filter::new().tag(entries[0].tags[0].clone()));
    g.bench_function("layer/k10_filtered_tag", |b| {
        b.to_async(&rt)
            .iter(|| async { store.semantic_search(&tagged).await.unwrap() })
    });
    let matrix: Vec<f32> = (0..n).flat_map(|i| corpus.vector(i)).collect();
    g.bench_function("raw/scan_k10", |b| b.iter(|| raw_scan(&matrix, &q, 10)));
    g.finish();

    // Semantic search at 10k, the size the issue names.
    let small: Vec<NewEntry> = entries[..INGEST.min(n)].to_vec();
    let (small_store, _) = rt.block_on(layer_store(&small, Some(&corpus)));
    rt.block_on(small_store.semantic_search(&SemanticQuery::new(q.clone(), 10)))
        .unwrap();
    let mut g = c.benchmark_group("semantic_10k");
    g.bench_function("layer/k10", |b| {
        b.to_async(&rt).iter(|| async {
            small_store
                .semantic_search(&SemanticQuery::new(q.clone(), 10))
                .await
                .unwrap()
        })
    });
    let small_matrix = &matrix[..small.len() * DIMENSION];
    g.bench_function("raw/scan_k10", |b| {
        b.iter(|| raw_scan(small_matrix, &q, 10))
    });
    g.finish();
}

/// Brute-force cosine top-k over a contiguous normalised matrix, single-threaded, with
/// the same 8-lane dot product the layer uses (the fastest plain loop, not a strawman).
fn raw_scan(matrix: &[f32], q: &[f32], k: usize) -> Vec<(f32, usize)> {
    let mut scores: Vec<(f32, usize)> = matrix
        .chunks_exact(q.len())
        .enumerate()
        .map(|(i, v)| (dot(v, q), i))
        .collect();
    scores.select_nth_unstable_by(k, |a, b| b.0.total_cmp(&a.0));
    scores.truncate(k);
    scores.sort_by(|a, b| b.0.total_cmp(&a.0));
    scores
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum()
}

criterion_group!(benches, ingest, queries);
criterion_main!(benches);
