//! The durable embedding queue: enqueue on text change, claim, complete, fail, give up.

use std::collections::HashSet;
use std::time::Duration;

use storage_core::*;

use crate::fixtures::*;

crate::area! {
    queue, __queue_cases:
    new_entries_are_queued_in_order,
    only_text_changes_requeue,
    claims_respect_limit_and_leases,
    expired_leases_are_claimable_again,
    completing_with_stale_text_keeps_the_item,
    failures_retry_then_give_up,
    editing_a_failed_entry_requeues_it,
    concurrent_workers_claim_disjoint_batches,
    deleting_an_entry_drops_its_queue_item,
    requeue_covers_missing_vectors_or_all,
    requeueing_keeps_live_leases,
    a_huge_lease_is_rejected,
    huge_limits_and_attempt_counts_are_clamped,
    every_claim_gets_a_new_lease,
    a_worker_whose_lease_ran_out_cannot_complete_or_fail_the_item_claimed_again,
    completing_with_passages_writes_them_and_dequeues_the_items,
    late_passages_of_a_lost_lease_leave_the_new_owners_vectors,
    a_failure_text_with_nul_or_of_any_length_is_kept_readable,
}

const LEASE: Duration = Duration::from_secs(60);

fn keys(items: &[QueueItem]) -> Vec<String> {
    items.iter().map(|i| i.key.id.clone()).collect()
}

async fn three(s: &S) -> Result<()> {
    kb(s, "q").await?;
    for id in ["1", "2", "3"] {
        put(s, note("q", id, &format!("title {id}"), "body")).await?;
    }
    Ok(())
}

/// New entries with text are queued, oldest first; entries without text are not.
async fn new_entries_are_queued_in_order(s: S) -> Result<()> {
    three(&s).await?;
    put(&s, NewEntry::new("q", "empty")).await?;
    assert_eq!(
        s.queue_stats().await?,
        QueueStats {
            pending: 3,
            in_progress: 0,
            failed: 0
        }
    );
    let got = s.claim_embedding_batch("w", 10, LEASE).await?;
    assert_eq!(keys(&got), ["1", "2", "3"]);
    assert!(got
        .iter()
        .all(|i| i.attempts == 0 && i.text_hash.len() == 64));
    Ok(())
}

/// Re-upserting unchanged text does not queue again; changing it does.
async fn only_text_changes_requeue(s: S) -> Result<()> {
    three(&s).await?;
    let items = s.claim_embedding_batch("w", 10, LEASE).await?;
    assert_eq!(s.complete_embedding(&items).await?, 3);
    put(
        &s,
        note("q", "1", "title 1", "body")
            .tags(["new-tag"])
            .importance(3),
    )
    .await?;
    assert_eq!(s.queue_stats().await?.pending, 0);
    put(&s, note("q", "2", "title 2", "new body")).await?;
    assert_eq!(keys(&s.claim_embedding_batch("w", 10, LEASE).await?), ["2"]);
    Ok(())
}

/// A claim takes at most `limit` items and never hands out items already leased.
async fn claims_respect_limit_and_leases(s: S) -> Result<()> {
    three(&s).await?;
    let a = s.claim_embedding_batch("w1", 2, LEASE).await?;
    let b = s.claim_embedding_batch("w2", 2, LEASE).await?;
    assert_eq!(keys(&a), ["1", "2"]);
    assert_eq!(keys(&b), ["3"]);
    assert!(s.claim_embedding_batch("w3", 2, LEASE).await?.is_empty());
    assert_eq!(
        s.queue_stats().await?,
        QueueStats {
            pending: 0,
            in_progress: 3,
            failed: 0
        }
    );
    Ok(())
}

/// An expired lease (a crashed worker) makes the item claimable again.
async fn expired_leases_are_claimable_again(s: S) -> Result<()> {
    three(&s).await?;
    let first = s
        .claim_embedding_batch("crashed", 3, Duration::from_millis(1))
        .await?;
    assert_eq!(first.len(), 3);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = s.claim_embedding_batch("w2", 3, LEASE).await?;
    assert_eq!(keys(&again), ["1", "2", "3"]);
    Ok(())
}

