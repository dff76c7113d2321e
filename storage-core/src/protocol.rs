//! The storage protocol: what every backend implements, by area, and the conveniences
//! built on it.
//!
//! # Contract (every backend, checked by the `conformance` crate)
//!
//! - **Missing things.** `get_*` of a missing key returns `Ok(None)`; `delete_*` of a missing
//!   key returns `Ok(false)`. Operations that need an existing parent (an entry in a missing
//!   KB, a member of a missing collection, …) return [`StorageError::NotFound`].
//! - **Atomicity.** Every method is atomic: it is applied completely or not at all.
//!   `upsert_entries` applies the whole batch in one transaction. `claim` and
//!   `cas_metadata` are compare-and-set: of many concurrent callers expecting the same
//!   state exactly one succeeds.
//! - **Re-upsert replaces.** Upserting an existing entry replaces every field, including its
//!   tags, links and sources (they are never merged); `created_at` is kept, `updated_at`
//!   is set to now.
//! - **Ordering.** Every list has a documented order with a final tiebreak on `(kb, id)`,
//!   so paging with limit/offset yields disjoint, complete pages.
//! - **Filters.** One [`Filter`] means the same selection in `list_entries`, `count_entries`,
//!   `timeline`, `search` and `semantic_search`.
//! - **Errors.** Only [`StorageError`] kinds; driver text never reaches `Display`.
//!
//! # Shape
//!
//! The protocol is nine area traits, one per section of the contract and per module of
//! the conformance suite: [`KbStore`], [`EntryStore`], [`GraphStore`], [`SearchStore`],
//! [`VectorStore`], [`QueueStore`], [`OrganiseStore`], [`CoordinationStore`] and
//! [`HealthStore`]. [`Store`] is all nine together, implemented for every type that
//! implements them, so a backend writes one `impl` per area — each in the file named
//! after it — and never an `impl Store`. Area traits (rather than one 50-method trait
//! whose methods hand off to area files) keep each method's one implementation in its
//! area's file, with no list of forwarding stubs to keep in step.
//!
//! [`StoreExt`] holds the conveniences that are pure compositions of the protocol
//! (`upsert_entry`, `put_vector`, `similar`, …); a backend never implements them.
//!
//! [`Store`] is object-safe: callers hold an `Arc<dyn Store>` chosen from configuration,
//! and call any area's method on it without importing the area trait.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::{Result, StorageError};
use crate::filter::Filter;
use crate::types::*;

/// The whole protocol: every area trait. Implemented for every type that implements all
/// of them; backends implement the areas, never this trait.
pub trait Store:
    KbStore
    + EntryStore
    + GraphStore
    + SearchStore
    + VectorStore
    + QueueStore
    + OrganiseStore
    + CoordinationStore
    + HealthStore
{
}

impl<T> Store for T where
    T: KbStore
        + EntryStore
        + GraphStore
        + SearchStore
        + VectorStore
        + QueueStore
        + OrganiseStore
        + CoordinationStore
        + HealthStore
        + ?Sized
{
}

/// Knowledge bases: create, list, delete, and expiry.
#[async_trait]
pub trait KbStore: Send + Sync + std::fmt::Debug {
    /// Creates a KB. `AlreadyExists` if the name is taken.
    async fn create_kb(&self, kb: &NewKnowledgeBase) -> Result<KnowledgeBase>;
    /// The KB named `name`, if it exists.
    async fn get_kb(&self, name: &str) -> Result<Option<KnowledgeBase>>;
    /// All KBs, ordered by name.
    async fn list_kbs(&self) -> Result<Vec<KnowledgeBase>>;
    /// Deletes a KB with its entries, vectors, links, stars, collections, settings and
    /// queue items. `Ok(false)` if it did not exist.
    async fn delete_kb(&self, name: &str) -> Result<bool>;
    /// Deletes every ephemeral KB whose `expires_at` is at or before `now`, with
    /// everything in it, and every entry whose `expires_at` is at or before `now`, with
    /// its links, vectors, queue item, stars and collection memberships (links pointing at
    /// it are kept, as for `delete_entry`). For entries, `now` is capped at the store's own
    /// clock (the one reads hide expired entries by: the server's on Postgres), so a
    /// caller whose clock runs ahead never deletes an entry readers still see.
    async fn gc_expired(&self, now: DateTime<Utc>) -> Result<GcReport>;
}

