//! Links and the graph they form (`GraphStore`).

use std::collections::HashMap;

use async_trait::async_trait;
use storage_core::*;

use crate::rows::{count, get, key_of};
use crate::store::PgStore;

#[async_trait]
impl GraphStore for PgStore {
    async fn outlinks(&self, key: &EntryKey) -> Result<Vec<Link>> {
        Ok(self
            .get_entry(key)
            .await?
            .map(|e| e.links)
            .unwrap_or_default())
    }

    async fn backlinks(&self, key: &EntryKey) -> Result<Vec<Backlink>> {
        let rows = self.query(
                "SELECT e.kb, e.id, l.relation, l.note FROM links l JOIN live_entries e ON e.rowid = l.source \
                 WHERE l.target_kb = $1 AND l.target_id = $2 ORDER BY e.kb, e.id, l.position",
                &[&key.kb, &key.id],
            ).await?;
        rows.iter()
            .map(|r| {
                Ok(Backlink {
                    source: key_of(r, 0)?,
                    relation: get(r, 2)?,
                    note: get(r, 3)?,
                })
            })
            .collect()
    }

    async fn neighbourhood(&self, q: &GraphQuery) -> Result<Graph> {
        let conn = self.conn().await?;
        let pg = self.pg();
        let start_title = conn
            .query_opt(
                "SELECT title FROM live_entries WHERE kb = $1 AND id = $2",
                &[&q.start.kb, &q.start.id],
            )
            .await
            .map_err(&pg)?
            .map(|r| get::<String>(&r, 0))
            .ok_or_else(|| StorageError::entry_not_found(&q.start))??;
        let mut builder = GraphBuilder::new(q, start_title);
        while !builder.frontier().is_empty() {
            let kbs: Vec<&str> = builder.frontier().iter().map(|k| k.kb.as_str()).collect();
            let ids: Vec<&str> = builder.frontier().iter().map(|k| k.id.as_str()).collect();
            // One query per direction for the whole frontier.
            let direction = if q.include_backlinks {
                "OR (l.target_kb = f.kb AND l.target_id = f.id)"
            } else {
                ""
            };
            let level: Vec<RawEdge> = conn
                .query(
                    &format!(
                        "SELECT DISTINCT e.kb, e.id, l.target_kb, l.target_id, l.relation FROM links l \
                         JOIN live_entries e ON e.rowid = l.source \
                         JOIN unnest($1::text[], $2::text[]) AS f(kb, id) \
                           ON (e.kb = f.kb AND e.id = f.id) {direction}"
                    ),
                    &[&kbs, &ids],
                )
                .await
                .map_err(&pg)?
                .iter()
                .map(|r| Ok((key_of(r, 0)?, key_of(r, 2)?, get(r, 4)?)))
                .collect::<Result<_>>()?;
            let admitted = builder.add_level(level);
            let akbs: Vec<&str> = admitted.iter().map(|k| k.kb.as_str()).collect();
            let aids: Vec<&str> = admitted.iter().map(|k| k.id.as_str()).collect();
            let titles: HashMap<EntryKey, String> = conn
                .query(
                    "SELECT e.kb, e.id, e.title FROM unnest($1::text[], $2::text[]) AS k(kb, id) \
                     JOIN live_entries e ON e.kb = k.kb AND e.id = k.id",
                    &[&akbs, &aids],
                )
                .await
                .map_err(&pg)?
                .iter()
                .map(|r| Ok((key_of(r, 0)?, get(r, 2)?)))
                .collect::<Result<_>>()?;
            builder.set_titles(admitted.iter().map(|k| titles.get(k).cloned()).collect());
        }
        Ok(builder.finish())
    }

    async fn most_linked(&self, kb: Option<&str>, limit: usize) -> Result<Vec<LinkCount>> {
        let rows = self
            .query(
                "SELECT t.kb, t.id, count(DISTINCT l.source) AS n FROM links l \
                 JOIN live_entries t ON t.kb = l.target_kb AND t.id = l.target_id \
                 JOIN live_entries s ON s.rowid = l.source \
                 WHERE l.source <> t.rowid AND ($1::text IS NULL OR t.kb = $1) \
                 GROUP BY t.rowid, t.kb, t.id ORDER BY n DESC, t.kb, t.id LIMIT $2",
                // Clamped: `as i64` turned usize::MAX into -1, which LIMIT rejects.
                &[&kb, &i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LinkCount {
                    key: key_of(r, 0)?,
                    count: count(r, 2)?,
                })
            })
            .collect()
    }

    async fn orphans(&self, kb: Option<&str>) -> Result<Vec<EntryKey>> {
        let rows = self
            .query(
                "SELECT e.kb, e.id FROM live_entries e WHERE e.lifecycle = 'active' \
                 AND ($1::text IS NULL OR e.kb = $1) \
                 AND NOT EXISTS (SELECT 1 FROM links l WHERE l.source = e.rowid) \
                 AND NOT EXISTS (SELECT 1 FROM links l JOIN live_entries s ON s.rowid = l.source \
                                 WHERE l.target_kb = e.kb AND l.target_id = e.id \
                                 AND l.source <> e.rowid) \
                 ORDER BY e.kb, e.id",
                &[&kb],
            )
            .await?;
        rows.iter().map(|r| key_of(r, 0)).collect()
    }
}
