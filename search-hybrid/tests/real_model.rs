//! Done-means test of the search layer: real sentences embedded by the local
//! all-MiniLM-L6-v2 through the embedding worker; a paraphrase that shares no words with
//! its target is found first in semantic and hybrid mode, on both backends.
//! Skipped with a message when the model is not installed, unless KB_REQUIRE_MODEL=1
//! (`cargo xtask ci` fetches the model and sets it).

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

// The store openers and `on_both_backends!` are shared with the embed crate's tests.
#[path = "../../embed/tests/common/mod.rs"]
mod common;

use std::sync::{Arc, OnceLock};

use embed::{default_model_dir, EmbedError, EmbedWorker, Embedder, LocalEmbedder, WorkerConfig};
use search_hybrid::*;
use storage_core::*;

type S = Arc<dyn Store>;

fn model() -> Option<Arc<dyn Embedder>> {
    static MODEL: OnceLock<Option<LocalEmbedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| match LocalEmbedder::load(default_model_dir()) {
            Ok(m) => Some(m),
            Err(EmbedError::ModelMissing { dir })
                if std::env::var("KB_REQUIRE_MODEL").as_deref() != Ok("1") =>
            {
                eprintln!(
                    "skipping: no model at {} (run `cargo xtask fetch-model`)",
                    dir.display()
                );
                None
            }
            Err(e) => panic!("{e}"),
        })
        .clone()
        .map(|m| Arc::new(m) as Arc<dyn Embedder>)
}

const DOCS: [(&str, &str); 8] = [
    (
        "reset",
        "Resetting a forgotten password: open the sign-in page, choose Forgot password and follow the link we email you.",
    ),
    ("rules", "Password rules: at least twelve characters, including a number."),
    (
        "puppy",
        "Puppies need food made for growing dogs, served in three or four small meals a day.",
    ),
    ("sit", "Teaching a dog to sit takes a few minutes of practice with treats."),
    ("shares", "Share prices dropped steeply in today's trading session."),
    ("weather", "Rain is expected tomorrow with strong winds along the coast."),
    ("office", "Our office is closed on public holidays."),
    ("cats", "Cats sleep for most of the day and hunt at dusk."),
];

async fn embedded_corpus(s: &S, m: Arc<dyn Embedder>) {
    s.create_kb(&NewKnowledgeBase::persistent("real"))
        .await
        .unwrap();
    let entries: Vec<NewEntry> = DOCS
        .iter()
        .map(|(id, text)| NewEntry::new("real", *id).body(*text))
        .collect();
    s.upsert_entries(&entries).await.unwrap();
    let w = EmbedWorker::new(s.clone(), m, WorkerConfig::default())
        .await
        .unwrap();
    assert_eq!(w.drain().await.unwrap().embedded, DOCS.len() as u64);
}

async fn paraphrases_are_found_first(s: S) {
    let Some(m) = model() else { return };
    embedded_corpus(&s, m.clone()).await;
    let sr = Searcher::new(s.clone(), m, SearchConfig::default())
        .await
        .unwrap();
    let cases = [
        (
            "How do I get back into my account when I cannot remember my login?",
            "reset",
        ),
        ("What should a young pup eat?", "puppy"),
        ("The stock market fell sharply", "shares"),
        ("forgot password", "reset"),
    ];
    for (query, want) in cases {
        for mode in [SearchMode::Semantic, SearchMode::Hybrid] {
            let r = sr
                .search(&SearchRequest::new(query, mode).filter(Filter::new().limit(3)))
                .await
                .unwrap();
            assert_eq!(r.degraded, None);
            assert_eq!(
                r.hits.first().map(|h| h.entry.id.as_str()),
                Some(want),
                "{mode:?} {query:?}: {:?}",
                r.hits
                    .iter()
                    .map(|h| (&h.entry.id, h.score))
                    .collect::<Vec<_>>()
            );
            let top = &r.hits[0];
            assert!(top
                .snippet
                .text
                .contains(&DOCS.iter().find(|d| d.0 == want).unwrap().1[..20]));
        }
    }
    // "forgot password" also matches by keyword, so hybrid fused both legs for it.
    let r = sr
        .search(&SearchRequest::new("forgot password", SearchMode::Hybrid))
        .await
        .unwrap();
    assert!(r.hits[0].explanation.keyword.is_some() && r.hits[0].explanation.semantic.is_some());
}

on_both_backends!(paraphrases_are_found_first);
