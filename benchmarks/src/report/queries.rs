//! The query table: every query kind on both backends at one size, with 1 and 8
//! clients, beside the raw-engine baselines.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use pgvector::Vector;
use search_hybrid::{SearchConfig, SearchMode, SearchRequest, Searcher};
use serde::Serialize;
use storage_core::prelude::*;
use storage_core::{EntryKey, Filter, SemanticQuery};

use super::measure::{measure, measure_blocking, Latency};
use super::Fixture;
use crate::{keyword_queries, raw, FixedQuery, K};

/// One measured query kind on one backend.
#[derive(Debug, Clone, Serialize)]
pub struct QueryRow {
    pub size: usize,
    /// `keyword`, `semantic`, `hybrid`, `get` or `list`.
    pub kind: &'static str,
    /// The case within the kind (`2terms_and`, `tag_1pct`, …).
    pub case: String,
    /// `sqlite`, `postgres`, or a baseline: `raw_sqlite` (FTS5), `raw_postgres` (the
    /// same SQL without the layer), `raw_scan` (an in-memory scan of the vectors).
    pub backend: &'static str,
    pub clients: usize,
    /// Results on the first page (a sanity check that both backends did the same work).
    pub hits: usize,
    pub latency: Latency,
}

type BoxFut = Pin<Box<dyn Future<Output = usize> + Send>>;
type Op = Arc<dyn Fn(usize) -> BoxFut + Send + Sync>;

