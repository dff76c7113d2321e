//! The storage protocol for knowledge bases and agent memory.
//!
//! - [`Store`] (in [`protocol`]) is the one trait every backend implements; its doc holds
//!   the contract.
//! - [`types`] and [`filter`] are the domain types; [`query`] is the search query language
//!   every backend compiles to its own dialect.
//! - [`StorageError`] is the one error type, with meaning-based kinds.
//!
//! This crate depends on no database crate.

pub mod error;
pub mod filter;
pub mod graph;
pub mod protocol;
pub mod query;
pub mod types;

pub use error::{BoxError, Result, StorageError};
pub use filter::{
    metadata_get, metadata_path_segments, metadata_set, tag_matches_prefix, Filter,
    LifecycleFilter, MetadataEq, Sort, SortField, SortOrder, MAX_OFFSET, MAX_PAGE_SIZE,
};
pub use graph::{GraphBuilder, RawEdge};
pub use protocol::Store;
pub use query::{any_words_query, parse_query, QueryNode};
pub use types::*;

/// Checks a vector before it is stored or searched: right length, finite, non-zero.
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
    Ok(())
}

/// Returns `v / |v|` (callers check the vector first with [`check_vector`]).
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
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
        }
    }
    Ok(())
}
