//! Health report and housekeeping (`HealthStore`).

use async_trait::async_trait;
use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use storage_core::*;

use crate::schema::SCHEMA_VERSION;
use crate::store::{query_one, sql, SqliteStore};
use crate::vectors::read_space;

#[async_trait]
impl HealthStore for SqliteStore {
    async fn optimize(&self) -> Result<()> {
        self.run(|c, _| {
            sql(c.execute_batch(
                "INSERT INTO entries_fts(entries_fts) VALUES ('optimize'); PRAGMA optimize;",
            ))
        })
        .await
    }

    async fn health(&self) -> Result<HealthReport> {
        let pool = self.pool.clone();
        self.run(move |c, _| {
            let kbs: i64 = query_one(c, "SELECT COUNT(*) FROM kbs", [], |r| r.get(0))?;
            let entries: i64 = query_one(c, "SELECT COUNT(*) FROM entries", [], |r| r.get(0))?;
            Ok(HealthReport {
                backend: "sqlite".into(),
                schema_version: SCHEMA_VERSION,
                knowledge_bases: kbs as u64,
                entries: entries as u64,
                embedding_space: read_space(c)?,
                pool: pool_stats(&pool),
            })
        })
        .await
    }
}

pub(crate) fn pool_stats(pool: &Pool<SqliteConnectionManager>) -> PoolStats {
    let s = pool.state();
    PoolStats {
        max_size: pool.max_size(),
        size: s.connections,
        idle: s.idle_connections,
        in_use: s.connections - s.idle_connections,
        waiting: 0,
    }
}
