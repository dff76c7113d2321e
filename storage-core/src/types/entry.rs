//! Entries as written (`NewEntry`) and as stored (`Entry`), with their links and sources.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::*;
use crate::error::{Result, StorageError};

/// An entry's identity: its knowledge base and its id within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntryKey {
    /// The knowledge base's name.
    pub kb: String,
    /// The entry's id within its knowledge base.
    pub id: String,
}

impl EntryKey {
    /// A key from a KB name and an id.
    pub fn new(kb: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kb: kb.into(),
            id: id.into(),
        }
    }
}

impl std::fmt::Display for EntryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kb, self.id)
    }
}

/// Whether an entry is live or archived. Archived entries are excluded from list, count
/// and search unless a filter asks for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Lifecycle {
    /// Live: listed, counted and searched (the default).
    #[default]
    Active,
    /// Kept, but hidden unless a filter asks for it.
    Archived,
}

impl Lifecycle {
    /// The name stored and serialised: `active` or `archived`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Active => "active",
            Lifecycle::Archived => "archived",
        }
    }
    /// The lifecycle named by [`as_str`](Self::as_str); `None` for any other text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }
}

/// A directed link from one entry to another. The target need not exist (yet).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Link {
    /// Target entry id.
    pub target: String,
    /// Target knowledge base; `None` means the linking entry's own KB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_kb: Option<String>,
    /// Kind of link, e.g. `related`, `depends_on`, `wikilink`.
    #[serde(default = "default_relation")]
    pub relation: String,
    /// A note on the link, e.g. the heading of a `[[target#heading]]` wikilink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn default_relation() -> String {
    "related".to_owned()
}

impl Link {
    /// A `related` link to `target` in the linking entry's own KB.
    pub fn to(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            target_kb: None,
            relation: default_relation(),
            note: None,
        }
    }
    /// Sets the relation.
    pub fn relation(mut self, r: impl Into<String>) -> Self {
        self.relation = r.into();
        self
    }
    /// Sets the target's knowledge base.
    pub fn in_kb(mut self, kb: impl Into<String>) -> Self {
        self.target_kb = Some(kb.into());
        self
    }
    /// Sets the note.
    pub fn note(mut self, n: impl Into<String>) -> Self {
        self.note = Some(n.into());
        self
    }
    /// The target's key, resolving a missing `target_kb` to `from_kb`.
    pub fn target_key(&self, from_kb: &str) -> EntryKey {
        EntryKey::new(self.target_kb.as_deref().unwrap_or(from_kb), &self.target)
    }
}

/// Where a piece of knowledge came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Source {
    /// What the source is called.
    pub title: String,
    /// Where the source can be found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The source's date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
}

/// What a caller writes. The store adds timestamps and the content hash ([`Entry`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEntry {
    /// The knowledge base the entry belongs to; it must exist.
    pub kb: String,
    /// The entry's id, unique within its KB.
    pub id: String,
    /// Kind of entry, e.g. `note` (the default) or `memory`.
    #[serde(default = "default_entry_type")]
    pub entry_type: String,
    /// The title, weighted highest in full-text search.
    #[serde(default)]
    pub title: String,
    /// A short summary.
    #[serde(default)]
    pub summary: String,
    /// The main text.
    #[serde(default)]
    pub body: String,
    /// Tags; `/` separates levels of a hierarchy (`topic/ai`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Outgoing links, in the order written.
    #[serde(default)]
    pub links: Vec<Link>,
    /// Where the content came from.
    #[serde(default)]
    pub sources: Vec<Source>,
    /// Any other fields, as JSON; filters address them by dotted path.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// The entry's own date, if any; the timeline and date filters use it.
    #[serde(default)]
    pub date: Option<NaiveDate>,
    /// How important the entry is; `min_importance` and the importance sort use it.
    #[serde(default)]
    pub importance: i32,
    /// Workflow status (e.g. `in_progress`), which [`claim`](crate::CoordinationStore::claim) changes atomically.
    #[serde(default)]
    pub status: Option<String>,
    /// Who the entry's work is assigned to; set with the status by a claim.
    #[serde(default)]
    pub assignee: Option<String>,
    /// Whether the entry is active or archived.
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// Path of the file this entry was read from, relative to its sync root, `/`-separated.
    #[serde(default)]
    pub source_path: Option<String>,
    /// When set, the entry fades: once this instant has passed it is absent from every
    /// read, list, count, search, graph walk and `similar`, and
    /// [`gc_expired`](crate::Store::gc_expired) deletes it. Agent memories that should
    /// not outlive a task carry one. Not part of the content hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

