//! The embedding space, passages and the embedding queue.

use serde::{Deserialize, Serialize};

use super::*;
use crate::error::{Result, StorageError};

/// The one embedding space a store holds: all vectors come from this model and have this
/// many dimensions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EmbeddingSpace {
    /// Id of the embedding model.
    pub model: String,
    /// Number of dimensions of every vector.
    pub dimension: usize,
}

impl EmbeddingSpace {
    /// A space from a model id and a dimension.
    pub fn new(model: impl Into<String>, dimension: usize) -> Self {
        Self {
            model: model.into(),
            dimension,
        }
    }

    /// Rejects a space no store can hold: no model id, or no dimensions.
    pub fn validate(&self) -> Result<()> {
        if self.dimension == 0 || self.model.trim().is_empty() {
            return Err(StorageError::invalid_input(
                "an embedding space needs a model id and a dimension above 0",
            ));
        }
        Ok(())
    }

    /// `self` is the stored space: `Ok` when `requested` is the same, `ModelMismatch`
    /// otherwise (the rule `ensure_embedding_space` applies on every backend).
    pub fn check_same(&self, requested: &EmbeddingSpace) -> Result<()> {
        if self == requested {
            return Ok(());
        }
        Err(StorageError::ModelMismatch {
            stored_model: self.model.clone(),
            stored_dimension: self.dimension,
            requested_model: requested.model.clone(),
            requested_dimension: requested.dimension,
        })
    }
}

/// How many entries have a vector, as [`vector_coverage`](crate::VectorStore::vector_coverage) counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorCoverage {
    /// Active entries that have a vector.
    pub with_vector: u64,
    /// Active entries that have none.
    pub without_vector: u64,
}

/// Longest lease [`claim_embedding_batch`](crate::Store::claim_embedding_batch) accepts.
/// A lease is how long a crashed worker's items stay unclaimable; a day is far beyond any
/// embedding batch, and the bound keeps `now + lease` inside every backend's timestamp
/// range (an unchecked `Duration::MAX` overflowed or wrapped to a lease in the past).
pub const MAX_LEASE: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// Rejects a lease above [`MAX_LEASE`].
pub fn check_lease(lease: std::time::Duration) -> Result<()> {
    if lease > MAX_LEASE {
        return Err(StorageError::invalid_input(format!(
            "lease of {} s is longer than the maximum of {} s (24 h)",
            lease.as_secs(),
            MAX_LEASE.as_secs()
        )));
    }
    Ok(())
}

/// Most characters of a failure's text a queue item keeps.
pub const MAX_QUEUE_ERROR_CHARS: usize = 4000;

/// The text a failed queue item keeps: its first [`MAX_QUEUE_ERROR_CHARS`] characters,
/// a NUL replaced by U+FFFD. A provider's message is not the caller's data: refusing it
/// (Postgres cannot store NUL) would lose the failure itself.
pub fn queue_error_text(error: &str) -> String {
    error
        .chars()
        .take(MAX_QUEUE_ERROR_CHARS)
        .map(|c| if c == '\0' { '\u{fffd}' } else { c })
        .collect()
}

/// One claimed item of the embedding queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    /// The entry to embed.
    pub key: EntryKey,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Hash of the embeddable text when claimed; completing with a stale hash keeps the
    /// item queued, so an edit made during embedding is not lost.
    pub text_hash: String,
    /// The claim's fencing token, new at every claim of the item. Completing or failing
    /// checks it: once a lease has run out and another worker claimed the item again,
    /// the first worker's late calls change nothing (they would otherwise clear the new
    /// owner's lease or replace its vectors).
    #[serde(default)]
    pub lease: u64,
}

/// What [`complete_with_passages`](crate::QueueStore::complete_with_passages) did with
/// one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Completion {
    /// The passages are written and the item left the queue.
    Completed,
    /// The passages are written, but the entry's text changed since the claim: the item
    /// stays queued (released for a new claim) so the new text gets embedded too.
    TextChanged,
    /// Another worker holds the item now (this claim's lease ran out and it was claimed
    /// again), or it already left the queue: nothing was written.
    LeaseLost,
    /// The entry was deleted since the claim: nothing to write.
    EntryGone,
}

/// What happened to a failed queue item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailOutcome {
    /// Back in the queue, claimable again.
    WillRetry {
        /// Failed attempts so far, this one included.
        attempts: u32,
    },
    /// Reached the attempt limit; kept with its error, no longer claimed.
    GaveUp {
        /// Failed attempts, this one included; the limit was reached.
        attempts: u32,
    },
    /// The item was not in the queue (completed, deleted, or never claimed).
    NotQueued,
    /// Another worker claimed the item since this claim's lease ran out: its attempt
    /// counts, not this one's.
    LeaseLost,
}

/// Embedding queue items by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStats {
    /// Waiting to be claimed (including items whose lease expired).
    pub pending: u64,
    /// Claimed by a worker, lease not expired.
    pub in_progress: u64,
    /// Gave up after too many attempts.
    pub failed: u64,
}

/// A queue item that gave up, with the last error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailedItem {
    /// The entry that could not be embedded.
    pub key: EntryKey,
    /// Failed attempts.
    pub attempts: u32,
    /// The last failure's error message.
    pub last_error: String,
}
