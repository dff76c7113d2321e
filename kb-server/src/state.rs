//! What every handler shares: one store, one searcher, one embedder, created at start-up.

use std::sync::Arc;

use embed::Embedder;
use kb_app::{AppError, Config, OpenStore, Services};
use search_hybrid::Searcher;
use storage_core::Store;

use crate::auth::{AuthPolicy, InFlight, DEFAULT_MAX_IN_FLIGHT};

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
    /// Requests running per caller ([`InFlight`]).
    pub in_flight: Arc<InFlight>,
    pub embed_workers: usize,
    /// The same store, searcher and embedder, as the MCP endpoint takes them.
    pub services: Services,
    /// `default_kb` of the configuration: the KB an MCP tool uses when none is named.
    pub default_kb: Option<String>,
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
    /// Opens the store, the embedder and the searcher ([`Services::open`]).
    pub async fn open(config: &Config, no_auth: bool) -> Result<Self, AppError> {
        let services = Services::open(config).await?;
        let mut state = Self::from_services(services, no_auth, config.embed_workers);
        state.default_kb = config.default_kb.clone();
        Ok(state)
    }

    pub fn from_services(services: Services, no_auth: bool, embed_workers: usize) -> Self {
        Self {
            store: services.store.clone(),
            open: services.open.clone(),
            searcher: services.searcher.clone(),
            embedder: services.embedder.clone(),
            semantic_unavailable: services.semantic_unavailable.clone(),
            auth: Arc::new(AuthPolicy::new(no_auth)),
            in_flight: Arc::new(InFlight::new(DEFAULT_MAX_IN_FLIGHT)),
            embed_workers,
            services,
            default_kb: None,
        }
    }
}
