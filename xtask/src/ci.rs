//! `cargo xtask ci` and `cargo xtask bench`.

use crate::util::{cargo, pg_url, Args};

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
    cargo().args(["test", "--workspace"]).run()?;
    crate::postgres::test_postgres(&[])?;
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

/// Criterion benchmarks that need more than `cargo bench`: `cargo xtask bench` runs both
/// backends side by side, `cargo xtask bench hybrid` the search layer over 10k entries on
/// both, each on `KB_PG_URL` or on a throwaway Postgres provisioned here; `cargo xtask
/// bench embed` fetches the model and measures its throughput. Arguments after `--` go to
/// criterion (a name filter, `--warm-up-time 1`, …). The SQLite-only bench needs nothing
/// and is the cargo alias `cargo bench-sqlite`.
pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    let args = Args::parse("bench", args, &[], &[], 1)?;
    let which = args.positionals.first().map(String::as_str);
    let (package, bench) = match which {
        None | Some("backends") => ("benchmarks", "backends"),
        Some("hybrid") => ("benchmarks", "hybrid"),
        Some("embed") => ("embed", "embed"),
        Some("sqlite") => {
            return Err("the SQLite-only bench needs no set-up: run `cargo bench-sqlite`".into())
        }
        Some(other) => {
            return Err(format!(
                "`cargo xtask bench`: unknown bench {other:?}; the benches are backends \
                 (the default), hybrid and embed"
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
    let given = pg_url();
    let server = match given {
        Some(_) => None,
        None => Some(crate::postgres::TempServer::start(true)?),
    };
    let url = match (&given, &server) {
        (Some(url), _) => url.clone(),
        (None, Some(server)) => server.url.clone(),
        (None, None) => unreachable!("a server is started when no URL is given"),
    };
    // The server (if started here) stops when `server` drops, after the bench.
    cmd.env("KB_PG_URL", url).run()
}
