//! The `/v1` handlers.
//!
//! Entry ids may contain `/` (`glossary/wal`), so entry routes take the rest of the path:
//! `/v1/kbs/{kb}/entries/glossary/wal` is the entry `glossary/wal`, and a last segment of
//! `backlinks`, `outlinks`, `graph`, `similar`, `star`, `claim` or `metadata` names a
//! sub-resource of the id before it. The split is made on the raw path, before
//! percent-decoding, so an id whose last segment is one of those words is addressed with
//! `%2F` (`foo%2Fclaim` is the entry `foo/claim`); `glossary%2Fwal` works as well as
//! `glossary/wal`.
//!
//! The handlers are grouped as the protocol is: KBs, entries and search here;
//! [`related`] (graph, similar, stars, metadata), [`organise`] (settings, collections)
//! and [`admin`] (GC, the embedding queue) beside.

pub mod admin;
pub mod organise;
pub mod related;

pub use admin::*;
pub use organise::*;
pub use related::*;

use axum::extract::{FromRequest, OriginalUri, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::NaiveDate;
use search_hybrid::{SearchMode, SearchRequest, SearchResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use storage_core::prelude::*;
use storage_core::{
    ClaimOutcome, Entry, EntryKey, Filter, LifecycleFilter, NewEntry, NewKnowledgeBase, SortField,
    SortOrder,
};

use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Params};
use crate::state::AppState;

/// Largest page of entries (list, timeline).
pub const MAX_LIST_LIMIT: usize = 1000;
/// Largest page of search hits.
pub const MAX_SEARCH_LIMIT: usize = 100;
/// Deepest search offset (hybrid search fetches offset + limit candidates per leg).
pub const MAX_SEARCH_OFFSET: usize = 10_000;
/// Longest search query, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Most entries in one batch upsert.
pub const MAX_BATCH: usize = 10_000;

type Resp = ApiResult<Response>;

// ------------------------------------------------------------------ request bodies

/// A KB to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KbInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Makes the KB ephemeral: garbage-collected this many seconds from now.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// An entry as written through the API ([`kb_app::input::EntryInput`]): the KB taken from
/// the path (a `kb` field, if given, must match it) and, for PUT, the id too.
pub use kb_app::input::EntryInput;

/// The entry an input writes, checked against the path (and, in a batch, named by its
/// position in messages).
fn entry_from(
    input: EntryInput,
    kb: &str,
    path_id: Option<&str>,
    index: Option<usize>,
) -> ApiResult<NewEntry> {
    let at = index.map(|i| format!("entry [{i}]: ")).unwrap_or_default();
    if let Some(k) = &input.kb {
        if k != kb {
            return Err(ApiError::unprocessable(format!(
                "{at}kb {k:?} differs from the knowledge base in the path ({kb})"
            )));
        }
    }
    let id = match (path_id, input.id.clone()) {
        (Some(p), Some(b)) if p != b => {
            return Err(ApiError::unprocessable(format!(
                "{at}id {b:?} differs from the id in the path ({p:?})"
            )))
        }
        (Some(p), _) => p.to_owned(),
        (None, Some(b)) => b,
        (None, None) => return Err(ApiError::unprocessable(format!("{at}missing field `id`"))),
    };
    let e = input.into_entry(kb, id);
    // Validate here so the message can say which entry of a batch is wrong.
    e.normalized()
        .map_err(|err| ApiError::unprocessable(format!("{at}{}", strip_kind(&err))))?;
    Ok(e)
}

pub(crate) fn strip_kind(e: &storage_core::StorageError) -> String {
    let s = e.to_string();
    s.strip_prefix("invalid input: ")
        .map(str::to_owned)
        .unwrap_or(s)
}

/// A compare-and-set claim of an entry's status.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimInput {
    /// Expected current status; `null` (or absent) for an entry without a status.
    #[serde(default)]
    pub from: Option<String>,
    pub to: String,
    pub assignee: String,
}