/// Completing removes items; an item whose text changed meanwhile stays queued.
async fn completing_with_stale_text_keeps_the_item(s: S) -> Result<()> {
    three(&s).await?;
    let items = s.claim_embedding_batch("w", 3, LEASE).await?;
    put(&s, note("q", "2", "edited while embedding", "body")).await?;
    assert_eq!(s.complete_embedding(&items).await?, 2);
    let again = s.claim_embedding_batch("w", 3, LEASE).await?;
    assert_eq!(keys(&again), ["2"]);
    assert_ne!(again[0].text_hash, items[1].text_hash);
    assert_eq!(s.complete_embedding(&again).await?, 1);
    assert_eq!(s.queue_stats().await?, QueueStats::default());
    Ok(())
}

/// Failures count attempts; at the limit the item gives up and keeps its last error.
async fn failures_retry_then_give_up(s: S) -> Result<()> {
    kb(&s, "q").await?;
    put(&s, note("q", "1", "t", "")).await?;
    for attempt in 1..=2 {
        let item = s.claim_embedding_batch("w", 1, LEASE).await?.remove(0);
        assert_eq!(item.attempts, attempt - 1);
        let out = s
            .fail_embedding(&item, &format!("timeout {attempt}"), 3)
            .await?;
        assert_eq!(out, FailOutcome::WillRetry { attempts: attempt });
    }
    let item = s.claim_embedding_batch("w", 1, LEASE).await?.remove(0);
    assert_eq!(
        s.fail_embedding(&item, "model crashed", 3).await?,
        FailOutcome::GaveUp { attempts: 3 }
    );
    assert!(s.claim_embedding_batch("w", 1, LEASE).await?.is_empty());
    assert_eq!(
        s.queue_stats().await?,
        QueueStats {
            pending: 0,
            in_progress: 0,
            failed: 1
        }
    );
    let failed = s.failed_embeddings().await?;
    assert_eq!(
        failed,
        vec![FailedItem {
            key: EntryKey::new("q", "1"),
            attempts: 3,
            last_error: "model crashed".into()
        }]
    );
    assert_eq!(
        s.fail_embedding(&item, "again", 3).await?,
        FailOutcome::NotQueued
    );
    Ok(())
}

/// Editing a given-up entry's text queues it afresh with zero attempts.
async fn editing_a_failed_entry_requeues_it(s: S) -> Result<()> {
    kb(&s, "q").await?;
    put(&s, note("q", "1", "t", "")).await?;
    let item = s.claim_embedding_batch("w", 1, LEASE).await?.remove(0);
    s.fail_embedding(&item, "bad", 1).await?;
    put(&s, note("q", "1", "t2", "")).await?;
    let again = s.claim_embedding_batch("w", 1, LEASE).await?;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 0);
    Ok(())
}

/// Concurrent workers never receive the same item.
async fn concurrent_workers_claim_disjoint_batches(s: S) -> Result<()> {
    kb(&s, "q").await?;
    let batch: Vec<NewEntry> = (0..60)
        .map(|i| note("q", &format!("{i:02}"), "t", "b"))
        .collect();
    s.upsert_entries(&batch).await?;
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s.claim_embedding_batch(&format!("w{w}"), 4, LEASE).await?;
                if got.is_empty() {
                    return Ok::<_, StorageError>(mine);
                }
                mine.extend(got.into_iter().map(|i| i.key.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task")?);
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 60);
    assert_eq!(unique.len(), 60);
    Ok(())
}

/// Deleting an entry drops its queue item.
async fn deleting_an_entry_drops_its_queue_item(s: S) -> Result<()> {
    three(&s).await?;
    s.delete_entry(&EntryKey::new("q", "2")).await?;
    assert_eq!(
        keys(&s.claim_embedding_batch("w", 10, LEASE).await?),
        ["1", "3"]
    );
    Ok(())
}

/// Requeue puts entries without vectors (or all, when asked) back in the queue.
async fn requeue_covers_missing_vectors_or_all(s: S) -> Result<()> {
    three(&s).await?;
    s.ensure_embedding_space(&space(2)).await?;
    let items = s.claim_embedding_batch("w", 10, LEASE).await?;
    s.put_vector(&EntryKey::new("q", "1"), &[1.0, 0.0]).await?;
    s.complete_embedding(&items).await?;
    assert_eq!(s.requeue_embeddings(&Filter::new(), false).await?, 2);
    assert_eq!(
        keys(&s.claim_embedding_batch("w", 10, LEASE).await?),
        ["2", "3"]
    );
    assert_eq!(s.requeue_embeddings(&Filter::new().kb("q"), true).await?, 3);
    // "2" and "3" are still leased to the worker that claimed them above.
    let stats = s.queue_stats().await?;
    assert_eq!((stats.pending, stats.in_progress), (1, 2));
    Ok(())
}

/// Requeueing leaves a live lease alone: the item stays with the worker embedding it,
/// and no other worker can claim it until the lease ends.
async fn requeueing_keeps_live_leases(s: S) -> Result<()> {
    three(&s).await?;
    let held = s.claim_embedding_batch("a", 10, LEASE).await?;
    assert_eq!(held.len(), 3);
    assert_eq!(s.requeue_embeddings(&Filter::new(), true).await?, 3);
    assert!(
        s.claim_embedding_batch("b", 10, LEASE).await?.is_empty(),
        "a second worker claimed items leased to the first"
    );
    assert_eq!(s.complete_embedding(&held).await?, 3);
    assert_eq!(s.queue_stats().await?, QueueStats::default());
    Ok(())
}

/// A lease above `MAX_LEASE` (24 h) is `InvalidInput` and claims nothing; a lease of
/// exactly `MAX_LEASE` holds its items.
async fn a_huge_lease_is_rejected(s: S) -> Result<()> {
    three(&s).await?;
    for lease in [
        MAX_LEASE + Duration::from_secs(1),
        Duration::from_secs(u64::MAX / 2),
        Duration::MAX,
    ] {
        let err = s.claim_embedding_batch("w", 10, lease).await.unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidInput { .. }),
            "{lease:?}: {err:?}"
        );
        assert!(err.to_string().contains("lease"), "{err}");
    }
    assert_eq!(s.queue_stats().await?.pending, 3);
    assert_eq!(
        keys(&s.claim_embedding_batch("w", 2, MAX_LEASE).await?),
        ["1", "2"]
    );
    // The lease holds: only the third item is claimable now.
    assert_eq!(
        keys(&s.claim_embedding_batch("w2", 10, LEASE).await?),
        ["3"]
    );
    Ok(())
}