/// Queries the protocol runs, as closures over a store: the argument picks the query
/// vector or id, so repeated runs do not all hit one cached row.
fn protocol_ops(
    fx: &Fixture,
    store: Arc<dyn Store>,
    searcher: Arc<Searcher>,
) -> Vec<(&'static str, String, Op)> {
    let mut ops: Vec<(&'static str, String, Op)> = Vec::new();
    let page = Filter::new().limit(K);
    for q in keyword_queries(&fx.corpus) {
        let (store, page, text) = (store.clone(), page.clone(), q.query.clone());
        ops.push((
            "keyword",
            q.name.to_string(),
            Arc::new(move |_| {
                let (store, page, text) = (store.clone(), page.clone(), text.clone());
                Box::pin(async move { store.search(&text, &page).await.expect("search").len() })
            }),
        ));
    }
    for (case, filter) in fx.semantic_filters() {
        let (store, vectors) = (store.clone(), fx.query_vectors.clone());
        ops.push((
            "semantic",
            case.to_string(),
            Arc::new(move |i| {
                let mut q = SemanticQuery::new(vectors[i % vectors.len()].clone(), K);
                if let Some(f) = &filter {
                    q = q.filter(f.clone());
                }
                let store = store.clone();
                Box::pin(async move { store.semantic_search(&q).await.expect("semantic").len() })
            }),
        ));
    }
    let req = SearchRequest::new(fx.hybrid_query(), SearchMode::Hybrid).filter(page.clone());
    ops.push((
        "hybrid",
        "rrf".into(),
        Arc::new(move |_| {
            let (searcher, req) = (searcher.clone(), req.clone());
            Box::pin(async move { searcher.search(&req).await.expect("hybrid").hits.len() })
        }),
    ));
    let (s, n) = (store.clone(), fx.size);
    ops.push((
        "get",
        "by_id".into(),
        Arc::new(move |i| {
            let s = s.clone();
            // A stride coprime with every size, so ids spread over the table.
            let key = EntryKey::new("bench", format!("e{:06}", (i * 7919) % n));
            Box::pin(async move { s.get_entry(&key).await.expect("get").iter().count() })
        }),
    ));
    for (case, filter) in fx.list_filters() {
        let s = store.clone();
        ops.push((
            "list",
            case.to_string(),
            Arc::new(move |_| {
                let (s, f) = (s.clone(), filter.clone());
                Box::pin(async move { s.list_entries(&f).await.expect("list").len() })
            }),
        ));
    }
    ops
}

/// Every query kind, interleaving the backends case by case so a slow spell of the
/// machine does not land on one backend only.
pub(super) async fn run(fx: &Fixture, warmup: usize, runs: usize) -> Vec<QueryRow> {
    let mut rows = Vec::new();
    let lite = protocol_ops(fx, fx.sqlite.clone(), fx.searchers["sqlite"].clone());
    let pg = protocol_ops(fx, fx.pg.clone(), fx.searchers["postgres"].clone());
    for ((kind, case, a), (_, _, b)) in lite.into_iter().zip(pg) {
        for clients in [1, 8] {
            for (backend, op) in [("sqlite", &a), ("postgres", &b)] {
                let hits = op(0).await;
                let op = op.clone();
                let latency = measure(clients, warmup, runs, move |i| {
                    let f = op(i);
                    async move {
                        f.await;
                    }
                })
                .await;
                eprintln!(
                    "  {kind}/{case} {backend} ×{clients}: p50 {:.2} ms, {:.0} q/s",
                    latency.p50_ms, latency.qps
                );
                rows.push(QueryRow {
                    size: fx.size,
                    kind,
                    case: case.clone(),
                    backend,
                    clients,
                    hits,
                    latency,
                });
            }
        }
    }
    rows.extend(baselines(fx, warmup, runs).await);
    rows
}

/// The same keyword and semantic work without the layer, on one client.
async fn baselines(fx: &Fixture, warmup: usize, runs: usize) -> Vec<QueryRow> {
    let mut rows = Vec::new();
    let row = |kind, case: &str, backend, hits, latency| QueryRow {
        size: fx.size,
        kind,
        case: case.to_string(),
        backend,
        clients: 1,
        hits,
        latency,
    };
    let raw_pg_search = raw::postgres_search(&fx.raw_table);
    for q in keyword_queries(&fx.corpus) {
        {
            let lite = fx.raw_sqlite.lock().expect("raw SQLite");
            let mut stmt = lite.prepare(raw::SQLITE_SEARCH).expect("raw FTS5 query");
            let count = |stmt: &mut rusqlite::Statement<'_>| {
                stmt.query_map([&q.query], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(2)?))
                })
                .expect("raw FTS5 search")
                .count()
            };
            let hits = count(&mut stmt);
            let l = measure_blocking(warmup, runs, |_| {
                count(&mut stmt);
            });
            rows.push(row("keyword", q.name, "raw_sqlite", hits, l));
        }
        let client = fx.raw_pg.clone();
        let hits = client
            .query(raw_pg_search.as_str(), &[&q.tsquery])
            .await
            .expect("raw Postgres search")
            .len();
        let (sql, tsq) = (Arc::new(raw_pg_search.clone()), q.tsquery.clone());
        let l = measure(1, warmup, runs, move |_| {
            let (client, sql, tsq) = (client.clone(), sql.clone(), tsq.clone());
            async move {
                client
                    .query(sql.as_str(), &[&tsq])
                    .await
                    .expect("raw search");
            }
        })
        .await;
        rows.push(row("keyword", q.name, "raw_postgres", hits, l));
    }
    // Semantic, unfiltered: a scan of the same vectors in memory (what SQLite's exact
    // search cannot beat) and pgvector's HNSW at the store's ef_search.
    let vectors = fx.query_vectors.clone();
    let matrix = fx.matrix();
    let l = measure_blocking(warmup, runs, |i| {
        raw::scan(&matrix, &vectors[i % vectors.len()], K);
    });
    rows.push(row("semantic", "unfiltered", "raw_scan", K, l));
    drop(matrix);
    let client = fx.raw_pg.clone();
    client
        .batch_execute(&format!("SET hnsw.ef_search = {}", super::EF_SEARCH))
        .await
        .expect("set ef_search");
    let sql = Arc::new(format!(
        "SELECT entry FROM {}.vectors ORDER BY embedding <=> $1 LIMIT {K}",
        fx.pg_store.schema()
    ));
    let l = measure(1, warmup, runs, move |i| {
        let (client, sql) = (client.clone(), sql.clone());
        let v = Vector::from(vectors[i % vectors.len()].clone());
        async move {
            client.query(sql.as_str(), &[&v]).await.expect("raw knn");
        }
    })
    .await;
    rows.push(row("semantic", "unfiltered", "raw_postgres", K, l));
    rows
}

/// A searcher for the hybrid case: the query embedder returns a fixed corpus vector,
/// so the figure is the layer's work, not a model's.
pub(super) async fn searcher(store: Arc<dyn Store>, fx_vector: Vec<f32>) -> Arc<Searcher> {
    let embedder = Arc::new(FixedQuery(fx_vector));
    Arc::new(
        Searcher::new(store, embedder, SearchConfig::default())
            .await
            .expect("a hybrid searcher"),
    )
}
