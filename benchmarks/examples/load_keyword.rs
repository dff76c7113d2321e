//! Loads the benchmark corpus into a persistent Postgres schema (`kb_bench_<N>`), for
//! looking at query plans with psql: `KB_PG_URL=… cargo run --release -p benchmarks
//! --example load_keyword [N]` (default 100,000; text only, no vectors).

use benchmarks::Corpus;
use storage_core::*;
use storage_postgres::{PgConfig, PgStore};

#[tokio::main]
async fn main() {
    let url = benchmarks::require_pg_url();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let corpus = Corpus::new(42);
    let store = PgStore::open(PgConfig::new(url).schema(format!("kb_bench_{n}")))
        .await
        .expect("open");
    let took = benchmarks::load(&store, Some(&store), &corpus.entries("bench", n), None).await;
    eprintln!("loaded {n} in {:.1}s", took.as_secs_f64());
    store.optimize().await.expect("optimize");
    for (i, w) in [300, 400, 1500, 1700, 1800].iter().enumerate() {
        eprintln!("word {i}: rank {w} = {}", corpus.word(*w));
    }
}
