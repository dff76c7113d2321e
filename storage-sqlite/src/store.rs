//! [`SqliteStore`]: the [`Store`] protocol on rusqlite + r2d2.
//!
//! Every method hands its blocking SQLite work to [`SqliteStore::run`], the one bridge to
//! `spawn_blocking`, so no SQLite call ever runs on the async executor. Writes use
//! `BEGIN IMMEDIATE` so a transaction takes the write lock up front and never fails
//! half-way with SQLITE_BUSY when upgrading from a read.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, TransactionBehavior};
use serde_json::Value;
use storage_core::*;

use crate::config::{SqliteConfig, SqliteLocation};
use crate::error::{map_json, map_pool, map_sqlite};
use crate::schema::{migrate, SCHEMA_VERSION};
use crate::sql::{filter_where, fts5_match, order_by, BM25_WEIGHTS, ENTRY_COLUMNS};
use crate::vectors::{decode, encode, VectorIndex};

type Conn = r2d2::PooledConnection<SqliteConnectionManager>;

/// State shared by all connections of one store.
#[derive(Debug, Default)]
struct Shared {
    /// `None` until the first semantic query loads it; reset to `None` by bulk deletes.
    /// Writers that touch vectors hold the write lock across their transaction, so the
    /// index and the table never disagree once the lock is released.
    vectors: RwLock<Option<VectorIndex>>,
}

/// The SQLite backend. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct SqliteStore {
    pool: Pool<SqliteConnectionManager>,
    shared: Arc<Shared>,
    path: PathBuf,
    /// Keeps a temporary database's directory alive as long as any clone.
    _temp: Option<Arc<tempfile::TempDir>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn from_micros(m: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(m).unwrap_or_default()
}

fn sql<T>(r: rusqlite::Result<T>) -> Result<T> {
    r.map_err(map_sqlite)
}

fn kb_missing(kb: &str) -> StorageError {
    StorageError::not_found(format!("knowledge base {kb:?}"))
}

fn entry_missing(key: &EntryKey) -> StorageError {
    StorageError::not_found(format!("entry {key}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database and applies migrations.
    pub async fn open(config: SqliteConfig) -> Result<Self> {
        tokio::task::spawn_blocking(move || Self::open_blocking(config))
            .await
            .map_err(|e| StorageError::backend("the SQLite open task failed", e))?
    }

    fn open_blocking(config: SqliteConfig) -> Result<Self> {
        let (path, temp) = match &config.location {
            SqliteLocation::File(p) => (p.clone(), None),
            SqliteLocation::Temporary => {
                let dir = tempfile::tempdir().map_err(|e| StorageError::Unavailable {
                    message: "could not create a temporary directory for the database".into(),
                    hint: "check TMPDIR is writable".into(),
                    source: Some(Box::new(e)),
                })?;
                (dir.path().join("kb.sqlite3"), Some(Arc::new(dir)))
            }
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(StorageError::Unavailable {
                    message: format!("the directory {} does not exist", parent.display()),
                    hint: "create it, or point KB_SQLITE_PATH elsewhere".into(),
                    source: None,
                });
            }
        }
        let busy_ms = config.busy_timeout.as_millis() as u64;
        // A 32 MiB page cache per connection (SQLite's default is 2 MiB) keeps the entry,
        // tag and FTS b-trees hot during bulk loads; it is allocated only as pages are used.
        let manager = SqliteConnectionManager::file(&path).with_init(move |c| {
            c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
            c.execute_batch(&format!(
                "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {busy_ms}; \
                 PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY;"
            ))
        });
        let pool = Pool::builder()
            .max_size(config.pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(config.connection_timeout)
            .build(manager)
            .map_err(|e| StorageError::Unavailable {
                message: format!("could not open the SQLite database at {}", path.display()),
                hint: "check the path is a writable SQLite file".into(),
                source: Some(Box::new(e)),
            })?;
        let mut conn = pool.get().map_err(map_pool)?;
        migrate(&mut conn)?;
        if let Some(space) = &config.embedding {
            ensure_space(&mut conn, space)?;
        }
        drop(conn);
        Ok(Self {
            pool,
            shared: Arc::new(Shared::default()),
            path,
            _temp: temp,
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The one bridge from async to SQLite: runs `f` with a pooled connection on the
    /// blocking thread pool.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn, &Shared) -> Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(map_pool)?;
            f(&mut conn, &shared)
        })
        .await
        .map_err(|e| StorageError::backend("a blocking SQLite task failed", e))?
    }
}

// ------------------------------------------------------------------ row helpers

/// Reads [`ENTRY_COLUMNS`] starting at column `at`.
pub(crate) fn read_entry(r: &Row<'_>, at: usize) -> rusqlite::Result<Entry> {
    fn json<T: serde::de::DeserializeOwned>(s: String, i: usize) -> rusqlite::Result<T> {
        serde_json::from_str(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    }
    let date: Option<String> = r.get(at + 10)?;
    let lifecycle: String = r.get(at + 14)?;
    Ok(Entry {
        kb: r.get(at)?,
        id: r.get(at + 1)?,
        entry_type: r.get(at + 2)?,
        title: r.get(at + 3)?,
        summary: r.get(at + 4)?,
        body: r.get(at + 5)?,
        tags: json(r.get(at + 6)?, at + 6)?,
        links: json(r.get(at + 7)?, at + 7)?,
        sources: json(r.get(at + 8)?, at + 8)?,
        metadata: json(r.get(at + 9)?, at + 9)?,
        date: date.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()),
        importance: r.get(at + 11)?,
        status: r.get(at + 12)?,
        assignee: r.get(at + 13)?,
        lifecycle: Lifecycle::parse(&lifecycle).unwrap_or_default(),
        source_path: r.get(at + 15)?,
        created_at: from_micros(r.get(at + 16)?),
        updated_at: from_micros(r.get(at + 17)?),
        content_hash: r.get(at + 18)?,
        expires_at: r.get::<_, Option<i64>>(at + 19)?.map(from_micros),
    })
}

fn kb_exists(c: &Connection, kb: &str) -> Result<bool> {
    Ok(sql(c
        .prepare_cached("SELECT 1 FROM kbs WHERE name = ?1")
        .and_then(|mut s| s.query_row([kb], |_| Ok(())).optional()))?
    .is_some())
}

fn rowid_of(c: &Connection, key: &EntryKey) -> Result<Option<i64>> {
    sql(c
        .prepare_cached("SELECT rowid FROM entries WHERE kb = ?1 AND id = ?2")
        .and_then(|mut s| s.query_row([&key.kb, &key.id], |r| r.get(0)).optional()))
}

/// The rowid of an entry that has not expired: what stars and collections may hold.
fn live_rowid_of(c: &Connection, key: &EntryKey) -> Result<Option<i64>> {
    sql(c
        .prepare_cached("SELECT rowid FROM live_entries WHERE kb = ?1 AND id = ?2")
        .and_then(|mut s| s.query_row([&key.kb, &key.id], |r| r.get(0)).optional()))
}

fn get_entry_by_key(c: &Connection, key: &EntryKey) -> Result<Option<Entry>> {
    sql(c
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM live_entries e WHERE e.kb = ?1 AND e.id = ?2"
        ))
        .and_then(|mut s| {
            s.query_row([&key.kb, &key.id], |r| read_entry(r, 0))
                .optional()
        }))
}

