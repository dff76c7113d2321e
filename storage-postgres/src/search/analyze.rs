//! Text analysis in the client. Entries and queries are split into SQLite's tokens
//! ([`storage_core::text::tokens`]), each distinct word is stemmed once by the server's
//! dictionaries (`kb_lexize`, cached here), and the entry's index data — the weighted
//! term frequencies of its postings, its length and the tsvector that phrase queries are
//! checked against — is computed here and sent with the row.
//!
//! Why not `to_tsvector` on the server: its parser splits by the database's locale (in a
//! C-locale database `Crème` became `Cr me` and `Дом` was never lower-cased), keeps
//! `topic/ai` whole where SQLite splits it, fails above 1 MiB of tsvector, and its cost
//! (about 0.13 ms per entry) lands on the one shared server instead of on the writers.

use std::sync::Mutex;

use bytes::BufMut;
use rustc_hash::{FxHashMap, FxHashSet};
use storage_core::text::for_each_token;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::GenericClient;

/// FTS5's `porter` leaves tokens shorter or longer than these (in bytes) unstemmed.
const MIN_STEM_BYTES: usize = 3;
const MAX_STEM_BYTES: usize = 64;
/// Postgres' limits for one tsvector: lexeme bytes, positions per lexeme, the highest
/// position (larger ones are clamped to it, as `to_tsvector` does), and the total size.
const MAX_LEXEME_BYTES: usize = 2047;
const MAX_POSITIONS: usize = 256;
const MAX_POSITION: u16 = 16383;
/// What the tsvector of one entry may hold (lexemes and positions), below the 1 MiB
/// Postgres allows: the rest of a huge body is still indexed by its postings and ranked;
/// only phrase and NOT queries, which are checked against the tsvector, miss it.
const TSVECTOR_BUDGET: usize = 1_000_000;
/// Words the cache holds before it starts over (a few MiB; a vocabulary is rarely larger).
const CACHE_WORDS: usize = 1 << 18;

/// Field weights of BM25's term frequency: SQLite's `bm25()` column weights.
#[derive(Clone, Copy)]
pub(crate) enum Weight {
    /// The title (2).
    A,
    /// Tags and summary (1.5).
    B,
    /// The body (1).
    C,
}

impl Weight {
    fn tf(self) -> f32 {
        match self {
            Weight::A => 2.0,
            Weight::B => 1.5,
            Weight::C => 1.0,
        }
    }

    /// The two weight bits of a tsvector position (A = 3 … D = 0).
    fn bits(self) -> u16 {
        match self {
            Weight::A => 3 << 14,
            Weight::B => 2 << 14,
            Weight::C => 1 << 14,
        }
    }
}

/// Stems of words, as the store's text search configuration makes them.
pub(crate) struct Lexicon {
    /// Whether the configuration is `porter` (FTS5's length rule applies).
    porter: bool,
    /// A bounded cache: when full it is emptied rather than evicted entry by entry — a
    /// miss costs one row of a batched lookup, so recency tracking would buy little.
    cache: Mutex<FxHashMap<String, Vec<String>>>,
}

/// Lexemes of the words of one batch or query. (Fx hashing: the keys are the writer's
/// own words, hashed a few hundred times per entry; SipHash's flood resistance would
/// cost a tenth of the analysis.)
pub(crate) type Stems = FxHashMap<String, Vec<String>>;

impl Lexicon {
    pub(crate) fn new(porter: bool) -> Self {
        Self {
            porter,
            cache: Mutex::new(FxHashMap::default()),
        }
    }

