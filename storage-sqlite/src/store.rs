//! [`SqliteStore`]: the pool, the one bridge to blocking SQLite calls, and the small
//! query helpers every area file uses. The protocol itself is implemented per area
//! (`kb.rs`, `entries.rs`, …).
//!
//! Every method hands its blocking SQLite work to [`SqliteStore::run`], the one bridge to
//! `spawn_blocking`, so no SQLite call ever runs on the async executor. Writes use
//! `BEGIN IMMEDIATE` so a transaction takes the write lock up front and never fails
//! half-way with SQLITE_BUSY when upgrading from a read.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use chrono::Utc;
use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OptionalExtension, Params, Row};
use storage_core::*;

use crate::config::{Durability, SqliteConfig, SqliteLocation};
use crate::error::{map_pool, map_sqlite};
use crate::schema::migrate;
use crate::vectors::{ensure_space, VectorIndex};

pub(crate) type Conn = r2d2::PooledConnection<SqliteConnectionManager>;

/// State shared by all connections of one store.
#[derive(Debug, Default)]
pub(crate) struct Inner {
    /// `None` until the first semantic query loads it; reset to `None` by bulk deletes.
    /// Writers that touch vectors hold the write lock across their transaction, so the
    /// index and the table never disagree once the lock is released.
    pub(crate) vectors: RwLock<Option<VectorIndex>>,
}

/// The SQLite backend. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: Pool<SqliteConnectionManager>,
    shared: Arc<Inner>,
    path: PathBuf,
    /// Keeps a temporary database's directory alive as long as any clone.
    _temp: Option<Arc<tempfile::TempDir>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

pub(crate) fn now() -> i64 {
    Utc::now().timestamp_micros()
}

pub(crate) fn sql<T>(r: rusqlite::Result<T>) -> Result<T> {
    r.map_err(map_sqlite)
}

impl SqliteStore {
    /// Opens (creating if needed) the database and applies migrations.
    pub async fn open(config: SqliteConfig) -> Result<Self> {
        tokio::task::spawn_blocking(move || Self::open_blocking(config))
            .await
            .map_err(|e| StorageError::backend("the SQLite open task failed", e))?
    }

    fn open_blocking(config: SqliteConfig) -> Result<Self> {
        let (path, temp) = match &config.location {
            SqliteLocation::File(p) => (p.clone(), None),
            SqliteLocation::Temporary => {
                let dir = tempfile::tempdir().map_err(|e| StorageError::Unavailable {
                    message: "could not create a temporary directory for the database".into(),
                    hint: "check TMPDIR is writable".into(),
                    source: Some(Box::new(e)),
                })?;
                (dir.path().join("kb.sqlite3"), Some(Arc::new(dir)))
            }
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(StorageError::Unavailable {
                    message: format!("the directory {} does not exist", parent.display()),
                    hint: "create it, or point KB_SQLITE_PATH elsewhere".into(),
                    source: None,
                });
            }
        }
        let busy_ms = config.busy_timeout.as_millis() as u64;
        let synchronous = match config.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        // A 32 MiB page cache per connection (SQLite's default is 2 MiB) keeps the entry,
        // tag and FTS b-trees hot during bulk loads; it is allocated only as pages are used.
        let manager = SqliteConnectionManager::file(&path).with_init(move |c| {
            crate::register_tokenizer(c)?;
            c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
            c.execute_batch(&format!(
                "PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {busy_ms}; \
                 PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY;"
            ))
        });
        let pool = Pool::builder()
            .max_size(config.pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(config.connection_timeout)
            .build(manager)
            .map_err(|e| StorageError::Unavailable {
                message: format!("could not open the SQLite database at {}", path.display()),
                hint: "check the path is a writable SQLite file".into(),
                source: Some(Box::new(e)),
            })?;
        let mut conn = pool.get().map_err(map_pool)?;
        migrate(&mut conn)?;
        if let Some(space) = &config.embedding {
            ensure_space(&mut conn, space)?;
        }
        drop(conn);
        Ok(Self {
            pool,
            shared: Arc::new(Inner::default()),
            path,
            _temp: temp,
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The one bridge from async to SQLite: runs `f` with a pooled connection on the
    /// blocking thread pool.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn, &Inner) -> Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(map_pool)?;
            f(&mut conn, &shared)
        })
        .await
        .map_err(|e| StorageError::backend("a blocking SQLite task failed", e))?
    }
}

/// Runs a cached statement and decodes every row: the one `prepare_cached → query_map →
/// collect` sequence of the area files.
pub(crate) fn query<T, P: Params>(
    c: &Connection,
    text: &str,
    params: P,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = sql(c.prepare_cached(text))?;
    let rows = sql(stmt.query_map(params, row))?;
    rows.map(sql).collect()
}

/// [`query`] for at most one row.
pub(crate) fn query_opt<T, P: Params>(
    c: &Connection,
    text: &str,
    params: P,
    row: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    sql(c
        .prepare_cached(text)
        .and_then(|mut s| s.query_row(params, row).optional()))
}

/// [`query`] for exactly one row.
pub(crate) fn query_one<T, P: Params>(
    c: &Connection,
    text: &str,
    params: P,
    row: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<T> {
    sql(c
        .prepare_cached(text)
        .and_then(|mut s| s.query_row(params, row)))
}

/// Runs a cached statement and returns how many rows it changed.
pub(crate) fn execute<P: Params>(c: &Connection, text: &str, params: P) -> Result<u64> {
    sql(c.prepare_cached(text).and_then(|mut s| s.execute(params))).map(|n| n as u64)
}

pub(crate) fn kb_exists(c: &Connection, kb: &str) -> Result<bool> {
    Ok(sql(c
        .prepare_cached("SELECT 1 FROM kbs WHERE name = ?1")
        .and_then(|mut s| s.query_row([kb], |_| Ok(())).optional()))?
    .is_some())
}

pub(crate) fn rowid_of(c: &Connection, key: &EntryKey) -> Result<Option<i64>> {
    sql(c
        .prepare_cached("SELECT rowid FROM entries WHERE kb = ?1 AND id = ?2")
        .and_then(|mut s| s.query_row([&key.kb, &key.id], |r| r.get(0)).optional()))
}

/// The rowid of an entry that has not expired: what stars and collections may hold.
pub(crate) fn live_rowid_of(c: &Connection, key: &EntryKey) -> Result<Option<i64>> {
    sql(c
        .prepare_cached("SELECT rowid FROM live_entries WHERE kb = ?1 AND id = ?2")
        .and_then(|mut s| s.query_row([&key.kb, &key.id], |r| r.get(0)).optional()))
}
