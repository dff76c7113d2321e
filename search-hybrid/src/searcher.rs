//! The [`Searcher`]: keyword, semantic and hybrid search over one store and one embedder.

use std::collections::HashMap;
use std::sync::Arc;

use embed::{EmbedError, Embedder};
use serde::Serialize;
use storage_core::{
    Entry, EntryKey, Filter, SemanticQuery, Snippet, StorageError, Store, MAX_PAGE_SIZE,
};

use crate::fusion::{fuse, normalize_keyword, normalize_semantic, Fusion, LegScore};

/// Hits per page when the request's filter sets no limit.
pub const DEFAULT_PAGE_SIZE: usize = 10;

/// Which legs a search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Full-text only (the store's query language: AND by default, OR, NOT, "phrases",
    /// prefix*).
    Keyword,
    /// Nearest passages by the embedder's vectors.
    Semantic,
    /// Both, fused.
    #[default]
    Hybrid,
}

impl std::str::FromStr for SearchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keyword" => Ok(Self::Keyword),
            "semantic" => Ok(Self::Semantic),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(format!(
                "unknown search mode {other:?}: use keyword, semantic or hybrid"
            )),
        }
    }
}

/// Tuning for hybrid search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SearchConfig {
    pub fusion: Fusion,
    pub keyword_weight: f64,
    pub semantic_weight: f64,
    /// Candidates each leg fetches for fusion. Pages that end beyond it fetch deeper;
    /// pages within it are consistent with each other (disjoint and complete).
    pub depth: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            fusion: Fusion::default(),
            keyword_weight: 1.0,
            semantic_weight: 1.0,
            depth: 100,
        }
    }
}

/// A search: the query, the mode, and a filter whose `limit`/`offset` select the page.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub query: String,
    pub mode: SearchMode,
    pub filter: Filter,
    /// Treat the query as free text: the keyword leg matches entries with any of its
    /// words ([`storage_core::any_words_query`]) instead of parsing the query language.
    /// For questions and pasted text; hybrid search from a chat box wants this.
    pub any_words: bool,
}

impl SearchRequest {
    pub fn new(query: impl Into<String>, mode: SearchMode) -> Self {
        Self {
            query: query.into(),
            mode,
            filter: Filter::default(),
            any_words: false,
        }
    }
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }
    pub fn any_words(mut self) -> Self {
        self.any_words = true;
        self
    }
}

/// Why a hit scored what it did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The keyword leg's view, if it returned the entry.
    pub keyword: Option<LegScore>,
    /// The semantic leg's view, if it returned the entry.
    pub semantic: Option<LegScore>,
    /// How the final score was made: `keyword`, `semantic`, or the fusion.
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub entry: Entry,
    /// In `[0, 1]`, higher is better. Keyword mode: the score relative to the best match;
    /// semantic mode: cosine similarity (clamped at 0); hybrid: the fused score (see
    /// [`crate::fusion`]).
    pub score: f64,
    /// 1-based position in the full ranking (offset included).
    pub rank: usize,
    /// The keyword snippet when the keyword leg matched, else the best passage.
    pub snippet: Snippet,
    /// Index of the best passage, when the semantic leg returned the entry.
    pub passage: Option<u32>,
    pub explanation: Explanation,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResponse {
    pub hits: Vec<Hit>,
    /// The mode asked for.
    pub mode: SearchMode,
    /// The legs that actually contributed (hybrid may degrade to one).
    pub legs: Vec<SearchMode>,
    /// Set when fewer legs ran than asked, saying why (e.g. no vectors yet).
    pub degraded: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The store's vectors were made by another model than the configured one.
    #[error(
        "the store's vectors were made by {stored_model} ({stored_dimension} dims), but the \
         configured embedder is {configured_model} ({configured_dimension} dims); configure \
         {stored_model} again, or re-embed with the new model into a fresh store (new SQLite \
         file or Postgres schema) and re-import your entries"
    )]
    ModelMismatch {
        stored_model: String,
        stored_dimension: usize,
        configured_model: String,
        configured_dimension: usize,
    },
}

/// Keyword, semantic and hybrid search over one store with one embedder.
#[derive(Debug, Clone)]
pub struct Searcher {
    store: Arc<dyn Store>,
    embedder: Arc<dyn Embedder>,
    config: SearchConfig,
}

/// One leg's candidates, best first.
struct Leg {
    hits: Vec<LegHit>,
}

