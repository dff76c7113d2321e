//! [`PgStore`]: the [`Store`] protocol on tokio-postgres + bb8 + pgvector.
//!
//! Connections are taken from the pool for one statement or one transaction and returned
//! at once. Every connection has `search_path = <schema>, public` and the configured
//! `statement_timeout`, so SQL below names tables unqualified.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bb8::{Pool, PooledConnection};
use bb8_postgres::PostgresConnectionManager;
use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use pgvector::Vector;
use serde_json::{Map, Value};
use storage_core::*;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, ToSql, Type};
use tokio_postgres::{GenericClient, NoTls, Row};

use crate::config::{redact, PgConfig};
use crate::error::{map_json, map_pg, map_pool};
use crate::keyword::search_sql;
use crate::pool::Manager;
use crate::schema::{migrate, PORTER_CONFIG, SCHEMA_VERSION};
use crate::snippet::Highlighter;
use crate::sql::{filter_sql, order_by, Params, ENTRY_COLUMNS, ENTRY_WIDTH};

struct Inner {
    pool: Pool<Manager>,
    config: PgConfig,
    /// `host:port`, for error messages (never the full URL: it may hold a password).
    endpoint: String,
    /// The embedding space never changes once fixed, so it is cached after first read.
    /// The embedding space once read (cleared by a reset in this process).
    space: std::sync::RwLock<Option<EmbeddingSpace>>,
    /// Drops the schema when the last clone goes away (test stores only).
    drop_schema: bool,
}

/// The Postgres backend. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("endpoint", &self.inner.endpoint)
            .field("schema", &self.inner.config.schema)
            .finish()
    }
}

fn now() -> DateTime<Utc> {
    // Postgres keeps microseconds; truncate so returned and stored values are equal.
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("in range")
}

fn kb_missing(kb: &str) -> StorageError {
    StorageError::not_found(format!("knowledge base {kb:?}"))
}

fn entry_missing(key: &EntryKey) -> StorageError {
    StorageError::not_found(format!("entry {key}"))
}

/// Reads [`ENTRY_COLUMNS`] starting at column `at`.
pub(crate) fn read_entry(r: &Row, at: usize) -> Entry {
    let Json(tags): Json<Vec<String>> = r.get(at + 6);
    let Json(links): Json<Vec<Link>> = r.get(at + 7);
    let Json(sources): Json<Vec<Source>> = r.get(at + 8);
    let Json(metadata): Json<Map<String, Value>> = r.get(at + 9);
    let lifecycle: String = r.get(at + 14);
    Entry {
        kb: r.get(at),
        id: r.get(at + 1),
        entry_type: r.get(at + 2),
        title: r.get(at + 3),
        summary: r.get(at + 4),
        body: r.get(at + 5),
        tags,
        links,
        sources,
        metadata,
        date: r.get(at + 10),
        importance: r.get(at + 11),
        status: r.get(at + 12),
        assignee: r.get(at + 13),
        lifecycle: Lifecycle::parse(&lifecycle).unwrap_or_default(),
        source_path: r.get(at + 15),
        created_at: r.get(at + 16),
        updated_at: r.get(at + 17),
        content_hash: r.get(at + 18),
        expires_at: r.get(at + 19),
    }
}

fn key_of(r: &Row, at: usize) -> EntryKey {
    EntryKey::new(r.get::<_, String>(at), r.get::<_, String>(at + 1))
}

impl PgStore {
    /// Connects, creates the schema if needed and applies migrations.
    pub async fn open(config: PgConfig) -> Result<Self> {
        Self::open_inner(config, false).await
    }

    /// Opens a store in a fresh random schema that is dropped with the store's last
    /// clone. For tests: every test gets its own namespace and leaves nothing behind.
    pub async fn open_for_test(url: &str) -> Result<Self> {
        let mut config = PgConfig::new(url);
        config.pool_max_size = 8;
        Self::open_for_test_with(config).await
    }