    /// The lexemes of every word, from the cache or with one statement for the rest.
    pub(crate) async fn stems<C: GenericClient + Sync>(
        &self,
        client: &C,
        words: FxHashSet<String>,
    ) -> Result<Stems, tokio_postgres::Error> {
        let mut out = Stems::with_capacity_and_hasher(words.len(), Default::default());
        let mut missing = Vec::new();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            for w in words {
                if self.porter && !(MIN_STEM_BYTES..=MAX_STEM_BYTES).contains(&w.len()) {
                    out.insert(w.clone(), vec![w]);
                } else if let Some(l) = cache.get(&w) {
                    out.insert(w, l.clone());
                } else {
                    missing.push(w);
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let rows = client
            .query(
                "SELECT kb_lexize(w) FROM unnest($1::text[]) WITH ORDINALITY u(w, i) ORDER BY i",
                &[&missing],
            )
            .await?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() + missing.len() > CACHE_WORDS {
            cache.clear();
        }
        for (w, r) in missing.into_iter().zip(&rows) {
            let lexemes: Vec<String> = r.try_get(0)?;
            cache.insert(w.clone(), lexemes.clone());
            out.insert(w, lexemes);
        }
        Ok(out)
    }
}

/// The distinct tokens of texts (what [`Lexicon::stems`] needs for them).
pub(crate) fn words<'a>(texts: impl IntoIterator<Item = &'a str>) -> FxHashSet<String> {
    let mut words = FxHashSet::default();
    for text in texts {
        for_each_token(text, |t| {
            if !words.contains(t) {
                words.insert(t.to_owned());
            }
        });
    }
    words
}

/// What the index keeps of one entry.
pub(crate) struct Analysed {
    /// Distinct lexemes in byte order, with their field-weighted frequencies.
    pub terms: Vec<String>,
    pub tfs: Vec<f32>,
    /// Tokens in all fields (FTS5's row size).
    pub len: i32,
    pub tsv: TsVector,
}

impl Analysed {
    /// The terms when the tsvector lacks some of them (the text outgrew its budget),
    /// else `None`: the stored row then keeps them apart, for the trigger that takes
    /// them out of the frequencies when this text goes. (Sending them for every row
    /// doubled the server's time to receive a batch.)
    pub(crate) fn terms_beyond_tsvector(&self) -> Option<&[String]> {
        (self.tsv.0.len() < self.terms.len()).then_some(&self.terms[..])
    }
}

/// Analyses an entry's fields, in order (a position gap between fields keeps a phrase
/// from matching across two of them, as FTS5's columns do).
pub(crate) fn analyse(fields: &[(&str, Weight)], stems: &Stems) -> Analysed {
    // lexeme → (tf, positions)
    let mut index: FxHashMap<&str, (f32, Vec<u16>)> = FxHashMap::default();
    let (mut pos, mut len, mut budget) = (0u32, 0i32, TSVECTOR_BUDGET);
    for (text, weight) in fields {
        for_each_token(text, |token| {
            pos += 1;
            len = len.saturating_add(1);
            let Some(lexemes) = stems.get(token) else {
                return;
            };
            let p = pos.min(MAX_POSITION as u32) as u16 | weight.bits();
            for l in lexemes.iter().filter(|l| l.len() <= MAX_LEXEME_BYTES) {
                let (tf, positions) = index.entry(l.as_str()).or_default();
                *tf += weight.tf();
                // A lexeme's first position costs its bytes and a header; others two bytes.
                let cost = if positions.is_empty() {
                    l.len() + 10
                } else {
                    2
                };
                let last = positions.last().map(|q| q & 0x3fff);
                if positions.len() < MAX_POSITIONS && last < Some(p & 0x3fff) && cost <= budget {
                    positions.push(p);
                    budget -= cost;
                }
            }
        });
        pos += 1;
    }
    // Byte order, as a tsvector keeps its lexemes.
    let mut index: Vec<(&str, (f32, Vec<u16>))> = index.into_iter().collect();
    index.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = Analysed {
        terms: Vec::with_capacity(index.len()),
        tfs: Vec::with_capacity(index.len()),
        len,
        tsv: TsVector(Vec::new()),
    };
    for (l, (tf, positions)) in index {
        out.terms.push(l.to_owned());
        out.tfs.push(tf);
        if !positions.is_empty() {
            out.tsv.0.push((l.to_owned(), positions));
        }
    }
    out
}

/// A tsvector built in the client and sent in Postgres' binary format: lexemes in byte
/// order, each with strictly increasing positions carrying their weight bits.
#[derive(Debug, Default)]
pub(crate) struct TsVector(pub Vec<(String, Vec<u16>)>);

impl ToSql for TsVector {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // tsvectorrecv: int32 count, then per lexeme its text, a NUL, an int16 count of
        // positions and the positions.
        out.put_i32(self.0.len() as i32);
        for (lexeme, positions) in &self.0 {
            out.put_slice(lexeme.as_bytes());
            out.put_u8(0);
            out.put_u16(positions.len() as u16);
            for p in positions {
                out.put_u16(*p);
            }
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TS_VECTOR
    }

