//! The keyword search statement: BM25 over the `term_blocks` postings, the formula
//! SQLite's FTS5 `bm25()` computes, over the same weighted fields, so both backends rank
//! alike: `Σ_terms idf · f·(k1+1) / (f + k1·(1 − b + b·|d|/avgdl))`, with
//! `idf = ln((N − df + 0.5)/(df + 0.5))` (at least 1e-6), `f` the field-weighted term
//! frequency and `|d|` the entry's token count. N and avgdl come from the sharded
//! `bm25_stats` counters, df = Σ n of the term's blocks (schema.rs, migration 6).
//!
//! The query's words are analysed in the client ([`super::analyze`]) into lexemes; a
//! prefix is expanded on the server to the terms it starts. One statement for every
//! query, in three variants:
//! - **Words joined by OR** (or one word): an entry matches exactly when it has a posting
//!   of one of the terms, so the postings alone give the candidates and their scores.
//! - **Words joined by AND**: the entries holding a posting of every term (counted per
//!   entry while scoring).
//! - **Anything else** (phrases, NOT, prefixes, mixed AND/OR): the entries with a posting
//!   of a scoring term are candidates, checked against the query's tsquery on the
//!   entry's tsvector as they are walked.
//!
//! Candidates are walked best score first and checked against the filter (and that they
//! are the entry's current text: a stale posting names a doc no row has) by the `doc`
//! index until the page is full, so a frequent term costs a few lookups, not one per
//! posting. Snippets are cut in Rust (`snippet.rs`). Phrases filter by adjacency but
//! score by their words; a prefix scores as the terms it expands to.

use std::collections::HashSet;

use storage_core::text::tokens;
use storage_core::{Filter, QueryNode, Result, StorageError};

use super::analyze::{quote, Stems};
use super::snippet::Highlighter;
use crate::rows::ENTRY_COLUMNS;
use crate::sql::{filter_sql, Params};

/// The words a query's statement needs stems for: every word it names, negated ones
/// included (they go into the tsquery).
pub(crate) fn query_words(node: &QueryNode) -> rustc_hash::FxHashSet<String> {
    node.terms().into_iter().flat_map(tokens).collect()
}

/// The statement, its parameters and the highlighter of its hits; `None` when no word
/// of the query is indexed (all of them stopwords of the configuration), which matches
/// nothing.
pub(crate) fn search_sql(
    node: &QueryNode,
    stems: &Stems,
    filter: &Filter,
    k1: f64,
    b: f64,
) -> Result<Option<(String, Params, Highlighter)>> {
    let mut p = Params::default();
    let cond = filter_sql(filter, &mut p)?;
    let analysed = Analysed::of(node, stems);
    if analysed.words.is_empty() && analysed.prefixes.is_empty() {
        return Ok(None);
    }
    // k1 and b are written as literals and every term is its own parameter
    // (`ARRAY[$n, …]`, not one array parameter), so the planner's estimates do not depend
    // on the values: the generic plan of the cached statement then costs what a custom
    // plan does, and Postgres keeps it instead of planning every search (see pool.rs).
    let (k1, b) = (float_literal(k1)?, float_literal(b)?);
    let score =
        format!("p.idf * p.tf * ({k1} + 1) / (p.tf + {k1} * (1 - {b} + {b} * p.dl / st.avgdl))");
    let (having, verify) = match &analysed.shape {
        Shape::AnyWord => (String::new(), String::new()),
        Shape::AllWords(n) => (format!(" HAVING count(*) = {n}"), String::new()),
        Shape::General(q) => (
            String::new(),
            format!(" AND e.tsv @@ {}::text::tsquery", p.push(q.clone())),
        ),
    };
    let words = array_of(analysed.words.iter().cloned().collect(), &mut p);
    // The prefix branch is only written when there are prefixes: the planner cannot see
    // that an empty array makes it a no-op. A prefix's terms are the index range
    // [prefix, prefix + U+10FFFF) that starts with it.
    let prefix_terms = if analysed.prefixes.is_empty() {
        String::new()
    } else {
        let (lo, hi): (Vec<String>, Vec<String>) = analysed
            .prefixes
            .iter()
            .map(|x| (x.clone(), format!("{x}\u{10FFFF}")))
            .unzip();
        let (lo, hi) = (array_of(lo, &mut p), array_of(hi, &mut p));
        format!(
            " UNION SELECT DISTINCT tb.term FROM unnest({lo}, {hi}) x(lo, hi) \
             JOIN term_blocks tb ON tb.term >= x.lo AND tb.term < x.hi AND starts_with(tb.term, x.lo)"
        )
    };
    // Each term's blocks are read by an index range scan (LATERAL with OFFSET 0, a
    // subquery the planner cannot flatten into a scan of every block).
    let sql = format!(
        "WITH st AS (SELECT greatest(sum(docs), 1)::float8 AS n, \
             greatest(sum(tokens), 1)::float8 / greatest(sum(docs), 1) AS avgdl FROM bm25_stats), \
         t AS (SELECT unnest({words}) AS term{prefix_terms}), \
         tq AS MATERIALIZED (SELECT x.term, \
             greatest(ln((st.n - df.df + 0.5) / (df.df + 0.5)), 1e-6) AS idf \
             FROM (SELECT DISTINCT term FROM t) x \
             CROSS JOIN LATERAL (SELECT coalesce(sum(c.n), 0)::float8 AS df FROM term_blocks c \
                 WHERE c.term = x.term) df CROSS JOIN st), \
         p AS (SELECT u.doc, u.tf, u.dl, tq.idf FROM tq CROSS JOIN LATERAL \
             (SELECT u.doc, u.tf, u.dl FROM term_blocks tb, unnest(tb.docs, tb.tfs, tb.dls) u(doc, tf, dl) \
              WHERE tb.term = tq.term OFFSET 0) u), \
         s AS (SELECT p.doc, sum({score})::float8 AS score FROM p CROSS JOIN st \
             GROUP BY p.doc{having}), \
         hits AS (SELECT s.doc, s.score FROM (SELECT * FROM s ORDER BY s.score DESC) s \
             CROSS JOIN LATERAL \
             (SELECT e.kb, e.id FROM live_entries e WHERE e.doc = s.doc{cond}{verify} OFFSET 0) e \
             ORDER BY s.score DESC, e.kb, e.id LIMIT {} OFFSET {}) \
         SELECT {ENTRY_COLUMNS}, hits.score FROM hits JOIN live_entries e ON e.doc = hits.doc \
         ORDER BY hits.score DESC, e.kb, e.id",
        filter.effective_limit(),
        filter.offset,
    );
    let (mut words, mut prefixes) = (Vec::new(), Vec::new());
    scoring_terms(node, &mut words, &mut prefixes);
    Ok(Some((sql, p, Highlighter::new(&words, &prefixes))))
}

