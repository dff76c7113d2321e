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
    run(&cargo, &["test", "--workspace"])?;
    crate::postgres::test_postgres(&[])?;
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

/// Criterion benchmarks of every backend.
pub fn bench(extra: &[String]) -> Result<(), String> {
    let cargo = cargo();
    let mut args = vec!["bench", "-p", "storage-sqlite", "--bench", "sqlite"];
    if !extra.is_empty() {
        args.push("--");
        args.extend(extra.iter().map(String::as_str).filter(|a| *a != "--"));
    }
    run(&cargo, &args)
}