    /// [`open_for_test`](Self::open_for_test) with other settings; the schema is replaced.
    pub async fn open_for_test_with(mut config: PgConfig) -> Result<Self> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        config.schema = format!(
            "kb_test_{}_{}_{}",
            std::process::id(),
            Utc::now().timestamp_subsec_nanos(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        Self::open_inner(config, true).await
    }

    async fn open_inner(config: PgConfig, drop_schema: bool) -> Result<Self> {
        config.validate()?;
        let mut pg: tokio_postgres::Config = config.url.parse().map_err(|_| {
            StorageError::invalid_input(format!(
                "the Postgres URL {:?} is not valid: expected postgres://user:password@host:port/database",
                redact(&config.url)
            ))
        })?;
        let endpoint = endpoint_of(&pg);
        // Session settings of every pooled connection. ef_search is a per-store value, so it
        // is set once per connection here rather than with SET LOCAL in a transaction around
        // each query (which would cost BEGIN, SET and COMMIT round trips per query). Iterative
        // scans (pgvector 0.8) keep walking the HNSW graph until LIMIT rows pass a filter,
        // instead of filtering only the first ef_search candidates. JIT is off: these are
        // millisecond queries whose inflated cost estimates (lateral postings scans) would
        // otherwise trigger 20–30 ms of LLVM compilation per statement.
        pg.options(format!(
            "-c search_path={},public -c statement_timeout={} -c hnsw.ef_search={} \
             -c hnsw.iterative_scan=relaxed_order -c jit=off",
            config.schema,
            config.statement_timeout.as_millis(),
            config.ef_search
        ));
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(config.connection_timeout);
        }
        let manager = Manager(PostgresConnectionManager::new(pg, NoTls));
        // No retry loop inside bb8: a refused connection surfaces at once as Unavailable
        // (with the endpoint) instead of turning into a generic timeout.
        let pool = Pool::builder()
            .max_size(config.pool_max_size.max(1))
            .min_idle(config.pool_min_idle)
            .connection_timeout(config.connection_timeout)
            .idle_timeout(config.idle_timeout)
            .retry_connection(false)
            // Test connections on checkout: after a server restart every pooled connection
            // is dead, and without the test each one fails one caller. The test asks the
            // client whether its connection has ended (no round trip; see pool.rs).
            .test_on_check_out(true)
            .build(manager)
            .await
            .map_err(|e| map_pg(e, &endpoint))?;
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                config: config.clone(),
                endpoint,
                space: std::sync::RwLock::new(None),
                drop_schema,
            }),
        };
        {
            let mut conn = store.conn().await?;
            migrate(
                &mut conn,
                &config.schema,
                &config.text_search_config,
                &store.inner.endpoint,
            )
            .await?;
        }
        if let Some(space) = &config.embedding {
            store.ensure_embedding_space(space).await?;
        }
        Ok(store)
    }

    async fn conn(&self) -> Result<PooledConnection<'_, Manager>> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| map_pool(e, &self.inner.endpoint))
    }

    fn pg(&self) -> impl Fn(tokio_postgres::Error) -> StorageError + '_ {
        move |e| map_pg(e, &self.inner.endpoint)
    }

    /// `host:port` of the server.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// Drops the HNSW index, for bulk loads: inserting into an existing HNSW graph costs
    /// several times more per vector than building it once afterwards. Semantic search
    /// stays correct (exact) until [`build_vector_index`](Self::build_vector_index).
    pub async fn drop_vector_index(&self) -> Result<()> {
        let conn = self.conn().await?;
        conn.batch_execute("DROP INDEX IF EXISTS vectors_hnsw")
            .await
            .map_err(self.pg())
    }

    /// The server's and pgvector's versions, for status reports.
    pub async fn server_versions(&self) -> Result<Vec<(String, String)>> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                "SELECT current_setting('server_version'), \
                 (SELECT extversion FROM pg_extension WHERE extname = 'vector')",
                &[],
            )
            .await
            .map_err(self.pg())?;
        let server: String = row.try_get(0).map_err(self.pg())?;
        let vector: Option<String> = row.try_get(1).map_err(self.pg())?;
        Ok(vec![
            ("postgres".to_owned(), server),
            (
                "pgvector".to_owned(),
                vector.unwrap_or_else(|| "missing".into()),
            ),
        ])
    }

    /// (Re)builds the HNSW index with the configured `m` and `ef_construction`. Give the
    /// server a large `maintenance_work_mem` so the graph is built in memory.
    pub async fn build_vector_index(&self) -> Result<()> {
        let Some(space) = self.space().await? else {
            return Ok(());
        };
        if space.dimension > 2000 {
            return Ok(());
        }
        let c = &self.inner.config;
        let conn = self.conn().await?;
        conn.batch_execute(&format!(
            "SET statement_timeout = 0; \
             CREATE INDEX IF NOT EXISTS vectors_hnsw ON vectors USING hnsw (embedding public.vector_cosine_ops) \
             WITH (m = {}, ef_construction = {}); RESET statement_timeout",
            c.hnsw_m, c.hnsw_ef_construction
        ))
        .await
        .map_err(self.pg())
    }

    /// The schema holding this store's tables.
    pub fn schema(&self) -> &str {
        &self.inner.config.schema
    }

    /// `EXPLAIN (FORMAT JSON)` of the keyword query `search` runs (diagnostics and tests).
    #[doc(hidden)]
    pub async fn explain_search(&self, query: &str, filter: &Filter) -> Result<Value> {
        let (sql, params, _) = self.keyword_statement(query, filter)?;
        self.explain(&sql, &params).await
    }

    /// The keyword search statement for this store's BM25 parameters and configuration.
    fn keyword_statement(
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

    /// `EXPLAIN (FORMAT JSON)` of the k-NN query `semantic_search` runs first.
    #[doc(hidden)]
    pub async fn explain_semantic(&self, q: &SemanticQuery) -> Result<Value> {
        q.validate()?;
        let plan = if lifecycle_only(&q.filter) {
            KnnPlan::IndexOverfetch
        } else {
            KnnPlan::IndexFiltered
        };
        let (sql, params) = semantic_sql(q, plan, q.k * 2 + 10)?;
        self.explain(&sql, &params).await
    }

    async fn explain(&self, sql: &str, params: &Params) -> Result<Value> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(&format!("EXPLAIN (FORMAT JSON) {sql}"), &params.refs())
            .await
            .map_err(self.pg())?;
        Ok(row.get::<_, Json<Value>>(0).0)
    }

    async fn space(&self) -> Result<Option<EmbeddingSpace>> {
        if let Some(s) = self.inner.space.read().expect("space lock").clone() {
            return Ok(Some(s));
        }
        let conn = self.conn().await?;
        let s = read_space(&**conn, &self.inner.endpoint).await?;
        if let Some(s) = &s {
            *self.inner.space.write().expect("space lock") = Some(s.clone());
        }
        Ok(s)
    }

    async fn entries_where(&self, sql: &str, params: &Params) -> Result<Vec<Entry>> {
        let conn = self.conn().await?;
        let rows = conn.query(sql, &params.refs()).await.map_err(self.pg())?;
        Ok(rows.iter().map(|r| read_entry(r, 0)).collect())
    }

    async fn semantic(&self, q: &SemanticQuery) -> Result<Vec<SemanticHit>> {
        let Some(space) = self.space().await? else {
            return Ok(Vec::new());
        };
        check_vector(&q.vector, space.dimension)?;
        if q.k == 0 {
            return Ok(Vec::new());
        }
        // No transaction: ef_search and iterative scans are session settings of every pooled
        // connection (see `open_inner`), so a query is one statement.
        let conn = self.conn().await?;
        let plan = if lifecycle_only(&q.filter) {
            KnnPlan::IndexOverfetch
        } else {
            KnnPlan::IndexFiltered
        };
        // Twice k plus a margin nearly always leaves k entries (archived entries and
        // several passages of one entry are the exceptions). k is at most MAX_K + 1
        // (validated; `similar` adds one), so none of this arithmetic can overflow.
        let fetch = q.k * 2 + 10;
        let (sql, params) = semantic_sql(q, plan, fetch)?;
        let mut rows = conn.query(&sql, &params.refs()).await.map_err(self.pg())?;
        if rows.len() < q.k {
            // The index walk can stop short (scan limits, very selective filters, many
            // passages of one entry). When more entries qualify than were returned, walk
            // further, then answer with an exact scan, so k hits come back whenever k
            // entries match.
            let (count_sql, count_params) = semantic_count_sql(q)?;
            let eligible: i64 = conn
                .query_one(&count_sql, &count_params.refs())
                .await
                .map_err(self.pg())?
                .get(0);
            if eligible as usize > rows.len() {
                let (sql, params) = semantic_sql(q, plan, fetch * 10)?;
                rows = conn.query(&sql, &params.refs()).await.map_err(self.pg())?;
            }
            if rows.len() < q.k && eligible as usize > rows.len() {
                let (sql, params) = semantic_sql(q, KnnPlan::Exact, 0)?;
                rows = conn.query(&sql, &params.refs()).await.map_err(self.pg())?;
            }
        }
        Ok(rows
            .iter()
            .enumerate()
            .map(|(i, r)| SemanticHit {
                entry: read_entry(r, 0),
                score: r.get::<_, f64>(ENTRY_WIDTH) as f32,
                rank: i + 1,
                passage: r.get::<_, i32>(ENTRY_WIDTH + 1) as u32,
                passage_text: r.get(ENTRY_WIDTH + 2),
            })
            .collect())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.drop_schema {
            return;
        }
        // Test stores drop their schema. Drop cannot be async and may run inside a
        // runtime, so the cleanup runs on its own thread with its own small runtime.
        let url = self.config.url.clone();
        let schema = self.config.schema.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok((client, conn)) = tokio_postgres::connect(&url, NoTls).await {
                        tokio::spawn(conn);
                        let _ = client
                            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                            .await;
                    }
                });
            }
        });
        let _ = handle.join();
    }
}

fn endpoint_of(pg: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match pg.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

async fn read_space(c: &impl GenericClient, endpoint: &str) -> Result<Option<EmbeddingSpace>> {
    let rows = c
        .query(
            "SELECT key, value FROM meta WHERE key IN ('embedding_model', 'embedding_dimension')",
            &[],
        )
        .await
        .map_err(|e| map_pg(e, endpoint))?;
    let mut model = None;
    let mut dim = None;
    for r in rows {
        match r.get::<_, String>(0).as_str() {
            "embedding_model" => model = Some(r.get::<_, String>(1)),
            _ => dim = r.get::<_, String>(1).parse().ok(),
        }
    }
    Ok(match (model, dim) {
        (Some(model), Some(dimension)) => Some(EmbeddingSpace { model, dimension }),
        _ => None,
    })
}

/// How the k-NN query reaches the vectors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KnnPlan {
    /// Only a lifecycle condition: walk the HNSW index over `vectors` alone (the shape the
    /// planner always serves from the index), over-fetch, then drop archived entries.
    IndexOverfetch,
    /// Real filters: join `entries`; with iterative scans the index walk continues until
    /// LIMIT rows pass the filter, when the planner chooses the index at all.
    IndexFiltered,
    /// Exact scan (sort key the index cannot provide), the fallback that guarantees k.
    Exact,
}

fn lifecycle_only(f: &Filter) -> bool {
    f.kbs.is_empty()
        && f.entry_types.is_empty()
        && f.tags.is_empty()
        && f.normalized_tag_prefix().is_none()
        && f.statuses.is_empty()
        && f.date_from.is_none()
        && f.date_to.is_none()
        && f.min_importance.is_none()
        && f.normalized_path_prefix().is_none()
        && f.metadata.is_empty()
}

