//! The keyword search statement: BM25 over the `postings` table, the formula SQLite's
//! FTS5 `bm25()` computes, over the same weighted fields, so both backends rank alike:
//! `Σ_terms idf · f·(k1+1) / (f + k1·(1 − b + b·|d|/avgdl))`, with
//! `idf = ln((N − df + 0.5)/(df + 0.5))` (at least 1e-6), `f` the field-weighted term
//! frequency and `|d|` the entry's token count. N and avgdl come from the sharded
//! `bm25_stats` counters, df from the `term_df` counters (both kept by triggers).
//!
//! Three shapes of statement, by query (ARCHITECTURE.md has the measurements):
//! - **Words joined by OR** (or one word): an entry matches exactly when it has a posting
//!   of one of the terms, so the postings alone give the candidates and their scores.
//! - **Words joined by AND** (2–[`MAX_JOINED_WORDS`] words, the `porter` configuration):
//!   the terms' postings are intersected on the entry — merge-joined (read in entry order
//!   from the primary key) while their lengths are comparable, probed by primary key for
//!   each candidate once a term is far commoner than the candidates left — which brings
//!   every term's tf along.
//! - **Anything else** (phrases, NOT, prefixes, mixed AND/OR): the tsquery selects the
//!   matches through the GIN index; the query's terms' postings give their scores.
//!
//! In the first two, candidates are walked best score first and checked against the
//! filter by primary key until the page is full, so a frequent term costs a few lookups,
//! not one per posting. Snippets are cut in Rust (`snippet.rs`). Phrases filter by
//! adjacency but score by their words; a prefix scores as the terms it expands to.

use storage_core::{parse_query, Filter, QueryNode, Result, StorageError};

use super::snippet::Highlighter;
use crate::rows::ENTRY_COLUMNS;
use crate::sql::{filter_sql, tsquery, Params, TS_CONFIG};

/// Most words an AND query may have to be answered by joining postings; longer ones use
/// the GIN index (each join adds planning time, and long conjunctions match little).
pub(crate) const MAX_JOINED_WORDS: usize = 6;

/// How many more postings a term must have than the candidates expected before it for
/// an AND query to probe it per candidate rather than merge-join its postings: a probe
/// (a primary-key descent) costs about as much as reading 16–20 postings in order.
const PROBE_RATIO: u32 = 16;

