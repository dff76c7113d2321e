//! What surrounds one entry: its link-graph neighbourhood, the entries nearest in
//! meaning, its star and its metadata compare-and-set (`/v1/kbs/{kb}/entries/{id}/…`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use storage_core::prelude::*;
use storage_core::{CasOutcome, EntryKey, Filter, GraphQuery, StorageError};

use super::{kb_of, require_kb, ApiResult};
use crate::auth::Access;
use crate::error::ApiError;
use crate::extract::Params;
use crate::state::AppState;

/// Deepest graph walk through the API (each hop can multiply the nodes visited).
pub const MAX_GRAPH_DEPTH: usize = 3;
/// Most nodes of one graph answer.
pub const MAX_GRAPH_NODES: usize = 500;
/// Most neighbours of one `similar` answer.
pub const MAX_SIMILAR: usize = 100;

/// `GET …/entries/{id}/graph?depth=1&max_nodes=100&backlinks=true`: the neighbourhood,
/// visiting only KBs the caller may read.
pub(crate) async fn graph(
    st: &AppState,
    access: &Access,
    kb: &str,
    id: &str,
    mut params: Params,
) -> ApiResult<Response> {
    let depth = params.number("depth", 1, MAX_GRAPH_DEPTH)?;
    let max_nodes = params.number("max_nodes", 100, MAX_GRAPH_NODES)?.max(1);
    let backlinks = params.flag_or("backlinks", true)?;
    params.finish(&["depth", "max_nodes", "backlinks"])?;
    let mut q = GraphQuery::new(EntryKey::new(kb, id), depth as u32);
    q.max_nodes = max_nodes;
    q.include_backlinks = backlinks;
    // An empty list means every KB: only an unrestricted caller gets it.
    q.kbs = access
        .readable()
        .map(<[String]>::to_vec)
        .unwrap_or_default();
    let graph = st.store.neighbourhood(&q).await?;
    Ok(Json(graph).into_response())
}

/// `GET …/entries/{id}/similar?k=10`: the entries nearest in meaning, in the entry's KB
/// unless `kb=` names others (each must be readable), narrowed by the usual filters.
pub(crate) async fn similar(
    st: &AppState,
    access: &Access,
    kb: &str,
    id: &str,
    mut params: Params,
) -> ApiResult<Response> {
    let k = params.number("k", 10, MAX_SIMILAR)?;
    let asked = params.list("kb");
    let mut f = Filter::new();
    f.entry_types = params.list("type");
    f.tags = params.list("tag");
    f.tag_prefix = params.one("tag_prefix")?;
    f.statuses = params.list("status");
    params.finish(&["k", "kb", "type", "tag", "tag_prefix", "status"])?;
    f.kbs = if asked.is_empty() {
        vec![kb.to_owned()]
    } else {
        asked.into_iter().filter(|k| access.can_read(k)).collect()
    };
    if f.kbs.is_empty() {
        return Ok(Json(json!({ "kb": kb, "id": id, "similar": [] })).into_response());
    }
    let key = EntryKey::new(kb, id);
    let hits = match st.store.similar(&key, k, &f).await {
        Ok(hits) => hits,
        Err(StorageError::NotFound { .. }) => {
            // The entry may exist without a vector yet: say which.
            return Err(match st.store.get_entry(&key).await? {
                None => ApiError::not_found(format!("entry {key}")),
                Some(_) => ApiError::new(
                    StatusCode::CONFLICT,
                    "not_embedded",
                    format!("{key} has no vector yet; it is embedded in the background"),
                ),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let similar: Vec<Value> = hits
        .iter()
        .map(|h| {
            json!({
                "rank": h.rank,
                "score": h.score,
                "kb": h.entry.kb,
                "id": h.entry.id,
                "title": h.entry.title,
                "type": h.entry.entry_type,
                "tags": h.entry.tags,
            })
        })
        .collect();
    Ok(Json(json!({ "kb": kb, "id": id, "similar": similar })).into_response())
}

/// `PUT …/entries/{id}/star`: stars the entry (starring twice keeps its place).
pub(crate) async fn star(st: &AppState, kb: &str, id: &str) -> ApiResult<Response> {
    st.store.star(&EntryKey::new(kb, id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE …/entries/{id}/star`: 404 when it was not starred.
pub(crate) async fn unstar(st: &AppState, kb: &str, id: &str) -> ApiResult<Response> {
    let key = EntryKey::new(kb, id);
    if !st.store.unstar(&key).await? {
        return Err(ApiError::not_found(format!("a star on {key}")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/kbs/{kb}/stars`: starred entries of the KB, in starring order.
pub async fn stars_kb(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: axum::extract::OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    params.finish(&[])?;
    let kb = kb_of(&uri)?;
    require_kb(&st, &access, &kb).await?;
    let starred = st.store.starred(Some(&kb)).await?;
    Ok(Json(json!({ "kb": kb, "starred": starred })).into_response())
}

/// `GET /v1/stars`: starred entries of every KB the caller may read.
pub async fn stars_all(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    params: Params,
) -> ApiResult<Response> {
    params.finish(&[])?;
    let starred: Vec<EntryKey> = st
        .store
        .starred(None)
        .await?
        .into_iter()
        .filter(|k| access.can_read(&k.kb))
        .collect();
    Ok(Json(json!({ "starred": starred })).into_response())
}

/// A metadata compare-and-set: set the value at `path` to `new` only if it is `expected`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CasInput {
    /// Dotted path into the entry's metadata (`review.state`).
    pub path: String,
    /// The value expected there now. Absent: the path must be absent; `null` is a value.
    #[serde(default, deserialize_with = "present")]
    pub expected: Option<Value>,
    /// The value to store.
    pub new: Value,
}

/// Tells an absent field (`None`, by `default`) from a JSON `null` (`Some(Null)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `POST …/entries/{id}/metadata`: 200 when swapped, 409 with the current value when not.
pub(crate) async fn cas_metadata(
    st: &AppState,
    key: EntryKey,
    input: CasInput,
) -> ApiResult<Response> {
    match st
        .store
        .cas_metadata(&key, &input.path, input.expected.as_ref(), &input.new)
        .await?
    {
        CasOutcome::Swapped => Ok(Json(
            json!({ "swapped": true, "path": input.path, "value": input.new }),
        )
        .into_response()),
        CasOutcome::Mismatch { current } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "cas_mismatch",
            format!("the metadata at {:?} is not the expected value", input.path),
        )
        // `present: false` tells an absent path from a stored `null`.
        .with("present", current.is_some())
        .with("current", current.unwrap_or(Value::Null))),
        CasOutcome::NotFound => Err(ApiError::not_found(format!("entry {key}"))),
    }
}

/// `GET /v1/kbs/{kb}/graph?limit=20`: the KB's shape: its most linked entries and the
/// entries nothing links to and that link nowhere.
pub async fn kb_graph(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: axum::extract::OriginalUri,
    mut params: Params,
) -> ApiResult<Response> {
    let limit = params.number("limit", 20, super::MAX_LIST_LIMIT)?;
    params.finish(&["limit"])?;
    let kb = kb_of(&uri)?;
    require_kb(&st, &access, &kb).await?;
    let most_linked = st.store.most_linked(Some(&kb), limit).await?;
    let orphans = st.store.orphans(Some(&kb)).await?;
    Ok(Json(json!({ "kb": kb, "most_linked": most_linked, "orphans": orphans })).into_response())
}
