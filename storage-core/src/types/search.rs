//! Full-text and semantic hits, snippets and nearest-neighbour queries.

use serde::{Deserialize, Serialize};

use super::*;
use crate::error::{Result, StorageError};

/// A snippet of matched text with byte ranges to highlight.
///
/// Ranges are kept separate from the text (not inline markers) so that HTML, terminal and
/// JSON callers each render highlights their own way without escaping surprises.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snippet {
    /// The snippet's plain text.
    pub text: String,
    /// Byte ranges `[start, end)` into `text`, sorted, non-overlapping.
    pub highlights: Vec<(usize, usize)>,
}

impl Snippet {
    /// Parses text where highlights are delimited by [`HIGHLIGHT_OPEN`]/[`HIGHLIGHT_CLOSE`].
    pub fn from_marked(marked: &str) -> Self {
        let mut text = String::with_capacity(marked.len());
        let mut highlights = Vec::new();
        let mut start = None;
        for c in marked.chars() {
            match c {
                HIGHLIGHT_OPEN => start = Some(text.len()),
                HIGHLIGHT_CLOSE => {
                    if let Some(s) = start.take() {
                        if text.len() > s {
                            highlights.push((s, text.len()));
                        }
                    }
                }
                c => text.push(c),
            }
        }
        Self { text, highlights }
    }

    /// Renders with the given markers, e.g. `("<mark>", "</mark>")` or `("**", "**")`.
    pub fn marked(&self, open: &str, close: &str) -> String {
        let mut out = String::with_capacity(self.text.len() + 8 * self.highlights.len());
        let mut pos = 0;
        for &(s, e) in &self.highlights {
            out.push_str(&self.text[pos..s]);
            out.push_str(open);
            out.push_str(&self.text[s..e]);
            out.push_str(close);
            pos = e;
        }
        out.push_str(&self.text[pos..]);
        out
    }

    /// The highlighted fragments.
    pub fn highlighted(&self) -> Vec<&str> {
        self.highlights
            .iter()
            .map(|&(s, e)| &self.text[s..e])
            .collect()
    }
}

/// Marker backends put around matches when asking their engine for a snippet
/// (control characters, which validated content never contains in practice).
pub const HIGHLIGHT_OPEN: char = '\u{2}';
/// See [`HIGHLIGHT_OPEN`].
pub const HIGHLIGHT_CLOSE: char = '\u{3}';

/// One full-text search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The matching entry.
    pub entry: Entry,
    /// Relevance: higher is better, always `>= 0`, unbounded above; comparable only within
    /// one result list (search-hybrid normalises it to `[0, 1]`).
    pub score: f64,
    /// 1-based position in the full ranking (offset included).
    pub rank: usize,
    /// Matched text to show, with its highlights.
    pub snippet: Snippet,
}

/// One full-text match without its entry or snippet ([`SearchStore::search_ranked`](crate::SearchStore::search_ranked)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedKey {
    /// The matching entry.
    pub key: EntryKey,
    /// As [`SearchHit::score`].
    pub score: f64,
    /// As [`SearchHit::rank`].
    pub rank: usize,
}

/// One semantic search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SemanticHit {
    /// The matching entry.
    pub entry: Entry,
    /// Cosine similarity in `[-1, 1]` of the entry's best passage, higher is more similar.
    pub score: f32,
    /// 1-based position.
    pub rank: usize,
    /// Index of the best-matching passage (0 for single-vector entries).
    pub passage: u32,
    /// That passage's text, when it was stored with one (`None`: the vector stands for the
    /// whole entry).
    pub passage_text: Option<String>,
}

/// Most passages one entry may have (a 40 MB body split into 1 KB passages).
pub const MAX_PASSAGES_PER_ENTRY: usize = 40_000;

/// One passage of an entry's embeddable text with its vector, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassageVector {
    /// The passage text shown as the snippet of a semantic hit; `None` when the vector
    /// stands for the whole entry.
    pub text: Option<String>,
    /// The passage's vector.
    pub vector: Vec<f32>,
}

/// All passages of one entry; writing them replaces the entry's previous passages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryPassages {
    /// The entry the passages belong to.
    pub key: EntryKey,
    /// In document order; index `i` is passage `i`. Never empty.
    pub passages: Vec<PassageVector>,
}

/// A stored passage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPassage {
    /// Position among the entry's passages, from 0.
    pub index: u32,
    /// The passage text; `None` when the vector stands for the whole entry.
    pub text: Option<String>,
    /// The passage's vector.
    pub vector: Vec<f32>,
}

/// Largest `k` of a nearest-neighbour query ([`SemanticQuery::k`], `Store::similar`): the
/// largest page, [`MAX_PAGE_SIZE`](crate::MAX_PAGE_SIZE). `k` sizes buffers and over-fetch
/// arithmetic in the backends, so an unchecked `usize` from a caller could abort the
/// process (allocation) or overflow.
pub const MAX_K: usize = crate::filter::MAX_PAGE_SIZE;

/// Rejects a `k` above [`MAX_K`]. `k = 0` is valid and returns nothing.
pub fn check_k(k: usize) -> Result<()> {
    if k > MAX_K {
        return Err(StorageError::invalid_input(format!(
            "k = {k} is larger than the maximum of {MAX_K} nearest neighbours"
        )));
    }
    Ok(())
}

/// A nearest-neighbour query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SemanticQuery {
    /// The query vector.
    pub vector: Vec<f32>,
    /// Most hits to return, at most [`MAX_K`].
    pub k: usize,
    /// Drop hits whose cosine similarity is below this.
    pub min_score: Option<f32>,
    /// Applied before the top-k cut.
    pub filter: crate::Filter,
}

impl SemanticQuery {
    /// The `k` nearest entries to `vector`, with the default filter and no minimum score.
    pub fn new(vector: Vec<f32>, k: usize) -> Self {
        Self {
            vector,
            k,
            min_score: None,
            filter: crate::Filter::default(),
        }
    }
    /// Sets the filter.
    pub fn filter(mut self, f: crate::Filter) -> Self {
        self.filter = f;
        self
    }
    /// Sets the minimum score.
    pub fn min_score(mut self, s: f32) -> Self {
        self.min_score = Some(s);
        self
    }

    /// Rejects what no backend can run: `k` above [`MAX_K`], a `min_score` that is not a
    /// number (NaN compares false in Rust and passes everything in Postgres, so the
    /// backends would disagree), an invalid filter. The vector is checked against the
    /// store's dimension by the backend ([`check_vector`](crate::check_vector)).
    pub fn validate(&self) -> Result<()> {
        check_k(self.k)?;
        if self.min_score.is_some_and(|m| !m.is_finite()) {
            return Err(StorageError::invalid_input(
                "min_score must be a finite number",
            ));
        }
        self.filter.validate()
    }
}