// ------------------------------------------------------------------ KBs

pub async fn list_kbs(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    params: Params,
) -> Resp {
    params.finish(&[])?;
    let kbs: Vec<_> = st
        .store
        .list_kbs()
        .await?
        .into_iter()
        .filter(|k| access.can_read(&k.name))
        .collect();
    Ok(Json(json!({ "kbs": kbs })).into_response())
}

pub async fn create_kb(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    ApiJson(input): ApiJson<KbInput>,
) -> Resp {
    access.check_admin()?;
    let mut new = NewKnowledgeBase::persistent(&input.name).description(input.description);
    if let Some(ttl) = input.ttl_secs {
        let ttl = i64::try_from(ttl)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .filter(|d| *d <= chrono::Duration::days(3650) && *d > chrono::Duration::zero())
            .ok_or_else(|| {
                ApiError::unprocessable("ttl_secs must be from 1 to 315360000 (ten years)")
            })?;
        new.expires_at = Some(chrono::Utc::now() + ttl);
    }
    new.validate()
        .map_err(|e| ApiError::unprocessable(strip_kind(&e)))?;
    let kb = st.store.create_kb(&new).await?;
    Ok((StatusCode::CREATED, Json(kb)).into_response())
}

pub async fn get_kb(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    params: Params,
) -> Resp {
    params.finish(&[])?;
    let kb = kb_of(&uri)?;
    access.check_read(&kb)?;
    let Some(found) = st.store.get_kb(&kb).await? else {
        return Err(ApiError::not_found(format!("knowledge base {kb}")));
    };
    let entries = st.store.count_entries(&Filter::new().kb(&kb)).await?;
    let mut v = serde_json::to_value(found).expect("KBs serialise");
    v["entries"] = entries.into();
    Ok(Json(v).into_response())
}

