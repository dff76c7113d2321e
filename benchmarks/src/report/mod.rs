//! `cargo xtask bench`: the whole-system report. Per corpus size, SQLite and Postgres
//! in the same run, interleaved: ingest, every query kind with 1 and 8 clients beside
//! the raw-engine baselines, HNSW recall over `ef_search` (synthetic and real
//! embeddings), the SQLite process's memory during semantic search; then concurrent
//! writers, Postgres pool sizes, and the embedding worker's throughput. Writes
//! `report.json`, `report.md` and plots (see [`output`] and [`plots`]).

mod embedding;
mod ingest;
mod measure;
mod output;
mod plots;
mod queries;
mod recall;
mod writers;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use search_hybrid::Searcher;
use serde::Serialize;
use storage_core::prelude::*;
use storage_core::{Filter, NewEntry};
use storage_postgres::{PgConfig, PgStore};

use crate::Corpus;
pub use embedding::EmbeddingRow;
pub use ingest::IngestRow;
pub use measure::Latency;
pub use queries::QueryRow;
pub use recall::RecallRow;
pub use writers::WriterRow;

/// The `ef_search` the query table's Postgres store uses (the store's default).
pub const EF_SEARCH: u32 = 100;

/// What to run, from `cargo xtask bench`'s flags.
#[derive(Debug, Clone)]
pub struct Options {
    pub sizes: Vec<usize>,
    /// Fewer queries, shorter writer rounds, no real-embedding curve: a smoke test.
    pub quick: bool,
    pub out: PathBuf,
    pub pg_url: String,
    /// The MiniLM model; without it the real-embedding curve and the embedding
    /// throughput are skipped (and the report says so).
    pub model_dir: Option<PathBuf>,
    /// The judged collections (`../shared/datasets`).
    pub datasets: Option<PathBuf>,
    /// Where real embeddings are cached between runs.
    pub cache: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub generated_unix_s: u64,
    pub quick: bool,
    pub machine: BTreeMap<&'static str, String>,
    pub versions: BTreeMap<&'static str, String>,
    pub sizes: Vec<usize>,
    pub ingest: Vec<IngestRow>,
    pub queries: Vec<QueryRow>,
    pub recall: Vec<RecallRow>,
    pub memory: Vec<MemoryRow>,
    pub writers: Vec<WriterRow>,
    pub pool: Vec<WriterRow>,
    pub embedding: Vec<EmbeddingRow>,
    /// What was skipped and why.
    pub notes: Vec<String>,
    pub summary: Summary,
}

/// The SQLite process's memory around exact semantic search.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryRow {
    pub size: usize,
    pub rss_before_mib: f64,
    pub peak_rss_mib: f64,
    /// The vectors' own size: `size` × 384 × 4 bytes.
    pub vectors_mib: f64,
}

/// The figures the targets name, at the largest size.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub size: usize,
    /// Text and vectors in batches of 1,000, HNSW built after the load (Postgres).
    pub ingest_sqlite_per_s: f64,
    pub ingest_postgres_per_s: f64,
    /// Single-entry writes with 32 writers and 8 readers.
    pub writes32_sqlite_per_s: f64,
    pub writes32_postgres_per_s: f64,
    /// backend → keyword case → p50 ms (1 client).
    pub keyword_p50_ms: BTreeMap<String, BTreeMap<String, f64>>,
    /// Recall@10 on real embeddings at the largest `ef_search` whose p50 is at most
    /// 3 ms (null when no real curve ran or none was that fast).
    pub pg_recall10_real_at_3ms: Option<f64>,
}

/// One size's stores and what their queries need.
pub(crate) struct Fixture {
    pub size: usize,
    pub corpus: Arc<Corpus>,
    pub entries: Vec<NewEntry>,
    pub query_vectors: Arc<Vec<Vec<f32>>>,
    pub sqlite: Arc<dyn Store>,
    pub pg: Arc<dyn Store>,
    pub pg_store: PgStore,
    pub searchers: BTreeMap<&'static str, Arc<Searcher>>,
    pub raw_sqlite: Mutex<rusqlite::Connection>,
    pub raw_pg: Arc<tokio_postgres::Client>,
    pub raw_table: String,
    /// The SQLite database file (its size is the disk figure).
    pub _sqlite_dir: tempfile::TempDir,
    /// The raw FTS5 database's directory (after `raw_sqlite`, so it outlives it).
    pub _raw_dir: tempfile::TempDir,
}