/// The statement, its parameters and the highlighter of its hits. `one_token_words` says
/// that the index's text search configuration turns every query word into exactly one
/// term (true of `porter`, which has no stopwords), which the AND-join shape relies on.
pub(crate) fn search_sql(
    query: &str,
    filter: &Filter,
    k1: f64,
    b: f64,
    one_token_words: bool,
) -> Result<(String, Params, Highlighter)> {
    let node = parse_query(query)?;
    let mut p = Params::default();
    let cond = filter_sql(filter, &mut p)?;
    // k1 and b are written as literals and every word is its own parameter
    // (`ARRAY[$n, …]`, not one array parameter), so the planner's estimates do not depend
    // on the values: the generic plan of the cached statement then costs what a custom
    // plan does, and Postgres keeps it instead of planning every search (see pool.rs).
    let (k1, b) = (float_literal(k1)?, float_literal(b)?);
    let bm25 = |idf: &str, tf: &str, dl: &str| {
        format!("{idf} * {tf} * ({k1} + 1) / ({tf} + {k1} * (1 - {b} + {b} * {dl} / st.avgdl))")
    };
    let stats = "st AS (SELECT greatest(sum(docs), 1)::float8 AS n, \
                 greatest(sum(tokens), 1)::float8 / greatest(sum(docs), 1) AS avgdl FROM bm25_stats)";
    let idf = "greatest(ln((st.n - df.df + 0.5) / (df.df + 0.5)), 1e-6)";
    let df = |term: &str| {
        format!(
            "(SELECT coalesce(sum(c.df), 0)::float8 AS df FROM term_df c WHERE c.term = {term}) df"
        )
    };

    let ranked = match shape(&node, one_token_words) {
        Shape::AnyWord { words } => {
            let single = words.len() == 1;
            let words = array_of(words, &mut p);
            // One word is one term: an entry has at most one posting of it, so its score
            // needs no grouping (a third of a single-word query's time).
            let (sum, group) = if single {
                ("", "")
            } else {
                ("sum", " GROUP BY p.entry")
            };
            let score = bm25("p.idf", "p.tf", "p.dl");
            format!(
                "{stats}, \
                 tq AS MATERIALIZED (SELECT x.term, {idf} AS idf \
                     FROM (SELECT DISTINCT x.term FROM unnest({words}) w, \
                           unnest(tsvector_to_array(to_tsvector({TS_CONFIG}, w))) x(term)) x \
                     CROSS JOIN LATERAL {df} CROSS JOIN st), \
                 p AS (SELECT po.entry, po.tf, po.dl, tq.idf FROM tq CROSS JOIN LATERAL \
                       (SELECT entry, tf, dl FROM postings WHERE term = tq.term OFFSET 0) po), \
                 s AS (SELECT p.entry, {sum}({score})::float8 AS score FROM p CROSS JOIN st{group}), \
                 {}",
                best_first(&cond, filter),
                df = df("x.term"),
            )
        }
        Shape::AllWords { words } => {
            let n = words.len();
            let words = array_of(words, &mut p);
            // Terms are numbered rarest first. The rarest term's postings drive; each
            // further term is either merge-joined (its postings read in entry order, ~0.1 µs
            // each) or probed by primary key for each candidate so far (~2 µs each),
            // whichever reads less: a term is probed when its df exceeds
            // PROBE_RATIO × the candidates expected before it (N·Π df/N of the rarer terms,
            // independence assumed). As terms grow commoner and candidates fewer, once a
            // term is probed all later ones are, so the plan is "merge the first j, probe
            // the rest": j is computed from df at run time and gates one of n branches
            // (one-time filters; the others never run). "rust tokio" with tokio in 100 of
            // 100k entries reads 100 postings and makes 100 probes, instead of merging
            // all of rust's postings.
            let term = |i: usize| format!("(SELECT term FROM tq WHERE i = {i})");
            let idf_of = |i: usize| format!("(SELECT idf FROM tq WHERE i = {i})");
            let tfs: String = (1..=n).map(|i| format!(", t{i}")).collect();
            let branches: Vec<String> = (1..=n)
                .map(|merged| {
                    let cols: String = (1..=n)
                        .map(|i| {
                            if i <= merged {
                                format!(", p{i}.tf")
                            } else {
                                format!(", q{i}.tf")
                            }
                        })
                        .collect();
                    let merges: String = (2..=merged)
                        .map(|i| {
                            format!(
                                " JOIN postings p{i} ON p{i}.entry = p1.entry AND p{i}.term = {}",
                                term(i)
                            )
                        })
                        .collect();
                    let probes: String = (merged + 1..=n)
                        .map(|i| {
                            format!(
                                " CROSS JOIN LATERAL (SELECT tf FROM postings \
                                 WHERE term = {} AND entry = p1.entry OFFSET 0) q{i}",
                                term(i)
                            )
                        })
                        .collect();
                    format!(
                        "SELECT p1.entry, p1.dl{cols} FROM postings p1{merges}{probes} \
                         WHERE p1.term = {} AND (SELECT merged FROM plan) = {merged}",
                        term(1)
                    )
                })
                .collect();
            let score = (1..=n)
                .map(|i| bm25(&idf_of(i), &format!("b.t{i}"), "b.dl"))
                .collect::<Vec<_>>()
                .join(" + ");
            format!(
                "{stats}, \
                 d AS (SELECT x.term, df.df, {idf} AS idf \
                       FROM unnest({words}) w \
                       CROSS JOIN LATERAL unnest(tsvector_to_array(to_tsvector({TS_CONFIG}, w))) x(term) \
                       CROSS JOIN LATERAL {df} CROSS JOIN st), \
                 tq AS MATERIALIZED (SELECT row_number() OVER o AS i, d.term, d.idf, d.df, \
                       st.n * exp(coalesce(sum(ln(greatest(d.df, 1e-9) / st.n)) OVER \
                           (o ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)) AS expected \
                       FROM d CROSS JOIN st WINDOW o AS (ORDER BY d.df, d.term)), \
                 plan AS MATERIALIZED (SELECT coalesce(min(i) - 1, {n}) AS merged FROM tq \
                       WHERE i > 1 AND df > {PROBE_RATIO} * expected), \
                 s AS (SELECT b.entry, ({score})::float8 AS score \
                       FROM ({}) b(entry, dl{tfs}) CROSS JOIN st), \
                 {}",
                branches.join(" UNION ALL "),
                best_first(&cond, filter),
                df = df("x.term"),
            )
        }
        Shape::General { words, prefixes } => {
            let q = tsquery(&node, &mut p);
            let words = array_of(words, &mut p);
            // The prefix branch is only written when there are prefixes: the planner
            // cannot see that an empty array makes it a no-op and would scan every posting.
            let prefix_terms = if prefixes.is_empty() {
                String::new()
            } else {
                let prefixes = array_of(prefixes, &mut p);
                format!(
                    " UNION SELECT DISTINCT po.term FROM unnest({prefixes}) w, \
                         unnest(tsvector_to_array(to_tsvector({TS_CONFIG}, w))) x(stem) \
                         JOIN postings po ON po.term LIKE x.stem || '%'"
                )
            };
            let score = bm25("p.idf", "p.tf", "p.dl");
            // The tsquery is written inline (not in a CTE) so the planner sees it and
            // drives a GIN bitmap scan; the matches carry (kb, id) for the tiebreak. Each
            // term's postings are read by an index range scan (LATERAL with OFFSET 0, a
            // subquery the planner cannot flatten into a scan of all postings).
            format!(
                "m AS MATERIALIZED (SELECT e.rowid, e.kb, e.id FROM live_entries e WHERE e.tsv @@ {q}{cond}), \
                 {stats}, \
                 t AS (SELECT x.term FROM unnest({words}) w, \
                       unnest(tsvector_to_array(to_tsvector({TS_CONFIG}, w))) x(term){prefix_terms}), \
                 tq AS MATERIALIZED (SELECT x.term, {idf} AS idf FROM (SELECT DISTINCT term FROM t) x \
                     CROSS JOIN LATERAL {df} CROSS JOIN st), \
                 p AS (SELECT po.entry, po.tf, po.dl, tq.idf FROM tq CROSS JOIN LATERAL \
                       (SELECT entry, tf, dl FROM postings WHERE term = tq.term OFFSET 0) po), \
                 s AS (SELECT p.entry, m.kb, m.id, sum({score})::float8 AS score \
                       FROM p JOIN m ON m.rowid = p.entry CROSS JOIN st GROUP BY p.entry, m.kb, m.id), \
                 hits AS (SELECT s.entry AS rowid, s.score FROM s ORDER BY s.score DESC, s.kb, s.id \
                          LIMIT {} OFFSET {})",
                filter.effective_limit(),
                filter.offset,
                df = df("x.term"),
            )
        }
    };
    // Snippets are cut in Rust from the returned text (snippet.rs): ts_headline cost more
    // than the ranking.
    let sql = format!(
        "WITH {ranked} \
         SELECT {ENTRY_COLUMNS}, hits.score FROM hits JOIN live_entries e ON e.rowid = hits.rowid \
         ORDER BY hits.score DESC, e.kb, e.id"
    );
    let (mut words, mut prefixes) = (Vec::new(), Vec::new());
    scoring_terms(&node, &mut words, &mut prefixes);
    Ok((sql, p, Highlighter::new(&words, &prefixes)))
}

