//! Column lists and row decoding: every row this crate reads becomes a protocol type
//! here, and a value that does not decode is an error, never a panic.

use serde_json::{Map, Value};
use storage_core::*;
use tokio_postgres::types::{FromSql, Json};
use tokio_postgres::Row;

/// Columns of `entries e` in the order [`read_entry`] expects.
pub(crate) const ENTRY_COLUMNS: &str = "e.kb, e.id, e.entry_type, e.title, e.summary, e.body, \
    e.tags, e.links, e.sources, e.metadata, e.date, e.importance, e.status, e.assignee, \
    e.lifecycle, e.source_path, e.created_at, e.updated_at, e.content_hash, e.expires_at";
/// Number of columns in [`ENTRY_COLUMNS`]: where a query's own columns start.
pub(crate) const ENTRY_WIDTH: usize = 20;

/// Columns of `kbs` in the order [`read_kb`] expects.
pub(crate) const KB_COLUMNS: &str = "name, description, expires_at, created_at";

/// Column `i` of `r` as `T`; a type mismatch is a `Backend` error, never a panic.
pub(crate) fn get<'a, T: FromSql<'a>>(r: &'a Row, i: usize) -> Result<T> {
    r.try_get(i)
        .map_err(|e| StorageError::backend("a stored value could not be decoded", e))
}

/// Reads [`ENTRY_COLUMNS`] starting at column `at`.
pub(crate) fn read_entry(r: &Row, at: usize) -> Result<Entry> {
    let Json(tags): Json<Vec<String>> = get(r, at + 6)?;
    let Json(links): Json<Vec<Link>> = get(r, at + 7)?;
    let Json(sources): Json<Vec<Source>> = get(r, at + 8)?;
    let Json(metadata): Json<Map<String, Value>> = get(r, at + 9)?;
    let lifecycle: String = get(r, at + 14)?;
    Ok(Entry {
        kb: get(r, at)?,
        id: get(r, at + 1)?,
        entry_type: get(r, at + 2)?,
        title: get(r, at + 3)?,
        summary: get(r, at + 4)?,
        body: get(r, at + 5)?,
        tags,
        links,
        sources,
        metadata,
        date: get(r, at + 10)?,
        importance: get(r, at + 11)?,
        status: get(r, at + 12)?,
        assignee: get(r, at + 13)?,
        lifecycle: Lifecycle::parse(&lifecycle).unwrap_or_default(),
        source_path: get(r, at + 15)?,
        created_at: get(r, at + 16)?,
        updated_at: get(r, at + 17)?,
        content_hash: get(r, at + 18)?,
        expires_at: get(r, at + 19)?,
    })
}

/// Every row's entry, read from column 0.
pub(crate) fn read_entries(rows: &[Row]) -> Result<Vec<Entry>> {
    rows.iter().map(|r| read_entry(r, 0)).collect()
}

/// The `(kb, id)` pair at columns `at`, `at + 1`.
pub(crate) fn key_of(r: &Row, at: usize) -> Result<EntryKey> {
    Ok(EntryKey::new(
        get::<String>(r, at)?,
        get::<String>(r, at + 1)?,
    ))
}

/// Reads [`KB_COLUMNS`].
pub(crate) fn read_kb(r: &Row) -> Result<KnowledgeBase> {
    Ok(KnowledgeBase {
        name: get(r, 0)?,
        description: get(r, 1)?,
        expires_at: get(r, 2)?,
        created_at: get(r, 3)?,
    })
}

/// A `(tag, count)` row.
pub(crate) fn read_tag_count(r: &Row) -> Result<TagCount> {
    Ok(TagCount {
        tag: get(r, 0)?,
        count: get::<i64>(r, 1)? as u64,
    })
}

/// A `count(*)` column.
pub(crate) fn count(r: &Row, i: usize) -> Result<u64> {
    Ok(get::<i64>(r, i)?.max(0) as u64)
}