/// Entries: write, read, list with a [`Filter`], and the dated timeline.
#[async_trait]
pub trait EntryStore: Send + Sync + std::fmt::Debug {
    /// Inserts or replaces many entries in one transaction (all or nothing). Returns the
    /// stored entries in input order. A key that appears twice: the last one wins.
    async fn upsert_entries(&self, entries: &[NewEntry]) -> Result<Vec<Entry>>;
    /// The entry, if it exists.
    async fn get_entry(&self, key: &EntryKey) -> Result<Option<Entry>>;
    /// The entries that exist, in the order of `keys` (missing keys are skipped).
    async fn get_entries(&self, keys: &[EntryKey]) -> Result<Vec<Entry>>;
    /// Deletes an entry with its vector, queue item, stars and collection memberships.
    /// Links pointing at it are kept (they become links to a missing target).
    async fn delete_entry(&self, key: &EntryKey) -> Result<bool>;
    /// One page of entries selected by `filter`, in `filter.sort` order.
    async fn list_entries(&self, filter: &Filter) -> Result<Vec<Entry>>;
    /// Number of entries selected by `filter`, ignoring its limit and offset.
    async fn count_entries(&self, filter: &Filter) -> Result<u64>;
    /// Distinct entry types with counts, among entries selected by `filter` (ignoring
    /// paging), ordered by type.
    async fn entry_types(&self, filter: &Filter) -> Result<Vec<(String, u64)>>;

    /// Dated entries selected by `filter` (date range and minimum importance included),
    /// ordered by date ascending then key.
    async fn timeline(&self, filter: &Filter) -> Result<Vec<Entry>>;
}

/// Links between entries and the graph they form.
#[async_trait]
pub trait GraphStore: Send + Sync + std::fmt::Debug {
    /// The entry's links in the order they were written. Empty if the entry is missing.
    async fn outlinks(&self, key: &EntryKey) -> Result<Vec<Link>>;
    /// Links pointing at `key` (which need not exist), ordered by source key.
    async fn backlinks(&self, key: &EntryKey) -> Result<Vec<Backlink>>;
    /// BFS around an entry. `NotFound` if the start does not exist.
    async fn neighbourhood(&self, query: &GraphQuery) -> Result<Graph>;
    /// Entries with the most distinct incoming links (targets must exist), optionally in
    /// one KB; ordered by count descending then key.
    async fn most_linked(&self, kb: Option<&str>, limit: usize) -> Result<Vec<LinkCount>>;
    /// Active entries with no outgoing links and no incoming links from existing entries,
    /// ordered by key.
    async fn orphans(&self, kb: Option<&str>) -> Result<Vec<EntryKey>>;
}

/// Full-text (BM25) search.
#[async_trait]
pub trait SearchStore: Send + Sync + std::fmt::Debug {
    /// Full-text search with the project's query language ([`crate::parse_query`]) over
    /// title, tags, summary and body, weighted title > tags = summary > body. Results are
    /// the entries selected by `filter` that match, best first (ties by key); paged by
    /// `filter.limit`/`offset`.
    async fn search(&self, query: &str, filter: &Filter) -> Result<Vec<SearchHit>>;
    /// [`search`](Self::search)'s ranking alone: the same keys, scores and ranks, without
    /// loading entries or cutting snippets. For fusion, which weighs many candidates and
    /// shows only a page of them ([`snippets`](Self::snippets) then cuts the page's).
    async fn search_ranked(&self, query: &str, filter: &Filter) -> Result<Vec<RankedKey>>;
    /// The snippets [`search`](Self::search) would give `keys` for `query`, one per key in
    /// order; an empty snippet for a key that is absent or no longer matches.
    async fn snippets(&self, query: &str, keys: &[EntryKey]) -> Result<Vec<Snippet>>;
}