impl Fixture {
    /// Semantic cases: unfiltered, a tag (~1 % of entries), importance ≥ 7 (~30 %).
    pub(crate) fn semantic_filters(&self) -> Vec<(&'static str, Option<Filter>)> {
        vec![
            ("unfiltered", None),
            (
                "tag_1pct",
                Some(Filter::new().tag(self.entries[0].tags[0].clone())),
            ),
            ("importance_30pct", Some(Filter::new().min_importance(7))),
        ]
    }
    /// List cases: a page of a tag, and a page of important entries newest first.
    pub(crate) fn list_filters(&self) -> Vec<(&'static str, Filter)> {
        vec![
            (
                "tag",
                Filter::new()
                    .tag(self.entries[0].tags[0].clone())
                    .limit(crate::K),
            ),
            (
                "importance_30pct",
                Filter::new().min_importance(7).limit(crate::K),
            ),
        ]
    }
    pub(crate) fn hybrid_query(&self) -> String {
        format!("{} OR {}", self.corpus.word(1700), self.corpus.word(1800))
    }
    /// The corpus vectors as one contiguous matrix (the raw scan's input).
    pub(crate) fn matrix(&self) -> Vec<f32> {
        (0..self.size).flat_map(|i| self.corpus.vector(i)).collect()
    }
}

/// Runs everything `options` asks for and writes the report.
pub async fn run(options: &Options) -> Result<Report, String> {
    let (warmup, runs) = if options.quick { (10, 60) } else { (30, 300) };
    let mut report = Report {
        generated_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        quick: options.quick,
        machine: machine(),
        versions: BTreeMap::new(),
        sizes: options.sizes.clone(),
        ingest: Vec::new(),
        queries: Vec::new(),
        recall: Vec::new(),
        memory: Vec::new(),
        writers: Vec::new(),
        pool: Vec::new(),
        embedding: Vec::new(),
        notes: Vec::new(),
        summary: Summary::default(),
    };
    let corpus = Arc::new(Corpus::new(crate::SEED));
    let mut first: Option<Fixture> = None;
    for &size in &options.sizes {
        eprintln!("bench report: {size} entries");
        let (fx, rows) = ingest::run(options, corpus.clone(), size).await;
        report.ingest.extend(rows);
        eprintln!("bench report: queries at {size}");
        report.queries.extend(queries::run(&fx, warmup, runs).await);
        report.recall.extend(
            recall::curve(
                "synthetic",
                &format!("synthetic_{size}"),
                size,
                &fx.sqlite,
                &fx.pg_store,
                &options.pg_url,
                &fx.query_vectors,
            )
            .await,
        );
        report.memory.push(memory(&fx).await);
        let table = fx.raw_table.clone();
        let raw_pg = fx.raw_pg.clone();
        if first.is_none() {
            first = Some(fx);
        } else {
            drop(fx);
            drop_raw(&raw_pg, &table).await;
        }
    }
    if let Some(fx) = first {
        writer_tables(options, &fx, &mut report).await;
        let (raw_pg, table) = (fx.raw_pg.clone(), fx.raw_table.clone());
        drop(fx);
        drop_raw(&raw_pg, &table).await;
    }
    real_curve(options, &mut report).await;
    match &options.model_dir {
        Some(dir) => {
            let (short, window) = if options.quick { (64, 16) } else { (512, 128) };
            match embedding::run(dir, short, window).await {
                Ok(rows) => report.embedding = rows,
                Err(e) => report
                    .notes
                    .push(format!("embedding throughput skipped: {e}")),
            }
        }
        None => report
            .notes
            .push("embedding throughput skipped: no model (KB_MODEL_DIR)".into()),
    }
    // After the first store's open, which creates the vector extension.
    report.versions = versions(&options.pg_url).await;
    report.summary = summary(&report);
    std::fs::create_dir_all(&options.out).map_err(|e| format!("{}: {e}", options.out.display()))?;
    let notes = plots::write(&report, &options.out);
    report.notes.extend(notes);
    output::write(&report, &options.out)?;
    Ok(report)
}

async fn writer_tables(options: &Options, fx: &Fixture, report: &mut Report) {
    let secs = if options.quick { 2.0 } else { 5.0 };
    let counts: &[usize] = if options.quick {
        &[1, 8, 32]
    } else {
        &[1, 8, 32, 64]
    };
    eprintln!("bench report: concurrent writers on the {} store", fx.size);
    let mut round = 0;
    for batch in [1, 100] {
        for &w in counts {
            for (name, store, pool) in [
                ("sqlite", &fx.sqlite, 8),
                ("postgres", &fx.pg, crate::PG_POOL),
            ] {
                round += 1;
                report
                    .writers
                    .push(writers::run(name, store.clone(), pool, w, batch, secs, round).await);
            }
        }
    }
    for pool in [8u32, 16, 32] {
        let mut config = PgConfig::new(&options.pg_url).schema(fx.pg_store.schema());
        config.pool_max_size = pool;
        config.ef_search = EF_SEARCH;
        let store: Arc<dyn Store> = Arc::new(
            PgStore::open(config)
                .await
                .expect("reopen the bench schema"),
        );
        round += 1;
        report
            .pool
            .push(writers::run("postgres", store, pool, 32, 1, secs, round).await);
    }
}

