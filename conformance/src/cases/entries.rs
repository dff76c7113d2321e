//! Entries: upsert, get, delete, replacement semantics, validation, hashes.

use serde_json::json;
use storage_core::*;

use crate::fixtures::*;

fn full_entry() -> NewEntry {
    NewEntry::new("k", "full")
        .entry_type("task")
        .title("Full entry")
        .summary("Every field set")
        .body("The body text.")
        .tags(["alpha", "topic/ai"])
        .link(Link::to("other").relation("depends_on").note("needs it"))
        .link(Link::to("x").in_kb("elsewhere"))
        .source(Source {
            title: "Paper".into(),
            url: Some("https://example.org/p".into()),
            date: Some(date(2024, 5, 1)),
        })
        .meta("owner", json!({"team": "search", "size": 3}))
        .meta("flag", json!(true))
        .date(date(2024, 6, 30))
        .importance(7)
        .status("open")
        .assignee("ana")
        .source_path("notes/full.md")
}

/// Every field written comes back unchanged, and the returned entry equals the stored one.
async fn upsert_then_get_round_trips_every_field(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let input = full_entry();
    let stored = s.upsert_entry(&input).await?;
    let got = s.get_entry(&input.key()).await?.expect("stored");
    assert_eq!(got, stored);
    assert_eq!(got.to_new(), input);
    assert_eq!(got.content_hash, input.content_hash());
    assert_eq!(got.created_at, got.updated_at);
    Ok(())
}

/// Upserting into a missing KB is `NotFound` and writes nothing.
async fn upsert_into_missing_kb_is_not_found(s: S) -> Result<()> {
    let err = s
        .upsert_entry(&note("ghost", "1", "t", ""))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");
    assert_eq!(
        s.count_entries(&Filter::new().lifecycle(LifecycleFilter::Any))
            .await?,
        0
    );
    Ok(())
}

/// Re-upserting replaces tags, links and sources; it never merges them.
async fn reupsert_replaces_tags_links_and_sources(s: S) -> Result<()> {
    kb(&s, "k").await?;
    s.upsert_entry(&full_entry()).await?;
    let second = NewEntry::new("k", "full")
        .title("Full entry")
        .tags(["beta"])
        .link(Link::to("new-target"))
        .source(Source {
            title: "Other".into(),
            url: None,
            date: None,
        });
    s.upsert_entry(&second).await?;
    let got = s.get_entry(&second.key()).await?.unwrap();
    assert_eq!(got.tags, ["beta"]);
    assert_eq!(got.links, vec![Link::to("new-target")]);
    assert_eq!(got.sources.len(), 1);
    assert_eq!(got.sources[0].title, "Other");
    assert!(got.metadata.is_empty());
    assert_eq!(got.status, None);
    assert_eq!(
        s.tags(Some("k"))
            .await?
            .iter()
            .map(|t| t.tag.as_str())
            .collect::<Vec<_>>(),
        ["beta"]
    );
    assert!(s.backlinks(&EntryKey::new("k", "other")).await?.is_empty());
    assert_eq!(s.count_entries(&Filter::new().tag("alpha")).await?, 0);
    Ok(())
}

/// Re-upserting keeps `created_at` and moves `updated_at` forward.
async fn reupsert_keeps_created_and_advances_updated(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let first = put(&s, note("k", "1", "v1", "")).await?;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = put(&s, note("k", "1", "v2", "")).await?;
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at > first.updated_at);
    assert_eq!(
        s.get_entry(&EntryKey::new("k", "1")).await?.unwrap().title,
        "v2"
    );
    Ok(())
}

/// Blank tags are dropped, tags are trimmed, and duplicates collapse in first-seen order.
async fn empty_and_duplicate_tags_are_dropped(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let e = put(
        &s,
        note("k", "1", "t", "").tags(["b", "", "  ", " a ", "b", "a"]),
    )
    .await?;
    assert_eq!(e.tags, ["b", "a"]);
    assert_eq!(s.get_entry(&e.key()).await?.unwrap().tags, ["b", "a"]);
    Ok(())
}

/// Getting a missing entry is `Ok(None)`.
async fn get_missing_entry_is_none(s: S) -> Result<()> {
    kb(&s, "k").await?;
    assert!(s.get_entry(&EntryKey::new("k", "missing")).await?.is_none());
    assert!(s
        .get_entry(&EntryKey::new("nokb", "missing"))
        .await?
        .is_none());
    Ok(())
}

