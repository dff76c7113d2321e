//! The write path of entries: batch and single-entry upserts.
//!
//! A batch upsert is five steps in one transaction — stage (binary COPY into a temporary
//! table), merge (one `INSERT … ON CONFLICT` from it, in key order), children (tags and
//! links), enqueue (the embedding queue), postings (one block per term) — each its own
//! function below. One entry (the agent-memory case) takes a short path with the same
//! rules: [`upsert_one`] writes the row in one statement, then children, queue and
//! postings go pipelined together — four round trips instead of about twelve, and no
//! temporary table to create and empty.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;
use storage_core::*;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use crate::error::map_json;
use crate::pool::StatementCache;
use crate::search::analyze::{analyse, words, Analysed, Lexicon, Weight};
use crate::store::{now, PgStore};

pub(super) async fn upsert_entries(store: &PgStore, entries: &[NewEntry]) -> Result<Vec<Entry>> {
    check_batch(entries)?;
    let entries: Vec<NewEntry> = entries
        .iter()
        .map(NewEntry::normalized)
        .collect::<Result<_>>()?;
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut staged = Staged::batch(&entries)?;
    let ts = now();
    let pg = store.pg();
    // Never closed, so it always gives a permit.
    let _writing = store.inner.writers.acquire().await;
    let mut conn = store.conn().await?;
    let started = std::time::Instant::now();
    let c = conn.statements();
    // One row (the agent-memory case: a note at a time) takes the short path: no
    // staging table, one statement for the row, the rest pipelined after it.
    let single = staged.len() == 1;
    analyse_batch(&store.inner.lexicon, &**conn, &c, &mut staged, !single)
        .await
        .map_err(&pg)?;
    let lz4 = store.inner.lz4.load(std::sync::atomic::Ordering::Relaxed);
    let tx = conn.transaction().await.map_err(&pg)?;
    let written = async {
        if single {
            let Some(merged) = upsert_one(&tx, &c, &mut staged[0], ts, lz4).await? else {
                return Ok(Err(entries[0].kb.as_str()));
            };
            let s = &staged[..];
            futures_util::try_join!(
                write_children(&tx, &c, s, &merged),
                enqueue(&tx, &c, s, &merged, ts),
                write_postings_one(&tx, &c, &s[0], &merged),
            )?;
            tx.commit().await?;
            return Ok(Ok(merged));
        }
        let Some(kb) = missing_kb(&tx, &c, &entries).await? else {
            let analysed = started.elapsed();
            stage(&tx, &c, &staged, lz4).await?;
            let staged_at = started.elapsed();
            let merged = merge(&tx, &c, ts).await?;
            let merged_at = started.elapsed();
            write_children(&tx, &c, &staged, &merged).await?;
            enqueue(&tx, &c, &staged, &merged, ts).await?;
            let children_at = started.elapsed();
            write_postings(&tx, &c, &staged, &merged).await?;
            let postings_at = started.elapsed();
            tx.commit().await?;
            // Where a batch's time goes (cumulative), for profiling the write path.
            tracing::debug!(
                rows = staged.len(),
                ?analysed,
                ?staged_at,
                ?merged_at,
                ?children_at,
                ?postings_at,
                total = ?started.elapsed(),
                "upsert batch"
            );
            return Ok(Ok(merged));
        };
        Ok(Err(kb))
    }
    .await;
    let merged = match written {
        Ok(Ok(merged)) => merged,
        Ok(Err(kb)) => return Err(StorageError::kb_not_found(kb)),
        Err(e) => {
            // The error may come from a schema changed under a cached statement.
            c.clear();
            return Err(pg(e));
        }
    };

    // Hashes were computed once per written row; an earlier duplicate of a key (not
    // written) still reports its own content.
    let mut hashes: HashMap<usize, String> = staged
        .into_iter()
        .map(|s| (s.ord, s.content_hash))
        .collect();
    Ok(entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let (_, created, _) = merged.written[&(e.kb.clone(), e.id.clone())];
            let hash = hashes.remove(&i).unwrap_or_else(|| e.content_hash());
            e.clone().into_stored(created, ts, hash)
        })
        .collect())
}

