//! Embedding space, passage vectors and exact semantic search (`VectorStore`) over the
//! in-memory index in `vectors/index.rs`.

mod index;

use std::collections::HashSet;

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use storage_core::*;

pub(crate) use index::VectorIndex;
use index::{decode, encode};

use crate::entries::entries_by_rowids;
use crate::error::map_json;
use crate::sql::filter_sql;
use crate::store::{execute, now, query, query_one, query_opt, rowid_of, sql, Inner, SqliteStore};

#[async_trait]
impl VectorStore for SqliteStore {
    async fn embedding_space(&self) -> Result<Option<EmbeddingSpace>> {
        self.run(|c, _| read_space(c)).await
    }

    async fn reset_embedding_space(&self) -> Result<u64> {
        self.run(move |c, shared| {
            let mut index = shared.vectors.write().expect("vector lock");
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let now = now();
            let leased: i64 = query_one(
                &tx,
                "SELECT count(*) FROM embed_queue WHERE state = 'pending' AND lease_until > ?1",
                [now],
                |r| r.get(0),
            )?;
            if leased > 0 {
                return Err(StorageError::conflict(format!(
                    "{leased} entries are being embedded right now; stop the embedding workers, \
                     then reset the embedding space"
                )));
            }
            execute(&tx, "DELETE FROM vectors", [])?;
            execute(
                &tx,
                "DELETE FROM meta WHERE key IN ('embedding_model', 'embedding_dimension')",
                [],
            )?;
            let n = execute(
                &tx,
                "INSERT INTO embed_queue (entry, text_hash, enqueued_at) \
                 SELECT e.rowid, e.text_hash, ?1 FROM entries e \
                 WHERE e.title <> '' OR e.summary <> '' OR e.body <> '' \
                 ON CONFLICT (entry) DO UPDATE SET text_hash = excluded.text_hash, attempts = 0, \
                 last_error = NULL, state = 'pending', worker = NULL, lease_until = NULL",
                [now],
            )?;
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
            let space = read_space(c)?.ok_or_else(StorageError::no_embedding_space)?;
            check_passages(&items, space.dimension)?;
            let mut index = shared.vectors.write().expect("vector lock");
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let mut written = Vec::with_capacity(items.len());
            for item in &items {
                let rowid = rowid_of(&tx, &item.key)?
                    .ok_or_else(|| StorageError::entry_not_found(&item.key))?;
                write_passages(&tx, rowid, item)?;
                written.push((rowid, item));
            }
            sql(tx.commit())?;
            index_written(&mut index, &written);
            Ok(())
        })
        .await
    }

    async fn get_passages(&self, key: &EntryKey) -> Result<Vec<StoredPassage>> {
        let key = key.clone();
        self.run(move |c, _| {
            query(c, "SELECT v.passage, v.text, v.vector FROM vectors v JOIN live_entries e ON e.rowid = v.entry \
                 WHERE e.kb = ?1 AND e.id = ?2 ORDER BY v.passage", [&key.kb, &key.id], |r| {
                Ok(StoredPassage {
                    index: r.get(0)?,
                    text: r.get(1)?,
                    vector: decode(&r.get::<_, Vec<u8>>(2)?),
                })
            })
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
            let n = execute(&tx, "DELETE FROM vectors WHERE entry = ?1", [rowid])?;
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

    async fn vector_coverage(&self, filter: &Filter) -> Result<VectorCoverage> {
        let w = filter_sql(filter)?;
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
}

pub(crate) fn read_space(c: &Connection) -> Result<Option<EmbeddingSpace>> {
    let model: Option<String> = query_opt(
        c,
        "SELECT value FROM meta WHERE key = 'embedding_model'",
        [],
        |r| r.get(0),
    )?;
    let dim: Option<String> = query_opt(
        c,
        "SELECT value FROM meta WHERE key = 'embedding_dimension'",
        [],
        |r| r.get(0),
    )?;
    Ok(match (model, dim.and_then(|d| d.parse().ok())) {
        (Some(model), Some(dimension)) => Some(EmbeddingSpace { model, dimension }),
        _ => None,
    })
}

pub(crate) fn ensure_space(c: &mut Connection, space: &EmbeddingSpace) -> Result<EmbeddingSpace> {
    space.validate()?;
    let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
    let result = match read_space(&tx)? {
        Some(stored) => {
            stored.check_same(space)?;
            stored
        }
        None => {
            execute(&tx, "INSERT INTO meta (key, value) VALUES ('embedding_model', ?1), ('embedding_dimension', ?2)",
                params![space.model, space.dimension.to_string()])?;
            space.clone()
        }
    };
    sql(tx.commit())?;
    Ok(result)
}

/// The vector of the entry's first passage.
pub(crate) fn first_vector(c: &Connection, key: &EntryKey) -> Result<Option<Vec<f32>>> {
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
pub(crate) fn index_scores(
    c: &Connection,
    shared: &Inner,
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

pub(crate) fn semantic_in(
    c: &Connection,
    shared: &Inner,
    q: &SemanticQuery,
) -> Result<Vec<SemanticHit>> {
    let Some(space) = read_space(c)? else {
        return Ok(Vec::new());
    };
    check_vector(&q.vector, space.dimension)?;
    if q.k == 0 {
        return Ok(Vec::new());
    }
    let where_ = filter_sql(&q.filter)?;
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

/// Replaces an entry's passages (inside the caller's transaction).
pub(crate) fn write_passages(tx: &Connection, rowid: i64, item: &EntryPassages) -> Result<()> {
    let mut del = sql(tx.prepare_cached("DELETE FROM vectors WHERE entry = ?1"))?;
    let mut ins = sql(tx.prepare_cached(
        "INSERT INTO vectors (entry, passage, text, vector) VALUES (?1, ?2, ?3, ?4)",
    ))?;
    sql(del.execute([rowid]))?;
    for (i, p) in item.passages.iter().enumerate() {
        sql(ins.execute(params![rowid, i as u32, p.text, encode(&p.vector)]))?;
    }
    Ok(())
}

/// Brings the loaded in-memory index (if any) up to date with committed passages.
pub(crate) fn index_written(index: &mut Option<VectorIndex>, written: &[(i64, &EntryPassages)]) {
    if let Some(idx) = index.as_mut() {
        for (rowid, item) in written {
            let vectors: Vec<&[f32]> = item.passages.iter().map(|p| p.vector.as_slice()).collect();
            idx.replace(*rowid, &vectors);
        }
    }
}
