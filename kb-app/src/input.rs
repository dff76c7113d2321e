//! An entry as a front end receives it (a JSONL line, an HTTP body): the fields of
//! `storage_core::NewEntry`, each optional, unknown ones refused so a typo is an error
//! rather than a silently dropped field. BEIR's `_id` and `text` are accepted for `id` and
//! `body`, and an id may be a number.

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use storage_core::{Lifecycle, Link, NewEntry, Source};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntryInput {
    #[serde(default)]
    pub kb: Option<String>,
    #[serde(default, alias = "_id", deserialize_with = "string_or_number")]
    pub id: Option<String>,
    #[serde(default, alias = "type")]
    pub entry_type: Option<String>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default, alias = "text")]
    pub body: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(default)]
    pub sources: Vec<Source>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    #[serde(default)]
    pub date: Option<NaiveDate>,
    #[serde(default)]
    pub importance: i32,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub lifecycle: Lifecycle,
    #[serde(default)]
    pub source_path: Option<String>,
    /// The entry fades at this instant (absent from every read, deleted by GC).
    #[serde(default)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The same, as seconds from now; wins over `expires_at`.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(serde::de::Error::custom(
            "`id` must be a string or a number",
        )),
    }
}

impl EntryInput {
    /// The entry in `kb` with `id` (the caller decides where both come from: the body, a
    /// URL path, the command line); not yet validated.
    pub fn into_entry(self, kb: &str, id: String) -> NewEntry {
        let mut e = NewEntry::new(kb, id);
        if let Some(t) = self.entry_type {
            e.entry_type = t;
        }
        e.title = self.title;
        e.summary = self.summary;
        e.body = self.body;
        e.tags = self.tags;
        e.links = self.links;
        e.sources = self.sources;
        e.metadata = self.metadata;
        e.date = self.date;
        e.importance = self.importance;
        e.status = self.status;
        e.assignee = self.assignee;
        e.lifecycle = self.lifecycle;
        e.source_path = self.source_path;
        e.expires_at = self.expires_at;
        if let Some(ttl) = self.ttl_seconds {
            e = e.ttl(ttl_duration(ttl));
        }
        e
    }
}

/// Seconds as a duration, saturating (a TTL past chrono's range means "far away").
pub fn ttl_duration(secs: u64) -> chrono::Duration {
    i64::try_from(secs)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .unwrap_or(chrono::Duration::MAX)
}
