//! Tags, settings, stars and collections (`OrganiseStore`).

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;
use storage_core::*;

use crate::error::map_json;
use crate::rows::read_tag_count;
use crate::store::{execute, kb_exists, live_rowid_of, query, query_opt, sql, SqliteStore};

#[async_trait]
impl OrganiseStore for SqliteStore {
    async fn tags(&self, kb: Option<&str>) -> Result<Vec<TagCount>> {
        let kb = kb.map(str::to_owned);
        self.run(move |c, _| {
            query(c, "SELECT t.tag, COUNT(*) FROM entry_tags t JOIN live_entries e ON e.rowid = t.entry \
                 WHERE ?1 IS NULL OR e.kb = ?1 GROUP BY t.tag ORDER BY COUNT(*) DESC, t.tag", [kb], read_tag_count)
        })
        .await
    }

    async fn tags_with_prefix(&self, kb: Option<&str>, prefix: &str) -> Result<Vec<TagCount>> {
        let kb = kb.map(str::to_owned);
        let p = prefix.trim().trim_end_matches('/').to_owned();
        let (below, end) = Filter::hierarchy_bounds(&p);
        self.run(move |c, _| {
            query(c, "SELECT t.tag, COUNT(*) FROM entry_tags t JOIN live_entries e ON e.rowid = t.entry \
                 WHERE (?1 IS NULL OR e.kb = ?1) AND (t.tag = ?2 OR (t.tag >= ?3 AND t.tag < ?4)) \
                 GROUP BY t.tag ORDER BY t.tag", params![kb, p, below, end],
                read_tag_count)
        })
        .await
    }

    async fn get_setting(&self, scope: &SettingScope, key: &str) -> Result<Option<Value>> {
        let (kb, key) = (scope.kb_key().to_owned(), key.to_owned());
        self.run(move |c, _| {
            let v: Option<String> = query_opt(
                c,
                "SELECT value FROM settings WHERE kb = ?1 AND key = ?2",
                [kb, key],
                |r| r.get(0),
            )?;
            v.map(|s| serde_json::from_str(&s).map_err(map_json))
                .transpose()
        })
        .await
    }

    async fn set_setting(&self, scope: &SettingScope, key: &str, value: &Value) -> Result<()> {
        validate_setting_key(key)?;
        check_json_text("setting", value)?;
        let (kb, key, value) = (scope.kb_key().to_owned(), key.to_owned(), value.to_string());
        self.run(move |c, _| {
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            if !kb.is_empty() && !kb_exists(&tx, &kb)? {
                return Err(StorageError::kb_not_found(&kb));
            }
            execute(
                &tx,
                "INSERT INTO settings (kb, key, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (kb, key) DO UPDATE SET value = excluded.value",
                [kb, key, value],
            )?;
            sql(tx.commit())
        })
        .await
    }

    async fn delete_setting(&self, scope: &SettingScope, key: &str) -> Result<bool> {
        let (kb, key) = (scope.kb_key().to_owned(), key.to_owned());
        self.run(move |c, _| {
            Ok(execute(
                c,
                "DELETE FROM settings WHERE kb = ?1 AND key = ?2",
                [kb, key],
            )? > 0)
        })
        .await
    }