pub async fn delete_kb(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
) -> Resp {
    let kb = kb_of(&uri)?;
    access.check_read(&kb)?;
    access.check_admin()?;
    if !st.store.delete_kb(&kb).await? {
        return Err(ApiError::not_found(format!("knowledge base {kb}")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The caller may read `kb` and it exists, else 404 (the same answer either way).
pub(crate) async fn require_kb(st: &AppState, access: &Access, kb: &str) -> ApiResult<()> {
    access.check_read(kb)?;
    if st.store.get_kb(kb).await?.is_none() {
        return Err(ApiError::not_found(format!("knowledge base {kb}")));
    }
    Ok(())
}

// ------------------------------------------------------------------ entries

const LIST_PARAMS: &[&str] = &[
    "type",
    "tag",
    "tag_prefix",
    "status",
    "lifecycle",
    "path_prefix",
    "from",
    "to",
    "min_importance",
    "sort",
    "order",
    "limit",
    "offset",
];

pub async fn list_entries(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    mut params: Params,
) -> Resp {
    let kb = kb_of(&uri)?;
    require_kb(&st, &access, &kb).await?;
    let mut f = filter_params(&mut params, 50)?;
    f.kbs = vec![kb];
    if let Some(field) = params.parsed("sort", |s| match s {
        "updated" => Ok(SortField::Updated),
        "created" => Ok(SortField::Created),
        "title" => Ok(SortField::Title),
        "date" => Ok(SortField::Date),
        "importance" => Ok(SortField::Importance),
        _ => Err(format!(
            "{s:?} is not one of updated, created, title, date, importance"
        )),
    })? {
        f.sort.field = field;
    }
    if let Some(order) = params.parsed("order", |s| match s {
        "asc" => Ok(SortOrder::Asc),
        "desc" => Ok(SortOrder::Desc),
        _ => Err(format!("{s:?} is not asc or desc")),
    })? {
        f.sort.order = order;
    }
    params.finish(LIST_PARAMS)?;
    f.validate()
        .map_err(|e| ApiError::bad_request(strip_kind(&e)))?;
    let total = st.store.count_entries(&f).await?;
    let entries = st.store.list_entries(&f).await?;
    Ok(Json(json!({
        "entries": entries,
        "total": total,
        "limit": f.limit,
        "offset": f.offset,
    }))
    .into_response())
}

/// The `Filter` fields every entry-selecting route takes, with a page of `default_limit`.
pub(crate) fn filter_params(p: &mut Params, default_limit: usize) -> ApiResult<Filter> {
    let mut f = Filter::new();
    f.entry_types = p.list("type");
    f.tags = p.list("tag");
    f.tag_prefix = p.one("tag_prefix")?;
    f.statuses = p.list("status");
    f.path_prefix = p.one("path_prefix")?;
    if let Some(l) = p.parsed("lifecycle", |s| match s {
        "active" => Ok(LifecycleFilter::Active),
        "archived" => Ok(LifecycleFilter::Archived),
        "any" => Ok(LifecycleFilter::Any),
        _ => Err(format!("{s:?} is not one of active, archived, any")),
    })? {
        f.lifecycle = l;
    }
    let date = |s: &str| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))
    };
    f.date_from = p.parsed("from", date)?;
    f.date_to = p.parsed("to", date)?;
    f.min_importance = p.parsed("min_importance", |s| {
        s.parse::<i32>()
            .map_err(|_| format!("{s:?} is not a whole number"))
    })?;
    f.limit = Some(p.number("limit", default_limit, MAX_LIST_LIMIT)?);
    f.offset = p.number("offset", 0, usize::MAX / 2)?;
    Ok(f)
}

pub async fn upsert_batch(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    ApiJson(inputs): ApiJson<Vec<EntryInput>>,
) -> Resp {
    let kb = kb_of(&uri)?;
    access.check_write(&kb)?;
    if inputs.len() > MAX_BATCH {
        return Err(ApiError::unprocessable(format!(
            "{} entries in one batch; at most {MAX_BATCH} are allowed",
            inputs.len()
        )));
    }
    let entries = inputs
        .into_iter()
        .enumerate()
        .map(|(i, e)| entry_from(e, &kb, None, Some(i)))
        .collect::<ApiResult<Vec<_>>>()?;
    let stored = st.store.upsert_entries(&entries).await?;
    let written: Vec<Value> = stored
        .iter()
        .map(|e| json!({"id": e.id, "content_hash": e.content_hash, "updated_at": e.updated_at}))
        .collect();
    Ok(Json(json!({ "written": written.len(), "entries": written })).into_response())
}

/// What the rest of an entry path names: the entry, or one of its sub-resources.
pub(crate) enum EntryPath {
    Entry(String),
    Sub(Sub, String),
}

/// The sub-resources of an entry (`…/entries/{id}/{sub}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sub {
    Backlinks,
    Outlinks,
    Graph,
    Similar,
    Star,
    Claim,
    Metadata,
}

impl Sub {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "backlinks" => Sub::Backlinks,
            "outlinks" => Sub::Outlinks,
            "graph" => Sub::Graph,
            "similar" => Sub::Similar,
            "star" => Sub::Star,
            "claim" => Sub::Claim,
            "metadata" => Sub::Metadata,
            _ => return None,
        })
    }
}

/// `(kb, what)` from `/v1/kbs/{kb}/entries/{rest…}` (see the module doc).
pub(crate) fn entry_path(uri: &OriginalUri) -> ApiResult<(String, EntryPath)> {
    let path = uri.0.path();
    let mut parts = path.splitn(6, '/');
    let (Some(""), Some("v1"), Some("kbs"), Some(kb), Some("entries"), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(ApiError::from_status(StatusCode::NOT_FOUND));
    };
    let kb = decode(kb)?;
    let (id_raw, sub) = match rest.rsplit_once('/') {
        Some((id, sub)) if !id.is_empty() => match Sub::parse(sub) {
            Some(sub) => (id, Some(sub)),
            None => (rest, None),
        },
        _ => (rest, None),
    };
    let id = decode(id_raw)?;
    if id.is_empty() {
        return Err(ApiError::not_found("entry (empty id)"));
    }
    let what = match sub {
        None => EntryPath::Entry(id),
        Some(sub) => EntryPath::Sub(sub, id),
    };
    Ok((kb, what))
}

