//! `cargo xtask ci` and `cargo xtask bench`.

use crate::util::{cargo, from_caller, pg_url, project_root, target_dir, Args};

/// Everything CI checks, in order of cost: formatting, lints, tests.
pub(crate) fn ci(args: &[String]) -> Result<(), String> {
    Args::parse("ci", args, &[], &[], 0)?;
    cargo().args(["fmt", "--all", "--", "--check"]).run()?;
    cargo()
        .args(["clippy", "--workspace", "--all-targets", "--all-features"])
        .args(["--", "-D", "warnings"])
        .run()?;
    // The model tests skip when the model is absent; in CI they must run. Set for this
    // process so the Postgres pass below inherits them too.
    let model = crate::model::fetch_model(&[])?;
    std::env::set_var("KB_MODEL_DIR", &model);
    std::env::set_var("KB_REQUIRE_MODEL", "1");
    // The MCP client tests run the official Python SDK against `kb mcp` and `kb serve`.
    let python = crate::mcp::python_sdk()?;
    std::env::set_var("KB_MCP_PYTHON", &python);
    std::env::set_var("KB_REQUIRE_MCP", "1");
    // The search page is tested in a real browser.
    let chromium = crate::browser::chromium()?;
    std::env::set_var("KB_CHROMIUM", &chromium);
    std::env::set_var("KB_REQUIRE_BROWSER", "1");
    // The fuzz targets (storage-core/tests/fuzz.rs) get half a minute each instead of 2 s.
    std::env::set_var("KB_FUZZ_SECS", "30");
    cargo().args(["test", "--workspace"]).run()?;
    crate::postgres::test_postgres(&[])?;
    // The report as a smoke test: every bench path runs, on 10k entries, in minutes.
    let out = target_dir().join("bench-report-quick");
    bench(&["--quick".into(), "--out".into(), out.display().to_string()])?;
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

/// `cargo xtask bench [--sizes 10000,100000] [--quick] [--out DIR]`: the whole-system
/// report (`benchmarks::report`), both backends in one release run, on `KB_PG_URL` or on
/// a throwaway Postgres provisioned here, with the model fetched for the real-embedding
/// curve. `--quick` is 10k entries and fewer queries (CI's smoke test).
///
/// `cargo xtask bench backends|hybrid|embed [-- CRITERION ARGS]` runs a criterion bench
/// instead: both backends side by side, the search layer over 10k entries on both, the
/// model's throughput. The SQLite-only bench needs nothing: `cargo bench-sqlite`.
pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    let args = Args::parse("bench", args, &["--sizes", "--out"], &["--quick"], 1)?;
    let which = args.positionals.first().map(String::as_str);
    let (package, bench) = match which {
        None | Some("report") => return report(&args),
        Some("backends") => ("benchmarks", "backends"),
        Some("hybrid") => ("benchmarks", "hybrid"),
        Some("embed") => ("embed", "embed"),
        Some("sqlite") => {
            return Err("the SQLite-only bench needs no set-up: run `cargo bench-sqlite`".into())
        }
        Some(other) => {
            return Err(format!(
                "`cargo xtask bench`: unknown bench {other:?}; the report is the default, \
                 the criterion benches are backends, hybrid and embed"
            ))
        }
    };
    let mut cmd = cargo().args(["bench", "-p", package, "--bench", bench]);
    if !args.passthrough.is_empty() {
        cmd = cmd.arg("--").args(&args.passthrough);
    }
    if bench == "embed" {
        let model = crate::model::fetch_model(&[])?;
        return cmd.env("KB_MODEL_DIR", model).run();
    }
    with_postgres(|url| cmd.env("KB_PG_URL", url).run())
}

/// Runs `f` with `KB_PG_URL`, or with a durable throwaway server that stops after it.
fn with_postgres(f: impl FnOnce(&str) -> Result<(), String>) -> Result<(), String> {
    match pg_url() {
        Some(url) => f(&url),
        None => {
            let server = crate::postgres::TempServer::start(true)?;
            f(&server.url)
        }
    }
}

fn report(args: &Args) -> Result<(), String> {
    let quick = args.has("--quick");
    let sizes = args
        .value("--sizes")
        .unwrap_or(if quick { "10000" } else { "10000,100000" });
    let out = match args.value("--out") {
        Some(dir) => from_caller(dir)?,
        None => target_dir().join("bench-report"),
    };
    cargo()
        .args([
            "build",
            "--release",
            "-p",
            "benchmarks",
            "--bin",
            "bench-report",
        ])
        .run()?;
    let model = crate::model::fetch_model(&[])?;
    let datasets = project_root().join("../shared/datasets");
    let bin = target_dir().join("release/bench-report");
    with_postgres(|url| {
        let mut cmd = crate::util::Cmd::new(&bin)
            .env("KB_PG_URL", url)
            .env("KB_BENCH_SIZES", sizes)
            .env("KB_BENCH_OUT", &out)
            .env("KB_BENCH_CACHE", target_dir().join("bench-cache"))
            .env("KB_MODEL_DIR", &model)
            .env("KB_BENCH_QUICK", if quick { "1" } else { "0" });
        if datasets.join("vaswani").is_dir() {
            cmd = cmd.env("KB_DATASETS", &datasets);
        }
        cmd.run()
    })
}
