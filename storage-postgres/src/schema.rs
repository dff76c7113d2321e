//! Schema and migrations. Applied at open in one transaction holding a database-wide
//! advisory lock, so two servers starting at once never race on `CREATE …`.

use storage_core::{Result, StorageError};
use tokio_postgres::Client;

use crate::config::{validate_identifier, PORTER_CONFIG};
use crate::error::map_pg;
use crate::rows::get;

/// Key of the advisory lock serialising migrations and `CREATE EXTENSION` (arbitrary,
/// fixed: every process must use the same one).
const MIGRATION_LOCK: i64 = 0x6b62_6d69_6772; // "kbmigr"

/// Ordered migrations; index + 1 is the schema version after applying it.
/// `{cfg}` is the source text search configuration, `{dicts}` its dictionaries for words.
const MIGRATIONS: &[&str] = &[
    r#"
-- Full-text configuration: the configured one (e.g. english) with accents folded first,
-- matching SQLite's `remove_diacritics`.
CREATE TEXT SEARCH CONFIGURATION kb_search (COPY = {cfg});
ALTER TEXT SEARCH CONFIGURATION kb_search
    ALTER MAPPING FOR hword, hword_part, word WITH public.unaccent, {dicts};

-- Postgres' parser keeps `topic/ai`, e-mails and URLs as single tokens where SQLite's
-- unicode61 splits them; splitting on every non-alphanumeric run makes both agree.
CREATE FUNCTION kb_fts_text(t text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN regexp_replace(t, '[^[:alnum:]]+', ' ', 'g');

-- Weighted document vector: title A, tags and summary B, body C, built with the explicit
-- two-argument to_tsvector so queries with the same configuration use the GIN index.
-- Between fields a placeholder lexeme is appended and deleted again, leaving a position
-- gap: a phrase never matches across two fields (as in SQLite, where fields are columns).
CREATE FUNCTION kb_tsvector(title text, tags_text text, summary text, body text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ts_delete(
        setweight(to_tsvector('kb_search'::regconfig, kb_fts_text(title)), 'A') || 'kbfieldgap:1'::tsvector ||
        setweight(to_tsvector('kb_search'::regconfig, kb_fts_text(tags_text)), 'B') || 'kbfieldgap:1'::tsvector ||
        setweight(to_tsvector('kb_search'::regconfig, kb_fts_text(summary)), 'B') || 'kbfieldgap:1'::tsvector ||
        setweight(to_tsvector('kb_search'::regconfig, kb_fts_text(body)), 'C'),
        'kbfieldgap');

CREATE TABLE kbs (
    name        text COLLATE "C" PRIMARY KEY,
    description text NOT NULL,
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL
);
CREATE INDEX kbs_expires ON kbs (expires_at) WHERE expires_at IS NOT NULL;

-- Text columns that are sorted or range-scanned use the "C" collation: byte order, the
-- same as SQLite's, so both backends page identically.
CREATE TABLE entries (
    rowid        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kb           text COLLATE "C" NOT NULL REFERENCES kbs (name) ON DELETE CASCADE,
    id           text COLLATE "C" NOT NULL,
    entry_type   text COLLATE "C" NOT NULL,
    title        text COLLATE "C" NOT NULL,
    summary      text NOT NULL,
    body         text NOT NULL,
    tags_text    text NOT NULL,
    tags         jsonb NOT NULL,
    links        jsonb NOT NULL,
    sources      jsonb NOT NULL,
    metadata     jsonb NOT NULL,
    date         date,
    importance   integer NOT NULL,
    status       text COLLATE "C",
    assignee     text,
    lifecycle    text NOT NULL,
    source_path  text COLLATE "C",
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    content_hash text NOT NULL,
    text_hash    text NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (kb_tsvector(title, tags_text, summary, body)) STORED,
    UNIQUE (kb, id)
);
CREATE INDEX entries_tsv ON entries USING gin (tsv);
CREATE INDEX entries_updated ON entries (updated_at);
CREATE INDEX entries_created ON entries (created_at);
CREATE INDEX entries_date ON entries (date) WHERE date IS NOT NULL;
CREATE INDEX entries_type ON entries (kb, entry_type);
CREATE INDEX entries_status ON entries (status) WHERE status IS NOT NULL;
CREATE INDEX entries_path ON entries (source_path) WHERE source_path IS NOT NULL;

CREATE TABLE entry_tags (
    entry bigint NOT NULL REFERENCES entries (rowid) ON DELETE CASCADE,
    tag   text COLLATE "C" NOT NULL,
    PRIMARY KEY (entry, tag)
);
CREATE INDEX entry_tags_tag ON entry_tags (tag, entry);

CREATE TABLE links (
    source    bigint NOT NULL REFERENCES entries (rowid) ON DELETE CASCADE,
    position  integer NOT NULL,
    target_kb text COLLATE "C" NOT NULL,
    target_id text COLLATE "C" NOT NULL,
    relation  text NOT NULL,
    note      text,
    PRIMARY KEY (source, position)
);
CREATE INDEX links_target ON links (target_kb, target_id);

-- Narrow vectors table: an exact scan never drags the wide entry row (or its TOAST) in.
-- The column gets its dimension, and the HNSW index, when the embedding space is fixed.
CREATE TABLE vectors (
    entry     bigint PRIMARY KEY REFERENCES entries (rowid) ON DELETE CASCADE,
    embedding public.vector NOT NULL
);

CREATE TABLE embed_queue (
    entry       bigint PRIMARY KEY REFERENCES entries (rowid) ON DELETE CASCADE,
    text_hash   text NOT NULL,
    enqueued_at timestamptz NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    state       text NOT NULL DEFAULT 'pending',
    worker      text,
    lease_until timestamptz
);
CREATE INDEX embed_queue_order ON embed_queue (state, enqueued_at, entry);

CREATE TABLE settings (
    kb    text COLLATE "C" NOT NULL,
    key   text COLLATE "C" NOT NULL,
    value jsonb NOT NULL,
    PRIMARY KEY (kb, key)
);

CREATE TABLE stars (
    entry    bigint PRIMARY KEY REFERENCES entries (rowid) ON DELETE CASCADE,
    position bigint NOT NULL
);

CREATE TABLE collections (
    rowid       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kb          text COLLATE "C" NOT NULL REFERENCES kbs (name) ON DELETE CASCADE,
    name        text COLLATE "C" NOT NULL,
    description text NOT NULL,
    UNIQUE (kb, name)
);
CREATE TABLE collection_members (
    collection bigint NOT NULL REFERENCES collections (rowid) ON DELETE CASCADE,
    entry      bigint NOT NULL REFERENCES entries (rowid) ON DELETE CASCADE,
    position   integer NOT NULL,
    PRIMARY KEY (collection, entry)
);
CREATE INDEX collection_members_entry ON collection_members (entry);

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
"#,
    // v2: passages. An entry's embeddable text may be split into several passages, each with
    // its own vector (and the passage text, shown as the snippet of a semantic hit). Existing
    // vectors become passage 0 with no text ("the whole entry"). The HNSW index, if any, is
    // over `embedding` and survives.
    r#"
ALTER TABLE vectors ADD COLUMN passage integer NOT NULL DEFAULT 0;
ALTER TABLE vectors ADD COLUMN text text;
ALTER TABLE vectors ALTER COLUMN passage DROP DEFAULT;
ALTER TABLE vectors DROP CONSTRAINT vectors_pkey;
ALTER TABLE vectors ADD PRIMARY KEY (entry, passage);
"#,
    // v3: BM25. `ts_rank` is not BM25 and ranks far worse; BM25 needs per-term document
    // frequencies, per-entry term frequencies and lengths, which a tsvector cannot give at
    // query time without unnesting every candidate. So every entry's tsvector is also kept as
    // postings (term, entry, weighted tf, entry length), maintained by statement-level
    // triggers from the rows each statement changed (one set-based INSERT per write, every
    // write path covered, deletes cascade), and corpus totals live in 16 counter rows that
    // writers pick at random, so concurrent writers do not queue on one hot row.
    // See ARCHITECTURE.md (storage-postgres) for the costs.
    r#"
-- One row per term of the entry: tf = Σ over the term's positions of its field weight
-- (title (A) 2, tags and summary (B) 1.5, body (C) 1 — SQLite's bm25() column weights),
-- dl = the entry's token count, all fields (what FTS5 calls the row's size). One pass
-- over the tsvector: dl is a window sum over the same rows.
CREATE FUNCTION kb_postings(tsv tsvector) RETURNS TABLE (term text, tf real, dl integer)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT u.lexeme,
                 (cardinality(u.weights)
                  + 1.0 * cardinality(array_positions(u.weights, 'A'))
                  + 0.5 * cardinality(array_positions(u.weights, 'B')))::real,
                 (sum(cardinality(u.positions)) OVER ())::integer
          FROM unnest(tsv) u $$;

-- Tokens in the entry, all fields (what FTS5 calls the row's size).
CREATE FUNCTION kb_doc_len(tsv tsvector) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(sum(cardinality(u.positions)), 0)::integer FROM unnest(tsv) u $$;

-- One index only (the primary key, covering tf and dl so a vacuumed table is read by
-- index-only scans): the triggers delete an entry's postings by
-- (term, entry) from its old tsvector, so no foreign key or `entry` index is needed —
-- a second index cost about a third of the write time.
CREATE TABLE postings (
    term  text COLLATE "C" NOT NULL,
    entry bigint NOT NULL,
    tf    real NOT NULL,
    dl    integer NOT NULL,
    PRIMARY KEY (term, entry) INCLUDE (tf, dl)
);

CREATE TABLE bm25_stats (
    shard  smallint PRIMARY KEY,
    docs   bigint NOT NULL,
    tokens bigint NOT NULL
);
INSERT INTO bm25_stats (shard, docs, tokens) SELECT s, 0, 0 FROM generate_series(0, 15) s;

CREATE FUNCTION kb_bm25_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO postings (term, entry, tf, dl)
        SELECT p.term, n.rowid, p.tf, p.dl FROM new_rows n, kb_postings(n.tsv) p;
    UPDATE bm25_stats SET docs = docs + d.n, tokens = tokens + d.t
        FROM (SELECT count(*) AS n, coalesce(sum(kb_doc_len(tsv)), 0) AS t FROM new_rows) d
        WHERE shard = pg_backend_pid() % 16;
    RETURN NULL;
END $$;

CREATE FUNCTION kb_bm25_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only rows whose tsvector changed (claims and metadata updates leave it alone).
    DELETE FROM postings p
        USING old_rows o JOIN new_rows n ON n.rowid = o.rowid, unnest(o.tsv) u
        WHERE o.tsv IS DISTINCT FROM n.tsv AND p.entry = o.rowid AND p.term = u.lexeme;
    INSERT INTO postings (term, entry, tf, dl)
        SELECT p.term, n.rowid, p.tf, p.dl
        FROM old_rows o JOIN new_rows n ON n.rowid = o.rowid, kb_postings(n.tsv) p
        WHERE o.tsv IS DISTINCT FROM n.tsv;
    UPDATE bm25_stats SET tokens = tokens + d.t
        FROM (SELECT coalesce(sum(kb_doc_len(n.tsv) - kb_doc_len(o.tsv)), 0) AS t
              FROM old_rows o JOIN new_rows n ON n.rowid = o.rowid
              WHERE o.tsv IS DISTINCT FROM n.tsv) d
        WHERE shard = pg_backend_pid() % 16;
    RETURN NULL;
END $$;

CREATE FUNCTION kb_bm25_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM postings p USING old_rows o, unnest(o.tsv) u
        WHERE p.entry = o.rowid AND p.term = u.lexeme;
    UPDATE bm25_stats SET docs = docs - d.n, tokens = tokens - d.t
        FROM (SELECT count(*) AS n, coalesce(sum(kb_doc_len(tsv)), 0) AS t FROM old_rows) d
        WHERE shard = pg_backend_pid() % 16;
    RETURN NULL;
END $$;

CREATE TRIGGER entries_bm25_insert AFTER INSERT ON entries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kb_bm25_insert();
CREATE TRIGGER entries_bm25_update AFTER UPDATE ON entries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kb_bm25_update();
CREATE TRIGGER entries_bm25_delete AFTER DELETE ON entries
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION kb_bm25_delete();

INSERT INTO postings (term, entry, tf, dl)
    SELECT p.term, e.rowid, p.tf, p.dl FROM entries e, kb_postings(e.tsv) p;
UPDATE bm25_stats SET docs = (SELECT count(*) FROM entries),
                      tokens = (SELECT coalesce(sum(kb_doc_len(tsv)), 0) FROM entries)
    WHERE shard = 0;
"#,
    // v4: document frequencies kept per term. Counting a term's postings at query time
    // was half the cost of a two-word AND query at 100k entries (0.6 ms per frequent
    // term). Counts are sharded like `bm25_stats` (the writer's shard is
    // `pg_backend_pid() % 16`), so a term's df is the sum of at most 16 rows. Every
    // trigger locks its shard's `bm25_stats` row first and then upserts term rows in term
    // order, so writers of one shard queue on the first lock and never deadlock; writers
    // of different shards touch different rows. A shard's count may go below zero (an
    // entry counted in one shard, deleted from another); only the sum has a meaning.
    // Postings are inserted in key order: the B-tree is then walked once per statement
    // instead of at random (a batch of 1,000 entries into 100k: 1.55 s → 1.25 s).
    r#"
CREATE TABLE term_df (
    term  text COLLATE "C" NOT NULL,
    shard smallint NOT NULL,
    df    bigint NOT NULL,
    PRIMARY KEY (term, shard) INCLUDE (df)
) WITH (fillfactor = 70);

CREATE OR REPLACE FUNCTION kb_bm25_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bm25_stats SET docs = docs + d.n, tokens = tokens + d.t
        FROM (SELECT count(*) AS n, coalesce(sum(kb_doc_len(tsv)), 0) AS t FROM new_rows) d
        WHERE shard = pg_backend_pid() % 16;
    WITH ins AS (
        INSERT INTO postings (term, entry, tf, dl)
            SELECT p.term, n.rowid, p.tf, p.dl FROM new_rows n, kb_postings(n.tsv) p
            ORDER BY p.term, n.rowid
            RETURNING term)
    INSERT INTO term_df AS t (term, shard, df)
        SELECT term, pg_backend_pid() % 16, count(*) FROM ins GROUP BY term ORDER BY term
        ON CONFLICT (term, shard) DO UPDATE SET df = t.df + excluded.df;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION kb_bm25_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only rows whose tsvector changed count; when none did (claims, metadata), no
    -- counter row is locked, so such updates never queue behind writers of text.
    IF NOT EXISTS (SELECT 1 FROM old_rows o JOIN new_rows n ON n.rowid = o.rowid
                   WHERE o.tsv IS DISTINCT FROM n.tsv) THEN
        RETURN NULL;
    END IF;
    UPDATE bm25_stats SET tokens = tokens + d.t
        FROM (SELECT coalesce(sum(kb_doc_len(n.tsv) - kb_doc_len(o.tsv)), 0) AS t
              FROM old_rows o JOIN new_rows n ON n.rowid = o.rowid
              WHERE o.tsv IS DISTINCT FROM n.tsv) d
        WHERE shard = pg_backend_pid() % 16;
    WITH del AS (
        DELETE FROM postings p
            USING old_rows o JOIN new_rows n ON n.rowid = o.rowid, unnest(o.tsv) u
            WHERE o.tsv IS DISTINCT FROM n.tsv AND p.entry = o.rowid AND p.term = u.lexeme
            RETURNING p.term)
    INSERT INTO term_df AS t (term, shard, df)
        SELECT term, pg_backend_pid() % 16, -count(*) FROM del GROUP BY term ORDER BY term
        ON CONFLICT (term, shard) DO UPDATE SET df = t.df + excluded.df;
    WITH ins AS (
        INSERT INTO postings (term, entry, tf, dl)
            SELECT p.term, n.rowid, p.tf, p.dl
            FROM old_rows o JOIN new_rows n ON n.rowid = o.rowid, kb_postings(n.tsv) p
            WHERE o.tsv IS DISTINCT FROM n.tsv
            ORDER BY p.term, n.rowid
            RETURNING term)
    INSERT INTO term_df AS t (term, shard, df)
        SELECT term, pg_backend_pid() % 16, count(*) FROM ins GROUP BY term ORDER BY term
        ON CONFLICT (term, shard) DO UPDATE SET df = t.df + excluded.df;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION kb_bm25_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bm25_stats SET docs = docs - d.n, tokens = tokens - d.t
        FROM (SELECT count(*) AS n, coalesce(sum(kb_doc_len(tsv)), 0) AS t FROM old_rows) d
        WHERE shard = pg_backend_pid() % 16;
    WITH del AS (
        DELETE FROM postings p USING old_rows o, unnest(o.tsv) u
            WHERE p.entry = o.rowid AND p.term = u.lexeme
            RETURNING p.term)
    INSERT INTO term_df AS t (term, shard, df)
        SELECT term, pg_backend_pid() % 16, -count(*) FROM del GROUP BY term ORDER BY term
        ON CONFLICT (term, shard) DO UPDATE SET df = t.df + excluded.df;
    RETURN NULL;
END $$;

INSERT INTO term_df (term, shard, df) SELECT term, 0, count(*) FROM postings GROUP BY term;
"#,
    // v5: per-entry expiry. Reads go through `live_entries`, which leaves out entries whose
    // `expires_at` has passed (the server's clock), so an expired entry is absent everywhere
    // before `gc_expired` deletes it. The view is inlined by the planner: the indexes of
    // `entries` serve it unchanged.
    r#"
ALTER TABLE entries ADD COLUMN expires_at timestamptz;
CREATE INDEX entries_expires ON entries (expires_at) WHERE expires_at IS NOT NULL;
CREATE VIEW live_entries AS SELECT * FROM entries WHERE expires_at IS NULL OR expires_at > now();
"#,
    // v6: postings in blocks, analysed in the client. One B-tree insertion per (term,
    // entry) was 90 % of a bulk load's time (5.7 s of 10k entries); now a written batch
    // adds one `term_blocks` row per term holding the batch's entries of it (0.7 s).
    // Entries are analysed by the writer (search/analyze.rs), so the tsvector is a plain
    // column, and it has no GIN index any more: candidates come from the blocks, and the
    // tsvector only checks phrases and NOT on them.
    //
    // A block names entries by `doc`, a number given to each version of an entry's text:
    // an edit gives the row a new doc, so postings of the old text are recognised as
    // stale (no row has that doc) without rewriting the blocks that hold them. `n` is the
    // block's change to the term's document frequency: a block of new text counts its
    // docs, and a trigger writes a block of −1 per term (no docs) when a version leaves
    // (edit or delete), from the lexemes of its tsvector (or `terms`, kept only when the
    // tsvector could not hold them all) — so df = Σ n stays exact.
    // `optimize` merges a term's blocks into one, dropping stale docs and keeping Σ n.
    // Corpus totals keep their sharded counters, now 64 (pg_backend_pid() % 64).
    r#"
CREATE FUNCTION kb_lexize(w text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN coalesce({lexize}, '{}'::text[]);

CREATE SEQUENCE entry_docs;
CREATE SEQUENCE term_block_ids;

DROP TRIGGER entries_bm25_insert ON entries;
DROP TRIGGER entries_bm25_update ON entries;
DROP TRIGGER entries_bm25_delete ON entries;
DROP INDEX entries_tsv;
DROP VIEW live_entries;
ALTER TABLE entries ALTER COLUMN tsv DROP EXPRESSION;
ALTER TABLE entries ADD COLUMN doc bigint, ADD COLUMN terms text[], ADD COLUMN doc_len integer;
UPDATE entries SET doc = nextval('entry_docs'), doc_len = kb_doc_len(tsv);
ALTER TABLE entries ALTER COLUMN doc SET NOT NULL, ALTER COLUMN doc_len SET NOT NULL,
                    ALTER COLUMN tsv SET NOT NULL;
CREATE UNIQUE INDEX entries_doc ON entries (doc);
CREATE VIEW live_entries AS SELECT * FROM entries WHERE expires_at IS NULL OR expires_at > now();

CREATE TABLE term_blocks (
    term  text COLLATE "C" NOT NULL,
    block bigint NOT NULL DEFAULT nextval('term_block_ids'),
    n     integer NOT NULL,
    docs  bigint[] NOT NULL,
    tfs   real[] NOT NULL,
    dls   integer[] NOT NULL,
    PRIMARY KEY (term, block) INCLUDE (n)
);
INSERT INTO term_blocks (term, n, docs, tfs, dls)
    SELECT p.term, count(*), array_agg(e.doc ORDER BY e.doc), array_agg(p.tf ORDER BY e.doc),
           array_agg(p.dl ORDER BY e.doc)
    FROM postings p JOIN entries e ON e.rowid = p.entry GROUP BY p.term;
DROP TABLE postings;
DROP TABLE term_df;
DROP FUNCTION kb_bm25_insert();
DROP FUNCTION kb_bm25_update();
DROP FUNCTION kb_bm25_delete();
DROP FUNCTION kb_postings(tsvector);
DROP FUNCTION kb_doc_len(tsvector);
DROP FUNCTION kb_tsvector(text, text, text, text);
DROP FUNCTION kb_fts_text(text);
INSERT INTO bm25_stats (shard, docs, tokens) SELECT s, 0, 0 FROM generate_series(16, 63) s;

-- Postings of new text are written by the writer with the row (entries.rs); these keep
-- the corpus totals and take a leaving version's postings out of the frequencies.
CREATE FUNCTION kb_bm25_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bm25_stats SET docs = docs + d.n, tokens = tokens + d.t
        FROM (SELECT count(*) AS n, coalesce(sum(doc_len), 0) AS t FROM new_rows) d
        WHERE shard = pg_backend_pid() % 64;
    RETURN NULL;
END $$;

CREATE FUNCTION kb_bm25_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only rows whose text changed (claims and metadata keep their doc).
    IF NOT EXISTS (SELECT 1 FROM old_rows o JOIN new_rows n ON n.rowid = o.rowid
                   WHERE o.doc IS DISTINCT FROM n.doc) THEN
        RETURN NULL;
    END IF;
    UPDATE bm25_stats SET tokens = tokens + d.t
        FROM (SELECT coalesce(sum(n.doc_len - o.doc_len), 0) AS t
              FROM old_rows o JOIN new_rows n ON n.rowid = o.rowid
              WHERE o.doc IS DISTINCT FROM n.doc) d
        WHERE shard = pg_backend_pid() % 64;
    INSERT INTO term_blocks (term, n, docs, tfs, dls)
        SELECT t.term, -count(*), '{}', '{}', '{}'
        FROM old_rows o JOIN new_rows n ON n.rowid = o.rowid,
             unnest(coalesce(o.terms, tsvector_to_array(o.tsv))) t(term)
        WHERE o.doc IS DISTINCT FROM n.doc GROUP BY t.term;
    RETURN NULL;
END $$;

CREATE FUNCTION kb_bm25_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bm25_stats SET docs = docs - d.n, tokens = tokens - d.t
        FROM (SELECT count(*) AS n, coalesce(sum(doc_len), 0) AS t FROM old_rows) d
        WHERE shard = pg_backend_pid() % 64;
    INSERT INTO term_blocks (term, n, docs, tfs, dls)
        SELECT t.term, -count(*), '{}', '{}', '{}'
        FROM old_rows o, unnest(coalesce(o.terms, tsvector_to_array(o.tsv))) t(term)
        GROUP BY t.term;
    RETURN NULL;
END $$;

CREATE TRIGGER entries_bm25_insert AFTER INSERT ON entries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kb_bm25_insert();
CREATE TRIGGER entries_bm25_update AFTER UPDATE ON entries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kb_bm25_update();
CREATE TRIGGER entries_bm25_delete AFTER DELETE ON entries
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION kb_bm25_delete();
"#,
    // v7: CJK characters are tokens of their own (`storage_core::text::is_unspaced`), so
    // a word inside a sentence is found. Nothing changes in the tables; the entries whose
    // text holds such characters are re-analysed in the client after this step
    // (`REANALYSED_AT`, `entries/reanalyse.rs`).
    "SELECT 1",
    // v8: fenced leases on the database's clock. Every claim takes a new token from
    // `embed_leases`; completing or failing an item checks it, so a worker whose lease ran
    // out cannot undo its successor's work. Lease times are the server's `now()`, so
    // workers on hosts whose clocks disagree cannot steal each other's leases.
    r#"
ALTER TABLE embed_queue ADD COLUMN lease bigint NOT NULL DEFAULT 0;
CREATE SEQUENCE embed_leases;
"#,
];

/// The version whose upgrade re-analyses the entries with CJK text.
const REANALYSED_AT: u32 = 7;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the schema to [`SCHEMA_VERSION`]. Idempotent; serialised across processes.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: &str,
    ts_config: &str,
    endpoint: &str,
) -> Result<()> {
    migrate_to(client, schema, ts_config, endpoint, SCHEMA_VERSION).await
}

/// Creates `schema` at an older version, with the `porter` configuration: for tests of
/// the upgrade from it (this build reads and writes only [`SCHEMA_VERSION`]).
#[doc(hidden)]
pub async fn create_schema_at_version(
    client: &mut Client,
    schema: &str,
    version: u32,
) -> Result<()> {
    migrate_to(
        client,
        schema,
        PORTER_CONFIG,
        "test",
        version.min(SCHEMA_VERSION),
    )
    .await
}

async fn migrate_to(
    client: &mut Client,
    schema: &str,
    ts_config: &str,
    endpoint: &str,
    target: u32,
) -> Result<()> {
    validate_identifier("schema", schema)?;
    validate_identifier("text search configuration", ts_config)?;
    let pg = |e| map_pg(e, endpoint);
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    let available: Vec<String> = tx
        .query(
            "SELECT name FROM pg_available_extensions WHERE name IN ('vector', 'unaccent')",
            &[],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|r| get(r, 0))
        .collect::<Result<_>>()?;
    if !available.iter().any(|n| n == "vector") {
        return Err(StorageError::Unavailable {
            message: format!(
                "the pgvector extension is not installed on the Postgres server at {endpoint}"
            ),
            hint: "install the postgresql-NN-pgvector package (or build pgvector from source, \
                   see `cargo xtask test-postgres`), or run the pgvector/pgvector Docker image"
                .into(),
            source: None,
        });
    }
    if !available.iter().any(|n| n == "unaccent") {
        return Err(StorageError::Unavailable {
            message: format!(
                "the unaccent extension is not available on the Postgres server at {endpoint}"
            ),
            hint: "install the postgresql-contrib package for your server version".into(),
            source: None,
        });
    }
    tx.batch_execute(&format!(
        "CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;
         CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;
         CREATE SCHEMA IF NOT EXISTS \"{schema}\";
         CREATE TABLE IF NOT EXISTS \"{schema}\".schema_version (version integer NOT NULL);"
    ))
    .await
    .map_err(pg)?;
    let current: i32 = tx
        .query_one(
            &format!("SELECT COALESCE(MAX(version), 0) FROM \"{schema}\".schema_version"),
            &[],
        )
        .await
        .map_err(pg)
        .and_then(|r| get(&r, 0))?;
    let current = current as u32;
    if current > SCHEMA_VERSION {
        return Err(StorageError::invalid_input(format!(
            "the Postgres schema {schema:?} has version {current}, newer than this build's \
             {SCHEMA_VERSION}; upgrade the software"
        )));
    }
    let porter = ts_config == PORTER_CONFIG;
    if current < target {
        let exists = if porter {
            Some(())
        } else {
            tx.query_opt(
                "SELECT 1 FROM pg_ts_config WHERE cfgname = $1",
                &[&ts_config],
            )
            .await
            .map_err(pg)?
            .map(|_| ())
        };
        if exists.is_none() {
            return Err(StorageError::invalid_input(format!(
                "text search configuration {ts_config:?} does not exist on the server \
                 (see SELECT cfgname FROM pg_ts_config), and is not {PORTER_CONFIG:?}"
            )));
        }
        let dicts: Vec<String> = if porter {
            vec!["kb_porter".into()]
        } else {
            tx.query(
                "SELECT d.dictname::text FROM pg_ts_config_map m \
                 JOIN pg_ts_config c ON c.oid = m.mapcfg \
                 JOIN pg_ts_dict d ON d.oid = m.mapdict \
                 WHERE c.cfgname = $1 \
                 AND m.maptokentype = (SELECT tokid FROM ts_token_type('default') WHERE alias = 'word') \
                 ORDER BY m.mapseqno",
                &[&ts_config],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| get(r, 0))
            .collect::<Result<_>>()?
        };
        for d in &dicts {
            validate_identifier("text search dictionary", d)?;
        }
        // A word's lexemes are those of the first dictionary that knows it (NULL: it
        // does not), as a configuration's mapping applies them.
        let mut dicts = dicts;
        if dicts.is_empty() {
            dicts.push("simple".to_owned());
        }
        let lexize = dicts
            .iter()
            .map(|d| format!("ts_lexize('{d}'::regdictionary, w)"))
            .collect::<Vec<_>>()
            .join(", ");
        let dicts = dicts.join(", ");
        // Migrations run with the schema first on search_path, so names are unqualified,
        // and without the store's statement timeout: backfills (postings, document
        // frequencies) of a large existing store take longer than any query may.
        tx.batch_execute(&format!(
            "SET LOCAL search_path = \"{schema}\", public; SET LOCAL statement_timeout = 0"
        ))
        .await
        .map_err(pg)?;
        if porter && current == 0 {
            tx.batch_execute(
                "CREATE TEXT SEARCH DICTIONARY kb_porter (TEMPLATE = snowball, Language = porter)",
            )
            .await
            .map_err(pg)?;
        }
        let base = if porter { "simple" } else { ts_config };
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .take(target as usize)
            .skip(current as usize)
        {
            let sql = sql
                .replace("{cfg}", base)
                .replace("{dicts}", &dicts)
                .replace("{lexize}", &lexize);
            tx.batch_execute(&sql).await.map_err(pg)?;
            if porter && i == 0 {
                // `simple` maps ASCII words to itself: stem them too, as FTS5's porter does.
                tx.batch_execute(
                    "ALTER TEXT SEARCH CONFIGURATION kb_search ALTER MAPPING FOR \
                     asciiword, asciihword, hword_asciipart, numword, numhword, hword_numpart \
                     WITH kb_porter",
                )
                .await
                .map_err(pg)?;
            }
            if i as u32 + 1 == REANALYSED_AT && current > 0 {
                crate::entries::reanalyse::reanalyse_unspaced(&tx, porter)
                    .await
                    .map_err(pg)?;
            }
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )
            .await
            .map_err(pg)?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('text_search_config', $1) \
             ON CONFLICT (key) DO NOTHING",
            &[&ts_config],
        )
        .await
        .map_err(pg)?;
    }
    let stored: Option<String> = tx
        .query_opt(
            &format!("SELECT value FROM \"{schema}\".meta WHERE key = 'text_search_config'"),
            &[],
        )
        .await
        .map_err(pg)?
        .map(|r| get(&r, 0))
        .transpose()?;
    if let Some(stored) = stored {
        if stored != ts_config {
            return Err(StorageError::invalid_input(format!(
                "the schema {schema:?} was built with text search configuration {stored:?}, \
                 not {ts_config:?}; configure {stored:?}, or migrate into a new schema"
            )));
        }
    }
    tx.commit().await.map_err(pg)?;
    Ok(())
}
