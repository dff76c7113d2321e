//! SQL text built from [`Filter`]s and parsed queries for Postgres. Only fixed fragments go
//! into SQL text; every user value is a bound parameter (`$n`).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use storage_core::{metadata_path_segments, Filter, LifecycleFilter, Result, SortField, SortOrder};
use tokio_postgres::types::{ToSql, Type};

pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// Bound parameters; `push` returns the `$n` placeholder for the value.
#[derive(Default)]
pub(crate) struct Params(pub Vec<Param>, Vec<Option<Type>>);

/// The Postgres type a parameter is sent as, when it is a built-in type (extension types
/// such as pgvector's have no fixed OID).
pub(crate) trait ParamType {
    const TYPE: Option<Type>;
}

macro_rules! param_type {
    ($($t:ty => $v:expr),* $(,)?) => {
        $(impl ParamType for $t { const TYPE: Option<Type> = $v; })*
    };
}

param_type! {
    String => Some(Type::TEXT),
    Vec<String> => Some(Type::TEXT_ARRAY),
    Vec<i64> => Some(Type::INT8_ARRAY),
    Vec<f64> => Some(Type::FLOAT8_ARRAY),
    f64 => Some(Type::FLOAT8),
    i64 => Some(Type::INT8),
    i32 => Some(Type::INT4),
    NaiveDate => Some(Type::DATE),
    Value => Some(Type::JSONB),
    DateTime<Utc> => Some(Type::TIMESTAMPTZ),
    pgvector::Vector => None,
}

impl Params {
    pub(crate) fn push<T: ToSql + ParamType + Sync + Send + 'static>(&mut self, v: T) -> String {
        self.0.push(Box::new(v));
        self.1.push(T::TYPE);
        format!("${}", self.0.len())
    }
    pub(crate) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
    /// The parameters with their types, when every type is known: such a statement can
    /// be sent with `query_typed`, one round trip instead of a prepare and an execute.
    pub(crate) fn typed(&self) -> Option<Vec<(&(dyn ToSql + Sync), Type)>> {
        self.0
            .iter()
            .zip(&self.1)
            .map(|(p, t)| Some((p.as_ref() as &(dyn ToSql + Sync), t.clone()?)))
            .collect()
    }
}

/// ` AND …` conditions of `f` over `entries e` (empty when there are none).
pub(crate) fn filter_sql(f: &Filter, p: &mut Params) -> Result<String> {
    f.validate()?;
    let mut sql = String::new();
    let mut and = |cond: String| {
        sql.push_str(" AND ");
        sql.push_str(&cond);
    };
    if !f.kbs.is_empty() {
        and(format!("e.kb = ANY({})", p.push(f.kbs.clone())));
    }
    if !f.entry_types.is_empty() {
        and(format!(
            "e.entry_type = ANY({})",
            p.push(f.entry_types.clone())
        ));
    }
    for tag in &f.tags {
        let t = p.push(tag.trim().to_owned());
        and(format!(
            "EXISTS (SELECT 1 FROM entry_tags t WHERE t.entry = e.rowid AND t.tag = {t})"
        ));
    }
    if let Some(pre) = f.normalized_tag_prefix() {
        // `pre` itself or the byte range [pre/, pre0): "starts with pre/" on the index.
        let (below, end) = Filter::hierarchy_bounds(pre);
        let (a, b, c) = (p.push(pre.to_owned()), p.push(below), p.push(end));
        and(format!(
            "EXISTS (SELECT 1 FROM entry_tags t WHERE t.entry = e.rowid \
             AND (t.tag = {a} OR (t.tag >= {b} AND t.tag < {c})))"
        ));
    }
    if !f.statuses.is_empty() {
        and(format!("e.status = ANY({})", p.push(f.statuses.clone())));
    }
    match f.lifecycle {
        LifecycleFilter::Active => and("e.lifecycle = 'active'".into()),
        LifecycleFilter::Archived => and("e.lifecycle = 'archived'".into()),
        LifecycleFilter::Any => {}
    }
    if let Some(d) = f.date_from {
        and(format!("e.date >= {}", p.push::<NaiveDate>(d)));
    }
    if let Some(d) = f.date_to {
        and(format!("e.date <= {}", p.push::<NaiveDate>(d)));
    }
    if let Some(i) = f.min_importance {
        and(format!("e.importance >= {}", p.push(i)));
    }
    if let Some(pre) = f.normalized_path_prefix() {
        let (below, end) = Filter::hierarchy_bounds(pre);
        let (a, b) = (p.push(below), p.push(end));
        and(format!("(e.source_path >= {a} AND e.source_path < {b})"));
    }
    for m in &f.metadata {
        let segs: Vec<String> = metadata_path_segments(&m.path)?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let (path, value) = (p.push(segs), p.push::<Value>(m.value.clone()));
        and(format!("e.metadata #> {path}::text[] = {value}::jsonb"));
    }
    Ok(sql)
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
        SortField::Date => format!("e.date {dir} NULLS LAST"),
        SortField::Importance => format!("e.importance {dir}"),
    };
    format!("ORDER BY {key}, e.kb ASC, e.id ASC")
}
