//! `cargo xtask eval --collection DIR [--backend sqlite|postgres|both] [--mode …] [--depth N]
//! [--json]`: builds and runs `kb-eval` (crate `eval`) in release mode. With a Postgres
//! backend and no `KB_PG_URL`, provisions a throwaway server the way `test-postgres` does;
//! with a semantic or hybrid mode, fetches the model first (once).

use crate::util::{cargo, from_caller, pg_url, Args};

pub(crate) fn eval(args: &[String]) -> Result<(), String> {
    let args = Args::parse(
        "eval",
        args,
        &["--collection", "--backend", "--mode", "--depth"],
        &["--json"],
        0,
    )?;
    let collection = args
        .value("--collection")
        .ok_or("`cargo xtask eval` needs --collection DIR (e.g. ../shared/datasets/cranfield)")?;
    // kb-eval runs in the project root; the path means what it meant where the user was.
    let collection = from_caller(collection)?;
    let backend = args.value("--backend").unwrap_or("sqlite");
    let mode = args.value("--mode").unwrap_or("all");
    let mut cmd = cargo()
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "eval",
            "--bin",
            "kb-eval",
            "--",
        ])
        .arg("--collection")
        .arg(&collection)
        .args(["--backend", backend, "--mode", mode]);
    if let Some(depth) = args.value("--depth") {
        cmd = cmd.args(["--depth", depth]);
    }
    if args.has("--json") {
        cmd = cmd.arg("--json");
    }
    if mode != "keyword" {
        cmd = cmd.env("KB_MODEL_DIR", crate::model::fetch_model(&[])?);
    }
    let given = pg_url();
    let server = match (&given, backend) {
        (None, "postgres" | "both") => Some(crate::postgres::TempServer::start(false)?),
        _ => None,
    };
    if let Some(url) = given.or_else(|| server.as_ref().map(|s| s.url.clone())) {
        cmd = cmd.env("KB_PG_URL", url);
    }
    // A throwaway server stops when `server` drops, after the run.
    cmd.run()
}
