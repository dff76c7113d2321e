//! `kb sync` of a generated folder of markdown notes (the bench corpus's entries, with
//! frontmatter and wikilinks) on SQLite and, with `KB_PG_URL`, Postgres: a cold
//! sync, a re-sync with nothing changed, and a re-sync after 1 % of the files changed.
//! Text only (no embedding).
//!
//! `cargo run --release -p benchmarks --example sync_folder` (`NOTES=10000` by default).

use std::path::Path;
use std::time::Instant;

use kb_app::{sync, DatabaseConfig, NoProgress, OpenMode, OpenStore};

fn write_notes(dir: &Path, n: usize) {
    let corpus = benchmarks::Corpus::new(42);
    for (i, e) in corpus.entries("bench", n).into_iter().enumerate() {
        let folder = dir.join(format!("f{:02}", i % 50));
        std::fs::create_dir_all(&folder).unwrap();
        let links: String = (1..4)
            .map(|k| format!(" [[note-{}]]", (i * 7 + k * 13) % n))
            .collect();
        let text = format!(
            "---\ntitle: {:?}\ntags: {:?}\nimportance: {}\n---\n{}\n\nSee{links}.\n",
            e.title, e.tags, e.importance, e.body
        );
        std::fs::write(folder.join(format!("note-{i}.md")), text).unwrap();
    }
}

async fn run(name: &str, db: DatabaseConfig, dir: &Path, n: usize) {
    let store = OpenStore::open(&db, OpenMode::Create).await.unwrap();
    let s = store.store();
    let opts = sync::SyncOptions::default();
    let t = Instant::now();
    let r = sync::sync_folder(s.as_ref(), "bench", dir, &opts, &NoProgress)
        .await
        .unwrap();
    let cold = t.elapsed().as_secs_f64();
    assert_eq!(r.added.len(), n);
    // Wait out the "racily clean" window so the next sync can trust mtimes.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let _ = sync::sync_folder(s.as_ref(), "bench", dir, &opts, &NoProgress)
        .await
        .unwrap();
    let t = Instant::now();
    let r = sync::sync_folder(s.as_ref(), "bench", dir, &opts, &NoProgress)
        .await
        .unwrap();
    let noop = t.elapsed().as_secs_f64();
    assert_eq!(r.unchanged as usize, n);
    for i in (0..n).step_by(100) {
        let p = dir.join(format!("f{:02}/note-{i}.md", i % 50));
        let mut text = std::fs::read_to_string(&p).unwrap();
        text.push_str("\nAn edit.\n");
        std::fs::write(&p, text).unwrap();
    }
    let t = Instant::now();
    let r = sync::sync_folder(s.as_ref(), "bench", dir, &opts, &NoProgress)
        .await
        .unwrap();
    let one_pct = t.elapsed().as_secs_f64();
    assert_eq!(r.updated.len(), n.div_ceil(100));
    println!(
        "{name:<9} cold {cold:6.2} s ({:6.0} files/s) · nothing changed {:6.0} ms · 1% changed {:6.0} ms",
        n as f64 / cold,
        noop * 1e3,
        one_pct * 1e3
    );
    // Undo the edits for the next backend.
    for i in (0..n).step_by(100) {
        let p = dir.join(format!("f{:02}/note-{i}.md", i % 50));
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.trim_end_matches("\nAn edit.\n")).unwrap();
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("NOTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir().unwrap();
    let notes = tmp.path().join("notes");
    write_notes(&notes, n);
    println!("{n} notes");
    let sqlite = DatabaseConfig::Sqlite {
        path: tmp.path().join("sync.db"),
        pool_size: None,
        busy_timeout: None,
        durability: None,
    };
    run("sqlite", sqlite, &notes, n).await;
    if let Some(url) = benchmarks::pg_url() {
        let schema = format!("kb_sync_bench_{}", std::process::id());
        let pg = storage_postgres::PgConfig::new(url).schema(schema);
        run(
            "postgres",
            DatabaseConfig::Postgres(Box::new(pg)),
            &notes,
            n,
        )
        .await;
    }
}
