//! Tags, settings, stars and collections (`OrganiseStore`).

use async_trait::async_trait;
use serde_json::Value;
use storage_core::*;
use tokio_postgres::types::Json;
use tokio_postgres::GenericClient;

use crate::error::map_pg;
use crate::rows::{get, key_of, read_tag_count};
use crate::store::PgStore;

#[async_trait]
impl OrganiseStore for PgStore {
    async fn tags(&self, kb: Option<&str>) -> Result<Vec<TagCount>> {
        let rows = self.query(
                "SELECT t.tag, count(*) FROM entry_tags t JOIN live_entries e ON e.rowid = t.entry \
                 WHERE $1::text IS NULL OR e.kb = $1 GROUP BY t.tag ORDER BY count(*) DESC, t.tag",
                &[&kb],
            ).await?;
        rows.iter().map(read_tag_count).collect()
    }

    async fn tags_with_prefix(&self, kb: Option<&str>, prefix: &str) -> Result<Vec<TagCount>> {
        let p = prefix.trim().trim_end_matches('/');
        let (below, end) = Filter::hierarchy_bounds(p);
        let rows = self.query(
                "SELECT t.tag, count(*) FROM entry_tags t JOIN live_entries e ON e.rowid = t.entry \
                 WHERE ($1::text IS NULL OR e.kb = $1) AND (t.tag = $2 OR (t.tag >= $3 AND t.tag < $4)) \
                 GROUP BY t.tag ORDER BY t.tag",
                &[&kb, &p, &below, &end],
            ).await?;
        rows.iter().map(read_tag_count).collect()
    }

    async fn get_setting(&self, scope: &SettingScope, key: &str) -> Result<Option<Value>> {
        let row = self
            .query_opt(
                "SELECT value FROM settings WHERE kb = $1 AND key = $2",
                &[&scope.kb_key(), &key],
            )
            .await?;
        row.map(|r| get::<Json<Value>>(&r, 0).map(|j| j.0))
            .transpose()
    }

    async fn set_setting(&self, scope: &SettingScope, key: &str, value: &Value) -> Result<()> {
        validate_setting_key(key)?;
        check_json_text("setting", value)?;
        let kb = scope.kb_key();
        let conn = self.conn().await?;
        // The KB check and the write are one statement, and the check locks the KB row the
        // way a foreign key would (FOR KEY SHARE): a `delete_kb` either waits for this
        // write and then deletes the setting with the KB's other settings, or commits first
        // and this finds no KB. Without the lock the setting could outlive its KB and be
        // inherited by a KB re-created under the same name.
        let n = conn
            .execute(
                "INSERT INTO settings (kb, key, value) SELECT $1, $2, $3 \
                 WHERE $1 = '' OR EXISTS (SELECT 1 FROM kbs WHERE name = $1 FOR KEY SHARE) \
                 ON CONFLICT (kb, key) DO UPDATE SET value = EXCLUDED.value",
                &[&kb, &key, &Json(value)],
            )
            .await
            .map_err(self.pg())?;
        if n == 0 {
            return Err(StorageError::kb_not_found(kb));
        }
        Ok(())
    }

