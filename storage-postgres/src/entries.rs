//! Entries: write, read, list, count and the timeline (`EntryStore`). The write path
//! (batch and single-entry upserts) is in [`upsert`]; concurrent single-entry upserts
//! are combined into batches by [`combine`].

mod combine;
pub(crate) mod reanalyse;
mod upsert;

pub(crate) use combine::Combiner;

use async_trait::async_trait;
use storage_core::*;

use crate::rows::{get, read_entries, read_entry, ENTRY_COLUMNS};
use crate::sql::{filter_sql, order_by, Params};
use crate::store::PgStore;

#[async_trait]
impl EntryStore for PgStore {
    async fn upsert_entries(&self, entries: &[NewEntry]) -> Result<Vec<Entry>> {
        match entries {
            [one] => Ok(vec![combine::upsert_combined(self, one.clone()).await?]),
            _ => upsert::upsert_entries(self, entries).await,
        }
    }

    async fn get_entry(&self, key: &EntryKey) -> Result<Option<Entry>> {
        let row = self
            .query_opt(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM live_entries e WHERE e.kb = $1 AND e.id = $2"
                ),
                &[&key.kb, &key.id],
            )
            .await?;
        row.map(|r| read_entry(&r, 0)).transpose()
    }

    async fn get_entries(&self, keys: &[EntryKey]) -> Result<Vec<Entry>> {
        let kbs: Vec<&str> = keys.iter().map(|k| k.kb.as_str()).collect();
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        let rows = self.query(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(kb, id, ord) \
                     JOIN live_entries e ON e.kb = k.kb AND e.id = k.id ORDER BY k.ord"
                ),
                &[&kbs, &ids],
            ).await?;
        read_entries(&rows)
    }

    async fn delete_entry(&self, key: &EntryKey) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM entries WHERE kb = $1 AND id = $2",
                &[&key.kb, &key.id],
            )
            .await?;
        Ok(n > 0)
    }

    async fn list_entries(&self, filter: &Filter) -> Result<Vec<Entry>> {
        let mut p = Params::default();
        let cond = filter_sql(filter, &mut p)?;
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM live_entries e WHERE TRUE{cond} {} LIMIT {} OFFSET {}",
            order_by(filter),
            filter.effective_limit(),
            filter.offset
        );
        self.entries_where(&sql, &p).await
    }

    async fn count_entries(&self, filter: &Filter) -> Result<u64> {
        let mut p = Params::default();
        let cond = filter_sql(filter, &mut p)?;
        let row = self
            .query_one(
                &format!("SELECT count(*) FROM live_entries e WHERE TRUE{cond}"),
                &p.refs(),
            )
            .await?;
        let n: i64 = get(&row, 0)?;
        Ok(n as u64)
    }

    async fn entry_types(&self, filter: &Filter) -> Result<Vec<(String, u64)>> {
        let mut p = Params::default();
        let cond = filter_sql(filter, &mut p)?;
        let rows = self.query(
                &format!("SELECT e.entry_type, count(*) FROM live_entries e WHERE TRUE{cond} GROUP BY 1 ORDER BY 1"),
                &p.refs(),
            ).await?;
        rows.iter()
            .map(|r| Ok((get(r, 0)?, get::<i64>(r, 1)? as u64)))
            .collect()
    }

    async fn timeline(&self, filter: &Filter) -> Result<Vec<Entry>> {
        let mut p = Params::default();
        let cond = filter_sql(filter, &mut p)?;
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM live_entries e WHERE e.date IS NOT NULL{cond} \
             ORDER BY e.date ASC, e.kb ASC, e.id ASC LIMIT {} OFFSET {}",
            filter.effective_limit(),
            filter.offset
        );
        self.entries_where(&sql, &p).await
    }
}

impl PgStore {
    pub(crate) async fn entries_where(&self, sql: &str, params: &Params) -> Result<Vec<Entry>> {
        let rows = self.query(sql, &params.refs()).await?;
        read_entries(&rows)
    }
}
