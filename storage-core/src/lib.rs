//! The storage protocol for knowledge bases and agent memory.
//!
//! - [`Store`] (in [`protocol`]) is the protocol: nine area traits every backend
//!   implements, and [`StoreExt`] with the conveniences built on them; its doc holds the
//!   contract.
//! - [`types`] and [`filter`] are the domain types; [`query`] is the search query language
//!   every backend compiles to its own dialect.
//! - [`StorageError`] is the one error type, with meaning-based kinds.
//!
//! This crate depends on no database crate.

#![warn(missing_docs)]

pub mod error;
pub mod filter;
pub mod graph;
pub mod protocol;
pub mod query;
pub mod text;
pub mod types;

pub use error::{BoxError, ConstraintKind, Result, StorageError};
pub use filter::{
    metadata_get, metadata_path_segments, metadata_set, tag_matches_prefix, Filter,
    LifecycleFilter, MetadataEq, Sort, SortField, SortOrder, MAX_OFFSET, MAX_PAGE_SIZE,
};
pub use graph::{GraphBuilder, RawEdge};
pub use protocol::{
    CoordinationStore, EntryStore, GraphStore, HealthStore, KbStore, OrganiseStore, QueueStore,
    SearchStore, Store, StoreExt, VectorStore,
};
/// Every protocol trait, for code that calls the protocol on a concrete backend type
/// (`use storage_core::prelude::*;`); `dyn Store` needs no import.
pub mod prelude {
    pub use crate::protocol::{
        CoordinationStore, EntryStore, GraphStore, HealthStore, KbStore, OrganiseStore, QueueStore,
        SearchStore, Store, StoreExt, VectorStore,
    };
}

pub use query::{any_words_query, parse_query, QueryNode};
pub use types::*;

/// Checks a vector before it is stored or searched: right length, finite, non-zero, and
/// a norm that can divide: its squared norm, summed in `f32` as [`normalized`] and
/// pgvector's cosine distance both do, must be a normal positive `f32`. A vector like
/// `[1e-23; d]` squares to 0 (underflow) and `[1e20; d]` to infinity (overflow); either
/// would normalise to NaN/zero and score as NaN, so both are rejected.
pub fn check_vector(vector: &[f32], dimension: usize) -> Result<()> {
    if vector.len() != dimension {
        return Err(StorageError::DimensionMismatch {
            expected: dimension,
            actual: vector.len(),
        });
    }
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(StorageError::invalid_input(
            "vector contains NaN or infinite values",
        ));
    }
    if vector.iter().all(|&x| x == 0.0) {
        return Err(StorageError::invalid_input(
            "vector is all zeros; cosine similarity is undefined for it",
        ));
    }
    if !squared_norm(vector).is_normal() {
        return Err(StorageError::invalid_input(
            "vector's length is too small or too large to normalise in 32-bit floats \
             (its squared norm underflows or overflows); scale it towards unit length",
        ));
    }
    Ok(())
}

/// The sum of squares in `f32`, in order: the one computation [`check_vector`] and
/// [`normalized`] share, so every vector that passes the check normalises finitely.
fn squared_norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>()
}

/// Returns `v / |v|` (callers check the vector first with [`check_vector`]).
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = squared_norm(v).sqrt();
    v.iter().map(|x| x / norm).collect()
}

/// Checks passages before they are stored: at least one and at most
/// [`MAX_PASSAGES_PER_ENTRY`] per entry, every vector as in [`check_vector`], no entry
/// twice in one batch (the result would depend on write order).
pub fn check_passages(items: &[EntryPassages], dimension: usize) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for item in items {
        if item.passages.is_empty() {
            return Err(StorageError::invalid_input(format!(
                "entry {} has no passages; delete_vector removes an entry's vectors",
                item.key
            )));
        }
        if item.passages.len() > MAX_PASSAGES_PER_ENTRY {
            return Err(StorageError::invalid_input(format!(
                "entry {} has {} passages; at most {MAX_PASSAGES_PER_ENTRY} are allowed",
                item.key,
                item.passages.len()
            )));
        }
        if !seen.insert(&item.key) {
            return Err(StorageError::invalid_input(format!(
                "entry {} appears twice in one put_passages batch",
                item.key
            )));
        }
        for p in &item.passages {
            check_vector(&p.vector, dimension)?;
            if p.text.as_deref().is_some_and(|t| t.contains('\0')) {
                return Err(StorageError::invalid_input(format!(
                    "a passage of entry {} contains a NUL character (\\0), which is not allowed in stored text",
                    item.key
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What passes the check normalises to finite values of unit length; vectors whose
    /// squared norm underflows or overflows in f32 are rejected.
    #[test]
    fn accepted_vectors_normalise_finitely() {
        for bad in [
            vec![1e-23f32; 4],
            vec![1e-30, 0.0, 0.0, 0.0],
            vec![f32::MIN_POSITIVE, 0.0, 0.0, 0.0],
            vec![1e20f32; 4],
            vec![f32::MAX, 0.0, 0.0, 0.0],
        ] {
            assert!(
                matches!(
                    check_vector(&bad, 4),
                    Err(StorageError::InvalidInput { .. })
                ),
                "{bad:?}"
            );
        }
        for good in [
            vec![1e-19f32; 4],
            vec![1e18f32, 1.0, 0.0, 0.0],
            vec![0.3, -0.2, 0.0, 1.0],
        ] {
            check_vector(&good, 4).unwrap();
            let n = normalized(&good);
            assert!(n.iter().all(|x| x.is_finite()), "{good:?} -> {n:?}");
            let len: f32 = n.iter().map(|x| x * x).sum();
            assert!((len - 1.0).abs() < 1e-5, "{good:?} -> {len}");
        }
    }
}
