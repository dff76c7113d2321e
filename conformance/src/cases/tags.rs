//! Tags: counts per KB or overall, hierarchical prefixes.

use storage_core::*;

use crate::fixtures::*;

crate::area! {
    tags, __tags_cases:
    tags_with_counts_across_all_kbs,
    tags_of_one_kb,
    tags_with_prefix_follow_the_hierarchy,
    tag_counts_follow_rewrites_and_deletes,
    tags_are_kept_verbatim,
}

async fn tagged(s: &S) -> Result<()> {
    kb(s, "a").await?;
    kb(s, "b").await?;
    put(s, note("a", "1", "t", "").tags(["rust", "topic/ai"])).await?;
    put(s, note("a", "2", "t", "").tags(["rust", "topic"])).await?;
    put(s, note("a", "3", "t", "").tags(["topical"])).await?;
    put(s, note("b", "1", "t", "").tags(["rust", "topic/ai/llm"])).await?;
    Ok(())
}

fn pairs(v: &[TagCount]) -> Vec<(&str, u64)> {
    v.iter().map(|t| (t.tag.as_str(), t.count)).collect()
}

/// All tags with counts, ordered by count descending then tag.
async fn tags_with_counts_across_all_kbs(s: S) -> Result<()> {
    tagged(&s).await?;
    let t = s.tags(None).await?;
    assert_eq!(
        pairs(&t),
        [
            ("rust", 3),
            ("topic", 1),
            ("topic/ai", 1),
            ("topic/ai/llm", 1),
            ("topical", 1)
        ]
    );
    Ok(())
}

/// Tag counts can be restricted to one KB.
async fn tags_of_one_kb(s: S) -> Result<()> {
    tagged(&s).await?;
    assert_eq!(
        pairs(&s.tags(Some("b")).await?),
        [("rust", 1), ("topic/ai/llm", 1)]
    );
    assert!(s.tags(Some("missing")).await?.is_empty());
    Ok(())
}

/// A tag prefix lists the tag and its descendants, not longer words.
async fn tags_with_prefix_follow_the_hierarchy(s: S) -> Result<()> {
    tagged(&s).await?;
    assert_eq!(
        pairs(&s.tags_with_prefix(None, "topic").await?),
        [("topic", 1), ("topic/ai", 1), ("topic/ai/llm", 1)]
    );
    assert_eq!(
        pairs(&s.tags_with_prefix(Some("a"), "topic/ai").await?),
        [("topic/ai", 1)]
    );
    assert!(s.tags_with_prefix(None, "top").await?.is_empty());
    Ok(())
}

/// Tag counts follow re-upserts and deletes.
async fn tag_counts_follow_rewrites_and_deletes(s: S) -> Result<()> {
    tagged(&s).await?;
    put(&s, note("a", "1", "t", "").tags(["go"])).await?;
    s.delete_entry(&EntryKey::new("b", "1")).await?;
    assert_eq!(
        pairs(&s.tags(None).await?),
        [("go", 1), ("rust", 1), ("topic", 1), ("topical", 1)]
    );
    Ok(())
}

/// Tags are matched exactly as written: case and inner characters are kept.
async fn tags_are_kept_verbatim(s: S) -> Result<()> {
    kb(&s, "k").await?;
    put(&s, note("k", "1", "t", "").tags(["Rust", "c++", "a b"])).await?;
    assert_eq!(
        s.get_entry(&EntryKey::new("k", "1")).await?.unwrap().tags,
        ["Rust", "c++", "a b"]
    );
    assert_eq!(s.count_entries(&Filter::new().tag("Rust")).await?, 1);
    assert_eq!(s.count_entries(&Filter::new().tag("rust")).await?, 0);
    assert_eq!(s.count_entries(&Filter::new().tag("c++")).await?, 1);
    Ok(())
}
