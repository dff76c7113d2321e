//! One markdown note → one entry: YAML frontmatter fields, the title, and the links the
//! body makes (wikilinks and links to other `.md` files), found by a real CommonMark
//! parser so nothing inside code spans or fenced code counts.

use chrono::NaiveDate;
use pulldown_cmark::{Event, HeadingLevel, LinkType, Options, Parser, Tag, TagEnd};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use storage_core::{Lifecycle, NewEntry, Source};

/// Frontmatter keys that become entry fields; every other key goes to metadata.
pub const FIELD_KEYS: &[&str] = &[
    "id",
    "title",
    "type",
    "tags",
    "summary",
    "date",
    "importance",
    "status",
    "assignee",
    "links",
    "sources",
    "lifecycle",
    "expires_at",
];

/// Relation of links written in the body as `[[wikilinks]]`.
pub const WIKILINK: &str = "wikilink";
/// Relation of ordinary markdown links to other notes.
pub const MDLINK: &str = "mdlink";

/// Why a file could not become an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseError {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl ParseError {
    fn at(line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

/// How a link was written, which decides how its target is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkStyle {
    /// `[[target]]` in the body or a `"[[target]]"` / `target` string in `links:`.
    #[serde(rename = "w")]
    Wiki,
    /// `[text](other.md)`: a path relative to the linking file.
    #[serde(rename = "m")]
    Markdown,
    /// An object in `links:` naming the target id exactly (no resolution).
    #[serde(rename = "i")]
    Id,
}

/// A link before its target is resolved against the other notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLink {
    pub target: String,
    pub style: LinkStyle,
    /// `[[other-kb:target]]`: a link into another KB (never resolved against this folder).
    pub kb: Option<String>,
    /// `[[target#heading]]`: the heading, kept as the link's note (`#heading`).
    pub anchor: Option<String>,
    pub relation: String,
    pub note: Option<String>,
}

/// A note read from a file.
#[derive(Debug, Clone)]
pub struct ParsedNote {
    /// The entry, links not yet resolved (empty).
    pub entry: NewEntry,
    /// Whether the id came from the frontmatter.
    pub explicit_id: bool,
    /// Other names the note answers to (frontmatter `aliases`).
    pub aliases: Vec<String>,
    pub links: Vec<RawLink>,
}

/// Splits `---` frontmatter from the body. Returns (frontmatter, body, first line of the
/// frontmatter). A tiny scan rather than a parser: the delimiters are fixed lines.
pub fn split_frontmatter(text: &str) -> (Option<&str>, &str, usize) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return (None, text, 0);
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == "---" || bare == "..." {
            let fm = &rest[..offset];
            let body = &rest[offset + line.len()..];
            return (Some(fm), body, 2);
        }
        offset += line.len();
    }
    (None, text, 0)
}

