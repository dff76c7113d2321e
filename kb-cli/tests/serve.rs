//! `kb token` and `kb serve` as a user runs them: tokens are printed once and listed
//! without their secret; the server refuses a public address without tokens, serves on
//! loopback, requires the token once one exists, and exits 0 on SIGTERM.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn kb(db: &str, cwd: &std::path::Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("kb"));
    c.current_dir(cwd)
        .env_remove("KB_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("KB_DEFAULT_KB")
        .env_remove("KB_LOG")
        .env("KB_EMBEDDER", "hashing")
        .env("NO_COLOR", "1")
        .arg("--db")
        .arg(db);
    c
}

/// `(db url, schema)` per backend; Postgres with the `postgres-tests` feature.
fn stores(dir: &std::path::Path) -> Vec<(String, Option<String>)> {
    let mut out = vec![(format!("sqlite:{}", dir.join("index.db").display()), None)];
    if cfg!(feature = "postgres-tests") {
        let url = storage_postgres::require_test_url();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        out.push((
            url,
            Some(format!("kbcli_serve_{}_{nanos}", std::process::id())),
        ));
    }
    out
}

/// One HTTP/1.0 request over a plain socket: `(status, body)`.
fn http(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n{auth}\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn tokens_and_serve_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    for (db, schema) in stores(dir.path()) {
        let cmd = |args: &[&str]| {
            let mut c = kb(&db, dir.path());
            if let Some(s) = &schema {
                c.env("KB_PG_SCHEMA", s);
            } else {
                c.env_remove("KB_PG_SCHEMA");
            }
            c.args(args);
            c
        };
        let out = cmd(&["kb", "create", "notes"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // No token yet: a public address is refused, naming both ways out.
        let out = cmd(&["serve", "--listen", "0.0.0.0:0"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--no-auth") && err.contains("kb token create"),
            "{err}"
        );

        // A token without a KB is refused; with one it is printed once.
        let out = cmd(&["token", "create"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let out = cmd(&[
            "--json", "token", "create", "--kb", "notes", "--write", "--name", "ci",
        ])
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let created: Value = serde_json::from_slice(&out.stdout).unwrap();
        let token = created["token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("kb_") && token.len() == 67, "{token}");
        assert_eq!(created["scope"], "read_write");
        let out = cmd(&["--json", "token", "list"]).output().unwrap();
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(listed.contains(created["id"].as_str().unwrap()));
        assert!(
            !listed.contains(&token[3..]),
            "the list must not show the token"
        );

        // Serve on loopback; the port comes from the start-up log line.
        let mut child = cmd(&["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (port, drain) = common::listening_port(&mut child);

        let (status, body) = http(port, "/readyz", None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(http(port, "/v1/kbs/notes", None).0, 401);
        let (status, body) = http(port, "/v1/kbs/notes", Some(&token));
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"name\":\"notes\""), "{body}");
        assert_eq!(http(port, "/v1/kbs/other", Some(&token)).0, 404);

        let revoke = cmd(&["token", "revoke", created["id"].as_str().unwrap()])
            .output()
            .unwrap();
        assert!(revoke.status.success());
        assert_eq!(http(port, "/v1/kbs/notes", Some(&token)).0, 401, "revoked");

        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "kb serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
        let log = drain.join().unwrap().join("\n");
        assert!(!log.contains(&token[3..]), "a token in the log: {log}");
    }
}