/// Embedding space, passage vectors and semantic search.
#[async_trait]
pub trait VectorStore: Send + Sync + std::fmt::Debug {
    /// The store's embedding space, if one has been fixed.
    async fn embedding_space(&self) -> Result<Option<EmbeddingSpace>>;
    /// Fixes the embedding space if none is set; otherwise checks it is the same.
    /// `ModelMismatch` when the model or dimension differs.
    async fn ensure_embedding_space(&self, space: &EmbeddingSpace) -> Result<EmbeddingSpace>;
    /// Forgets the embedding space and every passage vector, and queues every entry with
    /// text again (attempts reset), so the next worker embeds the store with its own model:
    /// the way to change models in place. Returns how many entries were queued.
    /// `Conflict` while a worker holds a live lease: stop the workers first, since a worker
    /// that checked the old space would go on writing its model's vectors.
    async fn reset_embedding_space(&self) -> Result<u64>;
    /// Replaces each entry's passages (text + vector each) in one transaction, all or
    /// nothing. Every vector is checked as in [`StoreExt::put_vector`];
    /// `InvalidInput` for an empty passage list or more than
    /// [`MAX_PASSAGES_PER_ENTRY`](crate::MAX_PASSAGES_PER_ENTRY).
    async fn put_passages(&self, items: &[EntryPassages]) -> Result<()>;
    /// The entry's passages in order (empty when it has no vectors).
    async fn get_passages(&self, key: &EntryKey) -> Result<Vec<StoredPassage>>;
    /// The vector of the entry's first passage.
    async fn get_vector(&self, key: &EntryKey) -> Result<Option<Vec<f32>>>;
    /// Removes all of the entry's passages.
    async fn delete_vector(&self, key: &EntryKey) -> Result<bool>;
    /// Exact or approximate k nearest entries by cosine similarity among the entries
    /// selected by the query's filter (applied before the top-k cut: k hits whenever at
    /// least k selected entries have vectors and pass `min_score`). An entry scores as its
    /// best passage, and appears once. Best first, ties by key.
    async fn semantic_search(&self, query: &SemanticQuery) -> Result<Vec<SemanticHit>>;
    /// Entries selected by `filter` with and without a vector.
    async fn vector_coverage(&self, filter: &Filter) -> Result<VectorCoverage>;
}

/// The embedding queue that background workers drain.
#[async_trait]
pub trait QueueStore: Send + Sync + std::fmt::Debug {
    /// Claims up to `limit` queued entries for `lease`, oldest first. Items whose lease
    /// expired (a crashed worker) are claimable again. Never hands one item to two
    /// workers whose leases overlap.
    async fn claim_embedding_batch(
        &self,
        worker: &str,
        limit: usize,
        lease: std::time::Duration,
    ) -> Result<Vec<QueueItem>>;
    /// Removes completed items, unless the entry's text changed since the claim (then it
    /// stays queued). Items claimed again since (see [`QueueItem::lease`]) are left to
    /// their new owner. Returns how many were removed.
    async fn complete_embedding(&self, items: &[QueueItem]) -> Result<u64>;
    /// Writes the passages of claimed items and completes them, in one transaction and
    /// fenced by each item's lease: what a worker calls when it has embedded a batch. An
    /// item whose lease was lost keeps the new owner's vectors and queue state. One result
    /// per item, in order. Refuses the whole call, writing nothing, when a vector does not
    /// fit the embedding space (as [`put_passages`](crate::VectorStore::put_passages)).
    async fn complete_with_passages(
        &self,
        done: &[(QueueItem, EntryPassages)],
    ) -> Result<Vec<Completion>>;
    /// Records a failure; after `max_attempts` failures the item is given up and kept
    /// with its error. Fenced by the lease, as completion is ([`FailOutcome::LeaseLost`]).
    async fn fail_embedding(
        &self,
        item: &QueueItem,
        error: &str,
        max_attempts: u32,
    ) -> Result<FailOutcome>;
    /// How many queue items are pending, in progress and failed.
    async fn queue_stats(&self) -> Result<QueueStats>;
    /// Items that gave up, ordered by key.
    async fn failed_embeddings(&self) -> Result<Vec<FailedItem>>;
    /// Puts every active entry of the filter without a vector (or all, with `all`) back in
    /// the queue, resetting attempts. Returns how many were queued.
    async fn requeue_embeddings(&self, filter: &Filter, all: bool) -> Result<u64>;
}

