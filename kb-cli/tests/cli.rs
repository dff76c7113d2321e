//! End-to-end tests of the real `kb` binary, on SQLite and — with the `postgres-tests`
//! feature and `KB_PG_URL` (`cargo xtask test-postgres`) — on Postgres, each test in
//! its own schema. Embeddings use the lexical `hashing` embedder so the tests need no model.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

/// One store to run a test against.
struct Store {
    backend: &'static str,
    db: String,
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn stores(test: &str) -> Vec<Store> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![Store {
        backend: "sqlite",
        db: format!("sqlite:{}", dir.path().join("index.db").display()),
        schema: None,
        _dir: Some(dir),
    }];
    if cfg!(feature = "postgres-tests") {
        let url = storage_postgres::require_test_url();
        out.push(Store {
            backend: "postgres",
            db: url,
            schema: Some(pg_schema(test)),
            _dir: None,
        });
    }
    out
}

fn pg_schema(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("kbcli_{test}_{}_{nanos}", std::process::id())
}

fn kb(store: &Store, cwd: &Path) -> Command {
    Command::from_std(kb_std(store, cwd))
}

fn kb_std(store: &Store, cwd: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("kb"));
    c.current_dir(cwd)
        .env_remove("KB_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("KB_DEFAULT_KB")
        .env("KB_EMBEDDER", "hashing")
        .env("NO_COLOR", "1")
        .arg("--db")
        .arg(&store.db);
    match &store.schema {
        Some(s) => c.env("KB_PG_SCHEMA", s),
        None => c.env_remove("KB_PG_SCHEMA"),
    };
    c
}

fn run(store: &Store, cwd: &Path, args: &[&str]) -> Output {
    kb(store, cwd).args(args).output().unwrap()
}