fn entries_by_rowids(c: &Connection, rowids: &[i64]) -> Result<HashMap<i64, Entry>> {
    let ids = serde_json::to_string(rowids).map_err(map_json)?;
    let mut stmt = sql(c.prepare_cached(&format!(
        "SELECT e.rowid, {ENTRY_COLUMNS} FROM live_entries e \
         WHERE e.rowid IN (SELECT value FROM json_each(?1))"
    )))?;
    let rows = sql(stmt.query_map([ids], |r| Ok((r.get::<_, i64>(0)?, read_entry(r, 1)?))))?;
    rows.map(sql).collect()
}

fn query_entries(c: &Connection, text: &str, params: &[SqlValue]) -> Result<Vec<Entry>> {
    let mut stmt = sql(c.prepare_cached(text))?;
    let rows = sql(stmt.query_map(params_from_iter(params.iter()), |r| read_entry(r, 0)))?;
    rows.map(sql).collect()
}

fn upsert_in(
    c: &Connection,
    e: &NewEntry,
    now: i64,
    known_kbs: &mut HashSet<String>,
) -> Result<(Entry, Option<FtsOp>)> {
    if !known_kbs.contains(&e.kb) {
        if !kb_exists(c, &e.kb)? {
            return Err(kb_missing(&e.kb));
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

fn apply_fts(c: &Connection, ops: &[FtsOp]) -> Result<()> {
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
fn fts_delete_where(c: &Connection, condition: &str, param: &dyn rusqlite::ToSql) -> Result<()> {
    sql(c.execute(
        &format!(
            "INSERT INTO entries_fts (entries_fts, rowid, title, tags_text, summary, body) \
             SELECT 'delete', rowid, title, tags_text, summary, body FROM entries WHERE {condition}"
        ),
        [param],
    ))
    .map(|_| ())
}

fn read_space(c: &Connection) -> Result<Option<EmbeddingSpace>> {
    let model: Option<String> = sql(c
        .query_row(
            "SELECT value FROM meta WHERE key = 'embedding_model'",
            [],
            |r| r.get(0),
        )
        .optional())?;
    let dim: Option<String> = sql(c
        .query_row(
            "SELECT value FROM meta WHERE key = 'embedding_dimension'",
            [],
            |r| r.get(0),
        )
        .optional())?;
    Ok(match (model, dim.and_then(|d| d.parse().ok())) {
        (Some(model), Some(dimension)) => Some(EmbeddingSpace { model, dimension }),
        _ => None,
    })
}

fn ensure_space(c: &mut Connection, space: &EmbeddingSpace) -> Result<EmbeddingSpace> {
    if space.dimension == 0 || space.model.trim().is_empty() {
        return Err(StorageError::invalid_input(
            "an embedding space needs a model id and a dimension above 0",
        ));
    }
    let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
    let stored = read_space(&tx)?;
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
            sql(tx.execute(
                "INSERT INTO meta (key, value) VALUES ('embedding_model', ?1), ('embedding_dimension', ?2)",
                params![space.model, space.dimension.to_string()],
            ))?;
            space.clone()
        }
    };
    sql(tx.commit())?;
    Ok(result)
}

/// The vector of the entry's first passage.
fn first_vector(c: &Connection, key: &EntryKey) -> Result<Option<Vec<f32>>> {
    let blob: Option<Vec<u8>> = sql(c
        .prepare_cached(
            "SELECT v.vector FROM vectors v JOIN live_entries e ON e.rowid = v.entry \
             WHERE e.kb = ?1 AND e.id = ?2 ORDER BY v.passage LIMIT 1",
        )
        .and_then(|mut s| s.query_row([&key.kb, &key.id], |r| r.get(0)).optional()))?;
    Ok(blob.map(|b| decode(&b)))
}

/// Loads the vector index if it is not loaded yet.
/// Scores `query` against every stored passage, loading the index first when it is not
/// in memory. The scores are taken under the same lock that found (or loaded) the index:
/// `delete_kb` and `gc_expired` drop it, and a query that released the lock between
/// loading and reading would find it gone.
fn index_scores(
    c: &Connection,
    shared: &Shared,
    dim: usize,
    query: &[f32],
) -> Result<Vec<(f32, (i64, u32))>> {
    if let Some(index) = shared.vectors.read().expect("vector lock").as_ref() {
        return Ok(index.scores(query));
    }
    let mut w = shared.vectors.write().expect("vector lock");
    let index = match w.take() {
        Some(index) => index,
        None => VectorIndex::load(c, dim)?,
    };
    let scores = index.scores(query);
    *w = Some(index);
    Ok(scores)
}

fn semantic_in(c: &Connection, shared: &Shared, q: &SemanticQuery) -> Result<Vec<SemanticHit>> {
    let Some(space) = read_space(c)? else {
        return Ok(Vec::new());
    };
    check_vector(&q.vector, space.dimension)?;
    if q.k == 0 {
        return Ok(Vec::new());
    }
    let where_ = filter_where(&q.filter)?;
    let query = normalized(&q.vector);
    let mut cands = index_scores(c, shared, space.dimension, &query)?;
    if let Some(min) = q.min_score {
        cands.retain(|(s, _)| *s >= min);
    }
    type Cand = (f32, (i64, u32));
    let desc = |a: &Cand, b: &Cand| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    // Filter before the top-k cut: take the best candidates in growing rounds and keep the
    // ones the filter admits, until k are found or the candidates run out. Candidates are
    // passages; an entry's first (best) passage stands for it, later ones are skipped.
    let mut hits: Vec<Cand> = Vec::with_capacity(q.k);
    let mut taken: HashSet<i64> = HashSet::with_capacity(q.k);
    let mut start = 0;
    let mut round = (q.k * 4).max(64);
    let check_sql = format!(
        "SELECT e.rowid FROM live_entries e WHERE e.rowid IN (SELECT value FROM json_each(?)){}",
        where_.and_clause()
    );
    while start < cands.len() && hits.len() < q.k {
        let end = (start + round).min(cands.len());
        if end < cands.len() {
            cands[start..].select_nth_unstable_by(end - start - 1, desc);
        }
        cands[start..end].sort_by(desc);
        let chunk = &cands[start..end];
        let ids: Vec<i64> = chunk.iter().map(|c| c.1 .0).collect();
        let mut params = vec![SqlValue::Text(
            serde_json::to_string(&ids).map_err(map_json)?,
        )];
        params.extend(where_.params.iter().cloned());
        let mut stmt = sql(c.prepare_cached(&check_sql))?;
        let admitted: HashSet<i64> = sql(stmt
            .query_map(params_from_iter(params.iter()), |r| r.get(0))
            .and_then(|rows| rows.collect()))?;
        for cand in chunk {
            if hits.len() == q.k {
                break;
            }
            if admitted.contains(&cand.1 .0) && taken.insert(cand.1 .0) {
                hits.push(*cand);
            }
        }
        start = end;
        round *= 4;
    }
    let ids: Vec<i64> = hits.iter().map(|h| h.1 .0).collect();
    let mut entries = entries_by_rowids(c, &ids)?;
    let mut text_stmt =
        sql(c.prepare_cached("SELECT text FROM vectors WHERE entry = ?1 AND passage = ?2"))?;
    let mut out = Vec::with_capacity(hits.len());
    for (score, (rowid, passage)) in hits {
        let Some(entry) = entries.remove(&rowid) else {
            continue;
        };
        let passage_text: Option<String> = sql(text_stmt
            .query_row(params![rowid, passage], |r| r.get(0))
            .optional())?
        .flatten();
        out.push(SemanticHit {
            entry,
            score,
            rank: 0,
            passage,
            passage_text,
        });
    }
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| (&a.entry.kb, &a.entry.id).cmp(&(&b.entry.kb, &b.entry.id)))
    });
    for (i, h) in out.iter_mut().enumerate() {
        h.rank = i + 1;
    }
    Ok(out)
}

