//! `kb migrate`: copies one store into another, either backend, either direction, through
//! the protocol only — so any pair of backends works, and what is copied is exactly what
//! the protocol can read and write.
//!
//! Idempotent: entries already equal in the target (content hash, status, assignee) and
//! passages already equal are not written again. Timestamps (`created_at`, `updated_at`)
//! are the target's own: the protocol does not let a caller set them.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use storage_core::{
    EntryKey, EntryPassages, Filter, LifecycleFilter, NewKnowledgeBase, PassageVector,
    SettingScope, StorageError, Store, StoredPassage,
};

use crate::error::Result;
use crate::open::OpenStore;
use crate::Progress;

#[derive(Debug, Clone, Default, Serialize)]
pub struct MigrateReport {
    pub kbs_created: u64,
    pub entries_copied: u64,
    pub entries_unchanged: u64,
    pub passages_copied: u64,
    pub settings_copied: u64,
    pub stars: u64,
    pub collections: u64,
    pub queue_items_given_up: u64,
    pub elapsed_ms: u64,
    pub entries_per_sec: f64,
}

impl MigrateReport {
    pub fn summary(&self) -> String {
        format!(
            "copied {} entries ({} already there), {} passages, {} settings, {} stars, {} collections into {} new KBs in {:.1} s ({:.0} entries/s)",
            self.entries_copied,
            self.entries_unchanged,
            self.passages_copied,
            self.settings_copied,
            self.stars,
            self.collections,
            self.kbs_created,
            self.elapsed_ms as f64 / 1000.0,
            self.entries_per_sec
        )
    }
}

const PAGE: usize = 1_000;

/// Every entry of a KB (archived ones too), page by page in key order.
async fn all_entries(store: &dyn Store, kb: &str) -> Result<Vec<storage_core::Entry>> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let f = Filter::new()
            .kb(kb)
            .lifecycle(LifecycleFilter::Any)
            .sort(
                storage_core::SortField::Created,
                storage_core::SortOrder::Asc,
            )
            .limit(PAGE)
            .offset(offset);
        let page = store.list_entries(&f).await?;
        let n = page.len();
        out.extend(page);
        if n < PAGE {
            break;
        }
        offset += PAGE;
    }
    Ok(out)
}

fn same_passages(a: &[StoredPassage], b: &[StoredPassage]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.text == y.text
                && x.vector.len() == y.vector.len()
                && x.vector
                    .iter()
                    .zip(&y.vector)
                    .all(|(p, q)| p.to_bits() == q.to_bits())
        })
}

