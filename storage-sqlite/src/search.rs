//! Full-text search on FTS5 with BM25 ranking (`SearchStore`).

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter};
use storage_core::*;

use crate::entries::entries_by_rowids;
use crate::sql::{filter_sql, fts5_match, BM25_WEIGHTS};
use crate::store::{sql, SqliteStore};

pub(crate) mod analyze;

#[async_trait]
impl SearchStore for SqliteStore {
    async fn search(&self, query: &str, filter: &Filter) -> Result<Vec<SearchHit>> {
        let node = parse_query(query)?;
        let w = filter_sql(filter)?;
        // Rank on (rowid, score, key) only, then load the page's entries and snippets:
        // SQLite would otherwise carry every matching row's full text (and build its
        // snippet) through the sort, not only the page it returns.
        let text = format!(
            "SELECT e.rowid, -bm25(entries_fts, {BM25_WEIGHTS}) AS score \
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
        let offset = filter.offset;
        self.run(move |c, _| {
            let mut s = sql(c.prepare_cached(&text))?;
            let ranked: Vec<(i64, f64)> = sql(s
                .query_map(params_from_iter(params.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .and_then(|rows| rows.collect()))?;
            let ids: Vec<i64> = ranked.iter().map(|r| r.0).collect();
            let mut entries = entries_by_rowids(c, &ids)?;
            let mut snip = sql(c.prepare_cached(
                "SELECT snippet(entries_fts, -1, char(2), char(3), '…', 24) FROM entries_fts \
                 WHERE entries_fts MATCH ?1 AND rowid = ?2",
            ))?;
            let mut out = Vec::with_capacity(ranked.len());
            for (i, (rowid, score)) in ranked.into_iter().enumerate() {
                let Some(entry) = entries.remove(&rowid) else {
                    continue;
                };
                let snippet: String = sql(snip.query_row(params![fts, rowid], |r| r.get(0)))?;
                out.push(SearchHit {
                    entry,
                    score: score.max(0.0),
                    rank: offset + i + 1,
                    snippet: Snippet::from_marked(&snippet),
                });
            }
            Ok(out)
        })
        .await
    }
}
