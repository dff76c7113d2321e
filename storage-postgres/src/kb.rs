//! Knowledge bases: create, list, delete, and expiry (`KbStore`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use storage_core::*;

use crate::rows::{get, read_kb, KB_COLUMNS};
use crate::store::{now, PgStore};

#[async_trait]
impl KbStore for PgStore {
    async fn create_kb(&self, kb: &NewKnowledgeBase) -> Result<KnowledgeBase> {
        kb.validate()?;
        let conn = self.conn().await?;
        let expires = kb
            .expires_at
            .map(|t| DateTime::from_timestamp_micros(t.timestamp_micros()).expect("in range"));
        let row = conn
            .query_opt(
                &format!(
                    "INSERT INTO kbs (name, description, expires_at, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO NOTHING RETURNING {KB_COLUMNS}"
                ),
                &[&kb.name, &kb.description, &expires, &now()],
            )
            .await
            .map_err(self.pg())?;
        row.map(|r| read_kb(&r))
            .transpose()?
            .ok_or_else(|| StorageError::already_exists(format!("knowledge base {:?}", kb.name)))
    }

    async fn get_kb(&self, name: &str) -> Result<Option<KnowledgeBase>> {
        let row = self
            .query_opt(
                &format!("SELECT {KB_COLUMNS} FROM kbs WHERE name = $1"),
                &[&name],
            )
            .await?;
        row.map(|r| read_kb(&r)).transpose()
    }

    async fn list_kbs(&self) -> Result<Vec<KnowledgeBase>> {
        let rows = self
            .query(&format!("SELECT {KB_COLUMNS} FROM kbs ORDER BY name"), &[])
            .await?;
        rows.iter().map(read_kb).collect()
    }

    async fn delete_kb(&self, name: &str) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(self.pg())?;
        // Entries, tags, links, vectors, queue items, stars and collections cascade.
        // The KB row goes first: its lock makes a racing `set_setting` (which key-share
        // locks it) finish before the settings are deleted below, or find no KB.
        let n = tx
            .execute("DELETE FROM kbs WHERE name = $1", &[&name])
            .await
            .map_err(self.pg())?;
        tx.execute("DELETE FROM settings WHERE kb = $1", &[&name])
            .await
            .map_err(self.pg())?;
        tx.commit().await.map_err(self.pg())?;
        Ok(n > 0)
    }

    async fn gc_expired(&self, now: DateTime<Utc>) -> Result<GcReport> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(self.pg())?;
        // One DELETE cascading to everything; the CTE's snapshot still sees the entries,
        // so the counts are what was removed.
        let rows = tx
            .query(
                "WITH gone AS (DELETE FROM kbs WHERE expires_at IS NOT NULL AND expires_at <= $1 RETURNING name) \
                 SELECT g.name, (SELECT count(*) FROM entries e WHERE e.kb = g.name) FROM gone g ORDER BY g.name",
                &[&now],
            )
            .await
            .map_err(self.pg())?;
        let removed: Vec<RemovedKnowledgeBase> = rows
            .iter()
            .map(|r| {
                Ok(RemovedKnowledgeBase {
                    name: get(r, 0)?,
                    entries: get::<i64>(r, 1)? as u64,
                })
            })
            .collect::<Result<_>>()?;
        let names: Vec<String> = removed.iter().map(|r| r.name.clone()).collect();
        tx.execute("DELETE FROM settings WHERE kb = ANY($1)", &[&names])
            .await
            .map_err(self.pg())?;
        // Expired entries of the KBs that remain, as `delete_entry` removes one (vectors,
        // queue items, tags, links, stars and memberships cascade; the BM25 triggers keep
        // the statistics).
        let entries = tx
            .execute(
                // Never later than the server's clock, which `live_entries` reads by: an
                // entry is collected only once every reader already misses it (a caller
                // whose clock runs ahead would otherwise delete entries still shown).
                "DELETE FROM entries WHERE expires_at <= LEAST($1, now())",
                &[&now],
            )
            .await
            .map_err(self.pg())?;
        tx.commit().await.map_err(self.pg())?;
        Ok(GcReport {
            kbs: removed,
            entries,
        })
    }
}