    async fn list_settings(&self, scope: &SettingScope) -> Result<Vec<(String, Value)>> {
        let kb = scope.kb_key().to_owned();
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
            let rowid =
                live_rowid_of(&tx, &key)?.ok_or_else(|| StorageError::entry_not_found(&key))?;
            execute(
                &tx,
                "INSERT INTO stars (entry, position) \
                 VALUES (?1, (SELECT COALESCE(MAX(position), 0) + 1 FROM stars)) \
                 ON CONFLICT (entry) DO NOTHING",
                [rowid],
            )?;
            sql(tx.commit())
        })
        .await
    }

    async fn unstar(&self, key: &EntryKey) -> Result<bool> {
        let key = key.clone();
        self.run(move |c, _| {
            Ok(execute(c, "DELETE FROM stars WHERE entry = (SELECT rowid FROM entries WHERE kb = ?1 AND id = ?2)",
                [&key.kb, &key.id])? > 0)
        })
        .await
    }

    async fn starred(&self, kb: Option<&str>) -> Result<Vec<EntryKey>> {
        let kb = kb.map(str::to_owned);
        self.run(move |c, _| {
            query(
                c,
                "SELECT e.kb, e.id FROM stars s JOIN live_entries e ON e.rowid = s.entry \
                 WHERE ?1 IS NULL OR e.kb = ?1 ORDER BY s.position",
                [kb],
                |r| {
                    Ok(EntryKey::new(
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                    ))
                },
            )
        })
        .await
    }

    async fn create_collection(
        &self,
        kb: &str,
        name: &str,
        description: &str,
    ) -> Result<Collection> {
        validate_collection(name, description)?;
        let (kb, name, description) = (kb.to_owned(), name.to_owned(), description.to_owned());
        self.run(move |c, _| {
            let tx = sql(c.transaction_with_behavior(TransactionBehavior::Immediate))?;
            if !kb_exists(&tx, &kb)? {
                return Err(StorageError::kb_not_found(&kb));
            }
            let n = execute(
                &tx,
                "INSERT INTO collections (kb, name, description) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (kb, name) DO NOTHING",
                [&kb, &name, &description],
            )?;
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
            Ok(execute(
                c,
                "DELETE FROM collections WHERE kb = ?1 AND name = ?2",
                [kb, name],
            )? > 0)
        })
        .await
    }

    async fn list_collections(&self, kb: &str) -> Result<Vec<Collection>> {
        let kb = kb.to_owned();
        self.run(move |c, _| {
            query(
                c,
                "SELECT c.kb, c.name, c.description, \
                 (SELECT COUNT(*) FROM collection_members m WHERE m.collection = c.rowid) \
                 FROM collections c WHERE c.kb = ?1 ORDER BY c.name",
                [kb],
                |r| {
                    Ok(Collection {
                        kb: r.get(0)?,
                        name: r.get(1)?,
                        description: r.get(2)?,
                        size: r.get::<_, i64>(3)? as u64,
                    })
                },
            )
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
            let rowid = live_rowid_of(&tx, &key)?.ok_or_else(|| StorageError::entry_not_found(&key))?;
            let mut members: Vec<i64> = {
                query(&tx, "SELECT entry FROM collection_members WHERE collection = ?1 ORDER BY position", [coll], |r| r.get(0))?
            };
            members.retain(|&m| m != rowid);
            let at = position.unwrap_or(members.len()).min(members.len());
            members.insert(at, rowid);
            // Renumber densely: collections are small and edited by people, so a rewrite
            // is simpler than gap-based positions and keeps the order exact.
            execute(&tx, "DELETE FROM collection_members WHERE collection = ?1", [coll])?;
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
            Ok(execute(
                c,
                "DELETE FROM collection_members WHERE collection = ?1 \
                 AND entry = (SELECT rowid FROM entries WHERE kb = ?2 AND id = ?3)",
                params![coll, kb, id],
            )? > 0)
        })
        .await
    }

    async fn collection_entries(&self, kb: &str, name: &str) -> Result<Vec<String>> {
        let (kb, name) = (kb.to_owned(), name.to_owned());
        self.run(move |c, _| {
            let coll = collection_rowid(c, &kb, &name)?;
            query(
                c,
                "SELECT e.id FROM collection_members m JOIN live_entries e ON e.rowid = m.entry \
                 WHERE m.collection = ?1 ORDER BY m.position",
                [coll],
                |r| r.get(0),
            )
        })
        .await
    }
}

pub(crate) fn collection_rowid(c: &Connection, kb: &str, name: &str) -> Result<i64> {
    sql(c
        .prepare_cached("SELECT rowid FROM collections WHERE kb = ?1 AND name = ?2")
        .and_then(|mut s| s.query_row([kb, name], |r| r.get(0)).optional()))?
    .ok_or_else(|| StorageError::collection_not_found(kb, name))
}