fn collection_rowid(c: &Connection, kb: &str, name: &str) -> Result<i64> {
    sql(c
        .prepare_cached("SELECT rowid FROM collections WHERE kb = ?1 AND name = ?2")
        .and_then(|mut s| s.query_row([kb, name], |r| r.get(0)).optional()))?
    .ok_or_else(|| StorageError::not_found(format!("collection {name:?} in knowledge base {kb:?}")))
}

fn scope_kb(scope: &SettingScope) -> &str {
    match scope {
        SettingScope::Global => "",
        SettingScope::Kb(kb) => kb,
    }
}

fn validate_setting_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
        return Err(StorageError::invalid_input(
            "setting keys are 1-256 characters without control characters",
        ));
    }
    Ok(())
}

/// Deletes entries of the given KBs and the KB rows, with everything that hangs off them.
fn delete_kbs_in(c: &Connection, names: &[String]) -> Result<Vec<RemovedKnowledgeBase>> {
    let mut out = Vec::new();
    for name in names {
        // Index entries, then entries, then the KB (which cascades the rest).
        fts_delete_where(c, "kb = ?1", name)?;
        let n = sql(c
            .prepare_cached("DELETE FROM entries WHERE kb = ?1")
            .and_then(|mut s| s.execute([name])))?;
        sql(c.execute("DELETE FROM settings WHERE kb = ?1", [name]))?;
        sql(c.execute("DELETE FROM kbs WHERE name = ?1", [name]))?;
        out.push(RemovedKnowledgeBase {
            name: name.clone(),
            entries: n as u64,
        });
    }
    Ok(out)
}

fn pool_stats(pool: &Pool<SqliteConnectionManager>) -> PoolStats {
    let s = pool.state();
    PoolStats {
        max_size: pool.max_size(),
        size: s.connections,
        idle: s.idle_connections,
        in_use: s.connections - s.idle_connections,
        waiting: 0,
    }
}

// ------------------------------------------------------------------ the protocol

#[async_trait]
impl Store for SqliteStore {
    async fn create_kb(&self, kb: &NewKnowledgeBase) -> Result<KnowledgeBase> {
        kb.validate()?;
        let kb = kb.clone();
        self.run(move |c, _| {
            let now = now_micros();
            let n = sql(c.execute(
                "INSERT INTO kbs (name, description, expires_at, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (name) DO NOTHING",
                params![kb.name, kb.description, kb.expires_at.map(|t| t.timestamp_micros()), now],
            ))?;
            if n == 0 {
                return Err(StorageError::already_exists(format!("knowledge base {:?}", kb.name)));
            }
            Ok(KnowledgeBase {
                name: kb.name,
                description: kb.description,
                expires_at: kb.expires_at.map(|t| from_micros(t.timestamp_micros())),
                created_at: from_micros(now),
            })
        })
        .await
    }

    async fn get_kb(&self, name: &str) -> Result<Option<KnowledgeBase>> {
        let name = name.to_owned();
        self.run(move |c, _| {
            sql(c
                .query_row(
                    "SELECT name, description, expires_at, created_at FROM kbs WHERE name = ?1",
                    [name],
                    read_kb,
                )
                .optional())
        })
        .await
    }

    async fn list_kbs(&self) -> Result<Vec<KnowledgeBase>> {
        self.run(|c, _| {
            let mut s = sql(c.prepare(
                "SELECT name, description, expires_at, created_at FROM kbs ORDER BY name",
            ))?;
            let rows = sql(s.query_map([], read_kb))?;
            rows.map(sql).collect()
        })
        .await
    }

    async fn delete_kb(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.run(move |c, shared| {
            let mut vectors = shared.vectors.write().expect("vector lock");
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            if !kb_exists(&tx, &name)? {
                return Ok(false);
            }
            delete_kbs_in(&tx, &[name])?;
            sql(tx.commit())?;
            *vectors = None;
            Ok(true)
        })
        .await
    }

