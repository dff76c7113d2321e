//! PostgreSQL backend of the storage protocol.
//!
//! - [`PgStore`] (`store.rs`: the pool, opening, query helpers) implements each area
//!   trait of [`storage_core::Store`] in the file named after the area: `kb.rs`,
//!   `entries.rs`, `graph.rs`, `search.rs` (with the BM25 statement in `search/bm25.rs`
//!   and snippets in `search/snippet.rs`), `vectors.rs`, `queue.rs`, `organise.rs`,
//!   `coordination.rs`, `health.rs`.
//! - `rows.rs` decodes rows, `sql.rs` builds filter and `tsquery` SQL, `schema.rs` holds
//!   the tables and migrations (BM25 postings and counters, pgvector HNSW), `error.rs`
//!   maps SQLSTATEs, `config.rs` the settings, `pool.rs` the connection manager, `tls.rs`
//!   libpq's `sslmode`/`sslrootcert` with rustls.
//!
//! ```no_run
//! # async fn demo() -> storage_core::Result<()> {
//! use storage_postgres::{PgConfig, PgStore};
//! let store = PgStore::open(PgConfig::new("postgres://kb@localhost/kb")).await?;
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
mod pool;
mod queue;
mod rows;
mod schema;
mod search;
mod sql;
mod store;
mod tls;
mod vectors;

pub use config::{redact, require_test_url, test_url, validate_identifier, PgConfig};
pub use schema::{create_schema_at_version, SCHEMA_VERSION};
pub use store::PgStore;
