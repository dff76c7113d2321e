//! `kb export DIR`: every entry of a KB back to a markdown file with frontmatter, so that
//! `kb sync` of the folder reproduces the same entries (ids, fields, links, hashes).

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use serde_yaml_ng::{Mapping, Value as Yaml};
use storage_core::{Entry, Filter, Lifecycle, LifecycleFilter, Store};

use crate::error::{AppError, Result};
use crate::markdown::{MDLINK, WIKILINK};
use crate::Progress;

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub kb: String,
    pub dir: String,
    pub written: u64,
    pub elapsed_ms: u64,
}

/// A relative path that stays inside the folder, from an entry's source path or id.
fn safe_path(entry: &Entry) -> PathBuf {
    let raw = entry
        .source_path
        .clone()
        .unwrap_or_else(|| format!("{}.md", entry.id));
    let mut out = PathBuf::new();
    for c in Path::new(&raw).components() {
        if let Component::Normal(s) = c {
            let s: String = s
                .to_string_lossy()
                .chars()
                .map(|c| {
                    if matches!(c, '<' | '>' | ':' | '"' | '\\' | '|' | '?' | '*') || c.is_control()
                    {
                        '_'
                    } else {
                        c
                    }
                })
                .collect();
            out.push(s);
        }
    }
    if out.as_os_str().is_empty() {
        out.push("untitled.md");
    }
    let is_md = out
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("md") || e.eq_ignore_ascii_case("markdown"));
    if !is_md {
        let mut name = out
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".md");
        out.set_file_name(name);
    }
    out
}

fn yaml(v: &Value) -> Yaml {
    serde_yaml_ng::to_value(v).unwrap_or(Yaml::Null)
}

fn key(k: &str) -> Yaml {
    Yaml::String(k.to_owned())
}

/// The file `entry` becomes, at `rel` inside the export folder.
pub fn render(entry: &Entry, rel: &str) -> String {
    let mut m = Mapping::new();
    let default_id = rel.rsplit_once('.').map(|(s, _)| s).unwrap_or(rel);
    if entry.id != default_id {
        m.insert(key("id"), Yaml::String(entry.id.clone()));
    }
    m.insert(key("title"), Yaml::String(entry.title.clone()));
    if entry.entry_type != "note" {
        m.insert(key("type"), Yaml::String(entry.entry_type.clone()));
    }
    if !entry.tags.is_empty() {
        m.insert(key("tags"), yaml(&serde_json::json!(entry.tags)));
    }
    if !entry.summary.is_empty() {
        m.insert(key("summary"), Yaml::String(entry.summary.clone()));
    }
    if let Some(d) = entry.date {
        m.insert(key("date"), Yaml::String(d.format("%Y-%m-%d").to_string()));
    }
    if entry.importance != 0 {
        m.insert(key("importance"), Yaml::Number(entry.importance.into()));
    }
    if let Some(s) = &entry.status {
        m.insert(key("status"), Yaml::String(s.clone()));
    }
    if let Some(a) = &entry.assignee {
        m.insert(key("assignee"), Yaml::String(a.clone()));
    }
    if entry.lifecycle == Lifecycle::Archived {
        m.insert(key("lifecycle"), Yaml::String("archived".into()));
    }
    if let Some(t) = entry.expires_at {
        m.insert(
            key("expires_at"),
            Yaml::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
    }
    // Links the body makes come back from the body; the others are written out exactly.
    let explicit: Vec<Value> = entry
        .links
        .iter()
        .filter(|l| l.relation != WIKILINK && l.relation != MDLINK)
        .map(|l| {
            let mut o = serde_json::Map::new();
            o.insert("target".into(), Value::String(l.target.clone()));
            if let Some(kb) = &l.target_kb {
                o.insert("kb".into(), Value::String(kb.clone()));
            }
            if l.relation != "related" {
                o.insert("relation".into(), Value::String(l.relation.clone()));
            }
            if let Some(n) = &l.note {
                o.insert("note".into(), Value::String(n.clone()));
            }
            Value::Object(o)
        })
        .collect();
    if !explicit.is_empty() {
        m.insert(key("links"), yaml(&Value::Array(explicit)));
    }
    if !entry.sources.is_empty() {
        m.insert(key("sources"), yaml(&serde_json::json!(entry.sources)));
    }
    for (k, v) in &entry.metadata {
        m.insert(key(k), yaml(v));
    }
    let fm = serde_yaml_ng::to_string(&m).unwrap_or_default();
    format!("---\n{fm}---\n{}", entry.body)
}

/// Writes every entry of `kb` (archived ones too) under `dir`.
pub async fn export_kb(
    store: &dyn Store,
    kb: &str,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    let started = std::time::Instant::now();
    if store.get_kb(kb).await?.is_none() {
        return Err(AppError::NotFound {
            what: format!("knowledge base {kb}"),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| AppError::io(dir, e))?;
    let base = Filter::new().kb(kb).lifecycle(LifecycleFilter::Any);
    progress.start("exporting", Some(store.count_entries(&base).await?));
    let mut used: HashSet<PathBuf> = HashSet::new();
    let mut written = 0;
    let page = 500;
    let mut offset = 0;
    loop {
        let entries = store
            .list_entries(&base.clone().limit(page).offset(offset))
            .await?;
        for e in &entries {
            let mut rel = safe_path(e);
            let mut n = 2;
            while used.contains(&rel) {
                let stem = safe_path(e).with_extension("");
                rel = PathBuf::from(format!("{}-{n}.md", stem.display()));
                n += 1;
            }
            used.insert(rel.clone());
            let rel_str = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let path = dir.join(&rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| AppError::io(parent, e))?;
            }
            std::fs::write(&path, render(e, &rel_str)).map_err(|err| AppError::io(&path, err))?;
            written += 1;
            progress.advance(1);
        }
        if entries.len() < page {
            break;
        }
        offset += page;
    }
    progress.finish();
    Ok(ExportReport {
        kb: kb.to_owned(),
        dir: dir.display().to_string(),
        written,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