async fn real_curve(options: &Options, report: &mut Report) {
    let (Some(model), Some(datasets)) = (&options.model_dir, &options.datasets) else {
        report
            .notes
            .push("real-embedding recall skipped: needs the model and ../shared/datasets".into());
        return;
    };
    if options.quick {
        report
            .notes
            .push("real-embedding recall skipped in --quick".into());
        return;
    }
    eprintln!("bench report: real embeddings");
    let real = match recall::real_corpus(datasets, "vaswani", model, &options.cache).await {
        Ok(r) => r,
        Err(e) => {
            report
                .notes
                .push(format!("real-embedding recall skipped: {e}"));
            return;
        }
    };
    let sqlite: Arc<dyn Store> = Arc::new(crate::sqlite_store().await);
    let pg = crate::pg_store(&options.pg_url, EF_SEARCH).await;
    let vector = |i: usize| real.vectors[i].clone();
    let dimension = real.vectors[0].len();
    crate::load_with(
        sqlite.as_ref(),
        None,
        &real.entries,
        Some(&vector),
        dimension,
    )
    .await;
    crate::load_with(&pg, Some(&pg), &real.entries, Some(&vector), dimension).await;
    report.recall.extend(
        recall::curve(
            "real",
            &real.name,
            real.entries.len(),
            &sqlite,
            &pg,
            &options.pg_url,
            &real.queries,
        )
        .await,
    );
}

async fn drop_raw(client: &tokio_postgres::Client, table: &str) {
    if storage_postgres::validate_identifier("bench table", table).is_ok() {
        let _ = client
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await;
    }
}

async fn memory(fx: &Fixture) -> MemoryRow {
    let (before, _) = measure::rss_mib();
    measure::reset_peak_rss();
    for q in fx.query_vectors.iter() {
        fx.sqlite
            .semantic_search(&storage_core::SemanticQuery::new(q.clone(), crate::K))
            .await
            .expect("semantic search");
    }
    let (_, peak) = measure::rss_mib();
    MemoryRow {
        size: fx.size,
        rss_before_mib: before,
        peak_rss_mib: peak,
        vectors_mib: (fx.size * crate::DIMENSION * 4) as f64 / (1024.0 * 1024.0),
    }
}

fn summary(r: &Report) -> Summary {
    let size = r.sizes.iter().copied().max().unwrap_or(0);
    let ingest = |backend: &str| {
        r.ingest
            .iter()
            .find(|i| i.size == size && i.backend == backend && i.mode == "text+vectors")
            .map_or(f64::NAN, |i| i.entries_per_s)
    };
    let writes = |backend: &str| {
        r.writers
            .iter()
            .find(|w| w.backend == backend && w.writers == 32 && w.batch == 1)
            .map_or(f64::NAN, |w| w.entries_per_s)
    };
    let mut keyword: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for q in r
        .queries
        .iter()
        .filter(|q| q.size == size && q.kind == "keyword" && q.clients == 1)
    {
        keyword
            .entry(q.backend.to_string())
            .or_default()
            .insert(q.case.clone(), q.latency.p50_ms);
    }
    let real = r
        .recall
        .iter()
        .filter(|x| x.corpus == "real" && x.backend == "postgres" && x.p50_ms <= 3.0)
        .max_by_key(|x| x.ef_search)
        .map(|x| x.recall10);
    Summary {
        size,
        ingest_sqlite_per_s: ingest("sqlite"),
        ingest_postgres_per_s: ingest("postgres"),
        writes32_sqlite_per_s: writes("sqlite"),
        writes32_postgres_per_s: writes("postgres"),
        keyword_p50_ms: keyword,
        pg_recall10_real_at_3ms: real,
    }
}

fn machine() -> BTreeMap<&'static str, String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(String::new(), |kb| format!("{:.1}", kb / 1024.0 / 1024.0));
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    BTreeMap::from([
        ("os", os),
        ("cpu", model),
        (
            "cores",
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .to_string(),
        ),
        ("memory_gib", mem),
    ])
}

async fn versions(url: &str) -> BTreeMap<&'static str, String> {
    let client = crate::raw::postgres_client(url).await;
    let one = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query_opt(sql, &[])
                .await
                .ok()
                .flatten()
                .and_then(|r| r.try_get::<_, String>(0).ok())
                .unwrap_or_default()
        }
    };
    BTreeMap::from([
        ("kb", env!("CARGO_PKG_VERSION").to_string()),
        ("sqlite", rusqlite::version().to_string()),
        ("postgres", one("SHOW server_version").await),
        (
            "pgvector",
            one("SELECT extversion FROM pg_extension WHERE extname = 'vector'").await,
        ),
    ])
}