/// One row of a batch upsert, with what is computed once per row.
struct Staged<'a> {
    /// Position in the caller's batch.
    ord: usize,
    entry: &'a NewEntry,
    content_hash: String,
    text_hash: String,
    tags_text: String,
    tags: Value,
    links: Value,
    sources: Value,
    /// The index data of its text, and the doc number of this version of it.
    analysed: Option<Analysed>,
    doc: i64,
}

impl<'a> Staged<'a> {
    /// One row per key, the last one winning (ON CONFLICT cannot touch a row twice), in
    /// input order.
    fn batch(entries: &'a [NewEntry]) -> Result<Vec<Staged<'a>>> {
        let mut last: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            last.insert((&e.kb, &e.id), i);
        }
        let mut unique: Vec<usize> = last.values().copied().collect();
        unique.sort_unstable();
        unique
            .into_iter()
            .map(|ord| {
                let e = &entries[ord];
                Ok(Staged {
                    ord,
                    entry: e,
                    content_hash: e.content_hash(),
                    text_hash: e.text_hash(),
                    tags_text: e.tags.join(" "),
                    tags: serde_json::to_value(&e.tags).map_err(map_json)?,
                    links: serde_json::to_value(&e.links).map_err(map_json)?,
                    sources: serde_json::to_value(&e.sources).map_err(map_json)?,
                    analysed: None,
                    doc: 0,
                })
            })
            .collect()
    }
}

/// What the merge step did: the replaced rows' previous text hashes (by `ord`), every
/// written key's row id, `created_at` and doc, and the rows that a concurrent transaction
/// created after the old state was read (their previous text and children are unknown).
struct Merged {
    old: HashMap<i32, (i64, String)>,
    written: HashMap<(String, String), (i64, DateTime<Utc>, i64)>,
    raced: HashSet<i64>,
}

impl Merged {
    /// Rows whose previous tags and links must go: the replaced ones and the raced ones.
    fn replaced(&self) -> Vec<i64> {
        let old = self.old.values().map(|(rowid, _)| *rowid);
        old.chain(self.raced.iter().copied()).collect()
    }

    /// Whether the row's text differs from what it replaced (unknown counts as changed).
    fn text_changed(&self, s: &Staged<'_>, rowid: i64) -> bool {
        self.raced.contains(&rowid)
            || self
                .old
                .get(&(s.ord as i32))
                .is_none_or(|(_, h)| *h != s.text_hash)
    }
}

type PgResult<T> = std::result::Result<T, tokio_postgres::Error>;

/// The first KB of the batch that does not exist, if any.
async fn missing_kb<'a>(
    tx: &Transaction<'_>,
    c: &StatementCache,
    entries: &'a [NewEntry],
) -> PgResult<Option<&'a str>> {
    let kbs: Vec<&str> = entries
        .iter()
        .map(|e| e.kb.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let found: HashSet<String> = tx
        .query(
            &c.get(tx, "SELECT name FROM kbs WHERE name = ANY($1)")
                .await?,
            &[&kbs],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<PgResult<_>>()?;
    Ok(entries
        .iter()
        .map(|e| e.kb.as_str())
        .find(|kb| !found.contains(*kb)))
}

/// Step 0 (before the transaction): the text of every row is analysed for the index,
/// with one lookup for the stems of words not seen before, and every row gets the doc
/// number its text would have (see migration 6 in schema.rs).
async fn analyse_batch<C: tokio_postgres::GenericClient + Sync>(
    lexicon: &Lexicon,
    client: &C,
    c: &StatementCache,
    staged: &mut [Staged<'_>],
    with_docs: bool,
) -> PgResult<()> {
    fn fields<'s>(s: &'s Staged<'_>) -> [&'s str; 4] {
        let e = s.entry;
        [&e.title, &s.tags_text, &e.summary, &e.body].map(String::as_str)
    }
    let words = words(staged.iter().flat_map(fields));
    let n = staged.len() as i32;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&n];
    // Issued together: pipelined on the one connection.
    let docs = async {
        if !with_docs {
            return Ok(Vec::new());
        }
        let sql = "SELECT nextval('entry_docs') FROM generate_series(1, $1::int)";
        client.query(&c.get(client, sql).await?, &params).await
    };
    let (stems, docs) = futures_util::try_join!(lexicon.stems(client, words), docs)?;
    for (s, d) in staged.iter_mut().zip(&docs) {
        s.doc = d.try_get(0)?;
    }
    let analyse_all = |part: &mut [Staged<'_>]| {
        for s in part {
            let [title, tags, summary, body] = fields(s);
            let fields = [
                (title, Weight::A),
                (tags, Weight::B),
                (summary, Weight::B),
                (body, Weight::C),
            ];
            s.analysed = Some(analyse(&fields, &stems));
        }
    };
    // A large batch is analysed on two threads (a thousand entries take ~70 ms on one),
    // the one running this task and one more: it holds this executor thread either way.
    if staged.len() >= PARALLEL_ANALYSIS {
        let (a, b) = staged.split_at_mut(staged.len() / 2);
        std::thread::scope(|scope| {
            scope.spawn(|| analyse_all(b));
            analyse_all(a);
        });
    } else {
        analyse_all(staged);
    }
    Ok(())
}