/// Ways to organise entries: tags, settings, stars and collections.
#[async_trait]
pub trait OrganiseStore: Send + Sync + std::fmt::Debug {
    // ---- tags

    /// Every tag with the number of entries carrying it, in one KB or all, ordered by
    /// count descending then tag.
    async fn tags(&self, kb: Option<&str>) -> Result<Vec<TagCount>>;
    /// Tags equal to `prefix` or below it in the hierarchy (`a` → `a`, `a/b`; not `ab`),
    /// ordered by tag.
    async fn tags_with_prefix(&self, kb: Option<&str>, prefix: &str) -> Result<Vec<TagCount>>;

    // ---- settings

    /// The setting's value, if it is set.
    async fn get_setting(&self, scope: &SettingScope, key: &str) -> Result<Option<Value>>;
    /// `NotFound` when a KB scope names a missing KB.
    async fn set_setting(&self, scope: &SettingScope, key: &str, value: &Value) -> Result<()>;
    /// Removes a setting. `Ok(false)` if it was not set.
    async fn delete_setting(&self, scope: &SettingScope, key: &str) -> Result<bool>;
    /// All settings of a scope, ordered by key.
    async fn list_settings(&self, scope: &SettingScope) -> Result<Vec<(String, Value)>>;

    // ---- stars

    /// Stars an entry (appended last). Starring twice keeps the first position.
    async fn star(&self, key: &EntryKey) -> Result<()>;
    /// Removes an entry's star. `Ok(false)` if it was not starred.
    async fn unstar(&self, key: &EntryKey) -> Result<bool>;
    /// Starred entries in starring order, optionally in one KB.
    async fn starred(&self, kb: Option<&str>) -> Result<Vec<EntryKey>>;

    // ---- collections

    /// `AlreadyExists` when the KB already has a collection of this name.
    async fn create_collection(
        &self,
        kb: &str,
        name: &str,
        description: &str,
    ) -> Result<Collection>;
    /// Deletes a collection; its entries are kept. `Ok(false)` if it did not exist.
    async fn delete_collection(&self, kb: &str, name: &str) -> Result<bool>;
    /// Collections of a KB, ordered by name.
    async fn list_collections(&self, kb: &str) -> Result<Vec<Collection>>;
    /// Adds an entry at `position` (0-based, clamped; `None` = last). Adding a member
    /// again moves it.
    async fn add_to_collection(
        &self,
        kb: &str,
        name: &str,
        id: &str,
        position: Option<usize>,
    ) -> Result<()>;
    /// Removes an entry from a collection. `Ok(false)` if it was not a member; `NotFound` when the collection is missing.
    async fn remove_from_collection(&self, kb: &str, name: &str, id: &str) -> Result<bool>;
    /// Member ids in collection order. `NotFound` when the collection is missing.
    async fn collection_entries(&self, kb: &str, name: &str) -> Result<Vec<String>>;
}