    async fn delete_setting(&self, scope: &SettingScope, key: &str) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM settings WHERE kb = $1 AND key = $2",
                &[&scope.kb_key(), &key],
            )
            .await?;
        Ok(n > 0)
    }

    async fn list_settings(&self, scope: &SettingScope) -> Result<Vec<(String, Value)>> {
        let rows = self
            .query(
                "SELECT key, value FROM settings WHERE kb = $1 ORDER BY key",
                &[&scope.kb_key()],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((get(r, 0)?, get::<Json<Value>>(r, 1)?.0)))
            .collect()
    }

    async fn star(&self, key: &EntryKey) -> Result<()> {
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(&pg)?;
        // The entry row first, key-share locked (what the foreign key check takes): a
        // concurrent `delete_entry` holds that row and then needs the stars table for its
        // cascade, so taking the table lock first deadlocked the two.
        let entry: i64 = tx
            .query_opt(
                "SELECT rowid FROM live_entries WHERE kb = $1 AND id = $2 FOR KEY SHARE",
                &[&key.kb, &key.id],
            )
            .await
            .map_err(&pg)?
            .ok_or_else(|| StorageError::entry_not_found(key))
            .and_then(|r| get(&r, 0))?;
        // Positions come from max+1, so concurrent stars serialise on the table lock.
        tx.batch_execute("LOCK TABLE stars IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(&pg)?;
        tx.execute(
            "INSERT INTO stars (entry, position) \
             SELECT $1, COALESCE(max(position), 0) + 1 FROM stars ON CONFLICT (entry) DO NOTHING",
            &[&entry],
        )
        .await
        .map_err(&pg)?;
        tx.commit().await.map_err(&pg)
    }

    async fn unstar(&self, key: &EntryKey) -> Result<bool> {
        let n = self.execute(
                "DELETE FROM stars s USING entries e WHERE s.entry = e.rowid AND e.kb = $1 AND e.id = $2",
                &[&key.kb, &key.id],
            ).await?;
        Ok(n > 0)
    }

    async fn starred(&self, kb: Option<&str>) -> Result<Vec<EntryKey>> {
        let rows = self
            .query(
                "SELECT e.kb, e.id FROM stars s JOIN live_entries e ON e.rowid = s.entry \
                 WHERE $1::text IS NULL OR e.kb = $1 ORDER BY s.position",
                &[&kb],
            )
            .await?;
        rows.iter().map(|r| key_of(r, 0)).collect()
    }

    async fn create_collection(
        &self,
        kb: &str,
        name: &str,
        description: &str,
    ) -> Result<Collection> {
        validate_collection(name, description)?;
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(&pg)?;
        if tx
            .query_opt("SELECT 1 FROM kbs WHERE name = $1 FOR SHARE", &[&kb])
            .await
            .map_err(&pg)?
            .is_none()
        {
            return Err(StorageError::kb_not_found(kb));
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
        let n = self
            .execute(
                "DELETE FROM collections WHERE kb = $1 AND name = $2",
                &[&kb, &name],
            )
            .await?;
        Ok(n > 0)
    }

    async fn list_collections(&self, kb: &str) -> Result<Vec<Collection>> {
        let rows = self
            .query(
                "SELECT c.kb, c.name, c.description, \
                 (SELECT count(*) FROM collection_members m WHERE m.collection = c.rowid) \
                 FROM collections c WHERE c.kb = $1 ORDER BY c.name",
                &[&kb],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Collection {
                    kb: get(r, 0)?,
                    name: get(r, 1)?,
                    description: get(r, 2)?,
                    size: get::<i64>(r, 3)? as u64,
                })
            })
            .collect()
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
            .ok_or_else(|| StorageError::entry_not_found(&key))
            .and_then(|r| get(&r, 0))?;
        let mut members: Vec<i64> = tx
            .query(
                "SELECT entry FROM collection_members WHERE collection = $1 ORDER BY position",
                &[&coll],
            )
            .await
            .map_err(&pg)?
            .iter()
            .map(|r| get(r, 0))
            .collect::<Result<_>>()?;
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
        let pg = self.pg();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(&pg)?;
        // The same collection lock as `add_to_collection`, which rewrites the member list
        // it read: without it, a removal between that read and the rewrite was undone.
        let coll = collection_rowid(&tx, kb, name, " FOR UPDATE", &self.inner.endpoint).await?;
        let n = tx
            .execute(
                "DELETE FROM collection_members m USING entries e \
                 WHERE m.collection = $1 AND m.entry = e.rowid AND e.kb = $2 AND e.id = $3",
                &[&coll, &kb, &id],
            )
            .await
            .map_err(&pg)?;
        tx.commit().await.map_err(&pg)?;
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
        rows.iter().map(|r| get(r, 0)).collect()
    }
}

/// The collection's row id; `lock` is "" or " FOR UPDATE" (serialises edits of one collection).
pub(crate) async fn collection_rowid(
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
    row.map(|r| get(&r, 0))
        .ok_or_else(|| StorageError::collection_not_found(kb, name))?
}