/// Rows from which a batch is analysed on two threads.
const PARALLEL_ANALYSIS: usize = 200;

/// Step 1: binary COPY of the batch into a session-local staging table (emptied at
/// commit). The compression method set here holds for the whole transaction.
async fn stage(
    tx: &Transaction<'_>,
    c: &StatementCache,
    staged: &[Staged<'_>],
    lz4: bool,
) -> PgResult<()> {
    // lz4 where the server has it: pglz compression of bodies, tsvectors and postings
    // was a fifth of the server's time in a bulk load (lz4: a batch 15 % faster).
    let lz4 = if lz4 {
        "SET LOCAL default_toast_compression = lz4; "
    } else {
        ""
    };
    tx.batch_execute(&format!(
        "{lz4}CREATE TEMP TABLE IF NOT EXISTS kb_staging (ord int, kb text, id text, entry_type text, \
         title text, summary text, body text, tags_text text, tags jsonb, links jsonb, sources jsonb, \
         metadata jsonb, date date, importance int, status text, assignee text, lifecycle text, \
         source_path text, content_hash text, text_hash text, expires_at timestamptz, doc bigint, \
         tsv tsvector, terms text[], doc_len int) ON COMMIT DELETE ROWS"
    ))
    .await?;
    let sink = tx
        .copy_in(&c.get(tx,
            "COPY kb_staging (ord, kb, id, entry_type, title, summary, body, tags_text, tags, links, \
             sources, metadata, date, importance, status, assignee, lifecycle, source_path, \
             content_hash, text_hash, expires_at, doc, tsv, terms, doc_len) FROM STDIN (FORMAT binary)",
        ).await?)
        .await?;
    const T: Type = Type::TEXT;
    const J: Type = Type::JSONB;
    let types = [
        Type::INT4,
        T,
        T,
        T,
        T,
        T,
        T,
        T,
        J,
        J,
        J,
        J,
        Type::DATE,
        Type::INT4,
        T,
        T,
        T,
        T,
        T,
        T,
        Type::TIMESTAMPTZ,
        Type::INT8,
        Type::TS_VECTOR,
        Type::TEXT_ARRAY,
        Type::INT4,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures_util::pin_mut!(writer);
    for s in staged {
        let e = s.entry;
        let ord = s.ord as i32;
        let a = s.analysed.as_ref().expect("analysed before staging");
        let metadata = Value::Object(e.metadata.clone());
        writer
            .as_mut()
            .write(&[
                &ord,
                &e.kb,
                &e.id,
                &e.entry_type,
                &e.title,
                &e.summary,
                &e.body,
                &s.tags_text,
                &s.tags,
                &s.links,
                &s.sources,
                &metadata,
                &e.date,
                &e.importance,
                &e.status,
                &e.assignee,
                &e.lifecycle.as_str(),
                &e.source_path,
                &s.content_hash,
                &s.text_hash,
                &e.expires_at,
                &s.doc,
                &a.tsv,
                &a.terms_beyond_tsvector(),
                &a.len,
            ])
            .await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Step 2: one `INSERT … ON CONFLICT` from the staging table, in key order: rows are
/// locked in the order they are inserted, so two batches holding the same keys in
/// opposite orders would otherwise deadlock.
///
/// The rows being replaced are read first and locked (in the same key order, before any
/// insert): a concurrent delete or update cannot change them between this read and the
/// write, so their text hashes (which decide re-embedding) and row ids (whose children
/// are replaced) are the ones written over. A key another transaction inserts after the
/// read is told apart by `xmax` (non-zero for a row this statement updated rather than
/// inserted) and treated as changed.
async fn merge(tx: &Transaction<'_>, c: &StatementCache, ts: DateTime<Utc>) -> PgResult<Merged> {
    let old: HashMap<i32, (i64, String)> = tx
        .query(
            &c.get(tx, "SELECT s.ord, e.rowid, e.text_hash FROM kb_staging s JOIN entries e ON e.kb = s.kb AND e.id = s.id \
             ORDER BY e.kb COLLATE \"C\", e.id COLLATE \"C\" FOR UPDATE OF e").await?,
            &[],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?))))
        .collect::<PgResult<_>>()?;
    let merge = format!(
        "INSERT INTO entries ({ENTRY_WRITE_COLUMNS}) \
         SELECT kb, id, entry_type, title, summary, body, tags_text, tags, links, sources, metadata, date, \
         importance, status, assignee, lifecycle, source_path, $1, $1, content_hash, text_hash, expires_at, \
         doc, tsv, terms, doc_len \
         FROM kb_staging ORDER BY kb COLLATE \"C\", id COLLATE \"C\" {} \
         RETURNING kb, id, rowid, created_at, xmax = 0, doc",
        on_conflict()
    );
    let rows = tx.query(&c.get(tx, &merge).await?, &[&ts]).await?;
    let replaced: HashSet<i64> = old.values().map(|(rowid, _)| *rowid).collect();
    let (mut written, mut raced) = (HashMap::with_capacity(rows.len()), HashSet::new());
    for r in &rows {
        let (rowid, inserted): (i64, bool) = (r.try_get(2)?, r.try_get(4)?);
        if !inserted && !replaced.contains(&rowid) {
            raced.insert(rowid);
        }
        written.insert(
            (r.try_get(0)?, r.try_get(1)?),
            (rowid, r.try_get(3)?, r.try_get(5)?),
        );
    }
    Ok(Merged {
        old,
        written,
        raced,
    })
}

/// The columns an upsert writes, in the order both paths give them.
const ENTRY_WRITE_COLUMNS: &str = "kb, id, entry_type, title, summary, body, tags_text, tags, \
    links, sources, metadata, date, importance, status, assignee, lifecycle, source_path, \
    created_at, updated_at, content_hash, text_hash, expires_at, doc, tsv, terms, doc_len";

/// How an upsert replaces an existing row. The index columns change with the text only:
/// an unchanged text keeps its doc number, and with it the postings already written. An
/// expired row being replaced is a new entry (a fresh `created_at`).
fn on_conflict() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let changed = "(entries.title, entries.tags_text, entries.summary, entries.body) \
            IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.tags_text, EXCLUDED.summary, EXCLUDED.body)";
        let index_columns = ["doc", "tsv", "terms", "doc_len"]
            .map(|c| format!("{c} = CASE WHEN {changed} THEN EXCLUDED.{c} ELSE entries.{c} END"))
            .join(", ");
        format!(
            "ON CONFLICT (kb, id) DO UPDATE SET {index_columns}, \
             entry_type = EXCLUDED.entry_type, title = EXCLUDED.title, \
             summary = EXCLUDED.summary, body = EXCLUDED.body, tags_text = EXCLUDED.tags_text, \
             tags = EXCLUDED.tags, links = EXCLUDED.links, sources = EXCLUDED.sources, \
             metadata = EXCLUDED.metadata, date = EXCLUDED.date, importance = EXCLUDED.importance, \
             status = EXCLUDED.status, assignee = EXCLUDED.assignee, lifecycle = EXCLUDED.lifecycle, \
             source_path = EXCLUDED.source_path, updated_at = EXCLUDED.updated_at, \
             content_hash = EXCLUDED.content_hash, text_hash = EXCLUDED.text_hash, \
             created_at = CASE WHEN entries.expires_at <= EXCLUDED.updated_at \
                 THEN EXCLUDED.created_at ELSE entries.created_at END, \
             expires_at = EXCLUDED.expires_at"
        )
    })
}

