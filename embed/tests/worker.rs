//! The embedding worker on both backends: draining, passages, retries and giving up,
//! resuming after a crash, and several workers never embedding one entry twice.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

mod common;
#[path = "common/faulty.rs"]
mod faulty;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use embed::{EmbedError, EmbedWorker, Embedder, HashingEmbedder, WorkerConfig};
use storage_core::*;

type S = Arc<dyn Store>;

/// Hashing vectors, recording every text embedded; texts containing "poison" fail
/// permanently, and the first `outage` calls fail as if the provider were down.
#[derive(Debug)]
struct TestEmbedder {
    inner: HashingEmbedder,
    seen: Mutex<Vec<String>>,
    outage: Mutex<usize>,
}

impl TestEmbedder {
    fn new(outage: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: HashingEmbedder::new(32).with_max_tokens(16),
            seen: Mutex::default(),
            outage: Mutex::new(outage),
        })
    }
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl Embedder for TestEmbedder {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }
    fn dimension(&self) -> usize {
        self.inner.dimension()
    }
    fn max_input_tokens(&self) -> usize {
        self.inner.max_input_tokens()
    }
    fn count_tokens(&self, text: &str) -> usize {
        self.inner.count_tokens(text)
    }
    async fn embed(&self, texts: &[String]) -> embed::Result<Vec<Vec<f32>>> {
        {
            let mut outage = self.outage.lock().unwrap();
            if *outage > 0 {
                *outage -= 1;
                return Err(EmbedError::Http {
                    url: "http://provider".into(),
                    status: 503,
                    message: "down".into(),
                });
            }
        }
        if texts.iter().any(|t| t.contains("poison")) {
            return Err(EmbedError::InvalidResponse {
                message: "the provider rejects poison".into(),
            });
        }
        // Yield so concurrent workers interleave.
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.seen.lock().unwrap().extend(texts.iter().cloned());
        self.inner.embed(texts).await
    }
}

fn fast_config(id: &str) -> WorkerConfig {
    WorkerConfig {
        worker_id: id.into(),
        batch_size: 4,
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_attempts: 3,
        ..WorkerConfig::default()
    }
}

async fn entries(s: &S, n: usize) {
    s.create_kb(&NewKnowledgeBase::persistent("w"))
        .await
        .unwrap();
    let batch: Vec<NewEntry> = (0..n)
        .map(|i| {
            NewEntry::new("w", format!("e{i:03}"))
                .title(format!("entry {i}"))
                .body(format!("body of entry number {i}"))
        })
        .collect();
    s.upsert_entries(&batch).await.unwrap();
}

async fn drains_the_queue_into_passages(s: S) {
    entries(&s, 10).await;
    let long: String = (0..30)
        .map(|i| format!("Sentence {i} talks about storage."))
        .collect::<Vec<_>>()
        .join(" ");
    s.upsert_entry(&NewEntry::new("w", "long").title("Long").body(&long))
        .await
        .unwrap();
    let e = TestEmbedder::new(0);
    let w = EmbedWorker::new(s.clone(), e.clone(), fast_config("w1"))
        .await
        .unwrap();
    let stats = w.drain().await.unwrap();
    assert_eq!(stats.embedded, 11);
    assert!(stats.passages > 11, "the long entry has several passages");
    let q = s.queue_stats().await.unwrap();
    assert_eq!((q.pending, q.in_progress, q.failed), (0, 0, 0));
    let cov = s.vector_coverage(&Filter::new()).await.unwrap();
    assert_eq!((cov.with_vector, cov.without_vector), (11, 0));
    let passages = s.get_passages(&EntryKey::new("w", "long")).await.unwrap();
    assert!(passages.len() > 1);
    let full = embeddable_text("Long", "", &long);
    for p in &passages {
        let t = p.text.as_deref().unwrap();
        assert!(full.contains(t), "passage is a substring: {t:?}");
        assert!(e.inner.count_tokens(t) <= 16, "fits the window: {t:?}");
    }
    let p = w.progress();
    assert_eq!((p.done, p.remaining, p.total), (11, 0, 11));
    assert!(p.rate_per_sec > 0.0);
    // The long entry is found by a passage in its middle, and the hit carries it.
    let q = e.inner.embed_text("Sentence 17 talks about storage.");
    let hits = s.semantic_search(&SemanticQuery::new(q, 1)).await.unwrap();
    assert_eq!(hits[0].entry.id, "long");
    assert!(hits[0].passage > 0);
    assert!(hits[0]
        .passage_text
        .as_deref()
        .unwrap()
        .contains("Sentence 17"));
}