/// Counts beyond the engines' integer types are clamped, not wrapped: `limit =
/// usize::MAX` claims everything and `max_attempts = u32::MAX` never gives up early.
async fn huge_limits_and_attempt_counts_are_clamped(s: S) -> Result<()> {
    three(&s).await?;
    let items = s.claim_embedding_batch("w", usize::MAX, LEASE).await?;
    assert_eq!(keys(&items), ["1", "2", "3"]);
    for item in &items {
        assert_eq!(
            s.fail_embedding(item, "transient", u32::MAX).await?,
            FailOutcome::WillRetry { attempts: 1 }
        );
    }
    assert_eq!(s.queue_stats().await?.failed, 0);
    Ok(())
}

fn passages_of(item: &QueueItem, x: f32) -> EntryPassages {
    EntryPassages {
        key: item.key.clone(),
        passages: vec![PassageVector {
            text: None,
            vector: vec![x, 1.0, 0.0],
        }],
    }
}

/// Each claim of an item carries a lease of its own (the fencing token completions check).
async fn every_claim_gets_a_new_lease(s: S) -> Result<()> {
    three(&s).await?;
    let first = s
        .claim_embedding_batch("w1", 3, Duration::from_millis(1))
        .await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = s.claim_embedding_batch("w2", 3, LEASE).await?;
    assert_eq!(keys(&second), keys(&first));
    for (a, b) in first.iter().zip(&second) {
        assert_ne!(a.lease, b.lease, "{}", a.key);
    }
    Ok(())
}

/// A worker whose lease ran out while another worker claimed the item again can neither
/// complete nor fail it: the new owner's lease stands, and so does its completion.
async fn a_worker_whose_lease_ran_out_cannot_complete_or_fail_the_item_claimed_again(
    s: S,
) -> Result<()> {
    three(&s).await?;
    let late = s
        .claim_embedding_batch("late", 3, Duration::from_millis(1))
        .await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let owner = s.claim_embedding_batch("owner", 3, LEASE).await?;
    assert_eq!(owner.len(), 3);
    assert_eq!(s.complete_embedding(&late).await?, 0);
    assert_eq!(
        s.fail_embedding(&late[0], "late failure", 3).await?,
        FailOutcome::LeaseLost
    );
    // Still the owner's: in progress, not claimable, attempts untouched.
    assert_eq!(
        s.queue_stats().await?,
        QueueStats {
            pending: 0,
            in_progress: 3,
            failed: 0
        }
    );
    assert!(s.claim_embedding_batch("third", 3, LEASE).await?.is_empty());
    assert_eq!(
        s.fail_embedding(&owner[0], "owner failure", 3).await?,
        FailOutcome::WillRetry { attempts: 1 }
    );
    assert_eq!(s.complete_embedding(&owner[1..]).await?, 2);
    Ok(())
}

