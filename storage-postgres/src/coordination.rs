//! Compare-and-set for agents that share work: claims and metadata CAS
//! (`CoordinationStore`). A conditional UPDATE (claim) or a row lock (CAS) makes
//! exactly one of many concurrent callers see the expected state.

use async_trait::async_trait;
use serde_json::Value;
use storage_core::*;
use tokio_postgres::types::Json;

use crate::rows::{get, read_entry, ENTRY_COLUMNS};
use crate::store::{now, PgStore};

#[async_trait]
impl CoordinationStore for PgStore {
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
            return Ok(ClaimOutcome::Claimed(Box::new(read_entry(&r, 0)?)));
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
                current_status: get(&r, 0)?,
                assignee: get(&r, 1)?,
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
        let entry = read_entry(&row, 0)?;
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
}
