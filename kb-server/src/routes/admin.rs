//! Housekeeping for admins: expired KBs and entries, the embedding queue.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use storage_core::Filter;

use super::{strip_kind, ApiResult};
use crate::auth::Access;
use crate::error::ApiError;
use crate::extract::{ApiJson, Params};
use crate::state::AppState;

/// `POST /v1/gc`: removes expired KBs and entries now (the server also does it on its
/// own every few minutes).
pub async fn gc(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    params: Params,
) -> ApiResult<Response> {
    params.finish(&[])?;
    access.check_admin()?;
    let report = st.store.gc_expired(chrono::Utc::now()).await?;
    Ok(Json(report).into_response())
}

/// `GET /v1/queue`: how many entries wait for embedding, are being embedded or gave up,
/// with the ones that gave up and their last error.
pub async fn queue(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    params: Params,
) -> ApiResult<Response> {
    params.finish(&[])?;
    access.check_admin()?;
    let stats = st.store.queue_stats().await?;
    let failed = st.store.failed_embeddings().await?;
    Ok(Json(json!({
        "pending": stats.pending,
        "in_progress": stats.in_progress,
        "failed": stats.failed,
        "failed_items": failed,
        "workers": st.embed_workers,
    }))
    .into_response())
}

/// What to put back in the embedding queue.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequeueInput {
    /// Only these KBs (all when empty).
    #[serde(default)]
    pub kbs: Vec<String>,
    /// Every active entry, not only those without a vector (after a model change).
    #[serde(default)]
    pub all: bool,
}

/// `POST /v1/queue/requeue`: queues entries without a vector again (attempts reset).
pub async fn requeue(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    ApiJson(input): ApiJson<RequeueInput>,
) -> ApiResult<Response> {
    access.check_admin()?;
    let mut f = Filter::new();
    f.kbs = input.kbs;
    f.limit = None;
    f.validate()
        .map_err(|e| ApiError::unprocessable(strip_kind(&e)))?;
    let queued = st.store.requeue_embeddings(&f, input.all).await?;
    Ok(Json(json!({ "queued": queued })).into_response())
}
