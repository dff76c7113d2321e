//! Quick keyword-latency check against a schema made by `load_keyword` (Postgres) and a
//! fresh SQLite load of the same corpus: median of repeated searches per query shape.
//! `KB_PG_URL=… cargo run --release -p benchmarks --example keyword_latency [N]`
//! (`PAGE=100` for pages of 100, the hybrid searcher's keyword depth; default 10).
//! The criterion bench (`cargo xtask bench backends -- keyword_100k`) is the reference figure.

use std::time::{Duration, Instant};

use benchmarks::Corpus;
use storage_core::*;
use storage_postgres::{PgConfig, PgStore};
use storage_sqlite::{SqliteConfig, SqliteStore};

async fn median(store: &dyn Store, q: &str, runs: usize) -> Duration {
    let page = Filter::new().limit(
        std::env::var("PAGE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    );
    for _ in 0..20 {
        store.search(q, &page).await.unwrap();
    }
    let mut t: Vec<Duration> = (0..runs).map(|_| Duration::ZERO).collect::<Vec<_>>();
    for d in t.iter_mut() {
        let s = Instant::now();
        store.search(q, &page).await.unwrap();
        *d = s.elapsed();
    }
    t.sort();
    t[runs / 2]
}

#[tokio::main]
async fn main() {
    let url = benchmarks::require_pg_url();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let corpus = Corpus::new(42);
    let pg = PgStore::open(PgConfig::new(url).schema(format!("kb_bench_{n}")))
        .await
        .expect("open");
    let lite = SqliteStore::open(SqliteConfig::temporary()).await.unwrap();
    lite.create_kb(&NewKnowledgeBase::persistent("bench"))
        .await
        .unwrap();
    for chunk in corpus.entries("bench", n).chunks(1_000) {
        lite.upsert_entries(chunk).await.unwrap();
    }
    lite.optimize().await.unwrap();
    let w = |r: usize| corpus.word(r).to_string();
    let five: Vec<String> = (1500..1505).map(w).collect();
    let queries = [
        ("1term", w(1700)),
        ("2terms_and", format!("{} {}", w(300), w(400))),
        ("2terms_or", format!("{} OR {}", w(1700), w(1800))),
        ("5terms_or", five.join(" OR ")),
        ("1term_common", w(5)),
        ("2terms_and_skewed", format!("{} {}", w(5), w(5000))),
        ("3terms_and", format!("{} {} {}", w(300), w(400), w(20))),
    ];
    for (name, q) in &queries {
        let a = median(&lite, q, 300).await;
        let b = median(&pg, q, 300).await;
        println!(
            "{name:12} sqlite {:7.3} ms  postgres {:7.3} ms  ratio {:.2}",
            a.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3,
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
}
