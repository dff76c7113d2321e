//! Single-entry upserts that arrive together are written as one batch: group commit in
//! the client.
//!
//! Why: the agent-memory case is many writers each sending one note. Alone, a note costs
//! its own transaction, round trips, statement-level trigger and one postings row per
//! term; notes written as one batch share all of those, and the blocks of the terms they
//! have in common. A writer queues its entry; a leader task (at most [`MAX_LEADERS`] at
//! once, each on its own connection) takes everything queued, up to [`MAX_COMBINED`]
//! entries or [`MAX_COMBINED_BYTES`], as one `upsert_entries` batch and hands every
//! writer its own result. A writer alone waits for nobody: it is the whole batch.
//!
//! A failed batch is retried entry by entry, so an error (a KB that does not exist, a
//! deadlock) reaches only the writers it belongs to, as it would without combining.
//! Combining changes no promise: each writer's entry is committed when its call returns,
//! and the protocol never promised that two concurrent calls commit apart.

use std::sync::Mutex;

use storage_core::*;
use tokio::sync::oneshot;

use crate::store::PgStore;

/// Batches in flight at once; each holds a connection. More leaders mean smaller
/// batches and more of the server's cores busy.
const MAX_LEADERS: usize = 4;
/// Entries in one combined batch, and their text's bytes.
const MAX_COMBINED: usize = 64;
const MAX_COMBINED_BYTES: usize = 16 << 20;

/// The writers waiting for a leader, and how many leaders are running.
#[derive(Default)]
pub(crate) struct Combiner(Mutex<State>);

#[derive(Default)]
struct State {
    queue: Vec<Pending>,
    leaders: usize,
}

struct Pending {
    entry: NewEntry,
    done: oneshot::Sender<Result<Entry>>,
}

impl Combiner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Writes one entry, combined with those other writers send meanwhile.
pub(super) async fn upsert_combined(store: &PgStore, entry: NewEntry) -> Result<Entry> {
    // Invalid input is refused here, so that it never fails someone else's batch.
    let entry = entry.normalized()?;
    let (done, result) = oneshot::channel();
    let lead = {
        let mut s = store.inner.combiner.lock();
        s.queue.push(Pending { entry, done });
        // Under the same lock as the push: a leader leaves only when the queue is empty,
        // so a queued entry always has a leader that will take it.
        let lead = s.leaders < MAX_LEADERS;
        s.leaders += usize::from(lead);
        lead
    };
    if lead {
        // A task of its own, so a writer that gives up (its future dropped) cannot strand
        // the entries its batch took.
        tokio::spawn(lead_batches(store.clone()));
    }
    result.await.unwrap_or_else(|_| {
        // Only when the runtime shuts down under the leader task.
        Err(StorageError::Aborted {
            message: "the writing task stopped before the write finished".into(),
            source: None,
        })
    })
}

/// A leader: writes batches of what is queued until the queue is empty.
async fn lead_batches(store: PgStore) {
    loop {
        let batch = {
            let mut s = store.inner.combiner.lock();
            if s.queue.is_empty() {
                s.leaders -= 1;
                return;
            }
            take_batch(&mut s.queue)
        };
        let entries: Vec<NewEntry> = batch.iter().map(|p| p.entry.clone()).collect();
        match super::upsert::upsert_entries(&store, &entries).await {
            Ok(written) => {
                for (p, e) in batch.into_iter().zip(written) {
                    let _ = p.done.send(Ok(e));
                }
            }
            Err(_) if batch.len() > 1 => {
                let alone = batch
                    .iter()
                    .map(|p| super::upsert::upsert_entries(&store, std::slice::from_ref(&p.entry)));
                let results = futures_util::future::join_all(alone).await;
                for (p, r) in batch.into_iter().zip(results) {
                    let _ = p.done.send(r.map(|mut w| w.remove(0)));
                }
            }
            Err(e) => {
                let p = batch.into_iter().next().expect("a batch of one");
                let _ = p.done.send(Err(e));
            }
        }
    }
}

/// The oldest queued entries, within the batch's bounds (at least one).
fn take_batch(queue: &mut Vec<Pending>) -> Vec<Pending> {
    let mut bytes = 0;
    let n = queue
        .iter()
        .take(MAX_COMBINED)
        .take_while(|p| {
            let e = &p.entry;
            bytes += e.title.len() + e.summary.len() + e.body.len();
            bytes <= MAX_COMBINED_BYTES
        })
        .count()
        .max(1);
    queue.drain(..n).collect()
}
