//! Links and the graph: outlinks, backlinks, neighbourhoods, most-linked, orphans.

use storage_core::*;

use crate::fixtures::*;

crate::area! {
    graph, __graph_cases:
    outlinks_keep_written_order,
    links_to_missing_targets_are_kept,
    backlinks_carry_relation_and_note,
    cross_kb_links_resolve,
    deleting_entries_updates_links,
    neighbourhood_depth_one_and_zero,
    neighbourhood_depth_two_includes_missing_targets,
    neighbourhood_node_limit_truncates,
    neighbourhood_kb_filter,
    neighbourhood_of_missing_entry_is_not_found,
    most_linked_counts_distinct_sources,
    orphans_have_no_links,
    most_linked_with_a_huge_limit_returns_all,
}

fn key(id: &str) -> EntryKey {
    EntryKey::new("g", id)
}

/// a → b → c → d, a → e, f → a (relation "cites"), b → missing, plus an isolated x.
async fn chain(s: &S) -> Result<()> {
    kb(s, "g").await?;
    let batch = vec![
        note("g", "a", "A", "")
            .link(Link::to("b"))
            .link(Link::to("e").relation("see_also")),
        note("g", "b", "B", "")
            .link(Link::to("c"))
            .link(Link::to("missing")),
        note("g", "c", "C", "").link(Link::to("d")),
        note("g", "d", "D", ""),
        note("g", "e", "E", ""),
        note("g", "f", "F", "").link(Link::to("a").relation("cites").note("intro")),
        note("g", "x", "X", ""),
    ];
    s.upsert_entries(&batch).await.map(|_| ())
}

fn node_ids(g: &Graph) -> Vec<(String, u32)> {
    g.nodes
        .iter()
        .map(|n| (n.key.id.clone(), n.depth))
        .collect()
}

/// Outlinks come back in written order with relation and note.
async fn outlinks_keep_written_order(s: S) -> Result<()> {
    chain(&s).await?;
    let out = s.outlinks(&key("a")).await?;
    assert_eq!(out, vec![Link::to("b"), Link::to("e").relation("see_also")]);
    assert!(s.outlinks(&key("nobody")).await?.is_empty());
    Ok(())
}

/// A link may point at an entry that does not exist yet; it resolves once the entry exists.
async fn links_to_missing_targets_are_kept(s: S) -> Result<()> {
    chain(&s).await?;
    let back = s.backlinks(&key("missing")).await?;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].source, key("b"));
    put(&s, note("g", "missing", "Now here", "")).await?;
    assert_eq!(s.backlinks(&key("missing")).await?.len(), 1);
    Ok(())
}

/// Backlinks list sources with relation and note, ordered by source key.
async fn backlinks_carry_relation_and_note(s: S) -> Result<()> {
    chain(&s).await?;
    put(&s, note("g", "z", "Z", "").link(Link::to("a"))).await?;
    let back = s.backlinks(&key("a")).await?;
    assert_eq!(
        back,
        vec![
            Backlink {
                source: key("f"),
                relation: "cites".into(),
                note: Some("intro".into())
            },
            Backlink {
                source: key("z"),
                relation: "related".into(),
                note: None
            },
        ]
    );
    Ok(())
}

/// Links across KBs resolve to the target KB's entry.
async fn cross_kb_links_resolve(s: S) -> Result<()> {
    kb(&s, "one").await?;
    kb(&s, "two").await?;
    put(&s, note("two", "t", "target", "")).await?;
    put(
        &s,
        note("one", "s", "source", "").link(Link::to("t").in_kb("two")),
    )
    .await?;
    assert_eq!(
        s.backlinks(&EntryKey::new("two", "t")).await?[0].source,
        EntryKey::new("one", "s")
    );
    assert!(s.backlinks(&EntryKey::new("one", "t")).await?.is_empty());
    let top = s.most_linked(Some("two"), 10).await?;
    assert_eq!(
        top,
        vec![LinkCount {
            key: EntryKey::new("two", "t"),
            count: 1
        }]
    );
    Ok(())
}

/// Deleting the source removes its links; deleting a target leaves incoming links dangling.
async fn deleting_entries_updates_links(s: S) -> Result<()> {
    chain(&s).await?;
    s.delete_entry(&key("f")).await?;
    assert!(s.backlinks(&key("a")).await?.is_empty());
    s.delete_entry(&key("c")).await?;
    assert_eq!(s.backlinks(&key("c")).await?.len(), 1);
    Ok(())
}

/// Depth 1 returns the start and its direct neighbours both ways; depth 0 only the start.
async fn neighbourhood_depth_one_and_zero(s: S) -> Result<()> {
    chain(&s).await?;
    let g = s.neighbourhood(&GraphQuery::new(key("a"), 1)).await?;
    assert_eq!(
        node_ids(&g),
        [
            ("a".into(), 0),
            ("b".into(), 1),
            ("e".into(), 1),
            ("f".into(), 1)
        ]
    );
    assert_eq!(g.edges.len(), 3);
    assert!(!g.truncated);
    let g0 = s.neighbourhood(&GraphQuery::new(key("a"), 0)).await?;
    assert_eq!(node_ids(&g0), [("a".into(), 0)]);
    assert!(g0.edges.is_empty());
    Ok(())
}

