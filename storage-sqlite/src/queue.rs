//! The embedding queue (`QueueStore`).

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, TransactionBehavior};
use storage_core::*;

use crate::sql::filter_sql;
use crate::store::{execute, now, query, query_one, query_opt, rowid_of, sql, SqliteStore};
use crate::vectors::{index_written, read_space, write_passages};

#[async_trait]
impl QueueStore for SqliteStore {
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
            let now = now();
            // At most MAX_LEASE (checked above), so neither the cast nor the sum can overflow.
            let until = now + lease.as_micros() as i64;
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let lease: i64 = query_one(
                &tx,
                "INSERT INTO meta (key, value) VALUES ('lease_seq', '1') ON CONFLICT (key) \
                 DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING CAST(value AS INTEGER)",
                [],
                |r| r.get(0),
            )?;
            let items = {
                let mut s = sql(tx.prepare_cached(
                    "UPDATE embed_queue SET worker = ?1, lease_until = ?2, lease = ?5 WHERE entry IN ( \
                       SELECT entry FROM embed_queue WHERE state = 'pending' \
                       AND (lease_until IS NULL OR lease_until <= ?3) \
                       ORDER BY enqueued_at, entry LIMIT ?4) \
                     RETURNING entry, attempts, text_hash",
                ))?;
                let rows = sql(s.query_map(params![worker, until, now, limit, lease], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?, r.get::<_, String>(2)?))
                }))?;
                rows.map(sql).collect::<Result<Vec<_>>>()?
            };
            let lease = lease as u64;
            let mut out = Vec::with_capacity(items.len());
            for (rowid, attempts, text_hash) in items {
                let (kb, id, enq): (String, String, i64) = query_one(&tx, "SELECT e.kb, e.id, q.enqueued_at FROM live_entries e JOIN embed_queue q ON q.entry = e.rowid \
                     WHERE e.rowid = ?1",
                    [rowid],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                out.push((enq, rowid, QueueItem { key: EntryKey { kb, id }, attempts, text_hash, lease }));
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
                if let Held::Yes { same_text } = held(&tx, rowid, it)? {
                    removed += u64::from(dequeue(&tx, rowid, same_text)?);
                }
            }
            sql(tx.commit())?;
            Ok(removed)
        })
        .await
    }

    async fn complete_with_passages(
        &self,
        done: &[(QueueItem, EntryPassages)],
    ) -> Result<Vec<Completion>> {
        let done = done.to_vec();
        self.run(move |c, shared| {
            let passages: Vec<EntryPassages> = done.iter().map(|(_, p)| p.clone()).collect();
            let space = read_space(c)?.ok_or_else(StorageError::no_embedding_space)?;
            check_passages(&passages, space.dimension)?;
            let mut index = shared.vectors.write().expect("vector lock");
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let (mut out, mut written) = (Vec::with_capacity(done.len()), Vec::new());
            for (item, p) in &done {
                let Some(rowid) = rowid_of(&tx, &item.key)? else {
                    out.push(Completion::EntryGone);
                    continue;
                };
                let Held::Yes { same_text } = held(&tx, rowid, item)? else {
                    out.push(Completion::LeaseLost);
                    continue;
                };
                write_passages(&tx, rowid, p)?;
                written.push((rowid, p));
                out.push(if dequeue(&tx, rowid, same_text)? {
                    Completion::Completed
                } else {
                    Completion::TextChanged
                });
            }
            sql(tx.commit())?;
            index_written(&mut index, &written);
            Ok(out)
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
        let error = queue_error_text(error);
        self.run(move |c, _| {
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let Some(rowid) = rowid_of(&tx, &item.key)? else {
                return Ok(FailOutcome::NotQueued);
            };
            match held(&tx, rowid, &item)? {
                Held::NotQueued => return Ok(FailOutcome::NotQueued),
                Held::Lost => return Ok(FailOutcome::LeaseLost),
                Held::Yes { .. } => {}
            }
            let row: Option<(u32, String)> = query_opt(
                &tx,
                "UPDATE embed_queue SET attempts = attempts + 1, last_error = ?2, worker = NULL, \
                     lease_until = NULL, \
                     state = CASE WHEN attempts + 1 >= ?3 THEN 'failed' ELSE 'pending' END \
                     WHERE entry = ?1 AND state = 'pending' RETURNING attempts, state",
                params![rowid, error, max_attempts.max(1)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
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
            query_one(c, "SELECT COALESCE(SUM(state = 'pending' AND (lease_until IS NULL OR lease_until <= ?1)), 0), \
                        COALESCE(SUM(state = 'pending' AND lease_until > ?1), 0), \
                        COALESCE(SUM(state = 'failed'), 0) FROM embed_queue",
                [now()],
                |r| {
                    Ok(QueueStats {
                        pending: r.get::<_, i64>(0)? as u64,
                        in_progress: r.get::<_, i64>(1)? as u64,
                        failed: r.get::<_, i64>(2)? as u64,
                    })
                })
        })
        .await
    }

    async fn failed_embeddings(&self) -> Result<Vec<FailedItem>> {
        self.run(|c, _| {
            query(
                c,
                "SELECT e.kb, e.id, q.attempts, COALESCE(q.last_error, '') FROM embed_queue q \
                 JOIN entries e ON e.rowid = q.entry WHERE q.state = 'failed' ORDER BY e.kb, e.id",
                [],
                |r| {
                    Ok(FailedItem {
                        key: EntryKey::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                        attempts: r.get(2)?,
                        last_error: r.get(3)?,
                    })
                },
            )
        })
        .await
    }

    async fn requeue_embeddings(&self, filter: &Filter, all: bool) -> Result<u64> {
        // A live lease is left alone (its worker is embedding the entry right now, and
        // clearing it let a second worker claim the same item); an expired one is
        // claimable anyway.
        let w = filter_sql(filter)?;
        let text = format!(
            "INSERT INTO embed_queue (entry, text_hash, enqueued_at) \
             SELECT e.rowid, e.text_hash, ? FROM live_entries e {} {} \
             (e.title <> '' OR e.summary <> '' OR e.body <> '') {} \
             ON CONFLICT (entry) DO UPDATE SET text_hash = excluded.text_hash, attempts = 0, \
             last_error = NULL, state = 'pending'",
            w.clause(),
            if w.sql.is_empty() { "WHERE" } else { "AND" },
            if all {
                ""
            } else {
                "AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.entry = e.rowid)"
            },
        );
        self.run(move |c, _| {
            let mut params = vec![SqlValue::Integer(now())];
            params.extend(w.params);
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            let n = sql(tx.execute(&text, params_from_iter(params.iter())))?;
            sql(tx.commit())?;
            Ok(n as u64)
        })
        .await
    }
}

/// Whether a claimed item is still this claim's.
enum Held {
    /// The lease is this claim's; `same_text`: the entry's text is the one claimed.
    Yes { same_text: bool },
    /// Another claim holds the item now.
    Lost,
    /// The item left the queue.
    NotQueued,
}

fn held(tx: &rusqlite::Connection, rowid: i64, item: &QueueItem) -> Result<Held> {
    let row: Option<(i64, String)> = query_opt(
        tx,
        "SELECT lease, text_hash FROM embed_queue WHERE entry = ?1",
        [rowid],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(match row {
        None => Held::NotQueued,
        Some((lease, _)) if lease as u64 != item.lease => Held::Lost,
        Some((_, hash)) => Held::Yes {
            same_text: hash == item.text_hash,
        },
    })
}

/// Removes a held item from the queue, or, when its text changed since the claim,
/// releases it for a new claim. True when it was removed.
fn dequeue(tx: &rusqlite::Connection, rowid: i64, same_text: bool) -> Result<bool> {
    if same_text {
        execute(tx, "DELETE FROM embed_queue WHERE entry = ?1", [rowid])?;
    } else {
        execute(
            tx,
            "UPDATE embed_queue SET worker = NULL, lease_until = NULL WHERE entry = ?1",
            [rowid],
        )?;
    }
    Ok(same_text)
}
