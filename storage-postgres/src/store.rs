//! [`PgStore`]: the pool, opening a store, and the query helpers every area file uses.
//! The protocol itself is implemented per area (`kb.rs`, `entries.rs`, …).
//!
//! Connections are taken from the pool for one statement or one transaction and returned
//! at once. Every connection has `search_path = <schema>, public` and the configured
//! `statement_timeout`, so SQL below names tables unqualified.

use std::sync::Arc;

use bb8::{Pool, PooledConnection};
use bb8_postgres::PostgresConnectionManager;
use chrono::{DateTime, Utc};
use serde_json::Value;
use storage_core::*;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{redact, PgConfig};
use crate::error::{map_pg, map_pool};
use crate::pool::Manager;
use crate::schema::migrate;
use crate::sql::Params;

pub(crate) struct Inner {
    pub(crate) pool: Pool<Manager>,
    pub(crate) config: PgConfig,
    /// `host:port`, for error messages (never the full URL: it may hold a password).
    pub(crate) endpoint: String,
    /// The embedding space never changes once fixed, so it is cached after first read.
    /// The embedding space once read (cleared by a reset in this process).
    pub(crate) space: std::sync::RwLock<Option<EmbeddingSpace>>,
    /// Stems of the words seen, for analysing entries and queries (search/analyze.rs).
    pub(crate) lexicon: crate::search::analyze::Lexicon,
    /// Single-entry upserts waiting to be written together (entries/combine.rs).
    pub(crate) combiner: crate::entries::Combiner,
    /// Upserts that may hold a connection at once: half the pool, so that many writers
    /// (each holding its connection for a whole batch) cannot leave searches waiting
    /// for one. At 32 writers of batches of 100 on a pool of 16, searches waited 1.2 s
    /// (p50) before this bound.
    pub(crate) writers: tokio::sync::Semaphore,
    /// Whether the server compresses with lz4 (read at open; see entries.rs `stage`).
    pub(crate) lz4: std::sync::atomic::AtomicBool,
    /// Drops the schema when the last clone goes away (test stores only).
    drop_schema: bool,
    /// How to open one more connection outside the pool (the schema drop of test stores).
    connect: (tokio_postgres::Config, MakeRustlsConnect),
}

/// The Postgres backend. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("endpoint", &self.inner.endpoint)
            .field("schema", &self.inner.config.schema)
            .finish()
    }
}

pub(crate) fn now() -> DateTime<Utc> {
    // Postgres keeps microseconds; truncate so returned and stored values are equal.
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("in range")
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
        let (url, tls) = crate::tls::split(&config.url)?;
        let connector = crate::tls::connector(&tls)?;
        let mut pg: tokio_postgres::Config = url.parse().map_err(|_| {
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
        let manager = Manager(PostgresConnectionManager::new(
            pg.clone(),
            connector.clone(),
        ));
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
                combiner: Default::default(),
                writers: tokio::sync::Semaphore::new((config.pool_max_size as usize / 2).max(1)),
                lexicon: crate::search::analyze::Lexicon::new(
                    config.text_search_config == crate::config::PORTER_CONFIG,
                ),
                lz4: Default::default(),
                drop_schema,
                connect: (pg, connector),
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
            let lz4: bool = conn
                .query_one(
                    "SELECT coalesce('lz4' = ANY(enumvals), false) FROM pg_settings \
                     WHERE name = 'default_toast_compression'",
                    &[],
                )
                .await
                .and_then(|r| r.try_get(0))
                .unwrap_or(false);
            store
                .inner
                .lz4
                .store(lz4, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(space) = &config.embedding {
            store.ensure_embedding_space(space).await?;
        }
        Ok(store)
    }

    pub(crate) async fn conn(&self) -> Result<PooledConnection<'_, Manager>> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| map_pool(e, &self.inner.endpoint))
    }

    pub(crate) fn pg(&self) -> impl Fn(tokio_postgres::Error) -> StorageError + '_ {
        move |e| map_pg(e, &self.inner.endpoint)
    }

    /// Runs one statement on a pooled connection and returns its rows: the one
    /// "take a connection, run, map the driver error" sequence of the area files.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let conn = self.conn().await?;
        conn.query(sql, params).await.map_err(self.pg())
    }

    /// [`query`](Self::query) for at most one row.
    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        let conn = self.conn().await?;
        conn.query_opt(sql, params).await.map_err(self.pg())
    }

    /// [`query`](Self::query) for exactly one row.
    pub(crate) async fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        let conn = self.conn().await?;
        conn.query_one(sql, params).await.map_err(self.pg())
    }

    /// Runs one statement and returns how many rows it changed.
    pub(crate) async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let conn = self.conn().await?;
        conn.execute(sql, params).await.map_err(self.pg())
    }

    /// `host:port` of the server.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The schema holding this store's tables.
    pub fn schema(&self) -> &str {
        &self.inner.config.schema
    }

    pub(crate) async fn explain(&self, sql: &str, params: &Params) -> Result<Value> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(&format!("EXPLAIN (FORMAT JSON) {sql}"), &params.refs())
            .await
            .map_err(self.pg())?;
        Ok(crate::rows::get::<Json<Value>>(&row, 0)?.0)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.drop_schema {
            return;
        }
        // Test stores drop their schema. Drop cannot be async and may run inside a
        // runtime, so the cleanup runs on its own thread with its own small runtime.
        let (pg, tls) = self.connect.clone();
        let schema = self.config.schema.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok((client, conn)) = pg.connect(tls).await {
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
