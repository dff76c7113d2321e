//! The whole-system report ([`benchmarks::report`]). Run it with `cargo xtask bench`,
//! which builds it in release, provisions Postgres and the model and sets:
//!
//! - `KB_PG_URL` (required), `KB_MODEL_DIR` and `KB_DATASETS` (optional: without them
//!   the real-embedding curve and the embedding throughput are skipped);
//! - `KB_BENCH_SIZES` (default `10000,100000`), `KB_BENCH_QUICK=1`, `KB_BENCH_OUT`
//!   (default `target/bench-report`), `KB_BENCH_CACHE` (default `target/bench-cache`).

use std::path::PathBuf;
use std::process::ExitCode;

use benchmarks::report::{run, Options};

fn main() -> ExitCode {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(pg_url) = benchmarks::pg_url() else {
        eprintln!("bench-report: set KB_PG_URL (or run `cargo xtask bench`)");
        return ExitCode::FAILURE;
    };
    let sizes: Result<Vec<usize>, _> = env("KB_BENCH_SIZES")
        .unwrap_or_else(|| "10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect();
    let sizes = match sizes {
        Ok(s) if !s.is_empty() && s.iter().all(|&n| n >= 1_000) => s,
        _ => {
            eprintln!("bench-report: KB_BENCH_SIZES is a comma-separated list of sizes ≥ 1000");
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        sizes,
        quick: env("KB_BENCH_QUICK").is_some_and(|v| v != "0"),
        out: env("KB_BENCH_OUT").map_or("target/bench-report".into(), PathBuf::from),
        pg_url,
        model_dir: env("KB_MODEL_DIR").map(PathBuf::from),
        datasets: env("KB_DATASETS").map(PathBuf::from),
        cache: env("KB_BENCH_CACHE").map_or("target/bench-cache".into(), PathBuf::from),
    };
    let rt = benchmarks::runtime();
    match rt.block_on(run(&options)) {
        Ok(report) => {
            let s = &report.summary;
            eprintln!(
                "bench report written to {}: at {} entries ingest {:.0} vs {:.0} entries/s, \
                 32 writers {:.0} vs {:.0} entries/s (SQLite vs Postgres)",
                options.out.display(),
                s.size,
                s.ingest_sqlite_per_s,
                s.ingest_postgres_per_s,
                s.writes32_sqlite_per_s,
                s.writes32_postgres_per_s
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-report: {e}");
            ExitCode::FAILURE
        }
    }
}
