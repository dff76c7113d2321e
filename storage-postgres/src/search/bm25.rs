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
use storage_core::{Filter, QueryNode, Result};

use rustc_hash::FxHashMap;

use super::analyze::{quote, Stems};
use super::snippet::Highlighter;
use crate::rows::ENTRY_COLUMNS;
use crate::sql::{filter_sql, Params};

/// The words a query's statement needs stems for: every word it names, negated ones
/// included (they go into the tsquery).
pub(crate) fn query_words(node: &QueryNode) -> rustc_hash::FxHashSet<String> {
    node.terms().into_iter().flat_map(tokens).collect()
}

/// A keyword query ready to run: its terms as lexemes, its shape and its highlighter.
pub(crate) struct Plan {
    words: Vec<String>,
    prefixes: Vec<String>,
    shape: Shape,
    pub(crate) highlighter: Highlighter,
}

impl Plan {
    /// The tsquery a candidate must also match (phrases, NOT, mixed shapes), if any.
    pub(crate) fn tsquery(&self) -> Option<&str> {
        match &self.shape {
            Shape::General(q) => Some(q),
            _ => None,
        }
    }
}

/// The plan of a query over its words' stems; `None` when no word of the query is
/// indexed (all of them stopwords of the configuration), which matches nothing.
pub(crate) fn plan(node: &QueryNode, stems: &Stems) -> Option<Plan> {
    let a = Analysed::of(node, stems);
    if a.words.is_empty() && a.prefixes.is_empty() {
        return None;
    }
    let (mut words, mut prefixes) = (Vec::new(), Vec::new());
    scoring_terms(node, &mut words, &mut prefixes);
    Some(Plan {
        words: a.words,
        prefixes: a.prefixes,
        shape: a.shape,
        highlighter: Highlighter::new(&words, &prefixes),
    })
}

/// Statement 1: every block of the query's terms (a prefix's terms are the index range
/// [prefix, prefix + U+10FFFF) that starts with it), read by the primary key (LATERAL
/// with OFFSET 0: the planner cannot turn it into a scan of every block).
pub(crate) fn postings_sql(plan: &Plan) -> (String, Params) {
    let mut p = Params::default();
    let words = p.push(plan.words.clone());
    let prefix_terms = if plan.prefixes.is_empty() {
        String::new()
    } else {
        let hi: Vec<String> = plan
            .prefixes
            .iter()
            .map(|x| format!("{x}\u{10FFFF}"))
            .collect();
        let (lo, hi) = (p.push(plan.prefixes.clone()), p.push(hi));
        format!(
            " UNION SELECT DISTINCT tb.term FROM unnest({lo}::text[], {hi}::text[]) x(lo, hi) \
             JOIN term_blocks tb ON tb.term >= x.lo AND tb.term < x.hi AND starts_with(tb.term, x.lo)"
        )
    };
    let sql = format!(
        "WITH t AS (SELECT unnest({words}::text[]) AS term{prefix_terms}) \
         SELECT tb.term, tb.n, tb.docs, tb.tfs, tb.dls FROM t CROSS JOIN LATERAL \
         (SELECT * FROM term_blocks WHERE term = t.term OFFSET 0) tb"
    );
    (sql, p)
}

/// Statement 0: N and avgdl from the counters.
pub(crate) const STATS_SQL: &str = "SELECT greatest(sum(docs), 1)::float8, \
     greatest(sum(tokens), 1)::float8 / greatest(sum(docs), 1) FROM bm25_stats";

/// One block as read: its term, its change to df and its postings.
pub(crate) struct Block {
    pub term: String,
    pub n: i32,
    pub docs: Vec<i64>,
    pub tfs: Vec<f32>,
    pub dls: Vec<i32>,
}