/// `hits`: the scored candidates `s (entry, score)` walked best first, each checked
/// against the filter by primary key (OFFSET 0 keeps the planner from turning the lookups
/// into a scan of `entries`) until the page is full; an incremental sort adds the
/// (kb, id) tiebreak within equal scores.
fn best_first(cond: &str, filter: &Filter) -> String {
    format!(
        "hits AS (SELECT s.entry AS rowid, s.score FROM (SELECT * FROM s ORDER BY s.score DESC) s \
             CROSS JOIN LATERAL \
             (SELECT e.kb, e.id FROM live_entries e WHERE e.rowid = s.entry{cond} OFFSET 0) e \
             ORDER BY s.score DESC, e.kb, e.id LIMIT {} OFFSET {})",
        filter.effective_limit(),
        filter.offset
    )
}

/// Which statement answers a query (see the module documentation).
enum Shape {
    AnyWord {
        words: Vec<String>,
    },
    AllWords {
        words: Vec<String>,
    },
    General {
        words: Vec<String>,
        prefixes: Vec<String>,
    },
}

fn shape(node: &QueryNode, one_token_words: bool) -> Shape {
    let plain = |c: &[QueryNode]| {
        c.iter()
            .map(|n| match n {
                QueryNode::Term(t) => Some(t.clone()),
                _ => None,
            })
            .collect::<Option<Vec<String>>>()
    };
    match node {
        QueryNode::Term(t) => Shape::AnyWord {
            words: vec![t.clone()],
        },
        QueryNode::Or(c) => match plain(c) {
            Some(words) => Shape::AnyWord { words },
            None => general(node),
        },
        QueryNode::And(c) if one_token_words => match plain(c) {
            Some(mut words) if (2..=MAX_JOINED_WORDS).contains(&c.len()) => {
                // A repeated word adds nothing to the match; scored once, as elsewhere.
                let mut seen = std::collections::HashSet::new();
                words.retain(|w| seen.insert(w.to_lowercase()));
                if words.len() == 1 {
                    Shape::AnyWord { words }
                } else {
                    Shape::AllWords { words }
                }
            }
            _ => general(node),
        },
        _ => general(node),
    }
}

