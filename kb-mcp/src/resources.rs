//! Entries as resources: `kb://KB/ID` is the entry as a markdown file with frontmatter
//! (what `kb export` writes), and `kb://kbs` the list of knowledge bases. An id may
//! contain `/`: everything after the KB's segment is the id, percent-decoded.

use rmcp::model::{
    ListResourcesResult, PaginatedRequestParams, ReadResourceResult, Resource, ResourceContents,
    ResourceTemplate,
};
use rmcp::ErrorData;
use serde_json::json;
use storage_core::{EntryKey, SortField, SortOrder};

use crate::access::McpAccess;
use crate::server::{KbMcp, ToolError};

const SCHEME: &str = "kb://";
const KB_LIST: &str = "kb://kbs";
/// Entries listed per `resources/list` page.
const PAGE: usize = 100;

/// The resource URI of an entry.
pub(crate) fn uri(kb: &str, id: &str) -> String {
    let id: String = id.split('/').map(encode).collect::<Vec<_>>().join("/");
    format!("{SCHEME}{}/{id}", encode(kb))
}

/// Percent-encodes what may not stand in a URI path segment.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub(crate) fn templates() -> Vec<ResourceTemplate> {
    vec![ResourceTemplate::new("kb://{kb}/{+id}", "entry")
        .with_title("Knowledge-base entry")
        .with_description(
            "An entry as markdown with YAML frontmatter (title, tags, type, links, metadata)",
        )
        .with_mime_type("text/markdown")]
}

/// The KB list, then the caller's entries, most recently updated first, a page at a time.
pub(crate) async fn list(
    server: &KbMcp,
    request: Option<PaginatedRequestParams>,
    access: &McpAccess,
) -> Result<ListResourcesResult, ErrorData> {
    let offset: usize = match request.and_then(|r| r.cursor) {
        Some(c) => c.parse().map_err(|_| {
            ErrorData::invalid_params("the cursor is not one this server gave", None)
        })?,
        None => 0,
    };
    let mut resources = Vec::new();
    if offset == 0 {
        resources.push(
            Resource::new(KB_LIST, "knowledge-bases")
                .with_title("Knowledge bases")
                .with_mime_type("application/json"),
        );
    }
    let Some(mut f) = server.read_scope(None, access).map_err(protocol)? else {
        return Ok(ListResourcesResult::with_all_items(resources));
    };
    f.limit = Some(PAGE);
    f.offset = offset;
    f.sort.field = SortField::Updated;
    f.sort.order = SortOrder::Desc;
    let entries = server
        .services
        .store
        .list_entries(&f)
        .await
        .map_err(|e| protocol(e.into()))?;
    let full = entries.len() == PAGE;
    for e in entries {
        let mut r = Resource::new(uri(&e.kb, &e.id), format!("{}/{}", e.kb, e.id))
            .with_mime_type("text/markdown");
        if !e.title.is_empty() {
            r = r.with_title(e.title.clone());
        }
        if !e.summary.is_empty() {
            r = r.with_description(e.summary.clone());
        }
        resources.push(r);
    }
    let mut result = ListResourcesResult::with_all_items(resources);
    if full {
        result.next_cursor = Some((offset + PAGE).to_string());
    }
    Ok(result)
}

pub(crate) async fn read(
    server: &KbMcp,
    raw: &str,
    access: &McpAccess,
) -> Result<ReadResourceResult, ErrorData> {
    let store = &server.services.store;
    if raw == KB_LIST {
        let kbs: Vec<_> = store
            .list_kbs()
            .await
            .map_err(|e| protocol(e.into()))?
            .into_iter()
            .filter(|k| access.can_read(&k.name))
            .collect();
        let text = serde_json::to_string_pretty(&json!({ "kbs": kbs })).unwrap_or_default();
        return Ok(ReadResourceResult::new(vec![
            ResourceContents::TextResourceContents {
                uri: raw.to_owned(),
                mime_type: Some("application/json".into()),
                text,
                meta: None,
            },
        ]));
    }
    let not_found = || ErrorData::resource_not_found(format!("no resource {raw}"), None);
    let rest = raw.strip_prefix(SCHEME).ok_or_else(not_found)?;
    let (kb, id) = rest.split_once('/').ok_or_else(not_found)?;
    let (kb, id) = (
        decode(kb).ok_or_else(not_found)?,
        decode(id).ok_or_else(not_found)?,
    );
    if !access.can_read(&kb) || id.is_empty() {
        return Err(not_found());
    }
    let entry = store
        .get_entry(&EntryKey::new(&kb, &id))
        .await
        .map_err(|e| protocol(e.into()))?
        .ok_or_else(not_found)?;
    let text = kb_app::export::render(&entry, &format!("{id}.md"));
    Ok(ReadResourceResult::new(vec![
        ResourceContents::TextResourceContents {
            uri: raw.to_owned(),
            mime_type: Some("text/markdown".into()),
            text,
            meta: None,
        },
    ]))
}

fn protocol(e: ToolError) -> ErrorData {
    ErrorData::internal_error(e.0, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_uri_round_trips_ids_with_slashes_and_spaces() {
        let u = uri("notes", "glossary/write ahead");
        assert_eq!(u, "kb://notes/glossary/write%20ahead");
        let rest = u.strip_prefix(SCHEME).unwrap();
        let (kb, id) = rest.split_once('/').unwrap();
        assert_eq!(decode(kb).unwrap(), "notes");
        assert_eq!(decode(id).unwrap(), "glossary/write ahead");
    }

    #[test]
    fn a_broken_escape_does_not_decode() {
        assert_eq!(decode("a%2"), None);
        assert_eq!(decode("a%zz"), None);
        assert_eq!(decode("%FF"), None);
    }
}
