//! The one filter type used by list, count, timeline, full-text and semantic search, so
//! that "what entries does this select" has a single answer on every code path.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, StorageError};

/// Largest page a single call returns; callers page through bigger sets.
pub const MAX_PAGE_SIZE: usize = 10_000;
/// Largest accepted `offset`. Deeper pages are better reached by narrowing the filter
/// (engines walk and discard every skipped row); the bound also keeps `offset + limit`
/// and ranks far from overflow, and the offset inside the engines' 64-bit range.
pub const MAX_OFFSET: usize = 1_000_000;

/// Which entries to select. Every condition is ANDed; an empty list means "no condition".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filter {
    /// Entry is in any of these KBs.
    pub kbs: Vec<String>,
    /// Entry type is any of these.
    pub entry_types: Vec<String>,
    /// Entry carries all of these tags (exact match).
    pub tags: Vec<String>,
    /// Entry carries a tag equal to this or below it in the hierarchy:
    /// `topic` matches `topic` and `topic/ai`, not `topical`.
    pub tag_prefix: Option<String>,
    /// Status is any of these.
    pub statuses: Vec<String>,
    /// Archived entries are left out unless this asks for them.
    pub lifecycle: LifecycleFilter,
    /// Inclusive bounds on the entry's `date`; entries without a date never match a bound.
    pub date_from: Option<NaiveDate>,
    /// See `date_from`.
    pub date_to: Option<NaiveDate>,
    /// Importance is at least this.
    pub min_importance: Option<i32>,
    /// Source path is inside this folder (`notes` matches `notes/a.md` and
    /// `notes/sub/b.md`, not `notes-old/c.md`).
    pub path_prefix: Option<String>,
    /// Metadata value at a dotted path (`a.b`) equals the given JSON value.
    pub metadata: Vec<MetadataEq>,
    /// Ordering of list results (ignored by searches, which order by relevance, and by
    /// the timeline, which orders by date).
    pub sort: Sort,
    /// Page size; `None` means [`MAX_PAGE_SIZE`].
    pub limit: Option<usize>,
    /// Number of selected entries to skip before the page; at most [`MAX_OFFSET`].
    pub offset: usize,
}

/// One metadata condition: the value at `path` equals `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataEq {
    /// Dotted path of object keys, each `[A-Za-z0-9_]+`.
    pub path: String,
    /// The JSON value to compare with.
    pub value: Value,
}

/// Archived entries are hidden unless asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleFilter {
    /// Active entries only (the default).
    #[default]
    Active,
    /// Archived entries only.
    Archived,
    /// Active and archived entries.
    Any,
}

/// What list results are ordered by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    /// Last update time (the default).
    #[default]
    Updated,
    /// Creation time.
    Created,
    /// Title.
    Title,
    /// The entry's `date`.
    Date,
    /// Importance.
    Importance,
}

/// Direction of a sort.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Smallest first.
    Asc,
    /// Largest first (the default).
    #[default]
    Desc,
}

/// Sort key. Ties are always broken by `(kb, id)` ascending, so paging is stable.
/// Entries without a date sort after dated ones in both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    /// What to order by.
    pub field: SortField,
    /// In which direction.
    pub order: SortOrder,
}

impl Filter {
    /// A filter with no conditions: every active entry.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a KB to select from.
    pub fn kb(mut self, kb: impl Into<String>) -> Self {
        self.kbs.push(kb.into());
        self
    }
    /// Adds an entry type to select.
    pub fn entry_type(mut self, t: impl Into<String>) -> Self {
        self.entry_types.push(t.into());
        self
    }
    /// Adds a tag the entry must carry.
    pub fn tag(mut self, t: impl Into<String>) -> Self {
        self.tags.push(t.into());
        self
    }
    /// Sets the tag prefix.
    pub fn tag_prefix(mut self, t: impl Into<String>) -> Self {
        self.tag_prefix = Some(t.into());
        self
    }
    /// Adds a status to select.
    pub fn status(mut self, s: impl Into<String>) -> Self {
        self.statuses.push(s.into());
        self
    }
    /// Sets which lifecycle to select.
    pub fn lifecycle(mut self, l: LifecycleFilter) -> Self {
        self.lifecycle = l;
        self
    }
    /// Sets both date bounds; `None` leaves that side open.
    pub fn date_range(mut self, from: Option<NaiveDate>, to: Option<NaiveDate>) -> Self {
        self.date_from = from;
        self.date_to = to;
        self
    }
    /// Sets the minimum importance.
    pub fn min_importance(mut self, i: i32) -> Self {
        self.min_importance = Some(i);
        self
    }
    /// Sets the source-path folder.
    pub fn path_prefix(mut self, p: impl Into<String>) -> Self {
        self.path_prefix = Some(p.into());
        self
    }
    /// Adds a metadata condition: the value at the dotted `path` equals `value`.
    pub fn metadata_eq(mut self, path: impl Into<String>, value: Value) -> Self {
        self.metadata.push(MetadataEq {
            path: path.into(),
            value,
        });
        self
    }
    /// Sets the order of list results.
    pub fn sort(mut self, field: SortField, order: SortOrder) -> Self {
        self.sort = Sort { field, order };
        self
    }
    /// Sets the page size.
    pub fn limit(mut self, l: usize) -> Self {
        self.limit = Some(l);
        self
    }
    /// Sets how many entries to skip.
    pub fn offset(mut self, o: usize) -> Self {
        self.offset = o;
        self
    }

