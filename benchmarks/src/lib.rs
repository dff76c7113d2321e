//! The one home of bench code. The criterion benches (`benches/`) and the examples
//! (`examples/`) share what is here:
//!
//! - [`corpus`]: the seeded corpus, so every backend is measured on the same entries;
//! - [`raw`]: the same work done on each engine without the layer (the baselines);
//! - [`report`]: the whole-system report `cargo xtask bench` writes;
//! - the openers and the protocol-level load below, so a bench says what it measures,
//!   not how to reach a database.
//!
//! `cargo xtask bench` writes the report and `cargo xtask bench backends` runs the
//! side-by-side criterion bench (both provisioning Postgres unless `KB_PG_URL` is
//! set); `cargo bench-sqlite` and `cargo bench-hybrid` are cargo aliases.

pub mod corpus;
pub mod raw;
pub mod report;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use storage_core::prelude::*;
use storage_core::{EmbeddingSpace, EntryKey, NewEntry, NewKnowledgeBase};
use storage_postgres::{PgConfig, PgStore};
use storage_sqlite::{SqliteConfig, SqliteStore};

pub use corpus::{Corpus, DIMENSION};

/// The corpus seed every bench uses.
pub const SEED: u64 = 42;
/// Entries loaded by the ingest benches.
pub const INGEST: usize = 10_000;
/// Entries per `upsert_entries` call: the batch a sync or an import writes.
pub const BATCH: usize = 1_000;

/// Batches a Postgres load keeps in flight (SQLite: one; its writers take turns).
pub const PG_BATCHES_IN_FLIGHT: usize = 3;
/// The page size of the query benches.
pub const K: usize = 10;
/// The Postgres pool of the concurrent-writer benches (the store's default).
pub const PG_POOL: u32 = 16;

/// The size of the query corpus: `KB_BENCH_ENTRIES`, default 100,000.
pub fn query_entries() -> usize {
    std::env::var("KB_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// The total of `iters` timed runs, for criterion's `iter_custom` when each run times
/// only part of its work (a load, not the store's creation).
pub fn total(iters: u64, mut once: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| once()).sum()
}

/// A multi-threaded runtime, as a server would run the store on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The Postgres URL (`KB_PG_URL`, else `DATABASE_URL`), if one is set.
pub fn pg_url() -> Option<String> {
    storage_postgres::test_url()
}

/// [`pg_url`], for benches that cannot run without Postgres.
pub fn require_pg_url() -> String {
    pg_url().expect("no Postgres URL: set KB_PG_URL, or run `cargo xtask bench`")
}

/// A fresh SQLite store in a temporary file.
pub async fn sqlite_store() -> SqliteStore {
    SqliteStore::open(SqliteConfig::temporary())
        .await
        .expect("open a temporary SQLite store")
}

/// A Postgres store in a fresh schema (dropped with the store), with `ef_search` and a
/// statement timeout long enough for bulk loads and index builds.
pub async fn pg_store(url: &str, ef_search: u32) -> PgStore {
    let mut c = PgConfig::new(url);
    c.ef_search = ef_search;
    c.statement_timeout = Duration::from_secs(600);
    PgStore::open_for_test_with(c)
        .await
        .expect("open a Postgres bench store")
}

/// Creates the `bench` KB and its embedding space, then loads `entries` through the
/// protocol in batches of [`BATCH`], with their corpus vectors when `vectors` is given.
/// On Postgres (`pg`) [`PG_BATCHES_IN_FLIGHT`] batches are written at once, and with
/// vectors the HNSW index is dropped for the load and built after it: the path
/// `kb migrate` takes. Returns the time the load took.
pub async fn load(
    store: &dyn Store,
    pg: Option<&PgStore>,
    entries: &[NewEntry],
    vectors: Option<&Corpus>,
) -> Duration {
    let vector = vectors.map(|c| move |i| c.vector(i));
    load_with(
        store,
        pg,
        entries,
        vector.as_ref().map(|f| f as _),
        DIMENSION,
    )
    .await
    .0
}

/// [`load`] with `vector(i)` for entry `i` (any source of vectors of `dimension`).
/// Returns the whole time and, on Postgres with vectors, the HNSW build's part of it.
pub async fn load_with<'a>(
    store: &'a dyn Store,
    pg: Option<&PgStore>,
    entries: &'a [NewEntry],
    vector: Option<&'a dyn Fn(usize) -> Vec<f32>>,
    dimension: usize,
) -> (Duration, Option<Duration>) {
    store
        .create_kb(&NewKnowledgeBase::persistent("bench"))
        .await
        .expect("create the bench KB");
    store
        .ensure_embedding_space(&EmbeddingSpace::new("bench", dimension))
        .await
        .expect("set the embedding space");
    let start = Instant::now();
    let bulk = pg.filter(|_| vector.is_some());
    if let Some(pg) = bulk {
        pg.drop_vector_index().await.expect("drop the HNSW index");
    }
    let batch = |(b, chunk): (usize, &'a [NewEntry])| async move {
        store.upsert_entries(chunk).await.expect("upsert a batch");
        if let Some(vector) = vector {
            let items: Vec<(EntryKey, Vec<f32>)> = chunk
                .iter()
                .enumerate()
                .map(|(i, e)| (e.key(), vector(b * BATCH + i)))
                .collect();
            store
                .put_vectors(&items)
                .await
                .expect("put a batch of vectors");
        }
    };
    // As `kb migrate` loads (kb-app's `OpenStore::batches_in_flight`); an experiment may
    // set another count with KB_LOAD_CONCURRENCY.
    let in_flight = std::env::var("KB_LOAD_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if pg.is_some() {
            PG_BATCHES_IN_FLIGHT
        } else {
            1
        });
    futures_util::stream::iter(entries.chunks(BATCH).enumerate())
        .map(batch)
        .buffer_unordered(in_flight.max(1))
        .collect::<Vec<()>>()
        .await;
    let build = match bulk {
        Some(pg) => {
            let t = Instant::now();
            pg.build_vector_index().await.expect("build the HNSW index");
            Some(t.elapsed())
        }
        None => None,
    };
    (start.elapsed(), build)
}