async fn failures_are_retried_then_given_up_with_the_error_kept(s: S) {
    entries(&s, 5).await;
    s.upsert_entry(&NewEntry::new("w", "bad").title("poison pill"))
        .await
        .unwrap();
    let e = TestEmbedder::new(0);
    let w = EmbedWorker::new(s.clone(), e.clone(), fast_config("w1"))
        .await
        .unwrap();
    let stats = w.drain().await.unwrap();
    assert_eq!(stats.embedded, 5, "one bad input does not block its batch");
    assert_eq!(stats.gave_up, 1);
    assert_eq!(
        stats.retrying, 2,
        "max_attempts 3: two retries, then gave up"
    );
    let failed = s.failed_embeddings().await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].key, EntryKey::new("w", "bad"));
    assert!(
        failed[0].last_error.contains("rejects poison"),
        "{:?}",
        failed[0]
    );
    assert_eq!(w.progress().gave_up, 1);
}

async fn a_provider_outage_is_waited_out(s: S) {
    entries(&s, 6).await;
    // Two failing calls: each costs the batch one attempt (of 3) and a backoff.
    let e = TestEmbedder::new(2);
    let w = EmbedWorker::new(s.clone(), e.clone(), fast_config("w1"))
        .await
        .unwrap();
    let stats = w.drain().await.unwrap();
    assert_eq!(stats.embedded, 6);
    assert_eq!(stats.gave_up, 0);
    assert!(stats.retrying >= 4, "{stats:?}");
    assert_eq!(s.queue_stats().await.unwrap().pending, 0);
}

