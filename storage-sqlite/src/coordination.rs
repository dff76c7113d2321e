//! Compare-and-set for agents that share work: claims and metadata CAS
//! (`CoordinationStore`). Each is one `BEGIN IMMEDIATE` transaction, so of many
//! concurrent callers exactly one sees the expected state.

use async_trait::async_trait;
use rusqlite::{params, TransactionBehavior};
use serde_json::Value;
use storage_core::*;

use crate::entries::get_entry_by_key;
use crate::error::map_json;
use crate::store::{execute, now, query_opt, sql, SqliteStore};

#[async_trait]
impl CoordinationStore for SqliteStore {
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
            let n = execute(
                &tx,
                "UPDATE entries SET status = ?1, assignee = ?2, updated_at = ?3 \
                 WHERE rowid = (SELECT rowid FROM live_entries WHERE kb = ?4 AND id = ?5) \
                 AND status IS ?6",
                params![new_status, assignee, now(), key.kb, key.id, expected],
            )?;
            let outcome = if n == 1 {
                let e = get_entry_by_key(&tx, &key)?
                    .ok_or_else(|| StorageError::entry_not_found(&key))?;
                ClaimOutcome::Claimed(Box::new(e))
            } else {
                match query_opt(
                    &tx,
                    "SELECT status, assignee FROM live_entries WHERE kb = ?1 AND id = ?2",
                    [&key.kb, &key.id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )? {
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
            execute(
                &tx,
                "UPDATE entries SET metadata = ?1, content_hash = ?2, updated_at = ?3 \
                 WHERE kb = ?4 AND id = ?5",
                params![metadata, e.content_hash(), now(), key.kb, key.id],
            )?;
            sql(tx.commit())?;
            Ok(CasOutcome::Swapped)
        })
        .await
    }
}