fn general(node: &QueryNode) -> Shape {
    let (mut words, mut prefixes) = (Vec::new(), Vec::new());
    scoring_terms(node, &mut words, &mut prefixes);
    Shape::General { words, prefixes }
}

/// The query's positive words and prefixes (those under NOT select nothing, so they do
/// not score), as the user typed them; the SQL analyses them with the index's
/// configuration.
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

    fn shape_of(q: &str) -> &'static str {
        match shape(&parse_query(q).unwrap(), true) {
            Shape::AnyWord { .. } => "any",
            Shape::AllWords { .. } => "all",
            Shape::General { .. } => "general",
        }
    }

    #[test]
    fn queries_take_the_statement_their_shape_allows() {
        assert_eq!(shape_of("alpha"), "any");
        assert_eq!(shape_of("alpha OR beta OR gamma"), "any");
        assert_eq!(shape_of("alpha beta"), "all");
        assert_eq!(shape_of("alpha AND beta AND gamma"), "all");
        assert_eq!(shape_of("alpha Alpha"), "any");
        assert_eq!(shape_of("a b c d e f g"), "general");
        assert_eq!(shape_of("alpha -beta"), "general");
        assert_eq!(shape_of("\"alpha beta\""), "general");
        assert_eq!(shape_of("alpha*"), "general");
        assert_eq!(shape_of("alpha (beta OR gamma)"), "general");
        assert!(matches!(
            shape(&parse_query("alpha beta").unwrap(), false),
            Shape::General { .. }
        ));
    }

    #[test]
    fn bm25_parameters_are_finite_literals() {
        assert_eq!(float_literal(1.2).unwrap(), "(1.2)::float8");
        assert_eq!(float_literal(0.0).unwrap(), "(0.0)::float8");
        assert!(float_literal(f64::NAN).is_err());
        assert!(float_literal(f64::INFINITY).is_err());
    }
}