/// Which variant of the statement answers a query (see the module documentation).
#[derive(Debug, PartialEq)]
enum Shape {
    AnyWord,
    /// The number of distinct terms every match has.
    AllWords(usize),
    /// The tsquery matches are checked against.
    General(String),
}

/// A query's scoring terms (exact and prefixes, as lexemes) and its shape.
struct Analysed {
    words: Vec<String>,
    prefixes: Vec<String>,
    shape: Shape,
}

impl Analysed {
    fn of(node: &QueryNode, stems: &Stems) -> Self {
        let lexemes = |w: &str| -> Vec<Vec<String>> {
            tokens(w)
                .filter_map(|t| stems.get(&t).filter(|l| !l.is_empty()).cloned())
                .collect()
        };
        let (mut raw_words, mut raw_prefixes) = (Vec::new(), Vec::new());
        scoring_terms(node, &mut raw_words, &mut raw_prefixes);
        let (mut words, mut prefixes) = (Vec::new(), Vec::new());
        let mut seen = HashSet::new();
        for w in &raw_words {
            for l in lexemes(w).into_iter().flatten() {
                if seen.insert(l.clone()) {
                    words.push(l);
                }
            }
        }
        for w in &raw_prefixes {
            let mut toks = lexemes(w);
            if let Some(last) = toks.pop() {
                for l in toks.into_iter().flatten() {
                    if seen.insert(l.clone()) {
                        words.push(l);
                    }
                }
                prefixes.extend(last);
            }
        }
        // One lexeme per word: an OR (or AND) of words is an OR (or AND) of terms.
        let plain = |c: &[QueryNode]| {
            c.iter().all(|n| match n {
                QueryNode::Term(t) => {
                    let l = lexemes(t);
                    l.len() == 1 && l[0].len() == 1
                }
                _ => false,
            })
        };
        let shape = match node {
            QueryNode::Term(_) if plain(std::slice::from_ref(node)) => Shape::AnyWord,
            QueryNode::Or(c) if plain(c) => Shape::AnyWord,
            QueryNode::And(c) if plain(c) => Shape::AllWords(words.len()),
            _ => Shape::General(tsquery(node, &lexemes).unwrap_or_default()),
        };
        Self {
            words,
            prefixes,
            shape,
        }
    }
}

/// The tsquery text of a query over its lexemes (`None` when nothing of it is indexed):
/// a word's tokens follow each other (`<->`), a token's lexemes are alternatives.
fn tsquery(node: &QueryNode, lexemes: &dyn Fn(&str) -> Vec<Vec<String>>) -> Option<String> {
    let word = |w: &str, prefix: bool| -> Option<String> {
        let toks = lexemes(w);
        let n = toks.len();
        let parts: Vec<String> = toks
            .into_iter()
            .enumerate()
            .map(|(i, alts)| {
                let star = if prefix && i + 1 == n { ":*" } else { "" };
                let alts: Vec<String> =
                    alts.iter().map(|l| format!("{}{star}", quote(l))).collect();
                if alts.len() == 1 {
                    alts.into_iter().next().expect("one")
                } else {
                    format!("({})", alts.join(" | "))
                }
            })
            .collect();
        join(parts, " <-> ")
    };
    match node {
        QueryNode::Term(t) => word(t, false),
        QueryNode::Prefix(t) => word(t, true),
        QueryNode::Phrase { terms, prefix } => {
            let n = terms.len();
            let parts: Vec<String> = terms
                .iter()
                .enumerate()
                .filter_map(|(i, t)| word(t, *prefix && i + 1 == n))
                .collect();
            join(parts, " <-> ")
        }
        QueryNode::Or(c) => {
            let parts: Vec<String> = c.iter().filter_map(|n| tsquery(n, lexemes)).collect();
            join(parts, " | ")
        }
        QueryNode::And(c) => {
            let parts: Vec<String> = c.iter().filter_map(|n| tsquery(n, lexemes)).collect();
            join(parts, " & ")
        }
        QueryNode::Not(inner) => tsquery(inner, lexemes).map(|q| format!("!{q}")),
    }
}

