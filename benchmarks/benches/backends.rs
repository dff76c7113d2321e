//! Both backends side by side on the shared seeded corpus (`conformance::corpus`), each
//! beside raw SQL on its engine, so the layer's cost and the engines' differences show.
//!
//! Run with `cargo xtask bench` (provisions Postgres unless `KB_BENCH_PG_URL` is set).
//! `KB_BENCH_ENTRIES` (default 100,000) sizes the query corpus; ingest loads 10,000.
//! Loads of the query corpus are timed once and printed (they take minutes on Postgres).

use std::sync::Arc;
use std::time::{Duration, Instant};

use conformance::corpus::{Corpus, DIMENSION};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pgvector::Vector;
use storage_core::*;
use storage_postgres::{PgConfig, PgStore};
use storage_sqlite::{SqliteConfig, SqliteStore};
use tokio::runtime::Runtime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

const SEED: u64 = 42;
const INGEST: usize = 10_000;
const BATCH: usize = 1_000;
const K: usize = 10;

fn pg_url() -> String {
    std::env::var("KB_BENCH_PG_URL").expect("KB_BENCH_PG_URL is not set: run `cargo xtask bench`")
}

fn query_entries() -> usize {
    std::env::var("KB_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn rt() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn raw_pg() -> Client {
    let (client, conn) = tokio_postgres::connect(&pg_url(), NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// Loads entries (and vectors) through the protocol. On Postgres the HNSW index is built
/// after the load, the recommended bulk path. Returns the time taken.
async fn load(
    store: &dyn Store,
    pg: Option<&PgStore>,
    entries: &[NewEntry],
    corpus: Option<&Corpus>,
) -> Duration {
    store
        .create_kb(&NewKnowledgeBase::persistent("bench"))
        .await
        .expect("kb");
    store
        .ensure_embedding_space(&EmbeddingSpace::new("bench", DIMENSION))
        .await
        .expect("space");
    let start = Instant::now();
    if let (Some(pg), Some(_)) = (pg, corpus) {
        pg.drop_vector_index().await.expect("drop index");
    }
    for (b, chunk) in entries.chunks(BATCH).enumerate() {
        store.upsert_entries(chunk).await.expect("upsert");
        if let Some(c) = corpus {
            let items: Vec<(EntryKey, Vec<f32>)> = chunk
                .iter()
                .enumerate()
                .map(|(i, e)| (e.key(), c.vector(b * BATCH + i)))
                .collect();
            store.put_vectors(&items).await.expect("vectors");
        }
    }
    if let (Some(pg), Some(_)) = (pg, corpus) {
        pg.build_vector_index().await.expect("build index");
    }
    start.elapsed()
}

async fn sqlite_store() -> SqliteStore {
    SqliteStore::open(SqliteConfig::temporary())
        .await
        .expect("open sqlite")
}

async fn pg_store(ef_search: u32) -> PgStore {
    let mut c = PgConfig::new(pg_url());
    c.ef_search = ef_search;
    c.statement_timeout = Duration::from_secs(600);
    PgStore::open_for_test_with(c).await.expect("open postgres")
}

/// Raw SQLite: one transaction per batch, prepared inserts, external-content FTS5.
fn raw_sqlite(dir: &tempfile::TempDir, entries: &[NewEntry]) -> (rusqlite::Connection, Duration) {
    let conn = rusqlite::Connection::open(dir.path().join("raw.sqlite3")).expect("open raw");
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
                ins.execute(rusqlite::params![e.id, e.title, tags, e.body])
                    .unwrap();
                fts.execute(rusqlite::params![
                    tx.last_insert_rowid(),
                    e.title,
                    tags,
                    e.body
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    (conn, start.elapsed())
}

/// Raw Postgres: binary COPY into a table with a generated weighted tsvector and a GIN index.
async fn raw_postgres(client: &Client, table: &str, entries: &[NewEntry]) -> Duration {
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} (id text PRIMARY KEY, title text, tags text, body text,
               tsv tsvector GENERATED ALWAYS AS (
                 setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', tags), 'B') ||
                 setweight(to_tsvector('english', body), 'C')) STORED);
             CREATE INDEX ON {table} USING gin (tsv);"
        ))
        .await
        .expect("raw pg schema");
    let start = Instant::now();
    for chunk in entries.chunks(BATCH) {
        let sink = client
            .copy_in(&format!(
                "COPY {table} (id, title, tags, body) FROM STDIN (FORMAT binary)"
            ))
            .await
            .unwrap();
        let writer =
            BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT]);
        tokio::pin!(writer);
        for e in chunk {
            let tags = e.tags.join(" ");
            writer
                .as_mut()
                .write(&[&e.id, &e.title, &tags, &e.body])
                .await
                .unwrap();
        }
        writer.finish().await.unwrap();
    }
    start.elapsed()
}

