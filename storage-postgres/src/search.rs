//! Full-text search with BM25 (`SearchStore`): the query is analysed and planned in
//! `search/bm25.rs`, its terms' blocks read in one statement, the candidates ranked here
//! and their page fetched (filtered) in another; snippets in `search/snippet.rs`.

pub(crate) mod analyze;
mod bm25;
mod snippet;

use async_trait::async_trait;
use serde_json::Value;
use storage_core::*;

use crate::rows::{get, key_of, read_entry, ENTRY_WIDTH};
use crate::store::PgStore;
use bm25::{page_sql, plan, postings_sql, query_words, rank, Block, Plan, STATS_SQL};

/// Candidates sent with the first page statement, per entry of `offset + limit` (more
/// are sent, four times as many each round, while the filter leaves the page short).
const CANDIDATES_PER_HIT: usize = 4;
const MIN_CANDIDATES: usize = 256;

#[async_trait]
impl SearchStore for PgStore {
    async fn search(&self, query: &str, filter: &Filter) -> Result<Vec<SearchHit>> {
        let Some((plan, rows)) = self.keyword_page(query, filter, false).await? else {
            return Ok(Vec::new());
        };
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let entry = read_entry(r, 0)?;
                Ok(SearchHit {
                    snippet: plan.highlighter.snippet(&snippet_text(
                        &entry.title,
                        &entry.summary,
                        &entry.body,
                    )),
                    entry,
                    score: get::<f64>(r, ENTRY_WIDTH)?.max(0.0),
                    rank: filter.offset + i + 1,
                })
            })
            .collect()
    }

    async fn search_ranked(&self, query: &str, filter: &Filter) -> Result<Vec<RankedKey>> {
        let Some((_, rows)) = self.keyword_page(query, filter, true).await? else {
            return Ok(Vec::new());
        };
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(RankedKey {
                    key: key_of(r, 0)?,
                    score: get::<f64>(r, 2)?.max(0.0),
                    rank: filter.offset + i + 1,
                })
            })
            .collect()
    }

    async fn snippets(&self, query: &str, keys: &[EntryKey]) -> Result<Vec<Snippet>> {
        let conn = self.conn().await?;
        // The query's candidates decide which keys match (as they decide `search`'s).
        let Some((plan, ranked)) = self
            .keyword_candidates(&conn, query, &Filter::new())
            .await?
        else {
            return Ok(vec![Snippet::default(); keys.len()]);
        };
        let kbs: Vec<&str> = keys.iter().map(|k| k.kb.as_str()).collect();
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        let docs: Vec<i64> = ranked.iter().map(|c| c.0).collect();
        let tsquery = plan.tsquery();
        let rows = conn
            .query(
                "SELECT i.ord::int, e.title, e.summary, e.body \
                 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS i(kb, id, ord) \
                 JOIN live_entries e ON e.kb = i.kb AND e.id = i.id \
                 WHERE e.doc = ANY($3::bigint[]) \
                 AND ($4::text IS NULL OR e.tsv @@ $4::text::tsquery)",
                &[&kbs, &ids, &docs, &tsquery],
            )
            .await
            .map_err(self.pg())?;
        let mut out = vec![Snippet::default(); keys.len()];
        for r in &rows {
            let i = get::<i32>(r, 0)? as usize - 1;
            let (title, summary, body): (String, String, String) =
                (get(r, 1)?, get(r, 2)?, get(r, 3)?);
            out[i] = plan
                .highlighter
                .snippet(&snippet_text(&title, &summary, &body));
        }
        Ok(out)
    }
}

/// The text a snippet is cut from: title, summary and body, one per line.
fn snippet_text(title: &str, summary: &str, body: &str) -> String {
    format!("{title}\n{summary}\n{body}")
}

