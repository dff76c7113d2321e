//! Entries: write, read, list, count, the timeline (`EntryStore`), and the full-text
//! index writes that go with them.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use storage_core::*;

use crate::error::map_json;
use crate::rows::{from_micros, read_entry, ENTRY_COLUMNS};
use crate::sql::{filter_sql, order_by};
use crate::store::{execute, kb_exists, now, query, rowid_of, sql, SqliteStore};

#[async_trait]
impl EntryStore for SqliteStore {
    async fn upsert_entries(&self, entries: &[NewEntry]) -> Result<Vec<Entry>> {
        check_batch(entries)?;
        let entries: Vec<NewEntry> = entries
            .iter()
            .map(NewEntry::normalized)
            .collect::<Result<_>>()?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.run(move |c, _| {
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let now = now();
            let mut known = HashSet::new();
            let mut out = Vec::with_capacity(entries.len());
            let mut fts = Vec::with_capacity(entries.len());
            for e in &entries {
                let (entry, op) = upsert_in(&tx, e, now, &mut known)?;
                out.push(entry);
                fts.extend(op);
            }
            apply_fts(&tx, &fts)?;
            sql(tx.commit())?;
            Ok(out)
        })
        .await
    }

    async fn get_entry(&self, key: &EntryKey) -> Result<Option<Entry>> {
        let key = key.clone();
        self.run(move |c, _| get_entry_by_key(c, &key)).await
    }

