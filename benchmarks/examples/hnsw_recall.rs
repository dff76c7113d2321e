//! Recall and latency of pgvector HNSW on the benchmark corpus, for several `m`,
//! `ef_construction` and `ef_search` values, against exact search computed here.
//!
//! `KB_PG_URL=postgres://… cargo run --release -p benchmarks --example hnsw_recall [N]`
//! (N vectors, default 100,000). Prints a markdown table; the README's tuning advice
//! quotes it.

use std::time::{Duration, Instant};

use benchmarks::{Corpus, DIMENSION};
use pgvector::Vector;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

const K: usize = 10;
const QUERIES: usize = 50;

#[tokio::main]
async fn main() {
    let url = benchmarks::require_pg_url();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let client = benchmarks::raw::postgres_client(&url).await;
    let corpus = Corpus::new(42);
    let vectors: Vec<Vec<f32>> = (0..n).map(|i| corpus.vector(i)).collect();

    client
        .batch_execute(&format!(
            "CREATE EXTENSION IF NOT EXISTS vector; DROP TABLE IF EXISTS recall_vecs;
             CREATE TABLE recall_vecs (id int PRIMARY KEY, embedding vector({DIMENSION}));
             SET maintenance_work_mem = '1GB'; SET statement_timeout = 0;"
        ))
        .await
        .unwrap();
    let vector_type: Type = client.prepare("SELECT $1::vector").await.unwrap().params()[0].clone();
    let sink = client
        .copy_in("COPY recall_vecs (id, embedding) FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT4, vector_type]);
    tokio::pin!(writer);
    for (i, v) in vectors.iter().enumerate() {
        writer
            .as_mut()
            .write(&[&(i as i32), &Vector::from(v.clone())])
            .await
            .unwrap();
    }
    writer.finish().await.unwrap();

    let queries: Vec<Vec<f32>> = (0..QUERIES)
        .map(|i| corpus.query_vector(i * 2, i as u64 + 100))
        .collect();
    let exact: Vec<Vec<i32>> = queries
        .iter()
        .map(|q| {
            let mut s: Vec<(f32, i32)> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), i as i32))
                .collect();
            s.sort_by(|a, b| b.0.total_cmp(&a.0));
            s.into_iter().take(K).map(|x| x.1).collect()
        })
        .collect();

    println!("{n} vectors × {DIMENSION}, {QUERIES} queries, recall@{K} against exact search\n");
    println!("| m | ef_construction | build s | ef_search | recall@10 | p50 ms |");
    println!("|---|---|---|---|---|---|");
    for (m, efc) in [(16, 64), (16, 128), (32, 128)] {
        client
            .batch_execute("DROP INDEX IF EXISTS recall_hnsw")
            .await
            .unwrap();
        let t = Instant::now();
        client
            .batch_execute(&format!(
                "CREATE INDEX recall_hnsw ON recall_vecs USING hnsw (embedding vector_cosine_ops) \
                 WITH (m = {m}, ef_construction = {efc})"
            ))
            .await
            .unwrap();
        let build = t.elapsed().as_secs_f64();
        for ef in [40, 100, 200, 400] {
            client
                .batch_execute(&format!("SET hnsw.ef_search = {ef}"))
                .await
                .unwrap();
            let stmt = client
                .prepare("SELECT id FROM recall_vecs ORDER BY embedding <=> $1 LIMIT 10")
                .await
                .unwrap();
            let mut found = 0;
            let mut times: Vec<Duration> = Vec::new();
            for (q, want) in queries.iter().zip(&exact) {
                let t = Instant::now();
                let rows = client
                    .query(&stmt, &[&Vector::from(q.clone())])
                    .await
                    .unwrap();
                times.push(t.elapsed());
                found += rows
                    .iter()
                    .filter(|r| want.contains(&r.get::<_, i32>(0)))
                    .count();
            }
            times.sort();
            println!(
                "| {m} | {efc} | {build:.1} | {ef} | {:.3} | {:.2} |",
                found as f64 / (K * QUERIES) as f64,
                times[times.len() / 2].as_secs_f64() * 1000.0
            );
        }
    }
    client
        .batch_execute("DROP TABLE recall_vecs")
        .await
        .unwrap();
}