fn ingest(c: &mut Criterion) {
    let rt = rt();
    let corpus = Corpus::new(SEED);
    let entries = corpus.entries("bench", INGEST);
    let mut g = c.benchmark_group("ingest_10k");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .throughput(criterion::Throughput::Elements(INGEST as u64));
    g.bench_function("sqlite/text", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    rt.block_on(async { load(&sqlite_store().await, None, &entries, None).await })
                })
                .sum()
        })
    });
    g.bench_function("sqlite/text+vectors", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    rt.block_on(async {
                        load(&sqlite_store().await, None, &entries, Some(&corpus)).await
                    })
                })
                .sum()
        })
    });
    g.bench_function("raw_sqlite/text", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| raw_sqlite(&tempfile::tempdir().unwrap(), &entries).1)
                .sum()
        })
    });
    g.bench_function("postgres/text", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    rt.block_on(async {
                        let s = pg_store(100).await;
                        load(&s, Some(&s), &entries, None).await
                    })
                })
                .sum()
        })
    });
    g.bench_function("postgres/text+vectors", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    rt.block_on(async {
                        let s = pg_store(100).await;
                        load(&s, Some(&s), &entries, Some(&corpus)).await
                    })
                })
                .sum()
        })
    });
    g.bench_function("raw_postgres/text", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    rt.block_on(async {
                        raw_postgres(&raw_pg().await, "raw_ingest", &entries).await
                    })
                })
                .sum()
        })
    });
    g.finish();
}

fn keyword_queries(corpus: &Corpus) -> Vec<(&'static str, String, String)> {
    let w = |r: usize| corpus.word(r).to_string();
    let five: Vec<String> = (1500..1505).map(w).collect();
    vec![
        ("1term", w(1700), w(1700)),
        (
            "2terms_and",
            format!("{} {}", w(300), w(400)),
            format!("{} & {}", w(300), w(400)),
        ),
        (
            "2terms_or",
            format!("{} OR {}", w(1700), w(1800)),
            format!("{} | {}", w(1700), w(1800)),
        ),
        ("5terms_or", five.join(" OR "), five.join(" | ")),
        // A rare word with one in nearly every entry, and three words of which one is
        // common: intersections whose lists differ in length by 100x.
        (
            "2terms_and_skewed",
            format!("{} {}", w(5), w(5000)),
            format!("{} & {}", w(5), w(5000)),
        ),
        (
            "3terms_and",
            format!("{} {} {}", w(300), w(400), w(20)),
            format!("{} & {} & {}", w(300), w(400), w(20)),
        ),
    ]
}

fn queries(c: &mut Criterion) {
    let rt = rt();
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
    let (raw_lite, t) = raw_sqlite(&dir, &entries);
    eprintln!(
        "load {n}: raw_sqlite text {:.1}s ({:.0} entries/s)",
        t.as_secs_f64(),
        per_s(t)
    );

    let pg = rt.block_on(pg_store(100));
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
    let raw = rt.block_on(raw_pg());
    let t = rt.block_on(raw_postgres(&raw, "raw_docs", &entries));
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
    for (name, layer_q, pg_q) in keyword_queries(&corpus) {
        let hits = rt
            .block_on(pg_dyn.search(&layer_q, &Filter::new().limit(MAX_PAGE_SIZE)))
            .unwrap()
            .len();
        let lite_hits = rt
            .block_on(sqlite.search(&layer_q, &Filter::new().limit(MAX_PAGE_SIZE)))
            .unwrap()
            .len();
        eprintln!("{name}: {lite_hits} matches on sqlite, {hits} on postgres");
        g.bench_with_input(BenchmarkId::new("sqlite", name), &layer_q, |b, q| {
            b.to_async(&rt)
                .iter(|| async { sqlite.search(q, &page).await.unwrap() })
        });
        // FTS5 reads the same syntax for these plain-word queries.
        let fts_q = layer_q.clone();
        let mut stmt = raw_lite
            .prepare(
                "SELECT d.id, d.title, d.body, -bm25(docs_fts) FROM docs_fts JOIN docs d ON d.rowid = docs_fts.rowid \
                 WHERE docs_fts MATCH ?1 ORDER BY bm25(docs_fts) LIMIT 10",
            )
            .unwrap();
        g.bench_with_input(BenchmarkId::new("raw_sqlite", name), &fts_q, |b, q| {
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
        g.bench_with_input(BenchmarkId::new("postgres", name), &layer_q, |b, q| {
            b.to_async(&rt)
                .iter(|| async { pg_dyn.search(q, &page).await.unwrap() })
        });
        g.bench_with_input(BenchmarkId::new("raw_postgres", name), &pg_q, |b, q| {
            b.to_async(&rt).iter(|| async {
                raw.query(
                    "SELECT id, title, body, ts_rank_cd(tsv, q) AS r FROM raw_docs, to_tsquery('english', $1) q \
                     WHERE tsv @@ q ORDER BY r DESC LIMIT 10",
                    &[q],
                )
                .await
                .unwrap()
            })
        });
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
        let mut cfg = PgConfig::new(pg_url()).schema(pg.schema());
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