/// The k-NN statement. Rows are passages, so the index walk fetches `fetch` passage rows
/// and `DISTINCT ON (entry)` keeps each entry's best; the caller retries with a larger
/// `fetch` (or the exact plan) when fewer than k entries come back but more qualify.
fn semantic_sql(q: &SemanticQuery, plan: KnnPlan, fetch: usize) -> Result<(String, Params)> {
    let mut p = Params::default();
    let v = p.push(Vector::from(q.vector.clone()));
    let cond = filter_sql(&q.filter, &mut p)?;
    let min = match q.min_score {
        Some(m) => format!(
            " AND (v.embedding <=> {v}) <= {}",
            p.push(1.0f64 - m as f64)
        ),
        None => String::new(),
    };
    let k = p.push(q.k as i64);
    let candidates = match plan {
        // Archived entries are rare: walk `vectors` alone, filter after the walk.
        KnnPlan::IndexOverfetch => format!(
            "SELECT v.entry, v.passage, (v.embedding <=> {v}) AS dist FROM vectors v \
             WHERE TRUE{min} ORDER BY v.embedding <=> {v} LIMIT {}",
            p.push(fetch as i64)
        ),
        KnnPlan::IndexFiltered => format!(
            "SELECT v.entry, v.passage, (v.embedding <=> {v}) AS dist FROM vectors v \
             JOIN live_entries e ON e.rowid = v.entry \
             WHERE TRUE{cond}{min} ORDER BY v.embedding <=> {v} LIMIT {}",
            p.push(fetch as i64)
        ),
        // Every qualifying passage; no ORDER BY on the distance, so no index walk.
        KnnPlan::Exact => format!(
            "SELECT v.entry, v.passage, (v.embedding <=> {v}) AS dist FROM vectors v \
             JOIN live_entries e ON e.rowid = v.entry WHERE TRUE{cond}{min}"
        ),
    };
    let post = if plan == KnnPlan::IndexOverfetch {
        cond
    } else {
        String::new()
    };
    let sql = format!(
        "WITH c AS MATERIALIZED ({candidates}), \
         b AS (SELECT DISTINCT ON (c.entry) c.entry, c.passage, c.dist FROM c \
               ORDER BY c.entry, c.dist, c.passage) \
         SELECT {ENTRY_COLUMNS}, 1 - b.dist, b.passage, pv.text FROM b \
         JOIN live_entries e ON e.rowid = b.entry \
         JOIN vectors pv ON pv.entry = b.entry AND pv.passage = b.passage \
         WHERE TRUE{post} ORDER BY b.dist, e.kb, e.id LIMIT {k}"
    );
    Ok((sql, p))
}

fn semantic_count_sql(q: &SemanticQuery) -> Result<(String, Params)> {
    let mut p = Params::default();
    let cond = filter_sql(&q.filter, &mut p)?;
    let min = match q.min_score {
        Some(m) => {
            let v = p.push(Vector::from(q.vector.clone()));
            format!(
                " AND (v.embedding <=> {v}) <= {}",
                p.push(1.0f64 - m as f64)
            )
        }
        None => String::new(),
    };
    let sql = format!(
        "SELECT count(DISTINCT v.entry) FROM vectors v JOIN live_entries e ON e.rowid = v.entry WHERE TRUE{cond}{min}"
    );
    Ok((sql, p))
}

/// The collection's row id; `lock` is "" or " FOR UPDATE" (serialises edits of one collection).
async fn collection_rowid(
    c: &impl GenericClient,
    kb: &str,
    name: &str,
    lock: &str,
    endpoint: &str,
) -> Result<i64> {
    let row = c
        .query_opt(
            &format!("SELECT rowid FROM collections WHERE kb = $1 AND name = $2{lock}"),
            &[&kb, &name],
        )
        .await
        .map_err(|e| map_pg(e, endpoint))?;
    row.map(|r| r.get(0)).ok_or_else(|| {
        StorageError::not_found(format!("collection {name:?} in knowledge base {kb:?}"))
    })
}

fn scope_kb(scope: &SettingScope) -> &str {
    match scope {
        SettingScope::Global => "",
        SettingScope::Kb(kb) => kb,
    }
}

const KB_COLUMNS: &str = "name, description, expires_at, created_at";

fn read_kb(r: &Row) -> KnowledgeBase {
    KnowledgeBase {
        name: r.get(0),
        description: r.get(1),
        expires_at: r.get(2),
        created_at: r.get(3),
    }
}

fn tag_count(r: &Row) -> TagCount {
    TagCount {
        tag: r.get(0),
        count: r.get::<_, i64>(1) as u64,
    }
}

#[async_trait]
impl Store for PgStore {
    async fn create_kb(&self, kb: &NewKnowledgeBase) -> Result<KnowledgeBase> {
        kb.validate()?;
        let conn = self.conn().await?;
        let expires = kb
            .expires_at
            .map(|t| DateTime::from_timestamp_micros(t.timestamp_micros()).expect("in range"));
        let row = conn
            .query_opt(
                &format!(
                    "INSERT INTO kbs (name, description, expires_at, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO NOTHING RETURNING {KB_COLUMNS}"
                ),
                &[&kb.name, &kb.description, &expires, &now()],
            )
            .await
            .map_err(self.pg())?;
        row.map(|r| read_kb(&r))
            .ok_or_else(|| StorageError::already_exists(format!("knowledge base {:?}", kb.name)))
    }

