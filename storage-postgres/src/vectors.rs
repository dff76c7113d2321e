//! Embedding space, passage vectors and semantic search on pgvector (`VectorStore`).

use async_trait::async_trait;
use pgvector::Vector;
use serde_json::Value;
use storage_core::*;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::GenericClient;

use crate::error::map_pg;
use crate::pool::StatementCache;
use crate::rows::{get, read_entry, ENTRY_COLUMNS, ENTRY_WIDTH};
use crate::sql::{filter_sql, Params};
use crate::store::{now, PgStore};

#[async_trait]
impl VectorStore for PgStore {
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
                "SELECT count(*) FROM embed_queue WHERE state = 'pending' AND lease_until > now()",
                &[],
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
        space.validate()?;
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(&pg)?;
        // Serialises concurrent first uses: only one of them fixes the space.
        tx.batch_execute("LOCK TABLE meta IN EXCLUSIVE MODE")
            .await
            .map_err(&pg)?;
        let result = match read_space(&tx, &self.inner.endpoint).await? {
            Some(stored) => {
                stored.check_same(space)?;
                stored
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
        let space = self
            .space()
            .await?
            .ok_or_else(StorageError::no_embedding_space)?;
        check_passages(items, space.dimension)?;
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let c = conn.statements();
        let tx = conn.transaction().await.map_err(&pg)?;
        let written = write_passages(&tx, &c, items.iter()).await;
        match written.map_err(|e| {
            c.clear();
            pg(e)
        })? {
            n if n == items.len() => tx.commit().await.map_err(&pg),
            _ => {
                // Some entry does not exist: nothing is written (the transaction rolls
                // back when dropped); name the first one missing.
                for item in items {
                    let found = tx
                        .query_opt(
                            "SELECT 1 FROM entries WHERE kb = $1 AND id = $2",
                            &[&item.key.kb, &item.key.id],
                        )
                        .await
                        .map_err(&pg)?;
                    if found.is_none() {
                        return Err(StorageError::entry_not_found(&item.key));
                    }
                }
                Err(StorageError::entry_not_found(&items[0].key))
            }
        }
    }

    async fn get_passages(&self, key: &EntryKey) -> Result<Vec<StoredPassage>> {
        let rows = self.query(
                "SELECT v.passage, v.text, v.embedding FROM vectors v JOIN live_entries e ON e.rowid = v.entry \
                 WHERE e.kb = $1 AND e.id = $2 ORDER BY v.passage",
                &[&key.kb, &key.id],
            ).await?;
        rows.iter()
            .map(|r| {
                Ok(StoredPassage {
                    index: get::<i32>(r, 0)? as u32,
                    text: get(r, 1)?,
                    vector: get::<Vector>(r, 2)?.to_vec(),
                })
            })
            .collect()
    }

    async fn get_vector(&self, key: &EntryKey) -> Result<Option<Vec<f32>>> {
        let row = self
            .query_opt(
                "SELECT v.embedding FROM vectors v JOIN live_entries e ON e.rowid = v.entry \
                 WHERE e.kb = $1 AND e.id = $2 ORDER BY v.passage LIMIT 1",
                &[&key.kb, &key.id],
            )
            .await?;
        row.map(|r| get::<Vector>(&r, 0).map(|v| v.to_vec()))
            .transpose()
    }

    async fn delete_vector(&self, key: &EntryKey) -> Result<bool> {
        let n = self.execute(
                "DELETE FROM vectors v USING entries e WHERE e.rowid = v.entry AND e.kb = $1 AND e.id = $2",
                &[&key.kb, &key.id],
            ).await?;
        Ok(n > 0)
    }

    async fn semantic_search(&self, query: &SemanticQuery) -> Result<Vec<SemanticHit>> {
        query.validate()?;
        self.semantic(query).await
    }

    async fn vector_coverage(&self, filter: &Filter) -> Result<VectorCoverage> {
        let mut p = Params::default();
        let cond = filter_sql(filter, &mut p)?;
        let r = self
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE has), count(*) FILTER (WHERE NOT has) FROM ( \
                       SELECT EXISTS (SELECT 1 FROM vectors v WHERE v.entry = e.rowid) AS has \
                       FROM live_entries e WHERE TRUE{cond}) AS x"
                ),
                &p.refs(),
            )
            .await?;
        Ok(VectorCoverage {
            with_vector: get::<i64>(&r, 0)? as u64,
            without_vector: get::<i64>(&r, 1)? as u64,
        })
    }
}

