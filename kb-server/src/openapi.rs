//! The OpenAPI 3.1 document served at `/v1/openapi.json` (utoipa).
//!
//! Entry routes share one wildcard handler (ids contain `/`, see [`crate::routes`]), and
//! some handlers answer two paths, so each operation is declared here once, on a stub,
//! with the request and response types the handlers use. The test
//! `every_route_is_in_the_openapi_document` asks the router which methods each path
//! answers and fails when one is missing here.

#![allow(dead_code)] // The stubs exist for their `#[utoipa::path]` attributes only.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::routes::{CasInput, ClaimInput, CollectionInput, KbInput, RequeueInput, SettingInput};
use kb_app::input::EntryInput;
use storage_core::{
    Backlink, Collection, Entry, EntryKey, GcReport, Graph, KnowledgeBase, Link, LinkCount,
    TagCount,
};

/// Every error: `{"error": {"kind", "message", …}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not_found`, `invalid_query`, `claim_lost`, …
    pub kind: String,
    /// A sentence for people.
    pub message: String,
}

/// The `Filter` fields of entry lists and the timeline.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterParams {
    /// Entry type (repeat for several).
    #[param(rename = "type")]
    pub entry_type: Option<Vec<String>>,
    /// Tag the entries carry (repeat: all of them).
    pub tag: Option<Vec<String>>,
    /// A tag or any tag below it (`a` → `a`, `a/b`).
    pub tag_prefix: Option<String>,
    /// Status (repeat for several).
    pub status: Option<Vec<String>>,
    /// `active` (default), `archived` or `any`.
    pub lifecycle: Option<String>,
    /// Source paths starting with this.
    pub path_prefix: Option<String>,
    /// Entry date from (YYYY-MM-DD).
    pub from: Option<String>,
    /// Entry date to (YYYY-MM-DD).
    pub to: Option<String>,
    /// Importance at least this.
    pub min_importance: Option<i32>,
    /// Page size (at most 1000).
    pub limit: Option<usize>,
    /// Entries to skip.
    pub offset: Option<usize>,
}

/// Search parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The query: words, `"phrases"`, `AND`/`OR`/`NOT`, parentheses (at most 4096 bytes).
    pub q: String,
    /// `hybrid` (default), `keyword` or `semantic`.
    pub mode: Option<String>,
    /// Hits per page (1 to 100, default 10).
    pub limit: Option<usize>,
    /// Hits to skip (at most 10000).
    pub offset: Option<usize>,
    /// Entry type (repeat for several).
    #[param(rename = "type")]
    pub entry_type: Option<Vec<String>>,
    /// Tag (repeat: all of them).
    pub tag: Option<Vec<String>>,
    /// A tag or any tag below it.
    pub tag_prefix: Option<String>,
    /// Status (repeat for several).
    pub status: Option<Vec<String>>,
    /// Add each hit's score explanation.
    pub explain: Option<bool>,
    /// Match any word rather than all of them.
    pub any: Option<bool>,
}

#[utoipa::path(get, path = "/v1/kbs", tag = "knowledge bases",
    responses((status = 200, description = "`{kbs: [KnowledgeBase]}`: the KBs the caller may read")))]
fn list_kbs() {}

#[utoipa::path(post, path = "/v1/kbs", tag = "knowledge bases", request_body = KbInput,
    responses((status = 201, body = KnowledgeBase), (status = 409, body = ErrorBody, description = "The name is taken"),
        (status = 403, body = ErrorBody, description = "Needs an admin token")))]
fn create_kb() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}", tag = "knowledge bases", params(("kb" = String, Path)),
    responses((status = 200, body = KnowledgeBase, description = "The KB with its `entries` count"),
        (status = 404, body = ErrorBody)))]
fn get_kb() {}

#[utoipa::path(delete, path = "/v1/kbs/{kb}", tag = "knowledge bases", params(("kb" = String, Path)),
    responses((status = 204, description = "Deleted with everything in it"), (status = 404, body = ErrorBody)))]
