//! Full-text search with BM25 (`SearchStore`): the statement is built in `search/bm25.rs`,
//! snippets in `search/snippet.rs`.

pub(crate) mod analyze;
mod bm25;
mod snippet;

use async_trait::async_trait;
use serde_json::Value;
use storage_core::*;

use tokio_postgres::GenericClient;

use crate::rows::{get, read_entry, ENTRY_WIDTH};
use crate::sql::Params;
use crate::store::PgStore;
use bm25::{query_words, search_sql};
use snippet::Highlighter;

#[async_trait]
impl SearchStore for PgStore {
    async fn search(&self, query: &str, filter: &Filter) -> Result<Vec<SearchHit>> {
        let conn = self.conn().await?;
        let Some((sql, p, highlighter)) = self.keyword_statement(&**conn, query, filter).await?
        else {
            return Ok(Vec::new());
        };
        let rows = match p.typed() {
            Some(typed) => conn.query_cached(&sql, &typed).await,
            None => conn.query(&sql, &p.refs()).await,
        }
        .map_err(self.pg())?;
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let entry = read_entry(r, 0)?;
                let text = format!("{}\n{}\n{}", entry.title, entry.summary, entry.body);
                Ok(SearchHit {
                    snippet: highlighter.snippet(&text),
                    entry,
                    score: get::<f64>(r, ENTRY_WIDTH)?.max(0.0),
                    rank: filter.offset + i + 1,
                })
            })
            .collect()
    }
}

impl PgStore {
    /// `EXPLAIN (FORMAT JSON)` of the keyword query `search` runs (diagnostics and tests).
    #[doc(hidden)]
    pub async fn explain_search(&self, query: &str, filter: &Filter) -> Result<Value> {
        let conn = self.conn().await?;
        let Some((sql, params, _)) = self.keyword_statement(&**conn, query, filter).await? else {
            return Ok(Value::Null);
        };
        drop(conn);
        self.explain(&sql, &params).await
    }

    /// The keyword search statement for this store's BM25 parameters, with the query's
    /// words stemmed (from the cache, or looked up on `client`); `None` when no word of
    /// the query is indexed.
    pub(crate) async fn keyword_statement<C: GenericClient + Sync>(
        &self,
        client: &C,
        query: &str,
        filter: &Filter,
    ) -> Result<Option<(String, Params, Highlighter)>> {
        let node = parse_query(query)?;
        filter.validate()?;
        let stems = self
            .inner
            .lexicon
            .stems(client, query_words(&node))
            .await
            .map_err(self.pg())?;
        let c = &self.inner.config;
        search_sql(&node, &stems, filter, c.bm25_k1, c.bm25_b)
    }
}