/// The candidates of a query, best first: BM25 summed per doc over the query's terms
/// (computed here: a few nanoseconds a posting, against microseconds as SQL
/// expressions), kept when the shape says they match.
pub(crate) fn rank(
    plan: &Plan,
    blocks: &[Block],
    n: f64,
    avgdl: f64,
    k1: f64,
    b: f64,
) -> Vec<(i64, f64)> {
    let mut df: FxHashMap<&str, f64> = FxHashMap::default();
    for block in blocks {
        *df.entry(&block.term).or_default() += f64::from(block.n);
    }
    // An AND starts from its rarest term: the others only add to docs already there, so
    // a near-universal term costs lookups in a small map, not inserts into a large one.
    let mut order: Vec<&Block> = blocks.iter().collect();
    order.sort_by(|a, b| {
        df[a.term.as_str()]
            .total_cmp(&df[b.term.as_str()])
            .then(a.term.cmp(&b.term))
    });
    let rarest = order.first().map(|b| b.term.as_str());
    let and = matches!(plan.shape, Shape::AllWords(_));
    let mut scores: FxHashMap<i64, (f64, usize)> = FxHashMap::default();
    for block in order {
        let df = df[block.term.as_str()];
        let idf = ((n - df + 0.5) / (df + 0.5)).ln().max(1e-6);
        let insert = !and || Some(block.term.as_str()) == rarest;
        for ((doc, tf), dl) in block.docs.iter().zip(&block.tfs).zip(&block.dls) {
            let e = if insert {
                scores.entry(*doc).or_default()
            } else {
                match scores.get_mut(doc) {
                    Some(e) => e,
                    None => continue,
                }
            };
            let tf = f64::from(*tf);
            e.0 += idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * f64::from(*dl) / avgdl));
            e.1 += 1;
        }
    }
    let mut ranked: Vec<(i64, f64)> = match plan.shape {
        Shape::AllWords(terms) => scores
            .into_iter()
            .filter(|(_, (_, count))| *count == terms)
            .map(|(doc, (s, _))| (doc, s))
            .collect(),
        _ => scores.into_iter().map(|(doc, (s, _))| (doc, s)).collect(),
    };
    ranked.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// Statement 2: the page among the first candidates, each checked against the filter
/// (and that it is the entry's current text: a stale posting names a doc no row has;
/// for the general shape, against the tsquery) by the `doc` index, ordered by score and
/// then (kb, id).
pub(crate) fn page_sql(
    plan: &Plan,
    filter: &Filter,
    candidates: &[(i64, f64)],
    keys_only: bool,
) -> Result<(String, Params)> {
    let mut p = Params::default();
    let docs = p.push(candidates.iter().map(|c| c.0).collect::<Vec<i64>>());
    let scores = p.push(candidates.iter().map(|c| c.1).collect::<Vec<f64>>());
    let cond = filter_sql(filter, &mut p)?;
    let verify = match plan.tsquery() {
        Some(q) => format!(" AND e.tsv @@ {}::text::tsquery", p.push(q.to_owned())),
        None => String::new(),
    };
    // Keys only (`search_ranked`): the page's rows are not read beyond the index entry.
    let columns = if keys_only {
        "e.kb, e.id"
    } else {
        ENTRY_COLUMNS
    };
    // Candidates are walked best first, each looked up by the doc index (OFFSET 0 keeps
    // the planner from turning the lookups into a scan of `entries`), until the page is
    // full; an incremental sort adds the (kb, id) tiebreak within equal scores.
    let sql = format!(
        "WITH hits AS (SELECT c.doc, c.score \
             FROM (SELECT * FROM unnest({docs}::bigint[], {scores}::float8[]) c(doc, score) \
                   ORDER BY c.score DESC) c \
             CROSS JOIN LATERAL \
             (SELECT e.kb, e.id FROM live_entries e WHERE e.doc = c.doc{cond}{verify} OFFSET 0) e \
             ORDER BY c.score DESC, e.kb, e.id LIMIT {} OFFSET {}) \
         SELECT {columns}, hits.score FROM hits JOIN live_entries e ON e.doc = hits.doc \
         ORDER BY hits.score DESC, e.kb, e.id",
        filter.effective_limit(),
        filter.offset
    );
    Ok((sql, p))
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
    fn candidates_are_ranked_by_summed_bm25_and_an_and_keeps_docs_with_every_term() {
        let plan_of = |q: &str| {
            let a = analysed(q);
            Plan {
                words: a.words,
                prefixes: a.prefixes,
                shape: a.shape,
                highlighter: Highlighter::new(&[], &[]),
            }
        };
        let block = |term: &str, docs: &[i64]| Block {
            term: term.into(),
            n: docs.len() as i32,
            docs: docs.to_vec(),
            tfs: vec![1.0; docs.len()],
            dls: vec![4; docs.len()],
        };
        // "beta" is in two blocks, one of them a deletion (−1, no docs).
        let mut gone = block("beta", &[]);
        gone.n = -1;
        let blocks = [block("alpha", &[1, 2, 3]), block("beta", &[2, 5]), gone];
        let bm25 = |df: f64| {
            let idf = ((10.0 - df + 0.5) / (df + 0.5)).ln();
            idf * 2.2 / (1.0 + 1.2 * (0.25 + 0.75 * 4.0 / 4.0))
        };
        let any = rank(&plan_of("alpha OR beta"), &blocks, 10.0, 4.0, 1.2, 0.75);
        assert_eq!(any[0], (2, bm25(3.0) + bm25(1.0)));
        assert_eq!(any[1], (5, bm25(1.0)));
        assert_eq!(any.iter().map(|c| c.0).collect::<Vec<_>>(), [2, 5, 1, 3]);
        let all = rank(&plan_of("alpha beta"), &blocks, 10.0, 4.0, 1.2, 0.75);
        assert_eq!(all.iter().map(|c| c.0).collect::<Vec<_>>(), [2]);
    }
}
