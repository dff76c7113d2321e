//! Knowledge bases: create, list, delete, and expiry (`KbStore`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, TransactionBehavior};
use storage_core::*;

use crate::entries::fts_delete_where;
use crate::rows::{from_micros, read_kb};
use crate::store::{execute, kb_exists, now, query, query_opt, sql, SqliteStore};

#[async_trait]
impl KbStore for SqliteStore {
    async fn create_kb(&self, kb: &NewKnowledgeBase) -> Result<KnowledgeBase> {
        kb.validate()?;
        let kb = kb.clone();
        self.run(move |c, _| {
            let now = now();
            let n = execute(c, "INSERT INTO kbs (name, description, expires_at, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (name) DO NOTHING",
                params![kb.name, kb.description, kb.expires_at.map(|t| t.timestamp_micros()), now])?;
            if n == 0 {
                return Err(StorageError::already_exists(format!("knowledge base {:?}", kb.name)));
            }
            Ok(KnowledgeBase {
                name: kb.name,
                description: kb.description,
                expires_at: kb.expires_at.map(|t| from_micros(t.timestamp_micros())),
                created_at: from_micros(now),
            })
        })
        .await
    }

    async fn get_kb(&self, name: &str) -> Result<Option<KnowledgeBase>> {
        let name = name.to_owned();
        self.run(move |c, _| {
            query_opt(
                c,
                "SELECT name, description, expires_at, created_at FROM kbs WHERE name = ?1",
                [name],
                read_kb,
            )
        })
        .await
    }

    async fn list_kbs(&self) -> Result<Vec<KnowledgeBase>> {
        self.run(|c, _| {
            query(
                c,
                "SELECT name, description, expires_at, created_at FROM kbs ORDER BY name",
                [],
                read_kb,
            )
        })
        .await
    }

    async fn delete_kb(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.run(move |c, shared| {
            let mut vectors = shared.vectors.write().expect("vector lock");
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            if !kb_exists(&tx, &name)? {
                return Ok(false);
            }
            delete_kbs_in(&tx, &[name])?;
            sql(tx.commit())?;
            *vectors = None;
            Ok(true)
        })
        .await
    }

    async fn gc_expired(&self, now: DateTime<Utc>) -> Result<GcReport> {
        self.run(move |c, shared| {
            let mut vectors = shared.vectors.write().expect("vector lock");
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let now = now.timestamp_micros();
            // Entries: never later than the store's clock, which `live_entries` reads by,
            // so an entry is collected only once every reader already misses it.
            let entries_now = now.min(crate::store::now());
            let names: Vec<String> = {
                query(&tx, "SELECT name FROM kbs WHERE expires_at IS NOT NULL AND expires_at <= ?1 ORDER BY name", [now], |r| r.get(0))?
            };
            let kbs = delete_kbs_in(&tx, &names)?;
            // Expired entries of the KBs that remain: index rows first, then the entries
            // (vectors, queue items, tags, links, stars and memberships cascade).
            fts_delete_where(&tx, "expires_at <= ?1", &entries_now)?;
            let entries = execute(&tx, "DELETE FROM entries WHERE expires_at <= ?1", [entries_now])?;
            sql(tx.commit())?;
            let report = GcReport {
                kbs,
                entries: entries as u64,
            };
            if !report.is_empty() {
                *vectors = None;
            }
            Ok(report)
        })
        .await
    }
}

/// Deletes entries of the given KBs and the KB rows, with everything that hangs off them.
pub(crate) fn delete_kbs_in(c: &Connection, names: &[String]) -> Result<Vec<RemovedKnowledgeBase>> {
    let mut out = Vec::new();
    for name in names {
        // Index entries, then entries, then the KB (which cascades the rest).
        fts_delete_where(c, "kb = ?1", name)?;
        let n = sql(c
            .prepare_cached("DELETE FROM entries WHERE kb = ?1")
            .and_then(|mut s| s.execute([name])))?;
        execute(c, "DELETE FROM settings WHERE kb = ?1", [name])?;
        execute(c, "DELETE FROM kbs WHERE name = ?1", [name])?;
        out.push(RemovedKnowledgeBase {
            name: name.clone(),
            entries: n as u64,
        });
    }
    Ok(out)
}
