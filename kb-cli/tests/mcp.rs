//! `kb mcp` (stdio) and `kb serve`'s `/mcp` endpoint driven by the official MCP Python SDK
//! (`mcp` on PyPI) — a client no one here wrote — through `tests/mcp/flow.py`: tools and
//! their schemas, memories written and found in every search mode, resources, links,
//! a claim raced by two sessions, a scratch KB removed by GC, malformed arguments, and
//! over HTTP the token scopes (a read token lists no write tools; a scoped token sees no
//! other KB).
//!
//! The SDK lives in a virtual environment `cargo xtask ci` creates; these tests find its
//! interpreter in `KB_MCP_PYTHON` and are skipped without it, unless `KB_REQUIRE_MCP` is
//! set (as CI does), when its absence is a failure.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn python() -> Option<String> {
    match std::env::var("KB_MCP_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var_os("KB_REQUIRE_MCP").is_none(),
                "KB_REQUIRE_MCP is set but KB_MCP_PYTHON (a Python with the `mcp` SDK) is not"
            );
            eprintln!("skipped: set KB_MCP_PYTHON to a Python with the `mcp` SDK");
            None
        }
    }
}

/// `(db url, Postgres schema)` per backend; Postgres with the `postgres-tests` feature.
fn stores(dir: &Path, test: &str) -> Vec<(String, Option<String>)> {
    let mut out = vec![(
        format!("sqlite:{}", dir.join(format!("{test}.db")).display()),
        None,
    )];
    if cfg!(feature = "postgres-tests") {
        let url = storage_postgres::require_test_url();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        out.push((
            url,
            Some(format!("kbmcp_{test}_{}_{nanos}", std::process::id())),
        ));
    }
    out
}

fn kb(db: &str, schema: &Option<String>, cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kb"));
    c.current_dir(cwd)
        .env_remove("KB_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("KB_DEFAULT_KB")
        .env_remove("KB_LOG")
        .env("KB_EMBEDDER", "hashing")
        .env("NO_COLOR", "1")
        .arg("--db")
        .arg(db);
    match schema {
        Some(s) => c.env("KB_PG_SCHEMA", s),
        None => c.env_remove("KB_PG_SCHEMA"),
    };
    c
}

fn ok(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn flow(python: &str, db: &str, schema: &Option<String>, cwd: &Path, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/flow.py");
    let mut c = Command::new(python);
    c.current_dir(cwd)
        .arg(script)
        .args(args)
        .arg("--kb-bin")
        .arg(env!("CARGO_BIN_EXE_kb"))
        .arg("--db")
        .arg(db)
        .env("KB_EMBEDDER", "hashing")
        .env_remove("KB_DATABASE_URL")
        .env_remove("KB_DEFAULT_KB");
    match schema {
        Some(s) => c.env("KB_PG_SCHEMA", s),
        None => c.env_remove("KB_PG_SCHEMA"),
    };
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "the MCP client flow failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_agent_remembers_recalls_links_and_claims_over_stdio() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    // One note comes from a synced folder: the agent may read it but not change it.
    let folder = dir.path().join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("handbook.md"),
        "---\ntitle: Team handbook\n---\nHow we work.\n",
    )
    .unwrap();
    for (db, schema) in stores(dir.path(), "stdio") {
        let mut c = kb(&db, &schema, dir.path());
        c.args(["kb", "create", "notes"]);
        ok(c);
        let mut c = kb(&db, &schema, dir.path());
        c.args(["sync", "--kb", "notes", "--no-embed"]).arg(&folder);
        ok(c);
        flow(&py, &db, &schema, dir.path(), &["stdio"]);
    }
}

#[test]
fn the_http_endpoint_keeps_to_each_tokens_scope() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (db, schema) in stores(dir.path(), "http") {
        let cmd = |args: &[&str]| {
            let mut c = kb(&db, &schema, dir.path());
            c.args(args);
            c
        };
        ok(cmd(&["kb", "create", "notes"]));
        ok(cmd(&["kb", "create", "private"]));
        let mut put = cmd(&["put", "--kb", "private", "--id", "secret-plan"]);
        put.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = put.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"---\ntitle: Secret plan\n---\nThe secret launch date.\n")
            .unwrap();
        assert!(child.wait().unwrap().success());
        let token = |extra: &[&str]| -> String {
            let mut args = vec!["--json", "token", "create", "--kb", "notes"];
            args.extend(extra);
            let v: Value = serde_json::from_str(&ok(cmd(&args))).unwrap();
            v["token"].as_str().unwrap().to_owned()
        };
        let read = token(&[]);
        let write = token(&["--write"]);

        let mut server = cmd(&["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (port, drain) = common::listening_port(&mut server);
        let url = format!("http://127.0.0.1:{port}/mcp");
        let result = std::panic::catch_unwind(|| {
            flow(
                &py,
                &db,
                &schema,
                dir.path(),
                &[
                    "http",
                    "--url",
                    &url,
                    "--read-token",
                    &read,
                    "--write-token",
                    &write,
                ],
            )
        });
        let _ = Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status();
        let _ = server.wait();
        let log = drain.join().unwrap().join("\n");
        if let Err(e) = result {
            eprintln!("server log:\n{log}");
            std::panic::resume_unwind(e);
        }
        assert!(!log.contains(&write[3..]), "a token in the log");
    }
}
