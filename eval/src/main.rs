//! `kb-eval`: evaluates retrieval on a judged collection. `cargo xtask eval` runs it
//! (provisioning Postgres when asked for and no `KB_PG_URL` is given).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use embed::{EmbedderConfig, HashingEmbedder};
use eval::{evaluate, top10_overlap, Collection, Report};
use search_hybrid::{SearchConfig, SearchMode};
use storage_core::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
    /// Both, one after the other, with their top-10 overlap.
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Keyword,
    Semantic,
    Hybrid,
    All,
}

/// Evaluate keyword, semantic and hybrid retrieval on a BEIR-layout collection.
#[derive(Debug, Parser)]
#[command(name = "kb-eval")]
struct Args {
    /// Directory with corpus.jsonl, queries.jsonl and qrels.tsv.
    #[arg(long)]
    collection: PathBuf,
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    #[arg(long, value_enum, default_value = "all")]
    mode: Mode,
    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Candidates per leg for hybrid fusion.
    #[arg(long, default_value_t = 100)]
    depth: usize,
}

async fn open(backend: Backend) -> Result<Arc<dyn Store>, String> {
    match backend {
        Backend::Sqlite | Backend::Both => Ok(Arc::new(
            storage_sqlite::SqliteStore::open(storage_sqlite::SqliteConfig::temporary())
                .await
                .map_err(|e| e.to_string())?,
        )),
        Backend::Postgres => {
            let url = storage_postgres::test_url().ok_or(
                "set KB_PG_URL to a Postgres with pgvector (or run `cargo xtask eval`, \
                 which provisions one)",
            )?;
            // A fresh random schema, dropped when the store is dropped.
            Ok(Arc::new(
                storage_postgres::PgStore::open_for_test(&url)
                    .await
                    .map_err(|e| e.to_string())?,
            ))
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let collection = Collection::load(&args.collection)?;
    let modes = match args.mode {
        Mode::Keyword => vec![SearchMode::Keyword],
        Mode::Semantic => vec![SearchMode::Semantic],
        Mode::Hybrid => vec![SearchMode::Hybrid],
        Mode::All => vec![
            SearchMode::Keyword,
            SearchMode::Semantic,
            SearchMode::Hybrid,
        ],
    };
    let embedder: Arc<dyn embed::Embedder> = if modes == [SearchMode::Keyword] {
        // Keyword runs never embed; no model needed.
        Arc::new(HashingEmbedder::new(8))
    } else {
        let cfg = EmbedderConfig::from_env().map_err(|e| e.to_string())?;
        tokio::task::spawn_blocking(move || cfg.open())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
    let config = SearchConfig {
        depth: args.depth,
        ..SearchConfig::default()
    };
    let backends = match args.backend {
        Backend::Both => vec![Backend::Sqlite, Backend::Postgres],
        b => vec![b],
    };
    let mut reports: Vec<Report> = Vec::new();
    // With both backends, the second reuses the first one's vectors: the same model on
    // the same text gives the same vectors, and embedding is the slow part.
    let mut first: Option<Arc<dyn Store>> = None;
    for b in backends {
        let name = if b == Backend::Postgres {
            "postgres"
        } else {
            "sqlite"
        };
        let store = open(b).await?;
        let report = evaluate(
            &collection,
            store.clone(),
            name,
            embedder.clone(),
            &modes,
            config,
            first.clone(),
        )
        .await?;
        first.get_or_insert(store);
        if !args.json {
            println!("{}", report.table());
        }
        reports.push(report);
    }
    let overlap = (reports.len() == 2).then(|| top10_overlap(&reports[0], &reports[1]));
    if args.json {
        let value = if reports.len() == 1 {
            serde_json::to_value(&reports[0])
        } else {
            serde_json::to_value(serde_json::json!({
                "collection": collection.name,
                "backends": reports,
                "top10_overlap": overlap,
            }))
        }
        .map_err(|e| e.to_string())?;
        println!("{value}");
    } else if let Some(o) = overlap {
        for (mode, v) in o {
            println!("top-10 overlap sqlite/postgres, {mode}: {v:.3}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kb-eval: {e}");
            ExitCode::FAILURE
        }
    }
}