/// `get_entries` returns existing entries in the order asked, skipping missing keys.
async fn get_entries_keeps_order_and_skips_missing(s: S) -> Result<()> {
    kb(&s, "k").await?;
    for id in ["1", "2", "3"] {
        put(&s, note("k", id, id, "")).await?;
    }
    let keys = [
        EntryKey::new("k", "3"),
        EntryKey::new("k", "x"),
        EntryKey::new("k", "1"),
    ];
    assert_eq!(ids(&s.get_entries(&keys).await?), ["3", "1"]);
    Ok(())
}

/// Deleting reports true for an existing entry and false afterwards.
async fn delete_entry_reports_whether_it_deleted(s: S) -> Result<()> {
    kb(&s, "k").await?;
    put(&s, note("k", "1", "t", "")).await?;
    let key = EntryKey::new("k", "1");
    assert!(s.delete_entry(&key).await?);
    assert!(!s.delete_entry(&key).await?);
    assert!(s.get_entry(&key).await?.is_none());
    Ok(())
}

/// A batch with one invalid entry writes nothing (one transaction).
async fn upsert_many_is_all_or_nothing(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let batch = vec![
        note("k", "1", "ok", ""),
        note("k", "2", "ok", ""),
        note("missing-kb", "3", "bad", ""),
    ];
    assert!(s.upsert_entries(&batch).await.is_err());
    assert_eq!(s.count_entries(&Filter::new()).await?, 0);
    let batch = vec![note("k", "1", "ok", ""), note("k", "", "empty id", "")];
    assert!(matches!(
        s.upsert_entries(&batch).await,
        Err(StorageError::InvalidInput { .. })
    ));
    assert_eq!(s.count_entries(&Filter::new()).await?, 0);
    Ok(())
}

/// A batch returns stored entries in input order; a repeated key ends with the last value.
async fn upsert_many_returns_input_order_and_last_duplicate_wins(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let batch = vec![
        note("k", "b", "first", ""),
        note("k", "a", "a", ""),
        note("k", "b", "second", ""),
    ];
    let out = s.upsert_entries(&batch).await?;
    assert_eq!(ids(&out), ["b", "a", "b"]);
    assert_eq!(
        s.get_entry(&EntryKey::new("k", "b")).await?.unwrap().title,
        "second"
    );
    assert_eq!(s.count_entries(&Filter::new()).await?, 2);
    Ok(())
}

/// The content hash is the same for the same content and changes with any content field.
async fn content_hash_tracks_content_only(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let a = put(&s, note("k", "1", "t", "b").tags(["x"])).await?;
    let again = put(&s, note("k", "1", "t", "b").tags(["x"])).await?;
    assert_eq!(a.content_hash, again.content_hash);
    assert_eq!(a.content_hash.len(), 64);
    let changed = put(&s, note("k", "1", "t", "b").tags(["y"])).await?;
    assert_ne!(changed.content_hash, a.content_hash);
    let body = put(&s, note("k", "1", "t", "b2").tags(["y"])).await?;
    assert_ne!(body.content_hash, changed.content_hash);
    Ok(())
}

/// Bodies over the size limit are rejected as `InvalidInput`, not truncated.
async fn oversized_body_is_invalid_input(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let big = "x".repeat(MAX_BODY_BYTES + 1);
    let err = s
        .upsert_entry(&note("k", "1", "t", &big))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("limit"));
    assert!(s.get_entry(&EntryKey::new("k", "1")).await?.is_none());
    Ok(())
}

