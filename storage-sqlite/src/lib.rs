//! SQLite backend of the storage protocol.
//!
//! - [`SqliteStore`] (`store.rs`: the pool, the blocking bridge, query helpers) implements
//!   each area trait of [`storage_core::Store`] in the file named after the area:
//!   `kb.rs`, `entries.rs`, `graph.rs`, `search.rs`, `vectors.rs` (with the in-memory
//!   index in `vectors/index.rs`), `queue.rs`, `organise.rs`, `coordination.rs`,
//!   `health.rs`.
//! - `search/analyze.rs` is the FTS5 tokenizer (the core's tokens, CJK included).
//! - `rows.rs` decodes rows, `sql.rs` builds filter and FTS5 SQL, `schema.rs` holds the
//!   tables and migrations, `error.rs` maps driver errors, `config.rs` the settings.
//!
//! ```no_run
//! # async fn demo() -> storage_core::Result<()> {
//! use storage_sqlite::{SqliteConfig, SqliteStore};
//! let store = SqliteStore::open(SqliteConfig::file("kb.sqlite3")).await?;
//! # Ok(()) }
//! ```

mod config;
mod coordination;
mod entries;
mod error;
mod graph;
mod health;
mod kb;
mod organise;
mod queue;
mod rows;
mod schema;
mod search;
mod sql;
mod store;
mod vectors;

pub use config::{Durability, SqliteConfig, SqliteLocation};
pub use schema::SCHEMA_VERSION;
pub use search::analyze::register_tokenizer;
pub use store::SqliteStore;

/// The version of the bundled SQLite library (shown by `kb status`).
pub fn sqlite_version() -> String {
    rusqlite::version().to_owned()
}
