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

/// Embeds every queued entry, reporting progress about five times a second.
pub async fn embed_queue(
    store: Arc<dyn Store>,
    embedder: Arc<dyn Embedder>,
    progress: &dyn Progress,
) -> Result<RunStats> {
    let worker = EmbedWorker::new(store.clone(), embedder, WorkerConfig::default()).await?;
    let stats = store.queue_stats().await?;
    progress.start("embedding", Some(stats.pending + stats.in_progress));
    let run = worker.drain();
    tokio::pin!(run);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let result = loop {
        tokio::select! {
            r = &mut run => break r,
            _ = tick.tick() => {
                let p = worker.progress();
                progress.set(p.done, p.total.max(p.done));
            }
        }
    };
    progress.finish();
    Ok(result?)
}