/// Every list and text an entry carries is bounded, and so is a batch: beyond a limit
/// the write is `InvalidInput` naming it, on every backend, and nothing is written.
async fn oversized_lists_fields_and_batches_are_invalid_input_and_write_nothing(
    s: S,
) -> Result<()> {
    kb(&s, "k").await?;
    let source = |title: String, url: Option<String>| Source {
        title,
        url,
        date: None,
    };
    let base = || note("k", "big", "t", "");
    let long = |n: usize| "x".repeat(n + 1);
    let cases: Vec<(&str, NewEntry)> = vec![
        (
            "tags",
            base().tags((0..=MAX_TAGS_PER_ENTRY).map(|i| format!("t{i}"))),
        ),
        ("links", {
            let mut e = base();
            e.links = (0..=MAX_LINKS_PER_ENTRY)
                .map(|i| Link::to(format!("n{i}")))
                .collect();
            e
        }),
        ("sources", {
            let mut e = base();
            e.sources = (0..=MAX_SOURCES_PER_ENTRY)
                .map(|i| source(format!("s{i}"), None))
                .collect();
            e
        }),
        (
            "source title",
            base().source(source(long(MAX_TEXT_FIELD_BYTES), None)),
        ),
        (
            "source url",
            base().source(source("s".into(), Some(long(MAX_URL_BYTES)))),
        ),
        (
            "link note",
            base().link(Link::to("n").note(long(MAX_TEXT_FIELD_BYTES))),
        ),
    ];
    for (what, e) in cases {
        let err = s.upsert_entry(&e).await.unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidInput { .. }),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains("limit"), "{what}: {err}");
    }
    assert!(s.get_entry(&EntryKey::new("k", "big")).await?.is_none());
    let batch: Vec<NewEntry> = (0..=MAX_ENTRIES_PER_BATCH)
        .map(|i| note("k", &format!("b{i}"), "t", ""))
        .collect();
    let err = s.upsert_entries(&batch).await.unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("limit"), "{err}");
    assert_eq!(s.count_entries(&Filter::new()).await?, 0);
    // At the limits, everything is accepted.
    let at_limit = base()
        .tags((0..MAX_TAGS_PER_ENTRY).map(|i| format!("t{i}")))
        .source(source(
            "x".repeat(MAX_TEXT_FIELD_BYTES),
            Some("u".repeat(MAX_URL_BYTES)),
        ));
    s.upsert_entry(&at_limit).await?;
    Ok(())
}

/// Empty ids, ids with control characters or padding are `InvalidInput`.
async fn malformed_ids_are_invalid_input(s: S) -> Result<()> {
    kb(&s, "k").await?;
    for bad in ["", " padded", "tab\there", "nul\0"] {
        let err = s.upsert_entry(&note("k", bad, "t", "")).await.unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidInput { .. }),
            "{bad:?}: {err:?}"
        );
    }
    Ok(())
}

/// Ids may contain slashes, spaces, quotes and non-ASCII text.
async fn unusual_ids_round_trip(s: S) -> Result<()> {
    kb(&s, "k").await?;
    for id in [
        "a/b/c.md",
        "with space",
        "quote'\"",
        "ünïcødé ✓",
        "100%_like",
    ] {
        put(&s, note("k", id, "t", "")).await?;
        assert_eq!(s.get_entry(&EntryKey::new("k", id)).await?.unwrap().id, id);
    }
    assert_eq!(s.count_entries(&Filter::new()).await?, 5);
    Ok(())
}

/// The same id in two KBs names two distinct entries.
async fn same_id_in_two_kbs_is_two_entries(s: S) -> Result<()> {
    kb(&s, "a").await?;
    kb(&s, "b").await?;
    put(&s, note("a", "same", "in a", "")).await?;
    put(&s, note("b", "same", "in b", "")).await?;
    assert_eq!(
        s.get_entry(&EntryKey::new("a", "same"))
            .await?
            .unwrap()
            .title,
        "in a"
    );
    assert_eq!(
        s.get_entry(&EntryKey::new("b", "same"))
            .await?
            .unwrap()
            .title,
        "in b"
    );
    s.delete_entry(&EntryKey::new("a", "same")).await?;
    assert!(s.get_entry(&EntryKey::new("b", "same")).await?.is_some());
    Ok(())
}

/// Distinct entry types come back ordered, with counts, under the filter.
async fn entry_types_are_distinct_with_counts(s: S) -> Result<()> {
    kb(&s, "k").await?;
    kb(&s, "other").await?;
    for (id, t) in [
        ("1", "note"),
        ("2", "task"),
        ("3", "task"),
        ("4", "decision"),
    ] {
        put(&s, note("k", id, "t", "").entry_type(t)).await?;
    }
    put(&s, note("other", "1", "t", "").entry_type("person")).await?;
    let types = s.entry_types(&Filter::new().kb("k")).await?;
    assert_eq!(
        types,
        vec![
            ("decision".into(), 1),
            ("note".into(), 1),
            ("task".into(), 2)
        ]
    );
    assert_eq!(s.entry_types(&Filter::new()).await?.len(), 4);
    Ok(())
}

/// Nested metadata of every JSON type round-trips exactly.
async fn metadata_round_trips_nested_json(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let m = json!({"s": "text", "n": 1.5, "i": -3, "b": false, "null": null, "arr": [1, "two", {"x": 3}], "o": {"deep": {"er": "yes"}}});
    let mut e = note("k", "1", "t", "");
    e.metadata = m.as_object().unwrap().clone();
    put(&s, e).await?;
    let got = s.get_entry(&EntryKey::new("k", "1")).await?.unwrap();
    assert_eq!(Value::Object(got.metadata), m);
    Ok(())
}

