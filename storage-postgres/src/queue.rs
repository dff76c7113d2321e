//! The embedding queue (`QueueStore`). Workers claim with `FOR UPDATE SKIP LOCKED`.

use std::time::Duration;

use async_trait::async_trait;
use storage_core::*;

use crate::rows::{get, key_of};
use crate::sql::{filter_sql, Params};
use crate::store::{now, PgStore};
use crate::vectors::write_passages;

#[async_trait]
impl QueueStore for PgStore {
    async fn claim_embedding_batch(
        &self,
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<QueueItem>> {
        check_lease(lease)?;
        // Clamped: `as i64` turned usize::MAX into -1, which LIMIT rejects.
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let secs = lease.as_secs_f64();
        let conn = self.conn().await?;
        // SKIP LOCKED: concurrent workers pass over rows another worker is claiming right
        // now. Times are the server's (`now()`), one clock for every worker. `token` runs
        // once per claim (a CTE with a volatile function is never inlined).
        let rows = conn
            .query(
                "WITH token AS (SELECT nextval('embed_leases') AS lease), \
                 picked AS (SELECT entry FROM embed_queue WHERE state = 'pending' \
                   AND (lease_until IS NULL OR lease_until <= now()) \
                   ORDER BY enqueued_at, entry LIMIT $3 FOR UPDATE SKIP LOCKED), \
                 claimed AS (UPDATE embed_queue q SET worker = $1, \
                   lease_until = now() + $2::float8 * interval '1 second', lease = token.lease \
                   FROM picked, token WHERE q.entry = picked.entry \
                   RETURNING q.entry, q.attempts, q.text_hash, q.enqueued_at, q.lease) \
                 SELECT e.kb, e.id, c.attempts, c.text_hash, c.lease FROM claimed c JOIN entries e ON e.rowid = c.entry \
                 ORDER BY c.enqueued_at, c.entry",
                &[&worker, &secs, &limit],
            )
            .await
            .map_err(self.pg())?;
        rows.iter()
            .map(|r| {
                Ok(QueueItem {
                    key: key_of(r, 0)?,
                    attempts: get::<i32>(r, 2)? as u32,
                    text_hash: get(r, 3)?,
                    lease: get::<i64>(r, 4)? as u64,
                })
            })
            .collect()
    }

    async fn complete_embedding(&self, items: &[QueueItem]) -> Result<u64> {
        let kbs: Vec<&str> = items.iter().map(|i| i.key.kb.as_str()).collect();
        let ids: Vec<&str> = items.iter().map(|i| i.key.id.as_str()).collect();
        let hashes: Vec<&str> = items.iter().map(|i| i.text_hash.as_str()).collect();
        let leases: Vec<i64> = items.iter().map(|i| i.lease as i64).collect();
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(&pg)?;
        let removed = tx
            .execute(
                "DELETE FROM embed_queue q USING entries e, \
                 unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS i(kb, id, hash, lease) \
                 WHERE e.kb = i.kb AND e.id = i.id AND q.entry = e.rowid AND q.text_hash = i.hash \
                 AND q.lease = i.lease",
                &[&kbs, &ids, &hashes, &leases],
            )
            .await
            .map_err(&pg)?;
        // Items whose text changed while they were embedded stay queued, released for a
        // new claim; an item another worker holds now keeps its lease.
        tx.execute(
            "UPDATE embed_queue q SET worker = NULL, lease_until = NULL FROM entries e, \
             unnest($1::text[], $2::text[], $3::bigint[]) AS i(kb, id, lease) \
             WHERE e.kb = i.kb AND e.id = i.id AND q.entry = e.rowid AND q.lease = i.lease",
            &[&kbs, &ids, &leases],
        )
        .await
        .map_err(&pg)?;
        tx.commit().await.map_err(&pg)?;
        Ok(removed)
    }

    async fn complete_with_passages(
        &self,
        done: &[(QueueItem, EntryPassages)],
    ) -> Result<Vec<Completion>> {
        let space = self
            .space()
            .await?
            .ok_or_else(StorageError::no_embedding_space)?;
        let passages: Vec<EntryPassages> = done.iter().map(|(_, p)| p.clone()).collect();
        check_passages(&passages, space.dimension)?;
        let kbs: Vec<&str> = done.iter().map(|(i, _)| i.key.kb.as_str()).collect();
        let ids: Vec<&str> = done.iter().map(|(i, _)| i.key.id.as_str()).collect();
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let conn_statements = conn.statements();
        let tx = conn.transaction().await.map_err(&pg)?;
        // The queue rows, locked in entry order (so two completing workers never wait on
        // each other in a cycle) until this transaction ends.
        let rows = tx
            .query(
                "SELECT i.ord::int, q.lease, q.text_hash \
                 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS i(kb, id, ord) \
                 JOIN entries e ON e.kb = i.kb AND e.id = i.id \
                 LEFT JOIN LATERAL (SELECT lease, text_hash FROM embed_queue \
                   WHERE entry = e.rowid FOR UPDATE) q ON true \
                 ORDER BY e.rowid",
                &[&kbs, &ids],
            )
            .await
            .map_err(&pg)?;
        let mut out = vec![Completion::EntryGone; done.len()];
        for r in &rows {
            let i = get::<i32>(r, 0)? as usize - 1;
            let (item, _) = &done[i];
            let lease: Option<i64> = get(r, 1)?;
            let hash: Option<String> = get(r, 2)?;
            out[i] = match (lease, hash) {
                (Some(l), Some(h)) if l as u64 == item.lease => {
                    if h == item.text_hash {
                        Completion::Completed
                    } else {
                        Completion::TextChanged
                    }
                }
                _ => Completion::LeaseLost,
            };
        }
        let held = |c: &Completion| matches!(c, Completion::Completed | Completion::TextChanged);
        let writes = done
            .iter()
            .zip(&out)
            .filter(|(_, c)| held(c))
            .map(|((_, p), _)| p);
        write_passages(&tx, &conn_statements, writes)
            .await
            .map_err(&pg)?;
        let pick = |want: Completion| -> (Vec<&str>, Vec<&str>) {
            done.iter()
                .zip(&out)
                .filter(|(_, c)| **c == want)
                .map(|((i, _), _)| (i.key.kb.as_str(), i.key.id.as_str()))
                .unzip()
        };
        let (done_kbs, done_ids) = pick(Completion::Completed);
        let (changed_kbs, changed_ids) = pick(Completion::TextChanged);
        tx.execute(
            "DELETE FROM embed_queue q USING entries e, unnest($1::text[], $2::text[]) AS i(kb, id) \
             WHERE e.kb = i.kb AND e.id = i.id AND q.entry = e.rowid",
            &[&done_kbs, &done_ids],
        )
        .await
        .map_err(&pg)?;
        tx.execute(
            "UPDATE embed_queue q SET worker = NULL, lease_until = NULL FROM entries e, \
             unnest($1::text[], $2::text[]) AS i(kb, id) \
             WHERE e.kb = i.kb AND e.id = i.id AND q.entry = e.rowid",
            &[&changed_kbs, &changed_ids],
        )
        .await
        .map_err(&pg)?;
        tx.commit().await.map_err(&pg)?;
        Ok(out)
    }

    async fn fail_embedding(
        &self,
        item: &QueueItem,
        error: &str,
        max_attempts: u32,
    ) -> Result<FailOutcome> {
        let error = queue_error_text(error);
        let lease = item.lease as i64;
        let row = self.query_opt(
                "UPDATE embed_queue q SET attempts = q.attempts + 1, last_error = $3, worker = NULL, lease_until = NULL, \
                 state = CASE WHEN q.attempts + 1 >= $4 THEN 'failed' ELSE 'pending' END \
                 FROM entries e WHERE e.rowid = q.entry AND e.kb = $1 AND e.id = $2 AND q.state = 'pending' \
                 AND q.lease = $5 RETURNING q.attempts, q.state",
                // Clamped: `as i32` turned u32::MAX into -1, giving up at the first failure.
                &[&item.key.kb, &item.key.id, &error, &i32::try_from(max_attempts.max(1)).unwrap_or(i32::MAX), &lease],
            ).await?;
        if row.is_none() {
            let other = self
                .query_opt(
                    "SELECT 1 FROM embed_queue q JOIN entries e ON e.rowid = q.entry \
                     WHERE e.kb = $1 AND e.id = $2 AND q.state = 'pending' AND q.lease <> $3",
                    &[&item.key.kb, &item.key.id, &lease],
                )
                .await?;
            if other.is_some() {
                return Ok(FailOutcome::LeaseLost);
            }
        }
        Ok(match row {
            None => FailOutcome::NotQueued,
            Some(r) => {
                let attempts = get::<i32>(&r, 0)? as u32;
                if get::<String>(&r, 1)? == "failed" {
                    FailOutcome::GaveUp { attempts }
                } else {
                    FailOutcome::WillRetry { attempts }
                }
            }
        })
    }

    async fn queue_stats(&self) -> Result<QueueStats> {
        let r = self.query_one(
                "SELECT count(*) FILTER (WHERE state = 'pending' AND (lease_until IS NULL OR lease_until <= now())), \
                        count(*) FILTER (WHERE state = 'pending' AND lease_until > now()), \
                        count(*) FILTER (WHERE state = 'failed') FROM embed_queue",
                &[],
            ).await?;
        Ok(QueueStats {
            pending: get::<i64>(&r, 0)? as u64,
            in_progress: get::<i64>(&r, 1)? as u64,
            failed: get::<i64>(&r, 2)? as u64,
        })
    }

    async fn failed_embeddings(&self) -> Result<Vec<FailedItem>> {
        let rows = self
            .query(
                "SELECT e.kb, e.id, q.attempts, COALESCE(q.last_error, '') FROM embed_queue q \
                 JOIN entries e ON e.rowid = q.entry WHERE q.state = 'failed' ORDER BY e.kb, e.id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(FailedItem {
                    key: key_of(r, 0)?,
                    attempts: get::<i32>(r, 2)? as u32,
                    last_error: get(r, 3)?,
                })
            })
            .collect()
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
             last_error = NULL, state = 'pending'"
        );
        // A live lease is left alone: its worker is embedding the entry right now, and
        // clearing it let a second worker claim the same item. An expired one is
        // claimable anyway.
        let conn = self.conn().await?;
        conn.execute(&sql, &p.refs()).await.map_err(self.pg())
    }
}
