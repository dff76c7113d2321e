//! Domain types shared by every backend. All of them serialise with serde so the CLI,
//! the HTTP server and exports can reuse them unchanged.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Result, StorageError};

/// Largest accepted entry body (bytes). Bigger inputs are rejected, not truncated.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Largest accepted id, kb name, type, status, tag or other short field (bytes).
pub const MAX_SHORT_FIELD_BYTES: usize = 512;
/// Largest accepted title or summary (bytes).
pub const MAX_TEXT_FIELD_BYTES: usize = 64 * 1024;

// ---------------------------------------------------------------- knowledge bases

/// A named container of entries. Deleting it deletes everything in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeBase {
    pub name: String,
    pub description: String,
    /// `None` for a persistent KB; for an ephemeral one, the instant after which
    /// [`gc_expired`](crate::Store::gc_expired) removes it.
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl KnowledgeBase {
    pub fn is_ephemeral(&self) -> bool {
        self.expires_at.is_some()
    }
}

/// What to create: a persistent KB, or an ephemeral one with an expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewKnowledgeBase {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewKnowledgeBase {
    pub fn persistent(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            expires_at: None,
        }
    }
    /// An ephemeral KB that expires `ttl` from now.
    pub fn ephemeral(name: impl Into<String>, ttl: chrono::Duration) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            expires_at: Some(expiry_after(Utc::now(), ttl)),
        }
    }
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }
    pub fn validate(&self) -> Result<()> {
        validate_name("knowledge base name", &self.name)?;
        check_no_nul("knowledge base description", &self.description)
    }
}

/// `now + ttl`, saturating where `+` would panic (past chrono's range): a ttl too long
/// to represent means "as late as possible", one too negative "already expired".
fn expiry_after(now: DateTime<Utc>, ttl: chrono::Duration) -> DateTime<Utc> {
    now.checked_add_signed(ttl)
        .unwrap_or(if ttl > chrono::Duration::zero() {
            DateTime::<Utc>::MAX_UTC
        } else {
            now
        })
}

/// An expired KB `gc_expired` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedKnowledgeBase {
    pub name: String,
    pub entries: u64,
}

/// What `gc_expired` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Expired KBs, ordered by name, each with the number of entries it held.
    pub kbs: Vec<RemovedKnowledgeBase>,
    /// Expired entries of KBs that remain.
    pub entries: u64,
}

impl GcReport {
    pub fn is_empty(&self) -> bool {
        self.kbs.is_empty() && self.entries == 0
    }
}

// ---------------------------------------------------------------- entries

/// An entry's identity: its knowledge base and its id within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryKey {
    pub kb: String,
    pub id: String,
}