    async fn gc_expired(&self, now: DateTime<Utc>) -> Result<GcReport> {
        self.run(move |c, shared| {
            let mut vectors = shared.vectors.write().expect("vector lock");
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let now = now.timestamp_micros();
            let names: Vec<String> = {
                let mut s = sql(tx.prepare(
                    "SELECT name FROM kbs WHERE expires_at IS NOT NULL AND expires_at <= ?1 ORDER BY name",
                ))?;
                let rows = sql(s.query_map([now], |r| r.get(0)))?;
                rows.map(sql).collect::<Result<_>>()?
            };
            let kbs = delete_kbs_in(&tx, &names)?;
            // Expired entries of the KBs that remain: index rows first, then the entries
            // (vectors, queue items, tags, links, stars and memberships cascade).
            fts_delete_where(&tx, "expires_at <= ?1", &now)?;
            let entries = sql(tx.execute("DELETE FROM entries WHERE expires_at <= ?1", [now]))?;
            sql(tx.commit())?;
            let report = GcReport {
                kbs,
                entries: entries as u64,
            };
            if !report.is_empty() {
                *vectors = None;
            }
            Ok(report)
        })
        .await
    }

    async fn upsert_entries(&self, entries: &[NewEntry]) -> Result<Vec<Entry>> {
        let entries: Vec<NewEntry> = entries
            .iter()
            .map(NewEntry::normalized)
            .collect::<Result<_>>()?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.run(move |c, _| {
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let now = now_micros();
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
            sql(tx.execute("DELETE FROM entries WHERE rowid = ?1", [rowid]))?;
            sql(tx.commit())?;
            if let Some(idx) = vectors.as_mut() {
                idx.remove(rowid);
            }
            Ok(true)
        })
        .await
    }

