//! Output: one JSON object with `--json`, readable text otherwise; highlights and colour
//! only on a terminal. Errors are one line on stderr (`-v` adds the causes).

use std::collections::HashMap;
use std::io::IsTerminal;

use kb_app::status::StatusReport;
use kb_app::sync::SyncReport;
use kb_app::AppError;
use search_hybrid::SearchResponse;
use serde::Serialize;
use storage_core::{Backlink, Entry, EntryKey, KnowledgeBase, HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN};

pub(crate) struct Out {
    pub json: bool,
    pub quiet: bool,
    color: bool,
}

impl Out {
    pub(crate) fn new(json: bool, quiet: bool) -> Self {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self { json, quiet, color }
    }

    fn print_json<T: Serialize>(&self, v: &T) {
        match serde_json::to_string_pretty(v) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: could not encode the result as JSON: {e}"),
        }
    }

    /// Prints `v` as JSON, or `text()` unless quiet.
    pub(crate) fn value<T: Serialize>(&self, v: &T, text: impl FnOnce() -> String) {
        if self.json {
            self.print_json(v);
        } else if !self.quiet {
            println!("{}", text());
        }
    }

    /// A side remark on stderr (never part of the JSON).
    pub(crate) fn note(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    pub(crate) fn warn(&self, msg: &str) {
        eprintln!("warning: {msg}");
    }

    pub(crate) fn error(&self, e: &AppError, causes: bool) {
        eprintln!("error: {e}");
        if let Some(h) = e.hint() {
            eprintln!("hint: {h}");
        }
        if causes {
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
        }
    }

    fn bold(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    fn dim(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[2m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    /// A snippet with its highlights in bold yellow on a terminal, `**…**`-free plain text
    /// otherwise.
    fn snippet(&self, marked: &str) -> String {
        let (open, close) = if self.color {
            ("\x1b[1;33m", "\x1b[0m")
        } else {
            ("", "")
        };
        marked
            .replace(HIGHLIGHT_OPEN, open)
            .replace(HIGHLIGHT_CLOSE, close)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// At most ~40 words of a snippet (a semantic hit's snippet is its whole passage).
    fn short(text: String) -> String {
        let words: Vec<&str> = text.split(' ').collect();
        if words.len() <= 40 {
            text
        } else {
            format!("{}…", words[..40].join(" "))
        }
    }

    pub(crate) fn sync_report(&self, r: &SyncReport) {
        if self.json {
            self.print_json(r);
            return;
        }
        for f in &r.failed {
            match f.line {
                Some(l) => eprintln!("failed: {}:{l}: {}", f.path, f.reason),
                None => eprintln!("failed: {}: {}", f.path, f.reason),
            }
        }
        for s in &r.skipped {
            eprintln!("skipped: {}: {}", s.path, s.reason);
        }
        if self.quiet {
            return;
        }
        let verb = if r.dry_run { "would sync" } else { "synced" };
        println!(
            "{verb} {} files into {}: {} added, {} updated, {} renamed, {} deleted, {} unchanged, {} failed ({} ms)",
            r.files,
            r.kb,
            r.added.len(),
            r.updated.len(),
            r.renamed.len(),
            r.deleted.len(),
            r.unchanged,
            r.failed.len(),
            r.elapsed_ms
        );
        if !r.unresolved.is_empty() {
            println!(
                "{} links point at notes that do not exist (kb status lists them)",
                r.unresolved.len()
            );
        }
    }

    pub(crate) fn search(&self, query: &str, res: &SearchResponse, explain: bool) {
        if self.json {
            let hits: Vec<_> = res
                .hits
                .iter()
                .map(|h| kb_app::embedding::hit_json(h, explain))
                .collect();
            self.print_json(&serde_json::json!({
                "query": query,
                "mode": res.mode,
                "legs": res.legs,
                "degraded": res.degraded,
                "hits": hits,
            }));
            return;
        }
        if let Some(d) = &res.degraded {
            eprintln!("note: {d}");
        }
        if res.hits.is_empty() {
            if !self.quiet {
                println!("no results for {query:?}");
            }
            return;
        }
        for h in &res.hits {
            let e = &h.entry;
            let place = match &e.source_path {
                Some(p) => format!("{}  {p}", e.kb),
                None => format!("{}/{}", e.kb, e.id),
            };
            println!(
                "{:>2}. {:.2}  {}  {}",
                h.rank,
                h.score,
                self.bold(&e.title),
                self.dim(&format!("[{}] {place}", e.id))
            );
            let marked = h
                .snippet
                .marked(&HIGHLIGHT_OPEN.to_string(), &HIGHLIGHT_CLOSE.to_string());
            let text = Self::short(self.snippet(&marked));
            if !text.is_empty() {
                println!("    {text}");
            }
            if explain {
                let x = &h.explanation;
                let leg = |l: &Option<search_hybrid::fusion::LegScore>| match l {
                    Some(l) => format!("rank {} raw {:.4} norm {:.3}", l.rank, l.raw, l.normalized),
                    None => "—".into(),
                };
                println!(
                    "    {}",
                    self.dim(&format!(
                        "{}: keyword {} · semantic {}",
                        x.method,
                        leg(&x.keyword),
                        leg(&x.semantic)
                    ))
                );
            }
        }
    }

    pub(crate) fn entries(&self, entries: &[Entry], total: u64) {
        if self.json {
            self.print_json(&serde_json::json!({"total": total, "entries": entries}));
            return;
        }
        for e in entries {
            let status = e
                .status
                .as_deref()
                .map(|s| format!(" [{s}]"))
                .unwrap_or_default();
            println!(
                "{}  {}{}  {}",
                e.id,
                e.entry_type,
                status,
                self.bold(&e.title)
            );
        }
        if !self.quiet {
            eprintln!("{} of {total}", entries.len());
        }
    }

    pub(crate) fn backlinks(
        &self,
        kb: &str,
        id: &str,
        links: &[Backlink],
        titles: &HashMap<EntryKey, String>,
    ) {
        if self.json {
            let items: Vec<_> = links
                .iter()
                .map(|b| {
                    serde_json::json!({
                        "kb": b.source.kb, "id": b.source.id, "relation": b.relation,
                        "note": b.note, "title": titles.get(&b.source),
                    })
                })
                .collect();
            self.print_json(&serde_json::json!({"kb": kb, "id": id, "backlinks": items}));
            return;
        }
        if links.is_empty() && !self.quiet {
            println!("nothing links to {kb}/{id}");
        }
        for b in links {
            let title = titles
                .get(&b.source)
                .map(String::as_str)
                .unwrap_or("(missing)");
            println!(
                "{}  {}  {}",
                b.source.id,
                self.bold(title),
                self.dim(&b.relation)
            );
        }
    }

    pub(crate) fn timeline(&self, entries: &[Entry]) {
        if self.json {
            self.print_json(&serde_json::json!({"entries": entries}));
            return;
        }
        for e in entries {
            let d = e.date.map(|d| d.to_string()).unwrap_or_default();
            println!("{d}  {}  {}", e.id, self.bold(&e.title));
        }
    }

    pub(crate) fn kbs(&self, rows: &[(KnowledgeBase, u64)]) {
        if self.json {
            let items: Vec<_> = rows
                .iter()
                .map(|(k, n)| {
                    serde_json::json!({
                        "name": k.name, "description": k.description,
                        "entries": n, "expires_at": k.expires_at, "created_at": k.created_at,
                    })
                })
                .collect();
            self.print_json(&serde_json::json!({"knowledge_bases": items}));
            return;
        }
        for (k, n) in rows {
            let exp = k
                .expires_at
                .map(|t| format!("  expires {}", t.to_rfc3339()))
                .unwrap_or_default();
            println!("{}  {n} entries{exp}", self.bold(&k.name));
        }
    }

    pub(crate) fn status(&self, r: &StatusReport) {
        if self.json {
            self.print_json(r);
            return;
        }
        println!(
            "backend     {} at {} (from {})",
            r.backend, r.location, r.configured_by
        );
        println!("schema      version {}", r.schema_version);
        let versions: Vec<String> = r.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("versions    {}", versions.join(", "));
        match &r.embedding_space {
            Some(s) => println!(
                "embeddings  {} ({} dims); configured: {}",
                s.model, s.dimension, r.embedder
            ),
            None => println!("embeddings  none yet; configured: {}", r.embedder),
        }
        println!(
            "queue       {} pending, {} in progress, {} failed",
            r.queue.pending, r.queue.in_progress, r.queue.failed
        );
        println!(
            "pool        {} open of {}, {} idle, {} in use",
            r.pool.size, r.pool.max_size, r.pool.idle, r.pool.in_use
        );
        println!("entries     {}", r.entries);
        for k in &r.knowledge_bases {
            let total = k.with_vector + k.without_vector;
            let pct = (100 * k.with_vector).checked_div(total).unwrap_or(0);
            println!(
                "  {}  {} entries, {pct}% embedded{}{}",
                self.bold(&k.name),
                k.entries,
                k.synced_from
                    .as_ref()
                    .map(|r| format!(", synced from {r}"))
                    .unwrap_or_default(),
                k.expires_at
                    .map(|t| format!(", expires {}", t.to_rfc3339()))
                    .unwrap_or_default()
            );
            for u in &k.unresolved_links {
                println!("    unresolved link in {}: [[{}]]", u.from, u.target);
            }
        }
    }
}