/// Deeper BFS reaches further nodes; missing targets appear with no title.
async fn neighbourhood_depth_two_includes_missing_targets(s: S) -> Result<()> {
    chain(&s).await?;
    let mut q = GraphQuery::new(key("a"), 2);
    q.include_backlinks = false;
    let g = s.neighbourhood(&q).await?;
    assert_eq!(
        node_ids(&g),
        [
            ("a".into(), 0),
            ("b".into(), 1),
            ("e".into(), 1),
            ("c".into(), 2),
            ("missing".into(), 2)
        ]
    );
    let missing = g.nodes.iter().find(|n| n.key.id == "missing").unwrap();
    assert_eq!(missing.title, None);
    assert_eq!(g.nodes[0].title.as_deref(), Some("A"));
    let edge_pairs: Vec<(String, String)> = g
        .edges
        .iter()
        .map(|e| (e.source.id.clone(), e.target.id.clone()))
        .collect();
    assert_eq!(
        edge_pairs,
        [
            ("a".into(), "b".into()),
            ("a".into(), "e".into()),
            ("b".into(), "c".into()),
            ("b".into(), "missing".into())
        ]
    );
    Ok(())
}

/// The node limit truncates the neighbourhood and says so; edges only join returned nodes.
async fn neighbourhood_node_limit_truncates(s: S) -> Result<()> {
    chain(&s).await?;
    let mut q = GraphQuery::new(key("a"), 5);
    q.max_nodes = 3;
    let g = s.neighbourhood(&q).await?;
    assert_eq!(g.nodes.len(), 3);
    assert!(g.truncated);
    let in_graph = |k: &EntryKey| g.nodes.iter().any(|n| &n.key == k);
    assert!(g
        .edges
        .iter()
        .all(|e| in_graph(&e.source) && in_graph(&e.target)));
    Ok(())
}

/// A KB filter keeps the walk inside the listed KBs.
async fn neighbourhood_kb_filter(s: S) -> Result<()> {
    kb(&s, "one").await?;
    kb(&s, "two").await?;
    put(&s, note("two", "t", "T", "")).await?;
    put(&s, note("one", "u", "U", "")).await?;
    put(
        &s,
        note("one", "s", "S", "")
            .link(Link::to("t").in_kb("two"))
            .link(Link::to("u")),
    )
    .await?;
    let mut q = GraphQuery::new(EntryKey::new("one", "s"), 2);
    q.kbs = vec!["one".into()];
    let g = s.neighbourhood(&q).await?;
    assert_eq!(
        g.nodes
            .iter()
            .map(|n| n.key.to_string())
            .collect::<Vec<_>>(),
        ["one/s", "one/u"]
    );
    q.kbs.clear();
    assert_eq!(s.neighbourhood(&q).await?.nodes.len(), 3);
    Ok(())
}

/// A neighbourhood around a missing entry is `NotFound`.
async fn neighbourhood_of_missing_entry_is_not_found(s: S) -> Result<()> {
    kb(&s, "g").await?;
    let err = s
        .neighbourhood(&GraphQuery::new(key("nope"), 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }));
    Ok(())
}

/// Most-linked counts distinct linking entries, ignores self-links and missing targets.
async fn most_linked_counts_distinct_sources(s: S) -> Result<()> {
    chain(&s).await?;
    put(
        &s,
        note("g", "y", "Y", "")
            .link(Link::to("b"))
            .link(Link::to("b").relation("again")),
    )
    .await?;
    put(&s, note("g", "self", "S", "").link(Link::to("self"))).await?;
    let top = s.most_linked(Some("g"), 2).await?;
    assert_eq!(
        top[0],
        LinkCount {
            key: key("b"),
            count: 2
        }
    );
    assert_eq!(top[1].count, 1);
    assert_eq!(top[1].key, key("a"));
    assert!(s
        .most_linked(None, 100)
        .await?
        .iter()
        .all(|l| l.key.id != "missing" && l.key.id != "self"));
    Ok(())
}

/// Orphans are active entries with no links in or out.
async fn orphans_have_no_links(s: S) -> Result<()> {
    chain(&s).await?;
    put(
        &s,
        note("g", "lonely-archived", "L", "").lifecycle(Lifecycle::Archived),
    )
    .await?;
    let o = s.orphans(Some("g")).await?;
    assert_eq!(o, vec![key("x")]);
    s.delete_entry(&key("c")).await?;
    assert_eq!(s.orphans(None).await?, vec![key("d"), key("x")]);
    Ok(())
}

/// `most_linked` with `limit = usize::MAX` returns every linked entry (clamped, not
/// wrapped to a negative LIMIT).
async fn most_linked_with_a_huge_limit_returns_all(s: S) -> Result<()> {
    kb(&s, "g").await?;
    put(&s, note("g", "a", "a", "").link(Link::to("b"))).await?;
    put(&s, note("g", "b", "b", "").link(Link::to("c"))).await?;
    put(&s, note("g", "c", "c", "")).await?;
    let top = s.most_linked(Some("g"), usize::MAX).await?;
    let mut got: Vec<&str> = top.iter().map(|l| l.key.id.as_str()).collect();
    got.sort();
    assert_eq!(got, ["b", "c"]);
    Ok(())
}