    async fn get_kb(&self, name: &str) -> Result<Option<KnowledgeBase>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {KB_COLUMNS} FROM kbs WHERE name = $1"),
                &[&name],
            )
            .await
            .map_err(self.pg())?;
        Ok(row.map(|r| read_kb(&r)))
    }

    async fn list_kbs(&self) -> Result<Vec<KnowledgeBase>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(&format!("SELECT {KB_COLUMNS} FROM kbs ORDER BY name"), &[])
            .await
            .map_err(self.pg())?;
        Ok(rows.iter().map(read_kb).collect())
    }

    async fn delete_kb(&self, name: &str) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(self.pg())?;
        tx.execute("DELETE FROM settings WHERE kb = $1", &[&name])
            .await
            .map_err(self.pg())?;
        // Entries, tags, links, vectors, queue items, stars and collections cascade.
        let n = tx
            .execute("DELETE FROM kbs WHERE name = $1", &[&name])
            .await
            .map_err(self.pg())?;
        tx.commit().await.map_err(self.pg())?;
        Ok(n > 0)
    }

    async fn gc_expired(&self, now: DateTime<Utc>) -> Result<GcReport> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(self.pg())?;
        // One DELETE cascading to everything; the CTE's snapshot still sees the entries,
        // so the counts are what was removed.
        let rows = tx
            .query(
                "WITH gone AS (DELETE FROM kbs WHERE expires_at IS NOT NULL AND expires_at <= $1 RETURNING name) \
                 SELECT g.name, (SELECT count(*) FROM entries e WHERE e.kb = g.name) FROM gone g ORDER BY g.name",
                &[&now],
            )
            .await
            .map_err(self.pg())?;
        let removed: Vec<RemovedKnowledgeBase> = rows
            .iter()
            .map(|r| RemovedKnowledgeBase {
                name: r.get(0),
                entries: r.get::<_, i64>(1) as u64,
            })
            .collect();
        let names: Vec<String> = removed.iter().map(|r| r.name.clone()).collect();
        tx.execute("DELETE FROM settings WHERE kb = ANY($1)", &[&names])
            .await
            .map_err(self.pg())?;
        // Expired entries of the KBs that remain, as `delete_entry` removes one (vectors,
        // queue items, tags, links, stars and memberships cascade; the BM25 triggers keep
        // the statistics).
        let entries = tx
            .execute("DELETE FROM entries WHERE expires_at <= $1", &[&now])
            .await
            .map_err(self.pg())?;
        tx.commit().await.map_err(self.pg())?;
        Ok(GcReport {
            kbs: removed,
            entries,
        })
    }

    async fn upsert_entries(&self, entries: &[NewEntry]) -> Result<Vec<Entry>> {
        let entries: Vec<NewEntry> = entries
            .iter()
            .map(NewEntry::normalized)
            .collect::<Result<_>>()?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // One row per key (the last one wins): ON CONFLICT cannot touch a row twice.
        let mut last: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            last.insert((&e.kb, &e.id), i);
        }
        let mut unique: Vec<usize> = last.values().copied().collect();
        unique.sort_unstable();
        let prepared: Vec<(usize, String, String, Value, Value, Value)> = unique
            .iter()
            .map(|&i| {
                let e = &entries[i];
                Ok((
                    i,
                    e.content_hash(),
                    e.text_hash(),
                    serde_json::to_value(&e.tags).map_err(map_json)?,
                    serde_json::to_value(&e.links).map_err(map_json)?,
                    serde_json::to_value(&e.sources).map_err(map_json)?,
                ))
            })
            .collect::<Result<_>>()?;
        let ts = now();
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(&pg)?;

        let kbs: Vec<String> = entries
            .iter()
            .map(|e| e.kb.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let found: HashSet<String> = tx
            .query("SELECT name FROM kbs WHERE name = ANY($1)", &[&kbs])
            .await
            .map_err(&pg)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if let Some(missing) = entries.iter().find(|e| !found.contains(&e.kb)) {
            return Err(kb_missing(&missing.kb));
        }

        tx.batch_execute(
            "CREATE TEMP TABLE IF NOT EXISTS kb_staging (ord int, kb text, id text, entry_type text, \
             title text, summary text, body text, tags_text text, tags jsonb, links jsonb, sources jsonb, \
             metadata jsonb, date date, importance int, status text, assignee text, lifecycle text, \
             source_path text, content_hash text, text_hash text, expires_at timestamptz) \
             ON COMMIT DELETE ROWS",
        )
        .await
        .map_err(&pg)?;
        // Binary COPY into the staging table, then one INSERT … ON CONFLICT from it, in key
        // order: rows are locked in the order they are inserted, so two batches holding the
        // same keys in opposite orders would otherwise deadlock.
        let sink = tx
            .copy_in(
                "COPY kb_staging (ord, kb, id, entry_type, title, summary, body, tags_text, tags, links, \
                 sources, metadata, date, importance, status, assignee, lifecycle, source_path, \
                 content_hash, text_hash, expires_at) FROM STDIN (FORMAT binary)",
            )
            .await
            .map_err(&pg)?;
        let types = [
            Type::INT4,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::JSONB,
            Type::JSONB,
            Type::JSONB,
            Type::JSONB,
            Type::DATE,
            Type::INT4,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
        ];
        let writer = BinaryCopyInWriter::new(sink, &types);
        futures_util::pin_mut!(writer);
        for (i, content_hash, text_hash, tags, links, sources) in &prepared {
            let e = &entries[*i];
            let ord = *i as i32;
            let tags_text = e.tags.join(" ");
            let metadata = Value::Object(e.metadata.clone());
            writer
                .as_mut()
                .write(&[
                    &ord,
                    &e.kb,
                    &e.id,
                    &e.entry_type,
                    &e.title,
                    &e.summary,
                    &e.body,
                    &tags_text,
                    tags,
                    links,
                    sources,
                    &metadata,
                    &e.date,
                    &e.importance,
                    &e.status,
                    &e.assignee,
                    &e.lifecycle.as_str(),
                    &e.source_path,
                    content_hash,
                    text_hash,
                    &e.expires_at,
                ])
                .await
                .map_err(&pg)?;
        }
        writer.finish().await.map_err(&pg)?;

        let old: HashMap<i32, (i64, String)> = tx
            .query(
                "SELECT s.ord, e.rowid, e.text_hash FROM kb_staging s JOIN entries e ON e.kb = s.kb AND e.id = s.id",
                &[],
            )
            .await
            .map_err(&pg)?
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        let written: HashMap<(String, String), (i64, DateTime<Utc>)> = tx
            .query(
                "INSERT INTO entries (kb, id, entry_type, title, summary, body, tags_text, tags, links, sources, \
                 metadata, date, importance, status, assignee, lifecycle, source_path, created_at, updated_at, \
                 content_hash, text_hash, expires_at) \
                 SELECT kb, id, entry_type, title, summary, body, tags_text, tags, links, sources, metadata, date, \
                 importance, status, assignee, lifecycle, source_path, $1, $1, content_hash, text_hash, expires_at \
                 FROM kb_staging ORDER BY kb COLLATE \"C\", id COLLATE \"C\" \
                 ON CONFLICT (kb, id) DO UPDATE SET entry_type = EXCLUDED.entry_type, title = EXCLUDED.title, \
                 summary = EXCLUDED.summary, body = EXCLUDED.body, tags_text = EXCLUDED.tags_text, \
                 tags = EXCLUDED.tags, links = EXCLUDED.links, sources = EXCLUDED.sources, \
                 metadata = EXCLUDED.metadata, date = EXCLUDED.date, importance = EXCLUDED.importance, \
                 status = EXCLUDED.status, assignee = EXCLUDED.assignee, lifecycle = EXCLUDED.lifecycle, \
                 source_path = EXCLUDED.source_path, updated_at = EXCLUDED.updated_at, \
                 content_hash = EXCLUDED.content_hash, text_hash = EXCLUDED.text_hash, \
                 created_at = CASE WHEN entries.expires_at <= EXCLUDED.updated_at \
                     THEN EXCLUDED.created_at ELSE entries.created_at END, \
                 expires_at = EXCLUDED.expires_at \
                 RETURNING kb, id, rowid, created_at",
                &[&ts],
            )
            .await
            .map_err(&pg)?
            .iter()
            .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
            .collect();

        let replaced: Vec<i64> = old.values().map(|(rowid, _)| *rowid).collect();
        if !replaced.is_empty() {
            let p: [&(dyn ToSql + Sync); 1] = [&replaced];
            let del_tags = tx.execute("DELETE FROM entry_tags WHERE entry = ANY($1)", &p);
            let del_links = tx.execute("DELETE FROM links WHERE source = ANY($1)", &p);
            futures_util::try_join!(del_tags, del_links).map_err(&pg)?;
        }
        let (mut tag_rows, mut tag_vals) = (Vec::new(), Vec::new());
        let (mut l_src, mut l_pos, mut l_kb, mut l_id, mut l_rel, mut l_note) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        let (mut q_rows, mut q_hash, mut unqueue) = (Vec::new(), Vec::new(), Vec::new());
        for (i, _, text_hash, ..) in &prepared {
            let e = &entries[*i];
            let rowid = written[&(e.kb.clone(), e.id.clone())].0;
            for t in &e.tags {
                tag_rows.push(rowid);
                tag_vals.push(t.clone());
            }
            for (pos, l) in e.links.iter().enumerate() {
                l_src.push(rowid);
                l_pos.push(pos as i32);
                l_kb.push(l.target_kb.clone().unwrap_or_else(|| e.kb.clone()));
                l_id.push(l.target.clone());
                l_rel.push(l.relation.clone());
                l_note.push(l.note.clone());
            }
            let has_text = !(e.title.is_empty() && e.summary.is_empty() && e.body.is_empty());
            if !has_text {
                unqueue.push(rowid);
            } else if old.get(&(*i as i32)).is_none_or(|(_, h)| h != text_hash) {
                q_rows.push(rowid);
                q_hash.push(text_hash.clone());
            }
        }
        let tag_params: [&(dyn ToSql + Sync); 2] = [&tag_rows, &tag_vals];
        let link_params: [&(dyn ToSql + Sync); 6] = [&l_src, &l_pos, &l_kb, &l_id, &l_rel, &l_note];
        let queue_params: [&(dyn ToSql + Sync); 3] = [&q_rows, &q_hash, &ts];
        let unqueue_params: [&(dyn ToSql + Sync); 1] = [&unqueue];
        // Issued together: tokio-postgres pipelines them over the one connection.
        let ins_tags = tx.execute(
            "INSERT INTO entry_tags (entry, tag) SELECT * FROM unnest($1::bigint[], $2::text[])",
            &tag_params,
        );
        let ins_links = tx.execute(
            "INSERT INTO links (source, position, target_kb, target_id, relation, note) \
             SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[])",
            &link_params,
        );
        // A claimed item keeps its lease; its stale hash makes `complete` leave it queued.
        let enqueue = tx.execute(
            "INSERT INTO embed_queue (entry, text_hash, enqueued_at) \
             SELECT u.entry, u.hash, $3 FROM unnest($1::bigint[], $2::text[]) AS u(entry, hash) \
             ON CONFLICT (entry) DO UPDATE SET text_hash = EXCLUDED.text_hash, attempts = 0, \
             last_error = NULL, state = 'pending', enqueued_at = EXCLUDED.enqueued_at",
            &queue_params,
        );
        let dequeue = tx.execute(
            "DELETE FROM embed_queue WHERE entry = ANY($1)",
            &unqueue_params,
        );
        futures_util::try_join!(ins_tags, ins_links, enqueue, dequeue).map_err(&pg)?;
        tx.commit().await.map_err(&pg)?;

        // Hashes were computed once per written row; an earlier duplicate of a key (not
        // written) still reports its own content.
        let mut hashes: HashMap<usize, String> = prepared
            .into_iter()
            .map(|(i, hash, ..)| (i, hash))
            .collect();
        Ok(entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let (_, created) = written[&(e.kb.clone(), e.id.clone())];
                let hash = hashes.remove(&i).unwrap_or_else(|| e.content_hash());
                e.clone().into_stored(created, ts, hash)
            })
            .collect())
    }

    async fn get_entry(&self, key: &EntryKey) -> Result<Option<Entry>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM live_entries e WHERE e.kb = $1 AND e.id = $2"
                ),
                &[&key.kb, &key.id],
            )
            .await
            .map_err(self.pg())?;
        Ok(row.map(|r| read_entry(&r, 0)))
    }

    async fn get_entries(&self, keys: &[EntryKey]) -> Result<Vec<Entry>> {
        let kbs: Vec<&str> = keys.iter().map(|k| k.kb.as_str()).collect();
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(kb, id, ord) \
                     JOIN live_entries e ON e.kb = k.kb AND e.id = k.id ORDER BY k.ord"
                ),
                &[&kbs, &ids],
            )
            .await
            .map_err(self.pg())?;
        Ok(rows.iter().map(|r| read_entry(r, 0)).collect())
    }

    async fn delete_entry(&self, key: &EntryKey) -> Result<bool> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                "DELETE FROM entries WHERE kb = $1 AND id = $2",
                &[&key.kb, &key.id],
            )
            .await
            .map_err(self.pg())?;
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
        let conn = self.conn().await?;
        let n: i64 = conn
            .query_one(
                &format!("SELECT count(*) FROM live_entries e WHERE TRUE{cond}"),
                &p.refs(),
            )
            .await
            .map_err(self.pg())?
            .get(0);
        Ok(n as u64)
    }

    async fn entry_types(&self, filter: &Filter) -> Result<Vec<(String, u64)>> {
        let mut p = Params::default();
        let cond = filter_sql(filter, &mut p)?;
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!("SELECT e.entry_type, count(*) FROM live_entries e WHERE TRUE{cond} GROUP BY 1 ORDER BY 1"),
                &p.refs(),
            )
            .await
            .map_err(self.pg())?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
            .collect())
    }

    async fn tags(&self, kb: Option<&str>) -> Result<Vec<TagCount>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT t.tag, count(*) FROM entry_tags t JOIN live_entries e ON e.rowid = t.entry \
                 WHERE $1::text IS NULL OR e.kb = $1 GROUP BY t.tag ORDER BY count(*) DESC, t.tag",
                &[&kb],
            )
            .await
            .map_err(self.pg())?;
        Ok(rows.iter().map(tag_count).collect())
    }

    async fn tags_with_prefix(&self, kb: Option<&str>, prefix: &str) -> Result<Vec<TagCount>> {
        let p = prefix.trim().trim_end_matches('/');
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT t.tag, count(*) FROM entry_tags t JOIN live_entries e ON e.rowid = t.entry \
                 WHERE ($1::text IS NULL OR e.kb = $1) AND (t.tag = $2 OR (t.tag >= $3 AND t.tag < $4)) \
                 GROUP BY t.tag ORDER BY t.tag",
                &[&kb, &p, &format!("{p}/"), &format!("{p}0")],
            )
            .await
            .map_err(self.pg())?;
        Ok(rows.iter().map(tag_count).collect())
    }

    async fn outlinks(&self, key: &EntryKey) -> Result<Vec<Link>> {
        Ok(self
            .get_entry(key)
            .await?
            .map(|e| e.links)
            .unwrap_or_default())
    }

    async fn backlinks(&self, key: &EntryKey) -> Result<Vec<Backlink>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT e.kb, e.id, l.relation, l.note FROM links l JOIN live_entries e ON e.rowid = l.source \
                 WHERE l.target_kb = $1 AND l.target_id = $2 ORDER BY e.kb, e.id, l.position",
                &[&key.kb, &key.id],
            )
            .await
            .map_err(self.pg())?;
        Ok(rows
            .iter()
            .map(|r| Backlink {
                source: key_of(r, 0),
                relation: r.get(2),
                note: r.get(3),
            })
            .collect())
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
            .map(|r| r.get::<_, String>(0))
            .ok_or_else(|| entry_missing(&q.start))?;
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
                .map(|r| (key_of(r, 0), key_of(r, 2), r.get(4)))
                .collect();
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
                .map(|r| (key_of(r, 0), r.get(2)))
                .collect();
            builder.set_titles(admitted.iter().map(|k| titles.get(k).cloned()).collect());
        }
        Ok(builder.finish())
    }

    async fn most_linked(&self, kb: Option<&str>, limit: usize) -> Result<Vec<LinkCount>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT t.kb, t.id, count(DISTINCT l.source) AS n FROM links l \
                 JOIN live_entries t ON t.kb = l.target_kb AND t.id = l.target_id \
                 JOIN live_entries s ON s.rowid = l.source \
                 WHERE l.source <> t.rowid AND ($1::text IS NULL OR t.kb = $1) \
                 GROUP BY t.rowid, t.kb, t.id ORDER BY n DESC, t.kb, t.id LIMIT $2",
                // Clamped: `as i64` turned usize::MAX into -1, which LIMIT rejects.
                &[&kb, &i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(self.pg())?;
        Ok(rows
            .iter()
            .map(|r| LinkCount {
                key: key_of(r, 0),
                count: r.get::<_, i64>(2) as u64,
            })
            .collect())
    }

    async fn orphans(&self, kb: Option<&str>) -> Result<Vec<EntryKey>> {
        let conn = self.conn().await?;
        let rows = conn
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
            .await
            .map_err(self.pg())?;
        Ok(rows.iter().map(|r| key_of(r, 0)).collect())
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

    async fn search(&self, query: &str, filter: &Filter) -> Result<Vec<SearchHit>> {
        let (sql, p, highlighter) = self.keyword_statement(query, filter)?;
        let conn = self.conn().await?;
        let rows = match p.typed() {
            Some(typed) => conn.query_cached(&sql, &typed).await,
            None => conn.query(&sql, &p.refs()).await,
        }
        .map_err(self.pg())?;
        Ok(rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let entry = read_entry(r, 0);
                let text = format!("{}\n{}\n{}", entry.title, entry.summary, entry.body);
                SearchHit {
                    snippet: highlighter.snippet(&text),
                    entry,
                    score: r.get::<_, f64>(ENTRY_WIDTH).max(0.0),
                    rank: filter.offset + i + 1,
                }
            })
            .collect())
    }

    async fn embedding_space(&self) -> Result<Option<EmbeddingSpace>> {
        self.space().await
    }

    async fn reset_embedding_space(&self) -> Result<u64> {
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(&pg)?;
        // The same lock as fixing the space: a concurrent first use waits for the reset.
        tx.batch_execute("LOCK TABLE meta IN EXCLUSIVE MODE")
            .await
            .map_err(&pg)?;
        let ts = now();
        let leased: i64 = tx
            .query_one(
                "SELECT count(*) FROM embed_queue WHERE state = 'pending' AND lease_until > $1",
                &[&ts],
            )
            .await
            .map_err(&pg)?
            .try_get(0)
            .map_err(&pg)?;
        if leased > 0 {
            return Err(StorageError::conflict(format!(
                "{leased} entries are being embedded right now; stop the embedding workers, \
                 then reset the embedding space"
            )));
        }
        tx.batch_execute(
            "DROP INDEX IF EXISTS vectors_hnsw; DELETE FROM vectors; \
             ALTER TABLE vectors ALTER COLUMN embedding TYPE public.vector; \
             DELETE FROM meta WHERE key IN ('embedding_model', 'embedding_dimension')",
        )
        .await
        .map_err(&pg)?;
        let n = tx
            .execute(
                "INSERT INTO embed_queue (entry, text_hash, enqueued_at) \
                 SELECT e.rowid, e.text_hash, $1 FROM entries e \
                 WHERE e.title <> '' OR e.summary <> '' OR e.body <> '' \
                 ON CONFLICT (entry) DO UPDATE SET text_hash = EXCLUDED.text_hash, attempts = 0, \
                 last_error = NULL, state = 'pending', worker = NULL, lease_until = NULL",
                &[&ts],
            )
            .await
            .map_err(&pg)?;
        tx.commit().await.map_err(&pg)?;
        *self.inner.space.write().expect("space lock") = None;
        Ok(n)
    }

    async fn ensure_embedding_space(&self, space: &EmbeddingSpace) -> Result<EmbeddingSpace> {
        if space.dimension == 0 || space.model.trim().is_empty() {
            return Err(StorageError::invalid_input(
                "an embedding space needs a model id and a dimension above 0",
            ));
        }
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(&pg)?;
        // Serialises concurrent first uses: only one of them fixes the space.
        tx.batch_execute("LOCK TABLE meta IN EXCLUSIVE MODE")
            .await
            .map_err(&pg)?;
        let stored = read_space(&tx, &self.inner.endpoint).await?;
        let result = match stored {
            Some(s) if s == *space => s,
            Some(s) => {
                return Err(StorageError::ModelMismatch {
                    stored_model: s.model,
                    stored_dimension: s.dimension,
                    requested_model: space.model.clone(),
                    requested_dimension: space.dimension,
                })
            }
            None => {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('embedding_model', $1), ('embedding_dimension', $2)",
                    &[&space.model, &space.dimension.to_string()],
                )
                .await
                .map_err(&pg)?;
                let d = space.dimension;
                tx.batch_execute(&format!(
                    "ALTER TABLE vectors ALTER COLUMN embedding TYPE public.vector({d})"
                ))
                .await
                .map_err(&pg)?;
                // pgvector's HNSW indexes at most 2,000 dimensions; above that, search is exact.
                if d <= 2000 {
                    let c = &self.inner.config;
                    tx.batch_execute(&format!(
                        "CREATE INDEX IF NOT EXISTS vectors_hnsw ON vectors USING hnsw (embedding public.vector_cosine_ops) \
                         WITH (m = {}, ef_construction = {})",
                        c.hnsw_m, c.hnsw_ef_construction
                    ))
                    .await
                    .map_err(&pg)?;
                }
                space.clone()
            }
        };
        tx.commit().await.map_err(&pg)?;
        *self.inner.space.write().expect("space lock") = Some(result.clone());
        Ok(result)
    }

    async fn put_passages(&self, items: &[EntryPassages]) -> Result<()> {
        let space = self.space().await?.ok_or_else(|| {
            StorageError::invalid_input(
                "no embedding space is set: call ensure_embedding_space (or configure the \
                 embedding model) before storing vectors",
            )
        })?;
        check_passages(items, space.dimension)?;
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(&pg)?;
        let kbs: Vec<&str> = items.iter().map(|i| i.key.kb.as_str()).collect();
        let ids: Vec<&str> = items.iter().map(|i| i.key.id.as_str()).collect();
        let existing: i64 = tx
            .query_one(
                "SELECT count(*) FROM entries e \
                 JOIN unnest($1::text[], $2::text[]) AS k(kb, id) ON e.kb = k.kb AND e.id = k.id",
                &[&kbs, &ids],
            )
            .await
            .map_err(&pg)?
            .get(0);
        if existing as usize != items.len() {
            for item in items {
                let found = tx
                    .query_opt(
                        "SELECT 1 FROM entries WHERE kb = $1 AND id = $2",
                        &[&item.key.kb, &item.key.id],
                    )
                    .await
                    .map_err(&pg)?;
                if found.is_none() {
                    return Err(entry_missing(&item.key));
                }
            }
        }
        tx.execute(
            "DELETE FROM vectors v USING entries e, unnest($1::text[], $2::text[]) AS k(kb, id) \
             WHERE v.entry = e.rowid AND e.kb = k.kb AND e.id = k.id",
            &[&kbs, &ids],
        )
        .await
        .map_err(&pg)?;
        let stmt = tx
            .prepare(
                "INSERT INTO vectors (entry, passage, text, embedding) \
                 SELECT rowid, $3, $4, $5 FROM entries WHERE kb = $1 AND id = $2",
            )
            .await
            .map_err(&pg)?;
        let rows: Vec<(&EntryKey, i32, Option<&str>, Vector)> = items
            .iter()
            .flat_map(|item| {
                item.passages.iter().enumerate().map(move |(i, p)| {
                    (
                        &item.key,
                        i as i32,
                        p.text.as_deref(),
                        Vector::from(p.vector.clone()),
                    )
                })
            })
            .collect();
        // Issued together: tokio-postgres pipelines them over the one connection.
        try_join_all(rows.iter().map(|(k, i, text, v)| {
            let p: [&(dyn ToSql + Sync); 5] = [&k.kb, &k.id, i, text, v];
            tx.execute_raw(&stmt, p)
        }))
        .await
        .map_err(&pg)?;
        tx.commit().await.map_err(&pg)
    }

    async fn get_passages(&self, key: &EntryKey) -> Result<Vec<StoredPassage>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT v.passage, v.text, v.embedding FROM vectors v JOIN live_entries e ON e.rowid = v.entry \
                 WHERE e.kb = $1 AND e.id = $2 ORDER BY v.passage",
                &[&key.kb, &key.id],
            )
            .await
            .map_err(self.pg())?;
        Ok(rows
            .iter()
            .map(|r| StoredPassage {
                index: r.get::<_, i32>(0) as u32,
                text: r.get(1),
                vector: r.get::<_, Vector>(2).to_vec(),
            })
            .collect())
    }

    async fn get_vector(&self, key: &EntryKey) -> Result<Option<Vec<f32>>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT v.embedding FROM vectors v JOIN live_entries e ON e.rowid = v.entry \
                 WHERE e.kb = $1 AND e.id = $2 ORDER BY v.passage LIMIT 1",
                &[&key.kb, &key.id],
            )
            .await
            .map_err(self.pg())?;
        Ok(row.map(|r| r.get::<_, Vector>(0).to_vec()))
    }

    async fn delete_vector(&self, key: &EntryKey) -> Result<bool> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                "DELETE FROM vectors v USING entries e WHERE e.rowid = v.entry AND e.kb = $1 AND e.id = $2",
                &[&key.kb, &key.id],
            )
            .await
            .map_err(self.pg())?;
        Ok(n > 0)
    }

    async fn semantic_search(&self, query: &SemanticQuery) -> Result<Vec<SemanticHit>> {
        query.validate()?;
        self.semantic(query).await
    }

    async fn similar(&self, key: &EntryKey, k: usize, filter: &Filter) -> Result<Vec<SemanticHit>> {
        // Checked before `k + 1` below; the inner query is then at most MAX_K + 1.
        check_k(k)?;
        filter.validate()?;
        let vector = self
            .get_vector(key)
            .await?
            .ok_or_else(|| StorageError::not_found(format!("vector of entry {key}")))?;
        let q = SemanticQuery {
            vector,
            k: k + 1,
            min_score: None,
            filter: filter.clone(),
        };
        let mut hits = self.semantic(&q).await?;
        hits.retain(|h| h.entry.kb != key.kb || h.entry.id != key.id);
        hits.truncate(k);
        for (i, h) in hits.iter_mut().enumerate() {
            h.rank = i + 1;
        }
        Ok(hits)
    }

    async fn vector_coverage(&self, filter: &Filter) -> Result<VectorCoverage> {
        let mut p = Params::default();
        let cond = filter_sql(filter, &mut p)?;
        let conn = self.conn().await?;
        let r = conn
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE has), count(*) FILTER (WHERE NOT has) FROM ( \
                       SELECT EXISTS (SELECT 1 FROM vectors v WHERE v.entry = e.rowid) AS has \
                       FROM live_entries e WHERE TRUE{cond}) AS x"
                ),
                &p.refs(),
            )
            .await
            .map_err(self.pg())?;
        Ok(VectorCoverage {
            with_vector: r.get::<_, i64>(0) as u64,
            without_vector: r.get::<_, i64>(1) as u64,
        })
    }

    async fn claim_embedding_batch(
        &self,
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<QueueItem>> {
        check_lease(lease)?;
        let ts = now();
        // Checked: `+` panics when the sum leaves chrono's range (it did for Duration::MAX).
        let until = chrono::Duration::from_std(lease)
            .ok()
            .and_then(|d| ts.checked_add_signed(d))
            .ok_or_else(|| StorageError::invalid_input("the lease is too long"))?;
        // Clamped: `as i64` turned usize::MAX into -1, which LIMIT rejects.
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.conn().await?;
        // SKIP LOCKED: concurrent workers pass over rows another worker is claiming right now.
        let rows = conn
            .query(
                "WITH picked AS (SELECT entry FROM embed_queue WHERE state = 'pending' \
                   AND (lease_until IS NULL OR lease_until <= $3) \
                   ORDER BY enqueued_at, entry LIMIT $4 FOR UPDATE SKIP LOCKED), \
                 claimed AS (UPDATE embed_queue q SET worker = $1, lease_until = $2 FROM picked \
                   WHERE q.entry = picked.entry RETURNING q.entry, q.attempts, q.text_hash, q.enqueued_at) \
                 SELECT e.kb, e.id, c.attempts, c.text_hash FROM claimed c JOIN entries e ON e.rowid = c.entry \
                 ORDER BY c.enqueued_at, c.entry",
                &[&worker, &until, &ts, &limit],
            )
            .await
            .map_err(self.pg())?;
        Ok(rows
            .iter()
            .map(|r| QueueItem {
                key: key_of(r, 0),
                attempts: r.get::<_, i32>(2) as u32,
                text_hash: r.get(3),
            })
            .collect())
    }

    async fn complete_embedding(&self, items: &[QueueItem]) -> Result<u64> {
        let kbs: Vec<&str> = items.iter().map(|i| i.key.kb.as_str()).collect();
        let ids: Vec<&str> = items.iter().map(|i| i.key.id.as_str()).collect();
        let hashes: Vec<&str> = items.iter().map(|i| i.text_hash.as_str()).collect();
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(&pg)?;
        let removed = tx
            .execute(
                "DELETE FROM embed_queue q USING entries e, unnest($1::text[], $2::text[], $3::text[]) AS i(kb, id, hash) \
                 WHERE e.kb = i.kb AND e.id = i.id AND q.entry = e.rowid AND q.text_hash = i.hash",
                &[&kbs, &ids, &hashes],
            )
            .await
            .map_err(&pg)?;
        // Items whose text changed while they were embedded stay queued, released for a new claim.
        tx.execute(
            "UPDATE embed_queue q SET worker = NULL, lease_until = NULL FROM entries e, \
             unnest($1::text[], $2::text[]) AS i(kb, id) WHERE e.kb = i.kb AND e.id = i.id AND q.entry = e.rowid",
            &[&kbs, &ids],
        )
        .await
        .map_err(&pg)?;
        tx.commit().await.map_err(&pg)?;
        Ok(removed)
    }

    async fn fail_embedding(
        &self,
        item: &QueueItem,
        error: &str,
        max_attempts: u32,
    ) -> Result<FailOutcome> {
        let error: String = error.chars().take(4000).collect();
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "UPDATE embed_queue q SET attempts = q.attempts + 1, last_error = $3, worker = NULL, lease_until = NULL, \
                 state = CASE WHEN q.attempts + 1 >= $4 THEN 'failed' ELSE 'pending' END \
                 FROM entries e WHERE e.rowid = q.entry AND e.kb = $1 AND e.id = $2 AND q.state = 'pending' \
                 RETURNING q.attempts, q.state",
                // Clamped: `as i32` turned u32::MAX into -1, giving up at the first failure.
                &[&item.key.kb, &item.key.id, &error, &i32::try_from(max_attempts.max(1)).unwrap_or(i32::MAX)],
            )
            .await
            .map_err(self.pg())?;
        Ok(match row {
            None => FailOutcome::NotQueued,
            Some(r) => {
                let attempts = r.get::<_, i32>(0) as u32;
                if r.get::<_, String>(1) == "failed" {
                    FailOutcome::GaveUp { attempts }
                } else {
                    FailOutcome::WillRetry { attempts }
                }
            }
        })
    }

    async fn queue_stats(&self) -> Result<QueueStats> {
        let conn = self.conn().await?;
        let r = conn
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 'pending' AND (lease_until IS NULL OR lease_until <= $1)), \
                        count(*) FILTER (WHERE state = 'pending' AND lease_until > $1), \
                        count(*) FILTER (WHERE state = 'failed') FROM embed_queue",
                &[&now()],
            )
            .await
            .map_err(self.pg())?;
        Ok(QueueStats {
            pending: r.get::<_, i64>(0) as u64,
            in_progress: r.get::<_, i64>(1) as u64,
            failed: r.get::<_, i64>(2) as u64,
        })
    }

    async fn failed_embeddings(&self) -> Result<Vec<FailedItem>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT e.kb, e.id, q.attempts, COALESCE(q.last_error, '') FROM embed_queue q \
                 JOIN entries e ON e.rowid = q.entry WHERE q.state = 'failed' ORDER BY e.kb, e.id",
                &[],
            )
            .await
            .map_err(self.pg())?;
        Ok(rows
            .iter()
            .map(|r| FailedItem {
                key: key_of(r, 0),
                attempts: r.get::<_, i32>(2) as u32,
                last_error: r.get(3),
            })
            .collect())
    }

    async fn requeue_embeddings(&self, filter: &Filter, all: bool) -> Result<u64> {
        let mut p = Params::default();
        let ts = p.push(now());
        let cond = filter_sql(filter, &mut p)?;
        let missing = if all {
            ""
        } else {
            " AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.entry = e.rowid)"
        };
        let sql = format!(
            "INSERT INTO embed_queue (entry, text_hash, enqueued_at) \
             SELECT e.rowid, e.text_hash, {ts} FROM live_entries e \
             WHERE (e.title <> '' OR e.summary <> '' OR e.body <> ''){cond}{missing} \
             ON CONFLICT (entry) DO UPDATE SET text_hash = EXCLUDED.text_hash, attempts = 0, \
             last_error = NULL, state = 'pending', worker = NULL, lease_until = NULL"
        );
        let conn = self.conn().await?;
        conn.execute(&sql, &p.refs()).await.map_err(self.pg())
    }

    async fn get_setting(&self, scope: &SettingScope, key: &str) -> Result<Option<Value>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT value FROM settings WHERE kb = $1 AND key = $2",
                &[&scope_kb(scope), &key],
            )
            .await
            .map_err(self.pg())?;
        Ok(row.map(|r| r.get::<_, Json<Value>>(0).0))
    }

    async fn set_setting(&self, scope: &SettingScope, key: &str, value: &Value) -> Result<()> {
        if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
            return Err(StorageError::invalid_input(
                "setting keys are 1-256 characters without control characters",
            ));
        }
        check_json_text("setting", value)?;
        let kb = scope_kb(scope);
        let conn = self.conn().await?;
        // The KB check and the write are one statement, so a concurrent delete cannot slip between.
        let n = conn
            .execute(
                "INSERT INTO settings (kb, key, value) SELECT $1, $2, $3 \
                 WHERE $1 = '' OR EXISTS (SELECT 1 FROM kbs WHERE name = $1) \
                 ON CONFLICT (kb, key) DO UPDATE SET value = EXCLUDED.value",
                &[&kb, &key, &Json(value)],
            )
            .await
            .map_err(self.pg())?;
        if n == 0 {
            return Err(kb_missing(kb));
        }
        Ok(())
    }

    async fn delete_setting(&self, scope: &SettingScope, key: &str) -> Result<bool> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                "DELETE FROM settings WHERE kb = $1 AND key = $2",
                &[&scope_kb(scope), &key],
            )
            .await
            .map_err(self.pg())?;
        Ok(n > 0)
    }

    async fn list_settings(&self, scope: &SettingScope) -> Result<Vec<(String, Value)>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT key, value FROM settings WHERE kb = $1 ORDER BY key",
                &[&scope_kb(scope)],
            )
            .await
            .map_err(self.pg())?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get::<_, Json<Value>>(1).0))
            .collect())
    }

    async fn star(&self, key: &EntryKey) -> Result<()> {
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(&pg)?;
        // Positions come from max+1, so concurrent stars serialise on the table lock.
        tx.batch_execute("LOCK TABLE stars IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(&pg)?;
        let n = tx
            .execute(
                "INSERT INTO stars (entry, position) \
                 SELECT e.rowid, (SELECT COALESCE(max(position), 0) + 1 FROM stars) FROM live_entries e \
                 WHERE e.kb = $1 AND e.id = $2 ON CONFLICT (entry) DO NOTHING",
                &[&key.kb, &key.id],
            )
            .await
            .map_err(&pg)?;
        if n == 0 {
            let exists = tx
                .query_opt(
                    "SELECT 1 FROM live_entries WHERE kb = $1 AND id = $2",
                    &[&key.kb, &key.id],
                )
                .await
                .map_err(&pg)?;
            if exists.is_none() {
                return Err(entry_missing(key));
            }
        }
        tx.commit().await.map_err(&pg)
    }

    async fn unstar(&self, key: &EntryKey) -> Result<bool> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                "DELETE FROM stars s USING entries e WHERE s.entry = e.rowid AND e.kb = $1 AND e.id = $2",
                &[&key.kb, &key.id],
            )
            .await
            .map_err(self.pg())?;
        Ok(n > 0)
    }

    async fn starred(&self, kb: Option<&str>) -> Result<Vec<EntryKey>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT e.kb, e.id FROM stars s JOIN live_entries e ON e.rowid = s.entry \
                 WHERE $1::text IS NULL OR e.kb = $1 ORDER BY s.position",
                &[&kb],
            )
            .await
            .map_err(self.pg())?;
        Ok(rows.iter().map(|r| key_of(r, 0)).collect())
    }

    async fn create_collection(
        &self,
        kb: &str,
        name: &str,
        description: &str,
    ) -> Result<Collection> {
        validate_name("collection name", name)?;
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(&pg)?;
        if tx
            .query_opt("SELECT 1 FROM kbs WHERE name = $1 FOR SHARE", &[&kb])
            .await
            .map_err(&pg)?
            .is_none()
        {
            return Err(kb_missing(kb));
        }
        let n = tx
            .execute(
                "INSERT INTO collections (kb, name, description) VALUES ($1, $2, $3) ON CONFLICT (kb, name) DO NOTHING",
                &[&kb, &name, &description],
            )
            .await
            .map_err(&pg)?;
        if n == 0 {
            return Err(StorageError::already_exists(format!(
                "collection {name:?} in knowledge base {kb:?}"
            )));
        }
        tx.commit().await.map_err(&pg)?;
        Ok(Collection {
            kb: kb.into(),
            name: name.into(),
            description: description.into(),
            size: 0,
        })
    }

    async fn delete_collection(&self, kb: &str, name: &str) -> Result<bool> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                "DELETE FROM collections WHERE kb = $1 AND name = $2",
                &[&kb, &name],
            )
            .await
            .map_err(self.pg())?;
        Ok(n > 0)
    }

    async fn list_collections(&self, kb: &str) -> Result<Vec<Collection>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT c.kb, c.name, c.description, \
                 (SELECT count(*) FROM collection_members m WHERE m.collection = c.rowid) \
                 FROM collections c WHERE c.kb = $1 ORDER BY c.name",
                &[&kb],
            )
            .await
            .map_err(self.pg())?;
        Ok(rows
            .iter()
            .map(|r| Collection {
                kb: r.get(0),
                name: r.get(1),
                description: r.get(2),
                size: r.get::<_, i64>(3) as u64,
            })
            .collect())
    }

    async fn add_to_collection(
        &self,
        kb: &str,
        name: &str,
        id: &str,
        position: Option<usize>,
    ) -> Result<()> {
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(&pg)?;
        // Locking the collection row serialises edits of one collection.
        let coll = collection_rowid(&tx, kb, name, " FOR UPDATE", &self.inner.endpoint).await?;
        let key = EntryKey::new(kb, id);
        let rowid: i64 = tx
            .query_opt(
                "SELECT rowid FROM live_entries WHERE kb = $1 AND id = $2",
                &[&kb, &id],
            )
            .await
            .map_err(&pg)?
            .ok_or_else(|| entry_missing(&key))?
            .get(0);
        let mut members: Vec<i64> = tx
            .query(
                "SELECT entry FROM collection_members WHERE collection = $1 ORDER BY position",
                &[&coll],
            )
            .await
            .map_err(&pg)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        members.retain(|&m| m != rowid);
        let at = position.unwrap_or(members.len()).min(members.len());
        members.insert(at, rowid);
        let positions: Vec<i32> = (0..members.len() as i32).collect();
        // Dense renumbering, as on SQLite: collections are small and edited by people.
        tx.execute(
            "DELETE FROM collection_members WHERE collection = $1",
            &[&coll],
        )
        .await
        .map_err(&pg)?;
        tx.execute(
            "INSERT INTO collection_members (collection, entry, position) SELECT $1, * FROM unnest($2::bigint[], $3::int[])",
            &[&coll, &members, &positions],
        )
        .await
        .map_err(&pg)?;
        tx.commit().await.map_err(&pg)
    }

    async fn remove_from_collection(&self, kb: &str, name: &str, id: &str) -> Result<bool> {
        let conn = self.conn().await?;
        let coll = collection_rowid(&**conn, kb, name, "", &self.inner.endpoint).await?;
        let n = conn
            .execute(
                "DELETE FROM collection_members m USING entries e \
                 WHERE m.collection = $1 AND m.entry = e.rowid AND e.kb = $2 AND e.id = $3",
                &[&coll, &kb, &id],
            )
            .await
            .map_err(self.pg())?;
        Ok(n > 0)
    }

    async fn collection_entries(&self, kb: &str, name: &str) -> Result<Vec<String>> {
        let conn = self.conn().await?;
        let coll = collection_rowid(&**conn, kb, name, "", &self.inner.endpoint).await?;
        let rows = conn
            .query(
                "SELECT e.id FROM collection_members m JOIN live_entries e ON e.rowid = m.entry \
                 WHERE m.collection = $1 ORDER BY m.position",
                &[&coll],
            )
            .await
            .map_err(self.pg())?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn claim(
        &self,
        key: &EntryKey,
        expected: Option<&str>,
        new_status: &str,
        assignee: &str,
    ) -> Result<ClaimOutcome> {
        validate_claim(new_status, assignee)?;
        let conn = self.conn().await?;
        // One conditional UPDATE is the compare-and-set: the row lock makes concurrent
        // claimers re-check the WHERE clause against the winner's version.
        let row = conn
            .query_opt(
                &format!(
                    "UPDATE entries e SET status = $1, assignee = $2, updated_at = $3 \
                     WHERE e.kb = $4 AND e.id = $5 AND e.status IS NOT DISTINCT FROM $6::text \
                     AND (e.expires_at IS NULL OR e.expires_at > now()) \
                     RETURNING {ENTRY_COLUMNS}"
                ),
                &[&new_status, &assignee, &now(), &key.kb, &key.id, &expected],
            )
            .await
            .map_err(self.pg())?;
        if let Some(r) = row {
            return Ok(ClaimOutcome::Claimed(Box::new(read_entry(&r, 0))));
        }
        let current = conn
            .query_opt(
                "SELECT status, assignee FROM live_entries WHERE kb = $1 AND id = $2",
                &[&key.kb, &key.id],
            )
            .await
            .map_err(self.pg())?;
        Ok(match current {
            Some(r) => ClaimOutcome::NotInExpectedState {
                current_status: r.get(0),
                assignee: r.get(1),
            },
            None => ClaimOutcome::NotFound,
        })
    }

    async fn cas_metadata(
        &self,
        key: &EntryKey,
        path: &str,
        expected: Option<&Value>,
        new: &Value,
    ) -> Result<CasOutcome> {
        check_json_text("metadata", new)?;
        let segs = metadata_path_segments(path)?;
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(&pg)?;
        let Some(row) = tx
            .query_opt(
                &format!("SELECT {ENTRY_COLUMNS} FROM live_entries e WHERE e.kb = $1 AND e.id = $2 FOR UPDATE"),
                &[&key.kb, &key.id],
            )
            .await
            .map_err(&pg)?
        else {
            return Ok(CasOutcome::NotFound);
        };
        let entry = read_entry(&row, 0);
        let current = metadata_get(&entry.metadata, &segs).cloned();
        if current.as_ref() != expected {
            return Ok(CasOutcome::Mismatch { current });
        }
        let mut e = entry.to_new();
        metadata_set(&mut e.metadata, &segs, new.clone())?;
        tx.execute(
            "UPDATE entries SET metadata = $1, content_hash = $2, updated_at = $3 WHERE kb = $4 AND id = $5",
            &[&Json(&e.metadata), &e.content_hash(), &now(), &key.kb, &key.id],
        )
        .await
        .map_err(&pg)?;
        tx.commit().await.map_err(&pg)?;
        Ok(CasOutcome::Swapped)
    }

    async fn optimize(&self) -> Result<()> {
        let conn = self.conn().await?;
        // Table names are fixed; the schema comes from search_path. VACUUM (one table per
        // statement: it cannot run in a transaction block) also sets the visibility map,
        // so postings are read by index-only scans.
        for table in [
            "entries",
            "postings",
            "term_df",
            "bm25_stats",
            "vectors",
            "entry_tags",
            "links",
            "embed_queue",
        ] {
            conn.batch_execute(&format!("VACUUM (ANALYZE) {table}"))
                .await
                .map_err(self.pg())?;
        }
        Ok(())
    }

    async fn health(&self) -> Result<HealthReport> {
        let space = self.space().await?;
        let conn = self.conn().await?;
        let r = conn
            .query_one(
                "SELECT (SELECT count(*) FROM kbs), (SELECT count(*) FROM entries)",
                &[],
            )
            .await
            .map_err(self.pg())?;
        drop(conn);
        let state = self.inner.pool.state();
        Ok(HealthReport {
            backend: "postgres".into(),
            schema_version: SCHEMA_VERSION,
            knowledge_bases: r.get::<_, i64>(0) as u64,
            entries: r.get::<_, i64>(1) as u64,
            embedding_space: space,
            pool: PoolStats {
                max_size: self.inner.config.pool_max_size,
                size: state.connections,
                idle: state.idle_connections,
                in_use: state.connections - state.idle_connections,
                waiting: state.statistics.pending_gets() as u32,
            },
        })
    }
}