/// Parses one note. `path` is relative to the sync root, `/`-separated, with extension.
pub fn parse_note(kb: &str, path: &str, text: &str) -> Result<ParsedNote, ParseError> {
    let (fm, body, fm_line) = split_frontmatter(text);
    let mut map = match fm {
        None => Map::new(),
        Some(fm) => match serde_yaml_ng::from_str::<Value>(fm) {
            Ok(Value::Object(m)) => m,
            Ok(Value::Null) => Map::new(),
            Ok(_) => {
                return Err(ParseError::at(
                    Some(fm_line),
                    "the frontmatter is not a mapping of keys to values",
                ))
            }
            Err(e) => {
                let line = e.location().map(|l| l.line() + fm_line - 1);
                let msg = e.to_string();
                // serde_yaml_ng appends " at line N column M"; the line is reported apart.
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
                return Err(ParseError::at(
                    line,
                    format!("invalid YAML frontmatter: {msg}"),
                ));
            }
        },
    };
    let line_of = |key: &str| -> Option<usize> {
        let fm = fm?;
        fm.lines()
            .position(|l| l.starts_with(key) && l[key.len()..].trim_start().starts_with(':'))
            .map(|i| i + fm_line)
    };
    let wrong = |key: &str, expected: &str, v: &Value| {
        ParseError::at(
            line_of(key),
            format!("field `{key}`: expected {expected}, found {}", kind_of(v)),
        )
    };
    let take_string =
        |map: &mut Map<String, Value>, key: &str| -> Result<Option<String>, ParseError> {
            match map.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
                Some(v) => Err(wrong(key, "a string", &v)),
            }
        };

    let stem = path
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .rsplit_once('.')
        .map(|(s, _)| s)
        .unwrap_or(path);
    let default_id = path.rsplit_once('.').map(|(s, _)| s).unwrap_or(path);
    let explicit_id = take_string(&mut map, "id")?;
    let id = explicit_id.clone().unwrap_or_else(|| default_id.to_owned());
    let mut entry = NewEntry::new(kb, id);
    entry.source_path = Some(path.to_owned());

    let (heading, body_links) = scan_body(body);
    entry.title = match take_string(&mut map, "title")? {
        Some(t) => t,
        None => heading.unwrap_or_else(|| stem.to_owned()),
    };
    if let Some(t) = take_string(&mut map, "type")? {
        entry.entry_type = t;
    }
    if let Some(s) = take_string(&mut map, "summary")? {
        entry.summary = s;
    }
    // An empty `status:` or `assignee:` (a template's blank) means none.
    entry.status = take_string(&mut map, "status")?.filter(|s| !s.trim().is_empty());
    entry.assignee = take_string(&mut map, "assignee")?.filter(|s| !s.trim().is_empty());
    if let Some(d) = take_string(&mut map, "date")? {
        let day = d.get(..10).unwrap_or(&d);
        entry.date = Some(NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| {
            ParseError::at(
                line_of("date"),
                format!("field `date`: expected YYYY-MM-DD, found {d:?}"),
            )
        })?);
    }
    if let Some(t) = take_string(&mut map, "expires_at")? {
        entry.expires_at = Some(
            chrono::DateTime::parse_from_rfc3339(&t)
                .map_err(|_| {
                    ParseError::at(
                        line_of("expires_at"),
                        format!(
                            "field `expires_at`: expected a time like 2026-12-31T23:00:00Z, found {t:?}"
                        ),
                    )
                })?
                .with_timezone(&chrono::Utc),
        );
    }
    match map.remove("importance") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => {
            entry.importance = n.as_i64().unwrap_or_default() as i32;
        }
        Some(v) => return Err(wrong("importance", "a whole number", &v)),
    }
    if let Some(l) = take_string(&mut map, "lifecycle")? {
        entry.lifecycle = Lifecycle::parse(&l).ok_or_else(|| {
            ParseError::at(
                line_of("lifecycle"),
                format!("field `lifecycle`: expected active or archived, found {l:?}"),
            )
        })?;
    }
    match map.remove("tags") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            entry.tags = s
                .split([',', ' '])
                .map(|t| t.trim().trim_start_matches('#').to_owned())
                .filter(|t| !t.is_empty())
                .collect()
        }
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) => {
                        entry.tags.push(s.trim().trim_start_matches('#').to_owned())
                    }
                    Value::Number(n) => entry.tags.push(n.to_string()),
                    v => return Err(wrong("tags", "a list of strings", &v)),
                }
            }
        }
        Some(v) => return Err(wrong("tags", "a list of strings", &v)),
    }
    let aliases = match map.get("aliases") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                v => Err(wrong("aliases", "a list of strings", v)),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(wrong("aliases", "a list of strings", v)),
    };
    let mut links = Vec::new();
    match map.remove("links") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                links.push(
                    frontmatter_link(&item).map_err(|m| ParseError::at(line_of("links"), m))?,
                );
            }
        }
        Some(v) => return Err(wrong("links", "a list", &v)),
    }
    links.extend(body_links);
    match map.remove("sources") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                entry
                    .sources
                    .push(source(&item).map_err(|m| ParseError::at(line_of("sources"), m))?);
            }
        }
        Some(v) => return Err(wrong("sources", "a list", &v)),
    }
    entry.metadata = map;
    entry.body = body.to_owned();
    Ok(ParsedNote {
        entry,
        explicit_id: explicit_id.is_some(),
        aliases,
        links,
    })
}