fn delete_kb() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/entries", tag = "entries",
    params(("kb" = String, Path), FilterParams,
        ("sort" = Option<String>, Query, description = "updated (default), created, title, date, importance"),
        ("order" = Option<String>, Query, description = "asc or desc")),
    responses((status = 200, description = "`{entries: [Entry], total, limit, offset}`")))]
fn list_entries() {}

#[utoipa::path(post, path = "/v1/kbs/{kb}/entries", tag = "entries", params(("kb" = String, Path)),
    request_body = Vec<EntryInput>,
    responses((status = 200, description = "`{written, entries: [{id, content_hash, updated_at}]}`: all or nothing"),
        (status = 422, body = ErrorBody, description = "An entry is invalid; the message names its position")))]
fn upsert_batch() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/entries/{id}", tag = "entries",
    params(("kb" = String, Path), ("id" = String, Path, description = "May contain `/`"),
        ("render" = Option<String>, Query, description = "`html` adds `body_html`, the body rendered from markdown"),
        ("If-None-Match" = Option<String>, Header)),
    responses((status = 200, body = Entry, headers(("ETag" = String))), (status = 304, description = "Not modified"),
        (status = 404, body = ErrorBody)))]
fn get_entry() {}

#[utoipa::path(put, path = "/v1/kbs/{kb}/entries/{id}", tag = "entries",
    params(("kb" = String, Path), ("id" = String, Path)), request_body = EntryInput,
    responses((status = 200, body = Entry, description = "Inserted or replaced"), (status = 422, body = ErrorBody)))]
fn put_entry() {}

#[utoipa::path(delete, path = "/v1/kbs/{kb}/entries/{id}", tag = "entries",
    params(("kb" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)))]
fn delete_entry() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/entries/{id}/backlinks", tag = "links",
    params(("kb" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "`{kb, id, backlinks: [Backlink]}` from KBs the caller may read")))]
fn backlinks() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/entries/{id}/outlinks", tag = "links",
    params(("kb" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "`{kb, id, outlinks: [Link]}`"), (status = 404, body = ErrorBody)))]
fn outlinks() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/entries/{id}/graph", tag = "links",
    params(("kb" = String, Path), ("id" = String, Path),
        ("depth" = Option<usize>, Query, description = "Hops, 0 to 3 (default 1)"),
        ("max_nodes" = Option<usize>, Query, description = "At most 500 (default 100)"),
        ("backlinks" = Option<bool>, Query, description = "Follow incoming links too (default true)")),
    responses((status = 200, body = Graph), (status = 404, body = ErrorBody)))]
fn graph() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/entries/{id}/similar", tag = "search",
    params(("kb" = String, Path), ("id" = String, Path),
        ("k" = Option<usize>, Query, description = "Neighbours, at most 100 (default 10)"),
        ("kb" = Option<Vec<String>>, Query, description = "Look in these KBs instead of the entry's"),
        ("type" = Option<Vec<String>>, Query), ("tag" = Option<Vec<String>>, Query),
        ("tag_prefix" = Option<String>, Query), ("status" = Option<Vec<String>>, Query)),
    responses((status = 200, description = "`{kb, id, similar: [{rank, score, kb, id, title, type, tags}]}`"),
        (status = 409, body = ErrorBody, description = "The entry has no vector yet"), (status = 404, body = ErrorBody)))]
fn similar() {}

#[utoipa::path(put, path = "/v1/kbs/{kb}/entries/{id}/star", tag = "organise",
    params(("kb" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "Starred (starring twice keeps the first place)"), (status = 404, body = ErrorBody)))]
fn star() {}

#[utoipa::path(delete, path = "/v1/kbs/{kb}/entries/{id}/star", tag = "organise",
    params(("kb" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "Unstarred"), (status = 404, body = ErrorBody, description = "Not starred")))]
fn unstar() {}