/// Compare-and-set primitives for agents that share work.
#[async_trait]
pub trait CoordinationStore: Send + Sync + std::fmt::Debug {
    /// Atomically moves an entry from `expected_status` (`None` = no status) to
    /// `new_status` and sets `assignee`, only if it still has the expected status.
    async fn claim(
        &self,
        key: &EntryKey,
        expected_status: Option<&str>,
        new_status: &str,
        assignee: &str,
    ) -> Result<ClaimOutcome>;
    /// Atomically sets the metadata value at a dotted `path` to `new` only if it currently
    /// equals `expected` (`None` = absent). Intermediate objects are created as needed.
    async fn cas_metadata(
        &self,
        key: &EntryKey,
        path: &str,
        expected: Option<&Value>,
        new: &Value,
    ) -> Result<CasOutcome>;
}

/// Health and housekeeping.
#[async_trait]
pub trait HealthStore: Send + Sync + std::fmt::Debug {
    /// The backend's state: schema version, counts, embedding space and connection pool.
    async fn health(&self) -> Result<HealthReport>;

    /// Refreshes the engine's planner statistics and index housekeeping after a bulk load
    /// (Postgres `ANALYZE`, SQLite `PRAGMA optimize` and FTS5 merge). Never changes any
    /// result; without it the engine catches up on its own later (autovacuum), and queries
    /// right after a large import may run with poor plans meanwhile.
    async fn optimize(&self) -> Result<()>;
}

/// Conveniences composed from the protocol, for every [`Store`] (including
/// `dyn Store`). Backends never implement them.
#[async_trait]
pub trait StoreExt: Store {
    /// Inserts or replaces one entry. `NotFound` if its KB does not exist.
    async fn upsert_entry(&self, entry: &NewEntry) -> Result<Entry> {
        let mut stored = self.upsert_entries(std::slice::from_ref(entry)).await?;
        Ok(stored.remove(0))
    }
    /// Stores (replaces) the entry's vector: one passage standing for the whole entry.
    /// `DimensionMismatch` when its length is not the space's dimension; `InvalidInput`
    /// when no space is fixed, the vector is zero or not finite; `NotFound` when the entry
    /// is missing.
    async fn put_vector(&self, key: &EntryKey, vector: &[f32]) -> Result<()> {
        self.put_vectors(&[(key.clone(), vector.to_vec())]).await
    }
    /// Stores many single-passage vectors in one transaction (all or nothing), with the
    /// same checks as [`put_vector`](Self::put_vector).
    async fn put_vectors(&self, items: &[(EntryKey, Vec<f32>)]) -> Result<()> {
        let items: Vec<EntryPassages> = items
            .iter()
            .map(|(key, vector)| EntryPassages {
                key: key.clone(),
                passages: vec![PassageVector {
                    text: None,
                    vector: vector.clone(),
                }],
            })
            .collect();
        self.put_passages(&items).await
    }
    /// Nearest neighbours of the entry's first passage vector, excluding the entry itself.
    /// `NotFound` when the entry has no vector.
    async fn similar(&self, key: &EntryKey, k: usize, filter: &Filter) -> Result<Vec<SemanticHit>> {
        check_k(k)?;
        filter.validate()?;
        let vector = self
            .get_vector(key)
            .await?
            .ok_or_else(|| StorageError::not_found(format!("vector of entry {key}")))?;
        let query = SemanticQuery {
            vector,
            // One more than asked, since the entry finds itself (within MAX_K, so at
            // k = MAX_K at most MAX_K - 1 neighbours come back).
            k: (k + 1).min(MAX_K),
            min_score: None,
            filter: filter.clone(),
        };
        let mut hits = self.semantic_search(&query).await?;
        hits.retain(|h| h.entry.kb != key.kb || h.entry.id != key.id);
        hits.truncate(k);
        for (i, h) in hits.iter_mut().enumerate() {
            h.rank = i + 1;
        }
        Ok(hits)
    }
}

impl<T: Store + ?Sized> StoreExt for T {}