    to_sql_checked!();
}

/// A query's text search expression for `tsv @@ …::tsquery`, from analysed lexemes (so
/// the server does not parse the words again): `'a' & ('b' <-> 'c':*)`.
pub(crate) fn quote(lexeme: &str) -> String {
    format!("'{}'", lexeme.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(words: &[&str]) -> Stems {
        words
            .iter()
            .map(|w| (w.to_string(), vec![w.to_string()]))
            .collect()
    }

    #[test]
    fn terms_are_weighted_by_field_and_length_counts_every_token() {
        let stems = identity(&["rust", "async", "book"]);
        let a = analyse(
            &[
                ("Rust", Weight::A),
                ("async", Weight::B),
                ("rust rust book", Weight::C),
            ],
            &stems,
        );
        assert_eq!(a.terms, ["async", "book", "rust"]);
        assert_eq!(a.tfs, [1.5, 1.0, 4.0]);
        assert_eq!(a.len, 5);
        // Fields are one position apart: title 1, gap, tags 3, gap, body 5–7.
        let rust = &a.tsv.0[2];
        assert_eq!(rust.0, "rust");
        let pos: Vec<u16> = rust.1.iter().map(|p| p & 0x3fff).collect();
        assert_eq!(pos, [1, 5, 6]);
        assert_eq!(rust.1[0] >> 14, 3);
        assert_eq!(rust.1[1] >> 14, 1);
    }

    #[test]
    fn positions_are_capped_and_clamped_as_postgres_requires() {
        let stems = identity(&["w"]);
        let body = "w ".repeat(20_000);
        let a = analyse(&[(&body, Weight::C)], &stems);
        let positions = &a.tsv.0[0].1;
        assert_eq!(positions.len(), MAX_POSITIONS);
        assert!(positions.windows(2).all(|p| p[0] < p[1]));
        assert_eq!(a.tfs, [20_000.0]);
        assert_eq!(a.len, 20_000);

        let late = format!("{}x", "y ".repeat(17_000));
        let a = analyse(&[(&late, Weight::C)], &identity(&["x", "y"]));
        assert_eq!(a.tsv.0[0].1, [MAX_POSITION | (1 << 14)]);
    }

    #[test]
    fn a_huge_vocabulary_stays_within_the_tsvector_limit_but_keeps_every_term() {
        let words: Vec<String> = (0..200_000).map(|i| format!("w{i:07}")).collect();
        let stems: Stems = words.iter().map(|w| (w.clone(), vec![w.clone()])).collect();
        let body = words.join(" ");
        let a = analyse(&[(&body, Weight::C)], &stems);
        assert_eq!(a.terms.len(), 200_000);
        let size: usize = a.tsv.0.iter().map(|(l, p)| l.len() + 8 + 2 * p.len()).sum();
        assert!(size <= TSVECTOR_BUDGET, "{size}");
        assert!(a.tsv.0.len() < 200_000);
    }

    #[test]
    fn words_without_lexemes_count_in_the_length_only() {
        let a = analyse(&[("the cat", Weight::C)], &identity(&["cat"]));
        assert_eq!(a.terms, ["cat"]);
        assert_eq!(a.len, 2);
    }

    #[test]
    fn lexemes_are_quoted_for_tsquery_text() {
        assert_eq!(quote("abc"), "'abc'");
        assert_eq!(quote("a'b\\"), "'a''b\\\\'");
    }
}