fn default_entry_type() -> String {
    "note".to_owned()
}

impl NewEntry {
    /// An active `note` with only its key set.
    pub fn new(kb: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kb: kb.into(),
            id: id.into(),
            entry_type: default_entry_type(),
            title: String::new(),
            summary: String::new(),
            body: String::new(),
            tags: Vec::new(),
            links: Vec::new(),
            sources: Vec::new(),
            metadata: Map::new(),
            date: None,
            importance: 0,
            status: None,
            assignee: None,
            lifecycle: Lifecycle::Active,
            source_path: None,
            expires_at: None,
        }
    }
    /// The entry's key.
    pub fn key(&self) -> EntryKey {
        EntryKey::new(&self.kb, &self.id)
    }
    /// Sets the entry type.
    pub fn entry_type(mut self, t: impl Into<String>) -> Self {
        self.entry_type = t.into();
        self
    }
    /// Sets the title.
    pub fn title(mut self, t: impl Into<String>) -> Self {
        self.title = t.into();
        self
    }
    /// Sets the summary.
    pub fn summary(mut self, s: impl Into<String>) -> Self {
        self.summary = s.into();
        self
    }
    /// Sets the body.
    pub fn body(mut self, b: impl Into<String>) -> Self {
        self.body = b.into();
        self
    }
    /// Replaces the tags.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }
    /// Adds a link.
    pub fn link(mut self, l: Link) -> Self {
        self.links.push(l);
        self
    }
    /// Adds a source.
    pub fn source(mut self, s: Source) -> Self {
        self.sources.push(s);
        self
    }
    /// Sets one top-level metadata key.
    pub fn meta(mut self, key: impl Into<String>, v: Value) -> Self {
        self.metadata.insert(key.into(), v);
        self
    }
    /// Sets the date.
    pub fn date(mut self, d: NaiveDate) -> Self {
        self.date = Some(d);
        self
    }
    /// Sets the importance.
    pub fn importance(mut self, i: i32) -> Self {
        self.importance = i;
        self
    }
    /// Sets the status.
    pub fn status(mut self, s: impl Into<String>) -> Self {
        self.status = Some(s.into());
        self
    }
    /// Sets the assignee.
    pub fn assignee(mut self, a: impl Into<String>) -> Self {
        self.assignee = Some(a.into());
        self
    }
    /// Sets the lifecycle.
    pub fn lifecycle(mut self, l: Lifecycle) -> Self {
        self.lifecycle = l;
        self
    }
    /// Sets the source path.
    pub fn source_path(mut self, p: impl Into<String>) -> Self {
        self.source_path = Some(p.into());
        self
    }
    /// Sets the instant the entry expires.
    pub fn expires_at(mut self, t: DateTime<Utc>) -> Self {
        self.expires_at = Some(t);
        self
    }
    /// Expires `ttl` from now (saturating, like an ephemeral KB's TTL).
    pub fn ttl(mut self, ttl: chrono::Duration) -> Self {
        self.expires_at = Some(expiry_after(Utc::now(), ttl));
        self
    }

    /// Validates and canonicalises the entry the same way on every backend: trims and
    /// de-duplicates tags (dropping empty ones, keeping first-seen order), de-duplicates
    /// links, normalises the source path, and rejects oversized or malformed fields.
    pub fn normalized(&self) -> Result<NewEntry> {
        let mut e = self.clone();
        validate_name("knowledge base name", &e.kb)?;
        validate_id(&e.id)?;
        validate_short("entry type", &e.entry_type)?;
        if e.entry_type.trim().is_empty() {
            return Err(StorageError::invalid_input("entry type must not be empty"));
        }
        check_len("title", &e.title, MAX_TEXT_FIELD_BYTES)?;
        check_len("summary", &e.summary, MAX_TEXT_FIELD_BYTES)?;
        check_len("body", &e.body, MAX_BODY_BYTES)?;
        // Short fields (ids, tags, status, …) already reject every control character.
        check_no_nul("title", &e.title)?;
        check_no_nul("summary", &e.summary)?;
        check_no_nul("body", &e.body)?;
        check_count("sources", e.sources.len(), MAX_SOURCES_PER_ENTRY)?;
        for s in &e.sources {
            check_len("source title", &s.title, MAX_TEXT_FIELD_BYTES)?;
            check_no_nul("source title", &s.title)?;
            if let Some(url) = &s.url {
                check_len("source url", url, MAX_URL_BYTES)?;
                check_no_nul("source url", url)?;
            }
        }
        for l in &e.links {
            if let Some(note) = &l.note {
                check_len("link note", note, MAX_TEXT_FIELD_BYTES)?;
                check_no_nul("link note", note)?;
            }
        }
        for (k, v) in &e.metadata {
            check_no_nul(&format!("metadata key {k:?}"), k)?;
            check_json_at("metadata", &mut k.clone(), v)?;
        }
        let mut seen = std::collections::HashSet::new();
        let mut tags = Vec::with_capacity(e.tags.len());
        for t in &e.tags {
            let t = t.trim();
            if t.is_empty() {
                continue;
            }
            validate_short("tag", t)?;
            if seen.insert(t.to_owned()) {
                tags.push(t.to_owned());
            }
        }
        check_count("tags", tags.len(), MAX_TAGS_PER_ENTRY)?;
        e.tags = tags;
        let mut seen_links = std::collections::HashSet::new();
        let mut links = Vec::with_capacity(e.links.len());
        for l in &e.links {
            validate_id(&l.target)?;
            if let Some(kb) = &l.target_kb {
                validate_name("link target knowledge base", kb)?;
            }
            validate_short("link relation", &l.relation)?;
            let key = (l.target_kb.clone(), l.target.clone(), l.relation.clone());
            if seen_links.insert(key) {
                links.push(l.clone());
            }
        }
        check_count("links", links.len(), MAX_LINKS_PER_ENTRY)?;
        e.links = links;
        for s in [&e.status, &e.assignee].into_iter().flatten() {
            validate_short("status/assignee", s)?;
        }
        if let Some(p) = &e.source_path {
            let p = p.replace('\\', "/");
            let p = p.trim_start_matches("./").to_owned();
            validate_short("source path", &p)?;
            e.source_path = if p.is_empty() { None } else { Some(p) };
        }
        Ok(e)
    }

    /// The stored form of this (normalised) entry, as every backend returns it;
    /// `content_hash` is [`content_hash`](Self::content_hash), computed once by the caller.
    pub fn into_stored(
        self,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
        content_hash: String,
    ) -> Entry {
        Entry {
            kb: self.kb,
            id: self.id,
            entry_type: self.entry_type,
            title: self.title,
            summary: self.summary,
            body: self.body,
            tags: self.tags,
            links: self.links,
            sources: self.sources,
            metadata: self.metadata,
            date: self.date,
            importance: self.importance,
            status: self.status,
            assignee: self.assignee,
            lifecycle: self.lifecycle,
            source_path: self.source_path,
            // Stores keep microseconds; the returned entry equals the one read back.
            expires_at: self
                .expires_at
                .map(|t| DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)),
            created_at,
            updated_at,
            content_hash,
        }
    }

    /// The text an embedding model sees: title, summary and body.
    pub fn embeddable_text(&self) -> String {
        embeddable_text(&self.title, &self.summary, &self.body)
    }

    /// Hash of the embeddable text; the embedding queue re-embeds when it changes.
    pub fn text_hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        let mut first = true;
        for part in [&self.title, &self.summary, &self.body] {
            if part.is_empty() {
                continue;
            }
            if !first {
                h.update(b"\n\n");
            }
            h.update(part.as_bytes());
            first = false;
        }
        h.finalize().to_hex().to_string()
    }

    /// Hash of the entry's content: every written field except its KB and the workflow
    /// state (`status`, `assignee`), which claims change without changing content. Equal
    /// content gives equal hashes on every backend, so sync and migration can compare
    /// without reading bodies.
    pub fn content_hash(&self) -> String {
        // Each field is fed as (length, bytes), so field boundaries are unambiguous and long
        // text is hashed as is (no JSON escaping); the small structured fields go through
        // serde_json, canonical because their field order is fixed and Map is sorted.
        // BLAKE3, not SHA-256: this is change detection, and SHA-256 without CPU support
        // measured as a quarter of SQLite ingest time.
        fn field(h: &mut blake3::Hasher, bytes: &[u8]) {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        let mut h = blake3::Hasher::new();
        for text in [
            &self.id,
            &self.entry_type,
            &self.title,
            &self.summary,
            &self.body,
        ] {
            field(&mut h, text.as_bytes());
        }
        let structured = serde_json::to_vec(&(
            &self.tags,
            &self.links,
            &self.sources,
            &self.metadata,
            self.date,
            self.importance,
            self.lifecycle,
            &self.source_path,
        ))
        .expect("entries always serialise");
        field(&mut h, &structured);
        h.finalize().to_hex().to_string()
    }
}

