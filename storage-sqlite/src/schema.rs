//! Schema and migrations. Applied at open inside one `BEGIN IMMEDIATE` transaction, so two
//! processes opening the same file at once serialise; each migration runs once.

use rusqlite::Connection;

use crate::error::map_sqlite;
use storage_core::Result;

/// Ordered migrations; index + 1 is the schema version after applying it.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE kbs (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    expires_at  INTEGER,            -- unix micros; NULL = persistent
    created_at  INTEGER NOT NULL
);
CREATE INDEX kbs_expires ON kbs(expires_at) WHERE expires_at IS NOT NULL;

-- One row per entry. Tags, links and sources are kept as JSON for one-read entry loads,
-- and tags/links are also normalised into their own tables for filtering and the graph.
CREATE TABLE entries (
    rowid        INTEGER PRIMARY KEY,
    kb           TEXT NOT NULL REFERENCES kbs(name) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    entry_type   TEXT NOT NULL,
    title        TEXT NOT NULL,
    summary      TEXT NOT NULL,
    body         TEXT NOT NULL,
    tags_text    TEXT NOT NULL,     -- tags joined by spaces, the FTS column
    tags         TEXT NOT NULL,     -- JSON array, in written order
    links        TEXT NOT NULL,     -- JSON array
    sources      TEXT NOT NULL,     -- JSON array
    metadata     TEXT NOT NULL,     -- JSON object
    date         TEXT,              -- YYYY-MM-DD sorts as text
    importance   INTEGER NOT NULL,
    status       TEXT,
    assignee     TEXT,
    lifecycle    TEXT NOT NULL,
    source_path  TEXT,
    created_at   INTEGER NOT NULL,  -- unix micros
    updated_at   INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    text_hash    TEXT NOT NULL,     -- hash of the embeddable text, drives the embed queue
    UNIQUE (kb, id)
);
CREATE INDEX entries_updated ON entries(updated_at);
CREATE INDEX entries_created ON entries(created_at);
CREATE INDEX entries_date ON entries(date) WHERE date IS NOT NULL;
CREATE INDEX entries_type ON entries(kb, entry_type);
CREATE INDEX entries_status ON entries(status) WHERE status IS NOT NULL;
CREATE INDEX entries_path ON entries(source_path) WHERE source_path IS NOT NULL;

CREATE TABLE entry_tags (
    entry    INTEGER NOT NULL REFERENCES entries(rowid) ON DELETE CASCADE,
    tag      TEXT NOT NULL,
    PRIMARY KEY (entry, tag)
) WITHOUT ROWID;
CREATE INDEX entry_tags_tag ON entry_tags(tag, entry);

CREATE TABLE links (
    source    INTEGER NOT NULL REFERENCES entries(rowid) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    target_kb TEXT NOT NULL,
    target_id TEXT NOT NULL,
    relation  TEXT NOT NULL,
    note      TEXT,
    PRIMARY KEY (source, position)
) WITHOUT ROWID;
CREATE INDEX links_target ON links(target_kb, target_id);

