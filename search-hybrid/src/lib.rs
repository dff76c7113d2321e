//! One [`Searcher`] for keyword, semantic and hybrid search over any storage backend.
//!
//! - [`fusion`] holds the pure score arithmetic (normalisation, RRF, convex combination),
//!   unit-tested on its own.
//! - [`Searcher`] runs the legs against a [`storage_core::Store`] and an
//!   [`embed::Embedder`], applies the same filter to both, fuses, and pages.
//!
//! Every hit's `score` is in `[0, 1]`, higher is better, and comes with an
//! [`Explanation`]: each leg's rank, raw score and normalised score.

pub mod fusion;
mod searcher;

pub use fusion::{Fusion, LegScore};
pub use searcher::{
    Explanation, Hit, SearchConfig, SearchError, SearchMode, SearchRequest, SearchResponse,
    Searcher, DEFAULT_PAGE_SIZE,
};
