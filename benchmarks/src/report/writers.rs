//! Concurrent writers: W tasks upserting new entries (one at a time, or batches of
//! 100) for a bounded time while reader tasks run keyword searches at a fixed pace.
//!
//! The readers are paced, not run back to back: on a machine of two cores a closed loop
//! of readers takes whatever CPU the writers leave, so the faster reader got fewer
//! writes (Postgres served four times SQLite's searches and was charged for it in
//! writes/s). At a fixed pace both backends carry the same read load, and `reads/s`
//! shows whether each kept up with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use storage_core::prelude::*;
use storage_core::Filter;

use super::measure::Latency;
use crate::Corpus;

/// Reader tasks searching while the writers write, and the searches each starts per
/// second (a reader that falls behind starts its next search at once, without bursts).
pub(super) const READERS: usize = 8;
pub(super) const READS_PER_S: u32 = 25;

#[derive(Debug, Clone, Serialize)]
pub struct WriterRow {
    pub backend: &'static str,
    pub writers: usize,
    /// Entries per `upsert_entries` call (1 = `upsert_entry`).
    pub batch: usize,
    /// The Postgres pool size (SQLite: its connection pool).
    pub pool: u32,
    pub seconds: f64,
    /// Entries written per second by all writers together.
    pub entries_per_s: f64,
    /// Latency of one write call.
    pub write: Latency,
    pub read: Latency,
    /// Failed calls; the first error's message is kept.
    pub errors: usize,
    pub first_error: Option<String>,
}

/// One timed round. `round` keeps ids unique across rounds on the same store.
pub(super) async fn run(
    backend: &'static str,
    store: Arc<dyn Store>,
    pool: u32,
    writers: usize,
    batch: usize,
    secs: f64,
    round: usize,
) -> WriterRow {
    let corpus = Arc::new(Corpus::new(crate::SEED));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, corpus) = (store.clone(), corpus.clone());
        tasks.push(tokio::spawn(async move {
            let (mut times, mut errors, mut i) = (Vec::new(), Vec::new(), 0usize);
            while Instant::now() < end {
                let entries: Vec<_> = (0..batch)
                    .map(|j| {
                        let mut e = corpus.entry("bench", 1_000_000 + i + j);
                        e.id = format!("w{round}-{w}-{}", i + j);
                        e
                    })
                    .collect();
                let t = Instant::now();
                let r = if batch == 1 {
                    store.upsert_entry(&entries[0]).await.map(|_| ())
                } else {
                    store.upsert_entries(&entries).await.map(|_| ())
                };
                match r {
                    Ok(()) => times.push(t.elapsed()),
                    Err(e) => errors.push(e.to_string()),
                }
                i += batch;
            }
            (times, errors, true)
        }));
    }
    for r in 0..READERS {
        let (store, corpus) = (store.clone(), corpus.clone());
        tasks.push(tokio::spawn(async move {
            let (mut times, mut errors, mut i) = (Vec::new(), Vec::new(), 0usize);
            let mut pace = tokio::time::interval(Duration::from_secs(1) / READS_PER_S);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < end {
                pace.tick().await;
                let q = corpus.word(200 + (r * 97 + i * 13) % 3000).to_owned();
                let t = Instant::now();
                match store.search(&q, &Filter::new().limit(10)).await {
                    Ok(_) => times.push(t.elapsed()),
                    Err(e) => errors.push(e.to_string()),
                }
                i += 1;
            }
            (times, errors, false)
        }));
    }
    let (mut writes, mut reads, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for t in tasks {
        let (times, errs, write) = t.await.expect("a bench task panicked");
        if write {
            writes.extend(times);
        } else {
            reads.extend(times);
        }
        errors.extend(errs);
    }
    let wall = start.elapsed();
    let row = WriterRow {
        backend,
        writers,
        batch,
        pool,
        seconds: wall.as_secs_f64(),
        entries_per_s: (writes.len() * batch) as f64 / wall.as_secs_f64(),
        write: Latency::of(writes, wall),
        read: Latency::of(reads, wall),
        errors: errors.len(),
        first_error: errors.into_iter().next(),
    };
    eprintln!(
        "  writers {writers} ×{batch} {backend} (pool {pool}): {:.0} entries/s, write p50 {:.2} ms, read p50 {:.2} ms, {} errors",
        row.entries_per_s, row.write.p50_ms, row.read.p50_ms, row.errors
    );
    row
}
