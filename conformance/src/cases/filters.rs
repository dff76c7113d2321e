//! Filters, sorting and paging: one `Filter` selects the same entries everywhere.

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::json;
use storage_core::*;

use crate::fixtures::*;

crate::area! {
    filters, __filters_cases:
    filter_by_kb,
    filter_by_entry_type,
    filter_by_tags_requires_all,
    tag_prefix_respects_hierarchy_boundaries,
    filter_by_status,
    archived_entries_are_excluded_by_default,
    date_range_is_inclusive,
    inverted_date_range_is_invalid_input,
    filter_by_min_importance,
    path_prefix_matches_folders_only,
    metadata_equality_on_json_paths,
    invalid_metadata_path_is_invalid_input,
    combined_conditions_all_apply,
    every_sort_field_and_direction_orders_as_documented,
    undated_entries_sort_last,
    pagination_is_disjoint_and_complete,
    page_limits_are_enforced,
    list_and_count_agree_for_random_filters,
    offsets_beyond_the_maximum_are_invalid_input,
}

const FOLDERS: [Option<&str>; 5] = [
    Some("notes"),
    Some("notes/sub"),
    Some("notes-old"),
    Some("other"),
    None,
];
const TAG_SETS: [&[&str]; 5] = [
    &["topic"],
    &["topic/ai"],
    &["topic/ai/llm", "misc"],
    &["topical"],
    &[],
];

/// Thirty entries over two KBs with every filterable field varied.
pub async fn filter_corpus(s: &S) -> Result<Vec<Entry>> {
    kb(s, "a").await?;
    kb(s, "b").await?;
    let mut batch = Vec::new();
    for i in 0..30usize {
        let mut tags: Vec<&str> = TAG_SETS[i % 5].to_vec();
        if i % 4 == 0 {
            tags.push("all");
        }
        let mut e = NewEntry::new(["a", "b"][i % 2], format!("e{i:02}"))
            .entry_type(["note", "task", "decision"][i % 3])
            .title(["pear", "apple", "fig", "Zest"][i % 4])
            .body(format!("entry number {i}"))
            .tags(tags)
            .importance((i % 10) as i32)
            .meta("owner", json!(["ana", "bo"][i % 2]))
            .meta("n", json!(i % 3))
            .meta("nested", json!({"k": i % 2 == 0}));
        if let Some(st) = [None, Some("open"), Some("done")][(i / 2) % 3] {
            e = e.status(st);
        }
        if i % 7 == 0 {
            e = e.lifecycle(Lifecycle::Archived);
        }
        if i % 5 != 4 {
            e = e.date(date(2024, 1, 1 + i as u32));
        }
        if let Some(folder) = FOLDERS[i % 5] {
            e = e.source_path(format!("{folder}/{i}.md"));
        }
        batch.push(e);
    }
    s.upsert_entries(&batch).await
}

/// The reference meaning of a filter, written plainly in Rust.
pub fn reference_matches(f: &Filter, e: &Entry) -> bool {
    (f.kbs.is_empty() || f.kbs.contains(&e.kb))
        && (f.entry_types.is_empty() || f.entry_types.contains(&e.entry_type))
        && f.tags.iter().all(|t| e.tags.contains(t))
        && f.normalized_tag_prefix()
            .is_none_or(|p| e.tags.iter().any(|t| tag_matches_prefix(t, p)))
        && (f.statuses.is_empty() || e.status.as_ref().is_some_and(|s| f.statuses.contains(s)))
        && match f.lifecycle {
            LifecycleFilter::Active => e.lifecycle == Lifecycle::Active,
            LifecycleFilter::Archived => e.lifecycle == Lifecycle::Archived,
            LifecycleFilter::Any => true,
        }
        && f.date_from.is_none_or(|d| e.date.is_some_and(|x| x >= d))
        && f.date_to.is_none_or(|d| e.date.is_some_and(|x| x <= d))
        && f.min_importance.is_none_or(|m| e.importance >= m)
        && f.normalized_path_prefix().is_none_or(|p| {
            e.source_path
                .as_deref()
                .is_some_and(|sp| sp.starts_with(&format!("{p}/")))
        })
        && f.metadata.iter().all(|m| {
            let mut cur = Some(&serde_json::Value::Object(e.metadata.clone())).cloned();
            for seg in m.path.split('.') {
                cur = cur.and_then(|v| v.get(seg).cloned());
            }
            cur.as_ref() == Some(&m.value)
        })
}

