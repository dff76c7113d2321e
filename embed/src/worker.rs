//! The background embedding worker: claims queued entries in batches, splits their text
//! into passages, embeds them, writes the passages and completes the queue items.
//!
//! Everything durable lives in the store's queue, so a worker can stop at any point: an
//! item it claimed and never completed is claimable again when its lease expires (after a
//! crash or restart), and an entry edited while it was being embedded stays queued.
//! Several workers may share one store: claims are exclusive, so no entry is embedded
//! twice by concurrent workers.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use storage_core::{
    Completion, EntryKey, EntryPassages, FailOutcome, PassageVector, QueueItem, StorageError, Store,
};

use crate::{split_passages, EmbedError, Embedder, PassageConfig};

type StoreResult<T> = storage_core::Result<T>;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this worker in claims (must differ between concurrent workers).
    pub worker_id: String,
    /// Entries claimed at a time.
    pub batch_size: usize,
    /// Passages sent to the model at a time.
    pub embed_batch: usize,
    /// How long a claim is held; a crashed worker's items come back after it.
    pub lease: Duration,
    /// Failures before an item is given up (kept with its error).
    pub max_attempts: u32,
    /// Wait between polls of an empty queue (in [`EmbedWorker::run`]).
    pub idle_poll: Duration,
    /// First wait after a failed batch; doubles per consecutive failure up to
    /// `max_backoff`, and resets after a success.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Passage limits; `None` uses the model's window with a 1/8 overlap.
    pub passages: Option<PassageConfig>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            worker_id: format!("embed-{}-{:08x}", std::process::id(), rand_u32()),
            batch_size: 16,
            embed_batch: 32,
            lease: Duration::from_secs(600),
            max_attempts: 5,
            idle_poll: Duration::from_secs(2),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            passages: None,
        }
    }
}

/// A random number for worker ids, from the clock and the process (no RNG crate needed).
fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let h = blake3::hash(format!("{t:?}{:?}", std::thread::current().id()).as_bytes());
    u32::from_le_bytes(h.as_bytes()[..4].try_into().expect("4 bytes"))
}

/// A point-in-time view of the worker's progress, for a progress bar or a health page.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Progress {
    /// Entries embedded by this worker since it started.
    pub done: u64,
    /// Entries still queued or being embedded (by any worker), as of the last batch.
    pub remaining: u64,
    /// `done + remaining`: the denominator of a progress bar.
    pub total: u64,
    /// Entries given up after too many failures.
    pub gave_up: u64,
    /// Failures that will be retried.
    pub retrying: u64,
    /// Passages written (≥ done: long entries have several).
    pub passages: u64,
    /// Entries per second since the worker started.
    pub rate_per_sec: f64,
}

/// What a [`EmbedWorker::drain`] or [`EmbedWorker::run`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunStats {
    pub embedded: u64,
    pub passages: u64,
    pub retrying: u64,
    pub gave_up: u64,
}

#[derive(Debug, Default)]
struct Counters {
    done: AtomicU64,
    remaining: AtomicU64,
    gave_up: AtomicU64,
    retrying: AtomicU64,
    passages: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct EmbedWorker {
    store: Arc<dyn Store>,
    embedder: Arc<dyn Embedder>,
    config: WorkerConfig,
    counters: Arc<Counters>,
    started: Instant,
    /// The claims of a batch a retryable store error interrupted, with when they were
    /// claimed: the next batch retries them while their lease lasts, rather than leaving
    /// them leased (unclaimable by anyone) until the lease ends.
    held: Arc<std::sync::Mutex<Option<Held>>>,
}

/// Claimed items and when they were claimed.
type Held = (Instant, Vec<QueueItem>);

/// The outcome of one batch.
#[derive(Debug, Default)]
struct BatchOutcome {
    claimed: usize,
    embedded: u64,
    passages: u64,
    retrying: u64,
    gave_up: u64,
    /// A transient failure (provider down): back off before the next claim.
    transient: bool,
}

impl EmbedWorker {
    /// Fixes the store's embedding space to the embedder's, or fails with
    /// `ModelMismatch` when the store holds vectors of another model.
    pub async fn new(
        store: Arc<dyn Store>,
        embedder: Arc<dyn Embedder>,
        config: WorkerConfig,
    ) -> StoreResult<Self> {
        store.ensure_embedding_space(&embedder.space()).await?;
        Ok(Self {
            store,
            embedder,
            config,
            counters: Arc::default(),
            started: Instant::now(),
            held: Arc::default(),
        })
    }