impl EntryKey {
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
pub enum Lifecycle {
    #[default]
    Active,
    Archived,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Active => "active",
            Lifecycle::Archived => "archived",
        }
    }
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
pub struct Link {
    /// Target entry id.
    pub target: String,
    /// Target knowledge base; `None` means the linking entry's own KB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_kb: Option<String>,
    /// Kind of link, e.g. `related`, `depends_on`, `wikilink`.
    #[serde(default = "default_relation")]
    pub relation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn default_relation() -> String {
    "related".to_owned()
}

impl Link {
    pub fn to(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            target_kb: None,
            relation: default_relation(),
            note: None,
        }
    }
    pub fn relation(mut self, r: impl Into<String>) -> Self {
        self.relation = r.into();
        self
    }
    pub fn in_kb(mut self, kb: impl Into<String>) -> Self {
        self.target_kb = Some(kb.into());
        self
    }
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
pub struct Source {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
}

/// What a caller writes. The store adds timestamps and the content hash ([`Entry`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEntry {
    pub kb: String,
    pub id: String,
    #[serde(default = "default_entry_type")]
    pub entry_type: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
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
    pub fn key(&self) -> EntryKey {
        EntryKey::new(&self.kb, &self.id)
    }
    pub fn entry_type(mut self, t: impl Into<String>) -> Self {
        self.entry_type = t.into();
        self
    }
    pub fn title(mut self, t: impl Into<String>) -> Self {
        self.title = t.into();
        self
    }
    pub fn summary(mut self, s: impl Into<String>) -> Self {
        self.summary = s.into();
        self
    }
    pub fn body(mut self, b: impl Into<String>) -> Self {
        self.body = b.into();
        self
    }
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }
    pub fn link(mut self, l: Link) -> Self {
        self.links.push(l);
        self
    }
    pub fn source(mut self, s: Source) -> Self {
        self.sources.push(s);
        self
    }
    pub fn meta(mut self, key: impl Into<String>, v: Value) -> Self {
        self.metadata.insert(key.into(), v);
        self
    }
    pub fn date(mut self, d: NaiveDate) -> Self {
        self.date = Some(d);
        self
    }
    pub fn importance(mut self, i: i32) -> Self {
        self.importance = i;
        self
    }
    pub fn status(mut self, s: impl Into<String>) -> Self {
        self.status = Some(s.into());
        self
    }
    pub fn assignee(mut self, a: impl Into<String>) -> Self {
        self.assignee = Some(a.into());
        self
    }
    pub fn lifecycle(mut self, l: Lifecycle) -> Self {
        self.lifecycle = l;
        self
    }
    pub fn source_path(mut self, p: impl Into<String>) -> Self {
        self.source_path = Some(p.into());
        self
    }
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
        for s in &e.sources {
            check_no_nul("source title", &s.title)?;
            if let Some(url) = &s.url {
                check_no_nul("source url", url)?;
            }
        }
        for l in &e.links {
            if let Some(note) = &l.note {
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
pub struct Entry {
    pub kb: String,
    pub id: String,
    pub entry_type: String,
    pub title: String,
    pub summary: String,
    pub body: String,
    pub tags: Vec<String>,
    pub links: Vec<Link>,
    pub sources: Vec<Source>,
    pub metadata: Map<String, Value>,
    pub date: Option<NaiveDate>,
    pub importance: i32,
    pub status: Option<String>,
    pub assignee: Option<String>,
    pub lifecycle: Lifecycle,
    pub source_path: Option<String>,
    /// See [`NewEntry::expires_at`]. A stored entry a read returns is never past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub content_hash: String,
}

impl Entry {
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

// ---------------------------------------------------------------- validation

fn check_len(what: &str, s: &str, max: usize) -> Result<()> {
    if s.len() > max {
        return Err(StorageError::invalid_input(format!(
            "{what} is {} bytes, more than the limit of {max}",
            s.len()
        )));
    }
    Ok(())
}

/// Rejects text containing NUL (`\0`). Postgres cannot store it in `text` or `jsonb`
/// (`\u0000`) while SQLite can, so without this rule the same write succeeded on one
/// backend and failed with an engine error on the other.
fn check_no_nul(what: &str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(StorageError::invalid_input(format!(
            "{what} contains a NUL character (\\0), which is not allowed in stored text"
        )));
    }
    Ok(())
}

/// [`check_no_nul`] for every object key and string in a JSON value (the value of a
/// metadata compare-and-set, a setting); `what` names the value.
pub fn check_json_text(what: &str, v: &Value) -> Result<()> {
    check_json_at(what, &mut String::new(), v)
}

/// [`check_json_text`] of a value found at the dotted `path`, which messages name.
fn check_json_at(what: &str, path: &mut String, v: &Value) -> Result<()> {
    match v {
        Value::String(s) if path.is_empty() => check_no_nul(&format!("{what} value"), s),
        Value::String(s) => check_no_nul(&format!("{what} value at {path:?}"), s),
        Value::Array(items) => items.iter().try_for_each(|i| check_json_at(what, path, i)),
        Value::Object(m) => {
            for (k, v) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                check_no_nul(&format!("{what} key {path:?}"), k)?;
                check_json_at(what, path, v)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn validate_short(what: &str, s: &str) -> Result<()> {
    check_len(what, s, MAX_SHORT_FIELD_BYTES)?;
    if s.chars().any(|c| c.is_control()) {
        return Err(StorageError::invalid_input(format!(
            "{what} {s:?} contains a control character"
        )));
    }
    Ok(())
}

/// Entry ids: non-empty, no control characters, at most 512 bytes, no leading/trailing space.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(StorageError::invalid_input("entry id must not be empty"));
    }
    if id.trim() != id {
        return Err(StorageError::invalid_input(format!(
            "entry id {id:?} has leading or trailing whitespace"
        )));
    }
    validate_short("entry id", id)
}

/// Knowledge base names and collection names: 1–128 chars of `[A-Za-z0-9_.-]`, not
/// starting with `.` or `-`. Strict so names are safe in paths, URLs and config files.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(StorageError::invalid_input(format!(
            "{what} {name:?} is not valid: use 1-128 characters from A-Z a-z 0-9 _ - . \
             and do not start with '.' or '-'"
        )))
    }
}