/// Joins the embeddable fields the same way everywhere.
pub fn embeddable_text(title: &str, summary: &str, body: &str) -> String {
    [title, summary, body]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// A stored entry: what was written plus the store's timestamps and content hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entry {
    /// See [`NewEntry::kb`].
    pub kb: String,
    /// See [`NewEntry::id`].
    pub id: String,
    /// See [`NewEntry::entry_type`].
    pub entry_type: String,
    /// See [`NewEntry::title`].
    pub title: String,
    /// See [`NewEntry::summary`].
    pub summary: String,
    /// See [`NewEntry::body`].
    pub body: String,
    /// Tags as normalised: trimmed, de-duplicated, in first-seen order.
    pub tags: Vec<String>,
    /// Outgoing links as normalised: de-duplicated, in the order written.
    pub links: Vec<Link>,
    /// See [`NewEntry::sources`].
    pub sources: Vec<Source>,
    /// See [`NewEntry::metadata`].
    pub metadata: Map<String, Value>,
    /// See [`NewEntry::date`].
    pub date: Option<NaiveDate>,
    /// See [`NewEntry::importance`].
    pub importance: i32,
    /// See [`NewEntry::status`].
    pub status: Option<String>,
    /// See [`NewEntry::assignee`].
    pub assignee: Option<String>,
    /// See [`NewEntry::lifecycle`].
    pub lifecycle: Lifecycle,
    /// See [`NewEntry::source_path`].
    pub source_path: Option<String>,
    /// See [`NewEntry::expires_at`]. A stored entry a read returns is never past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When the entry was first written; re-upserts keep it.
    pub created_at: DateTime<Utc>,
    /// When the entry was last written.
    pub updated_at: DateTime<Utc>,
    /// [`NewEntry::content_hash`] of what was written.
    pub content_hash: String,
}

impl Entry {
    /// The entry's key.
    pub fn key(&self) -> EntryKey {
        EntryKey::new(&self.kb, &self.id)
    }
    /// The writable part, e.g. to modify and upsert again.
    pub fn to_new(&self) -> NewEntry {
        NewEntry {
            kb: self.kb.clone(),
            id: self.id.clone(),
            entry_type: self.entry_type.clone(),
            title: self.title.clone(),
            summary: self.summary.clone(),
            body: self.body.clone(),
            tags: self.tags.clone(),
            links: self.links.clone(),
            sources: self.sources.clone(),
            metadata: self.metadata.clone(),
            date: self.date,
            importance: self.importance,
            status: self.status.clone(),
            assignee: self.assignee.clone(),
            lifecycle: self.lifecycle,
            source_path: self.source_path.clone(),
            expires_at: self.expires_at,
        }
    }
}
