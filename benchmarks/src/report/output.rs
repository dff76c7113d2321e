//! `report.json` (every figure) and `report.md` (the tables a reader compares).

use std::fmt::Write as _;
use std::path::Path;

use super::{QueryRow, Report, WriterRow};

pub(super) fn write(report: &Report, out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    let md = markdown(report);
    for (name, text) in [("report.json", json), ("report.md", md)] {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn ms(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "–".into()
    } else {
        format!("{:.2}", a / b)
    }
}

fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let v = &r.versions;
    let _ = writeln!(
        s,
        "# kb bench report{}\n\n{} · {} · {} cores · {} GiB · SQLite {} · PostgreSQL {} · pgvector {} · kb {}\n",
        if r.quick { " (--quick)" } else { "" },
        m.get("os").map_or("", String::as_str),
        m.get("cpu").map_or("", String::as_str),
        m.get("cores").map_or("", String::as_str),
        m.get("memory_gib").map_or("", String::as_str),
        v.get("sqlite").map_or("", String::as_str),
        v.get("postgres").map_or("", String::as_str),
        v.get("pgvector").map_or("", String::as_str),
        v.get("kb").map_or("", String::as_str),
    );
    s.push_str(
        "Both backends ran in the same process, interleaved, on the seeded corpus \
         (`benchmarks::Corpus`). Ratios are Postgres over SQLite unless a column says \
         otherwise; compare ratios, not absolute times, between machines. Both backends \
         commit to the OS, not to the disk (SQLite `synchronous = NORMAL`, Postgres \
         `synchronous_commit = off`).\n\n",
    );
    summary(&mut s, r);
    ingest(&mut s, r);
    for &size in &r.sizes {
        for clients in [1, 8] {
            queries(&mut s, r, size, clients);
        }
    }
    recall(&mut s, r);
    memory(&mut s, r);
    writers(
        &mut s,
        "Concurrent writers (8 readers at 25 searches/s each, the same read load on both)",
        &r.writers,
        true,
    );
    writers(
        &mut s,
        "Postgres pool size (32 single-entry writers, 8 readers at 25 searches/s each)",
        &r.pool,
        false,
    );
    embedding(&mut s, r);
    if !r.notes.is_empty() {
        s.push_str("## Notes\n\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
        s.push('\n');
    }
    s
}

fn summary(s: &mut String, r: &Report) {
    let x = &r.summary;
    let _ = writeln!(s, "## Summary at {} entries\n", x.size);
    s.push_str(
        "| figure | SQLite | Postgres | Postgres / SQLite | target |\n|---|---|---|---|---|\n",
    );
    let _ = writeln!(
        s,
        "| ingest, text + vectors (entries/s) | {:.0} | {:.0} | {} | ≥ 0.77 |",
        x.ingest_sqlite_per_s,
        x.ingest_postgres_per_s,
        ratio(x.ingest_postgres_per_s, x.ingest_sqlite_per_s)
    );
    let _ = writeln!(
        s,
        "| 32 single-entry writers (entries/s) | {:.0} | {:.0} | {} | ≥ 3 |",
        x.writes32_sqlite_per_s,
        x.writes32_postgres_per_s,
        ratio(x.writes32_postgres_per_s, x.writes32_sqlite_per_s)
    );
    if let (Some(a), Some(b)) = (
        x.keyword_p50_ms.get("sqlite"),
        x.keyword_p50_ms.get("postgres"),
    ) {
        for (case, la) in a {
            let lb = b.get(case).copied().unwrap_or(f64::NAN);
            let _ = writeln!(
                s,
                "| keyword `{case}` p50 (ms) | {} | {} | {} | ≤ 1 |",
                ms(*la),
                ms(lb),
                ratio(lb, *la)
            );
        }
    }
    let _ = writeln!(
        s,
        "| HNSW recall@10 on real embeddings at p50 ≤ 3 ms | exact | {} | | ≥ 0.95 |\n",
        x.pg_recall10_real_at_3ms
            .map_or("–".into(), |v| format!("{v:.3}"))
    );
}

fn ingest(s: &mut String, r: &Report) {
    s.push_str("## Ingest (batches of 1,000)\n\n| entries | mode | SQLite s | SQLite /s | Postgres s | Postgres /s | Postgres / SQLite | HNSW build s | disk MiB SQLite / Postgres | raw SQLite /s | raw Postgres /s |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for &size in &r.sizes {
        for mode in ["text", "text+vectors"] {
            let find = |b: &str, m: &str| {
                r.ingest
                    .iter()
                    .find(|i| i.size == size && i.backend == b && i.mode == m)
            };
            let (Some(a), Some(b)) = (find("sqlite", mode), find("postgres", mode)) else {
                continue;
            };
            let raw = |n: &str| {
                find(n, "text").map_or("–".into(), |i| format!("{:.0}", i.entries_per_s))
            };
            let disk =
                |i: &super::IngestRow| i.disk_mib.map_or("–".into(), |d| format!("{d:.0}"));
            let _ =
                writeln!(
                s,
                "| {size} | {mode} | {:.1} | {:.0} | {:.1} | {:.0} | {} | {} | {} / {} | {} | {} |",
                a.seconds,
                a.entries_per_s,
                b.seconds,
                b.entries_per_s,
                ratio(b.entries_per_s, a.entries_per_s),
                b.hnsw_build_s.map_or("–".into(), |d| format!("{d:.1}")),
                disk(a),
                disk(b),
                if mode == "text" { raw("raw_sqlite") } else { "".into() },
                if mode == "text" { raw("raw_postgres") } else { "".into() },
            );
        }
    }
    s.push('\n');
}

fn queries(s: &mut String, r: &Report, size: usize, clients: usize) {
    let rows: Vec<&QueryRow> = r
        .queries
        .iter()
        .filter(|q| q.size == size && q.clients == clients)
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "## Queries at {size} entries, {clients} client{} ({} runs each)\n",
        if clients == 1 { "" } else { "s" },
        rows[0].latency.runs
    );
    s.push_str("| query | SQLite p50 / p95 / p99 ms | SQLite q/s | Postgres p50 / p95 / p99 ms | Postgres q/s | Postgres / SQLite p50 | raw SQLite p50 | raw Postgres p50 | hits |\n|---|---|---|---|---|---|---|---|---|\n");
    let find = |kind: &str, case: &str, backend: &str| {
        r.queries.iter().find(|q| {
            q.size == size
                && q.kind == kind
                && q.case == case
                && q.backend == backend
                && q.clients
                    == if backend.starts_with("raw") {
                        1
                    } else {
                        clients
                    }
        })
    };
    for q in rows.iter().filter(|q| q.backend == "sqlite") {
        let Some(p) = find(q.kind, &q.case, "postgres") else {
            continue;
        };
        let raw = |b: &str| {
            if clients != 1 {
                return "".into();
            }
            let b = if q.kind == "semantic" && b == "raw_sqlite" {
                "raw_scan"
            } else {
                b
            };
            find(q.kind, &q.case, b).map_or("".into(), |x| ms(x.latency.p50_ms))
        };
        let l = |x: &QueryRow| {
            format!(
                "{} / {} / {}",
                ms(x.latency.p50_ms),
                ms(x.latency.p95_ms),
                ms(x.latency.p99_ms)
            )
        };
        let _ = writeln!(
            s,
            "| {} {} | {} | {:.0} | {} | {:.0} | {} | {} | {} | {} / {} |",
            q.kind,
            q.case,
            l(q),
            q.latency.qps,
            l(p),
            p.latency.qps,
            ratio(p.latency.p50_ms, q.latency.p50_ms),
            raw("raw_sqlite"),
            raw("raw_postgres"),
            q.hits,
            p.hits
        );
    }
    s.push_str("\nraw SQLite is FTS5 with the same tokenizer (keyword) or an in-memory scan of the same vectors on one core (semantic); raw Postgres is the same SQL without the layer (`ts_rank_cd` over a GIN index; pgvector HNSW at the store's `ef_search`).\n\n");
}