/// A candidate; a hybrid search's keyword leg ranks keys only (`search_ranked`), and the
/// page's entries and snippets are loaded after fusion ([`Searcher::complete`]).
struct LegHit {
    key: EntryKey,
    entry: Option<Entry>,
    score: LegScore,
    snippet: Option<Snippet>,
    passage: Option<u32>,
}

/// A ranked candidate before its page is loaded.
struct Fused {
    key: EntryKey,
    entry: Option<Entry>,
    /// The snippet at hand: the keyword leg's when it matched, else the best passage;
    /// `None`: the keyword leg matched and its snippet is still to be cut.
    snippet: Option<Snippet>,
    score: f64,
    rank: usize,
    passage: Option<u32>,
    explanation: Explanation,
}

impl Searcher {
    /// Checks that the store's embedding space, if fixed, is the embedder's: a store
    /// embedded by another model cannot be searched semantically with this one.
    pub async fn new(
        store: Arc<dyn Store>,
        embedder: Arc<dyn Embedder>,
        config: SearchConfig,
    ) -> Result<Self, SearchError> {
        if let Some(stored) = store.embedding_space().await? {
            let configured = embedder.space();
            if stored != configured {
                return Err(SearchError::ModelMismatch {
                    stored_model: stored.model,
                    stored_dimension: stored.dimension,
                    configured_model: configured.model,
                    configured_dimension: configured.dimension,
                });
            }
        }
        Ok(Self {
            store,
            embedder,
            config,
        })
    }

    pub fn config(&self) -> &SearchConfig {
        &self.config
    }

    pub async fn search(&self, req: &SearchRequest) -> Result<SearchResponse, SearchError> {
        req.filter.validate()?;
        let limit = req.filter.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        let offset = req.filter.offset;
        // A single leg needs only the page (the store ranks it, and keyword snippets are
        // built per hit); fusion needs `depth` candidates from each leg.
        // Saturating, though `validate` bounds both: a page past the end is empty, never a panic.
        let depth = if req.mode == SearchMode::Hybrid {
            self.config.depth.max(offset.saturating_add(limit))
        } else {
            offset.saturating_add(limit)
        }
        .clamp(1, MAX_PAGE_SIZE);
        let mut candidates = req.filter.clone();
        candidates.limit = Some(depth);
        candidates.offset = 0;

        let mut degraded = None;
        let keyword_query = if req.any_words {
            storage_core::any_words_query(&req.query)
        } else {
            Some(req.query.clone())
        };
        let keyword_query = keyword_query.as_deref();
        let (keyword, semantic) = match req.mode {
            SearchMode::Keyword => (
                Some(self.keyword(keyword_query, &candidates, false).await?),
                None,
            ),
            SearchMode::Semantic => match self.semantic(&req.query, &candidates, depth).await? {
                Ok(leg) => (None, Some(leg)),
                Err(why) => {
                    degraded = Some(why);
                    (None, Some(Leg { hits: Vec::new() }))
                }
            },
            SearchMode::Hybrid => {
                let (k, s) = tokio::join!(
                    self.keyword(keyword_query, &candidates, true),
                    self.semantic(&req.query, &candidates, depth),
                );
                let k = k?;
                match s? {
                    Ok(s) => (Some(k), Some(s)),
                    Err(why) => {
                        degraded = Some(format!("{why}; keyword results only"));
                        (Some(k), None)
                    }
                }
            }
        };
        let mut legs = Vec::new();
        if keyword.is_some() {
            legs.push(SearchMode::Keyword);
        }
        if semantic.is_some() && degraded.is_none() {
            legs.push(SearchMode::Semantic);
        }
        let mut hits = self.combine(req.mode, keyword, semantic);
        let page: Vec<Fused> = hits.drain(..).skip(offset).take(limit).collect();
        Ok(SearchResponse {
            hits: self.complete(keyword_query, page).await?,
            mode: req.mode,
            legs,
            degraded,
        })
    }