fn json(store: &Store, cwd: &Path, args: &[&str]) -> Value {
    let out = run(store, cwd, &[&["--json"], args].concat());
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "[{}] kb {args:?} failed: {}",
        store.backend,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "[{}] kb {args:?}: not JSON ({e}): {}",
            store.backend,
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn spawn(c: &mut std::process::Command) -> std::process::Child {
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn count(v: &Value, key: &str) -> usize {
    v[key].as_array().map_or(0, Vec::len)
}

fn sample_kb() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-kb")
}

#[test]
fn sync_follows_edits_renames_deletes_and_additions() {
    for s in stores("edits") {
        let work = tempfile::tempdir().unwrap();
        let notes = work.path().join("notes");
        write(
            &notes,
            "a.md",
            "---\ntitle: Alpha\ntags: [x/y]\n---\nLinks to [[b]] and [[missing-note]].\n",
        );
        write(&notes, "b.md", "# Beta heading\n\nBeta body.\n");
        write(
            &notes,
            "sub/c.md",
            "---\nid: gamma\n---\nGamma body, see [b](../b.md).\n",
        );
        let r = json(
            &s,
            work.path(),
            &["sync", "notes", "--kb", "n", "--no-embed"],
        );
        assert_eq!(count(&r, "added"), 3, "[{}] {r}", s.backend);
        assert_eq!(count(&r, "unresolved"), 1);
        let b = json(&s, work.path(), &["get", "b", "--kb", "n"]);
        assert_eq!(b["title"], "Beta heading", "title from the first heading");
        let a = json(&s, work.path(), &["get", "a", "--kb", "n"]);
        assert_eq!(a["links"][0]["target"], "b");
        assert_eq!(a["links"][1]["target"], "missing-note");

        // Nothing changed: nothing rewritten.
        let r = json(
            &s,
            work.path(),
            &["sync", "notes", "--kb", "n", "--no-embed"],
        );
        assert_eq!(r["unchanged"], 3, "[{}] {r}", s.backend);

        // Edit a, rename c (same id), delete b, add d.
        write(&notes, "a.md", "---\ntitle: Alpha 2\n---\nNew text.\n");
        std::fs::rename(notes.join("sub/c.md"), notes.join("c-moved.md")).unwrap();
        std::fs::remove_file(notes.join("b.md")).unwrap();
        write(&notes, "d.md", "Delta links [[gamma]].\n");
        let r = json(
            &s,
            work.path(),
            &["sync", "notes", "--kb", "n", "--no-embed"],
        );
        assert_eq!(
            r["updated"],
            serde_json::json!(["a"]),
            "[{}] {r}",
            s.backend
        );
        assert_eq!(r["renamed"][0]["id"], "gamma");
        assert_eq!(r["renamed"][0]["to"], "c-moved.md");
        assert_eq!(r["deleted"], serde_json::json!(["b"]));
        assert_eq!(r["added"], serde_json::json!(["d"]));
        let list = json(&s, work.path(), &["list", "--kb", "n"]);
        let mut ids: Vec<&str> = list["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, ["a", "d", "gamma"]);
        let g = json(&s, work.path(), &["get", "gamma", "--kb", "n"]);
        assert_eq!(g["source_path"], "c-moved.md");
        let d = json(&s, work.path(), &["get", "d", "--kb", "n"]);
        assert_eq!(
            d["links"][0]["target"], "gamma",
            "resolved by frontmatter id"
        );
        let back = json(&s, work.path(), &["backlinks", "gamma", "--kb", "n"]);
        assert_eq!(back["backlinks"][0]["id"], "d");
    }
}

#[test]
fn a_malformed_file_is_reported_and_the_rest_syncs() {
    for s in stores("malformed") {
        let work = tempfile::tempdir().unwrap();
        let notes = work.path();
        write(notes, "good.md", "---\ntitle: Good\n---\nfine\n");
        write(
            notes,
            "bad-yaml.md",
            "---\ntitle: x\ntags: [unclosed\n---\nbody\n",
        );
        write(
            notes,
            "bad-type.md",
            "---\ntitle: x\nimportance: very\n---\nbody\n",
        );
        std::fs::write(notes.join("bad-utf8.md"), b"line one\n\xff\xfe broken\n").unwrap();
        let out = run(&s, notes, &["sync", ".", "--kb", "m", "--no-embed"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "[{}] a failed file makes the exit code 1",
            s.backend
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad-yaml.md:") && err.contains("invalid YAML"),
            "{err}"
        );
        assert!(
            err.contains("bad-type.md:3:") && err.contains("importance"),
            "{err}"
        );
        assert!(
            err.contains("bad-utf8.md:2:") && err.contains("UTF-8"),
            "{err}"
        );
        let list = json(&s, notes, &["list", "--kb", "m"]);
        assert_eq!(list["total"], 1);
        assert_eq!(list["entries"][0]["id"], "good");
    }
}

#[cfg(unix)]
#[test]
fn ignored_hidden_and_looping_files_are_skipped() {
    for s in stores("ignored") {
        let work = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret.md", "outside the folder");
        let notes = work.path().join("notes");
        write(&notes, "keep.md", "kept");
        write(&notes, ".gitignore", "drafts/\n");
        write(&notes, ".kbignore", "private.md\n");
        write(&notes, "drafts/draft.md", "ignored by git");
        write(&notes, "private.md", "ignored by kb");
        write(&notes, ".obsidian/workspace.md", "hidden");
        write(&notes, "sub/inner.md", "inner");
        std::os::unix::fs::symlink(&notes, notes.join("sub/loop")).unwrap();
        std::os::unix::fs::symlink(outside.path(), notes.join("out")).unwrap();
        let r = json(
            &s,
            work.path(),
            &["sync", "notes", "--kb", "i", "--no-embed"],
        );
        let mut ids: Vec<&str> = r["added"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, ["keep", "sub/inner"], "[{}] {r}", s.backend);
    }
}

#[test]
fn export_then_sync_reproduces_every_entry() {
    for s in stores("roundtrip") {
        let work = tempfile::tempdir().unwrap();
        json(
            &s,
            work.path(),
            &[
                "sync",
                sample_kb().to_str().unwrap(),
                "--kb",
                "orig",
                "--no-embed",
            ],
        );
        let out_dir = work.path().join("exported");
        let r = json(
            &s,
            work.path(),
            &["export", out_dir.to_str().unwrap(), "--kb", "orig"],
        );
        assert!(r["written"].as_u64().unwrap() >= 50);
        let back = json(
            &s,
            work.path(),
            &[
                "sync",
                out_dir.to_str().unwrap(),
                "--kb",
                "copy",
                "--no-embed",
            ],
        );
        assert_eq!(count(&back, "failed"), 0, "{back}");
        let entries = |kb: &str| {
            let v = json(
                &s,
                work.path(),
                &["list", "--kb", kb, "--limit", "1000", "--all"],
            );
            let mut rows: Vec<(String, String, Value, Value, Value)> = v["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["id"].as_str().unwrap().to_owned(),
                        e["content_hash"].as_str().unwrap().to_owned(),
                        e["links"].clone(),
                        e["status"].clone(),
                        e["tags"].clone(),
                    )
                })
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            rows
        };
        let (a, b) = (entries("orig"), entries("copy"));
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                x, y,
                "[{}] entry {} differs after export → sync",
                s.backend, x.0
            );
        }
    }
}

