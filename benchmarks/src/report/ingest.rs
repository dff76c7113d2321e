//! Ingest at one size: text only and text + vectors on both backends (HNSW built after
//! the load on Postgres), the raw-engine loads, and the size on disk. What it loads
//! with vectors stays loaded: it is the [`Fixture`] the queries run on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use storage_core::prelude::*;
use storage_sqlite::{Durability, SqliteConfig, SqliteStore};

use super::{queries, Fixture, Options, EF_SEARCH};
use crate::{load_with, raw, Corpus};

#[derive(Debug, Clone, Serialize)]
pub struct IngestRow {
    pub size: usize,
    /// `sqlite`, `postgres`, `raw_sqlite` or `raw_postgres`.
    pub backend: &'static str,
    /// `text` or `text+vectors`.
    pub mode: &'static str,
    /// The whole load, the HNSW build included.
    pub seconds: f64,
    pub entries_per_s: f64,
    pub hnsw_build_s: Option<f64>,
    pub disk_mib: Option<f64>,
}

fn row(
    size: usize,
    backend: &'static str,
    mode: &'static str,
    total: Duration,
    build: Option<Duration>,
    disk_mib: Option<f64>,
) -> IngestRow {
    eprintln!(
        "  ingest {size} {backend} {mode}: {:.1} s ({:.0} entries/s)",
        total.as_secs_f64(),
        size as f64 / total.as_secs_f64()
    );
    IngestRow {
        size,
        backend,
        mode,
        seconds: total.as_secs_f64(),
        entries_per_s: size as f64 / total.as_secs_f64(),
        hnsw_build_s: build.map(|d| d.as_secs_f64()),
        disk_mib,
    }
}

pub(super) async fn run(
    options: &Options,
    corpus: Arc<Corpus>,
    size: usize,
) -> (Fixture, Vec<IngestRow>) {
    let entries = corpus.entries("bench", size);
    let mut rows = Vec::new();
    // Text only, on throwaway stores.
    {
        let lite = crate::sqlite_store().await;
        let t = crate::load(&lite, None, &entries, None).await;
        rows.push(row(size, "sqlite", "text", t, None, None));
        let pg = crate::pg_store(&options.pg_url, EF_SEARCH).await;
        let t = crate::load(&pg, Some(&pg), &entries, None).await;
        rows.push(row(size, "postgres", "text", t, None, None));
    }
    // Text and vectors: the stores the queries run on.
    let dir = tempfile::tempdir().expect("a temporary directory");
    // `synchronous = NORMAL`: commits reach the OS but not the disk, the durability of
    // the bench Postgres (`synchronous_commit = off`), so the writers compare like for like.
    let mut config = SqliteConfig::file(dir.path().join("kb.sqlite3"));
    config.durability = Durability::Normal;
    let lite = SqliteStore::open(config)
        .await
        .expect("open the SQLite bench store");
    let vector = |i| corpus.vector(i);
    let (t, _) = load_with(&lite, None, &entries, Some(&vector), crate::DIMENSION).await;
    lite.optimize().await.expect("optimize SQLite");
    let disk = dir_mib(dir.path());
    rows.push(row(size, "sqlite", "text+vectors", t, None, Some(disk)));
    let pg = crate::pg_store(&options.pg_url, EF_SEARCH).await;
    let (t, build) = load_with(&pg, Some(&pg), &entries, Some(&vector), crate::DIMENSION).await;
    pg.optimize().await.expect("optimize Postgres");
    let raw_pg = Arc::new(raw::postgres_client(&options.pg_url).await);
    let disk = schema_mib(&raw_pg, pg.schema()).await;
    rows.push(row(size, "postgres", "text+vectors", t, build, disk));
    // The raw engines, text only.
    let raw_dir = tempfile::tempdir().expect("a temporary directory");
    let (raw_lite, t) = raw::sqlite(&raw_dir, &entries);
    rows.push(row(
        size,
        "raw_sqlite",
        "text",
        t,
        None,
        Some(dir_mib(raw_dir.path())),
    ));
    let raw_table = format!("raw_docs_{size}");
    let t = raw::postgres(&raw_pg, &raw_table, &entries).await;
    raw_pg
        .batch_execute(&format!("VACUUM ANALYZE {raw_table}"))
        .await
        .expect("vacuum the raw table");
    rows.push(row(size, "raw_postgres", "text", t, None, None));
    let sqlite: Arc<dyn Store> = Arc::new(lite);
    let pg_dyn: Arc<dyn Store> = Arc::new(pg.clone());
    let hybrid_vector = corpus.query_vector(7, 1);
    let searchers = BTreeMap::from([
        (
            "sqlite",
            queries::searcher(sqlite.clone(), hybrid_vector.clone()).await,
        ),
        (
            "postgres",
            queries::searcher(pg_dyn.clone(), hybrid_vector).await,
        ),
    ]);
    let nq = if options.quick { 20 } else { 50 };
    let query_vectors = Arc::new(
        (0..nq)
            .map(|i| corpus.query_vector(i * 2, i as u64 + 100))
            .collect(),
    );
    let fixture = Fixture {
        size,
        corpus,
        entries,
        query_vectors,
        sqlite,
        pg: pg_dyn,
        pg_store: pg,
        searchers,
        raw_sqlite: Mutex::new(raw_lite),
        raw_pg,
        raw_table,
        _sqlite_dir: dir,
        _raw_dir: raw_dir,
    };
    (fixture, rows)
}

fn dir_mib(dir: &std::path::Path) -> f64 {
    let bytes: u64 = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    bytes as f64 / (1024.0 * 1024.0)
}

/// Every table of the schema with its indexes and TOAST.
async fn schema_mib(client: &tokio_postgres::Client, schema: &str) -> Option<f64> {
    let row = client
        .query_one(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::float8 FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')",
            &[&schema],
        )
        .await
        .ok()?;
    Some(row.get::<_, f64>(0) / (1024.0 * 1024.0))
}