    async fn list_entries(&self, filter: &Filter) -> Result<Vec<Entry>> {
        let w = filter_where(filter)?;
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
        let w = filter_where(filter)?;
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
        let w = filter_where(filter)?;
        let text = format!(
            "SELECT e.entry_type, COUNT(*) FROM live_entries e {} GROUP BY e.entry_type ORDER BY e.entry_type",
            w.clause()
        );
        self.run(move |c, _| {
            let mut s = sql(c.prepare(&text))?;
            let rows = sql(s.query_map(params_from_iter(w.params.iter()), |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
            }))?;
            rows.map(sql).collect()
        })
        .await
    }

    async fn tags(&self, kb: Option<&str>) -> Result<Vec<TagCount>> {
        let kb = kb.map(str::to_owned);
        self.run(move |c, _| {
            let mut s = sql(c.prepare_cached(
                "SELECT t.tag, COUNT(*) FROM entry_tags t JOIN live_entries e ON e.rowid = t.entry \
                 WHERE ?1 IS NULL OR e.kb = ?1 GROUP BY t.tag ORDER BY COUNT(*) DESC, t.tag",
            ))?;
            let rows = sql(s.query_map([kb], read_tag_count))?;
            rows.map(sql).collect()
        })
        .await
    }

    async fn tags_with_prefix(&self, kb: Option<&str>, prefix: &str) -> Result<Vec<TagCount>> {
        let kb = kb.map(str::to_owned);
        let p = prefix.trim().trim_end_matches('/').to_owned();
        self.run(move |c, _| {
            let mut s = sql(c.prepare_cached(
                "SELECT t.tag, COUNT(*) FROM entry_tags t JOIN live_entries e ON e.rowid = t.entry \
                 WHERE (?1 IS NULL OR e.kb = ?1) AND (t.tag = ?2 OR (t.tag >= ?3 AND t.tag < ?4)) \
                 GROUP BY t.tag ORDER BY t.tag",
            ))?;
            let rows = sql(s.query_map(
                params![kb, p, format!("{p}/"), format!("{p}0")],
                read_tag_count,
            ))?;
            rows.map(sql).collect()
        })
        .await
    }

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
            let mut s = sql(c.prepare_cached(
                "SELECT e.kb, e.id, l.relation, l.note FROM links l JOIN live_entries e ON e.rowid = l.source \
                 WHERE l.target_kb = ?1 AND l.target_id = ?2 ORDER BY e.kb, e.id, l.position",
            ))?;
            let rows = sql(s.query_map([&key.kb, &key.id], |r| {
                Ok(Backlink {
                    source: EntryKey::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                    relation: r.get(2)?,
                    note: r.get(3)?,
                })
            }))?;
            rows.map(sql).collect()
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
            let mut s = sql(c.prepare_cached(
                "SELECT e.kb, e.id FROM live_entries e WHERE e.lifecycle = 'active' \
                 AND (?1 IS NULL OR e.kb = ?1) \
                 AND NOT EXISTS (SELECT 1 FROM links l WHERE l.source = e.rowid) \
                 AND NOT EXISTS (SELECT 1 FROM links l JOIN live_entries s ON s.rowid = l.source \
                                 WHERE l.target_kb = e.kb AND l.target_id = e.id \
                                 AND l.source <> e.rowid) \
                 ORDER BY e.kb, e.id",
            ))?;
            let rows = sql(s.query_map([kb], |r| {
                Ok(EntryKey::new(
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                ))
            }))?;
            rows.map(sql).collect()
        })
        .await
    }

    async fn timeline(&self, filter: &Filter) -> Result<Vec<Entry>> {
        let w = filter_where(filter)?;
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

    async fn search(&self, query: &str, filter: &Filter) -> Result<Vec<SearchHit>> {
        let node = parse_query(query)?;
        let w = filter_where(filter)?;
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

    async fn embedding_space(&self) -> Result<Option<EmbeddingSpace>> {
        self.run(|c, _| read_space(c)).await
    }

    async fn reset_embedding_space(&self) -> Result<u64> {
        self.run(move |c, shared| {
            let mut index = shared.vectors.write().expect("vector lock");
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let now = now_micros();
            let leased: i64 = sql(tx.query_row(
                "SELECT count(*) FROM embed_queue WHERE state = 'pending' AND lease_until > ?1",
                [now],
                |r| r.get(0),
            ))?;
            if leased > 0 {
                return Err(StorageError::conflict(format!(
                    "{leased} entries are being embedded right now; stop the embedding workers, \
                     then reset the embedding space"
                )));
            }
            sql(tx.execute("DELETE FROM vectors", []))?;
            sql(tx.execute(
                "DELETE FROM meta WHERE key IN ('embedding_model', 'embedding_dimension')",
                [],
            ))?;
            let n = sql(tx.execute(
                "INSERT INTO embed_queue (entry, text_hash, enqueued_at) \
                 SELECT e.rowid, e.text_hash, ?1 FROM entries e \
                 WHERE e.title <> '' OR e.summary <> '' OR e.body <> '' \
                 ON CONFLICT (entry) DO UPDATE SET text_hash = excluded.text_hash, attempts = 0, \
                 last_error = NULL, state = 'pending', worker = NULL, lease_until = NULL",
                [now],
            ))?;
            sql(tx.commit())?;
            *index = None;
            Ok(n as u64)
        })
        .await
    }

    async fn ensure_embedding_space(&self, space: &EmbeddingSpace) -> Result<EmbeddingSpace> {
        let space = space.clone();
        self.run(move |c, _| ensure_space(c, &space)).await
    }

    async fn put_passages(&self, items: &[EntryPassages]) -> Result<()> {
        let items = items.to_vec();
        self.run(move |c, shared| {
            let space = read_space(c)?.ok_or_else(|| {
                StorageError::invalid_input(
                    "no embedding space is set: call ensure_embedding_space (or configure the \
                     embedding model) before storing vectors",
                )
            })?;
            check_passages(&items, space.dimension)?;
            let mut index = shared.vectors.write().expect("vector lock");
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let mut rowids = Vec::with_capacity(items.len());
            {
                let mut del = sql(tx.prepare_cached("DELETE FROM vectors WHERE entry = ?1"))?;
                let mut ins = sql(tx.prepare_cached(
                    "INSERT INTO vectors (entry, passage, text, vector) VALUES (?1, ?2, ?3, ?4)",
                ))?;
                for item in &items {
                    let rowid =
                        rowid_of(&tx, &item.key)?.ok_or_else(|| entry_missing(&item.key))?;
                    sql(del.execute([rowid]))?;
                    for (i, p) in item.passages.iter().enumerate() {
                        sql(ins.execute(params![rowid, i as u32, p.text, encode(&p.vector)]))?;
                    }
                    rowids.push(rowid);
                }
            }
            sql(tx.commit())?;
            if let Some(idx) = index.as_mut() {
                for (rowid, item) in rowids.iter().zip(&items) {
                    let vectors: Vec<&[f32]> =
                        item.passages.iter().map(|p| p.vector.as_slice()).collect();
                    idx.replace(*rowid, &vectors);
                }
            }
            Ok(())
        })
        .await
    }

    async fn get_passages(&self, key: &EntryKey) -> Result<Vec<StoredPassage>> {
        let key = key.clone();
        self.run(move |c, _| {
            let mut stmt = sql(c.prepare_cached(
                "SELECT v.passage, v.text, v.vector FROM vectors v JOIN live_entries e ON e.rowid = v.entry \
                 WHERE e.kb = ?1 AND e.id = ?2 ORDER BY v.passage",
            ))?;
            let rows = sql(stmt.query_map([&key.kb, &key.id], |r| {
                Ok(StoredPassage {
                    index: r.get(0)?,
                    text: r.get(1)?,
                    vector: decode(&r.get::<_, Vec<u8>>(2)?),
                })
            }))?;
            rows.map(sql).collect()
        })
        .await
    }

    async fn get_vector(&self, key: &EntryKey) -> Result<Option<Vec<f32>>> {
        let key = key.clone();
        self.run(move |c, _| first_vector(c, &key)).await
    }

    async fn delete_vector(&self, key: &EntryKey) -> Result<bool> {
        let key = key.clone();
        self.run(move |c, shared| {
            let mut index = shared.vectors.write().expect("vector lock");
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let Some(rowid) = rowid_of(&tx, &key)? else {
                return Ok(false);
            };
            let n = sql(tx.execute("DELETE FROM vectors WHERE entry = ?1", [rowid]))?;
            sql(tx.commit())?;
            if let Some(idx) = index.as_mut() {
                idx.remove(rowid);
            }
            Ok(n > 0)
        })
        .await
    }

    async fn semantic_search(&self, query: &SemanticQuery) -> Result<Vec<SemanticHit>> {
        query.validate()?;
        let q = query.clone();
        self.run(move |c, shared| semantic_in(c, shared, &q)).await
    }

    async fn similar(&self, key: &EntryKey, k: usize, filter: &Filter) -> Result<Vec<SemanticHit>> {
        // Checked before `k + 1` below; the inner query is then at most MAX_K + 1.
        check_k(k)?;
        let key = key.clone();
        let filter = filter.clone();
        self.run(move |c, shared| {
            let vector = first_vector(c, &key)?
                .ok_or_else(|| StorageError::not_found(format!("vector of entry {key}")))?;
            let q = SemanticQuery {
                vector,
                k: k + 1,
                min_score: None,
                filter,
            };
            let mut hits = semantic_in(c, shared, &q)?;
            hits.retain(|h| h.entry.kb != key.kb || h.entry.id != key.id);
            hits.truncate(k);
            for (i, h) in hits.iter_mut().enumerate() {
                h.rank = i + 1;
            }
            Ok(hits)
        })
        .await
    }

    async fn vector_coverage(&self, filter: &Filter) -> Result<VectorCoverage> {
        let w = filter_where(filter)?;
        let text = format!(
            "SELECT COALESCE(SUM(has), 0), COALESCE(SUM(NOT has), 0) FROM ( \
               SELECT EXISTS (SELECT 1 FROM vectors v WHERE v.entry = e.rowid) AS has \
               FROM live_entries e {})",
            w.clause()
        );
        self.run(move |c, _| {
            sql(c.query_row(&text, params_from_iter(w.params.iter()), |r| {
                Ok(VectorCoverage {
                    with_vector: r.get::<_, i64>(0)? as u64,
                    without_vector: r.get::<_, i64>(1)? as u64,
                })
            }))
        })
        .await
    }

    async fn claim_embedding_batch(
        &self,
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<QueueItem>> {
        check_lease(lease)?;
        // Clamped: `as i64` turned usize::MAX into -1 (no limit in SQLite, an error in Postgres).
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let worker = worker.to_owned();
        self.run(move |c, _| {
            let now = now_micros();
            // At most MAX_LEASE (checked above), so neither the cast nor the sum can overflow.
            let until = now + lease.as_micros() as i64;
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let items = {
                let mut s = sql(tx.prepare_cached(
                    "UPDATE embed_queue SET worker = ?1, lease_until = ?2 WHERE entry IN ( \
                       SELECT entry FROM embed_queue WHERE state = 'pending' \
                       AND (lease_until IS NULL OR lease_until <= ?3) \
                       ORDER BY enqueued_at, entry LIMIT ?4) \
                     RETURNING entry, attempts, text_hash",
                ))?;
                let rows = sql(s.query_map(params![worker, until, now, limit], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?, r.get::<_, String>(2)?))
                }))?;
                rows.map(sql).collect::<Result<Vec<_>>>()?
            };
            let mut out = Vec::with_capacity(items.len());
            for (rowid, attempts, text_hash) in items {
                let (kb, id, enq): (String, String, i64) = sql(tx.query_row(
                    "SELECT e.kb, e.id, q.enqueued_at FROM live_entries e JOIN embed_queue q ON q.entry = e.rowid \
                     WHERE e.rowid = ?1",
                    [rowid],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                ))?;
                out.push((enq, rowid, QueueItem { key: EntryKey { kb, id }, attempts, text_hash }));
            }
            sql(tx.commit())?;
            out.sort_by_key(|(enq, rowid, _)| (*enq, *rowid));
            Ok(out.into_iter().map(|(_, _, item)| item).collect())
        })
        .await
    }

    async fn complete_embedding(&self, items: &[QueueItem]) -> Result<u64> {
        let items = items.to_vec();
        self.run(move |c, _| {
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let mut removed = 0;
            for it in &items {
                let Some(rowid) = rowid_of(&tx, &it.key)? else {
                    continue;
                };
                let n = sql(tx.execute(
                    "DELETE FROM embed_queue WHERE entry = ?1 AND text_hash = ?2",
                    params![rowid, it.text_hash],
                ))?;
                if n == 0 {
                    // The text changed while it was being embedded: release it for a new claim.
                    sql(tx.execute(
                        "UPDATE embed_queue SET worker = NULL, lease_until = NULL WHERE entry = ?1",
                        [rowid],
                    ))?;
                }
                removed += n as u64;
            }
            sql(tx.commit())?;
            Ok(removed)
        })
        .await
    }

    async fn fail_embedding(
        &self,
        item: &QueueItem,
        error: &str,
        max_attempts: u32,
    ) -> Result<FailOutcome> {
        let item = item.clone();
        let error: String = error.chars().take(4000).collect();
        self.run(move |c, _| {
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let Some(rowid) = rowid_of(&tx, &item.key)? else {
                return Ok(FailOutcome::NotQueued);
            };
            let row: Option<(u32, String)> = sql(tx
                .query_row(
                    "UPDATE embed_queue SET attempts = attempts + 1, last_error = ?2, worker = NULL, \
                     lease_until = NULL, \
                     state = CASE WHEN attempts + 1 >= ?3 THEN 'failed' ELSE 'pending' END \
                     WHERE entry = ?1 AND state = 'pending' RETURNING attempts, state",
                    params![rowid, error, max_attempts.max(1)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional())?;
            sql(tx.commit())?;
            Ok(match row {
                None => FailOutcome::NotQueued,
                Some((attempts, state)) if state == "failed" => FailOutcome::GaveUp { attempts },
                Some((attempts, _)) => FailOutcome::WillRetry { attempts },
            })
        })
        .await
    }

    async fn queue_stats(&self) -> Result<QueueStats> {
        self.run(|c, _| {
            sql(c.query_row(
                "SELECT COALESCE(SUM(state = 'pending' AND (lease_until IS NULL OR lease_until <= ?1)), 0), \
                        COALESCE(SUM(state = 'pending' AND lease_until > ?1), 0), \
                        COALESCE(SUM(state = 'failed'), 0) FROM embed_queue",
                [now_micros()],
                |r| {
                    Ok(QueueStats {
                        pending: r.get::<_, i64>(0)? as u64,
                        in_progress: r.get::<_, i64>(1)? as u64,
                        failed: r.get::<_, i64>(2)? as u64,
                    })
                },
            ))
        })
        .await
    }

    async fn failed_embeddings(&self) -> Result<Vec<FailedItem>> {
        self.run(|c, _| {
            let mut s = sql(c.prepare(
                "SELECT e.kb, e.id, q.attempts, COALESCE(q.last_error, '') FROM embed_queue q \
                 JOIN entries e ON e.rowid = q.entry WHERE q.state = 'failed' ORDER BY e.kb, e.id",
            ))?;
            let rows = sql(s.query_map([], |r| {
                Ok(FailedItem {
                    key: EntryKey::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                    attempts: r.get(2)?,
                    last_error: r.get(3)?,
                })
            }))?;
            rows.map(sql).collect()
        })
        .await
    }

    async fn requeue_embeddings(&self, filter: &Filter, all: bool) -> Result<u64> {
        let w = filter_where(filter)?;
        let text = format!(
            "INSERT INTO embed_queue (entry, text_hash, enqueued_at) \
             SELECT e.rowid, e.text_hash, ? FROM live_entries e {} {} \
             (e.title <> '' OR e.summary <> '' OR e.body <> '') {} \
             ON CONFLICT (entry) DO UPDATE SET text_hash = excluded.text_hash, attempts = 0, \
             last_error = NULL, state = 'pending', worker = NULL, lease_until = NULL",
            w.clause(),
            if w.sql.is_empty() { "WHERE" } else { "AND" },
            if all {
                ""
            } else {
                "AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.entry = e.rowid)"
            },
        );
        self.run(move |c, _| {
            let mut params = vec![SqlValue::Integer(now_micros())];
            params.extend(w.params);
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let n = sql(tx.execute(&text, params_from_iter(params.iter())))?;
            sql(tx.commit())?;
            Ok(n as u64)
        })
        .await
    }

    async fn get_setting(&self, scope: &SettingScope, key: &str) -> Result<Option<Value>> {
        let (kb, key) = (scope_kb(scope).to_owned(), key.to_owned());
        self.run(move |c, _| {
            let v: Option<String> = sql(c
                .query_row(
                    "SELECT value FROM settings WHERE kb = ?1 AND key = ?2",
                    [kb, key],
                    |r| r.get(0),
                )
                .optional())?;
            v.map(|s| serde_json::from_str(&s).map_err(map_json))
                .transpose()
        })
        .await
    }

    async fn set_setting(&self, scope: &SettingScope, key: &str, value: &Value) -> Result<()> {
        validate_setting_key(key)?;
        check_json_text("setting", value)?;
        let (kb, key, value) = (
            scope_kb(scope).to_owned(),
            key.to_owned(),
            value.to_string(),
        );
        self.run(move |c, _| {
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            if !kb.is_empty() && !kb_exists(&tx, &kb)? {
                return Err(kb_missing(&kb));
            }
            sql(tx.execute(
                "INSERT INTO settings (kb, key, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (kb, key) DO UPDATE SET value = excluded.value",
                [kb, key, value],
            ))?;
            sql(tx.commit())
        })
        .await
    }

    async fn delete_setting(&self, scope: &SettingScope, key: &str) -> Result<bool> {
        let (kb, key) = (scope_kb(scope).to_owned(), key.to_owned());
        self.run(move |c, _| {
            Ok(sql(c.execute("DELETE FROM settings WHERE kb = ?1 AND key = ?2", [kb, key]))? > 0)
        })
        .await
    }

    async fn list_settings(&self, scope: &SettingScope) -> Result<Vec<(String, Value)>> {
        let kb = scope_kb(scope).to_owned();
        self.run(move |c, _| {
            let mut s =
                sql(c.prepare("SELECT key, value FROM settings WHERE kb = ?1 ORDER BY key"))?;
            let rows = sql(s.query_map([kb], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            }))?;
            rows.map(|r| {
                let (k, v) = sql(r)?;
                Ok((k, serde_json::from_str(&v).map_err(map_json)?))
            })
            .collect()
        })
        .await
    }

    async fn star(&self, key: &EntryKey) -> Result<()> {
        let key = key.clone();
        self.run(move |c, _| {
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let rowid = live_rowid_of(&tx, &key)?.ok_or_else(|| entry_missing(&key))?;
            sql(tx.execute(
                "INSERT INTO stars (entry, position) \
                 VALUES (?1, (SELECT COALESCE(MAX(position), 0) + 1 FROM stars)) \
                 ON CONFLICT (entry) DO NOTHING",
                [rowid],
            ))?;
            sql(tx.commit())
        })
        .await
    }

    async fn unstar(&self, key: &EntryKey) -> Result<bool> {
        let key = key.clone();
        self.run(move |c, _| {
            Ok(sql(c.execute(
                "DELETE FROM stars WHERE entry = (SELECT rowid FROM entries WHERE kb = ?1 AND id = ?2)",
                [&key.kb, &key.id],
            ))? > 0)
        })
        .await
    }

    async fn starred(&self, kb: Option<&str>) -> Result<Vec<EntryKey>> {
        let kb = kb.map(str::to_owned);
        self.run(move |c, _| {
            let mut s = sql(c.prepare(
                "SELECT e.kb, e.id FROM stars s JOIN live_entries e ON e.rowid = s.entry \
                 WHERE ?1 IS NULL OR e.kb = ?1 ORDER BY s.position",
            ))?;
            let rows = sql(s.query_map([kb], |r| {
                Ok(EntryKey::new(
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                ))
            }))?;
            rows.map(sql).collect()
        })
        .await
    }

    async fn create_collection(
        &self,
        kb: &str,
        name: &str,
        description: &str,
    ) -> Result<Collection> {
        validate_name("collection name", name)?;
        let (kb, name, description) = (kb.to_owned(), name.to_owned(), description.to_owned());
        self.run(move |c, _| {
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            if !kb_exists(&tx, &kb)? {
                return Err(kb_missing(&kb));
            }
            let n = sql(tx.execute(
                "INSERT INTO collections (kb, name, description) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (kb, name) DO NOTHING",
                [&kb, &name, &description],
            ))?;
            if n == 0 {
                return Err(StorageError::already_exists(format!(
                    "collection {name:?} in knowledge base {kb:?}"
                )));
            }
            sql(tx.commit())?;
            Ok(Collection {
                kb,
                name,
                description,
                size: 0,
            })
        })
        .await
    }

    async fn delete_collection(&self, kb: &str, name: &str) -> Result<bool> {
        let (kb, name) = (kb.to_owned(), name.to_owned());
        self.run(move |c, _| {
            Ok(sql(c.execute(
                "DELETE FROM collections WHERE kb = ?1 AND name = ?2",
                [kb, name],
            ))? > 0)
        })
        .await
    }

    async fn list_collections(&self, kb: &str) -> Result<Vec<Collection>> {
        let kb = kb.to_owned();
        self.run(move |c, _| {
            let mut s = sql(c.prepare(
                "SELECT c.kb, c.name, c.description, \
                 (SELECT COUNT(*) FROM collection_members m WHERE m.collection = c.rowid) \
                 FROM collections c WHERE c.kb = ?1 ORDER BY c.name",
            ))?;
            let rows = sql(s.query_map([kb], |r| {
                Ok(Collection {
                    kb: r.get(0)?,
                    name: r.get(1)?,
                    description: r.get(2)?,
                    size: r.get::<_, i64>(3)? as u64,
                })
            }))?;
            rows.map(sql).collect()
        })
        .await
    }

    async fn add_to_collection(
        &self,
        kb: &str,
        name: &str,
        id: &str,
        position: Option<usize>,
    ) -> Result<()> {
        let (kb, name, key) = (kb.to_owned(), name.to_owned(), EntryKey::new(kb, id));
        self.run(move |c, _| {
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let coll = collection_rowid(&tx, &kb, &name)?;
            let rowid = live_rowid_of(&tx, &key)?.ok_or_else(|| entry_missing(&key))?;
            let mut members: Vec<i64> = {
                let mut s = sql(tx.prepare(
                    "SELECT entry FROM collection_members WHERE collection = ?1 ORDER BY position",
                ))?;
                let rows = sql(s.query_map([coll], |r| r.get(0)))?;
                rows.map(sql).collect::<Result<_>>()?
            };
            members.retain(|&m| m != rowid);
            let at = position.unwrap_or(members.len()).min(members.len());
            members.insert(at, rowid);
            // Renumber densely: collections are small and edited by people, so a rewrite
            // is simpler than gap-based positions and keeps the order exact.
            sql(tx.execute("DELETE FROM collection_members WHERE collection = ?1", [coll]))?;
            {
                let mut ins = sql(tx.prepare(
                    "INSERT INTO collection_members (collection, entry, position) VALUES (?1, ?2, ?3)",
                ))?;
                for (i, m) in members.iter().enumerate() {
                    sql(ins.execute(params![coll, m, i as i64]))?;
                }
            }
            sql(tx.commit())
        })
        .await
    }

    async fn remove_from_collection(&self, kb: &str, name: &str, id: &str) -> Result<bool> {
        let (kb, name, id) = (kb.to_owned(), name.to_owned(), id.to_owned());
        self.run(move |c, _| {
            let coll = collection_rowid(c, &kb, &name)?;
            Ok(sql(c.execute(
                "DELETE FROM collection_members WHERE collection = ?1 \
                 AND entry = (SELECT rowid FROM entries WHERE kb = ?2 AND id = ?3)",
                params![coll, kb, id],
            ))? > 0)
        })
        .await
    }

    async fn collection_entries(&self, kb: &str, name: &str) -> Result<Vec<String>> {
        let (kb, name) = (kb.to_owned(), name.to_owned());
        self.run(move |c, _| {
            let coll = collection_rowid(c, &kb, &name)?;
            let mut s = sql(c.prepare(
                "SELECT e.id FROM collection_members m JOIN live_entries e ON e.rowid = m.entry \
                 WHERE m.collection = ?1 ORDER BY m.position",
            ))?;
            let rows = sql(s.query_map([coll], |r| r.get(0)))?;
            rows.map(sql).collect()
        })
        .await
    }

    async fn claim(
        &self,
        key: &EntryKey,
        expected: Option<&str>,
        new_status: &str,
        assignee: &str,
    ) -> Result<ClaimOutcome> {
        validate_claim(new_status, assignee)?;
        let (key, expected) = (key.clone(), expected.map(str::to_owned));
        let (new_status, assignee) = (new_status.to_owned(), assignee.to_owned());
        self.run(move |c, _| {
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            // One conditional UPDATE is the compare-and-set; `IS` also matches NULL.
            let n = sql(tx.execute(
                "UPDATE entries SET status = ?1, assignee = ?2, updated_at = ?3 \
                 WHERE rowid = (SELECT rowid FROM live_entries WHERE kb = ?4 AND id = ?5) \
                 AND status IS ?6",
                params![new_status, assignee, now_micros(), key.kb, key.id, expected],
            ))?;
            let outcome = if n == 1 {
                let e = get_entry_by_key(&tx, &key)?.ok_or_else(|| entry_missing(&key))?;
                ClaimOutcome::Claimed(Box::new(e))
            } else {
                match sql(tx
                    .query_row(
                        "SELECT status, assignee FROM live_entries WHERE kb = ?1 AND id = ?2",
                        [&key.kb, &key.id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional())?
                {
                    Some((current_status, assignee)) => ClaimOutcome::NotInExpectedState {
                        current_status,
                        assignee,
                    },
                    None => ClaimOutcome::NotFound,
                }
            };
            sql(tx.commit())?;
            Ok(outcome)
        })
        .await
    }

    async fn cas_metadata(
        &self,
        key: &EntryKey,
        path: &str,
        expected: Option<&Value>,
        new: &Value,
    ) -> Result<CasOutcome> {
        check_json_text("metadata", new)?;
        let segs: Vec<String> = metadata_path_segments(path)?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let (key, expected, new) = (key.clone(), expected.cloned(), new.clone());
        self.run(move |c, _| {
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let Some(entry) = get_entry_by_key(&tx, &key)? else {
                return Ok(CasOutcome::NotFound);
            };
            let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
            let current = metadata_get(&entry.metadata, &segs).cloned();
            if current != expected {
                return Ok(CasOutcome::Mismatch { current });
            }
            let mut e = entry.to_new();
            metadata_set(&mut e.metadata, &segs, new)?;
            let metadata = serde_json::to_string(&e.metadata).map_err(map_json)?;
            sql(tx.execute(
                "UPDATE entries SET metadata = ?1, content_hash = ?2, updated_at = ?3 \
                 WHERE kb = ?4 AND id = ?5",
                params![metadata, e.content_hash(), now_micros(), key.kb, key.id],
            ))?;
            sql(tx.commit())?;
            Ok(CasOutcome::Swapped)
        })
        .await
    }

    async fn optimize(&self) -> Result<()> {
        self.run(|c, _| {
            sql(c.execute_batch(
                "INSERT INTO entries_fts(entries_fts) VALUES ('optimize'); PRAGMA optimize;",
            ))
        })
        .await
    }

    async fn health(&self) -> Result<HealthReport> {
        let pool = self.pool.clone();
        self.run(move |c, _| {
            let kbs: i64 = sql(c.query_row("SELECT COUNT(*) FROM kbs", [], |r| r.get(0)))?;
            let entries: i64 = sql(c.query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0)))?;
            Ok(HealthReport {
                backend: "sqlite".into(),
                schema_version: SCHEMA_VERSION,
                knowledge_bases: kbs as u64,
                entries: entries as u64,
                embedding_space: read_space(c)?,
                pool: pool_stats(&pool),
            })
        })
        .await
    }
}

fn read_kb(r: &Row<'_>) -> rusqlite::Result<KnowledgeBase> {
    Ok(KnowledgeBase {
        name: r.get(0)?,
        description: r.get(1)?,
        expires_at: r.get::<_, Option<i64>>(2)?.map(from_micros),
        created_at: from_micros(r.get(3)?),
    })
}

fn read_tag_count(r: &Row<'_>) -> rusqlite::Result<TagCount> {
    Ok(TagCount {
        tag: r.get(0)?,
        count: r.get::<_, i64>(1)? as u64,
    })
}

fn neighbourhood_in(c: &Connection, q: &GraphQuery) -> Result<Graph> {
    let title_of = |k: &EntryKey| -> Result<Option<String>> {
        sql(c
            .prepare_cached("SELECT title FROM live_entries WHERE kb = ?1 AND id = ?2")
            .and_then(|mut s| s.query_row([&k.kb, &k.id], |r| r.get(0)).optional()))
    };
    let Some(start_title) = title_of(&q.start)? else {
        return Err(entry_missing(&q.start));
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
