//! The embedder and searcher wiring: opening the configured embedder, draining the
//! embedding queue with progress, and a searcher for every mode.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use embed::{EmbedError, EmbedWorker, Embedder, RunStats, WorkerConfig};
use search_hybrid::{SearchConfig, SearchMode, Searcher};
use storage_core::{EmbeddingSpace, Store};

use crate::config::EmbedderChoice;
use crate::error::{AppError, Result};
use crate::Progress;

/// Opens the configured embedder (`None` when embedding is turned off). Loading the local
/// model reads ~90 MB, so it runs on a blocking thread.
pub async fn open_embedder(choice: &EmbedderChoice) -> Result<Option<Arc<dyn Embedder>>> {
    match choice {
        EmbedderChoice::None => Ok(None),
        EmbedderChoice::Use(cfg) => {
            let cfg = cfg.clone();
            let e = tokio::task::spawn_blocking(move || cfg.open())
                .await
                .map_err(|e| {
                    AppError::usage(format!("loading the embedding model stopped: {e}"))
                })??;
            Ok(Some(e))
        }
    }
}

/// Stands in for the embedder where no vectors are needed (keyword search): it claims the
/// store's own space, so the searcher's model check passes, and refuses to embed.
#[derive(Debug)]
struct KeywordOnly {
    space: EmbeddingSpace,
}

#[async_trait]
impl Embedder for KeywordOnly {
    fn model_id(&self) -> &str {
        &self.space.model
    }
    fn dimension(&self) -> usize {
        self.space.dimension
    }
    fn max_input_tokens(&self) -> usize {
        256
    }
    async fn embed(&self, _texts: &[String]) -> embed::Result<Vec<Vec<f32>>> {
        Err(EmbedError::Config {
            message: "no embedder is configured (embedder.provider = \"none\")".into(),
        })
    }
}

/// A searcher for `mode`. Keyword search never loads a model; semantic and hybrid search
/// open the configured embedder and fail with its error when it cannot be opened.
pub async fn searcher(
    store: Arc<dyn Store>,
    choice: &EmbedderChoice,
    mode: SearchMode,
) -> Result<Searcher> {
    let embedder: Arc<dyn Embedder> = match (mode, choice) {
        (SearchMode::Keyword, _) => Arc::new(KeywordOnly {
            space: store
                .embedding_space()
                .await?
                .unwrap_or_else(|| EmbeddingSpace::new("none", 1)),
        }),
        (_, EmbedderChoice::None) => {
            return Err(AppError::usage(format!(
            "{} search needs an embedder, and embedder.provider is \"none\"; use --mode keyword",
            match mode {
                SearchMode::Semantic => "semantic",
                _ => "hybrid",
            }
        )))
        }
        (_, choice) => open_embedder(choice)
            .await?
            .expect("an embedder is configured"),
    };
    Ok(Searcher::new(store, embedder, SearchConfig::default()).await?)
}

/// Embeds every queued entry with `workers` concurrent workers (one per core keeps the
/// model busy while another worker tokenises, splits and writes), reporting progress about
/// five times a second.
pub async fn embed_queue(
    store: Arc<dyn Store>,
    embedder: Arc<dyn Embedder>,
    workers: usize,
    progress: &dyn Progress,
) -> Result<RunStats> {
    let mut pool = Vec::new();
    for _ in 0..workers.max(1) {
        pool.push(
            EmbedWorker::new(store.clone(), embedder.clone(), WorkerConfig::default()).await?,
        );
    }
    let stats = store.queue_stats().await?;
    let total = stats.pending + stats.in_progress;
    progress.start("embedding", Some(total));
    let mut runs = tokio::task::JoinSet::new();
    for w in &pool {
        let w = w.clone();
        runs.spawn(async move { w.drain().await });
    }
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut sum = RunStats::default();
    let mut first_error = None;
    loop {
        tokio::select! {
            r = runs.join_next() => match r {
                None => break,
                Some(Ok(Ok(s))) => {
                    sum.embedded += s.embedded;
                    sum.passages += s.passages;
                    sum.retrying += s.retrying;
                    sum.gave_up += s.gave_up;
                }
                Some(Ok(Err(e))) => { first_error.get_or_insert(AppError::from(e)); }
                Some(Err(e)) => { first_error.get_or_insert(AppError::usage(format!("an embedding worker stopped: {e}"))); }
            },
            _ = tick.tick() => {
                let done: u64 = pool.iter().map(|w| w.progress().done).sum();
                progress.set(done, total.max(done));
            }
        }
    }
    progress.finish();
    match first_error {
        Some(e) => Err(e),
        None => Ok(sum),
    }
}

/// Workers that keep this machine's cores busy.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
}

/// Puts every entry of `filter` back in the queue. When the store's vectors are another
/// model's, `reset` forgets them all and the store's embedding space (the way to change
/// models in place); without it that is `ModelMismatch`, naming both models.
pub async fn requeue_all(
    store: Arc<dyn Store>,
    embedder: &dyn Embedder,
    filter: &storage_core::Filter,
    reset: bool,
) -> Result<u64> {
    match store.ensure_embedding_space(&embedder.space()).await {
        Ok(_) => Ok(store.requeue_embeddings(filter, true).await?),
        Err(storage_core::StorageError::ModelMismatch { .. }) if reset => {
            let n = store.reset_embedding_space().await?;
            store.ensure_embedding_space(&embedder.space()).await?;
            Ok(n)
        }
        Err(e) => Err(e.into()),
    }
}

/// One search hit as the front ends show it in JSON (`kb search --json`, the HTTP API):
/// the entry's identity and labels, the score and the snippet, not the whole body.
pub fn hit_json(h: &search_hybrid::Hit, explain: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "rank": h.rank,
        "score": h.score,
        "kb": h.entry.kb,
        "id": h.entry.id,
        "title": h.entry.title,
        "type": h.entry.entry_type,
        "tags": h.entry.tags,
        "status": h.entry.status,
        "path": h.entry.source_path,
        "snippet": h.snippet.text,
        "highlights": h.snippet.highlights,
    });
    if explain {
        v["explanation"] = serde_json::to_value(&h.explanation).unwrap_or_default();
    }
    v
}
