//! `cargo xtask eval --collection DIR --backend sqlite|postgres|both [--mode …] [--json]`:
//! builds and runs `kb-eval` (crate `eval`) in release mode. With a Postgres backend and no
//! `KB_TEST_PG_URL`, provisions a throwaway server the way `test-postgres` does; with a
//! semantic or hybrid mode and no `KB_MODEL_DIR`, fetches the model first.

use std::process::Command;

use crate::util::{cargo, project_root};

pub fn eval(args: &[String]) -> Result<(), String> {
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let backend = value("--backend").unwrap_or("sqlite");
    let mode = value("--mode").unwrap_or("all");
    let mut cmd = Command::new(cargo());
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "eval",
        "--bin",
        "kb-eval",
        "--",
    ])
    .args(args)
    .current_dir(project_root());
    if mode != "keyword" {
        let dir = crate::model::fetch_model(&[])?;
        cmd.env("KB_MODEL_DIR", dir);
    }
    let given = std::env::var("KB_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let _server = if backend != "sqlite" && given.is_none() {
        let server = crate::postgres::TempServer::start(false)?;
        cmd.env("KB_TEST_PG_URL", &server.url);
        Some(server)
    } else {
        None
    };
    let status = cmd
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("the evaluation failed".into())
    }
}
