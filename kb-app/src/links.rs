//! Resolving link targets the way Obsidian users expect: by file name anywhere in the
//! folder (the shortest path when several notes share it), by path (from the root or
//! relative to the linking note), or by a note's frontmatter `id` or `aliases`.

use std::collections::HashMap;

use storage_core::Link;

use crate::markdown::{LinkStyle, RawLink};

/// What the resolver knows of one note.
pub struct NoteName<'a> {
    pub path: &'a str,
    pub id: &'a str,
    pub aliases: &'a [String],
}

#[derive(Debug, Default)]
pub struct Resolver {
    by_path: HashMap<String, String>,
    by_stem: HashMap<String, (usize, String, String)>,
    by_id: HashMap<String, String>,
    by_alias: HashMap<String, String>,
}

fn without_md(p: &str) -> &str {
    let lower = p.len() >= 3 && p[p.len() - 3..].eq_ignore_ascii_case(".md");
    if lower {
        &p[..p.len() - 3]
    } else if p.len() >= 9 && p[p.len() - 9..].eq_ignore_ascii_case(".markdown") {
        &p[..p.len() - 9]
    } else {
        p
    }
}

/// Joins `rel` to the folder of `from` and removes `.` and `..` segments; `None` when
/// the path climbs above the root.
fn join_relative(from: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

impl Resolver {
    pub fn new<'a>(notes: impl IntoIterator<Item = NoteName<'a>>) -> Self {
        let mut r = Self::default();
        for n in notes {
            let key = without_md(n.path).to_lowercase();
            r.by_path.insert(key.clone(), n.id.to_owned());
            let stem = key.rsplit('/').next().unwrap_or(&key).to_owned();
            let cand = (n.path.len(), n.path.to_owned(), n.id.to_owned());
            r.by_stem
                .entry(stem)
                .and_modify(|best| {
                    if (cand.0, &cand.1) < (best.0, &best.1) {
                        *best = cand.clone();
                    }
                })
                .or_insert(cand);
            r.by_id.insert(n.id.to_lowercase(), n.id.to_owned());
            for a in n.aliases {
                r.by_alias
                    .entry(a.trim().to_lowercase())
                    .or_insert_with(|| n.id.to_owned());
            }
        }
        r
    }

    /// The id a link written in the note at `from` points at, if a note answers to it.
    pub fn resolve(&self, from: &str, target: &str, style: LinkStyle) -> Option<String> {
        let t = target.trim().replace('\\', "/");
        match style {
            LinkStyle::Id => None,
            LinkStyle::Markdown => {
                let joined = join_relative(from, &t)?;
                self.by_path
                    .get(&without_md(&joined).to_lowercase())
                    .cloned()
            }
            LinkStyle::Wiki => {
                let t = t.trim_start_matches("./").trim_start_matches('/');
                let key = without_md(t).to_lowercase();
                if !key.contains('/') {
                    if let Some((_, _, id)) = self.by_stem.get(&key) {
                        return Some(id.clone());
                    }
                }
                if let Some(id) = self.by_path.get(&key) {
                    return Some(id.clone());
                }
                if let Some(id) = join_relative(from, &key).and_then(|p| self.by_path.get(&p)) {
                    return Some(id.clone());
                }
                self.by_id
                    .get(&key)
                    .or_else(|| self.by_alias.get(&key))
                    .cloned()
            }
        }
    }

    /// The stored link: the resolved id, or the target as written when no note answers
    /// to it (a link to a missing entry, which the store keeps).
    pub fn link(&self, from: &str, raw: &RawLink) -> (Link, bool) {
        if raw.kb.is_some() || raw.style == LinkStyle::Id {
            let mut l = Link::to(raw.target.trim()).relation(raw.relation.clone());
            l.target_kb = raw.kb.clone();
            l.note = raw.note.clone();
            return (l, true);
        }
        let resolved = self.resolve(from, &raw.target, raw.style);
        let found = resolved.is_some();
        let target = resolved.unwrap_or_else(|| unresolved_id(from, raw));
        let mut l = Link::to(target).relation(raw.relation.clone());
        l.note = raw.note.clone();
        (l, found)
    }
}

/// The id an unresolved link points at: what a note created for it later would get.
pub fn unresolved_id(from: &str, raw: &RawLink) -> String {
    let t = raw.target.trim().replace('\\', "/");
    match raw.style {
        LinkStyle::Markdown => join_relative(from, &t)
            .map(|p| without_md(&p).to_owned())
            .unwrap_or_else(|| without_md(&t).to_owned()),
        _ => without_md(t.trim_start_matches("./")).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver() -> Resolver {
        let alias = vec!["WAL".to_owned()];
        Resolver::new([
            NoteName {
                path: "glossary/write-ahead-log.md",
                id: "glossary/write-ahead-log",
                aliases: &alias,
            },
            NoteName {
                path: "meetings/2026/retro.md",
                id: "meetings/2026/retro",
                aliases: &[],
            },
            NoteName {
                path: "meetings/retro.md",
                id: "meetings/retro",
                aliases: &[],
            },
            NoteName {
                path: "decisions/0001.md",
                id: "adr-postgres",
                aliases: &[],
            },
        ])
    }

    #[test]
    fn resolves_by_name_path_id_and_alias() {
        let r = resolver();
        let w = |t: &str| r.resolve("howto/x.md", t, LinkStyle::Wiki);
        assert_eq!(
            w("write-ahead-log").as_deref(),
            Some("glossary/write-ahead-log")
        );
        assert_eq!(
            w("Write-Ahead-Log").as_deref(),
            Some("glossary/write-ahead-log")
        );
        assert_eq!(
            w("retro").as_deref(),
            Some("meetings/retro"),
            "shortest path wins"
        );
        assert_eq!(
            w("meetings/2026/retro").as_deref(),
            Some("meetings/2026/retro")
        );
        assert_eq!(w("adr-postgres").as_deref(), Some("adr-postgres"));
        assert_eq!(w("0001").as_deref(), Some("adr-postgres"));
        assert_eq!(w("wal").as_deref(), Some("glossary/write-ahead-log"));
        assert_eq!(w("missing"), None);
        let m = r.resolve("meetings/2026/retro.md", "../retro.md", LinkStyle::Markdown);
        assert_eq!(m.as_deref(), Some("meetings/retro"));
        assert_eq!(r.resolve("a.md", "../../x.md", LinkStyle::Markdown), None);
    }
}
