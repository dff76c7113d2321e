//! Opening the configured backend: the only module that names the backend crates.

use std::sync::Arc;

use storage_core::Store;
use storage_postgres::PgStore;
use storage_sqlite::{SqliteConfig, SqliteStore};

use crate::config::DatabaseConfig;
use crate::error::{AppError, Result};

/// Whether opening may create a missing SQLite file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Writing commands (`init`, `sync`, `import`, `put`, …): create the file if missing.
    Create,
    /// Reading commands: a missing file is an error that says how to create one.
    Existing,
}

/// An open store, with the backend-specific operations the application uses (bulk loads,
/// versions) beside the protocol object.
#[derive(Debug, Clone)]
pub struct OpenStore {
    store: Arc<dyn Store>,
    backend: Backend,
    location: String,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite,
    Postgres(Arc<PgStore>),
}

impl OpenStore {
    pub async fn open(config: &DatabaseConfig, mode: OpenMode) -> Result<Self> {
        let location = config.display_location();
        match config {
            DatabaseConfig::Sqlite {
                path,
                pool_size,
                busy_timeout,
                durability,
            } => {
                if !path.exists() {
                    if mode == OpenMode::Existing {
                        return Err(AppError::NoStore { path: path.clone() });
                    }
                    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                        std::fs::create_dir_all(parent).map_err(|e| AppError::io(parent, e))?;
                    }
                }
                let mut cfg = SqliteConfig::file(path.clone());
                if let Some(n) = pool_size {
                    cfg.pool_size = (*n).max(1);
                }
                if let Some(t) = busy_timeout {
                    cfg.busy_timeout = *t;
                }
                if let Some(d) = durability {
                    cfg.durability = *d;
                }
                let store = SqliteStore::open(cfg).await?;
                Ok(Self {
                    store: Arc::new(store),
                    backend: Backend::Sqlite,
                    location,
                })
            }
            DatabaseConfig::Postgres(pg) => {
                let store = Arc::new(PgStore::open((**pg).clone()).await?);
                Ok(Self {
                    store: store.clone(),
                    backend: Backend::Postgres(store),
                    location,
                })
            }
        }
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The file or the URL (password removed).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Server versions worth showing in `kb status` (Postgres and pgvector), if any.
    pub async fn server_versions(&self) -> Result<Vec<(String, String)>> {
        match &self.backend {
            Backend::Sqlite => Ok(vec![("sqlite".into(), storage_sqlite::sqlite_version())]),
            Backend::Postgres(pg) => Ok(pg.server_versions().await?),
        }
    }

    /// Batches a bulk load keeps in flight at once. SQLite takes one writer at a time, so
    /// one. On Postgres each batch runs on its own connection, and with three in flight
    /// one batch's analysis in the client overlaps another's work on the server: a load
    /// of 20,000 entries ran at 3,321/s with one, 4,348/s with two and 4,693/s with
    /// three (`KB_LOAD_CONCURRENCY=N ingest_profile 20000 postgres`, 2 cores).
    pub fn batches_in_flight(&self) -> usize {
        match &self.backend {
            Backend::Sqlite => 1,
            Backend::Postgres(_) => 3,
        }
    }

    /// Before a large load of vectors: on Postgres, drops the HNSW index (inserting into
    /// a graph costs several times more per vector than building it once). Returns
    /// whether [`finish_bulk_load`](Self::finish_bulk_load) must rebuild it.
    pub async fn begin_bulk_load(&self) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite => Ok(false),
            Backend::Postgres(pg) => {
                pg.drop_vector_index().await?;
                Ok(true)
            }
        }
    }

    /// After a large load: rebuilds the vector index if it was dropped, and refreshes
    /// planner statistics on either backend.
    pub async fn finish_bulk_load(&self, rebuild: bool) -> Result<()> {
        if let (true, Backend::Postgres(pg)) = (rebuild, &self.backend) {
            pg.build_vector_index().await?;
        }
        self.store.optimize().await?;
        Ok(())
    }
}