    async fn get_entries(&self, keys: &[EntryKey]) -> Result<Vec<Entry>> {
        let keys = keys.to_vec();
        self.run(move |c, _| {
            let mut out = Vec::with_capacity(keys.len());
            for k in &keys {
                if let Some(e) = get_entry_by_key(c, k)? {
                    out.push(e);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete_entry(&self, key: &EntryKey) -> Result<bool> {
        let key = key.clone();
        self.run(move |c, shared| {
            let mut vectors = shared.vectors.write().expect("vector lock");
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let Some(rowid) = rowid_of(&tx, &key)? else {
                return Ok(false);
            };
            fts_delete_where(&tx, "rowid = ?1", &rowid)?;
            // Vector, queue item, tags, links, star and memberships cascade.
            execute(&tx, "DELETE FROM entries WHERE rowid = ?1", [rowid])?;
            sql(tx.commit())?;
            if let Some(idx) = vectors.as_mut() {
                idx.remove(rowid);
            }
            Ok(true)
        })
        .await
    }

    async fn list_entries(&self, filter: &Filter) -> Result<Vec<Entry>> {
        let w = filter_sql(filter)?;
        let text = format!(
            "SELECT {ENTRY_COLUMNS} FROM live_entries e {} {} LIMIT {} OFFSET {}",
            w.clause(),
            order_by(filter),
            filter.effective_limit(),
            filter.offset
        );
        self.run(move |c, _| query_entries(c, &text, &w.params))
            .await
    }

    async fn count_entries(&self, filter: &Filter) -> Result<u64> {
        let w = filter_sql(filter)?;
        let text = format!("SELECT COUNT(*) FROM live_entries e {}", w.clause());
        self.run(move |c, _| {
            sql(c.query_row(&text, params_from_iter(w.params.iter()), |r| {
                r.get::<_, i64>(0)
            }))
            .map(|n| n as u64)
        })
        .await
    }

    async fn entry_types(&self, filter: &Filter) -> Result<Vec<(String, u64)>> {
        let w = filter_sql(filter)?;
        let text = format!(
            "SELECT e.entry_type, COUNT(*) FROM live_entries e {} GROUP BY e.entry_type ORDER BY e.entry_type",
            w.clause()
        );
        self.run(move |c, _| {
            query(c, &text, params_from_iter(w.params.iter()), |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
            })
        })
        .await
    }

    async fn timeline(&self, filter: &Filter) -> Result<Vec<Entry>> {
        let w = filter_sql(filter)?;
        let text = format!(
            "SELECT {ENTRY_COLUMNS} FROM live_entries e WHERE e.date IS NOT NULL{} \
             ORDER BY e.date ASC, e.kb ASC, e.id ASC LIMIT {} OFFSET {}",
            w.and_clause(),
            filter.effective_limit(),
            filter.offset
        );
        self.run(move |c, _| query_entries(c, &text, &w.params))
            .await
    }
}

pub(crate) fn upsert_in(
    c: &Connection,
    e: &NewEntry,
    now: i64,
    known_kbs: &mut HashSet<String>,
) -> Result<(Entry, Option<FtsOp>)> {
    if !known_kbs.contains(&e.kb) {
        if !kb_exists(c, &e.kb)? {
            return Err(StorageError::kb_not_found(&e.kb));
        }
        known_kbs.insert(e.kb.clone());
    }
    type Old = (i64, String, [String; 4]);
    let old: Option<Old> = sql(c
        .prepare_cached(
            "SELECT rowid, text_hash, title, tags_text, summary, body FROM entries \
             WHERE kb = ?1 AND id = ?2",
        )
        .and_then(|mut s| {
            s.query_row([&e.kb, &e.id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?],
                ))
            })
            .optional()
        }))?;
    let fts_new = [
        e.title.clone(),
        e.tags.join(" "),
        e.summary.clone(),
        e.body.clone(),
    ];
    let content_hash = e.content_hash();
    let text_hash = e.text_hash();
    let tags = serde_json::to_string(&e.tags).map_err(map_json)?;
    let links = serde_json::to_string(&e.links).map_err(map_json)?;
    let sources = serde_json::to_string(&e.sources).map_err(map_json)?;
    let metadata = serde_json::to_string(&e.metadata).map_err(map_json)?;
    let (rowid, created): (i64, i64) = sql(c
        .prepare_cached(
            "INSERT INTO entries (kb, id, entry_type, title, summary, body, tags_text, tags, links, \
             sources, metadata, date, importance, status, assignee, lifecycle, source_path, \
             created_at, updated_at, content_hash, text_hash, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?18, ?19, ?20, ?21) \
             ON CONFLICT (kb, id) DO UPDATE SET entry_type = excluded.entry_type, \
             title = excluded.title, summary = excluded.summary, body = excluded.body, \
             tags_text = excluded.tags_text, tags = excluded.tags, links = excluded.links, \
             sources = excluded.sources, metadata = excluded.metadata, date = excluded.date, \
             importance = excluded.importance, status = excluded.status, \
             assignee = excluded.assignee, lifecycle = excluded.lifecycle, \
             source_path = excluded.source_path, updated_at = excluded.updated_at, \
             content_hash = excluded.content_hash, text_hash = excluded.text_hash, \
             created_at = CASE WHEN entries.expires_at <= excluded.updated_at \
                 THEN excluded.created_at ELSE entries.created_at END, \
             expires_at = excluded.expires_at \
             RETURNING rowid, created_at",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    e.kb,
                    e.id,
                    e.entry_type,
                    e.title,
                    e.summary,
                    e.body,
                    fts_new[1],
                    tags,
                    links,
                    sources,
                    metadata,
                    e.date.map(|d| d.to_string()),
                    e.importance,
                    e.status,
                    e.assignee,
                    e.lifecycle.as_str(),
                    e.source_path,
                    now,
                    content_hash,
                    text_hash,
                    e.expires_at.map(|t| t.timestamp_micros()),
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        }))?;
    if old.is_some() {
        sql(c
            .prepare_cached("DELETE FROM entry_tags WHERE entry = ?1")
            .and_then(|mut s| s.execute([rowid])))?;
        sql(c
            .prepare_cached("DELETE FROM links WHERE source = ?1")
            .and_then(|mut s| s.execute([rowid])))?;
    }
    {
        let mut ins = sql(c.prepare_cached("INSERT INTO entry_tags (entry, tag) VALUES (?1, ?2)"))?;
        for t in &e.tags {
            sql(ins.execute(params![rowid, t]))?;
        }
        let mut ins = sql(c.prepare_cached(
            "INSERT INTO links (source, position, target_kb, target_id, relation, note) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        ))?;
        for (i, l) in e.links.iter().enumerate() {
            let target_kb = l.target_kb.as_deref().unwrap_or(&e.kb);
            sql(ins.execute(params![
                rowid, i as i64, target_kb, l.target, l.relation, l.note
            ]))?;
        }
    }
    let has_text = !(e.title.is_empty() && e.summary.is_empty() && e.body.is_empty());
    if !has_text {
        sql(c
            .prepare_cached("DELETE FROM embed_queue WHERE entry = ?1")
            .and_then(|mut s| s.execute([rowid])))?;
    } else if old.as_ref().is_none_or(|(_, h, _)| *h != text_hash) {
        // A claimed item keeps its lease; its stale hash makes `complete` leave it queued.
        sql(c
            .prepare_cached(
                "INSERT INTO embed_queue (entry, text_hash, enqueued_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (entry) DO UPDATE SET text_hash = excluded.text_hash, \
                 attempts = 0, last_error = NULL, state = 'pending', \
                 enqueued_at = excluded.enqueued_at",
            )
            .and_then(|mut s| s.execute(params![rowid, text_hash, now])))?;
    }
    let fts = match old {
        None => Some(FtsOp {
            rowid,
            old: None,
            new: fts_new,
        }),
        Some((_, _, old_text)) if old_text != fts_new => Some(FtsOp {
            rowid,
            old: Some(old_text),
            new: fts_new,
        }),
        Some(_) => None,
    };
    Ok((
        e.clone()
            .into_stored(from_micros(created), from_micros(now), content_hash),
        fts,
    ))
}

/// A pending change to the full-text index, applied after the batch's other writes.
///
/// FTS5 flushes its in-memory index at every statement savepoint once it takes part in a
/// transaction, and upserts with foreign keys open one per statement. Writing the index
/// last (not from triggers) lets it flush once per batch; with triggers the flushes and
/// segment merges were about half of the ingest time (callgrind).
pub(crate) struct FtsOp {
    rowid: i64,
    /// Title, tags text, summary, body as indexed before (FTS5 'delete' needs them).
    old: Option<[String; 4]>,
    new: [String; 4],
}

pub(crate) fn apply_fts(c: &Connection, ops: &[FtsOp]) -> Result<()> {
    let mut del = sql(c.prepare_cached(
        "INSERT INTO entries_fts (entries_fts, rowid, title, tags_text, summary, body) \
         VALUES ('delete', ?1, ?2, ?3, ?4, ?5)",
    ))?;
    let mut ins = sql(c.prepare_cached(
        "INSERT INTO entries_fts (rowid, title, tags_text, summary, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    ))?;
    for op in ops {
        if let Some([t, g, s, b]) = &op.old {
            sql(del.execute(params![op.rowid, t, g, s, b]))?;
        }
        let [t, g, s, b] = &op.new;
        sql(ins.execute(params![op.rowid, t, g, s, b]))?;
    }
    Ok(())
}

/// Removes rows from the full-text index before the rows themselves are deleted.
pub(crate) fn fts_delete_where(
    c: &Connection,
    condition: &str,
    param: &dyn rusqlite::ToSql,
) -> Result<()> {
    sql(c.execute(
        &format!(
            "INSERT INTO entries_fts (entries_fts, rowid, title, tags_text, summary, body) \
             SELECT 'delete', rowid, title, tags_text, summary, body FROM entries WHERE {condition}"
        ),
        [param],
    ))
    .map(|_| ())
}

pub(crate) fn get_entry_by_key(c: &Connection, key: &EntryKey) -> Result<Option<Entry>> {
    sql(c
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM live_entries e WHERE e.kb = ?1 AND e.id = ?2"
        ))
        .and_then(|mut s| {
            s.query_row([&key.kb, &key.id], |r| read_entry(r, 0))
                .optional()
        }))
}

pub(crate) fn entries_by_rowids(c: &Connection, rowids: &[i64]) -> Result<HashMap<i64, Entry>> {
    let ids = serde_json::to_string(rowids).map_err(map_json)?;
    let rows = query(
        c,
        &format!(
            "SELECT e.rowid, {ENTRY_COLUMNS} FROM live_entries e \
             WHERE e.rowid IN (SELECT value FROM json_each(?1))"
        ),
        [ids],
        |r| Ok((r.get::<_, i64>(0)?, read_entry(r, 1)?)),
    )?;
    Ok(rows.into_iter().collect())
}

pub(crate) fn query_entries(c: &Connection, text: &str, params: &[SqlValue]) -> Result<Vec<Entry>> {
    query(c, text, params_from_iter(params.iter()), |r| {
        read_entry(r, 0)
    })
}