-- External-content FTS5 index over entries, written by the store in the same transaction
-- as the entries (see `FtsOp` in store.rs for why not by triggers). Tokenizer: porter
-- stemming over unicode61 with diacritics folded, so "Résumé", "resume" and "resumes" meet.
CREATE VIRTUAL TABLE entries_fts USING fts5(
    title, tags_text, summary, body,
    content = 'entries', content_rowid = 'rowid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- Narrow table: vectors are read in bulk into memory, never with the wide entry row.
CREATE TABLE vectors (
    entry  INTEGER PRIMARY KEY REFERENCES entries(rowid) ON DELETE CASCADE,
    vector BLOB NOT NULL            -- little-endian f32, as given (not normalised)
);

CREATE TABLE embed_queue (
    entry       INTEGER PRIMARY KEY REFERENCES entries(rowid) ON DELETE CASCADE,
    text_hash   TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    state       TEXT NOT NULL DEFAULT 'pending',  -- pending | failed
    worker      TEXT,
    lease_until INTEGER
);
CREATE INDEX embed_queue_order ON embed_queue(state, enqueued_at, entry);

CREATE TABLE settings (
    kb    TEXT NOT NULL,               -- '' = global
    key   TEXT NOT NULL,
    value TEXT NOT NULL,               -- JSON
    PRIMARY KEY (kb, key)
) WITHOUT ROWID;

CREATE TABLE stars (
    entry    INTEGER PRIMARY KEY REFERENCES entries(rowid) ON DELETE CASCADE,
    position INTEGER NOT NULL
);

CREATE TABLE collections (
    rowid       INTEGER PRIMARY KEY,
    kb          TEXT NOT NULL REFERENCES kbs(name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    UNIQUE (kb, name)
);
CREATE TABLE collection_members (
    collection INTEGER NOT NULL REFERENCES collections(rowid) ON DELETE CASCADE,
    entry      INTEGER NOT NULL REFERENCES entries(rowid) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    PRIMARY KEY (collection, entry)
) WITHOUT ROWID;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"#,
    // v2: passages. An entry's embeddable text may be split into several passages, each
    // with its own vector (and the passage text, shown as the snippet of a semantic hit).
    // Existing vectors become passage 0 with no text ("the whole entry").
    r#"
CREATE TABLE passage_vectors (
    entry   INTEGER NOT NULL REFERENCES entries(rowid) ON DELETE CASCADE,
    passage INTEGER NOT NULL,
    text    TEXT,                   -- NULL: the vector stands for the whole entry
    vector  BLOB NOT NULL,          -- little-endian f32, as given (not normalised)
    PRIMARY KEY (entry, passage)
);
INSERT INTO passage_vectors (entry, passage, text, vector) SELECT entry, 0, NULL, vector FROM vectors;
DROP TABLE vectors;
ALTER TABLE passage_vectors RENAME TO vectors;
"#,
    // v3: per-entry expiry. Reads go through `live_entries`, which leaves out entries whose
    // `expires_at` has passed (SQLite's clock, the process's own), so an expired entry is
    // absent everywhere before `gc_expired` deletes it. SQLite flattens the view into each
    // query, so the indexes of `entries` serve it unchanged.
    r#"
ALTER TABLE entries ADD COLUMN expires_at INTEGER;   -- unix micros; NULL = never
CREATE INDEX entries_expires ON entries(expires_at) WHERE expires_at IS NOT NULL;
CREATE VIEW live_entries AS SELECT * FROM entries
    WHERE expires_at IS NULL OR expires_at > CAST(unixepoch('subsec') * 1000000 AS INTEGER);
"#,
    // v4: the default list order (newest first, then kb and id) in one index. With
    // `updated_at` alone the (kb, id) tiebreak needs a sort, and SQLite then scans and
    // sorts the whole table for a filtered page: 85 ms at 100k entries, against a walk
    // that stops after the page.
    r#"
DROP INDEX entries_updated;
CREATE INDEX entries_updated ON entries(updated_at DESC, kb, id);
"#,
    // v5: the index tokenises with the core's tokens (`search/analyze.rs`, the tokenizer
    // every connection registers), so CJK characters are tokens of their own as on
    // Postgres. Rebuilt from the entries: the old index's tokens cannot be reused.
    r#"
DROP TABLE entries_fts;
CREATE VIRTUAL TABLE entries_fts USING fts5(
    title, tags_text, summary, body,
    content = 'entries', content_rowid = 'rowid',
    tokenize = 'porter kb'
);
INSERT INTO entries_fts(entries_fts) VALUES ('rebuild');
"#,
    // v6: fenced leases. Every claim takes a new token from the `lease_seq` counter in
    // `meta` (never reused, unlike a max over the queue), and completing or failing an
    // item checks it, so a worker whose lease ran out cannot undo its successor's work.
    r#"
ALTER TABLE embed_queue ADD COLUMN lease INTEGER NOT NULL DEFAULT 0;
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database to [`SCHEMA_VERSION`]. Idempotent.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(map_sqlite)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(map_sqlite)?;
    let current: u32 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |r| r.get(0),
        )
        .map_err(map_sqlite)?;
    if current > SCHEMA_VERSION {
        return Err(storage_core::StorageError::invalid_input(format!(
            "the database has schema version {current}, newer than this build's {SCHEMA_VERSION}; \
             upgrade the software"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).map_err(map_sqlite)?;
        tx.execute(
            "INSERT INTO schema_version(version) VALUES (?1)",
            [i as u32 + 1],
        )
        .map_err(map_sqlite)?;
    }
    tx.commit().map_err(map_sqlite)?;
    Ok(SCHEMA_VERSION)
}
