//! `cargo xtask demo`: the README's first command. Builds `kb` in release, fetches the
//! embedding model if missing, syncs the sample knowledge base into a fresh SQLite store,
//! embeds it, and walks through search, backlinks and a task claim.

use crate::util::{cargo, project_root, target_dir, Args, Cmd};

pub(crate) fn demo(args: &[String]) -> Result<(), String> {
    Args::parse("demo", args, &[], &[], 0)?;
    cargo()
        .args(["build", "--release", "--quiet", "-p", "kb-cli"])
        .run()?;
    let model = crate::model::fetch_model(&[])?;
    let kb = target_dir().join("release").join("kb");
    let work = target_dir().join("demo");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let db = format!("sqlite:{}", work.join("index.db").display());
    let sample = project_root().join("sample-kb");
    let step = |title: &str, args: &[&str]| -> Result<i32, String> {
        println!("\n\x1b[1m── {title}\x1b[0m\n$ kb {}", args.join(" "));
        Cmd::new(&kb)
            .args(args)
            .dir(&work)
            .env("KB_DATABASE_URL", &db)
            .env("KB_MODEL_DIR", &model)
            .env_remove("DATABASE_URL")
            .env_remove("KB_EMBEDDER")
            .quiet()
            .status()
    };
    let sample_arg = sample.to_string_lossy().into_owned();
    if step(
        "Sync a folder of 65 markdown notes and embed them with all-MiniLM-L6-v2",
        &["sync", &sample_arg, "--kb", "harbor"],
    )? != 0
    {
        return Err("kb sync failed".into());
    }
    step(
        "Sync again: nothing changed, nothing read",
        &["sync", &sample_arg, "--kb", "harbor"],
    )?;
    step(
        "Keyword search (BM25, the query language)",
        &["search", "pg_upgrade", "--mode", "keyword", "--limit", "3"],
    )?;
    step(
        "Semantic search: ranked by meaning, not by shared words",
        &[
            "search",
            "why did we pick a relational database",
            "--mode",
            "semantic",
            "--limit",
            "3",
        ],
    )?;
    step(
        "Hybrid search: both legs fused (reciprocal rank fusion)",
        &[
            "search",
            "latency spikes during vacuum",
            "--any",
            "--limit",
            "3",
            "--explain",
        ],
    )?;
    step(
        "Backlinks of a glossary note",
        &["backlinks", "glossary/write-ahead-log"],
    )?;
    let won = step(
        "An agent claims an open task",
        &[
            "claim",
            "upgrade-postgres-16",
            "--from",
            "open",
            "--to",
            "in-progress",
            "--as",
            "alice",
        ],
    )?;
    let lost = step(
        "A second agent tries the same claim (exit code 1: lost)",
        &[
            "claim",
            "upgrade-postgres-16",
            "--from",
            "open",
            "--to",
            "in-progress",
            "--as",
            "bob",
        ],
    )?;
    if (won, lost) != (0, 1) {
        return Err(format!(
            "the claims ended {won} and {lost}, expected 0 then 1"
        ));
    }
    step("Status", &["status"])?;
    println!(
        "\nThe store is {}. Try it on your own notes:\n  {} sync ~/notes\n  {} search \"what did we decide about backups\"",
        work.join("index.db").display(),
        kb.display(),
        kb.display()
    );
    Ok(())
}