/// The reference ordering of a sort, with the `(kb, id)` tiebreak.
pub fn reference_sort(sort: Sort, v: &mut [Entry]) {
    v.sort_by(|x, y| {
        use std::cmp::Ordering;
        let primary = match sort.field {
            SortField::Date => match (x.date, y.date) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => return Ordering::Greater.then(Ordering::Equal),
                (Some(_), None) => return Ordering::Less,
                (Some(a), Some(b)) => a.cmp(&b),
            },
            SortField::Title => x.title.as_bytes().cmp(y.title.as_bytes()),
            SortField::Importance => x.importance.cmp(&y.importance),
            SortField::Created => x.created_at.cmp(&y.created_at),
            SortField::Updated => x.updated_at.cmp(&y.updated_at),
        };
        let primary = if sort.order == SortOrder::Desc {
            primary.reverse()
        } else {
            primary
        };
        primary.then_with(|| (&x.kb, &x.id).cmp(&(&y.kb, &y.id)))
    });
}

async fn check(s: &S, all: &[Entry], f: Filter) -> Result<()> {
    let mut want: Vec<Entry> = all
        .iter()
        .filter(|e| reference_matches(&f, e))
        .cloned()
        .collect();
    reference_sort(f.sort, &mut want);
    let got = s.list_entries(&f).await?;
    assert_eq!(ids(&got), ids(&want), "list for {f:?}");
    assert_eq!(
        s.count_entries(&f).await?,
        want.len() as u64,
        "count for {f:?}"
    );
    Ok(())
}

/// A KB filter selects only that KB's entries (list and count agree).
async fn filter_by_kb(s: S) -> Result<()> {
    let all = filter_corpus(&s).await?;
    check(&s, &all, Filter::new().kb("a")).await?;
    check(&s, &all, Filter::new().kb("a").kb("b")).await?;
    check(&s, &all, Filter::new().kb("none")).await
}

/// An entry-type filter selects any of the listed types.
async fn filter_by_entry_type(s: S) -> Result<()> {
    let all = filter_corpus(&s).await?;
    check(&s, &all, Filter::new().entry_type("task")).await?;
    check(
        &s,
        &all,
        Filter::new().entry_type("task").entry_type("note"),
    )
    .await
}

/// Several tags mean "all of them".
async fn filter_by_tags_requires_all(s: S) -> Result<()> {
    let all = filter_corpus(&s).await?;
    check(&s, &all, Filter::new().tag("all")).await?;
    check(&s, &all, Filter::new().tag("all").tag("topic")).await?;
    let n = s
        .count_entries(
            &Filter::new()
                .tag("topic/ai/llm")
                .tag("misc")
                .lifecycle(LifecycleFilter::Any),
        )
        .await?;
    assert_eq!(n, 6);
    Ok(())
}

/// A tag prefix matches the tag and its descendants, never a longer word (`topic` ≠ `topical`).
async fn tag_prefix_respects_hierarchy_boundaries(s: S) -> Result<()> {
    let all = filter_corpus(&s).await?;
    for p in [
        "topic",
        "topic/",
        "topic/ai",
        "topic/ai/llm",
        "topica",
        "top",
    ] {
        check(
            &s,
            &all,
            Filter::new().tag_prefix(p).lifecycle(LifecycleFilter::Any),
        )
        .await?;
    }
    let got = s
        .list_entries(
            &Filter::new()
                .tag_prefix("topic")
                .lifecycle(LifecycleFilter::Any),
        )
        .await?;
    assert!(got.iter().all(|e| !e.tags.contains(&"topical".to_string())
        || e.tags
            .iter()
            .any(|t| t.starts_with("topic/") || t == "topic")));
    assert_eq!(got.len(), 18);
    assert_eq!(
        s.count_entries(
            &Filter::new()
                .tag_prefix("top")
                .lifecycle(LifecycleFilter::Any)
        )
        .await?,
        0
    );
    Ok(())
}

