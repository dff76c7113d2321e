//! Health report, server versions and housekeeping (`HealthStore`).

use async_trait::async_trait;
use storage_core::*;

use crate::rows::count;
use crate::schema::SCHEMA_VERSION;
use crate::store::PgStore;

/// Terms whose blocks one statement of `optimize` merges.
const MERGE_TERMS: usize = 4096;

/// Merges the blocks of the terms `$1` (see `optimize`).
const MERGE_BLOCKS: &str = "WITH old AS (DELETE FROM term_blocks b WHERE b.term = ANY($1::text[]) \
         RETURNING b.term, b.n, b.docs, b.tfs, b.dls), \
     live AS (SELECT o.term, u.doc, u.tf, u.dl \
         FROM old o, unnest(o.docs, o.tfs, o.dls) u(doc, tf, dl) \
         WHERE u.doc IN (SELECT doc FROM entries)), \
     sums AS (SELECT term, sum(n)::integer AS n FROM old GROUP BY term) \
     INSERT INTO term_blocks (term, n, docs, tfs, dls) \
     SELECT s.term, s.n, \
         coalesce(array_agg(l.doc ORDER BY l.doc) FILTER (WHERE l.doc IS NOT NULL), '{}'), \
         coalesce(array_agg(l.tf ORDER BY l.doc) FILTER (WHERE l.doc IS NOT NULL), '{}'), \
         coalesce(array_agg(l.dl ORDER BY l.doc) FILTER (WHERE l.doc IS NOT NULL), '{}') \
     FROM sums s LEFT JOIN live l ON l.term = s.term \
     GROUP BY s.term, s.n HAVING s.n <> 0 OR count(l.doc) > 0";

#[async_trait]
impl HealthStore for PgStore {
    async fn optimize(&self) -> Result<()> {
        let conn = self.conn().await?;
        // Every term's blocks become one, without the postings of texts that have gone
        // (a doc no row has) and with the sum of their frequency changes, so df is
        // unchanged. Blocks written meanwhile are not touched (only the rows a statement
        // deleted are merged), and two merges never count a block twice (a row deleted by
        // one is skipped by the other). Terms are merged a few thousand per statement,
        // each its own transaction, without the statement timeout (100k entries: ~1 min).
        let terms: Vec<String> = conn
            .query(
                "SELECT term FROM term_blocks GROUP BY term HAVING count(*) > 1 ORDER BY term",
                &[],
            )
            .await
            .map_err(self.pg())?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()
            .map_err(self.pg())?;
        conn.batch_execute("SET statement_timeout = 0")
            .await
            .map_err(self.pg())?;
        let mut merged = Ok(0);
        for chunk in terms.chunks(MERGE_TERMS) {
            merged = conn.execute(MERGE_BLOCKS, &[&chunk]).await;
            if merged.is_err() {
                break;
            }
        }
        let reset = conn.batch_execute("RESET statement_timeout").await;
        merged.and(reset).map_err(self.pg())?;
        // Table names are fixed; the schema comes from search_path. VACUUM (one table per
        // statement: it cannot run in a transaction block) also sets the visibility map,
        // so document frequencies are read by index-only scans.
        for table in [
            "entries",
            "term_blocks",
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