#[test]
fn import_reports_a_bad_line_by_number() {
    for s in stores("import") {
        let work = tempfile::tempdir().unwrap();
        let file = work.path().join("docs.jsonl");
        std::fs::write(
            &file,
            "{\"_id\": \"d1\", \"title\": \"One\", \"text\": \"first document\"}\n\
             {\"_id\": 2, \"title\": \"Two\", \"text\": \"second\", \"tags\": [\"t\"]}\n\
             {\"_id\": \"d3\", \"title\": \n\
             {\"_id\": \"d4\", \"text\": \"fourth\", \"colour\": \"red\"}\n\
             {\"_id\": \"d5\", \"text\": \"fifth\"}\n",
        )
        .unwrap();
        let out = run(
            &s,
            work.path(),
            &["import", "docs.jsonl", "--kb", "imp", "--no-embed"],
        );
        assert_eq!(out.status.code(), Some(1), "[{}]", s.backend);
        let err = String::from_utf8_lossy(&out.stdout);
        assert!(err.contains("docs.jsonl:3:"), "{err}");
        assert!(
            err.contains("docs.jsonl:4:") && err.contains("colour"),
            "{err}"
        );
        let list = json(&s, work.path(), &["list", "--kb", "imp"]);
        assert_eq!(list["total"], 3);
        let two = json(&s, work.path(), &["get", "2", "--kb", "imp"]);
        assert_eq!(two["body"], "second");
    }
}

#[test]
fn every_search_mode_finds_the_expected_note() {
    for s in stores("search") {
        let work = tempfile::tempdir().unwrap();
        json(
            &s,
            work.path(),
            &["sync", sample_kb().to_str().unwrap(), "--kb", "sample"],
        );
        for mode in ["keyword", "semantic", "hybrid"] {
            let r = json(
                &s,
                work.path(),
                &[
                    "search",
                    "pg_upgrade postgres",
                    "--mode",
                    mode,
                    "--any",
                    "--limit",
                    "5",
                ],
            );
            assert_eq!(
                r["hits"][0]["id"], "upgrade-postgres-16",
                "[{}] {mode}: {r}",
                s.backend
            );
            assert_eq!(r["hits"][0]["path"], "tasks/upgrade-postgres-16.md");
            let score = r["hits"][0]["score"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&score));
        }
        let re = json(
            &s,
            work.path(),
            &["reembed", "--kb", "sample", "--workers", "2"],
        );
        assert_eq!(re["queued"], re["embedded"], "[{}] {re}", s.backend);
        assert!(re["embedded"].as_u64().unwrap() >= 60);
        let st = json(&s, work.path(), &["status"]);
        assert_eq!(st["queue"]["pending"], 0, "{st}");
        assert_eq!(st["knowledge_bases"][0]["without_vector"], 0, "{st}");
        let filtered = json(
            &s,
            work.path(),
            &[
                "search", "postgres", "--mode", "keyword", "--type", "glossary",
            ],
        );
        assert!(
            filtered["hits"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["type"] == "glossary"),
            "{filtered}"
        );
        let bad = run(
            &s,
            work.path(),
            &["search", "(unclosed", "--mode", "keyword"],
        );
        assert_eq!(bad.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid query at position"));
    }
}