pub(crate) fn kb_of(uri: &OriginalUri) -> ApiResult<String> {
    let raw = uri
        .0
        .path()
        .strip_prefix("/v1/kbs/")
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| ApiError::from_status(StatusCode::NOT_FOUND))?;
    decode(raw)
}

pub(crate) fn decode(raw: &str) -> ApiResult<String> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ApiError::bad_request("the path is not valid UTF-8 once percent-decoded"))
}

/// The entry's version for `ETag`: its content hash with its workflow state (status and
/// assignee), which the content hash leaves out but a claim changes.
pub fn etag(e: &Entry) -> String {
    let mut h = blake3::Hasher::new();
    for part in [
        e.content_hash.as_str(),
        e.status.as_deref().unwrap_or("\u{0}"),
        e.assignee.as_deref().unwrap_or("\u{0}"),
    ] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    format!("\"{}\"", &h.finalize().to_hex()[..32])
}

pub(crate) fn entry_response(status: StatusCode, e: &Entry) -> Response {
    let mut resp = (status, Json(e)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(e)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// Whether `If-None-Match` holds the current tag (`*`, a list, weak tags compare equal).
fn none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == tag)
}

pub async fn entry_get(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    headers: HeaderMap,
    mut params: Params,
) -> Resp {
    let (kb, what) = entry_path(&uri)?;
    access.check_read(&kb)?;
    let id = match what {
        EntryPath::Entry(id) => id,
        EntryPath::Sub(Sub::Backlinks, id) => {
            params.finish(&[])?;
            require_kb(&st, &access, &kb).await?;
            // Links from KBs the caller cannot read are left out: they would reveal them.
            let links: Vec<_> = st
                .store
                .backlinks(&EntryKey::new(&kb, &id))
                .await?
                .into_iter()
                .filter(|b| access.can_read(&b.source.kb))
                .collect();
            return Ok(Json(json!({ "kb": kb, "id": id, "backlinks": links })).into_response());
        }
        EntryPath::Sub(Sub::Outlinks, id) => {
            params.finish(&[])?;
            let key = EntryKey::new(&kb, &id);
            if st.store.get_entry(&key).await?.is_none() {
                return Err(ApiError::not_found(format!("entry {key}")));
            }
            let links = st.store.outlinks(&key).await?;
            return Ok(Json(json!({ "kb": kb, "id": id, "outlinks": links })).into_response());
        }
        EntryPath::Sub(Sub::Graph, id) => {
            return related::graph(&st, &access, &kb, &id, params).await
        }
        EntryPath::Sub(Sub::Similar, id) => {
            return related::similar(&st, &access, &kb, &id, params).await
        }
        EntryPath::Sub(_, _) => return Err(ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED)),
    };
    // `render=html` adds `body_html`, the body rendered for the search page.
    let render = params.one("render")?;
    params.finish(&["render"])?;
    let render = match render.as_deref() {
        None => false,
        Some("html") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "render={other:?}: the only rendering is `html`"
            )))
        }
    };
    let key = EntryKey::new(&kb, &id);
    let Some(e) = st.store.get_entry(&key).await? else {
        return Err(ApiError::not_found(format!("entry {key}")));
    };
    if render {
        let mut v = serde_json::to_value(&e)
            .map_err(|_| ApiError::from_status(StatusCode::INTERNAL_SERVER_ERROR))?;
        v["body_html"] = Value::String(crate::page::render_markdown(&e.body));
        return Ok(Json(v).into_response());
    }
    let tag = etag(&e);
    if none_match(&headers, &tag) {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&tag) {
            resp.headers_mut().insert(header::ETAG, v);
        }
        return Ok(resp);
    }
    Ok(entry_response(StatusCode::OK, &e))
}

