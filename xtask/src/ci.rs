//! `cargo xtask ci` and `cargo xtask bench`.

use crate::util::{cargo, run};

/// Everything CI checks, in order of cost: formatting, lints, tests.
pub fn ci() -> Result<(), String> {
    let cargo = cargo();
    run(&cargo, &["fmt", "--all", "--", "--check"])?;
    run(
        &cargo,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The model tests skip when the model is absent; in CI they must run.
    let model = crate::model::fetch_model(&[])?;
    std::env::set_var("KB_MODEL_DIR", &model);
    std::env::set_var("KB_REQUIRE_MODEL", "1");
    // The MCP client tests run the official Python SDK against `kb mcp` and `kb serve`.
    let python = crate::mcp::python_sdk()?;
    std::env::set_var("KB_MCP_PYTHON", &python);
    std::env::set_var("KB_REQUIRE_MCP", "1");
    run(&cargo, &["test", "--workspace"])?;
    crate::postgres::test_postgres(&[])?;
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

/// Criterion benchmarks: `cargo xtask bench` runs both backends side by side (provisioning
/// a throwaway Postgres unless `KB_BENCH_PG_URL` is set); `cargo xtask bench hybrid` the
/// search layer over 10k entries on both backends; `cargo xtask bench embed` the local
/// model's throughput; `cargo xtask bench sqlite` the SQLite-only bench. Arguments after `--` go to criterion (e.g. a name filter).
pub fn bench(args: &[String]) -> Result<(), String> {
    let cargo = cargo();
    let (which, extra) = match args.first().map(String::as_str) {
        Some(w @ ("sqlite" | "hybrid" | "embed")) => (w, &args[1..]),
        _ => ("backends", args),
    };
    let mut cmd_args = match which {
        "sqlite" => vec!["bench", "-p", "storage-sqlite", "--bench", "sqlite"],
        "embed" => vec!["bench", "-p", "embed", "--bench", "embed"],
        "hybrid" => vec!["bench", "-p", "benchmarks", "--bench", "hybrid"],
        _ => vec!["bench", "-p", "benchmarks", "--bench", "backends"],
    };
    let extra: Vec<&str> = extra
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--")
        .collect();
    if !extra.is_empty() {
        cmd_args.push("--");
        cmd_args.extend(extra);
    }
    if which == "sqlite" {
        return run(&cargo, &cmd_args);
    }
    if which == "embed" {
        crate::model::fetch_model(&[])?;
        return run(&cargo, &cmd_args);
    }
    let given = std::env::var("KB_BENCH_PG_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let server = match given {
        Some(_) => None,
        None => Some(crate::postgres::TempServer::start(true)?),
    };
    let url = given.unwrap_or_else(|| server.as_ref().expect("started").url.clone());
    eprintln!("$ KB_BENCH_PG_URL=… {cargo} {}", cmd_args.join(" "));
    let status = std::process::Command::new(&cargo)
        .args(&cmd_args)
        .env("KB_BENCH_PG_URL", &url)
        .current_dir(crate::util::project_root())
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("the benchmark failed".into())
    }
}
