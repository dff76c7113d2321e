//! Concurrent writers on each backend: W tasks each upserting single entries (new keys)
//! for a bounded time while 8 tasks (`READERS`) run keyword searches, on a store holding 10,000
//! entries. Prints writes/s, write p50/p99, reads/s, read p50/p99 and errors per writer
//! count. `KB_PG_URL=… cargo run --release -p benchmarks --example concurrent_writes
//! [SECONDS] [WRITERS,…]` (default 5 s; 1,8,32). The Postgres pool has 40 connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use benchmarks::Corpus;
use storage_core::*;

/// Reader tasks (`READERS` overrides).
fn readers() -> usize {
    std::env::var("READERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}
const PRELOAD: usize = 10_000;

struct Run {
    writes: Vec<Duration>,
    reads: Vec<Duration>,
    errors: Vec<String>,
}

fn pct(d: &mut [Duration], p: f64) -> f64 {
    if d.is_empty() {
        return f64::NAN;
    }
    d.sort();
    d[((d.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3
}

async fn run(store: Arc<dyn Store>, writers: usize, secs: u64, round: usize) -> Run {
    let corpus = Arc::new(Corpus::new(benchmarks::SEED));
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, corpus) = (store.clone(), corpus.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut i) = (Vec::new(), Vec::new(), 0usize);
            while Instant::now() < end {
                let mut e = corpus.entry("bench", PRELOAD + i);
                e.id = format!("r{round}-w{w}-{i}");
                let t = Instant::now();
                match store.upsert_entry(&e).await {
                    Ok(_) => lat.push(t.elapsed()),
                    Err(err) => errors.push(format!("{err}")),
                }
                i += 1;
            }
            (lat, errors, true)
        }));
    }
    for r in 0..readers() {
        let (store, corpus) = (store.clone(), corpus.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut i) = (Vec::new(), Vec::new(), 0usize);
            while Instant::now() < end {
                let q = corpus.word(200 + (r * 97 + i * 13) % 3000).to_owned();
                let t = Instant::now();
                match store.search(&q, &Filter::new().limit(10)).await {
                    Ok(_) => lat.push(t.elapsed()),
                    Err(err) => errors.push(format!("{err}")),
                }
                i += 1;
            }
            (lat, errors, false)
        }));
    }
    let mut out = Run {
        writes: Vec::new(),
        reads: Vec::new(),
        errors: Vec::new(),
    };
    for t in tasks {
        let (lat, errors, write) = t.await.expect("task");
        if write {
            out.writes.extend(lat);
        } else {
            out.reads.extend(lat);
        }
        out.errors.extend(errors);
    }
    out
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let counts: Vec<usize> = args
        .next()
        .map(|a| a.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8, 32]);
    let entries = Corpus::new(benchmarks::SEED).entries("bench", PRELOAD);
    let sqlite: Arc<dyn Store> = Arc::new(benchmarks::sqlite_store().await);
    benchmarks::load(sqlite.as_ref(), None, &entries, None).await;
    let mut config = storage_postgres::PgConfig::new(benchmarks::require_pg_url());
    config.pool_max_size = 40;
    let pg = storage_postgres::PgStore::open_for_test_with(config)
        .await
        .expect("open Postgres");
    benchmarks::load(&pg, Some(&pg), &entries, None).await;
    pg.optimize().await.expect("optimize");
    let pg: Arc<dyn Store> = Arc::new(pg);
    println!("| writers | backend | writes/s | write p50 | write p99 | reads/s | read p50 | read p99 | errors |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (round, &w) in counts.iter().enumerate() {
        for (name, store) in [("SQLite", &sqlite), ("Postgres", &pg)] {
            let mut r = run(store.clone(), w, secs, round).await;
            println!(
                "| {w} | {name} | {:.0} | {:.2} ms | {:.2} ms | {:.0} | {:.2} ms | {:.2} ms | {} |",
                r.writes.len() as f64 / secs as f64,
                pct(&mut r.writes, 0.5),
                pct(&mut r.writes, 0.99),
                r.reads.len() as f64 / secs as f64,
                pct(&mut r.reads, 0.5),
                pct(&mut r.reads, 0.99),
                r.errors.len()
            );
            if let Some(e) = r.errors.first() {
                println!("  first error: {e}");
            }
        }
    }
}