/// The short path for one row, in one statement: a doc number, the old row read and
/// locked, the KB checked and the row written. `None` when the KB does not exist. The
/// insert reads `old`, so the lock is taken before the row is written (a CTE nobody
/// reads first would be scanned after the update, and find the row locked by itself).
/// The same race rule as [`merge`]: a row another transaction inserted after this
/// statement's snapshot is updated (`xmax` non-zero) without an old state, so it counts
/// as raced (children replaced, text changed).
async fn upsert_one(
    tx: &Transaction<'_>,
    c: &StatementCache,
    s: &mut Staged<'_>,
    ts: DateTime<Utc>,
    lz4: bool,
) -> PgResult<Option<Merged>> {
    let sql = format!(
        "WITH d AS (SELECT nextval('entry_docs') AS doc), \
         old AS (SELECT rowid, text_hash FROM entries WHERE kb = $1::text AND id = $2::text FOR UPDATE), \
         ins AS (INSERT INTO entries ({ENTRY_WRITE_COLUMNS}) \
           SELECT $1, $2, $3::text, $4::text, $5::text, $6::text, $7::text, $8::jsonb, $9::jsonb, \
           $10::jsonb, $11::jsonb, $12::date, $13::int, $14::text, $15::text, $16::text, $17::text, \
           $18::timestamptz, $18, $19::text, $20::text, $21::timestamptz, d.doc, $22::tsvector, \
           $23::text[], $24::int FROM d LEFT JOIN old ON TRUE \
           WHERE EXISTS (SELECT 1 FROM kbs WHERE name = $1) {} \
           RETURNING rowid, created_at, xmax = 0 AS inserted, doc) \
         SELECT ins.rowid, ins.created_at, ins.inserted, ins.doc, d.doc, old.rowid, old.text_hash \
         FROM ins CROSS JOIN d LEFT JOIN old ON TRUE",
        on_conflict()
    );
    let e = s.entry;
    let a = s.analysed.as_ref().expect("analysed before writing");
    let metadata = Value::Object(e.metadata.clone());
    let lifecycle = e.lifecycle.as_str();
    let terms = a.terms_beyond_tsvector();
    let params: [&(dyn ToSql + Sync); 24] = [
        &e.kb,
        &e.id,
        &e.entry_type,
        &e.title,
        &e.summary,
        &e.body,
        &s.tags_text,
        &s.tags,
        &s.links,
        &s.sources,
        &metadata,
        &e.date,
        &e.importance,
        &e.status,
        &e.assignee,
        &lifecycle,
        &e.source_path,
        &ts,
        &s.content_hash,
        &s.text_hash,
        &e.expires_at,
        &a.tsv,
        &terms,
        &a.len,
    ];
    let statement = c.get(tx, &sql).await?;
    // As in `stage`: bodies, tsvectors and postings compress faster with lz4. Sent
    // together with the row's statement (pipelined), so it costs no round trip.
    let set_lz4 = async {
        if lz4 {
            tx.batch_execute("SET LOCAL default_toast_compression = lz4")
                .await?;
        }
        Ok(())
    };
    let (_, row) = futures_util::try_join!(set_lz4, tx.query_opt(&statement, &params))?;
    let Some(r) = row else {
        return Ok(None);
    };
    let (rowid, created, inserted, doc, fresh): (i64, DateTime<Utc>, bool, i64, i64) = (
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
    );
    // The doc number the row would get: `write_postings_one` writes postings when the
    // row has it (its text is new).
    s.doc = fresh;
    let old_rowid: Option<i64> = r.try_get(5)?;
    let mut old = HashMap::new();
    if let Some(old_rowid) = old_rowid {
        old.insert(s.ord as i32, (old_rowid, r.try_get::<_, String>(6)?));
    }
    let mut raced = HashSet::new();
    if !inserted && old_rowid.is_none() {
        raced.insert(rowid);
    }
    let mut written = HashMap::with_capacity(1);
    written.insert((e.kb.clone(), e.id.clone()), (rowid, created, doc));
    Ok(Some(Merged {
        old,
        written,
        raced,
    }))
}