// ---------------------------------------------------------------- tags, graph, timeline

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagCount {
    pub tag: String,
    /// Number of entries (active and archived) carrying the tag.
    pub count: u64,
}

/// An incoming link, as seen from its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlink {
    pub source: EntryKey,
    pub relation: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphNode {
    pub key: EntryKey,
    /// `None` when the node is a link target that does not exist (yet).
    pub title: Option<String>,
    /// Hops from the start entry (0 for the start).
    pub depth: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphEdge {
    pub source: EntryKey,
    pub target: EntryKey,
    pub relation: String,
}

/// A neighbourhood of the link graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graph {
    /// In BFS order: by depth, then by key.
    pub nodes: Vec<GraphNode>,
    /// Edges between returned nodes only, sorted by (source, target, relation).
    pub edges: Vec<GraphEdge>,
    /// True when the node limit cut the neighbourhood short.
    pub truncated: bool,
}

/// Parameters of a graph neighbourhood query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphQuery {
    pub start: EntryKey,
    /// Maximum hops from the start (0 returns only the start).
    pub depth: u32,
    /// Maximum number of nodes returned, start included.
    pub max_nodes: usize,
    /// When non-empty, only nodes in these KBs are visited.
    pub kbs: Vec<String>,
    /// Follow incoming links too, not only outgoing ones.
    pub include_backlinks: bool,
}

impl GraphQuery {
    pub fn new(start: EntryKey, depth: u32) -> Self {
        Self {
            start,
            depth,
            max_nodes: 100,
            kbs: Vec::new(),
            include_backlinks: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkCount {
    pub key: EntryKey,
    /// Number of distinct entries linking to this one.
    pub count: u64,
}

// ---------------------------------------------------------------- search

/// A snippet of matched text with byte ranges to highlight.
///
/// Ranges are kept separate from the text (not inline markers) so that HTML, terminal and
/// JSON callers each render highlights their own way without escaping surprises.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snippet {
    pub text: String,
    /// Byte ranges `[start, end)` into `text`, sorted, non-overlapping.
    pub highlights: Vec<(usize, usize)>,
}

impl Snippet {
    /// Parses text where highlights are delimited by [`HIGHLIGHT_OPEN`]/[`HIGHLIGHT_CLOSE`].
    pub fn from_marked(marked: &str) -> Self {
        let mut text = String::with_capacity(marked.len());
        let mut highlights = Vec::new();
        let mut start = None;
        for c in marked.chars() {
            match c {
                HIGHLIGHT_OPEN => start = Some(text.len()),
                HIGHLIGHT_CLOSE => {
                    if let Some(s) = start.take() {
                        if text.len() > s {
                            highlights.push((s, text.len()));
                        }
                    }
                }
                c => text.push(c),
            }
        }
        Self { text, highlights }
    }

    /// Renders with the given markers, e.g. `("<mark>", "</mark>")` or `("**", "**")`.
    pub fn marked(&self, open: &str, close: &str) -> String {
        let mut out = String::with_capacity(self.text.len() + 8 * self.highlights.len());
        let mut pos = 0;
        for &(s, e) in &self.highlights {
            out.push_str(&self.text[pos..s]);
            out.push_str(open);
            out.push_str(&self.text[s..e]);
            out.push_str(close);
            pos = e;
        }
        out.push_str(&self.text[pos..]);
        out
    }

    /// The highlighted fragments.
    pub fn highlighted(&self) -> Vec<&str> {
        self.highlights
            .iter()
            .map(|&(s, e)| &self.text[s..e])
            .collect()
    }
}

/// Marker backends put around matches when asking their engine for a snippet
/// (control characters, which validated content never contains in practice).
pub const HIGHLIGHT_OPEN: char = '\u{2}';
/// See [`HIGHLIGHT_OPEN`].
pub const HIGHLIGHT_CLOSE: char = '\u{3}';

/// One full-text search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub entry: Entry,
    /// Relevance: higher is better, always `>= 0`, unbounded above; comparable only within
    /// one result list (search-hybrid normalises it to `[0, 1]`).
    pub score: f64,
    /// 1-based position in the full ranking (offset included).
    pub rank: usize,
    pub snippet: Snippet,
}

/// One semantic search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SemanticHit {
    pub entry: Entry,
    /// Cosine similarity in `[-1, 1]` of the entry's best passage, higher is more similar.
    pub score: f32,
    /// 1-based position.
    pub rank: usize,
    /// Index of the best-matching passage (0 for single-vector entries).
    pub passage: u32,
    /// That passage's text, when it was stored with one (`None`: the vector stands for the
    /// whole entry).
    pub passage_text: Option<String>,
}