    /// Page size to use.
    pub fn effective_limit(&self) -> usize {
        self.limit.unwrap_or(MAX_PAGE_SIZE)
    }

    /// The bounds `[p/, p0)` that select everything strictly below `p` in a `/`
    /// hierarchy with a range scan: `'0'` follows `'/'` in byte order, so the half-open
    /// range is exactly "starts with `p/`" and an index on the column serves it.
    pub fn hierarchy_bounds(prefix: &str) -> (String, String) {
        (format!("{prefix}/"), format!("{prefix}0"))
    }

    /// The tag prefix without a trailing `/`, if any.
    pub fn normalized_tag_prefix(&self) -> Option<&str> {
        self.tag_prefix
            .as_deref()
            .map(|p| p.trim().trim_end_matches('/'))
            .filter(|p| !p.is_empty())
    }

    /// The folder prefix without leading `./` or trailing `/`, if any.
    pub fn normalized_path_prefix(&self) -> Option<&str> {
        self.path_prefix
            .as_deref()
            .map(|p| p.trim_start_matches("./").trim_end_matches('/'))
            .filter(|p| !p.is_empty())
    }

    /// Rejects filters no backend can run: bad metadata paths, inverted date ranges,
    /// oversized pages, offsets above [`MAX_OFFSET`].
    pub fn validate(&self) -> Result<()> {
        if self.offset > MAX_OFFSET {
            return Err(StorageError::invalid_input(format!(
                "offset {} is larger than the maximum offset {MAX_OFFSET}; narrow the filter instead",
                self.offset
            )));
        }
        if let (Some(a), Some(b)) = (self.date_from, self.date_to) {
            if a > b {
                return Err(StorageError::invalid_input(format!(
                    "date range is inverted: from {a} is after to {b}"
                )));
            }
        }
        if let Some(l) = self.limit {
            if l > MAX_PAGE_SIZE {
                return Err(StorageError::invalid_input(format!(
                    "limit {l} is larger than the maximum page size {MAX_PAGE_SIZE}"
                )));
            }
        }
        for m in &self.metadata {
            metadata_path_segments(&m.path)?;
        }
        Ok(())
    }
}

/// Splits and validates a dotted metadata path. Segments are restricted to
/// `[A-Za-z0-9_]` because backends embed them in JSON path expressions.
pub fn metadata_path_segments(path: &str) -> Result<Vec<&str>> {
    let segs: Vec<&str> = path.split('.').collect();
    let ok = !path.is_empty()
        && segs.iter().all(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if ok {
        Ok(segs)
    } else {
        Err(StorageError::invalid_input(format!(
            "metadata path {path:?} is not valid: use dot-separated keys of A-Z a-z 0-9 _"
        )))
    }
}

/// The value at a dotted metadata path (segments from [`metadata_path_segments`]).
pub fn metadata_get<'a>(m: &'a serde_json::Map<String, Value>, segs: &[&str]) -> Option<&'a Value> {
    let (first, rest) = segs.split_first()?;
    let mut cur = m.get(*first)?;
    for s in rest {
        cur = cur.as_object()?.get(*s)?;
    }
    Some(cur)
}

/// Sets the value at a dotted metadata path, creating intermediate objects.
/// `InvalidInput` when an intermediate key holds a non-object.
pub fn metadata_set(m: &mut serde_json::Map<String, Value>, segs: &[&str], v: Value) -> Result<()> {
    let Some((last, parents)) = segs.split_last() else {
        return Err(StorageError::invalid_input("metadata path is empty"));
    };
    let mut cur = m;
    for s in parents {
        let next = cur
            .entry(s.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
        cur = next.as_object_mut().ok_or_else(|| {
            StorageError::invalid_input(format!("metadata key {s:?} holds a non-object value"))
        })?;
    }
    cur.insert(last.to_string(), v);
    Ok(())
}

/// Whether `tag` is `prefix` or below it in the tag hierarchy. Backends implement the same
/// rule in SQL; this is the reference used by tests.
pub fn tag_matches_prefix(tag: &str, prefix: &str) -> bool {
    tag == prefix || (tag.starts_with(prefix) && tag[prefix.len()..].starts_with('/'))
}