#[test]
fn sixteen_parallel_claims_have_one_winner() {
    for s in stores("claims") {
        let work = tempfile::tempdir().unwrap();
        write(
            work.path(),
            "notes/task.md",
            "---\ntype: task\nstatus: open\n---\nDo it.\n",
        );
        json(
            &s,
            work.path(),
            &["sync", "notes", "--kb", "t", "--no-embed"],
        );
        let children: Vec<_> = (0..16)
            .map(|i| {
                spawn(
                    kb_std(&s, work.path())
                        .args([
                            "claim",
                            "task",
                            "--kb",
                            "t",
                            "--from",
                            "open",
                            "--to",
                            "in-progress",
                            "--as",
                        ])
                        .arg(format!("agent-{i}")),
                )
            })
            .collect();
        let codes: Vec<i32> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap().status.code().unwrap())
            .collect();
        assert_eq!(
            codes.iter().filter(|&&c| c == 0).count(),
            1,
            "[{}] {codes:?}",
            s.backend
        );
        assert_eq!(
            codes.iter().filter(|&&c| c == 1).count(),
            15,
            "[{}] {codes:?}",
            s.backend
        );
        let lost = run(
            &s,
            work.path(),
            &[
                "claim", "task", "--kb", "t", "--from", "open", "--to", "x", "--as", "late",
            ],
        );
        assert!(String::from_utf8_lossy(&lost.stdout).contains("held by agent-"));
    }
}