use serde_json::Value;

crate::area! {
    entries, __entries_cases:
    upsert_then_get_round_trips_every_field,
    upsert_into_missing_kb_is_not_found,
    reupsert_replaces_tags_links_and_sources,
    reupsert_keeps_created_and_advances_updated,
    empty_and_duplicate_tags_are_dropped,
    get_missing_entry_is_none,
    get_entries_keeps_order_and_skips_missing,
    delete_entry_reports_whether_it_deleted,
    upsert_many_is_all_or_nothing,
    upsert_many_returns_input_order_and_last_duplicate_wins,
    content_hash_tracks_content_only,
    oversized_body_is_invalid_input,
    oversized_lists_fields_and_batches_are_invalid_input_and_write_nothing,
    malformed_ids_are_invalid_input,
    unusual_ids_round_trip,
    same_id_in_two_kbs_is_two_entries,
    entry_types_are_distinct_with_counts,
    metadata_round_trips_nested_json,
    source_paths_are_normalised,
    text_with_a_nul_byte_is_rejected_on_every_backend,
    writes_racing_the_deletion_of_their_kb_are_applied_or_not_found,
    concurrent_first_writes_of_one_key_leave_exactly_one_writers_children,
    a_rewrite_racing_the_deletion_of_its_entry_leaves_it_embeddable,
}

/// Source paths are normalised to forward slashes without a leading `./`.
async fn source_paths_are_normalised(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let e = put(
        &s,
        note("k", "1", "t", "").source_path("./notes\\sub\\a.md"),
    )
    .await?;
    assert_eq!(e.source_path.as_deref(), Some("notes/sub/a.md"));
    assert_eq!(
        s.count_entries(&Filter::new().path_prefix("notes/sub"))
            .await?,
        1
    );
    Ok(())
}

/// NUL (`\0`) is rejected as `InvalidInput` naming the field in every text an entry holds
/// (title, summary, body, sources, link notes, metadata keys and strings at any depth,
/// a metadata compare-and-set value), in passage text and in settings: Postgres cannot
/// store it, so no backend does. Nothing is written.
async fn text_with_a_nul_byte_is_rejected_on_every_backend(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let base = note("k", "1", "clean", "clean");
    put(&s, base.clone()).await?;
    let source = |title: &str, url: Option<&str>| Source {
        title: title.into(),
        url: url.map(Into::into),
        date: None,
    };
    let cases: Vec<(&str, NewEntry)> = vec![
        ("title", base.clone().title("a\0b")),
        ("summary", base.clone().summary("\0")),
        (
            "body",
            base.clone().body(format!("{}\0", "x".repeat(10_000))),
        ),
        ("source title", base.clone().source(source("a\0", None))),
        (
            "source url",
            base.clone().source(source("a", Some("http://x/\0"))),
        ),
        ("link note", base.clone().link(Link::to("2").note("n\0"))),
        ("metadata key", base.clone().meta("k\0", json!(1))),
        ("metadata", base.clone().meta("owner", json!("a\0"))),
        (
            "\"o.deep\"",
            base.clone().meta("o", json!({"deep": ["ok", "bad\0"]})),
        ),
        ("tag", base.clone().tags(["t\0"])),
        ("entry id", note("k", "id\0", "t", "")),
    ];
    for (field, e) in cases {
        let err = s.upsert_entry(&e).await.unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidInput { .. }),
            "{field}: {err:?}"
        );
        assert!(err.to_string().contains(field), "{field}: {err}");
        // A batch with a clean entry first writes nothing.
        let batch = [note("k", "other", "t", ""), e];
        assert!(s.upsert_entries(&batch).await.is_err(), "{field}");
    }
    assert_eq!(s.count_entries(&Filter::new()).await?, 1);
    assert_eq!(
        s.get_entry(&EntryKey::new("k", "1")).await?.unwrap().title,
        "clean"
    );

    let key = EntryKey::new("k", "1");
    let err = s
        .cas_metadata(&key, "owner", None, &json!({"name": "a\0"}))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }), "{err:?}");
    assert!(s.get_entry(&key).await?.unwrap().metadata.is_empty());
    s.ensure_embedding_space(&space(2)).await?;
    let passages = [EntryPassages {
        key: key.clone(),
        passages: vec![PassageVector {
            text: Some("p\0".into()),
            vector: vec![1.0, 0.0],
        }],
    }];
    let err = s.put_passages(&passages).await.unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }), "{err:?}");
    assert!(s.get_passages(&key).await?.is_empty());
    let err = s
        .set_setting(&SettingScope::Global, "theme", &json!(["dark\0"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }), "{err:?}");
    assert_eq!(s.get_setting(&SettingScope::Global, "theme").await?, None);
    Ok(())
}

