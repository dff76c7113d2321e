//! SQL text built from [`Filter`]s and parsed queries. Only fixed fragments are ever put
//! into SQL text; every user value travels as a bound parameter.

use rusqlite::types::Value as SqlValue;
use storage_core::{
    metadata_path_segments, Filter, LifecycleFilter, QueryNode, Result, SortField, SortOrder,
};

/// BM25 column weights for (title, tags, summary, body): title > tags = summary > body.
pub(crate) const BM25_WEIGHTS: &str = "2.0, 1.5, 1.5, 1.0";

/// A `WHERE` clause over `entries e` with its parameters.
#[derive(Debug, Default)]
pub(crate) struct Where {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

impl Where {
    fn and(&mut self, cond: &str) {
        if !self.sql.is_empty() {
            self.sql.push_str(" AND ");
        }
        self.sql.push_str(cond);
    }
    fn placeholders(&mut self, values: &[String]) -> String {
        let mut s = String::from("(");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push('?');
            self.params.push(SqlValue::Text(v.clone()));
        }
        s.push(')');
        s
    }
    /// `WHERE …` or the empty string.
    pub(crate) fn clause(&self) -> String {
        if self.sql.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.sql)
        }
    }
    /// ` AND …` or the empty string, to extend an existing WHERE.
    pub(crate) fn and_clause(&self) -> String {
        if self.sql.is_empty() {
            String::new()
        } else {
            format!(" AND {}", self.sql)
        }
    }
}

/// The conditions of `f` (not its sort or page) over `entries e`.
pub(crate) fn filter_sql(f: &Filter) -> Result<Where> {
    f.validate()?;
    let mut w = Where::default();
    if !f.kbs.is_empty() {
        let p = w.placeholders(&f.kbs);
        w.and(&format!("e.kb IN {p}"));
    }
    if !f.entry_types.is_empty() {
        let p = w.placeholders(&f.entry_types);
        w.and(&format!("e.entry_type IN {p}"));
    }
    for tag in &f.tags {
        w.params.push(SqlValue::Text(tag.trim().to_owned()));
        w.and("EXISTS (SELECT 1 FROM entry_tags t WHERE t.entry = e.rowid AND t.tag = ?)");
    }
    if let Some(p) = f.normalized_tag_prefix() {
        // `p` itself, or anything in the half-open range [p/, p0): '0' follows '/' in
        // byte order, so this is "starts with p/" and can use the tag index.
        let (below, end) = Filter::hierarchy_bounds(p);
        w.params.push(SqlValue::Text(p.to_owned()));
        w.params.push(SqlValue::Text(below));
        w.params.push(SqlValue::Text(end));
        w.and(
            "EXISTS (SELECT 1 FROM entry_tags t WHERE t.entry = e.rowid \
             AND (t.tag = ? OR (t.tag >= ? AND t.tag < ?)))",
        );
    }
    if !f.statuses.is_empty() {
        let p = w.placeholders(&f.statuses);
        w.and(&format!("e.status IN {p}"));
    }
    match f.lifecycle {
        LifecycleFilter::Active => w.and("e.lifecycle = 'active'"),
        LifecycleFilter::Archived => w.and("e.lifecycle = 'archived'"),
        LifecycleFilter::Any => {}
    }
    if let Some(d) = f.date_from {
        w.params.push(SqlValue::Text(d.to_string()));
        w.and("e.date >= ?");
    }
    if let Some(d) = f.date_to {
        w.params.push(SqlValue::Text(d.to_string()));
        w.and("e.date <= ?");
    }
    if let Some(i) = f.min_importance {
        w.params.push(SqlValue::Integer(i.into()));
        w.and("e.importance >= ?");
    }
    if let Some(p) = f.normalized_path_prefix() {
        let (below, end) = Filter::hierarchy_bounds(p);
        w.params.push(SqlValue::Text(below));
        w.params.push(SqlValue::Text(end));
        w.and("(e.source_path >= ? AND e.source_path < ?)");
    }
    for m in &f.metadata {
        let segs = metadata_path_segments(&m.path)?;
        w.params
            .push(SqlValue::Text(format!("$.{}", segs.join("."))));
        w.params.push(SqlValue::Text(m.value.to_string()));
        // `->` yields the minified JSON text of the value, comparable to serde_json's.
        w.and("(e.metadata -> ?) = json(?)");
    }
    Ok(w)
}

/// `ORDER BY …` for list queries, with the `(kb, id)` tiebreak.
pub(crate) fn order_by(f: &Filter) -> String {
    let dir = match f.sort.order {
        SortOrder::Asc => "ASC",
        SortOrder::Desc => "DESC",
    };
    let key = match f.sort.field {
        SortField::Updated => format!("e.updated_at {dir}"),
        SortField::Created => format!("e.created_at {dir}"),
        SortField::Title => format!("e.title {dir}"),
        SortField::Date => format!("e.date IS NULL, e.date {dir}"),
        SortField::Importance => format!("e.importance {dir}"),
    };
    format!("ORDER BY {key}, e.kb ASC, e.id ASC")
}

/// Compiles a parsed query to an FTS5 `MATCH` expression. Every term is emitted as a
/// double-quoted FTS5 string, so no user character can act as FTS5 syntax.
pub(crate) fn fts5_match(node: &QueryNode) -> String {
    fn quote(t: &str) -> String {
        format!("\"{}\"", t.replace('"', "\"\""))
    }
    match node {
        QueryNode::Term(t) => quote(t),
        QueryNode::Prefix(t) => format!("{} *", quote(t)),
        QueryNode::Phrase { terms, prefix } => {
            let q = quote(&terms.join(" "));
            if *prefix {
                format!("{q} *")
            } else {
                q
            }
        }
        QueryNode::Or(c) => format!(
            "({})",
            c.iter().map(fts5_match).collect::<Vec<_>>().join(" OR ")
        ),
        QueryNode::And(c) => {
            let pos: Vec<String> = c
                .iter()
                .filter(|n| !matches!(n, QueryNode::Not(_)))
                .map(fts5_match)
                .collect();
            let neg: Vec<String> = c
                .iter()
                .filter_map(|n| match n {
                    QueryNode::Not(inner) => Some(fts5_match(inner)),
                    _ => None,
                })
                .collect();
            let p = format!("({})", pos.join(" AND "));
            if neg.is_empty() {
                p
            } else {
                // FTS5's NOT is binary: "positives NOT (any negative)".
                format!("({p} NOT ({}))", neg.join(" OR "))
            }
        }
        // The parser only puts NOT directly under AND.
        QueryNode::Not(inner) => fts5_match(inner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage_core::parse_query;

    #[test]
    fn compiles_every_operator() {
        let c = |q: &str| fts5_match(&parse_query(q).unwrap());
        assert_eq!(c("a b"), r#"("a" AND "b")"#);
        assert_eq!(c("a OR b"), r#"("a" OR "b")"#);
        assert_eq!(c("a -b -c"), r#"(("a") NOT ("b" OR "c"))"#);
        assert_eq!(c("\"x y\" z*"), r#"("x y" AND "z" *)"#);
    }
}