/// A status filter selects any of the listed statuses; entries without status never match.
async fn filter_by_status(s: S) -> Result<()> {
    let all = filter_corpus(&s).await?;
    check(&s, &all, Filter::new().status("open")).await?;
    check(&s, &all, Filter::new().status("open").status("done")).await
}

/// Archived entries are excluded by default and selectable explicitly.
async fn archived_entries_are_excluded_by_default(s: S) -> Result<()> {
    let all = filter_corpus(&s).await?;
    assert_eq!(s.count_entries(&Filter::new()).await?, 25);
    assert_eq!(
        s.count_entries(&Filter::new().lifecycle(LifecycleFilter::Archived))
            .await?,
        5
    );
    assert_eq!(
        s.count_entries(&Filter::new().lifecycle(LifecycleFilter::Any))
            .await?,
        30
    );
    check(&s, &all, Filter::new().lifecycle(LifecycleFilter::Archived)).await
}

/// Date bounds are inclusive at both ends; undated entries never match a bound.
async fn date_range_is_inclusive(s: S) -> Result<()> {
    let all = filter_corpus(&s).await?;
    let f = Filter::new()
        .date_range(Some(date(2024, 1, 3)), Some(date(2024, 1, 6)))
        .lifecycle(LifecycleFilter::Any);
    let got = s
        .list_entries(&f.clone().sort(SortField::Date, SortOrder::Asc))
        .await?;
    assert_eq!(ids(&got), ["e02", "e03", "e05"]);
    check(&s, &all, f).await?;
    check(
        &s,
        &all,
        Filter::new().date_range(Some(date(2024, 1, 20)), None),
    )
    .await?;
    check(
        &s,
        &all,
        Filter::new().date_range(None, Some(date(2024, 1, 2))),
    )
    .await
}

/// An inverted date range is `InvalidInput`.
async fn inverted_date_range_is_invalid_input(s: S) -> Result<()> {
    let f = Filter::new().date_range(Some(date(2024, 2, 1)), Some(date(2024, 1, 1)));
    assert!(matches!(
        s.list_entries(&f).await,
        Err(StorageError::InvalidInput { .. })
    ));
    assert!(matches!(
        s.count_entries(&f).await,
        Err(StorageError::InvalidInput { .. })
    ));
    Ok(())
}

/// Minimum importance is inclusive.
async fn filter_by_min_importance(s: S) -> Result<()> {
    let all = filter_corpus(&s).await?;
    check(&s, &all, Filter::new().min_importance(7)).await?;
    check(&s, &all, Filter::new().min_importance(0)).await?;
    check(&s, &all, Filter::new().min_importance(100)).await
}

/// A folder prefix selects files inside the folder, not sibling folders sharing a prefix.
async fn path_prefix_matches_folders_only(s: S) -> Result<()> {
    let all = filter_corpus(&s).await?;
    let any = LifecycleFilter::Any;
    // notes/ contains notes/*.md and notes/sub/*.md, never notes-old/.
    assert_eq!(
        s.count_entries(&Filter::new().path_prefix("notes").lifecycle(any))
            .await?,
        12
    );
    assert_eq!(
        s.count_entries(&Filter::new().path_prefix("notes/").lifecycle(any))
            .await?,
        12
    );
    assert_eq!(
        s.count_entries(&Filter::new().path_prefix("notes/sub").lifecycle(any))
            .await?,
        6
    );
    assert_eq!(
        s.count_entries(&Filter::new().path_prefix("note").lifecycle(any))
            .await?,
        0
    );
    check(&s, &all, Filter::new().path_prefix("notes-old")).await
}