fn recall(s: &mut String, r: &Report) {
    if r.recall.is_empty() {
        return;
    }
    s.push_str("## HNSW recall@10 against exact search\n\n| corpus | vectors | backend | ef_search | recall@10 | p50 ms |\n|---|---|---|---|---|---|\n");
    for x in &r.recall {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.3} | {} |",
            x.collection,
            x.vectors,
            x.backend,
            x.ef_search.map_or("exact".into(), |e| e.to_string()),
            x.recall10,
            ms(x.p50_ms)
        );
    }
    s.push('\n');
}

fn memory(s: &mut String, r: &Report) {
    if r.memory.is_empty() {
        return;
    }
    s.push_str("## SQLite process memory during exact semantic search\n\n| entries | RSS before MiB | peak RSS MiB | vectors MiB |\n|---|---|---|---|\n");
    for m in &r.memory {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.0} | {:.0} |",
            m.size, m.rss_before_mib, m.peak_rss_mib, m.vectors_mib
        );
    }
    s.push_str("\nThe process holds both backends' clients and the corpus, so the peak is compared with the resident set before the queries.\n\n");
}

fn writers(s: &mut String, title: &str, rows: &[WriterRow], paired: bool) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(s, "## {title}\n");
    s.push_str("| writers | batch | backend | pool | entries/s | write p50 / p99 ms | reads/s | read p50 / p99 ms | errors |\n|---|---|---|---|---|---|---|---|---|\n");
    for w in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {} / {} | {:.0} | {} / {} | {} |",
            w.writers,
            w.batch,
            w.backend,
            w.pool,
            w.entries_per_s,
            ms(w.write.p50_ms),
            ms(w.write.p99_ms),
            w.read.qps,
            ms(w.read.p50_ms),
            ms(w.read.p99_ms),
            w.errors
        );
    }
    if paired {
        s.push_str("\n| writers | batch | Postgres / SQLite entries/s |\n|---|---|---|\n");
        for a in rows.iter().filter(|w| w.backend == "sqlite") {
            if let Some(b) = rows
                .iter()
                .find(|w| w.backend == "postgres" && w.writers == a.writers && w.batch == a.batch)
            {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} |",
                    a.writers,
                    a.batch,
                    ratio(b.entries_per_s, a.entries_per_s)
                );
            }
        }
    }
    let errors: Vec<&String> = rows.iter().filter_map(|w| w.first_error.as_ref()).collect();
    for e in errors.iter().take(3) {
        let _ = writeln!(s, "\nfirst error: {e}");
    }
    s.push('\n');
}

fn embedding(s: &mut String, r: &Report) {
    if r.embedding.is_empty() {
        return;
    }
    s.push_str("## Local embedding through the worker (MiniLM, candle, CPU)\n\n| passages | entries | passages embedded | s | passages/s | cores busy |\n|---|---|---|---|---|---|\n");
    for e in &r.embedding {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} | {:.1} | {:.2} of {} |",
            e.passages_kind,
            e.entries,
            e.passages,
            e.seconds,
            e.passages_per_s,
            e.cores_busy,
            e.cores
        );
    }
    s.push('\n');
}
