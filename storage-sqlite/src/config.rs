//! Configuration of the SQLite backend.

use std::path::PathBuf;
use std::time::Duration;

use storage_core::{EmbeddingSpace, Result, StorageError};

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteLocation {
    File(PathBuf),
    /// A fresh database in a temporary directory, deleted when the store is dropped.
    /// (Not `:memory:`: every pooled connection would see its own empty database.)
    Temporary,
}

#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub location: SqliteLocation,
    /// Pooled connections. SQLite runs one writer at a time (WAL); readers run in parallel.
    pub pool_size: u32,
    /// How long a writer waits for the lock before giving up with `Timeout`.
    pub busy_timeout: Duration,
    /// How long a caller waits for a free pooled connection.
    pub connection_timeout: Duration,
    /// When set, opening checks (or fixes) the store's embedding space.
    pub embedding: Option<EmbeddingSpace>,
}

impl SqliteConfig {
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::with_location(SqliteLocation::File(path.into()))
    }
    pub fn temporary() -> Self {
        Self::with_location(SqliteLocation::Temporary)
    }
    fn with_location(location: SqliteLocation) -> Self {
        Self {
            location,
            pool_size: 8,
            busy_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(30),
            embedding: None,
        }
    }
    pub fn embedding(mut self, space: EmbeddingSpace) -> Self {
        self.embedding = Some(space);
        self
    }

    /// Reads `KB_SQLITE_PATH` (default `kb.sqlite3`) and `KB_SQLITE_POOL_SIZE`.
    pub fn from_env() -> Result<Self> {
        let path = std::env::var("KB_SQLITE_PATH").unwrap_or_else(|_| "kb.sqlite3".into());
        let mut c = Self::file(path);
        if let Ok(v) = std::env::var("KB_SQLITE_POOL_SIZE") {
            c.pool_size = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                StorageError::invalid_input(format!(
                    "KB_SQLITE_POOL_SIZE={v:?} is not a positive integer"
                ))
            })?;
        }
        Ok(c)
    }
}