/// Copies `source` into `target`. Refuses to start when the target's embedding space is
/// another model's (vectors of two models are never mixed).
pub async fn migrate(
    source: &OpenStore,
    target: &OpenStore,
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<MigrateReport> {
    let started = Instant::now();
    let (src, dst) = (source.store(), target.store());
    let space = src.embedding_space().await?;
    if let Some(space) = &space {
        dst.ensure_embedding_space(space).await?;
    }
    let mut r = MigrateReport::default();
    for (k, v) in src.list_settings(&SettingScope::Global).await? {
        if dst.get_setting(&SettingScope::Global, &k).await?.as_ref() != Some(&v) {
            dst.set_setting(&SettingScope::Global, &k, &v).await?;
            r.settings_copied += 1;
        }
    }
    let kbs = src.list_kbs().await?;
    let total = src
        .count_entries(&Filter::new().lifecycle(LifecycleFilter::Any))
        .await?;
    progress.start("copying", Some(total));
    // A first large load into a near-empty target builds the vector index once at the end;
    // a re-run that copies little keeps the index it has.
    let already = dst
        .count_entries(&Filter::new().lifecycle(LifecycleFilter::Any))
        .await?;
    let bulk = total > 5_000 && space.is_some() && already < total / 2;
    let rebuild = if bulk {
        target.begin_bulk_load().await?
    } else {
        false
    };
    let mut vectored: HashSet<EntryKey> = HashSet::new();
    for kb in &kbs {
        if dst.get_kb(&kb.name).await?.is_none() {
            let new = NewKnowledgeBase {
                name: kb.name.clone(),
                description: kb.description.clone(),
                expires_at: kb.expires_at,
            };
            match dst.create_kb(&new).await {
                Ok(_) => r.kbs_created += 1,
                Err(StorageError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let scope = SettingScope::Kb(kb.name.clone());
        for (k, v) in src.list_settings(&scope).await? {
            if dst.get_setting(&scope, &k).await?.as_ref() != Some(&v) {
                dst.set_setting(&scope, &k, &v).await?;
                r.settings_copied += 1;
            }
        }
        let existing: HashMap<String, (String, Option<String>, Option<String>)> =
            all_entries(dst.as_ref(), &kb.name)
                .await?
                .into_iter()
                .map(|e| (e.id, (e.content_hash, e.status, e.assignee)))
                .collect();
        let entries = all_entries(src.as_ref(), &kb.name).await?;
        let mut changed = Vec::with_capacity(entries.len());
        for e in &entries {
            let same = existing.get(&e.id).is_some_and(|(h, s, a)| {
                *h == e.content_hash && *s == e.status && *a == e.assignee
            });
            if same {
                r.entries_unchanged += 1;
                progress.advance(1);
            } else {
                changed.push(e.to_new());
            }
        }
        // Keys are unique within a KB, so batches may be written in any order.
        let to: &dyn Store = dst.as_ref();
        let writes = changed
            .chunks(batch_size.max(1))
            .map(|batch| async move { to.upsert_entries(batch).await.map(|_| batch.len()) });
        let mut writes =
            futures_util::stream::iter(writes).buffer_unordered(target.batches_in_flight());
        while let Some(written) = writes.next().await {
            let n = written? as u64;
            r.entries_copied += n;
            progress.advance(n);
        }
        if space.is_some() {
            let mut items = Vec::new();
            for e in &entries {
                let key = e.key();
                let from = src.get_passages(&key).await?;
                if from.is_empty() {
                    continue;
                }
                vectored.insert(key.clone());
                // An entry the target did not have has no passages there: no need to ask.
                if existing.contains_key(&e.id)
                    && same_passages(&from, &dst.get_passages(&key).await?)
                {
                    continue;
                }
                r.passages_copied += from.len() as u64;
                items.push(EntryPassages {
                    key,
                    passages: from
                        .into_iter()
                        .map(|p| PassageVector {
                            text: p.text,
                            vector: p.vector,
                        })
                        .collect(),
                });
                if items.len() >= 100 {
                    dst.put_passages(&items).await?;
                    items.clear();
                }
            }
            if !items.is_empty() {
                dst.put_passages(&items).await?;
            }
        }
        let starred = src.starred(Some(&kb.name)).await?;
        for key in &starred {
            dst.star(key).await?;
        }
        r.stars += starred.len() as u64;
        for c in src.list_collections(&kb.name).await? {
            match dst
                .create_collection(&kb.name, &c.name, &c.description)
                .await
            {
                Ok(_) | Err(StorageError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let want = src.collection_entries(&kb.name, &c.name).await?;
            if dst.collection_entries(&kb.name, &c.name).await? != want {
                for id in &want {
                    dst.add_to_collection(&kb.name, &c.name, id, None).await?;
                }
            }
            r.collections += 1;
        }
    }
    r.queue_items_given_up = settle_queue(src.as_ref(), dst.as_ref(), &vectored).await?;
    target.finish_bulk_load(rebuild).await?;
    progress.finish();
    r.elapsed_ms = started.elapsed().as_millis() as u64;
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    r.entries_per_sec = (r.entries_copied + r.entries_unchanged) as f64 / secs;
    Ok(r)
}

/// Upserts queue every written entry for embedding; entries whose vectors were copied are
/// taken off the target's queue again, and the source's given-up items are given up in
/// the target with their error. Claims use a short lease, so items left alone are
/// claimable by a worker right after.
async fn settle_queue(
    src: &dyn Store,
    dst: &dyn Store,
    vectored: &HashSet<EntryKey>,
) -> Result<u64> {
    let failed: HashMap<EntryKey, String> = src
        .failed_embeddings()
        .await?
        .into_iter()
        .map(|f| (f.key, f.last_error))
        .collect();
    let mut seen: HashSet<EntryKey> = HashSet::new();
    let mut given_up = 0;
    loop {
        let items = dst
            .claim_embedding_batch("kb-migrate", 500, Duration::from_secs(2))
            .await?;
        let fresh: Vec<_> = items
            .into_iter()
            .filter(|i| seen.insert(i.key.clone()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        let done: Vec<_> = fresh
            .iter()
            .filter(|i| vectored.contains(&i.key))
            .cloned()
            .collect();
        if !done.is_empty() {
            dst.complete_embedding(&done).await?;
        }
        for item in fresh.iter().filter(|i| !vectored.contains(&i.key)) {
            if let Some(err) = failed.get(&item.key) {
                dst.fail_embedding(item, err, 1).await?;
                given_up += 1;
            }
        }
    }
    Ok(given_up)
}

/// One compared table.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub source_count: u64,
    pub target_count: u64,
    pub source_checksum: String,
    pub target_checksum: String,
    pub equal: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub equal: bool,
    pub tables: Vec<TableCheck>,
    /// The first differences found, as readable lines.
    pub differences: Vec<String>,
}

impl VerifyReport {
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for t in &self.tables {
            s.push_str(&format!(
                "{:<12} {:>8} {:>8}  {}\n",
                t.table,
                t.source_count,
                t.target_count,
                if t.equal { "equal" } else { "DIFFERENT" }
            ));
        }
        for d in &self.differences {
            s.push_str(&format!("  {d}\n"));
        }
        s.push_str(if self.equal {
            "verified: both stores hold the same data"
        } else {
            "verification found differences"
        });
        s
    }
}

/// Rows of one table, each as a canonical line, sorted.
#[derive(Default)]
struct Table(Vec<String>);

impl Table {
    fn checksum(&self) -> String {
        let mut h = blake3::Hasher::new();
        for row in &self.0 {
            h.update(row.as_bytes());
            h.update(b"\n");
        }
        h.finalize().to_hex()[..16].to_owned()
    }
}

async fn snapshot(store: &dyn Store) -> Result<Vec<(&'static str, Table)>> {
    let mut kbs = Table::default();
    let mut entries = Table::default();
    let mut tags = Table::default();
    let mut links = Table::default();
    let mut settings = Table::default();
    let mut stars = Table::default();
    let mut collections = Table::default();
    let mut vectors = Table::default();
    for (k, v) in store.list_settings(&SettingScope::Global).await? {
        settings.0.push(format!("* {k} {v}"));
    }
    if let Some(space) = store.embedding_space().await? {
        settings.0.push(format!(
            "* embedding-space {} {}",
            space.model, space.dimension
        ));
    }
    for kb in store.list_kbs().await? {
        kbs.0.push(format!(
            "{} {:?} {:?}",
            kb.name, kb.description, kb.expires_at
        ));
        for (k, v) in store
            .list_settings(&SettingScope::Kb(kb.name.clone()))
            .await?
        {
            settings.0.push(format!("{} {k} {v}", kb.name));
        }
        for t in store.tags(Some(&kb.name)).await? {
            tags.0.push(format!("{} {} {}", kb.name, t.tag, t.count));
        }
        for e in all_entries(store, &kb.name).await? {
            entries.0.push(format!(
                "{} {} {} {:?} {:?}",
                e.kb, e.id, e.content_hash, e.status, e.assignee
            ));
            for l in &e.links {
                links.0.push(format!(
                    "{} {} → {:?} {} {} {:?}",
                    e.kb, e.id, l.target_kb, l.target, l.relation, l.note
                ));
            }
            for p in store.get_passages(&e.key()).await? {
                let mut h = blake3::Hasher::new();
                for x in &p.vector {
                    h.update(&x.to_bits().to_le_bytes());
                }
                vectors.0.push(format!(
                    "{} {} {} {:?} {}",
                    e.kb,
                    e.id,
                    p.index,
                    p.text,
                    h.finalize().to_hex()
                ));
            }
        }
        for (i, key) in store.starred(Some(&kb.name)).await?.iter().enumerate() {
            stars.0.push(format!("{} {i} {}", kb.name, key.id));
        }
        for c in store.list_collections(&kb.name).await? {
            let members = store.collection_entries(&kb.name, &c.name).await?;
            collections.0.push(format!(
                "{} {} {:?} {:?}",
                kb.name, c.name, c.description, members
            ));
        }
    }
    let q = store.queue_stats().await?;
    let queue = Table(vec![format!(
        "pending+in_progress {} failed {}",
        q.pending + q.in_progress,
        q.failed
    )]);
    let mut out = vec![
        ("kbs", kbs),
        ("entries", entries),
        ("tags", tags),
        ("links", links),
        ("settings", settings),
        ("stars", stars),
        ("collections", collections),
        ("vectors", vectors),
        ("queue", queue),
    ];
    for (_, t) in &mut out {
        t.0.sort();
    }
    Ok(out)
}

/// Compares both stores table by table: counts, checksums, and vectors bit for bit.
pub async fn verify(source: &OpenStore, target: &OpenStore) -> Result<VerifyReport> {
    let a = snapshot(source.store().as_ref()).await?;
    let b = snapshot(target.store().as_ref()).await?;
    let mut tables = Vec::new();
    let mut differences = Vec::new();
    for ((name, ta), (_, tb)) in a.iter().zip(&b) {
        let equal = ta.0 == tb.0;
        if !equal {
            let sa: HashSet<&String> = ta.0.iter().collect();
            let sb: HashSet<&String> = tb.0.iter().collect();
            for row in ta.0.iter().filter(|r| !sb.contains(r)).take(5) {
                differences.push(format!("{name}: only in source: {row}"));
            }
            for row in tb.0.iter().filter(|r| !sa.contains(r)).take(5) {
                differences.push(format!("{name}: only in target: {row}"));
            }
        }
        tables.push(TableCheck {
            table: (*name).to_owned(),
            source_count: ta.0.len() as u64,
            target_count: tb.0.len() as u64,
            source_checksum: ta.checksum(),
            target_checksum: tb.checksum(),
            equal,
        });
    }
    Ok(VerifyReport {
        equal: tables.iter().all(|t| t.equal),
        tables,
        differences,
    })
}