    /// The keyword leg for `query` (`None`: free text without words, nothing to match);
    /// with `ranked_only`, keys and scores without entries or snippets.
    async fn keyword(
        &self,
        query: Option<&str>,
        filter: &Filter,
        ranked_only: bool,
    ) -> Result<Leg, SearchError> {
        let Some(query) = query else {
            return Ok(Leg { hits: Vec::new() });
        };
        let (ranked, mut full): (Vec<(EntryKey, f64, usize)>, Vec<_>) = if ranked_only {
            let hits = self.store.search_ranked(query, filter).await?;
            let ranked = hits.into_iter().map(|h| (h.key, h.score, h.rank)).collect();
            (ranked, Vec::new())
        } else {
            let hits = self.store.search(query, filter).await?;
            let ranked = hits
                .iter()
                .map(|h| (h.entry.key(), h.score, h.rank))
                .collect();
            let full = hits
                .into_iter()
                .map(|h| (Some(h.entry), Some(h.snippet)))
                .collect();
            (ranked, full)
        };
        let raw: Vec<f64> = ranked.iter().map(|h| h.1).collect();
        let norm = normalize_keyword(&raw);
        full.resize_with(ranked.len(), || (None, None));
        Ok(Leg {
            hits: ranked
                .into_iter()
                .zip(norm)
                .zip(full)
                .map(
                    |(((key, raw, rank), normalized), (entry, snippet))| LegHit {
                        key,
                        entry,
                        score: LegScore {
                            rank,
                            raw,
                            normalized,
                        },
                        snippet,
                        passage: None,
                    },
                )
                .collect(),
        })
    }

    /// Loads what a page of candidates still lacks: the entries only the keyword leg
    /// ranked (by key), and the keyword snippets of the hits it matched. A candidate whose
    /// entry was deleted since it was ranked is left out.
    async fn complete(
        &self,
        query: Option<&str>,
        page: Vec<Fused>,
    ) -> Result<Vec<Hit>, SearchError> {
        let missing: Vec<EntryKey> = page
            .iter()
            .filter(|f| f.entry.is_none())
            .map(|f| f.key.clone())
            .collect();
        let mut entries: HashMap<EntryKey, Entry> = if missing.is_empty() {
            HashMap::new()
        } else {
            self.store
                .get_entries(&missing)
                .await?
                .into_iter()
                .map(|e| (e.key(), e))
                .collect()
        };
        let unsnipped: Vec<EntryKey> = page
            .iter()
            .filter(|f| f.snippet.is_none())
            .map(|f| f.key.clone())
            .collect();
        let mut snippets: HashMap<EntryKey, Snippet> = match query {
            Some(q) if !unsnipped.is_empty() => unsnipped
                .iter()
                .cloned()
                .zip(self.store.snippets(q, &unsnipped).await?)
                .collect(),
            _ => HashMap::new(),
        };
        Ok(page
            .into_iter()
            .filter_map(|f| {
                let entry = f.entry.or_else(|| entries.remove(&f.key))?;
                let snippet = f
                    .snippet
                    .or_else(|| snippets.remove(&f.key))
                    .unwrap_or_default();
                Some(Hit {
                    entry,
                    score: f.score,
                    rank: f.rank,
                    snippet,
                    passage: f.passage,
                    explanation: f.explanation,
                })
            })
            .collect())
    }

    /// The semantic leg, or (as the inner error) why it cannot run: no vectors yet, or the
    /// embedding provider is unreachable. Other errors are errors.
    async fn semantic(
        &self,
        query: &str,
        filter: &Filter,
        depth: usize,
    ) -> Result<Result<Leg, String>, SearchError> {
        if self.store.embedding_space().await?.is_none() {
            return Ok(Err("no vectors yet (nothing has been embedded)".into()));
        }
        let vector = match embed::embed_one(self.embedder.as_ref(), query).await {
            Ok(v) => v,
            Err(e) if e.is_transient() => {
                return Ok(Err(format!("the semantic leg failed: {e}")));
            }
            Err(e) => return Err(e.into()),
        };
        let mut q = SemanticQuery::new(vector, depth);
        q.filter = filter.clone();
        q.filter.limit = None;
        let hits = self.store.semantic_search(&q).await?;
        if hits.is_empty() {
            // Only now (rarely) pay for a count: no hits because nothing is embedded yet
            // is worth saying; no hits because the filter selects nothing is not.
            let coverage = self.store.vector_coverage(&Filter::new()).await?;
            if coverage.with_vector == 0 {
                return Ok(Err(format!(
                    "no vectors yet (0 of {} entries embedded)",
                    coverage.without_vector
                )));
            }
        }
        Ok(Ok(Leg {
            hits: hits
                .into_iter()
                .map(|h| {
                    let text = h
                        .passage_text
                        .clone()
                        .unwrap_or_else(|| passage_fallback(&h.entry));
                    LegHit {
                        key: h.entry.key(),
                        score: LegScore {
                            rank: h.rank,
                            raw: h.score as f64,
                            normalized: normalize_semantic(h.score as f64),
                        },
                        entry: Some(h.entry),
                        snippet: Some(Snippet {
                            text,
                            highlights: Vec::new(),
                        }),
                        passage: Some(h.passage),
                    }
                })
                .collect(),
        }))
    }

