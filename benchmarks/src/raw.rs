//! The baselines: the same work done straight on each engine, with no layer, the way
//! a careful hand-written program would do it. A bench reports the layer beside these
//! so its cost, and the engines' own differences, are visible.

use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use storage_core::NewEntry;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

use crate::BATCH;

/// The top-10 FTS5 query over [`sqlite`]'s tables, ranked by FTS5's own BM25.
pub const SQLITE_SEARCH: &str = "SELECT d.id, d.title, d.body, -bm25(docs_fts) \
     FROM docs_fts JOIN docs d ON d.rowid = docs_fts.rowid \
     WHERE docs_fts MATCH ?1 ORDER BY bm25(docs_fts) LIMIT 10";

/// Loads `entries` into a new SQLite file in `dir`: WAL, one transaction per batch,
/// prepared inserts, an external-content FTS5 table with the layer's tokenizer.
pub fn sqlite(dir: &tempfile::TempDir, entries: &[NewEntry]) -> (Connection, Duration) {
    let conn = Connection::open(dir.path().join("raw.sqlite3")).expect("open raw SQLite");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE docs (rowid INTEGER PRIMARY KEY, id TEXT UNIQUE, title TEXT, tags TEXT, body TEXT);
         CREATE VIRTUAL TABLE docs_fts USING fts5(title, tags, body, content = 'docs',
             content_rowid = 'rowid', tokenize = 'porter unicode61 remove_diacritics 2');",
    )
    .expect("raw SQLite schema");
    let start = Instant::now();
    for chunk in entries.chunks(BATCH) {
        let tx = conn.unchecked_transaction().expect("begin");
        {
            let mut ins = tx
                .prepare_cached("INSERT INTO docs (id, title, tags, body) VALUES (?1, ?2, ?3, ?4)")
                .expect("prepare");
            let mut fts = tx
                .prepare_cached(
                    "INSERT INTO docs_fts (rowid, title, tags, body) VALUES (?1, ?2, ?3, ?4)",
                )
                .expect("prepare");
            for e in chunk {
                let tags = e.tags.join(" ");
                ins.execute(params![e.id, e.title, tags, e.body])
                    .expect("insert");
                fts.execute(params![tx.last_insert_rowid(), e.title, tags, e.body])
                    .expect("index");
            }
        }
        tx.commit().expect("commit");
    }
    (conn, start.elapsed())
}

/// A plain connection for the Postgres baselines.
pub async fn postgres_client(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to Postgres");
    tokio::spawn(conn);
    client
}

/// The top-10 query over a [`postgres`] table (`{table}` is replaced), ranked by
/// `ts_rank_cd`.
pub fn postgres_search(table: &str) -> String {
    format!(
        "SELECT id, title, body, ts_rank_cd(tsv, q) AS r FROM {}, to_tsquery('english', $1) q \
         WHERE tsv @@ q ORDER BY r DESC LIMIT 10",
        checked(table)
    )
}

/// (Re)creates `table` with a generated weighted `tsvector` and a GIN index, and
/// loads `entries` with one binary COPY per batch.
pub async fn postgres(client: &Client, table: &str, entries: &[NewEntry]) -> Duration {
    let table = checked(table);
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
        .expect("raw Postgres schema");
    let start = Instant::now();
    for chunk in entries.chunks(BATCH) {
        let sink = client
            .copy_in(&format!(
                "COPY {table} (id, title, tags, body) FROM STDIN (FORMAT binary)"
            ))
            .await
            .expect("start COPY");
        let writer =
            BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT]);
        tokio::pin!(writer);
        for e in chunk {
            let tags = e.tags.join(" ");
            writer
                .as_mut()
                .write(&[&e.id, &e.title, &tags, &e.body])
                .await
                .expect("COPY a row");
        }
        writer.finish().await.expect("finish COPY");
    }
    start.elapsed()
}

/// Table names are the benches' own constants; checked so a typo cannot become SQL.
fn checked(table: &str) -> &str {
    storage_postgres::validate_identifier("bench table", table).expect("a plain table name");
    table
}

/// Brute-force cosine top-k over a contiguous normalised matrix, single-threaded, with
/// the same 8-lane dot product the SQLite layer uses (the fastest plain loop, not a
/// strawman).
pub fn scan(matrix: &[f32], q: &[f32], k: usize) -> Vec<(f32, usize)> {
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
