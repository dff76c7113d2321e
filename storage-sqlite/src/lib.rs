//! SQLite backend of the storage protocol.
//!
//! - [`SqliteStore`] (`store.rs`) implements [`storage_core::Store`].
//! - `schema.rs` holds the tables and migrations, `sql.rs` the filter and FTS5 SQL,
//!   `vectors.rs` the in-memory vector index, `error.rs` the driver-error mapping.
//!
//! ```no_run
//! # async fn demo() -> storage_core::Result<()> {
//! use storage_sqlite::{SqliteConfig, SqliteStore};
//! let store = SqliteStore::open(SqliteConfig::file("kb.sqlite3")).await?;
//! # Ok(()) }
//! ```

mod config;
mod error;
mod schema;
mod sql;
mod store;
mod vectors;

pub use config::{SqliteConfig, SqliteLocation};
pub use schema::SCHEMA_VERSION;
pub use store::SqliteStore;

/// The version of the bundled SQLite library (shown by `kb status`).
pub fn sqlite_version() -> String {
    rusqlite::version().to_owned()
}