/// Most passages one entry may have (a 40 MB body split into 1 KB passages).
pub const MAX_PASSAGES_PER_ENTRY: usize = 40_000;

/// One passage of an entry's embeddable text with its vector, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassageVector {
    /// The passage text shown as the snippet of a semantic hit; `None` when the vector
    /// stands for the whole entry.
    pub text: Option<String>,
    pub vector: Vec<f32>,
}

/// All passages of one entry; writing them replaces the entry's previous passages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryPassages {
    pub key: EntryKey,
    /// In document order; index `i` is passage `i`. Never empty.
    pub passages: Vec<PassageVector>,
}

/// A stored passage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPassage {
    pub index: u32,
    pub text: Option<String>,
    pub vector: Vec<f32>,
}

/// Largest `k` of a nearest-neighbour query ([`SemanticQuery::k`], `Store::similar`): the
/// largest page, [`MAX_PAGE_SIZE`](crate::MAX_PAGE_SIZE). `k` sizes buffers and over-fetch
/// arithmetic in the backends, so an unchecked `usize` from a caller could abort the
/// process (allocation) or overflow.
pub const MAX_K: usize = crate::filter::MAX_PAGE_SIZE;

/// Rejects a `k` above [`MAX_K`]. `k = 0` is valid and returns nothing.
pub fn check_k(k: usize) -> Result<()> {
    if k > MAX_K {
        return Err(StorageError::invalid_input(format!(
            "k = {k} is larger than the maximum of {MAX_K} nearest neighbours"
        )));
    }
    Ok(())
}

/// A nearest-neighbour query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SemanticQuery {
    pub vector: Vec<f32>,
    pub k: usize,
    /// Drop hits whose cosine similarity is below this.
    pub min_score: Option<f32>,
    /// Applied before the top-k cut.
    pub filter: crate::Filter,
}

impl SemanticQuery {
    pub fn new(vector: Vec<f32>, k: usize) -> Self {
        Self {
            vector,
            k,
            min_score: None,
            filter: crate::Filter::default(),
        }
    }
    pub fn filter(mut self, f: crate::Filter) -> Self {
        self.filter = f;
        self
    }
    pub fn min_score(mut self, s: f32) -> Self {
        self.min_score = Some(s);
        self
    }