/// PUT an entry (upsert; the body is an [`EntryInput`]) or its star (no body).
pub async fn entry_put(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    req: Request,
) -> Resp {
    let (kb, what) = entry_path(&uri)?;
    access.check_write(&kb)?;
    match what {
        EntryPath::Entry(id) => {
            let ApiJson(input) = ApiJson::<EntryInput>::from_request(req, &()).await?;
            let entry = entry_from(input, &kb, Some(&id), None)?;
            let stored = st.store.upsert_entry(&entry).await?;
            Ok(entry_response(StatusCode::OK, &stored))
        }
        EntryPath::Sub(Sub::Star, id) => related::star(&st, &kb, &id).await,
        EntryPath::Sub(..) => Err(ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED)),
    }
}

pub async fn entry_delete(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
) -> Resp {
    let (kb, what) = entry_path(&uri)?;
    access.check_write(&kb)?;
    match what {
        EntryPath::Entry(id) => {
            let key = EntryKey::new(&kb, &id);
            if !st.store.delete_entry(&key).await? {
                return Err(ApiError::not_found(format!("entry {key}")));
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        EntryPath::Sub(Sub::Star, id) => related::unstar(&st, &kb, &id).await,
        EntryPath::Sub(..) => Err(ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED)),
    }
}

/// POST to an entry's `claim` or `metadata` (compare-and-set).
pub async fn entry_post(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    req: Request,
) -> Resp {
    let (kb, what) = entry_path(&uri)?;
    access.check_write(&kb)?;
    match what {
        EntryPath::Sub(Sub::Claim, id) => {
            let ApiJson(input) = ApiJson::from_request(req, &()).await?;
            claim(&st, EntryKey::new(&kb, &id), input).await
        }
        EntryPath::Sub(Sub::Metadata, id) => {
            let ApiJson(input) = ApiJson::from_request(req, &()).await?;
            related::cas_metadata(&st, EntryKey::new(&kb, &id), input).await
        }
        _ => Err(ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED)),
    }
}

async fn claim(st: &AppState, key: EntryKey, input: ClaimInput) -> Resp {
    match st
        .store
        .claim(&key, input.from.as_deref(), &input.to, &input.assignee)
        .await?
    {
        ClaimOutcome::Claimed(e) => Ok(entry_response(StatusCode::OK, &e)),
        ClaimOutcome::NotInExpectedState {
            current_status,
            assignee,
        } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "claim_lost",
            format!(
                "{key} is {} (held by {})",
                current_status.as_deref().unwrap_or("without status"),
                assignee.as_deref().unwrap_or("nobody")
            ),
        )
        .with("status", current_status)
        .with("assignee", assignee)),
        ClaimOutcome::NotFound => Err(ApiError::not_found(format!("entry {key}"))),
    }
}

// ------------------------------------------------------------------ tags, timeline

pub async fn tags(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    mut params: Params,
) -> Resp {
    let kb = kb_of(&uri)?;
    require_kb(&st, &access, &kb).await?;
    let prefix = params.one("prefix")?;
    params.finish(&["prefix"])?;
    let tags = match prefix {
        Some(p) => st.store.tags_with_prefix(Some(&kb), &p).await?,
        None => st.store.tags(Some(&kb)).await?,
    };
    Ok(Json(json!({ "kb": kb, "tags": tags })).into_response())
}

pub async fn timeline(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    mut params: Params,
) -> Resp {
    let kb = kb_of(&uri)?;
    require_kb(&st, &access, &kb).await?;
    let mut f = filter_params(&mut params, 100)?;
    f.kbs = vec![kb];
    params.finish(
        &LIST_PARAMS[..LIST_PARAMS.len() - 4]
            .iter()
            .chain(&["limit", "offset"])
            .copied()
            .collect::<Vec<_>>(),
    )?;
    f.validate()
        .map_err(|e| ApiError::bad_request(strip_kind(&e)))?;
    let entries = st.store.timeline(&f).await?;
    Ok(Json(json!({ "entries": entries, "limit": f.limit, "offset": f.offset })).into_response())
}