/// [`write_postings`] for the one row of the short path: one block per term with one
/// document, by one `INSERT … unnest` (a COPY cannot share the connection's pipeline).
async fn write_postings_one(
    tx: &Transaction<'_>,
    c: &StatementCache,
    s: &Staged<'_>,
    merged: &Merged,
) -> PgResult<()> {
    let e = s.entry;
    if merged.written[&(e.kb.clone(), e.id.clone())].2 != s.doc {
        return Ok(());
    }
    let a = s.analysed.as_ref().expect("analysed before writing");
    if a.terms.is_empty() {
        return Ok(());
    }
    let sql = "INSERT INTO term_blocks (term, n, docs, tfs, dls) \
               SELECT t, 1, ARRAY[$2::bigint], ARRAY[tf], ARRAY[$3::int] \
               FROM unnest($1::text[], $4::real[]) AS u(t, tf)";
    let params: [&(dyn ToSql + Sync); 4] = [&a.terms, &s.doc, &a.len, &a.tfs];
    tx.execute(&c.get(tx, sql).await?, &params).await?;
    Ok(())
}

fn rowid_of(merged: &Merged, e: &NewEntry) -> i64 {
    merged.written[&(e.kb.clone(), e.id.clone())].0
}

/// Step 3: the replaced rows' tags and links are deleted, then every row's are inserted
/// with one `unnest` statement each.
async fn write_children(
    tx: &Transaction<'_>,
    c: &StatementCache,
    staged: &[Staged<'_>],
    merged: &Merged,
) -> PgResult<()> {
    let replaced = merged.replaced();
    if !replaced.is_empty() {
        let p: [&(dyn ToSql + Sync); 1] = [&replaced];
        let (del_tags, del_links) = futures_util::try_join!(
            c.get(tx, "DELETE FROM entry_tags WHERE entry = ANY($1)"),
            c.get(tx, "DELETE FROM links WHERE source = ANY($1)")
        )?;
        let del_tags = tx.execute(&del_tags, &p);
        let del_links = tx.execute(&del_links, &p);
        futures_util::try_join!(del_tags, del_links)?;
    }
    let (mut tag_rows, mut tag_vals) = (Vec::new(), Vec::new());
    let (mut l_src, mut l_pos, mut l_kb) = (Vec::new(), Vec::new(), Vec::new());
    let (mut l_id, mut l_rel, mut l_note) = (Vec::new(), Vec::new(), Vec::new());
    for s in staged {
        let e = s.entry;
        let rowid = rowid_of(merged, e);
        for t in &e.tags {
            tag_rows.push(rowid);
            tag_vals.push(t.clone());
        }
        for (pos, l) in e.links.iter().enumerate() {
            l_src.push(rowid);
            l_pos.push(pos as i32);
            l_kb.push(l.target_kb.clone().unwrap_or_else(|| e.kb.clone()));
            l_id.push(l.target.clone());
            l_rel.push(l.relation.clone());
            l_note.push(l.note.clone());
        }
    }
    let tag_params: [&(dyn ToSql + Sync); 2] = [&tag_rows, &tag_vals];
    let link_params: [&(dyn ToSql + Sync); 6] = [&l_src, &l_pos, &l_kb, &l_id, &l_rel, &l_note];
    // Issued together: tokio-postgres pipelines them over the one connection.
    let (ins_tags, ins_links) = futures_util::try_join!(
        c.get(
            tx,
            "INSERT INTO entry_tags (entry, tag) SELECT * FROM unnest($1::bigint[], $2::text[])"
        ),
        c.get(
            tx,
            "INSERT INTO links (source, position, target_kb, target_id, relation, note) \
             SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[])"
        )
    )?;
    let ins_tags = tx.execute(&ins_tags, &tag_params);
    let ins_links = tx.execute(&ins_links, &link_params);
    futures_util::try_join!(ins_tags, ins_links)?;
    Ok(())
}

/// Step 5: the postings of the rows whose text is new — those that got the doc number
/// staged for them (a row whose text did not change keeps its doc and its postings) —
/// as one block per term, by binary COPY. The rows are new (fresh block numbers), so
/// concurrent writers never wait on each other here.
async fn write_postings(
    tx: &Transaction<'_>,
    c: &StatementCache,
    staged: &[Staged<'_>],
    merged: &Merged,
) -> PgResult<()> {
    type Block = (Vec<i64>, Vec<f32>, Vec<i32>);
    let mut blocks: rustc_hash::FxHashMap<&str, Block> = Default::default();
    let mut fresh: Vec<&Staged<'_>> = staged
        .iter()
        .filter(|s| {
            let e = s.entry;
            merged.written[&(e.kb.clone(), e.id.clone())].2 == s.doc
        })
        .collect();
    fresh.sort_unstable_by_key(|s| s.doc);
    for s in fresh {
        let a = s.analysed.as_ref().expect("analysed before staging");
        for (term, tf) in a.terms.iter().zip(&a.tfs) {
            let (docs, tfs, dls) = blocks.entry(term).or_default();
            docs.push(s.doc);
            tfs.push(*tf);
            dls.push(a.len);
        }
    }
    if blocks.is_empty() {
        return Ok(());
    }
    tracing::debug!(blocks = blocks.len(), "postings");
    let mut blocks: Vec<(&str, Block)> = blocks.into_iter().collect();
    blocks.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let sink = tx
        .copy_in(
            &c.get(
                tx,
                "COPY term_blocks (term, n, docs, tfs, dls) FROM STDIN (FORMAT binary)",
            )
            .await?,
        )
        .await?;
    let types = [
        Type::TEXT,
        Type::INT4,
        Type::INT8_ARRAY,
        Type::FLOAT4_ARRAY,
        Type::INT4_ARRAY,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures_util::pin_mut!(writer);
    for (term, (docs, tfs, dls)) in &blocks {
        let term: &&str = term;
        let n = docs.len() as i32;
        writer.as_mut().write(&[term, &n, docs, tfs, dls]).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Step 4: rows whose text changed (or is new) are queued for embedding; rows without
/// text leave the queue.
async fn enqueue(
    tx: &Transaction<'_>,
    c: &StatementCache,
    staged: &[Staged<'_>],
    merged: &Merged,
    ts: DateTime<Utc>,
) -> PgResult<()> {
    let (mut q_rows, mut q_hash, mut unqueue) = (Vec::new(), Vec::new(), Vec::new());
    for s in staged {
        let e = s.entry;
        let rowid = rowid_of(merged, e);
        let has_text = !(e.title.is_empty() && e.summary.is_empty() && e.body.is_empty());
        if !has_text {
            unqueue.push(rowid);
        } else if merged.text_changed(s, rowid) {
            q_rows.push(rowid);
            q_hash.push(s.text_hash.clone());
        }
    }
    let queue_params: [&(dyn ToSql + Sync); 3] = [&q_rows, &q_hash, &ts];
    let unqueue_params: [&(dyn ToSql + Sync); 1] = [&unqueue];
    // A claimed item keeps its lease; its stale hash makes `complete` leave it queued.
    let (enqueue, dequeue) = futures_util::try_join!(
        c.get(
            tx,
            "INSERT INTO embed_queue (entry, text_hash, enqueued_at) \
             SELECT u.entry, u.hash, $3 FROM unnest($1::bigint[], $2::text[]) AS u(entry, hash) \
             ON CONFLICT (entry) DO UPDATE SET text_hash = EXCLUDED.text_hash, attempts = 0, \
             last_error = NULL, state = 'pending', enqueued_at = EXCLUDED.enqueued_at"
        ),
        c.get(tx, "DELETE FROM embed_queue WHERE entry = ANY($1)")
    )?;
    let enqueue = tx.execute(&enqueue, &queue_params);
    let dequeue = tx.execute(&dequeue, &unqueue_params);
    futures_util::try_join!(enqueue, dequeue)?;
    Ok(())
}
