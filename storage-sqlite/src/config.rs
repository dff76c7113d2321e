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

/// How much an acknowledged write survives (SQLite's `synchronous`, in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is on disk before it returns (`synchronous = FULL`): a power loss
    /// or OS crash loses nothing acknowledged. The default: entries written through the
    /// API or by agents exist nowhere else.
    #[default]
    Full,
    /// Commits reach the OS but not the disk (`synchronous = NORMAL`): a crash of the
    /// process loses nothing, a power loss or OS crash can lose the last commits (the
    /// database stays consistent). For stores rebuilt from files (`kb sync`), where a
    /// lost write is re-done by the next sync.
    Normal,
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
    /// What a power loss may take; see [`Durability`].
    pub durability: Durability,
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
            pool_size: 8,
            busy_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(30),
            embedding: None,
            // A temporary database is gone after a crash anyway.
            durability: if location == SqliteLocation::Temporary {
                Durability::Normal
            } else {
                Durability::Full
            },
            location,
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