#[utoipa::path(post, path = "/v1/kbs/{kb}/entries/{id}/claim", tag = "coordination",
    params(("kb" = String, Path), ("id" = String, Path)), request_body = ClaimInput,
    responses((status = 200, body = Entry, description = "Won"),
        (status = 409, body = ErrorBody, description = "Lost: `status` and `assignee` name the holder")))]
fn claim() {}

#[utoipa::path(post, path = "/v1/kbs/{kb}/entries/{id}/metadata", tag = "coordination",
    params(("kb" = String, Path), ("id" = String, Path)), request_body = CasInput,
    responses((status = 200, description = "`{swapped: true, path, value}`"),
        (status = 409, body = ErrorBody, description = "Not the expected value: `current` and `present` say what is there")))]
fn cas_metadata() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/tags", tag = "organise",
    params(("kb" = String, Path), ("prefix" = Option<String>, Query)),
    responses((status = 200, description = "`{kb, tags: [TagCount]}`")))]
fn tags() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/timeline", tag = "entries", params(("kb" = String, Path), FilterParams),
    responses((status = 200, description = "`{entries: [Entry], limit, offset}` by date")))]
fn timeline() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/graph", tag = "links",
    params(("kb" = String, Path), ("limit" = Option<usize>, Query, description = "Most linked entries shown (default 20)")),
    responses((status = 200, description = "`{kb, most_linked: [LinkCount], orphans: [EntryKey]}`")))]
fn kb_graph() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/stars", tag = "organise", params(("kb" = String, Path)),
    responses((status = 200, description = "`{kb, starred: [EntryKey]}` in starring order")))]
fn stars_kb() {}

#[utoipa::path(get, path = "/v1/stars", tag = "organise",
    responses((status = 200, description = "`{starred: [EntryKey]}` of every KB the caller may read")))]
fn stars_all() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/search", tag = "search", params(("kb" = String, Path), SearchParams),
    responses((status = 200, description = "`{query, mode, legs, degraded, limit, offset, hits}`"),
        (status = 400, body = ErrorBody, description = "Malformed query (`invalid_query`, with `position`)")))]
fn search_kb() {}

#[utoipa::path(get, path = "/v1/search", tag = "search",
    params(SearchParams, ("kb" = Option<Vec<String>>, Query, description = "Only these KBs (default: every readable KB)")),
    responses((status = 200, description = "As the KB search, across KBs")))]
fn search_all() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/settings", tag = "settings", params(("kb" = String, Path)),
    responses((status = 200, description = "`{kb, settings: {key: value}}`")))]
fn kb_settings() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/settings/{key}", tag = "settings",
    params(("kb" = String, Path), ("key" = String, Path, description = "May contain `/`")),
    responses((status = 200, description = "`{key, value}`"), (status = 404, body = ErrorBody)))]
fn kb_setting_get() {}

#[utoipa::path(put, path = "/v1/kbs/{kb}/settings/{key}", tag = "settings",
    params(("kb" = String, Path), ("key" = String, Path)), request_body = SettingInput,
    responses((status = 200, description = "`{key, value}`")))]
fn kb_setting_put() {}

#[utoipa::path(delete, path = "/v1/kbs/{kb}/settings/{key}", tag = "settings",
    params(("kb" = String, Path), ("key" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
fn kb_setting_delete() {}

#[utoipa::path(get, path = "/v1/settings", tag = "settings",
    responses((status = 200, description = "`{settings}`: the global settings, without token records (admin)")))]
fn global_settings() {}

#[utoipa::path(get, path = "/v1/settings/{key}", tag = "settings", params(("key" = String, Path)),
    responses((status = 200, description = "`{key, value}` (admin)"), (status = 404, body = ErrorBody)))]
fn global_setting_get() {}

#[utoipa::path(put, path = "/v1/settings/{key}", tag = "settings", params(("key" = String, Path)),
    request_body = SettingInput, responses((status = 200, description = "`{key, value}` (admin)")))]
fn global_setting_put() {}

#[utoipa::path(delete, path = "/v1/settings/{key}", tag = "settings", params(("key" = String, Path)),
    responses((status = 204, description = "Removed (admin)"), (status = 404, body = ErrorBody)))]
