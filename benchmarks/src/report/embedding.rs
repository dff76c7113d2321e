//! Local embedding throughput through the worker, as `kb sync` runs it.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use embed::{EmbedWorker, LocalEmbedder, WorkerConfig};
use serde::Serialize;
use storage_core::prelude::*;
use storage_core::{NewEntry, NewKnowledgeBase};

use super::measure::cpu_time;
use crate::Corpus;

#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingRow {
    /// `short` (a sentence) or `window` (a passage as long as the model's window).
    pub passages_kind: &'static str,
    pub entries: usize,
    pub passages: u64,
    pub seconds: f64,
    pub passages_per_s: f64,
    /// Process CPU time over wall time: 2.0 means both cores of this machine were busy.
    pub cores_busy: f64,
    pub cores: usize,
}

/// Embeds `short` one-sentence entries and `window` model-window entries through an
/// [`EmbedWorker`] on a temporary SQLite store.
pub(super) async fn run(
    model_dir: &Path,
    short: usize,
    window: usize,
) -> Result<Vec<EmbeddingRow>, String> {
    let model = LocalEmbedder::load(model_dir)
        .map_err(|e| format!("cannot load the embedding model: {e}"))?;
    let model: Arc<dyn embed::Embedder> = Arc::new(model);
    let corpus = Corpus::new(crate::SEED);
    let text = |i: usize, words: usize| -> String {
        (0..words)
            .map(|w| corpus.word((i * 31 + w * 7) % 5_000))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut rows = Vec::new();
    // About 12 words is a note's sentence; 180 corpus words fill the 256-token window.
    for (kind, count, words) in [("short", short, 12), ("window", window, 180)] {
        let store: Arc<dyn Store> = Arc::new(crate::sqlite_store().await);
        store
            .create_kb(&NewKnowledgeBase::persistent("bench"))
            .await
            .map_err(|e| e.to_string())?;
        let entries: Vec<NewEntry> = (0..count)
            .map(|i| NewEntry::new("bench", format!("p{i}")).body(text(i, words)))
            .collect();
        store
            .upsert_entries(&entries)
            .await
            .map_err(|e| e.to_string())?;
        let worker = EmbedWorker::new(store, model.clone(), WorkerConfig::default())
            .await
            .map_err(|e| e.to_string())?;
        let (cpu0, t0) = (cpu_time(), Instant::now());
        let stats = worker.drain().await.map_err(|e| e.to_string())?;
        let wall = t0.elapsed();
        let busy = match (cpu0, cpu_time()) {
            (Some(a), Some(b)) => (b - a).as_secs_f64() / wall.as_secs_f64(),
            _ => f64::NAN,
        };
        let row = EmbeddingRow {
            passages_kind: kind,
            entries: count,
            passages: stats.passages,
            seconds: wall.as_secs_f64(),
            passages_per_s: stats.passages as f64 / wall.as_secs_f64(),
            cores_busy: busy,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        eprintln!(
            "  embedding {kind}: {} passages in {:.1} s ({:.1}/s), {:.2} cores busy",
            row.passages, row.seconds, row.passages_per_s, row.cores_busy
        );
        rows.push(row);
    }
    Ok(rows)
}
