//! `kb sync`: a folder of markdown notes → one KB, incrementally.
//!
//! The store remembers, as the KB setting [`STATE_KEY`], what each file was when it was
//! last synced (mtime, size, the hash of the entry it became, its id, aliases and how its
//! links resolved). A file whose mtime and size are unchanged is not read; a file that
//! was read but makes the same entry is not written; a note whose links would now resolve
//! differently (another note appeared, or changed its id) is re-read. The state is derived
//! data like the rest: without it, every file is read and compared by content hash.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use storage_core::{
    EntryKey, Filter, LifecycleFilter, NewEntry, NewKnowledgeBase, SettingScope, StorageError,
    Store, MAX_BODY_BYTES,
};

use crate::error::{AppError, Result};
use crate::links::{NoteName, Resolver};
use crate::markdown::{parse_note, LinkStyle, ParsedNote};
use crate::Progress;

/// The KB setting holding the sync state.
pub const STATE_KEY: &str = "kb.sync";
const STATE_VERSION: u32 = 1;
/// Files modified this recently may change again within the same mtime tick; they are
/// re-read (not rewritten) next time, as git does with "racily clean" files.
const RACY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Plan only: read and compare, write nothing.
    pub dry_run: bool,
    /// Sync even though the KB was synced from another folder.
    pub force: bool,
    /// Entries per transaction.
    pub batch_size: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            force: false,
            batch_size: 500,
        }
    }
}

/// A file that could not be synced, and why.
#[derive(Debug, Clone, Serialize)]
pub struct FileFailure {
    pub path: String,
    pub line: Option<usize>,
    pub reason: String,
}

/// A link whose target no note answers to (kept as a link to a missing entry).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnresolvedLink {
    /// The linking note's path.
    pub from: String,
    /// The target as written.
    pub target: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Renamed {
    pub id: String,
    pub from: String,
    pub to: String,
}

/// What a sync did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub kb: String,
    pub root: String,
    pub dry_run: bool,
    /// Ids of new entries.
    pub added: Vec<String>,
    /// Ids of rewritten entries.
    pub updated: Vec<String>,
    pub renamed: Vec<Renamed>,
    /// Ids of removed entries.
    pub deleted: Vec<String>,
    pub unchanged: u64,
    pub failed: Vec<FileFailure>,
    /// Symlinks leaving the folder, loops and unreadable directories, skipped.
    pub skipped: Vec<FileFailure>,
    pub unresolved: Vec<UnresolvedLink>,
    pub files: u64,
    pub elapsed_ms: u64,
}