/// An entry from one markdown text that is not part of a synced folder (`kb put`): the
/// id comes from the frontmatter, else `id`, else `name` without its extension; links
/// point at the ids as written.
pub fn standalone_entry(
    kb: &str,
    name: &str,
    text: &str,
    id: Option<&str>,
) -> Result<NewEntry, ParseError> {
    let file = if name.contains('.') {
        name.to_owned()
    } else {
        format!("{name}.md")
    };
    let note = parse_note(kb, &file, text)?;
    let mut entry = note.entry;
    if !note.explicit_id {
        if let Some(id) = id {
            entry.id = id.to_owned();
        }
    }
    entry.source_path = None;
    for raw in &note.links {
        let mut l = storage_core::Link::to(crate::links::unresolved_id("", raw))
            .relation(raw.relation.clone());
        l.target_kb = raw.kb.clone();
        l.note = raw.note.clone();
        if raw.style == LinkStyle::Id {
            l.target = raw.target.clone();
        }
        entry.links.push(l);
    }
    Ok(entry)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// `"[[target]]"`, `"target"`, or `{target, kb, relation, note}` (an exact id).
fn frontmatter_link(v: &Value) -> Result<RawLink, String> {
    match v {
        Value::String(s) => {
            let inner = s
                .trim()
                .strip_prefix("[[")
                .and_then(|s| s.strip_suffix("]]"))
                .unwrap_or(s.trim());
            let inner = inner.split('|').next().unwrap_or(inner);
            let mut link = wiki_target(inner, "related");
            if link.target.is_empty() {
                return Err("field `links`: an empty link target".into());
            }
            link.relation = "related".into();
            Ok(link)
        }
        Value::Object(m) => {
            let get = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
            let target = get("target").ok_or("field `links`: each mapping needs a `target`")?;
            for k in m.keys() {
                if !matches!(k.as_str(), "target" | "kb" | "relation" | "note") {
                    return Err(format!(
                        "field `links`: unknown key `{k}` (expected target, kb, relation, note)"
                    ));
                }
            }
            Ok(RawLink {
                target,
                style: LinkStyle::Id,
                kb: get("kb"),
                anchor: None,
                relation: get("relation").unwrap_or_else(|| "related".into()),
                note: get("note"),
            })
        }
        other => Err(format!(
            "field `links`: expected strings or mappings, found {}",
            kind_of(other)
        )),
    }
}

fn source(v: &Value) -> Result<Source, String> {
    match v {
        Value::String(s) => Ok(Source {
            title: s.clone(),
            url: (s.starts_with("http://") || s.starts_with("https://")).then(|| s.clone()),
            date: None,
        }),
        Value::Object(m) => {
            let get = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
            let date = match get("date") {
                None => None,
                Some(d) => Some(
                    NaiveDate::parse_from_str(d.get(..10).unwrap_or(&d), "%Y-%m-%d")
                        .map_err(|_| format!("field `sources`: date {d:?} is not YYYY-MM-DD"))?,
                ),
            };
            let url = get("url");
            let title = get("title")
                .or_else(|| url.clone())
                .ok_or("field `sources`: each mapping needs a `title` or `url`")?;
            Ok(Source { title, url, date })
        }
        other => Err(format!(
            "field `sources`: expected strings or mappings, found {}",
            kind_of(other)
        )),
    }
}

/// `kb:target#heading` → its parts.
fn wiki_target(raw: &str, relation: &str) -> RawLink {
    let (rest, anchor) = match raw.split_once('#') {
        Some((t, h)) => (t, Some(h.trim().to_owned()).filter(|h| !h.is_empty())),
        None => (raw, None),
    };
    let (kb, target) = match rest.split_once(':') {
        Some((k, t))
            if storage_core::validate_name("kb", k.trim()).is_ok() && !t.trim().is_empty() =>
        {
            (Some(k.trim().to_owned()), t.trim())
        }
        _ => (None, rest.trim()),
    };
    RawLink {
        target: target.to_owned(),
        style: LinkStyle::Wiki,
        kb,
        anchor: anchor.clone(),
        relation: relation.to_owned(),
        note: anchor.map(|a| format!("#{a}")),
    }
}

/// The first `# heading` and the links of the body, in order of appearance.
fn scan_body(body: &str) -> (Option<String>, Vec<RawLink>) {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_WIKILINKS);
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_TASKLISTS);
    let mut heading: Option<String> = None;
    let mut in_h1 = false;
    let mut h1_text = String::new();
    let mut links = Vec::new();
    for event in Parser::new_ext(body, opts) {
        match event {
            Event::Start(Tag::Heading {
                level: HeadingLevel::H1,
                ..
            }) if heading.is_none() => {
                in_h1 = true;
                h1_text.clear();
            }
            Event::End(TagEnd::Heading(HeadingLevel::H1)) if in_h1 => {
                in_h1 = false;
                let t = h1_text.trim();
                if !t.is_empty() {
                    heading = Some(t.to_owned());
                }
            }
            Event::Text(t) | Event::Code(t) if in_h1 => h1_text.push_str(&t),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                ..
            }) => match link_type {
                LinkType::WikiLink { .. } => {
                    let link = wiki_target(&dest_url, WIKILINK);
                    if !link.target.is_empty() {
                        links.push(link);
                    }
                }
                LinkType::Inline
                | LinkType::Reference
                | LinkType::ReferenceUnknown
                | LinkType::Collapsed
                | LinkType::CollapsedUnknown
                | LinkType::Shortcut
                | LinkType::ShortcutUnknown => {
                    if let Some(link) = markdown_link(&dest_url) {
                        links.push(link);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    (heading, links)
}

/// A relative link to a `.md` file (URLs, absolute paths and other files are not notes).
fn markdown_link(dest: &str) -> Option<RawLink> {
    if dest.contains("://") || dest.starts_with('/') || dest.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = match dest.split_once('#') {
        Some((p, a)) => (p, Some(a.to_owned()).filter(|a| !a.is_empty())),
        None => (dest, None),
    };
    let path = percent_decode(path);
    if !path.to_ascii_lowercase().ends_with(".md") {
        return None;
    }
    Some(RawLink {
        target: path,
        style: LinkStyle::Markdown,
        kb: None,
        note: anchor.as_ref().map(|a| format!("#{a}")),
        anchor,
        relation: MDLINK.into(),
    })
}

/// `%20` and friends in link destinations (only complete, valid UTF-8 escapes).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontmatter_fields_and_metadata() {
        let text = "---\ntitle: Hello\ntype: task\ntags: [a/b, \"#c\"]\nstatus: open\nimportance: 3\ndate: 2026-03-04\nowner: dana\naliases: [Hi]\n---\n# Ignored heading\nBody [[other|label]] and [[kb2:x]] and [[t#Sec]].\n`[[not-code]]`\n\n```\n[[nor-this]]\n```\n[doc](../d/e%20f.md#part) [web](https://x.org/a.md)\n";
        let n = parse_note("k", "dir/note.md", text).unwrap();
        assert_eq!(n.entry.id, "dir/note");
        assert_eq!(n.entry.title, "Hello");
        assert_eq!(n.entry.entry_type, "task");
        assert_eq!(n.entry.tags, vec!["a/b", "c"]);
        assert_eq!(n.entry.importance, 3);
        assert_eq!(
            n.entry.metadata.get("owner"),
            Some(&Value::String("dana".into()))
        );
        assert_eq!(n.aliases, vec!["Hi"]);
        let targets: Vec<_> = n
            .links
            .iter()
            .map(|l| (l.target.as_str(), l.kb.as_deref(), l.anchor.as_deref()))
            .collect();
        assert_eq!(
            targets,
            vec![
                ("other", None, None),
                ("x", Some("kb2"), None),
                ("t", None, Some("Sec")),
                ("../d/e f.md", None, Some("part"))
            ]
        );
        assert!(n.entry.body.starts_with("# Ignored heading"));
    }

    #[test]
    fn title_falls_back_to_heading_then_file_name() {
        assert_eq!(
            parse_note("k", "a.md", "intro\n\n# The *Title*\n")
                .unwrap()
                .entry
                .title,
            "The Title"
        );
        assert_eq!(
            parse_note("k", "x/plain-name.md", "no heading")
                .unwrap()
                .entry
                .title,
            "plain-name"
        );
    }

    #[test]
    fn malformed_frontmatter_reports_the_line() {
        let e = parse_note("k", "a.md", "---\ntitle: ok\ntags: [unclosed\n---\nbody").unwrap_err();
        assert!(e.message.contains("invalid YAML"), "{e:?}");
        assert!(e.line.is_some());
        let e = parse_note("k", "a.md", "---\ntitle: ok\nimportance: high\n---\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(
            e.message.contains("importance") && e.message.contains("whole number"),
            "{e:?}"
        );
    }
}
