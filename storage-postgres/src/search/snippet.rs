//! Snippets of keyword hits, built in Rust from the returned text.
//!
//! `ts_headline` parses and stems the whole text of every hit it is given: ~45 µs for a
//! 1.5 KB entry, more than half of a one-word search for a page of 10 at 100k entries, and
//! 65–120 µs per hit for a page of 100 (the hybrid searcher's keyword depth). Here the
//! text is split into words the way the index splits it (`storage_core::text`),
//! each word is folded (lower case, accents removed) and stemmed, and the window of
//! [`WINDOW_WORDS`] words holding the most distinct query terms is returned with the
//! matches marked — FTS5's `snippet()` shape (one fragment, `…` where text was cut).
//!
//! Stemming is Snowball English (`rust-stemmers`), applied to query and text alike, so a
//! word is highlighted when it shares the query word's stem. The index stems with the
//! original Porter algorithm; the two differ on a few suffixes, which can only change
//! which words of a matched entry light up, never which entries match or their order.

use std::collections::{HashMap, HashSet};

use rust_stemmers::{Algorithm, Stemmer};
use storage_core::text::for_each_token_span;
use storage_core::Snippet;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Words in a snippet (FTS5's snippet is asked for 24 tokens on SQLite).
pub(crate) const WINDOW_WORDS: usize = 24;

/// Words kept before the first match when the window can be moved (context).
const LEAD_WORDS: usize = 3;

/// Most words of a text weighed for its snippet: the window is chosen among the first
/// this-many words (about 600 KB of English prose; entries are rarely a tenth of it).
/// Every word is split out and checked against the query, so without a bound one hit
/// with an 8 MB body would cost ~1.4 M word checks; text after the bound is never shown.
pub(crate) const MAX_SNIPPET_WORDS: usize = 100_000;

/// Decides which words of a text match a query, and cuts snippets.
pub(crate) struct Highlighter {
    stemmer: Stemmer,
    /// Stems of the query's words.
    stems: HashSet<String>,
    /// Folded query prefixes (`embed*` → `embed`): a word starting with one matches.
    prefixes: Vec<String>,
}

impl Highlighter {
    /// For a query's positive words and prefixes (words under NOT are never highlighted).
    pub(crate) fn new(words: &[String], prefixes: &[String]) -> Self {
        let stemmer = Stemmer::create(Algorithm::English);
        let stems = words
            .iter()
            .map(|w| stemmer.stem(&fold(w)).into_owned())
            .collect();
        let prefixes = prefixes.iter().map(|p| fold(p)).collect();
        Self {
            stemmer,
            stems,
            prefixes,
        }
    }

    /// The term a word matches (its stem or the prefix), if any.
    fn term_of(&self, word: &str) -> Option<String> {
        // A stem is the word with its ending changed, so a word can only share a stem
        // that, but for its last letter, it starts with: most words are turned away
        // here, without folding (for ASCII words) or stemming.
        if word.is_ascii() {
            let starts = |p: &str| {
                word.len() >= p.len()
                    && word.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            };
            // (An ASCII word folds to itself lower-cased; only ASCII stems can match it.)
            let candidate = self.prefixes.iter().any(|p| starts(p))
                || self
                    .stems
                    .iter()
                    .any(|s| s.is_ascii() && starts(&s[..s.len().saturating_sub(1)]));
            if !candidate {
                return None;
            }
        }
        let folded = fold(word);
        if let Some(p) = self
            .prefixes
            .iter()
            .find(|p| folded.starts_with(p.as_str()))
        {
            return Some(p.clone());
        }
        let stem = self.stemmer.stem(&folded);
        self.stems
            .contains(stem.as_ref())
            .then(|| stem.into_owned())
    }

    /// The best window of `text` with its matching words highlighted.
    pub(crate) fn snippet(&self, text: &str) -> Snippet {
        let words = words(text, MAX_SNIPPET_WORDS);
        if words.is_empty() {
            return Snippet::default();
        }
        let terms: Vec<Option<String>> = words
            .iter()
            .map(|&(s, e)| self.term_of(&text[s..e]))
            .collect();
        let (start, end) = best_window(&terms, WINDOW_WORDS);
        let (from, to) = (words[start].0, words[end - 1].1);
        // Whole text when nothing was cut, else from the first to the last word kept.
        let (from, to) = if start == 0 && end == words.len() {
            (0, text.len())
        } else {
            (from, to)
        };
        let mut out = String::with_capacity(to - from + 8);
        if from > 0 {
            out.push('…');
        }
        let base = out.len();
        out.push_str(&text[from..to]);
        let highlights = (start..end)
            .filter(|&i| terms[i].is_some())
            .map(|i| (words[i].0 - from + base, words[i].1 - from + base))
            .collect();
        if to < text.len() {
            out.push('…');
        }
        Snippet {
            text: out,
            highlights,
        }
    }
}

/// Lower case without accents, as the index folds words (`unaccent`, FTS5's
/// `remove_diacritics 2`).
fn fold(word: &str) -> String {
    word.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Byte ranges of the text's first `max` words, as the index splits text
/// ([`for_each_token_span`]: runs of letters and digits, a CJK character on its own).
fn words(text: &str, max: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for_each_token_span(text, |_, span| {
        out.push((span.start, span.end));
        out.len() < max
    });
    out
}

/// `[start, end)` word indices of the window of at most `size` words with the most
/// distinct terms (then the most matches, then the earliest). Windows start a few words
/// before a match, so only one window per match is weighed.
///
/// Linear in the number of words: window starts never decrease from one match to the
/// next, so the matches inside the window are a range of the match list that only slides
/// forward, with a count per distinct term updated as matches enter and leave it.
fn best_window(terms: &[Option<String>], size: usize) -> (usize, usize) {
    let n = terms.len();
    if n <= size {
        return (0, n);
    }
    let matches: Vec<(usize, &str)> = terms
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((i, t.as_deref()?)))
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    // matches[lo..hi] are the matches inside the current window.
    let (mut lo, mut hi) = (0, 0);
    let mut best = (0usize, 0usize, 0usize); // (distinct, matches, start)
    for &(m, _) in &matches {
        let start = m.saturating_sub(LEAD_WORDS).min(n - size);
        while hi < matches.len() && matches[hi].0 < start + size {
            *counts.entry(matches[hi].1).or_default() += 1;
            hi += 1;
        }
        // `m` itself is inside the window, so this stops at or before it.
        while matches[lo].0 < start {
            let term = matches[lo].1;
            let c = counts.get_mut(term).expect("counted on entry");
            *c -= 1;
            if *c == 0 {
                counts.remove(term);
            }
            lo += 1;
        }
        if (counts.len(), hi - lo) > (best.0, best.1) {
            best = (counts.len(), hi - lo, start);
        }
    }
    (best.2, best.2 + size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(words: &[&str], prefixes: &[&str]) -> Highlighter {
        let s = |v: &[&str]| v.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        Highlighter::new(&s(words), &s(prefixes))
    }

    #[test]
    fn short_text_is_whole_with_word_forms_and_accents_marked() {
        let s = h(&["running", "cafe"], &[]).snippet("He runs to the Café, runner.");
        assert_eq!(s.text, "He runs to the Café, runner.");
        assert_eq!(s.highlighted(), ["runs", "Café"]);
    }

    #[test]
    fn prefixes_mark_words_starting_with_them() {
        let s = h(&[], &["embed"]).snippet("Embedding models embed text; bed.");
        assert_eq!(s.highlighted(), ["Embedding", "embed"]);
    }

    #[test]
    fn long_text_is_cut_around_the_window_with_most_terms() {
        let filler: Vec<String> = (0..60).map(|i| format!("w{i}")).collect();
        let text = format!(
            "alpha {} beta gamma {}",
            filler[..30].join(" "),
            filler[30..].join(" ")
        );
        let s = h(&["alpha", "beta", "gamma"], &[]).snippet(&text);
        // beta and gamma (two terms) beat alpha alone; three words of context before.
        assert!(
            s.text.starts_with("…w27 w28 w29 beta gamma w30"),
            "{}",
            s.text
        );
        assert!(s.text.ends_with('…'));
        assert_eq!(s.highlighted(), ["beta", "gamma"]);
        assert_eq!(s.text.matches(' ').count(), WINDOW_WORDS - 1);
    }

    #[test]
    fn highlights_are_byte_ranges_of_multibyte_text() {
        let s = h(&["über"], &[]).snippet("Ça va — über alles");
        assert_eq!(s.highlighted(), ["über"]);
        assert_eq!(s.marked("[", "]"), "Ça va — [über] alles");
    }

    #[test]
    fn non_ascii_query_words_and_text() {
        let s = h(&["дом"], &[]).snippet("Старый дом и новый Дом");
        assert_eq!(s.highlighted(), ["дом", "Дом"]);
        let s = h(&["naïve"], &[]).snippet("a naive idea");
        assert_eq!(s.highlighted(), ["naive"]);
    }

    /// The quadratic algorithm this module used before, kept as the reference.
    fn best_window_reference(terms: &[Option<String>], size: usize) -> (usize, usize) {
        let n = terms.len();
        if n <= size {
            return (0, n);
        }
        let matches: Vec<usize> = (0..n).filter(|&i| terms[i].is_some()).collect();
        let mut best = (0usize, 0usize, 0usize);
        for &m in &matches {
            let start = m.saturating_sub(LEAD_WORDS).min(n - size);
            let inside: Vec<usize> = matches
                .iter()
                .copied()
                .filter(|&i| i >= start && i < start + size)
                .collect();
            let distinct: HashSet<&String> =
                inside.iter().filter_map(|&i| terms[i].as_ref()).collect();
            if (distinct.len(), inside.len()) > (best.0, best.1) {
                best = (distinct.len(), inside.len(), start);
            }
        }
        (best.2, best.2 + size)
    }

    proptest::proptest! {
        /// Same window as the reference on small random texts (few terms, so ties and
        /// repeated terms are common), for window sizes around the text length.
        #[test]
        fn best_window_matches_the_reference(
            terms in proptest::collection::vec(
                proptest::option::weighted(0.4, proptest::sample::select(vec!["a", "b", "c", "d"])),
                0..200,
            ),
            size in 1usize..40,
        ) {
            let terms: Vec<Option<String>> = terms.iter().map(|t| t.map(str::to_owned)).collect();
            proptest::prop_assert_eq!(best_window(&terms, size), best_window_reference(&terms, size));
        }
    }

    /// 200,000 matches of one word: the quadratic version compared every match with every
    /// other (4·10¹⁰ comparisons, over a minute in a debug build, per hit); now one pass,
    /// and the text beyond `MAX_SNIPPET_WORDS` is not read.
    #[test]
    fn two_hundred_thousand_matches_finish_quickly() {
        let started = std::time::Instant::now();
        let terms = vec![Some("rust".to_owned()); 200_000];
        assert_eq!(best_window(&terms, WINDOW_WORDS), (0, WINDOW_WORDS));
        let s = h(&["rust"], &[]).snippet(&"Rust ".repeat(200_000));
        assert!(
            s.text.starts_with("Rust Rust") && s.text.ends_with('…'),
            "{}",
            s.text
        );
        assert_eq!(s.highlights.len(), WINDOW_WORDS);
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    }

    #[test]
    fn words_after_the_bound_are_not_weighed() {
        let mut text = "w ".repeat(MAX_SNIPPET_WORDS);
        text.push_str("alpha beta");
        let s = h(&["alpha", "beta"], &[]).snippet(&text);
        assert!(s.text.starts_with("w w") && s.text.ends_with('…'));
        assert!(s.highlights.is_empty());
        // Just inside the bound, the match is found.
        let mut text = "w ".repeat(MAX_SNIPPET_WORDS - 2);
        text.push_str("alpha beta");
        let s = h(&["alpha", "beta"], &[]).snippet(&text);
        assert_eq!(s.highlighted(), ["alpha", "beta"]);
    }

    #[test]
    fn nothing_matching_gives_the_start() {
        let text: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
        let s = h(&["zzz"], &[]).snippet(&text.join(" "));
        assert!(s.text.starts_with("w0 w1"));
        assert!(s.highlights.is_empty());
        assert_eq!(h(&["a"], &[]).snippet(""), Snippet::default());
    }
}