/// One keyword query of the query benches: a name, the query in the protocol's
/// language (which FTS5 also reads for these plain-word queries), and the same query
/// as a Postgres `tsquery` for the raw baseline.
pub struct KeywordQuery {
    pub name: &'static str,
    pub query: String,
    pub tsquery: String,
}

/// Queries of one to five terms, words picked by Zipf rank so that each matches a
/// realistic share of the corpus.
pub fn keyword_queries(corpus: &Corpus) -> Vec<KeywordQuery> {
    let w = |r: usize| corpus.word(r).to_string();
    let q = |name, query: String, tsquery: String| KeywordQuery {
        name,
        query,
        tsquery,
    };
    let five: Vec<String> = (1500..1505).map(w).collect();
    vec![
        q("1term", w(1700), w(1700)),
        q(
            "2terms_and",
            format!("{} {}", w(300), w(400)),
            format!("{} & {}", w(300), w(400)),
        ),
        q(
            "2terms_or",
            format!("{} OR {}", w(1700), w(1800)),
            format!("{} | {}", w(1700), w(1800)),
        ),
        q("5terms_or", five.join(" OR "), five.join(" | ")),
        // A word in nearly every entry: the longest posting list.
        q("1term_common", w(5), w(5)),
        // A word in nearly every entry with a rare one, and three words of which one is
        // common: intersections whose lists differ in length by 100x.
        q(
            "2terms_and_skewed",
            format!("{} {}", w(5), w(5000)),
            format!("{} & {}", w(5), w(5000)),
        ),
        q(
            "3terms_and",
            format!("{} {} {}", w(300), w(400), w(20)),
            format!("{} & {} & {}", w(300), w(400), w(20)),
        ),
    ]
}

/// A query embedder that returns one fixed vector: hybrid benches measure the layer's
/// work, not a model's.
#[derive(Debug)]
pub struct FixedQuery(pub Vec<f32>);

#[async_trait::async_trait]
impl embed::Embedder for FixedQuery {
    fn model_id(&self) -> &str {
        "bench"
    }
    fn dimension(&self) -> usize {
        DIMENSION
    }
    fn max_input_tokens(&self) -> usize {
        256
    }
    async fn embed(&self, texts: &[String]) -> embed::Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|_| self.0.clone()).collect())
    }
}