/// Metadata equality compares JSON values at a dotted path, type included.
async fn metadata_equality_on_json_paths(s: S) -> Result<()> {
    let all = filter_corpus(&s).await?;
    check(&s, &all, Filter::new().metadata_eq("owner", json!("ana"))).await?;
    check(&s, &all, Filter::new().metadata_eq("n", json!(2))).await?;
    check(&s, &all, Filter::new().metadata_eq("nested.k", json!(true))).await?;
    // The string "2" is not the number 2.
    assert_eq!(
        s.count_entries(&Filter::new().metadata_eq("n", json!("2")))
            .await?,
        0
    );
    assert_eq!(
        s.count_entries(&Filter::new().metadata_eq("missing.path", json!(1)))
            .await?,
        0
    );
    Ok(())
}

/// Metadata paths outside `[A-Za-z0-9_.]` are rejected before reaching SQL.
async fn invalid_metadata_path_is_invalid_input(s: S) -> Result<()> {
    for bad in ["", "a..b", "a.b'", "$.x", "a b", "x') OR 1=1 --"] {
        let f = Filter::new().metadata_eq(bad, json!(1));
        assert!(
            matches!(
                s.count_entries(&f).await,
                Err(StorageError::InvalidInput { .. })
            ),
            "{bad:?}"
        );
    }
    Ok(())
}

/// Several conditions combine with AND.
async fn combined_conditions_all_apply(s: S) -> Result<()> {
    let all = filter_corpus(&s).await?;
    let f = Filter::new()
        .kb("a")
        .entry_type("note")
        .tag_prefix("topic")
        .min_importance(2)
        .lifecycle(LifecycleFilter::Any)
        .date_range(Some(date(2024, 1, 2)), None);
    check(&s, &all, f).await
}

/// Each sort field orders as documented, ascending and descending, with the key tiebreak.
async fn every_sort_field_and_direction_orders_as_documented(s: S) -> Result<()> {
    let all = filter_corpus(&s).await?;
    for field in [
        SortField::Title,
        SortField::Date,
        SortField::Importance,
        SortField::Created,
        SortField::Updated,
    ] {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            check(
                &s,
                &all,
                Filter::new()
                    .lifecycle(LifecycleFilter::Any)
                    .sort(field, order),
            )
            .await?;
        }
    }
    Ok(())
}

/// Entries without a date sort after dated ones, in both directions.
async fn undated_entries_sort_last(s: S) -> Result<()> {
    filter_corpus(&s).await?;
    for order in [SortOrder::Asc, SortOrder::Desc] {
        let got = s
            .list_entries(
                &Filter::new()
                    .lifecycle(LifecycleFilter::Any)
                    .sort(SortField::Date, order),
            )
            .await?;
        let first_undated = got.iter().position(|e| e.date.is_none()).unwrap();
        assert!(
            got[first_undated..].iter().all(|e| e.date.is_none()),
            "{order:?}"
        );
        assert_eq!(got.len() - first_undated, 6);
    }
    Ok(())
}

/// Pages of any size are disjoint and together give the whole sorted list.
async fn pagination_is_disjoint_and_complete(s: S) -> Result<()> {
    filter_corpus(&s).await?;
    for field in [SortField::Title, SortField::Updated, SortField::Date] {
        let base = Filter::new()
            .lifecycle(LifecycleFilter::Any)
            .sort(field, SortOrder::Asc);
        let full = ids(&s.list_entries(&base).await?);
        assert_eq!(full.len(), 30);
        for size in [1, 7, 30] {
            let mut paged = Vec::new();
            let mut offset = 0;
            loop {
                let page = s
                    .list_entries(&base.clone().limit(size).offset(offset))
                    .await?;
                if page.is_empty() {
                    break;
                }
                assert!(page.len() <= size);
                paged.extend(ids(&page));
                offset += size;
            }
            assert_eq!(paged, full, "{field:?} size {size}");
        }
    }
    Ok(())
}