impl PgStore {
    /// The page of a keyword query: its rows (entries with their scores, or with
    /// `keys_only` just kb, id and score) and the plan that made them; `None` when
    /// nothing can match.
    async fn keyword_page(
        &self,
        query: &str,
        filter: &Filter,
        keys_only: bool,
    ) -> Result<Option<(Plan, Vec<tokio_postgres::Row>)>> {
        let conn = self.conn().await?;
        let Some((plan, ranked)) = self.keyword_candidates(&conn, query, filter).await? else {
            return Ok(None);
        };
        let want = filter.offset + filter.effective_limit();
        let mut take = (want * CANDIDATES_PER_HIT).max(MIN_CANDIDATES);
        let rows = loop {
            let cut = cut_at(&ranked, take);
            let (sql, p) = page_sql(&plan, filter, &ranked[..cut], keys_only)?;
            let rows = match p.typed() {
                Some(typed) => conn.query_cached(&sql, &typed).await,
                None => conn.query(&sql, &p.refs()).await,
            }
            .map_err(self.pg())?;
            // Short only because the filter turned candidates away: send more.
            if rows.len() >= filter.effective_limit() || cut == ranked.len() {
                break rows;
            }
            take = take.saturating_mul(4);
        };
        Ok(Some((plan, rows)))
    }
}

/// How many of the best candidates to send: `take`, and every candidate tied with the
/// last of them (so the (kb, id) order among equal scores is decided by the database
/// over all of them).
fn cut_at(ranked: &[(i64, f64)], take: usize) -> usize {
    if take >= ranked.len() {
        return ranked.len();
    }
    let last = ranked[take - 1].1;
    take + ranked[take..].iter().take_while(|c| c.1 == last).count()
}

impl PgStore {
    /// `EXPLAIN (FORMAT JSON)` of the two statements a keyword query runs, as an array
    /// (diagnostics and tests).
    #[doc(hidden)]
    pub async fn explain_search(&self, query: &str, filter: &Filter) -> Result<Value> {
        let conn = self.conn().await?;
        let node = parse_query(query)?;
        let stems = self
            .inner
            .lexicon
            .stems(&**conn, query_words(&node))
            .await
            .map_err(self.pg())?;
        let Some(plan) = plan(&node, &stems) else {
            return Ok(Value::Null);
        };
        let Some((_, ranked)) = self.keyword_candidates(&conn, query, filter).await? else {
            return Ok(Value::Null);
        };
        drop(conn);
        let (postings, p) = postings_sql(&plan);
        let first = self.explain(&postings, &p).await?;
        let (page, p) = page_sql(
            &plan,
            filter,
            &ranked[..cut_at(&ranked, MIN_CANDIDATES)],
            false,
        )?;
        let second = self.explain(&page, &p).await?;
        Ok(Value::Array(vec![first, second]))
    }

    /// The query's plan and its candidates, best first (`None`: nothing can match).
    async fn keyword_candidates(
        &self,
        conn: &crate::pool::Connection,
        query: &str,
        filter: &Filter,
    ) -> Result<Option<(Plan, Vec<(i64, f64)>)>> {
        let node = parse_query(query)?;
        filter.validate()?;
        let client: &tokio_postgres::Client = conn;
        let stems = self
            .inner
            .lexicon
            .stems(client, query_words(&node))
            .await
            .map_err(self.pg())?;
        let Some(plan) = plan(&node, &stems) else {
            return Ok(None);
        };
        let (sql, p) = postings_sql(&plan);
        let typed = p.typed().expect("text arrays only");
        // Issued together: pipelined on the one connection.
        let (stats, rows) = futures_util::try_join!(
            client.query_one(STATS_SQL, &[]),
            conn.query_cached(&sql, &typed)
        )
        .map_err(self.pg())?;
        let (n, avgdl): (f64, f64) = (get(&stats, 0)?, get(&stats, 1)?);
        let blocks: Vec<Block> = rows
            .iter()
            .map(|r| {
                Ok(Block {
                    term: get(r, 0)?,
                    n: get(r, 1)?,
                    docs: get(r, 2)?,
                    tfs: get(r, 3)?,
                    dls: get(r, 4)?,
                })
            })
            .collect::<Result<_>>()?;
        let c = &self.inner.config;
        let ranked = rank(&plan, &blocks, n, avgdl, c.bm25_k1, c.bm25_b);
        Ok(Some((plan, ranked)))
    }
}

#[cfg(test)]
mod tests {
    use super::cut_at;

    #[test]
    fn the_cut_keeps_every_candidate_tied_with_the_last() {
        let ranked = [(1, 3.0), (2, 2.0), (3, 2.0), (4, 2.0), (5, 1.0)];
        assert_eq!(cut_at(&ranked, 1), 1);
        assert_eq!(cut_at(&ranked, 2), 4);
        assert_eq!(cut_at(&ranked, 4), 4);
        assert_eq!(cut_at(&ranked, 9), 5);
    }
}
