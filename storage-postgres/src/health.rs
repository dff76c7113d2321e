//! Health report, server versions and housekeeping (`HealthStore`).

use async_trait::async_trait;
use storage_core::*;

use crate::rows::count;
use crate::schema::SCHEMA_VERSION;
use crate::store::PgStore;

#[async_trait]
impl HealthStore for PgStore {
    async fn optimize(&self) -> Result<()> {
        let conn = self.conn().await?;
        // Table names are fixed; the schema comes from search_path. VACUUM (one table per
        // statement: it cannot run in a transaction block) also sets the visibility map,
        // so postings are read by index-only scans.
        for table in [
            "entries",
            "postings",
            "term_df",
            "bm25_stats",
            "vectors",
            "entry_tags",
            "links",
            "embed_queue",
        ] {
            conn.batch_execute(&format!("VACUUM (ANALYZE) {table}"))
                .await
                .map_err(self.pg())?;
        }
        Ok(())
    }

    async fn health(&self) -> Result<HealthReport> {
        let space = self.space().await?;
        let r = self
            .query_one(
                "SELECT (SELECT count(*) FROM kbs), (SELECT count(*) FROM entries)",
                &[],
            )
            .await?;
        let state = self.inner.pool.state();
        Ok(HealthReport {
            backend: "postgres".into(),
            schema_version: SCHEMA_VERSION,
            knowledge_bases: count(&r, 0)?,
            entries: count(&r, 1)?,
            embedding_space: space,
            pool: PoolStats {
                max_size: self.inner.config.pool_max_size,
                size: state.connections,
                idle: state.idle_connections,
                in_use: state.connections - state.idle_connections,
                waiting: state.statistics.pending_gets() as u32,
            },
        })
    }
}

impl PgStore {
    /// The server's and pgvector's versions, for status reports.
    pub async fn server_versions(&self) -> Result<Vec<(String, String)>> {
        let row = self
            .query_one(
                "SELECT current_setting('server_version'), \
                 (SELECT extversion FROM pg_extension WHERE extname = 'vector')",
                &[],
            )
            .await?;
        let server: String = row.try_get(0).map_err(self.pg())?;
        let vector: Option<String> = row.try_get(1).map_err(self.pg())?;
        Ok(vec![
            ("postgres".to_owned(), server),
            (
                "pgvector".to_owned(),
                vector.unwrap_or_else(|| "missing".into()),
            ),
        ])
    }
}
