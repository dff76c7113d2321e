//! Full-text search with BM25 (`SearchStore`): the statement is built in `search/bm25.rs`,
//! snippets in `search/snippet.rs`.

mod bm25;
mod snippet;

use async_trait::async_trait;
use serde_json::Value;
use storage_core::*;

use crate::config::PORTER_CONFIG;
use crate::rows::{get, read_entry, ENTRY_WIDTH};
use crate::sql::Params;
use crate::store::PgStore;
use bm25::search_sql;
use snippet::Highlighter;

#[async_trait]
impl SearchStore for PgStore {
    async fn search(&self, query: &str, filter: &Filter) -> Result<Vec<SearchHit>> {
        let (sql, p, highlighter) = self.keyword_statement(query, filter)?;
        let conn = self.conn().await?;
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
        let (sql, params, _) = self.keyword_statement(query, filter)?;
        self.explain(&sql, &params).await
    }

    /// The keyword search statement for this store's BM25 parameters and configuration.
    pub(crate) fn keyword_statement(
        &self,
        query: &str,
        filter: &Filter,
    ) -> Result<(String, Params, Highlighter)> {
        let c = &self.inner.config;
        search_sql(
            query,
            filter,
            c.bm25_k1,
            c.bm25_b,
            c.text_search_config == PORTER_CONFIG,
        )
    }
}
