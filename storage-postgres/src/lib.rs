//! PostgreSQL backend of the storage protocol.
//!
//! - [`PgStore`] (`store.rs`) implements [`storage_core::Store`] on tokio-postgres + bb8.
//! - `schema.rs` holds the tables and migrations (tsvector + GIN, pgvector HNSW, BM25
//!   postings and counters), `keyword.rs` the BM25 keyword-search statement, `snippet.rs`
//!   its snippets, `sql.rs` the filter and `tsquery` SQL, `error.rs` the SQLSTATE
//!   mapping, `config.rs` the settings, `pool.rs` the connection manager.
//!
//! ```no_run
//! # async fn demo() -> storage_core::Result<()> {
//! use storage_postgres::{PgConfig, PgStore};
//! let store = PgStore::open(PgConfig::new("postgres://kb@localhost/kb")).await?;
//! # Ok(()) }
//! ```

mod config;
mod error;
mod keyword;
mod pool;
mod schema;
mod snippet;
mod sql;
mod store;

pub use config::{redact, validate_identifier, PgConfig};
pub use schema::SCHEMA_VERSION;
pub use store::PgStore;