/// The parts joined by an operator, in parentheses when there are several.
fn join(parts: Vec<String>, op: &str) -> Option<String> {
    match parts.len() {
        0 => None,
        1 => parts.into_iter().next(),
        _ => Some(format!("({})", parts.join(op))),
    }
}

/// The query's positive words and prefixes (those under NOT select nothing, so they do
/// not score), as the user typed them.
fn scoring_terms(node: &QueryNode, words: &mut Vec<String>, prefixes: &mut Vec<String>) {
    match node {
        QueryNode::Term(t) => words.push(t.clone()),
        QueryNode::Prefix(t) => prefixes.push(t.clone()),
        QueryNode::Phrase { terms, prefix } => {
            let (last, init) = terms.split_last().expect("phrases are never empty");
            words.extend(init.iter().cloned());
            if *prefix {
                prefixes.push(last.clone());
            } else {
                words.push(last.clone());
            }
        }
        QueryNode::And(c) | QueryNode::Or(c) => {
            c.iter().for_each(|n| scoring_terms(n, words, prefixes))
        }
        QueryNode::Not(_) => {}
    }
}

/// `ARRAY[$n, …]::text[]` of the values, one parameter each.
fn array_of(values: Vec<String>, p: &mut Params) -> String {
    let items: Vec<String> = values.into_iter().map(|v| p.push(v)).collect();
    format!("ARRAY[{}]::text[]", items.join(", "))
}

/// A float written into SQL text: only finite numbers (a configuration value, validated
/// on open) are ever formatted, in Rust's round-trip notation (`1.2`, `0.75`, `1e-7`).
fn float_literal(x: f64) -> Result<String> {
    if !x.is_finite() {
        return Err(StorageError::invalid_input(format!(
            "BM25 parameters must be finite numbers, got {x}"
        )));
    }
    Ok(format!("({x:?})::float8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage_core::parse_query;

    /// Stems that drop a trailing `s` and make `the` a stopword.
    fn analysed(q: &str) -> Analysed {
        let node = parse_query(q).unwrap();
        let stems: Stems = query_words(&node)
            .into_iter()
            .map(|w| {
                let l = match w.as_str() {
                    "the" => vec![],
                    w => vec![w.strip_suffix('s').unwrap_or(w).to_owned()],
                };
                (w, l)
            })
            .collect();
        Analysed::of(&node, &stems)
    }

    #[test]
    fn queries_take_the_statement_their_shape_allows() {
        assert_eq!(analysed("alpha").shape, Shape::AnyWord);
        assert_eq!(analysed("alpha OR beta OR gamma").shape, Shape::AnyWord);
        assert_eq!(analysed("alpha beta").shape, Shape::AllWords(2));
        assert_eq!(
            analysed("alpha AND beta AND gamma").shape,
            Shape::AllWords(3)
        );
        assert_eq!(analysed("alpha Alpha alphas").shape, Shape::AllWords(1));
        assert_eq!(
            analysed("alpha the").shape,
            Shape::General("'alpha'".into())
        );
        assert_eq!(
            analysed("alpha -beta").shape,
            Shape::General("('alpha' & !'beta')".into())
        );
        assert_eq!(
            analysed("\"alphas beta\"").shape,
            Shape::General("('alpha' <-> 'beta')".into())
        );
        assert_eq!(analysed("Crème*").shape, Shape::General("'creme':*".into()));
        assert_eq!(
            analysed("alpha (beta OR gamma)").shape,
            Shape::General("('alpha' & ('beta' | 'gamma'))".into())
        );
    }

    #[test]
    fn scoring_terms_are_distinct_lexemes_of_positive_words() {
        let a = analysed("Alphas alpha -beta gam*");
        assert_eq!(a.words, ["alpha"]);
        assert_eq!(a.prefixes, ["gam"]);
        assert!(analysed("the").words.is_empty());
    }

    #[test]
    fn bm25_parameters_are_finite_literals() {
        assert_eq!(float_literal(1.2).unwrap(), "(1.2)::float8");
        assert_eq!(float_literal(0.0).unwrap(), "(0.0)::float8");
        assert!(float_literal(f64::NAN).is_err());
        assert!(float_literal(f64::INFINITY).is_err());
    }
}