/// An upsert racing the deletion of its KB either lands before it (and goes with the
/// KB) or is `NotFound` (a reference to a missing KB, whichever check catches it): never
/// `Conflict`, `Backend`, or an entry left behind in a KB that no longer exists.
async fn writes_racing_the_deletion_of_their_kb_are_applied_or_not_found(s: S) -> Result<()> {
    for round in 0..4 {
        let name = format!("doomed{round}");
        kb(&s, &name).await?;
        let mut writers = Vec::new();
        for w in 0..8 {
            let (s, name) = (s.clone(), name.clone());
            writers.push(tokio::spawn(async move {
                for i in 0..5 {
                    let e = note(&name, &format!("w{w}-{i}"), "racing", "body");
                    match s.upsert_entries(&[e]).await {
                        Ok(_) => {}
                        Err(StorageError::NotFound { .. }) => return,
                        Err(other) => panic!("expected success or NotFound, got {other:?}"),
                    }
                }
            }));
        }
        tokio::task::yield_now().await;
        assert!(s.delete_kb(&name).await?);
        for w in writers {
            w.await.expect("writer");
        }
        let left = s.count_entries(&Filter::new().kb(name.as_str())).await?;
        assert!(
            s.get_kb(&name).await?.is_some() || left == 0,
            "{left} entries outlived their KB"
        );
    }
    Ok(())
}

/// Several writers creating the same new key at once: every write succeeds (an upsert is
/// never `AlreadyExists`), and the entry ends with exactly one writer's tags and links,
/// never a mixture.
async fn concurrent_first_writes_of_one_key_leave_exactly_one_writers_children(s: S) -> Result<()> {
    for round in 0..10 {
        // A KB per round, so the tag counts below see this round's entry only.
        let kb_name = format!("r{round}");
        kb(&s, &kb_name).await?;
        let mut writers = Vec::new();
        for w in 0..4 {
            let (s, kb_name) = (s.clone(), kb_name.clone());
            writers.push(tokio::spawn(async move {
                let e = note(&kb_name, "new", "racing", "body")
                    .tags([format!("w{w}"), format!("w{w}/x")])
                    .link(Link::to(format!("target{w}")));
                s.upsert_entries(&[e]).await
            }));
        }
        for w in writers {
            w.await.expect("writer")?;
        }
        let key = EntryKey::new(&kb_name, "new");
        let got = s.get_entry(&key).await?.expect("written");
        let w = got.tags[0].trim_start_matches('w').to_owned();
        assert_eq!(
            got.tags,
            [format!("w{w}"), format!("w{w}/x")],
            "round {round}"
        );
        let out = s.outlinks(&key).await?;
        let targets: Vec<&str> = out.iter().map(|l| l.target.as_str()).collect();
        assert_eq!(targets, [format!("target{w}")], "round {round}");
        let tags: Vec<String> = s
            .tags(Some(&kb_name))
            .await?
            .into_iter()
            .map(|t| t.tag)
            .collect();
        assert_eq!(
            tags,
            [format!("w{w}"), format!("w{w}/x")],
            "round {round}: the tag index holds exactly the winner's tags"
        );
    }
    Ok(())
}

/// An entry rewritten with its same text while it is being deleted: whichever wins, an
/// entry that exists afterwards is queued for embedding or embedded, never a row with no
/// vector and no queue item.
async fn a_rewrite_racing_the_deletion_of_its_entry_leaves_it_embeddable(s: S) -> Result<()> {
    kb(&s, "k").await?;
    for round in 0..20 {
        let id = format!("e{round}");
        let e = note("k", &id, "same text", "same body");
        s.upsert_entries(std::slice::from_ref(&e)).await?;
        let (s1, s2, key) = (s.clone(), s.clone(), e.key());
        let rewrite = tokio::spawn(async move { s1.upsert_entries(&[e]).await });
        let delete = tokio::spawn(async move { s2.delete_entry(&key).await });
        rewrite.await.expect("rewrite")?;
        delete.await.expect("delete")?;
    }
    let stats = s.queue_stats().await?;
    let live = s.count_entries(&Filter::new()).await?;
    assert_eq!(
        stats.pending + stats.in_progress,
        live,
        "every surviving entry (none has a vector) is queued"
    );
    Ok(())
}