async fn work_of_a_crashed_worker_is_resumed(s: S) {
    entries(&s, 6).await;
    // A worker claims a batch with a short lease and dies without completing it.
    let claimed = s
        .claim_embedding_batch("crashed", 4, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    let e = TestEmbedder::new(0);
    let w = EmbedWorker::new(s.clone(), e.clone(), fast_config("w2"))
        .await
        .unwrap();
    assert_eq!(
        w.drain().await.unwrap().embedded,
        2,
        "leased items are not taken"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        w.drain().await.unwrap().embedded,
        4,
        "expired leases are resumed"
    );
    assert_eq!(
        s.vector_coverage(&Filter::new())
            .await
            .unwrap()
            .without_vector,
        0
    );
}

async fn concurrent_workers_never_embed_an_entry_twice(s: S) {
    entries(&s, 40).await;
    let e = TestEmbedder::new(0);
    let mut handles = Vec::new();
    for i in 0..3 {
        let w = EmbedWorker::new(s.clone(), e.clone(), fast_config(&format!("w{i}")))
            .await
            .unwrap();
        handles.push(tokio::spawn(async move { w.drain().await.unwrap() }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap().embedded;
    }
    assert_eq!(total, 40);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in e.seen() {
        *counts.entry(t).or_default() += 1;
    }
    assert_eq!(counts.len(), 40);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

async fn a_store_of_another_model_refuses_the_worker(s: S) {
    s.ensure_embedding_space(&EmbeddingSpace::new("other-model", 32))
        .await
        .unwrap();
    let err = EmbedWorker::new(s.clone(), TestEmbedder::new(0), WorkerConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::ModelMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("other-model") && msg.contains("hashing-32"),
        "{msg}"
    );
}

async fn run_stops_on_shutdown(s: S) {
    entries(&s, 3).await;
    let w = EmbedWorker::new(
        s.clone(),
        TestEmbedder::new(0),
        WorkerConfig {
            idle_poll: Duration::from_millis(10),
            ..fast_config("w1")
        },
    )
    .await
    .unwrap();
    let stats = w
        .run(tokio::time::sleep(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(stats.embedded, 3);
    // An entry written while the worker runs is embedded without a restart.
    let w2 = w.clone();
    let s2 = s.clone();
    let task =
        tokio::spawn(async move { w2.run(tokio::time::sleep(Duration::from_millis(500))).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    s2.upsert_entry(&NewEntry::new("w", "late").title("late entry"))
        .await
        .unwrap();
    assert_eq!(task.await.unwrap().unwrap().embedded, 1);
}

/// A database outage (every store call of the worker failing as during a restart) does
/// not end a running worker: it waits, and embeds everything once the store is back.
async fn a_running_worker_outlives_a_database_outage(s: S) {
    entries(&s, 6).await;
    let store = faulty::Faulty::new(s.clone());
    let w = EmbedWorker::new(
        store.clone(),
        TestEmbedder::new(0),
        WorkerConfig {
            idle_poll: Duration::from_millis(10),
            // What a failed write held comes back when the lease ends.
            lease: Duration::from_millis(200),
            ..fast_config("w1")
        },
    )
    .await
    .unwrap();
    store.fail_next("claim_embedding_batch", 3, faulty::unavailable);
    store.fail_next("complete_with_passages", 2, faulty::unavailable);
    store.fail_next("queue_stats", 2, faulty::unavailable);
    let stats = w
        .run(tokio::time::sleep(Duration::from_millis(1500)))
        .await
        .expect("a retryable store error does not end `run`");
    assert_eq!(
        store.pending("claim_embedding_batch"),
        0,
        "the outage happened"
    );
    assert_eq!(
        store.pending("complete_with_passages"),
        0,
        "the outage happened"
    );
    assert_eq!(stats.embedded, 6, "{stats:?}");
    assert_eq!(s.queue_stats().await.unwrap().pending, 0);
    let covered = s.vector_coverage(&Filter::new()).await.unwrap();
    assert_eq!(covered.with_vector, 6);
}

/// A batch whose write failed in an outage is retried once the store is back, by the
/// worker that holds its claims, without waiting for the lease (10 minutes by default)
/// to end.
async fn a_batch_cut_by_an_outage_is_retried_without_waiting_for_its_lease(s: S) {
    entries(&s, 4).await;
    let store = faulty::Faulty::new(s.clone());
    let w = EmbedWorker::new(
        store.clone(),
        TestEmbedder::new(0),
        WorkerConfig {
            idle_poll: Duration::from_millis(10),
            ..fast_config("w1")
        },
    )
    .await
    .unwrap();
    store.fail_next("complete_with_passages", 2, faulty::unavailable);
    let stats = w
        .run(tokio::time::sleep(Duration::from_millis(800)))
        .await
        .unwrap();
    assert_eq!(
        store.pending("complete_with_passages"),
        0,
        "the outage happened"
    );
    assert_eq!(stats.embedded, 4, "{stats:?}");
    let q = s.queue_stats().await.unwrap();
    assert_eq!((q.pending, q.in_progress), (0, 0), "{q:?}");
}

/// A provider that answers with an all-zero vector (which the store refuses) makes the
/// item fail and count its attempts until it is given up, instead of being leased again
/// forever; the other entries of the batch are embedded.
async fn unusable_vectors_fail_their_item_until_it_is_given_up(s: S) {
    #[derive(Debug)]
    struct Zeros(HashingEmbedder);
    #[async_trait]
    impl Embedder for Zeros {
        fn model_id(&self) -> &str {
            self.0.model_id()
        }
        fn dimension(&self) -> usize {
            self.0.dimension()
        }
        fn max_input_tokens(&self) -> usize {
            self.0.max_input_tokens()
        }
        async fn embed(&self, texts: &[String]) -> embed::Result<Vec<Vec<f32>>> {
            let mut out = self.0.embed(texts).await?;
            for (t, v) in texts.iter().zip(out.iter_mut()) {
                if t.contains("zero") {
                    v.iter_mut().for_each(|x| *x = 0.0);
                }
            }
            Ok(out)
        }
    }
    entries(&s, 3).await;
    s.upsert_entry(&NewEntry::new("w", "z").title("zero vector"))
        .await
        .unwrap();
    let w = EmbedWorker::new(
        s.clone(),
        Arc::new(Zeros(HashingEmbedder::new(32))),
        fast_config("w1"),
    )
    .await
    .unwrap();
    let stats = tokio::time::timeout(Duration::from_secs(30), w.drain())
        .await
        .expect("drain ends: the item is given up")
        .unwrap();
    assert_eq!(stats.embedded, 3, "{stats:?}");
    assert_eq!(stats.gave_up, 1, "{stats:?}");
    let failed = s.failed_embeddings().await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].key, EntryKey::new("w", "z"));
    assert!(
        failed[0].last_error.contains("unusable vector"),
        "{}",
        failed[0].last_error
    );
}

/// Vectors the store refuses at write time (not NotFound, not retryable) fail only
/// their item, with the store's reason; the rest of the batch is written.
async fn vectors_the_store_refuses_fail_only_their_item(s: S) {
    entries(&s, 4).await;
    let store = faulty::Faulty::new(s.clone());
    let w = EmbedWorker::new(store.clone(), TestEmbedder::new(0), fast_config("w1"))
        .await
        .unwrap();
    // The batch write and then the first single write are refused.
    store.fail_next("complete_with_passages", 2, || {
        StorageError::invalid_input("vector refused")
    });
    let stats = w.drain().await.unwrap();
    assert_eq!(
        stats.embedded, 4,
        "the refused one is retried and embedded: {stats:?}"
    );
    assert_eq!(stats.retrying, 1, "{stats:?}");
    assert_eq!(s.queue_stats().await.unwrap().pending, 0);
}

on_both_backends!(
    a_running_worker_outlives_a_database_outage,
    a_batch_cut_by_an_outage_is_retried_without_waiting_for_its_lease,
    unusable_vectors_fail_their_item_until_it_is_given_up,
    vectors_the_store_refuses_fail_only_their_item,
    drains_the_queue_into_passages,
    failures_are_retried_then_given_up_with_the_error_kept,
    a_provider_outage_is_waited_out,
    work_of_a_crashed_worker_is_resumed,
    concurrent_workers_never_embed_an_entry_twice,
    a_store_of_another_model_refuses_the_worker,
    run_stops_on_shutdown,
);