// ------------------------------------------------------------------ search

const SEARCH_PARAMS: &[&str] = &[
    "q",
    "mode",
    "limit",
    "offset",
    "type",
    "tag",
    "tag_prefix",
    "status",
    "explain",
    "any",
];

struct SearchParams {
    req: SearchRequest,
    explain: bool,
}

fn search_params(st: &AppState, p: &mut Params) -> ApiResult<SearchParams> {
    let q = p.one("q")?.unwrap_or_default();
    if q.trim().is_empty() {
        return Err(ApiError::bad_request(
            "query parameter `q` (the search query) is required",
        ));
    }
    if q.len() > MAX_QUERY_BYTES {
        return Err(ApiError::bad_request(format!(
            "the query is {} bytes; at most {MAX_QUERY_BYTES} are allowed",
            q.len()
        )));
    }
    let mode = p
        .parsed("mode", |s| s.parse::<SearchMode>())?
        .unwrap_or_default();
    if mode != SearchMode::Keyword {
        if let Some(why) = &st.semantic_unavailable {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "mode_unavailable",
                format!("semantic and hybrid search are not available on this server: {why}; use mode=keyword"),
            ));
        }
    }
    let mut f = Filter::new();
    f.entry_types = p.list("type");
    f.tags = p.list("tag");
    f.tag_prefix = p.one("tag_prefix")?;
    f.statuses = p.list("status");
    f.limit = Some(p.number("limit", 10, MAX_SEARCH_LIMIT)?.max(1));
    f.offset = p.number("offset", 0, MAX_SEARCH_OFFSET)?;
    let explain = p.flag("explain")?;
    let any = p.flag("any")?;
    let mut req = SearchRequest::new(q, mode).filter(f);
    req.any_words = any;
    Ok(SearchParams { req, explain })
}

fn search_json(res: &SearchResponse, sp: &SearchParams) -> Value {
    let hits: Vec<Value> = res
        .hits
        .iter()
        .map(|h| kb_app::embedding::hit_json(h, sp.explain))
        .collect();
    json!({
        "query": sp.req.query,
        "mode": res.mode,
        "legs": res.legs,
        "degraded": res.degraded,
        "limit": sp.req.filter.limit,
        "offset": sp.req.filter.offset,
        "hits": hits,
    })
}

pub async fn search_kb(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    mut params: Params,
) -> Resp {
    let kb = kb_of(&uri)?;
    require_kb(&st, &access, &kb).await?;
    let mut sp = search_params(&st, &mut params)?;
    params.finish(SEARCH_PARAMS)?;
    sp.req.filter.kbs = vec![kb];
    let res = st.searcher.search(&sp.req).await?;
    Ok(Json(search_json(&res, &sp)).into_response())
}

/// Across KBs: every KB the caller may read, narrowed by `kb=` parameters.
pub async fn search_all(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    mut params: Params,
) -> Resp {
    let mut sp = search_params(&st, &mut params)?;
    let asked = params.list("kb");
    params.finish(&[SEARCH_PARAMS, &["kb"][..]].concat())?;
    let kbs: Vec<String> = match access.readable() {
        None => asked,
        Some(readable) if asked.is_empty() => readable.to_vec(),
        Some(_) => asked.into_iter().filter(|k| access.can_read(k)).collect(),
    };
    if kbs.is_empty() && access.readable().is_some() {
        // Nothing readable was asked for: the empty filter would mean every KB.
        let empty = SearchResponse {
            hits: Vec::new(),
            mode: sp.req.mode,
            legs: Vec::new(),
            degraded: None,
        };
        return Ok(Json(search_json(&empty, &sp)).into_response());
    }
    sp.req.filter.kbs = kbs;
    let res = st.searcher.search(&sp.req).await?;
    Ok(Json(search_json(&res, &sp)).into_response())
}
