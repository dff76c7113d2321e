//! Links and the graph they form (`GraphStore`).

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use storage_core::*;

use crate::entries::get_entry_by_key;
use crate::store::{query, sql, SqliteStore};

#[async_trait]
impl GraphStore for SqliteStore {
    async fn outlinks(&self, key: &EntryKey) -> Result<Vec<Link>> {
        let key = key.clone();
        self.run(move |c, _| {
            Ok(get_entry_by_key(c, &key)?
                .map(|e| e.links)
                .unwrap_or_default())
        })
        .await
    }

    async fn backlinks(&self, key: &EntryKey) -> Result<Vec<Backlink>> {
        let key = key.clone();
        self.run(move |c, _| {
            query(c, "SELECT e.kb, e.id, l.relation, l.note FROM links l JOIN live_entries e ON e.rowid = l.source \
                 WHERE l.target_kb = ?1 AND l.target_id = ?2 ORDER BY e.kb, e.id, l.position", [&key.kb, &key.id], |r| {
                Ok(Backlink {
                    source: EntryKey::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                    relation: r.get(2)?,
                    note: r.get(3)?,
                })
            })
        })
        .await
    }

    async fn neighbourhood(&self, q: &GraphQuery) -> Result<Graph> {
        let q = q.clone();
        self.run(move |c, _| neighbourhood_in(c, &q)).await
    }

    async fn most_linked(&self, kb: Option<&str>, limit: usize) -> Result<Vec<LinkCount>> {
        let kb = kb.map(str::to_owned);
        self.run(move |c, _| {
            let mut s = sql(c.prepare_cached(
                "SELECT t.kb, t.id, COUNT(DISTINCT l.source) AS n FROM links l \
                 JOIN live_entries t ON t.kb = l.target_kb AND t.id = l.target_id \
                 JOIN live_entries s ON s.rowid = l.source \
                 WHERE l.source <> t.rowid AND (?1 IS NULL OR t.kb = ?1) \
                 GROUP BY t.rowid ORDER BY n DESC, t.kb, t.id LIMIT ?2",
            ))?;
            // Clamped: `as i64` turned usize::MAX into -1.
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = sql(s.query_map(params![kb, limit], |r| {
                Ok(LinkCount {
                    key: EntryKey::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                    count: r.get::<_, i64>(2)? as u64,
                })
            }))?;
            rows.map(sql).collect()
        })
        .await
    }

    async fn orphans(&self, kb: Option<&str>) -> Result<Vec<EntryKey>> {
        let kb = kb.map(str::to_owned);
        self.run(move |c, _| {
            query(
                c,
                "SELECT e.kb, e.id FROM live_entries e WHERE e.lifecycle = 'active' \
                 AND (?1 IS NULL OR e.kb = ?1) \
                 AND NOT EXISTS (SELECT 1 FROM links l WHERE l.source = e.rowid) \
                 AND NOT EXISTS (SELECT 1 FROM links l JOIN live_entries s ON s.rowid = l.source \
                                 WHERE l.target_kb = e.kb AND l.target_id = e.id \
                                 AND l.source <> e.rowid) \
                 ORDER BY e.kb, e.id",
                [kb],
                |r| {
                    Ok(EntryKey::new(
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                    ))
                },
            )
        })
        .await
    }
}

pub(crate) fn neighbourhood_in(c: &Connection, q: &GraphQuery) -> Result<Graph> {
    let title_of = |k: &EntryKey| -> Result<Option<String>> {
        sql(c
            .prepare_cached("SELECT title FROM live_entries WHERE kb = ?1 AND id = ?2")
            .and_then(|mut s| s.query_row([&k.kb, &k.id], |r| r.get(0)).optional()))
    };
    let Some(start_title) = title_of(&q.start)? else {
        return Err(StorageError::entry_not_found(&q.start));
    };
    let key = |r: &Row<'_>, at: usize| -> rusqlite::Result<EntryKey> {
        Ok(EntryKey::new(
            r.get::<_, String>(at)?,
            r.get::<_, String>(at + 1)?,
        ))
    };
    let mut builder = GraphBuilder::new(q, start_title);
    while !builder.frontier().is_empty() {
        let mut level: Vec<RawEdge> = Vec::new();
        for node in builder.frontier() {
            let mut out = sql(c.prepare_cached(
                "SELECT l.target_kb, l.target_id, l.relation FROM links l \
                 JOIN live_entries e ON e.rowid = l.source WHERE e.kb = ?1 AND e.id = ?2",
            ))?;
            let rows = sql(out.query_map([&node.kb, &node.id], |r| {
                Ok((node.clone(), key(r, 0)?, r.get(2)?))
            }))?;
            for edge in rows {
                level.push(sql(edge)?);
            }
            if q.include_backlinks {
                let mut inc = sql(c.prepare_cached(
                    "SELECT e.kb, e.id, l.relation FROM links l \
                     JOIN live_entries e ON e.rowid = l.source WHERE l.target_kb = ?1 AND l.target_id = ?2",
                ))?;
                let rows = sql(inc.query_map([&node.kb, &node.id], |r| {
                    Ok((key(r, 0)?, node.clone(), r.get(2)?))
                }))?;
                for edge in rows {
                    level.push(sql(edge)?);
                }
            }
        }
        let admitted = builder.add_level(level);
        let titles = admitted.iter().map(title_of).collect::<Result<Vec<_>>>()?;
        builder.set_titles(titles);
    }
    Ok(builder.finish())
}
