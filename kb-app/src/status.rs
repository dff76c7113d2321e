//! `kb status`: what the store holds and how it is doing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use storage_core::{EmbeddingSpace, Filter, PoolStats, QueueStats};

use crate::config::{Config, EmbedderChoice};
use crate::error::Result;
use crate::open::OpenStore;
use crate::sync::{synced_root, unresolved_links, UnresolvedLink};

#[derive(Debug, Clone, Serialize)]
pub struct KbStatus {
    pub name: String,
    pub description: String,
    pub entries: u64,
    pub with_vector: u64,
    pub without_vector: u64,
    pub expires_at: Option<DateTime<Utc>>,
    /// The folder `kb sync` last read, if the KB is synced from one.
    pub synced_from: Option<String>,
    pub unresolved_links: Vec<UnresolvedLink>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub backend: String,
    pub location: String,
    /// Where the database choice came from.
    pub configured_by: String,
    pub schema_version: u32,
    /// Engine versions: `sqlite`, or `postgres` and `pgvector`.
    pub versions: Vec<(String, String)>,
    pub embedding_space: Option<EmbeddingSpace>,
    /// The configured embedder, as `kind` (the model is known once it is opened).
    pub embedder: String,
    pub knowledge_bases: Vec<KbStatus>,
    pub entries: u64,
    pub queue: QueueStats,
    pub pool: PoolStats,
}

pub async fn status(store: &OpenStore, config: &Config) -> Result<StatusReport> {
    let s = store.store();
    let health = s.health().await?;
    let mut kbs = Vec::new();
    for kb in s.list_kbs().await? {
        let filter = Filter::new().kb(&kb.name);
        let cov = s.vector_coverage(&filter).await?;
        kbs.push(KbStatus {
            entries: s.count_entries(&filter).await?,
            with_vector: cov.with_vector,
            without_vector: cov.without_vector,
            synced_from: synced_root(s.as_ref(), &kb.name).await?,
            unresolved_links: unresolved_links(s.as_ref(), &kb.name).await?,
            expires_at: kb.expires_at,
            description: kb.description,
            name: kb.name,
        });
    }
    Ok(StatusReport {
        backend: health.backend,
        location: store.location().to_owned(),
        configured_by: config.database_source.clone(),
        schema_version: health.schema_version,
        versions: store.server_versions().await?,
        embedding_space: health.embedding_space,
        embedder: match &config.embedder {
            EmbedderChoice::None => "none".into(),
            EmbedderChoice::Use(c) => format!("{:?}", c.kind).to_lowercase(),
        },
        knowledge_bases: kbs,
        entries: health.entries,
        queue: s.queue_stats().await?,
        pool: health.pool,
    })
}
