//! `/metrics` in the Prometheus text format: requests and their latency per route
//! pattern, method and status (the `metrics` crate, rendered by
//! `metrics-exporter-prometheus`), and, read at each scrape, the store's pool and the
//! embedding queue. Needs an admin token once tokens exist, like every admin route.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::auth::Access;
use crate::error::ApiError;
use crate::state::AppState;

/// Latency buckets, in seconds: 1 ms to 30 s (the request timeout).
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's recorder, installed on first use: when a router is built, and earlier in
/// `serve_listener`, before the workers start, so their first batch is counted. One per
/// process: servers started in the same process (tests) share it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed, and then that one counts.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Counts every request by route pattern (never the path: it holds ids), method and
/// status, and records its latency.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("kb_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("kb_http_request_duration_seconds", "route" => route, "method" => method)
        .record(start.elapsed().as_secs_f64());
    resp
}

pub async fn render(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
) -> Result<Response, ApiError> {
    if !access.is_admin() {
        return Err(ApiError::from_status(StatusCode::FORBIDDEN));
    }
    match crate::health::probe(&st).await {
        Ok((health, queue)) => {
            metrics::gauge!("kb_database_up").set(1.0);
            let p = health.pool;
            metrics::gauge!("kb_pool_max_connections").set(f64::from(p.max_size));
            metrics::gauge!("kb_pool_connections").set(f64::from(p.size));
            metrics::gauge!("kb_pool_idle_connections").set(f64::from(p.idle));
            metrics::gauge!("kb_pool_in_use_connections").set(f64::from(p.in_use));
            metrics::gauge!("kb_pool_waiting").set(f64::from(p.waiting));
            metrics::gauge!("kb_embedding_queue", "state" => "pending").set(queue.pending as f64);
            metrics::gauge!("kb_embedding_queue", "state" => "in_progress")
                .set(queue.in_progress as f64);
            metrics::gauge!("kb_embedding_queue", "state" => "failed").set(queue.failed as f64);
        }
        Err(_) => metrics::gauge!("kb_database_up").set(0.0),
    }
    metrics::gauge!("kb_embed_workers").set(if st.embedder.is_some() {
        st.embed_workers as f64
    } else {
        0.0
    });
    let mut resp = handle().render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}