fn global_setting_delete() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/collections", tag = "collections", params(("kb" = String, Path)),
    responses((status = 200, description = "`{kb, collections: [Collection]}`")))]
fn collections() {}

#[utoipa::path(post, path = "/v1/kbs/{kb}/collections", tag = "collections", params(("kb" = String, Path)),
    request_body = CollectionInput,
    responses((status = 201, body = Collection), (status = 409, body = ErrorBody, description = "The name is taken")))]
fn collection_create() {}

#[utoipa::path(get, path = "/v1/kbs/{kb}/collections/{name}", tag = "collections",
    params(("kb" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "The Collection with `entries`: member ids in order"), (status = 404, body = ErrorBody)))]
fn collection_get() {}

#[utoipa::path(delete, path = "/v1/kbs/{kb}/collections/{name}", tag = "collections",
    params(("kb" = String, Path), ("name" = String, Path)),
    responses((status = 204, description = "Deleted; its entries stay"), (status = 404, body = ErrorBody)))]
fn collection_delete() {}

#[utoipa::path(put, path = "/v1/kbs/{kb}/collections/{name}/entries/{id}", tag = "collections",
    params(("kb" = String, Path), ("name" = String, Path), ("id" = String, Path),
        ("position" = Option<usize>, Query, description = "0 is first; default last")),
    responses((status = 204, description = "Added or moved"), (status = 404, body = ErrorBody)))]
fn collection_add() {}

#[utoipa::path(delete, path = "/v1/kbs/{kb}/collections/{name}/entries/{id}", tag = "collections",
    params(("kb" = String, Path), ("name" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
fn collection_remove() {}

#[utoipa::path(post, path = "/v1/gc", tag = "admin",
    responses((status = 200, body = GcReport, description = "What expired and was removed (admin)")))]
fn gc() {}

#[utoipa::path(get, path = "/v1/queue", tag = "admin",
    responses((status = 200, description = "`{pending, in_progress, failed, failed_items: [FailedItem], workers}` (admin)")))]
fn queue() {}

#[utoipa::path(post, path = "/v1/queue/requeue", tag = "admin", request_body = RequeueInput,
    responses((status = 200, description = "`{queued}` (admin)")))]
fn requeue() {}

#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "The process answers")))]
fn healthz() {}

#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "`{status, backend, schema_version, pool, queue, embedder}`"),
        (status = 503, description = "`{status: unavailable, reason}`: the database did not answer in time")))]
fn readyz() {}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format (admin once tokens exist)", content_type = "text/plain")))]
fn metrics() {}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "This document")))]
fn openapi() {}

/// Bearer tokens (`kb token create`) on every route unless the operation says otherwise.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "kb serve", description = "Storage and search for knowledge bases and agent memory."),
    modifiers(&Bearer),
    security(("bearer" = [])),
    paths(
        list_kbs, create_kb, get_kb, delete_kb,
        list_entries, upsert_batch, get_entry, put_entry, delete_entry,
        backlinks, outlinks, graph, similar, star, unstar, claim, cas_metadata,
        tags, timeline, kb_graph, stars_kb, stars_all, search_kb, search_all,
        kb_settings, kb_setting_get, kb_setting_put, kb_setting_delete,
        global_settings, global_setting_get, global_setting_put, global_setting_delete,
        collections, collection_create, collection_get, collection_delete, collection_add, collection_remove,
        gc, queue, requeue, healthz, readyz, metrics, openapi,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, EntryInput, KbInput, ClaimInput, CasInput, SettingInput,
        CollectionInput, RequeueInput, Entry, EntryKey, KnowledgeBase, Link, Backlink, Graph,
        LinkCount, TagCount, Collection, GcReport,
    ))
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub fn document() -> &'static serde_json::Value {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(ApiDoc::openapi()).expect("the document serialises"))
}

/// `GET /v1/openapi.json`.
pub async fn serve() -> axum::Json<&'static serde_json::Value> {
    axum::Json(document())
}
