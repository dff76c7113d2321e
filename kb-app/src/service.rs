//! What a long-running front end (`kb serve`, `kb mcp`) opens once and shares: the store,
//! the embedder and the searcher.

use std::sync::Arc;

use embed::Embedder;
use search_hybrid::{SearchConfig, SearchMode, Searcher};
use storage_core::Store;

use crate::{embedding, Config, EmbedderChoice, OpenMode, OpenStore, Result};

/// Cheap to clone: everything is behind an `Arc`.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub open: OpenStore,
    /// Answers every mode when an embedder is open, else keyword only.
    pub searcher: Searcher,
    pub embedder: Option<Arc<dyn Embedder>>,
    /// Why semantic and hybrid search are unavailable, when they are.
    pub semantic_unavailable: Option<String>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("backend", &self.open.backend())
            .field("embedder", &self.embedder.as_ref().map(|e| e.model_id()))
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Opens the store (creating a missing SQLite file: a server is a writer), the
    /// embedder and the searcher. An embedder that cannot be opened — or a store embedded
    /// by another model — is logged and leaves keyword search working.
    pub async fn open(config: &Config) -> Result<Self> {
        let open = OpenStore::open(&config.database, OpenMode::Create).await?;
        let store = open.store();
        let (embedder, mut semantic_unavailable) = match &config.embedder {
            EmbedderChoice::None => (
                None,
                Some("no embedder is configured (embedder.provider = \"none\")".to_owned()),
            ),
            choice => match embedding::open_embedder(choice).await {
                Ok(e) => (e, None),
                Err(e) => {
                    tracing::warn!(error = %e, "the embedder could not be opened: keyword search only");
                    (
                        None,
                        Some("the embedding model could not be opened".to_owned()),
                    )
                }
            },
        };
        let searcher = match &embedder {
            Some(e) => {
                // Fix the embedding space now, so a fresh store's semantic leg and the
                // worker agree from the first request on.
                match store.ensure_embedding_space(&e.space()).await {
                    Ok(_) => {
                        Some(Searcher::new(store.clone(), e.clone(), SearchConfig::default()).await)
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "keyword search only");
                        semantic_unavailable = Some(err.to_string());
                        None
                    }
                }
            }
            None => None,
        };
        let (searcher, embedder) = match searcher {
            Some(Ok(s)) => (s, embedder),
            Some(Err(err)) => {
                tracing::warn!(error = %err, "keyword search only");
                semantic_unavailable = Some(err.to_string());
                (keyword_only(store.clone()).await?, None)
            }
            None => (keyword_only(store.clone()).await?, None),
        };
        Ok(Self {
            store,
            open,
            searcher,
            embedder,
            semantic_unavailable,
        })
    }
}

async fn keyword_only(store: Arc<dyn Store>) -> Result<Searcher> {
    embedding::searcher(store, &EmbedderChoice::None, SearchMode::Keyword).await
}

/// A background embedding worker's task.
pub type WorkerHandle = tokio::task::JoinHandle<storage_core::Result<embed::RunStats>>;

impl Services {
    /// Starts `n` background embedding workers that run until `stop` turns true (each
    /// finishes its current batch); none without an embedder (logged).
    pub async fn start_workers(
        &self,
        n: usize,
        name: &str,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Vec<WorkerHandle> {
        if n == 0 {
            return Vec::new();
        }
        let Some(embedder) = self.embedder.clone() else {
            tracing::warn!(
                reason = self
                    .semantic_unavailable
                    .as_deref()
                    .unwrap_or("no embedder"),
                "not starting the embedding workers"
            );
            return Vec::new();
        };
        let mut handles = Vec::new();
        for i in 0..n {
            let base = embed::WorkerConfig::default();
            let config = embed::WorkerConfig {
                worker_id: format!("{}-{name}{i}", base.worker_id),
                idle_poll: std::time::Duration::from_millis(500),
                ..base
            };
            let worker =
                match embed::EmbedWorker::new(self.store.clone(), embedder.clone(), config).await {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::warn!(error = %e, "not starting the embedding workers");
                        break;
                    }
                };
            let mut rx = stop.clone();
            handles.push(tokio::spawn(async move {
                worker
                    .run(async move {
                        let _ = rx.wait_for(|s| *s).await;
                    })
                    .await
            }));
        }
        handles
    }
}

/// Waits for the workers to stop (up to a minute each), logging how each ended.
pub async fn join_workers(workers: Vec<WorkerHandle>) {
    for w in workers {
        match tokio::time::timeout(std::time::Duration::from_secs(60), w).await {
            Ok(Ok(Ok(stats))) => {
                tracing::info!(embedded = stats.embedded, "embedding worker stopped")
            }
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "embedding worker stopped with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "embedding worker panicked"),
            Err(_) => tracing::warn!("an embedding worker did not stop within 60 s"),
        }
    }
}

impl Services {
    /// Removes expired KBs and entries every `every` until `stop` turns true, so scratch KBs vanish on
    /// their own while a server runs (`kb gc` does the same once). A failed pass is logged
    /// and retried at the next tick.
    pub fn start_gc(
        &self,
        every: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                match store.gc_expired(chrono::Utc::now()).await {
                    Ok(gone) if !gone.is_empty() => tracing::info!(
                        kbs = gone.kbs.len(),
                        entries = gone.entries,
                        "expired knowledge bases and entries removed"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "removing expired knowledge bases failed"),
                }
            }
        })
    }
}

/// How often a server removes expired KBs.
pub const GC_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
