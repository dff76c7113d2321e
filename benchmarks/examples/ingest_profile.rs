//! Loads the benchmark corpus through the SQLite backend; a target for profilers
//! (`valgrind --tool=callgrind target/release/examples/ingest_profile 3000`).

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3000);
    let entries = benchmarks::Corpus::new(benchmarks::SEED).entries("bench", n);
    let store = benchmarks::sqlite_store().await;
    let took = benchmarks::load(&store, None, &entries, None).await;
    eprintln!("{n} entries in {took:?}");
}
