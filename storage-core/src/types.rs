//! Domain types shared by every backend. All of them serialise with serde so the CLI,
//! the HTTP server and exports can reuse them unchanged. One file per area of the
//! protocol under `types/`, all re-exported here.

/// Largest accepted entry body (bytes). Bigger inputs are rejected, not truncated.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Largest accepted id, kb name, type, status, tag or other short field (bytes).
pub const MAX_SHORT_FIELD_BYTES: usize = 512;
/// Largest accepted title or summary (bytes); also a source's title and a link's note.
pub const MAX_TEXT_FIELD_BYTES: usize = 64 * 1024;
/// Largest accepted source URL (bytes).
pub const MAX_URL_BYTES: usize = 8 * 1024;
/// Most tags one entry may have (after de-duplication).
pub const MAX_TAGS_PER_ENTRY: usize = 1_000;
/// Most links one entry may have (after de-duplication): an index note of a big vault
/// links every note, so the bound is generous; it exists so one write cannot be
/// unbounded.
pub const MAX_LINKS_PER_ENTRY: usize = 20_000;
/// Most sources one entry may cite.
pub const MAX_SOURCES_PER_ENTRY: usize = 1_000;
/// Most entries one `upsert_entries` call may write: one transaction of a bounded size
/// (a sync or an import writes far smaller batches).
pub const MAX_ENTRIES_PER_BATCH: usize = 10_000;

mod coordination;
mod entry;
mod graph;
mod health;
mod kb;
mod organise;
mod search;
mod validation;
mod vectors;

use kb::expiry_after;
use validation::{check_count, check_json_at, check_len, check_no_nul, validate_short};

pub use coordination::*;
pub use entry::*;
pub use graph::*;
pub use health::*;
pub use kb::*;
pub use organise::*;
pub use search::*;
pub use validation::*;
pub use vectors::*;

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::error::StorageError;

    #[test]
    fn an_ephemeral_kb_with_an_unrepresentable_ttl_does_not_panic() {
        let kb = NewKnowledgeBase::ephemeral("x", chrono::Duration::MAX);
        assert_eq!(kb.expires_at, Some(DateTime::<Utc>::MAX_UTC));
        let before = Utc::now();
        let kb = NewKnowledgeBase::ephemeral("x", chrono::Duration::MIN);
        assert!(kb.expires_at.unwrap() >= before);
        let kb = NewKnowledgeBase::ephemeral("x", chrono::Duration::hours(1));
        assert!(kb.expires_at.unwrap() > before + chrono::Duration::minutes(59));
    }

    #[test]
    fn leases_above_a_day_are_rejected() {
        check_lease(MAX_LEASE).unwrap();
        check_lease(std::time::Duration::ZERO).unwrap();
        for bad in [
            MAX_LEASE + std::time::Duration::from_nanos(1),
            std::time::Duration::MAX,
        ] {
            assert!(matches!(
                check_lease(bad),
                Err(StorageError::InvalidInput { .. })
            ));
        }
    }

    #[test]
    fn claims_follow_the_status_and_assignee_rule_of_upserts() {
        validate_claim("in_progress", "ana").unwrap();
        validate_claim("in_progress", "").unwrap();
        let long = "a".repeat(MAX_SHORT_FIELD_BYTES + 1);
        for (status, assignee) in [
            ("", "ana"),
            ("in\nprogress", "ana"),
            (long.as_str(), "ana"),
            ("open", long.as_str()),
            ("open", "an\0a"),
            ("open", "an\ta"),
        ] {
            let claim = validate_claim(status, assignee);
            assert!(
                matches!(claim, Err(StorageError::InvalidInput { .. })),
                "{status:?} {assignee:?}"
            );
            // An upsert with the same values is rejected too (unless only the empty
            // status differs, which upserts allow as "no claim yet").
            if !status.is_empty() {
                let e = NewEntry::new("k", "i").status(status).assignee(assignee);
                assert!(e.normalized().is_err(), "{status:?} {assignee:?}");
            }
        }
    }

    /// Any text in any field: validation never panics, and what it accepts is canonical
    /// (validating it again changes nothing), so every backend stores the same entry.
    fn arbitrary_entry(
        kb: String,
        id: String,
        fields: Vec<String>,
        tags: Vec<String>,
        links: Vec<String>,
        importance: i32,
    ) -> NewEntry {
        let f = |i: usize| fields.get(i).cloned().unwrap_or_default();
        let mut e = NewEntry::new(kb, id)
            .entry_type(format!("t{}", f(2)))
            .title(f(3))
            .summary(f(4))
            .body(f(5))
            .tags(tags)
            .importance(importance)
            .status(f(6))
            .assignee(f(7))
            .source_path(f(8));
        e.links = links.into_iter().map(Link::to).collect();
        e.sources = vec![Source {
            title: f(9),
            url: Some(f(10)),
            date: None,
        }];
        e.meta(f(11), serde_json::Value::String(f(12)))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]
        #[test]
        fn entry_validation_never_panics_and_is_idempotent(
            kb in "[a-z][a-z0-9_-]{0,8}",
            id in "[a-zA-Z0-9/._ -]{1,12}|(\\PC){1,8}",
            // Mostly printable text (which short fields accept), sometimes a control
            // character or a path separator (which some refuse).
            fields in proptest::collection::vec("(\\PC){0,12}|[\\x00-\\x1f/\\\\ .a]{0,6}", 13),
            tags in proptest::collection::vec("(\\PC){0,10}|[\\x00\\t /a]{0,4}", 0..6),
            links in proptest::collection::vec("(\\PC|[ /#|]){0,10}", 0..4),
            importance in proptest::num::i32::ANY,
        ) {
            let e = arbitrary_entry(kb, id, fields, tags, links, importance);
            if let Ok(valid) = e.normalized() {
                let again = valid.normalized().expect("a valid entry stays valid");
                proptest::prop_assert_eq!(again, valid);
            }
        }
    }
}
