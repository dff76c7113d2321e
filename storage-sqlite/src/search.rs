//! Full-text search on FTS5 with BM25 ranking (`SearchStore`).

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, OptionalExtension};
use storage_core::*;

use crate::entries::entries_by_rowids;
use crate::sql::{filter_sql, fts5_match, BM25_WEIGHTS};
use crate::store::{live_rowid_of, sql, SqliteStore};

pub(crate) mod analyze;

#[async_trait]
impl SearchStore for SqliteStore {
    async fn search(&self, query: &str, filter: &Filter) -> Result<Vec<SearchHit>> {
        let (text, fts, params) = ranking(query, filter)?;
        let offset = filter.offset;
        // Rank on (rowid, score, key) only, then load the page's entries and snippets:
        // SQLite would otherwise carry every matching row's full text (and build its
        // snippet) through the sort, not only the page it returns.
        self.run(move |c, _| {
            let ranked = rank(c, &text, &params)?;
            let ids: Vec<i64> = ranked.iter().map(|r| r.0).collect();
            let mut entries = entries_by_rowids(c, &ids)?;
            let mut out = Vec::with_capacity(ranked.len());
            for (i, (rowid, score, _)) in ranked.into_iter().enumerate() {
                let Some(entry) = entries.remove(&rowid) else {
                    continue;
                };
                out.push(SearchHit {
                    entry,
                    score: score.max(0.0),
                    rank: offset + i + 1,
                    snippet: snippet(c, &fts, rowid)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn search_ranked(&self, query: &str, filter: &Filter) -> Result<Vec<RankedKey>> {
        let (text, _, params) = ranking(query, filter)?;
        let offset = filter.offset;
        self.run(move |c, _| {
            Ok(rank(c, &text, &params)?
                .into_iter()
                .enumerate()
                .map(|(i, (_, score, key))| RankedKey {
                    key,
                    score: score.max(0.0),
                    rank: offset + i + 1,
                })
                .collect())
        })
        .await
    }

    async fn snippets(&self, query: &str, keys: &[EntryKey]) -> Result<Vec<Snippet>> {
        let fts = fts5_match(&parse_query(query)?);
        let keys = keys.to_vec();
        self.run(move |c, _| {
            keys.iter()
                .map(|key| match live_rowid_of(c, key)? {
                    Some(rowid) => snippet(c, &fts, rowid),
                    None => Ok(Snippet::default()),
                })
                .collect()
        })
        .await
    }
}

/// The ranking statement of a query under a filter, its FTS5 match text, its parameters.
fn ranking(query: &str, filter: &Filter) -> Result<(String, String, Vec<SqlValue>)> {
    let node = parse_query(query)?;
    let w = filter_sql(filter)?;
    let text = format!(
        "SELECT e.rowid, -bm25(entries_fts, {BM25_WEIGHTS}) AS score, e.kb, e.id \
         FROM entries_fts JOIN live_entries e ON e.rowid = entries_fts.rowid \
         WHERE entries_fts MATCH ?{} \
         ORDER BY score DESC, e.kb ASC, e.id ASC LIMIT {} OFFSET {}",
        w.and_clause(),
        filter.effective_limit(),
        filter.offset
    );
    let fts = fts5_match(&node);
    let mut params = vec![SqlValue::Text(fts.clone())];
    params.extend(w.params);
    Ok((text, fts, params))
}

/// The page of (rowid, score, key), best first.
fn rank(
    c: &rusqlite::Connection,
    text: &str,
    params: &[SqlValue],
) -> Result<Vec<(i64, f64, EntryKey)>> {
    let mut s = sql(c.prepare_cached(text))?;
    sql(s
        .query_map(params_from_iter(params.iter()), |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                EntryKey::new(r.get::<_, String>(2)?, r.get::<_, String>(3)?),
            ))
        })
        .and_then(|rows| rows.collect()))
}

/// FTS5's snippet of one row for a match text (empty when the row does not match).
fn snippet(c: &rusqlite::Connection, fts: &str, rowid: i64) -> Result<Snippet> {
    let mut snip = sql(c.prepare_cached(
        "SELECT snippet(entries_fts, -1, char(2), char(3), '…', 24) FROM entries_fts \
         WHERE entries_fts MATCH ?1 AND rowid = ?2",
    ))?;
    let marked: Option<String> = sql(snip.query_row(params![fts, rowid], |r| r.get(0)).optional())?;
    Ok(marked.map_or_else(Snippet::default, |m| Snippet::from_marked(&m)))
}