#[cfg(unix)]
#[test]
fn watch_picks_up_an_edit_and_stops_on_ctrl_c() {
    for s in stores("watch") {
        let work = tempfile::tempdir().unwrap();
        write(work.path(), "notes/one.md", "first");
        let mut child = spawn(kb_std(&s, work.path()).args([
            "sync",
            "notes",
            "--kb",
            "w",
            "--watch",
            "--no-embed",
        ]));
        let deadline = Instant::now() + Duration::from_secs(30);
        let present = |id: &str| {
            run(&s, work.path(), &["get", id, "--kb", "w"])
                .status
                .success()
        };
        while !present("one") {
            assert!(
                Instant::now() < deadline,
                "[{}] the first sync never finished",
                s.backend
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
        write(
            work.path(),
            "notes/two.md",
            "second, written while watching",
        );
        while !present("two") {
            assert!(
                Instant::now() < deadline,
                "[{}] --watch did not pick up the new file",
                s.backend
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let stop = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                assert_eq!(
                    st.code(),
                    Some(0),
                    "[{}] Ctrl-C ends --watch cleanly",
                    s.backend
                );
                break;
            }
            assert!(
                Instant::now() < stop,
                "[{}] --watch did not stop on Ctrl-C",
                s.backend
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn configuration_errors_are_clear_and_exit_2() {
    let work = tempfile::tempdir().unwrap();
    let base = || {
        let mut c = Command::cargo_bin("kb").unwrap();
        c.current_dir(work.path())
            .env_remove("KB_DATABASE_URL")
            .env_remove("DATABASE_URL")
            .env_remove("KB_EMBEDDER");
        c
    };
    std::fs::write(
        work.path().join("kb.toml"),
        "[database]\nurl = \"sqlite:x.db\"\nverbose = true\n",
    )
    .unwrap();
    let out = base().arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kb.toml") && err.contains("verbose"),
        "unknown key: {err}"
    );

    std::fs::write(
        work.path().join("kb.toml"),
        "[postgres]\npool_max_size = \"lots\"\n",
    )
    .unwrap();
    let err = String::from_utf8_lossy(&base().arg("status").output().unwrap().stderr).into_owned();
    assert!(
        err.contains("postgres.pool_max_size") && err.contains("u32"),
        "bad value: {err}"
    );

    std::fs::write(
        work.path().join("kb.toml"),
        "[database]\nurl = \"${KB_TEST_SURELY_UNSET_VAR}\"\n",
    )
    .unwrap();
    let err = String::from_utf8_lossy(&base().arg("status").output().unwrap().stderr).into_owned();
    assert!(
        err.contains("KB_TEST_SURELY_UNSET_VAR") && err.contains("not set"),
        "{err}"
    );
    std::fs::remove_file(work.path().join("kb.toml")).unwrap();

    let out = base()
        .args(["--db", "postgres://kb:hunter2@127.0.0.1:1/kb", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not connect to Postgres at 127.0.0.1:1"),
        "{err}"
    );
    assert!(err.contains("hint:") && !err.contains("hunter2"), "{err}");

    let out = base()
        .args(["--db", "sqlite:nothing-here.db", "search", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kb init"));

    // Semantic search without the model installed names the fix.
    let db = format!("sqlite:{}", work.path().join("m.db").display());
    write(work.path(), "n/a.md", "text");
    base()
        .args(["--db", &db, "sync", "n", "--no-embed"])
        .assert()
        .success();
    let out = base()
        .env("KB_MODEL_DIR", work.path().join("no-model"))
        .args(["--db", &db, "search", "text", "--mode", "semantic"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no embedding model at") && err.contains("fetch-model"),
        "{err}"
    );
    // Keyword search still works without it.
    base()
        .env("KB_MODEL_DIR", work.path().join("no-model"))
        .args(["--db", &db, "search", "text", "--mode", "keyword"])
        .assert()
        .success();
}

#[cfg(feature = "postgres-tests")]
#[test]
fn migrate_sqlite_to_postgres_and_back_verifies_and_searches_alike() {
    let all = stores("migrate");
    let (sq, pg) = (&all[0], &all[1]);
    let work = tempfile::tempdir().unwrap();
    json(
        sq,
        work.path(),
        &["sync", sample_kb().to_str().unwrap(), "--kb", "sample"],
    );
    json(
        sq,
        work.path(),
        &["kb", "create", "scratch", "--ephemeral", "--ttl", "2h"],
    );
    let search = |s: &Store| {
        let r = json(
            s,
            work.path(),
            &[
                "search",
                "postgres backup restore",
                "--mode",
                "hybrid",
                "--any",
                "--kb",
                "sample",
            ],
        );
        r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let before = search(sq);
    let pg_env = |c: &mut Command| {
        c.env("KB_PG_SCHEMA", pg.schema.as_ref().unwrap());
    };
    let mut c = kb(sq, work.path());
    pg_env(&mut c);
    let out = c
        .args([
            "--json", "migrate", "--from", &sq.db, "--to", &pg.db, "--verify",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verify"]["equal"], true, "{v}");
    assert!(v["migrate"]["passages_copied"].as_u64().unwrap() > 0);
    assert_eq!(search(pg), before, "Postgres answers as SQLite did");

    // Again: nothing new to copy.
    let mut c = kb(sq, work.path());
    pg_env(&mut c);
    let out = c
        .args(["--json", "migrate", "--from", &sq.db, "--to", &pg.db])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["migrate"]["entries_copied"], 0, "{v}");
    assert_eq!(v["migrate"]["passages_copied"], 0, "{v}");

    // And back into a fresh SQLite file.
    let back = Store {
        backend: "sqlite",
        db: format!("sqlite:{}", work.path().join("back.db").display()),
        schema: None,
        _dir: None,
    };
    let mut c = kb(&back, work.path());
    pg_env(&mut c);
    let out = c
        .args([
            "--json", "migrate", "--from", &pg.db, "--to", &back.db, "--verify",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verify"]["equal"], true, "{v}");
    assert_eq!(search(&back), before);
}

#[test]
fn put_get_rm_timeline_and_knowledge_bases() {
    for s in stores("entries") {
        let work = tempfile::tempdir().unwrap();
        let created = json(
            &s,
            work.path(),
            &["kb", "create", "mem", "--description", "agent memory"],
        );
        assert_eq!(created["name"], "mem");
        let note = "---\nid: m1\ntitle: Remember this\ntags: [agent/memory]\ndate: 2026-05-01\n---\nThe deploy key lives in Vault. See [[m2]].\n";
        let out = kb(&s, work.path())
            .args(["--json", "put", "-", "--kb", "mem"])
            .write_stdin(note)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "[{}] {}",
            s.backend,
            String::from_utf8_lossy(&out.stderr)
        );
        let got = json(&s, work.path(), &["get", "m1", "--kb", "mem"]);
        assert_eq!(got["title"], "Remember this");
        assert_eq!(got["links"][0]["target"], "m2");
        let tl = json(&s, work.path(), &["timeline", "--kb", "mem"]);
        assert_eq!(tl["entries"][0]["id"], "m1");
        let text = run(&s, work.path(), &["get", "m1", "--kb", "mem"]);
        assert!(String::from_utf8_lossy(&text.stdout).starts_with("---\ntitle: Remember this"));
        // stdin without an id is refused with a clear message.
        let out = kb(&s, work.path())
            .args(["put", "--kb", "mem"])
            .write_stdin("just text")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--id"));
        assert!(run(&s, work.path(), &["rm", "m1", "--kb", "mem"])
            .status
            .success());
        let gone = run(&s, work.path(), &["get", "m1", "--kb", "mem"]);
        assert_eq!(gone.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&gone.stderr).contains("not found"));

        json(
            &s,
            work.path(),
            &["kb", "create", "scratch", "--ephemeral", "--ttl", "1s"],
        );
        let kbs = json(&s, work.path(), &["kb", "list"]);
        assert_eq!(kbs["knowledge_bases"].as_array().unwrap().len(), 2);
        std::thread::sleep(Duration::from_millis(1_500));
        let gc = json(&s, work.path(), &["gc"]);
        assert_eq!(gc["removed"][0]["name"], "scratch", "[{}] {gc}", s.backend);
        assert!(run(&s, work.path(), &["kb", "rm", "mem"]).status.success());
        let kbs = json(&s, work.path(), &["kb", "list"]);
        assert_eq!(kbs["knowledge_bases"].as_array().unwrap().len(), 0);
    }
}

#[test]
fn reembed_reset_moves_a_store_to_another_model() {
    for s in stores("reset") {
        let work = tempfile::tempdir().unwrap();
        write(work.path(), "notes/a.md", "alpha text about backups");
        write(work.path(), "notes/b.md", "beta text about failover");
        json(&s, work.path(), &["sync", "notes", "--kb", "r"]);
        let other = |args: &[&str]| {
            kb(&s, work.path())
                .env("KB_EMBED_DIMENSION", "64")
                .args(args)
                .output()
                .unwrap()
        };
        let out = other(&["search", "backups", "--mode", "semantic"]);
        assert_eq!(out.status.code(), Some(2), "[{}]", s.backend);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("hashing-384") && err.contains("hashing-64"),
            "{err}"
        );
        assert!(err.contains("kb reembed --reset"), "{err}");
        assert_eq!(
            other(&["reembed"]).status.code(),
            Some(2),
            "no reset without --reset"
        );
        let out = other(&["--json", "reembed", "--reset"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["embedded"], 2, "{v}");
        let st: Value = serde_json::from_slice(&other(&["--json", "status"]).stdout).unwrap();
        assert_eq!(st["embedding_space"]["dimension"], 64, "{st}");
        let hits: Value = serde_json::from_slice(
            &other(&["--json", "search", "backups", "--mode", "semantic"]).stdout,
        )
        .unwrap();
        assert_eq!(hits["hits"][0]["id"], "a", "{hits}");
    }
}
