//! Loads the benchmark corpus (batches of 1,000; text only, or with its vectors when a
//! third argument `vectors` is given) through one backend and prints the time; a target for profilers
//! (`valgrind --tool=callgrind target/release/examples/ingest_profile 3000`), and the
//! quick comparison `ingest_profile 10000 sqlite` / `KB_PG_URL=… ingest_profile 10000
//! postgres`.

#[tokio::main]
async fn main() {
    // `RUST_LOG=storage_postgres=debug` shows where each batch's time goes.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3000);
    let backend = args.next().unwrap_or_else(|| "sqlite".into());
    let corpus = benchmarks::Corpus::new(benchmarks::SEED);
    let entries = corpus.entries("bench", n);
    let vectors = (args.next().as_deref() == Some("vectors")).then_some(&corpus);
    let took = match backend.as_str() {
        "postgres" => {
            let store = benchmarks::pg_store(&benchmarks::require_pg_url(), 40).await;
            benchmarks::load(&store, Some(&store), &entries, vectors).await
        }
        _ => {
            let store = benchmarks::sqlite_store().await;
            benchmarks::load(&store, None, &entries, vectors).await
        }
    };
    eprintln!(
        "{backend}: {n} entries in {:.2} s ({:.0}/s)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}
