//! The `kb` application layer, shared by the command line, the HTTP server and the MCP
//! server: configuration ([`config`]), opening a backend from it ([`open`]), the embedder
//! and searcher wiring ([`embedding`]), markdown sync ([`sync`], [`watch`]), import,
//! export and migration. Nothing here prints or exits: results and errors go back to the
//! front end, and long work reports through [`Progress`].
//!
//! This is the only crate besides the backends' own tests that names `storage-sqlite` and
//! `storage-postgres`.

pub mod config;
pub mod embedding;
pub mod error;
pub mod export;
pub mod import;
pub mod input;
pub mod links;
pub mod markdown;
pub mod migrate;
pub mod open;
pub mod service;
pub mod status;
pub mod sync;
pub mod watch;

pub use config::{Config, ConfigOverrides, DatabaseConfig, EmbedderChoice};
pub use error::{AppError, Result};
pub use open::{OpenMode, OpenStore};
pub use service::{join_workers, Services};

/// Progress of long work, drawn by the front end (a bar, a log line, nothing).
pub trait Progress: Send + Sync {
    /// A new phase begins; `total` when the amount of work is known.
    fn start(&self, _phase: &str, _total: Option<u64>) {}
    /// `n` more units are done.
    fn advance(&self, _n: u64) {}
    /// Sets the position outright (for work measured from elsewhere, like a queue).
    fn set(&self, _done: u64, _total: u64) {}
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// Picks the KB a command works on: the one named, else the configured default, else the
/// only KB of the store.
pub async fn choose_kb(
    store: &dyn storage_core::Store,
    named: Option<&str>,
    config: &Config,
) -> Result<String> {
    if let Some(k) = named.or(config.default_kb.as_deref()) {
        storage_core::validate_name("knowledge base name", k)?;
        return Ok(k.to_owned());
    }
    let kbs = store.list_kbs().await?;
    match kbs.as_slice() {
        [only] => Ok(only.name.clone()),
        [] => Err(AppError::usage(
            "the store has no knowledge base yet: `kb sync DIR` or `kb kb create NAME` makes one",
        )),
        many => Err(AppError::usage(format!(
            "the store has {} knowledge bases ({}); choose one with --kb NAME or default_kb in kb.toml",
            many.len(),
            many.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}