impl SyncReport {
    /// Whether anything was written (or would be).
    pub fn changed(&self) -> bool {
        !(self.added.is_empty()
            && self.updated.is_empty()
            && self.renamed.is_empty()
            && self.deleted.is_empty())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SyncState {
    pub version: u32,
    pub root: String,
    pub files: BTreeMap<String, FileState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FileState {
    pub id: String,
    /// Nanoseconds since the epoch; -1 = read the file next time.
    pub mtime: i64,
    pub size: u64,
    pub hash: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkRef>,
}

/// How one link of a note resolved when it was last read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LinkRef {
    pub t: String,
    pub s: LinkStyle,
    pub r: Option<String>,
}

/// The hash a file's entry is compared by: the content hash plus the workflow fields
/// (a task's status written in its file is content of the file).
fn file_hash(e: &NewEntry) -> String {
    let mut h = blake3::Hasher::new();
    h.update(e.content_hash().as_bytes());
    for part in [&e.status, &e.assignee] {
        h.update(&[part.is_some() as u8]);
        if let Some(p) = part {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
    }
    h.finalize().to_hex().to_string()
}

pub(crate) async fn load_state(store: &dyn Store, kb: &str) -> Result<Option<SyncState>> {
    let Some(v) = store
        .get_setting(&SettingScope::Kb(kb.to_owned()), STATE_KEY)
        .await?
    else {
        return Ok(None);
    };
    // A state this version cannot read is rebuilt from the store (derived data).
    Ok(serde_json::from_value::<SyncState>(v)
        .ok()
        .filter(|s| s.version == STATE_VERSION))
}

/// Every entry of the KB that came from a file, as a state that forces a re-read.
async fn state_from_store(store: &dyn Store, kb: &str) -> Result<SyncState> {
    let mut files = BTreeMap::new();
    let page = 1_000;
    let mut offset = 0;
    loop {
        let filter = Filter::new()
            .kb(kb)
            .lifecycle(LifecycleFilter::Any)
            .limit(page)
            .offset(offset);
        let entries = store.list_entries(&filter).await?;
        for e in &entries {
            if let Some(p) = &e.source_path {
                files.insert(
                    p.clone(),
                    FileState {
                        id: e.id.clone(),
                        mtime: -1,
                        size: 0,
                        hash: file_hash(&e.to_new()),
                        aliases: Vec::new(),
                        links: Vec::new(),
                    },
                );
            }
        }
        if entries.len() < page {
            break;
        }
        offset += page;
    }
    Ok(SyncState {
        version: STATE_VERSION,
        root: String::new(),
        files,
    })
}

struct FileInfo {
    path: String,
    abs: PathBuf,
    mtime: i64,
    size: u64,
}

fn is_markdown(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("md") || e.eq_ignore_ascii_case("markdown"))
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(-1)
}

/// Lists the folder's markdown files: `.gitignore`, `.ignore` and `.kbignore` respected,
/// hidden files and folders skipped, symlinks followed only inside the folder, loops never.
fn walk(root: &Path) -> (Vec<FileInfo>, Vec<FileFailure>) {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let root_owned = root.to_path_buf();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(true)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .add_custom_ignore_filename(".kbignore")
        .follow_links(true)
        .filter_entry(move |e| {
            !e.path_is_symlink()
                || std::fs::canonicalize(e.path()).is_ok_and(|p| p.starts_with(&root_owned))
        })
        .build();
    let rel = |p: &Path| {
        p.strip_prefix(root)
            .unwrap_or(p)
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    };
    for item in walker {
        match item {
            Ok(e) => {
                if !e.file_type().is_some_and(|t| t.is_file()) || !is_markdown(e.path()) {
                    continue;
                }
                let Ok(meta) = e.metadata() else {
                    skipped.push(FileFailure {
                        path: rel(e.path()),
                        line: None,
                        reason: "cannot read its metadata".into(),
                    });
                    continue;
                };
                files.push(FileInfo {
                    path: rel(e.path()),
                    abs: e.path().to_path_buf(),
                    mtime: mtime_ns(&meta),
                    size: meta.len(),
                });
            }
            Err(err) => {
                let path = match &err {
                    ignore::Error::WithPath { path, .. } => rel(path),
                    ignore::Error::Loop { child, .. } => rel(child),
                    _ => String::new(),
                };
                let reason = if matches!(err, ignore::Error::Loop { .. })
                    || err.to_string().contains("loop")
                {
                    "a symlink loop, not followed".to_owned()
                } else {
                    "could not be read".to_owned()
                };
                skipped.push(FileFailure {
                    path,
                    line: None,
                    reason,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    (files, skipped)
}

fn read_and_parse(kb: &str, f: &FileInfo) -> std::result::Result<ParsedNote, FileFailure> {
    let fail = |line, reason: String| FileFailure {
        path: f.path.clone(),
        line,
        reason,
    };
    if f.size > MAX_BODY_BYTES as u64 {
        return Err(fail(
            None,
            format!(
                "the file is {} bytes; at most {MAX_BODY_BYTES} bytes are accepted",
                f.size
            ),
        ));
    }
    let bytes = std::fs::read(&f.abs).map_err(|e| fail(None, format!("cannot read it: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
        fail(Some(line), "the file is not valid UTF-8".into())
    })?;
    parse_note(kb, &f.path, &text).map_err(|e| fail(e.line, e.message))
}

/// Reads and parses files on every core (the walk and parsing are CPU and I/O bound).
fn parse_all(kb: &str, files: &[&FileInfo]) -> Vec<std::result::Result<ParsedNote, FileFailure>> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|f| read_and_parse(kb, f))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Creates the KB when missing (persistent).
pub async fn ensure_kb(store: &dyn Store, kb: &str) -> Result<()> {
    if store.get_kb(kb).await?.is_none() {
        match store.create_kb(&NewKnowledgeBase::persistent(kb)).await {
            Ok(_) | Err(StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Syncs `root` into `kb`. Files that fail are reported and skipped; the rest is written
/// in batches of `batch_size`, one transaction each.
pub async fn sync_folder(
    store: &dyn Store,
    kb: &str,
    root: &Path,
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<SyncReport> {
    let started = std::time::Instant::now();
    storage_core::validate_name("knowledge base name", kb)?;
    let root = std::fs::canonicalize(root).map_err(|e| AppError::io(root, e))?;
    if !root.is_dir() {
        return Err(AppError::usage(format!(
            "{} is not a folder",
            root.display()
        )));
    }
    let root_str = root.to_string_lossy().into_owned();
    let kb_exists = store.get_kb(kb).await?.is_some();
    let old = match kb_exists {
        true => load_state(store, kb).await?,
        false => None,
    };
    let old = match old {
        Some(s) => {
            if s.root != root_str && !opts.force {
                return Err(AppError::usage(format!(
                    "KB {kb} is synced from {}; sync {} into another KB (--kb NAME), or pass --force to make it the KB's folder",
                    s.root,
                    root.display()
                )));
            }
            s
        }
        None if kb_exists => state_from_store(store, kb).await?,
        None => SyncState::default(),
    };
    if !opts.dry_run {
        ensure_kb(store, kb).await?;
    }

    progress.start("scanning", None);
    let kb_owned = kb.to_owned();
    let root_for_walk = root.clone();
    let old = Arc::new(old);
    let old_for_scan = old.clone();
    let scan = tokio::task::spawn_blocking(move || {
        let (files, skipped) = walk(&root_for_walk);
        let to_read: Vec<&FileInfo> = files
            .iter()
            .filter(|f| {
                !old_for_scan
                    .files
                    .get(&f.path)
                    .is_some_and(|s| s.mtime >= 0 && s.mtime == f.mtime && s.size == f.size)
            })
            .collect();
        let parsed = parse_all(&kb_owned, &to_read);
        let read_paths: HashSet<String> = to_read.iter().map(|f| f.path.clone()).collect();
        (files, skipped, read_paths, parsed)
    })
    .await
    .map_err(|e| AppError::usage(format!("the folder scan stopped: {e}")))?;
    let (files, skipped, read_paths, parsed) = scan;
    let now_ns = mtime_ns_now();

    let mut report = SyncReport {
        kb: kb.to_owned(),
        root: root_str.clone(),
        dry_run: opts.dry_run,
        added: vec![],
        updated: vec![],
        renamed: vec![],
        deleted: vec![],
        unchanged: 0,
        failed: vec![],
        skipped,
        unresolved: vec![],
        files: files.len() as u64,
        elapsed_ms: 0,
    };

    // Ids: unchanged files keep theirs; read files claim theirs in path order.
    let mut notes: BTreeMap<String, ParsedNote> = BTreeMap::new();
    let mut owner: HashMap<String, String> = HashMap::new(); // id → path
    for f in &files {
        if !read_paths.contains(&f.path) {
            let s = &old.files[&f.path];
            owner.insert(s.id.clone(), f.path.clone());
        }
    }
    let mut failed_paths: HashSet<String> = HashSet::new();
    let mut parsed_sorted: Vec<_> = parsed.into_iter().collect();
    parsed_sorted.sort_by(|a, b| path_of(a).cmp(path_of(b)));
    for p in parsed_sorted {
        match p {
            Ok(note) => {
                let path = note.entry.source_path.clone().unwrap_or_default();
                if let Some(other) = owner.get(&note.entry.id) {
                    report.failed.push(FileFailure {
                        path: path.clone(),
                        line: None,
                        reason: format!("id {:?} is already the id of {other}", note.entry.id),
                    });
                    failed_paths.insert(path);
                    continue;
                }
                owner.insert(note.entry.id.clone(), path.clone());
                notes.insert(path, note);
            }
            Err(f) => {
                failed_paths.insert(f.path.clone());
                report.failed.push(f);
            }
        }
    }

    // Names every link can resolve to: unchanged notes from the state, read ones as read.
    let names: Vec<(String, String, Vec<String>)> = files
        .iter()
        .filter_map(|f| {
            if let Some(n) = notes.get(&f.path) {
                Some((f.path.clone(), n.entry.id.clone(), n.aliases.clone()))
            } else if !read_paths.contains(&f.path) {
                let s = &old.files[&f.path];
                Some((f.path.clone(), s.id.clone(), s.aliases.clone()))
            } else {
                None
            }
        })
        .collect();
    let resolver = Resolver::new(names.iter().map(|(p, i, a)| NoteName {
        path: p,
        id: i,
        aliases: a,
    }));

    // Unchanged notes whose links now resolve elsewhere are read again.
    let stale: Vec<&FileInfo> = files
        .iter()
        .filter(|f| !read_paths.contains(&f.path))
        .filter(|f| {
            old.files[&f.path]
                .links
                .iter()
                .any(|l| resolver.resolve(&f.path, &l.t, l.s) != l.r)
        })
        .collect();
    if !stale.is_empty() {
        for p in parse_all(kb, &stale) {
            match p {
                Ok(note) => {
                    let path = note.entry.source_path.clone().unwrap_or_default();
                    notes.insert(path, note);
                }
                Err(f) => {
                    failed_paths.insert(f.path.clone());
                    report.failed.push(f);
                }
            }
        }
    }

    // Entries to write, and the new state.
    let old_by_id: HashMap<&str, (&str, &FileState)> = old
        .files
        .iter()
        .map(|(p, s)| (s.id.as_str(), (p.as_str(), s)))
        .collect();
    let mut new_state = SyncState {
        version: STATE_VERSION,
        root: root_str.clone(),
        files: BTreeMap::new(),
    };
    let mut writes: Vec<NewEntry> = Vec::new();
    for f in &files {
        let path = f.path.as_str();
        let mtime = if now_ns - f.mtime < RACY.as_nanos() as i64 {
            -1
        } else {
            f.mtime
        };
        if let Some(note) = notes.get(path) {
            let mut entry = note.entry.clone();
            let mut refs = Vec::new();
            for raw in &note.links {
                let (link, found) = resolver.link(path, raw);
                if raw.kb.is_none() && raw.style != LinkStyle::Id {
                    refs.push(LinkRef {
                        t: raw.target.clone(),
                        s: raw.style,
                        r: found.then(|| link.target.clone()),
                    });
                    if !found {
                        report.unresolved.push(UnresolvedLink {
                            from: path.to_owned(),
                            target: raw.target.clone(),
                        });
                    }
                }
                entry.links.push(link);
            }
            let entry = match entry.normalized() {
                Ok(e) => e,
                Err(e) => {
                    report.failed.push(FileFailure {
                        path: path.to_owned(),
                        line: None,
                        reason: e.to_string(),
                    });
                    failed_paths.insert(path.to_owned());
                    keep_for_retry(&old, &mut new_state, path);
                    continue;
                }
            };
            let hash = file_hash(&entry);
            let previous = old.files.get(path).filter(|s| s.id == entry.id);
            match previous {
                Some(s) if s.hash == hash => report.unchanged += 1,
                Some(_) => {
                    report.updated.push(entry.id.clone());
                    writes.push(entry.clone());
                }
                None => {
                    match old_by_id.get(entry.id.as_str()) {
                        Some((from, _)) if *from != path => report.renamed.push(Renamed {
                            id: entry.id.clone(),
                            from: (*from).to_owned(),
                            to: path.to_owned(),
                        }),
                        _ => report.added.push(entry.id.clone()),
                    }
                    writes.push(entry.clone());
                }
            }
            new_state.files.insert(
                path.to_owned(),
                FileState {
                    id: entry.id.clone(),
                    mtime,
                    size: f.size,
                    hash,
                    aliases: note.aliases.clone(),
                    links: refs,
                },
            );
        } else if failed_paths.contains(path) {
            keep_for_retry(&old, &mut new_state, path);
        } else {
            report.unchanged += 1;
            let s = &old.files[path];
            for l in s.links.iter().filter(|l| l.r.is_none()) {
                report.unresolved.push(UnresolvedLink {
                    from: path.to_owned(),
                    target: l.t.clone(),
                });
            }
            new_state
                .files
                .insert(path.to_owned(), FileState { mtime, ..s.clone() });
        }
    }

    // Entries whose file is gone (or whose id moved away) and that no file claims now.
    let claimed: HashSet<&str> = new_state.files.values().map(|s| s.id.as_str()).collect();
    let mut deletes: Vec<String> = old
        .files
        .values()
        .map(|s| s.id.clone())
        .filter(|id| !claimed.contains(id.as_str()))
        .collect();
    deletes.sort();
    deletes.dedup();
    report.deleted = deletes.clone();
    report.unresolved.sort();

    if !opts.dry_run {
        let total = (writes.len() + deletes.len()) as u64;
        progress.start("writing", Some(total));
        for batch in writes.chunks(opts.batch_size.max(1)) {
            store.upsert_entries(batch).await?;
            progress.advance(batch.len() as u64);
        }
        for id in &deletes {
            store.delete_entry(&EntryKey::new(kb, id)).await?;
            progress.advance(1);
        }
        let value = serde_json::to_value(&new_state)
            .map_err(|e| AppError::usage(format!("the sync state could not be encoded: {e}")))?;
        store
            .set_setting(&SettingScope::Kb(kb.to_owned()), STATE_KEY, &value)
            .await?;
        if writes.len() > 1_000 {
            store.optimize().await?;
        }
    }
    progress.finish();
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// A file that failed keeps its entry and its last state, marked to be read next time.
fn keep_for_retry(old: &SyncState, new: &mut SyncState, path: &str) {
    if let Some(s) = old.files.get(path) {
        new.files.insert(
            path.to_owned(),
            FileState {
                mtime: -1,
                ..s.clone()
            },
        );
    }
}

fn path_of(r: &std::result::Result<ParsedNote, FileFailure>) -> &str {
    match r {
        Ok(n) => n.entry.source_path.as_deref().unwrap_or(""),
        Err(f) => &f.path,
    }
}

fn mtime_ns_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// The unresolved links recorded by the last sync of `kb` (for `kb status`).
pub async fn unresolved_links(store: &dyn Store, kb: &str) -> Result<Vec<UnresolvedLink>> {
    let Some(state) = load_state(store, kb).await? else {
        return Ok(Vec::new());
    };
    let mut out: Vec<UnresolvedLink> = state
        .files
        .iter()
        .flat_map(|(p, s)| {
            s.links
                .iter()
                .filter(|l| l.r.is_none())
                .map(move |l| UnresolvedLink {
                    from: p.clone(),
                    target: l.t.clone(),
                })
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The folder a KB was last synced from, if any.
pub async fn synced_root(store: &dyn Store, kb: &str) -> Result<Option<String>> {
    Ok(load_state(store, kb)
        .await?
        .map(|s| s.root)
        .filter(|r| !r.is_empty()))
}
