//! `/healthz` (the process answers) and `/readyz` (the database answers, in time).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use storage_core::{HealthReport, QueueStats};

use crate::state::AppState;

/// How long `/readyz` waits for the database before answering 503.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// The store's health and queue, or why not: the error, or `Err(None)` when the database
/// did not answer within [`READY_TIMEOUT`]. `/readyz` and `/metrics` both read it.
pub(crate) async fn probe(
    st: &AppState,
) -> Result<(HealthReport, QueueStats), Option<storage_core::StorageError>> {
    let probe = async {
        let health = st.store.health().await?;
        let queue = st.store.queue_stats().await?;
        Ok::<_, storage_core::StorageError>((health, queue))
    };
    match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(r) => r.map_err(Some),
        Err(_) => Err(None),
    }
}

pub async fn readyz(State(st): State<AppState>) -> Response {
    let unavailable = |reason: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": reason })),
        )
            .into_response()
    };
    match probe(&st).await {
        Ok((health, queue)) => Json(json!({
            "status": "ready",
            "backend": health.backend,
            "schema_version": health.schema_version,
            "pool": health.pool,
            "queue": queue,
            "embedder": {
                "ready": st.embedder.is_some(),
                "model": st.embedder.as_ref().map(|e| e.model_id().to_owned()),
                "workers": if st.embedder.is_some() { st.embed_workers } else { 0 },
            },
        }))
        .into_response(),
        Err(Some(e)) => {
            tracing::warn!(error = %e, "readiness probe failed");
            unavailable(if e.is_retryable() {
                "the database is unreachable"
            } else {
                "the database reported an error"
            })
        }
        Err(None) => unavailable("the database did not answer within 2 s"),
    }
}