    pub fn progress(&self) -> Progress {
        let c = &self.counters;
        let done = c.done.load(Ordering::Relaxed);
        let remaining = c.remaining.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        Progress {
            done,
            remaining,
            total: done + remaining,
            gave_up: c.gave_up.load(Ordering::Relaxed),
            retrying: c.retrying.load(Ordering::Relaxed),
            passages: c.passages.load(Ordering::Relaxed),
            rate_per_sec: if secs > 0.0 { done as f64 / secs } else { 0.0 },
        }
    }

    /// Embeds until nothing is claimable (the queue is empty, or every remaining item is
    /// leased by another worker or given up), backing off after failures.
    pub async fn drain(&self) -> StoreResult<RunStats> {
        self.run_loop(None::<std::future::Pending<()>>).await
    }

    /// Embeds until `shutdown` completes, polling an empty queue every `idle_poll`.
    /// A batch in flight when shutdown comes is finished first.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> StoreResult<RunStats> {
        self.run_loop(Some(shutdown)).await
    }

    async fn run_loop<F: Future<Output = ()>>(&self, shutdown: Option<F>) -> StoreResult<RunStats> {
        let forever = shutdown.is_some();
        let shutdown = async move {
            match shutdown {
                Some(f) => f.await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(shutdown);
        let mut stats = RunStats::default();
        let mut failures = 0u32;
        loop {
            let outcome = match self.batch().await {
                Ok(outcome) => outcome,
                // A long-running worker outlives a database restart or a busy SQLite:
                // what it claimed comes back when its lease ends, so waiting and claiming
                // again loses nothing. `drain` (a command that should finish) reports it.
                Err(e) if forever && e.is_retryable() => {
                    failures += 1;
                    let wait = self.backoff(failures);
                    tracing::warn!(error = %e, retry_in = ?wait, "the store is unavailable; waiting");
                    tokio::select! {
                        _ = &mut shutdown => return Ok(stats),
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            stats.embedded += outcome.embedded;
            stats.passages += outcome.passages;
            stats.retrying += outcome.retrying;
            stats.gave_up += outcome.gave_up;
            let wait = if outcome.transient || (outcome.claimed > 0 && outcome.embedded == 0) {
                failures += 1;
                Some(self.backoff(failures))
            } else if outcome.claimed == 0 {
                if !forever {
                    return Ok(stats);
                }
                Some(self.config.idle_poll)
            } else {
                failures = 0;
                None
            };
            if let Some(wait) = wait {
                tokio::select! {
                    _ = &mut shutdown => return Ok(stats),
                    _ = tokio::time::sleep(wait) => {}
                }
            } else if forever {
                // Stop between batches when asked, without waiting for the queue to empty.
                let stop = futures_poll_once(&mut shutdown).await;
                if stop {
                    return Ok(stats);
                }
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        (self.config.backoff * factor).min(self.config.max_backoff)
    }

    /// Claims, embeds and writes one batch (or retries the held one).
    async fn batch(&self) -> StoreResult<BatchOutcome> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            // Half the lease leaves the retry time to finish before anyone else may claim.
            .filter(|(at, _)| at.elapsed() < self.config.lease / 2);
        let (claimed_at, items) = match held {
            Some(held) => held,
            None => (
                Instant::now(),
                self.store
                    .claim_embedding_batch(
                        &self.config.worker_id,
                        self.config.batch_size.max(1),
                        self.config.lease,
                    )
                    .await?,
            ),
        };
        let mut out = BatchOutcome {
            claimed: items.len(),
            ..Default::default()
        };
        if items.is_empty() {
            self.refresh_remaining().await?;
            return Ok(out);
        }
        match self.process(&items, &mut out).await {
            Err(e) if e.is_retryable() => {
                *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some((claimed_at, items));
                Err(e)
            }
            Err(e) => Err(e),
            Ok(()) => {
                // Progress only: the batch is done and counted even if this fails.
                if let Err(e) = self.refresh_remaining().await {
                    tracing::debug!(error = %e, "could not read the queue's depth");
                }
                Ok(out)
            }
        }
    }

    /// Embeds and writes claimed items. Safe to run again on the same items: passages are
    /// replaced, completing twice removes nothing more.
    async fn process(&self, items: &[QueueItem], out: &mut BatchOutcome) -> StoreResult<()> {
        let keys: Vec<EntryKey> = items.iter().map(|i| i.key.clone()).collect();
        let entries: HashMap<EntryKey, String> = self
            .store
            .get_entries(&keys)
            .await?
            .into_iter()
            .map(|e| {
                let mut text = storage_core::embeddable_text(&e.title, &e.summary, &e.body);
                if text.trim().is_empty() {
                    // Nothing to embed but the id; still give the entry a vector so
                    // coverage and requeueing stay meaningful.
                    text = e.id.clone();
                }
                (e.key(), text)
            })
            .collect();
        let cfg = self
            .config
            .passages
            .unwrap_or_else(|| PassageConfig::for_window(self.embedder.max_input_tokens()));
        let embedder = self.embedder.clone();
        let count = move |t: &str| embedder.count_tokens(t);
        // Entries deleted since they were queued have nothing to embed: complete them.
        let (present, gone): (Vec<&QueueItem>, Vec<&QueueItem>) =
            items.iter().partition(|i| entries.contains_key(&i.key));
        if !gone.is_empty() {
            let gone: Vec<QueueItem> = gone.into_iter().cloned().collect();
            self.store.complete_embedding(&gone).await?;
        }
        let mut work: Vec<(&QueueItem, Vec<String>)> = Vec::with_capacity(present.len());
        for item in present {
            let text = &entries[&item.key];
            let passages = split_passages(text, cfg, &count);
            work.push((item, passages));
        }
        // Embed everything at once; if that fails for a reason other than the provider
        // being away, embed entry by entry so one bad input cannot block the others.
        let all: Vec<String> = work.iter().flat_map(|(_, p)| p.iter().cloned()).collect();
        let mut results: Vec<(&QueueItem, Result<Vec<PassageVector>, String>)> = Vec::new();
        match self.embed_texts(&all).await {
            Ok(vectors) => {
                let mut it = vectors.into_iter();
                for (item, passages) in &work {
                    let vectors: Vec<Vec<f32>> = it.by_ref().take(passages.len()).collect();
                    results.push((item, self.passage_vectors(passages, vectors)));
                }
            }
            Err(e) if e.is_transient() || work.len() == 1 => {
                out.transient = e.is_transient();
                let msg = e.to_string();
                for (item, _) in &work {
                    results.push((item, Err(msg.clone())));
                }
            }
            Err(_) => {
                for (item, passages) in &work {
                    let r = match self.embed_texts(passages).await {
                        Ok(vectors) => self.passage_vectors(passages, vectors),
                        Err(e) => Err(e.to_string()),
                    };
                    results.push((item, r));
                }
            }
        }
        let mut embedded = Vec::new();
        let mut failed = Vec::new();
        for (item, r) in results {
            match r {
                Ok(passages) => embedded.push((
                    item.clone(),
                    EntryPassages {
                        key: item.key.clone(),
                        passages,
                    },
                )),
                Err(message) => failed.push((item.clone(), message)),
            }
        }
        let (written, refused) = self.write(embedded).await?;
        failed.extend(refused);
        for (item, message) in &failed {
            tracing::warn!(entry = %item.key, error = %message, "embedding failed");
            match self
                .store
                .fail_embedding(item, message, self.config.max_attempts)
                .await?
            {
                FailOutcome::WillRetry { .. } => out.retrying += 1,
                FailOutcome::GaveUp { .. } => out.gave_up += 1,
                _ => {}
            }
        }
        out.passages = written.iter().map(|(_, n)| *n).sum();
        out.embedded = written.len() as u64;
        let c = &self.counters;
        c.done.fetch_add(out.embedded, Ordering::Relaxed);
        c.passages.fetch_add(out.passages, Ordering::Relaxed);
        c.gave_up.fetch_add(out.gave_up, Ordering::Relaxed);
        c.retrying.fetch_add(out.retrying, Ordering::Relaxed);
        // For whoever installed a `metrics` recorder (`kb serve`'s /metrics); free otherwise.
        metrics::counter!("kb_embed_entries_total").increment(out.embedded);
        metrics::counter!("kb_embed_passages_total").increment(out.passages);
        metrics::counter!("kb_embed_failures_total", "outcome" => "retrying")
            .increment(out.retrying);
        metrics::counter!("kb_embed_failures_total", "outcome" => "gave_up").increment(out.gave_up);
        Ok(())
    }

    /// Pairs each passage with its vector, refusing vectors the store would refuse (an
    /// all-zero or underflowing vector from a provider): the item then fails and its
    /// attempts count, instead of being leased again and again.
    fn passage_vectors(
        &self,
        passages: &[String],
        vectors: Vec<Vec<f32>>,
    ) -> Result<Vec<PassageVector>, String> {
        if vectors.len() != passages.len() {
            return Err(format!(
                "{} returned {} vectors for {} passages",
                self.embedder.model_id(),
                vectors.len(),
                passages.len()
            ));
        }
        passages
            .iter()
            .zip(vectors)
            .map(|(t, vector)| {
                storage_core::check_vector(&vector, self.embedder.dimension()).map_err(|e| {
                    format!(
                        "{} returned an unusable vector: {e}",
                        self.embedder.model_id()
                    )
                })?;
                Ok(PassageVector {
                    text: Some(t.clone()),
                    vector,
                })
            })
            .collect()
    }

    /// Writes the passages and completes their items, in one call when it can, fenced by
    /// the claims' leases. Returns the items written (with their passage counts) and those
    /// the store refused, with its reason; an entry deleted meanwhile is neither (its
    /// queue item went with it), nor is an item another worker claimed after this
    /// worker's lease ran out (that worker's vectors stand). A retryable error ends the
    /// batch: nothing is lost, the claims are retried or come back when their leases end.
    async fn write(
        &self,
        embedded: Vec<(QueueItem, EntryPassages)>,
    ) -> StoreResult<(Vec<(QueueItem, u64)>, Vec<(QueueItem, String)>)> {
        let count = |p: &EntryPassages| p.passages.len() as u64;
        let (mut written, mut refused) = (Vec::new(), Vec::new());
        if embedded.is_empty() {
            return Ok((written, refused));
        }
        let mut keep = |(item, p): (QueueItem, EntryPassages), outcome: Completion| match outcome {
            Completion::Completed | Completion::TextChanged => written.push((item, count(&p))),
            Completion::LeaseLost => {
                tracing::debug!(entry = %item.key, "lease lost to another worker; its vectors stand");
            }
            Completion::EntryGone => {}
        };
        match self.store.complete_with_passages(&embedded).await {
            Ok(outcomes) => {
                for (done, outcome) in embedded.into_iter().zip(outcomes) {
                    keep(done, outcome);
                }
                return Ok((written, refused));
            }
            Err(e) if e.is_retryable() => return Err(e),
            // One entry's vectors refused: write them one by one to find it.
            Err(_) => {}
        }
        for done in embedded {
            match self
                .store
                .complete_with_passages(std::slice::from_ref(&done))
                .await
            {
                Ok(outcomes) => keep(
                    done,
                    outcomes.first().copied().unwrap_or(Completion::EntryGone),
                ),
                Err(StorageError::NotFound { .. }) => {}
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => refused.push((done.0, format!("the store refused the vectors: {e}"))),
            }
        }
        Ok((written, refused))
    }

    /// Embeds in chunks of `embed_batch`, shortest texts together: a batch is padded to
    /// its longest input, so mixing lengths wastes most of the model's work.
    async fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.config.embed_batch.max(1)) {
            let batch: Vec<String> = chunk.iter().map(|&i| texts[i].clone()).collect();
            let vectors = self.embedder.embed(&batch).await?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    async fn refresh_remaining(&self) -> StoreResult<()> {
        let s = self.store.queue_stats().await?;
        self.counters
            .remaining
            .store(s.pending + s.in_progress, Ordering::Relaxed);
        Ok(())
    }
}

/// Whether `f` is already complete, without waiting.
async fn futures_poll_once<F: Future<Output = ()> + Unpin>(f: &mut F) -> bool {
    tokio::select! {
        biased;
        _ = f => true,
        _ = std::future::ready(()) => false,
    }
}