impl PgStore {
    /// Drops the HNSW index, for bulk loads: inserting into an existing HNSW graph costs
    /// several times more per vector than building it once afterwards. Semantic search
    /// stays correct (exact) until [`build_vector_index`](Self::build_vector_index).
    pub async fn drop_vector_index(&self) -> Result<()> {
        let conn = self.conn().await?;
        conn.batch_execute("DROP INDEX IF EXISTS vectors_hnsw")
            .await
            .map_err(self.pg())
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

    pub(crate) async fn space(&self) -> Result<Option<EmbeddingSpace>> {
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

    pub(crate) async fn semantic(&self, q: &SemanticQuery) -> Result<Vec<SemanticHit>> {
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
                .map_err(self.pg())
                .and_then(|r| get(&r, 0))?;
            if eligible as usize > rows.len() {
                let (sql, params) = semantic_sql(q, plan, fetch * 10)?;
                rows = conn.query(&sql, &params.refs()).await.map_err(self.pg())?;
            }
            if rows.len() < q.k && eligible as usize > rows.len() {
                let (sql, params) = semantic_sql(q, KnnPlan::Exact, 0)?;
                rows = conn.query(&sql, &params.refs()).await.map_err(self.pg())?;
            }
        }
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(SemanticHit {
                    entry: read_entry(r, 0)?,
                    score: get::<f64>(r, ENTRY_WIDTH)? as f32,
                    rank: i + 1,
                    passage: get::<i32>(r, ENTRY_WIDTH + 1)? as u32,
                    passage_text: get(r, ENTRY_WIDTH + 2)?,
                })
            })
            .collect()
    }
}

pub(crate) async fn read_space(
    c: &impl GenericClient,
    endpoint: &str,
) -> Result<Option<EmbeddingSpace>> {
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
        let value: String = get(&r, 1)?;
        match get::<String>(&r, 0)?.as_str() {
            "embedding_model" => model = Some(value),
            _ => dim = value.parse().ok(),
        }
    }
    Ok(match (model, dim) {
        (Some(model), Some(dimension)) => Some(EmbeddingSpace { model, dimension }),
        _ => None,
    })
}

/// How the k-NN query reaches the vectors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum KnnPlan {
    /// Only a lifecycle condition: walk the HNSW index over `vectors` alone (the shape the
    /// planner always serves from the index), over-fetch, then drop archived entries.
    IndexOverfetch,
    /// Real filters: join `entries`; with iterative scans the index walk continues until
    /// LIMIT rows pass the filter, when the planner chooses the index at all.
    IndexFiltered,
    /// Exact scan (sort key the index cannot provide), the fallback that guarantees k.
    Exact,
}

pub(crate) fn lifecycle_only(f: &Filter) -> bool {
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
pub(crate) fn semantic_sql(
    q: &SemanticQuery,
    plan: KnnPlan,
    fetch: usize,
) -> Result<(String, Params)> {
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

pub(crate) fn semantic_count_sql(q: &SemanticQuery) -> Result<(String, Params)> {
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

/// Replaces the passages of entries that exist (inside the caller's transaction) and
/// returns how many of the items' entries exist.
///
/// One statement finds the entries' row ids (and takes the key-share locks the vectors'
/// foreign key would take, in row order, so a concurrent delete waits instead of
/// failing the COPY), one deletes their old passages, and one binary COPY writes the
/// new ones: a load of 1,000 vectors was one `INSERT … SELECT` per passage before, and
/// that was most of a bulk load's time.
pub(crate) async fn write_passages<'a>(
    tx: &tokio_postgres::Transaction<'_>,
    c: &StatementCache,
    items: impl Iterator<Item = &'a EntryPassages>,
) -> std::result::Result<usize, tokio_postgres::Error> {
    let items: Vec<&EntryPassages> = items.collect();
    if items.is_empty() {
        return Ok(0);
    }
    let kbs: Vec<&str> = items.iter().map(|i| i.key.kb.as_str()).collect();
    let ids: Vec<&str> = items.iter().map(|i| i.key.id.as_str()).collect();
    let resolve = c.get(
        tx,
        "SELECT k.ord::int, e.rowid FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(kb, id, ord) \
         JOIN entries e ON e.kb = k.kb AND e.id = k.id ORDER BY e.rowid FOR KEY SHARE OF e",
    );
    // The `vector` type's oid differs per database (an extension's type): the COPY
    // writer takes it from a statement that names it.
    let vector_type = c.get(tx, "SELECT $1::public.vector");
    let (resolve, vector_type) = futures_util::try_join!(resolve, vector_type)?;
    let found: Vec<(usize, i64)> = tx
        .query(&resolve, &[&kbs, &ids])
        .await?
        .iter()
        .map(|r| Ok((r.try_get::<_, i32>(0)? as usize - 1, r.try_get(1)?)))
        .collect::<std::result::Result<_, tokio_postgres::Error>>()?;
    let rowids: Vec<i64> = found.iter().map(|(_, rowid)| *rowid).collect();
    let delete = c
        .get(tx, "DELETE FROM vectors WHERE entry = ANY($1::bigint[])")
        .await?;
    tx.execute(&delete, &[&rowids]).await?;
    let copy = c
        .get(
            tx,
            "COPY vectors (entry, passage, text, embedding) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let sink = tx.copy_in(&copy).await?;
    let types = [
        Type::INT8,
        Type::INT4,
        Type::TEXT,
        vector_type.params()[0].clone(),
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures_util::pin_mut!(writer);
    for (i, rowid) in &found {
        for (n, p) in items[*i].passages.iter().enumerate() {
            let n = n as i32;
            let v = Vector::from(p.vector.clone());
            writer
                .as_mut()
                .write(&[rowid, &n, &p.text.as_deref(), &v])
                .await?;
        }
    }
    writer.finish().await?;
    Ok(found.len())
}