/// A page larger than the maximum is `InvalidInput`; an offset past the end is empty.
async fn page_limits_are_enforced(s: S) -> Result<()> {
    filter_corpus(&s).await?;
    let err = s
        .list_entries(&Filter::new().limit(MAX_PAGE_SIZE + 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }));
    assert!(s
        .list_entries(&Filter::new().offset(1000))
        .await?
        .is_empty());
    assert_eq!(s.list_entries(&Filter::new().limit(0)).await?.len(), 0);
    Ok(())
}

/// For random filters, list, count and the reference definition agree.
async fn list_and_count_agree_for_random_filters(s: S) -> Result<()> {
    let all = filter_corpus(&s).await?;
    let strategy = (
        proptest::option::of(proptest::sample::select(vec!["a", "b"])),
        proptest::option::of(proptest::sample::select(vec!["note", "task", "decision"])),
        proptest::option::of(proptest::sample::select(vec![
            "all", "topic", "misc", "topical",
        ])),
        proptest::option::of(proptest::sample::select(vec!["topic", "topic/ai", "top"])),
        proptest::option::of(proptest::sample::select(vec!["open", "done"])),
        proptest::sample::select(vec![
            LifecycleFilter::Active,
            LifecycleFilter::Archived,
            LifecycleFilter::Any,
        ]),
        proptest::option::of(1u32..30),
        proptest::option::of(0i32..10),
        proptest::option::of(proptest::sample::select(vec![
            "notes",
            "notes/sub",
            "other",
        ])),
        proptest::option::of(proptest::sample::select(vec![json!("ana"), json!("bo")])),
    );
    let mut runner = TestRunner::deterministic();
    for _ in 0..60 {
        let (kb, ty, tag, prefix, status, life, day, imp, path, owner) =
            strategy.new_tree(&mut runner).expect("value").current();
        let mut f = Filter::new().lifecycle(life);
        if let Some(v) = kb {
            f = f.kb(v);
        }
        if let Some(v) = ty {
            f = f.entry_type(v);
        }
        if let Some(v) = tag {
            f = f.tag(v);
        }
        if let Some(v) = prefix {
            f = f.tag_prefix(v);
        }
        if let Some(v) = status {
            f = f.status(v);
        }
        if let Some(d) = day {
            f = f.date_range(Some(date(2024, 1, d)), None);
        }
        if let Some(v) = imp {
            f = f.min_importance(v);
        }
        if let Some(v) = path {
            f = f.path_prefix(v);
        }
        if let Some(v) = owner {
            f = f.metadata_eq("owner", v);
        }
        check(&s, &all, f).await?;
    }
    Ok(())
}

/// An offset above `MAX_OFFSET` is `InvalidInput` naming the offset in every paged call,
/// never an engine error or an overflow; `MAX_OFFSET` itself is an empty page.
async fn offsets_beyond_the_maximum_are_invalid_input(s: S) -> Result<()> {
    filter_corpus(&s).await?;
    // Every entry's body has this word, so a search has hits to rank.
    let word = "entry";
    for offset in [MAX_OFFSET + 1, i64::MAX as usize, usize::MAX] {
        let f = Filter::new().offset(offset);
        for (call, res) in [
            ("list", s.list_entries(&f).await.map(|_| ())),
            ("timeline", s.timeline(&f).await.map(|_| ())),
            ("search", s.search(word, &f).await.map(|_| ())),
        ] {
            let err = res.unwrap_err();
            assert!(
                matches!(err, StorageError::InvalidInput { .. }),
                "{call}: {err:?}"
            );
            assert!(err.to_string().contains("offset"), "{call}: {err}");
        }
    }
    let f = Filter::new().offset(MAX_OFFSET);
    assert!(s.list_entries(&f).await?.is_empty());
    assert!(s.timeline(&f).await?.is_empty());
    assert!(s.search(word, &f).await?.is_empty());
    Ok(())
}