/// Completing with passages writes each item's vectors and takes it out of the queue; an
/// entry edited meanwhile gets its vectors but stays queued for its new text; a deleted
/// entry is reported gone.
async fn completing_with_passages_writes_them_and_dequeues_the_items(s: S) -> Result<()> {
    three(&s).await?;
    s.ensure_embedding_space(&space(3)).await?;
    let items = s.claim_embedding_batch("w", 3, LEASE).await?;
    put(&s, note("q", "2", "edited while embedding", "body")).await?;
    s.delete_entry(&items[2].key).await?;
    let done: Vec<(QueueItem, EntryPassages)> = items
        .iter()
        .map(|i| (i.clone(), passages_of(i, 0.5)))
        .collect();
    assert_eq!(
        s.complete_with_passages(&done).await?,
        [
            Completion::Completed,
            Completion::TextChanged,
            Completion::EntryGone
        ]
    );
    assert_eq!(
        s.get_vector(&items[0].key).await?,
        Some(vec![0.5, 1.0, 0.0])
    );
    assert_eq!(
        s.get_vector(&items[1].key).await?,
        Some(vec![0.5, 1.0, 0.0])
    );
    let again = s.claim_embedding_batch("w", 3, LEASE).await?;
    assert_eq!(keys(&again), ["2"]);
    // A vector of the wrong dimension refuses the whole call.
    let bad = [(
        again[0].clone(),
        EntryPassages {
            key: again[0].key.clone(),
            passages: vec![PassageVector {
                text: None,
                vector: vec![1.0; 4],
            }],
        },
    )];
    assert!(matches!(
        s.complete_with_passages(&bad).await,
        Err(StorageError::DimensionMismatch { .. })
    ));
    assert_eq!(s.queue_stats().await?.in_progress, 1);
    Ok(())
}

/// The late worker's vectors never replace those of the worker that claimed the item
/// after its lease ran out, whichever finishes first.
async fn late_passages_of_a_lost_lease_leave_the_new_owners_vectors(s: S) -> Result<()> {
    three(&s).await?;
    s.ensure_embedding_space(&space(3)).await?;
    let late = s
        .claim_embedding_batch("late", 2, Duration::from_millis(1))
        .await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let owner = s.claim_embedding_batch("owner", 2, LEASE).await?;
    // Item 1: the owner finishes first, then the late worker.
    let mine = [(owner[0].clone(), passages_of(&owner[0], 2.0))];
    assert_eq!(
        s.complete_with_passages(&mine).await?,
        [Completion::Completed]
    );
    let stale = [(late[0].clone(), passages_of(&late[0], 9.0))];
    assert_eq!(
        s.complete_with_passages(&stale).await?,
        [Completion::LeaseLost]
    );
    assert_eq!(
        s.get_vector(&owner[0].key).await?,
        Some(vec![2.0, 1.0, 0.0])
    );
    // Item 2: the late worker finishes first; nothing is written, the owner's claim stays.
    let stale = [(late[1].clone(), passages_of(&late[1], 9.0))];
    assert_eq!(
        s.complete_with_passages(&stale).await?,
        [Completion::LeaseLost]
    );
    assert_eq!(s.get_vector(&late[1].key).await?, None);
    assert_eq!(s.queue_stats().await?.in_progress, 1);
    let mine = [(owner[1].clone(), passages_of(&owner[1], 3.0))];
    assert_eq!(
        s.complete_with_passages(&mine).await?,
        [Completion::Completed]
    );
    assert_eq!(
        s.get_vector(&owner[1].key).await?,
        Some(vec![3.0, 1.0, 0.0])
    );
    Ok(())
}

/// A failure's text is kept whatever it holds: a NUL (which Postgres cannot store)
/// becomes U+FFFD, and a long text is cut to its first characters.
async fn a_failure_text_with_nul_or_of_any_length_is_kept_readable(s: S) -> Result<()> {
    three(&s).await?;
    let items = s.claim_embedding_batch("w", 2, LEASE).await?;
    let long = "é".repeat(MAX_QUEUE_ERROR_CHARS + 500);
    s.fail_embedding(&items[0], "bad\0byte", 1).await?;
    s.fail_embedding(&items[1], &long, 1).await?;
    let failed = s.failed_embeddings().await?;
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].last_error, "bad\u{fffd}byte");
    assert_eq!(failed[1].last_error.chars().count(), MAX_QUEUE_ERROR_CHARS);
    Ok(())
}
