//! Health reports.

use serde::{Deserialize, Serialize};

use super::*;

/// The state of a backend's connection pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// Most connections the pool opens.
    pub max_size: u32,
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Open connections in use.
    pub in_use: u32,
    /// Callers waiting for a connection, when the pool can tell (0 otherwise).
    pub waiting: u32,
}

/// What [`health`](crate::HealthStore::health) reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `sqlite`, `postgres`, …
    pub backend: String,
    /// Version of the backend's database schema.
    pub schema_version: u32,
    /// Number of knowledge bases.
    pub knowledge_bases: u64,
    /// Number of entries in all knowledge bases.
    pub entries: u64,
    /// The embedding space, if one is fixed.
    pub embedding_space: Option<EmbeddingSpace>,
    /// The connection pool's state.
    pub pool: PoolStats,
}