    /// Fuses the legs (or passes one through), best first, ties by (kb, id).
    fn combine(&self, mode: SearchMode, keyword: Option<Leg>, semantic: Option<Leg>) -> Vec<Fused> {
        struct Acc {
            entry: Option<Entry>,
            /// The keyword leg's snippet (`None` until loaded when it matched).
            keyword_snippet: Option<Snippet>,
            passage_snippet: Option<Snippet>,
            passage: Option<u32>,
            keyword: Option<LegScore>,
            semantic: Option<LegScore>,
        }
        let mut by_key: HashMap<EntryKey, Acc> = HashMap::new();
        let both = keyword.is_some() && semantic.is_some();
        for (leg, is_keyword) in [(keyword, true), (semantic, false)] {
            for h in leg.map(|l| l.hits).unwrap_or_default() {
                let acc = by_key.entry(h.key).or_insert_with(|| Acc {
                    entry: None,
                    keyword_snippet: None,
                    passage_snippet: None,
                    passage: None,
                    keyword: None,
                    semantic: None,
                });
                if acc.entry.is_none() {
                    acc.entry = h.entry;
                }
                if is_keyword {
                    acc.keyword = Some(h.score);
                    acc.keyword_snippet = h.snippet;
                } else {
                    acc.semantic = Some(h.score);
                    acc.passage = h.passage;
                    acc.passage_snippet = h.snippet;
                }
            }
        }
        let c = &self.config;
        let method = if both {
            match c.fusion {
                Fusion::Rrf { k } => format!("rrf(k={k})"),
                Fusion::Convex => "convex".to_owned(),
            }
        } else if mode == SearchMode::Semantic {
            "semantic".to_owned()
        } else {
            "keyword".to_owned()
        };
        let mut hits: Vec<Fused> = by_key
            .into_iter()
            .map(|(key, a)| {
                let score = if both {
                    fuse(
                        c.fusion,
                        a.keyword.as_ref(),
                        c.keyword_weight,
                        a.semantic.as_ref(),
                        c.semantic_weight,
                    )
                } else {
                    a.keyword.or(a.semantic).map_or(0.0, |l| l.normalized)
                };
                // The keyword snippet when the keyword leg matched, else the passage.
                let snippet = if a.keyword.is_some() {
                    a.keyword_snippet
                } else {
                    a.passage_snippet
                };
                Fused {
                    key,
                    entry: a.entry,
                    snippet,
                    score,
                    rank: 0,
                    passage: a.passage,
                    explanation: Explanation {
                        keyword: a.keyword,
                        semantic: a.semantic,
                        method: method.clone(),
                    },
                }
            })
            .collect();
        // Single-leg results keep the leg's own order (its ranking may use more than the
        // normalised score shows, e.g. ties); fused results sort by the fused score.
        hits.sort_by(|a, b| {
            let leg_rank = |h: &Fused| {
                h.explanation
                    .keyword
                    .or(h.explanation.semantic)
                    .map_or(usize::MAX, |l| l.rank)
            };
            if both {
                b.score
                    .total_cmp(&a.score)
                    .then_with(|| (&a.key.kb, &a.key.id).cmp(&(&b.key.kb, &b.key.id)))
            } else {
                leg_rank(a).cmp(&leg_rank(b))
            }
        });
        for (i, h) in hits.iter_mut().enumerate() {
            h.rank = i + 1;
        }
        hits
    }
}

/// A semantic hit stored without passage text stands for the whole entry: show its
/// summary, or the start of its body.
fn passage_fallback(e: &Entry) -> String {
    let source = if e.summary.is_empty() {
        &e.body
    } else {
        &e.summary
    };
    let mut end = source.len().min(300);
    while !source.is_char_boundary(end) {
        end -= 1;
    }
    source[..end].to_owned()
}