    /// Rejects what no backend can run: `k` above [`MAX_K`], a `min_score` that is not a
    /// number (NaN compares false in Rust and passes everything in Postgres, so the
    /// backends would disagree), an invalid filter. The vector is checked against the
    /// store's dimension by the backend ([`check_vector`](crate::check_vector)).
    pub fn validate(&self) -> Result<()> {
        check_k(self.k)?;
        if self.min_score.is_some_and(|m| !m.is_finite()) {
            return Err(StorageError::invalid_input(
                "min_score must be a finite number",
            ));
        }
        self.filter.validate()
    }
}

// ---------------------------------------------------------------- embeddings

/// The one embedding space a store holds: all vectors come from this model and have this
/// many dimensions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EmbeddingSpace {
    pub model: String,
    pub dimension: usize,
}

impl EmbeddingSpace {
    pub fn new(model: impl Into<String>, dimension: usize) -> Self {
        Self {
            model: model.into(),
            dimension,
        }
    }

    /// Rejects a space no store can hold: no model id, or no dimensions.
    pub fn validate(&self) -> Result<()> {
        if self.dimension == 0 || self.model.trim().is_empty() {
            return Err(StorageError::invalid_input(
                "an embedding space needs a model id and a dimension above 0",
            ));
        }
        Ok(())
    }

    /// `self` is the stored space: `Ok` when `requested` is the same, `ModelMismatch`
    /// otherwise (the rule `ensure_embedding_space` applies on every backend).
    pub fn check_same(&self, requested: &EmbeddingSpace) -> Result<()> {
        if self == requested {
            return Ok(());
        }
        Err(StorageError::ModelMismatch {
            stored_model: self.model.clone(),
            stored_dimension: self.dimension,
            requested_model: requested.model.clone(),
            requested_dimension: requested.dimension,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorCoverage {
    /// Active entries that have a vector.
    pub with_vector: u64,
    /// Active entries that have none.
    pub without_vector: u64,
}

/// Longest lease [`claim_embedding_batch`](crate::Store::claim_embedding_batch) accepts.
/// A lease is how long a crashed worker's items stay unclaimable; a day is far beyond any
/// embedding batch, and the bound keeps `now + lease` inside every backend's timestamp
/// range (an unchecked `Duration::MAX` overflowed or wrapped to a lease in the past).
pub const MAX_LEASE: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// Rejects a lease above [`MAX_LEASE`].
pub fn check_lease(lease: std::time::Duration) -> Result<()> {
    if lease > MAX_LEASE {
        return Err(StorageError::invalid_input(format!(
            "lease of {} s is longer than the maximum of {} s (24 h)",
            lease.as_secs(),
            MAX_LEASE.as_secs()
        )));
    }
    Ok(())
}

/// One claimed item of the embedding queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    pub key: EntryKey,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Hash of the embeddable text when claimed; completing with a stale hash keeps the
    /// item queued, so an edit made during embedding is not lost.
    pub text_hash: String,
}

/// What happened to a failed queue item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailOutcome {
    /// Back in the queue, claimable again.
    WillRetry { attempts: u32 },
    /// Reached the attempt limit; kept with its error, no longer claimed.
    GaveUp { attempts: u32 },
    /// The item was not in the queue (completed, deleted, or never claimed).
    NotQueued,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Waiting to be claimed (including items whose lease expired).
    pub pending: u64,
    /// Claimed by a worker, lease not expired.
    pub in_progress: u64,
    /// Gave up after too many attempts.
    pub failed: u64,
}

/// A queue item that gave up, with the last error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedItem {
    pub key: EntryKey,
    pub attempts: u32,
    pub last_error: String,
}

// ---------------------------------------------------------------- settings, collections

/// Where a setting lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingScope {
    Global,
    Kb(String),
}

impl SettingScope {
    /// The KB column both backends store a setting under: `""` for global settings.
    pub fn kb_key(&self) -> &str {
        match self {
            SettingScope::Global => "",
            SettingScope::Kb(kb) => kb,
        }
    }
}

/// Longest setting key, in bytes.
pub const MAX_SETTING_KEY_BYTES: usize = 256;

