//! What every handler shares: one store, one searcher, one embedder, created at start-up.

use std::sync::Arc;

use embed::Embedder;
use kb_app::{embedding, AppError, Config, EmbedderChoice, OpenMode, OpenStore};
use search_hybrid::{SearchConfig, SearchMode, Searcher};
use storage_core::Store;

use crate::auth::AuthPolicy;

/// Cheap to clone: everything is behind an `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub open: OpenStore,
    /// Answers every mode when an embedder is open, else keyword only.
    pub searcher: Searcher,
    pub embedder: Option<Arc<dyn Embedder>>,
    /// Why semantic and hybrid search are unavailable, when they are.
    pub semantic_unavailable: Option<String>,
    pub auth: Arc<AuthPolicy>,
    pub embed_workers: usize,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("backend", &self.open.backend())
            .field("embedder", &self.embedder.as_ref().map(|e| e.model_id()))
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Opens the store (creating a missing SQLite file: a server is a writer), the
    /// embedder and the searcher. An embedder that cannot be opened — or a store embedded
    /// by another model — is logged and leaves keyword search working.
    pub async fn open(config: &Config, no_auth: bool) -> Result<Self, AppError> {
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
                        Some("the server could not open its embedding model".to_owned()),
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
            auth: Arc::new(AuthPolicy::new(no_auth)),
            embed_workers: config.embed_workers,
        })
    }
}

async fn keyword_only(store: Arc<dyn Store>) -> Result<Searcher, AppError> {
    embedding::searcher(store, &EmbedderChoice::None, SearchMode::Keyword).await
}
