//! Health reports.

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    pub max_size: u32,
    /// Open connections.
    pub size: u32,
    pub idle: u32,
    pub in_use: u32,
    /// Callers waiting for a connection, when the pool can tell (0 otherwise).
    pub waiting: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `sqlite`, `postgres`, …
    pub backend: String,
    pub schema_version: u32,
    pub knowledge_bases: u64,
    pub entries: u64,
    pub embedding_space: Option<EmbeddingSpace>,
    pub pool: PoolStats,
}