/// Rejects a setting key that is empty, longer than [`MAX_SETTING_KEY_BYTES`] or holds
/// control characters.
pub fn validate_setting_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_SETTING_KEY_BYTES || key.chars().any(char::is_control) {
        return Err(StorageError::invalid_input(
            "setting keys are 1-256 characters without control characters",
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection {
    pub kb: String,
    pub name: String,
    pub description: String,
    pub size: u64,
}

// ---------------------------------------------------------------- claim / CAS

/// Checks the arguments of [`claim`](crate::Store::claim) with the rule
/// [`NewEntry::normalized`] applies to status and assignee, so a claimed entry can always
/// be upserted again; the new status must also be non-empty.
pub fn validate_claim(new_status: &str, assignee: &str) -> Result<()> {
    if new_status.is_empty() {
        return Err(StorageError::invalid_input(
            "the new status must be non-empty text",
        ));
    }
    validate_short("status", new_status)?;
    validate_short("assignee", assignee)
}

/// Result of an atomic status claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimOutcome {
    /// The entry had the expected status; it now has the new status and assignee.
    Claimed(Box<Entry>),
    /// Someone else got there first; this is what the entry holds now.
    NotInExpectedState {
        current_status: Option<String>,
        assignee: Option<String>,
    },
    NotFound,
}

/// Result of a compare-and-set on one metadata path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CasOutcome {
    Swapped,
    /// The value at the path was not the expected one; `current` is what is there
    /// (`None` when the path is absent).
    Mismatch {
        current: Option<Value>,
    },
    NotFound,
}

// ---------------------------------------------------------------- health

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    pub max_size: u32,
    /// Open connections.
    pub size: u32,
    pub idle: u32,
    pub in_use: u32,
    /// Callers waiting for a connection, when the pool can tell (0 otherwise).
    pub waiting: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `sqlite`, `postgres`, …
    pub backend: String,
    pub schema_version: u32,
    pub knowledge_bases: u64,
    pub entries: u64,
    pub embedding_space: Option<EmbeddingSpace>,
    pub pool: PoolStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ephemeral_kb_with_an_unrepresentable_ttl_does_not_panic() {
        let kb = NewKnowledgeBase::ephemeral("x", chrono::Duration::MAX);
        assert_eq!(kb.expires_at, Some(DateTime::<Utc>::MAX_UTC));
        let before = Utc::now();
        let kb = NewKnowledgeBase::ephemeral("x", chrono::Duration::MIN);
        assert!(kb.expires_at.unwrap() >= before);
        let kb = NewKnowledgeBase::ephemeral("x", chrono::Duration::hours(1));
        assert!(kb.expires_at.unwrap() > before + chrono::Duration::minutes(59));
    }

    #[test]
    fn leases_above_a_day_are_rejected() {
        check_lease(MAX_LEASE).unwrap();
        check_lease(std::time::Duration::ZERO).unwrap();
        for bad in [
            MAX_LEASE + std::time::Duration::from_nanos(1),
            std::time::Duration::MAX,
        ] {
            assert!(matches!(
                check_lease(bad),
                Err(StorageError::InvalidInput { .. })
            ));
        }
    }

    #[test]
    fn claims_follow_the_status_and_assignee_rule_of_upserts() {
        validate_claim("in_progress", "ana").unwrap();
        validate_claim("in_progress", "").unwrap();
        let long = "a".repeat(MAX_SHORT_FIELD_BYTES + 1);
        for (status, assignee) in [
            ("", "ana"),
            ("in\nprogress", "ana"),
            (long.as_str(), "ana"),
            ("open", long.as_str()),
            ("open", "an\0a"),
            ("open", "an\ta"),
        ] {
            let claim = validate_claim(status, assignee);
            assert!(
                matches!(claim, Err(StorageError::InvalidInput { .. })),
                "{status:?} {assignee:?}"
            );
            // An upsert with the same values is rejected too (unless only the empty
            // status differs, which upserts allow as "no claim yet").
            if !status.is_empty() {
                let e = NewEntry::new("k", "i").status(status).assignee(assignee);
                assert!(e.normalized().is_err(), "{status:?} {assignee:?}");
            }
        }
    }
}
