//! Column lists and row decoding: every row this crate reads becomes a protocol type
//! here, and a value that does not decode is an error, never a panic.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::Row;
use storage_core::*;

/// Columns of `entries e` in the order [`read_entry`] expects.
pub(crate) const ENTRY_COLUMNS: &str = "e.kb, e.id, e.entry_type, e.title, e.summary, e.body, \
    e.tags, e.links, e.sources, e.metadata, e.date, e.importance, e.status, e.assignee, \
    e.lifecycle, e.source_path, e.created_at, e.updated_at, e.content_hash, e.expires_at";

pub(crate) fn from_micros(m: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(m).unwrap_or_default()
}

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

pub(crate) fn read_kb(r: &Row<'_>) -> rusqlite::Result<KnowledgeBase> {
    Ok(KnowledgeBase {
        name: r.get(0)?,
        description: r.get(1)?,
        expires_at: r.get::<_, Option<i64>>(2)?.map(from_micros),
        created_at: from_micros(r.get(3)?),
    })
}

pub(crate) fn read_tag_count(r: &Row<'_>) -> rusqlite::Result<TagCount> {
    Ok(TagCount {
        tag: r.get(0)?,
        count: r.get::<_, i64>(1)? as u64,
    })
}
