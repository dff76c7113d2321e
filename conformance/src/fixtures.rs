//! Small builders shared by the cases.

use std::sync::Arc;

use chrono::NaiveDate;
use storage_core::{EmbeddingSpace, Entry, NewEntry, NewKnowledgeBase, Result, Store, StoreExt};

pub type S = Arc<dyn Store>;

/// Creates a persistent KB.
pub async fn kb(s: &S, name: &str) -> Result<()> {
    s.create_kb(&NewKnowledgeBase::persistent(name))
        .await
        .map(|_| ())
}

/// An entry with a title and body.
pub fn note(kb: &str, id: &str, title: &str, body: &str) -> NewEntry {
    NewEntry::new(kb, id).title(title).body(body)
}

pub async fn put(s: &S, e: NewEntry) -> Result<Entry> {
    s.upsert_entry(&e).await
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// Ids of entries, in order.
pub fn ids(entries: &[Entry]) -> Vec<String> {
    entries.iter().map(|e| e.id.clone()).collect()
}

/// Sorted ids.
pub fn id_set<'a>(it: impl IntoIterator<Item = &'a Entry>) -> Vec<String> {
    let mut v: Vec<String> = it.into_iter().map(|e| e.id.clone()).collect();
    v.sort();
    v
}

pub fn space(dim: usize) -> EmbeddingSpace {
    EmbeddingSpace::new("conformance-model", dim)
}

/// The small fixed corpus used by the query-operator cases, in KB `food`.
pub async fn food_corpus(s: &S) -> Result<()> {
    kb(s, "food").await?;
    let items = [
        (
            "a",
            "Apple pie recipe",
            "Bake the apple pie with cinnamon and sugar.",
        ),
        (
            "b",
            "Banana bread",
            "Banana bread with walnuts and cinnamon.",
        ),
        (
            "c",
            "Apple and banana smoothie",
            "Blend apple, banana and yogurt.",
        ),
        ("d", "Cherry tart", "A tart with cherries and almond cream."),
        ("e", "Walnut cake", "Cake with walnuts, no fruit at all."),
    ];
    let entries: Vec<NewEntry> = items
        .iter()
        .map(|(id, t, b)| note("food", id, t, b))
        .collect();
    s.upsert_entries(&entries).await.map(|_| ())
}

/// Sorted ids of the entries a query finds in `food`.
pub async fn found(s: &S, q: &str) -> Result<Vec<String>> {
    let hits = s.search(q, &storage_core::Filter::new().kb("food")).await?;
    Ok(id_set(hits.iter().map(|h| &h.entry)))
}
