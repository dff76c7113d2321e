//! `kb serve`: an HTTP JSON API over one knowledge-base store (axum on tokio).
//!
//! - [`serve`] opens the configured store, embedder and searcher once, starts the
//!   background embedding workers, and serves until its `shutdown` future completes;
//!   then it stops accepting, lets in-flight requests finish (bounded by
//!   [`ServeOptions::shutdown_grace`]) and stops the workers after their current batch.
//! - [`router`] is the whole HTTP surface over an [`AppState`], for in-process tests.
//! - [`mcp`] mounts the MCP endpoint (`/mcp`, [`kb_mcp`]) behind the same tokens.
//! - [`auth`] holds the bearer tokens (`kb token create`), [`error`] the one error shape.

pub mod auth;
pub mod error;
pub mod extract;
pub mod health;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod routes;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use kb_app::{AppError, Config};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use error::{ApiError, ApiResult};
pub use state::AppState;

/// Largest request body accepted by default (a batch of entries; one entry body may be
/// up to 8 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// How the server listens and bounds its work.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Serve without authentication even on a non-loopback address and even when tokens
    /// exist. Must be asked for explicitly.
    pub no_auth: bool,
    pub body_limit: usize,
    /// A request still running after this gets 504.
    pub request_timeout: Duration,
    /// After shutdown is signalled, how long in-flight requests may take to finish.
    pub shutdown_grace: Duration,
    /// Requests one caller (token) may have running at once; more get 429.
    pub max_in_flight: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            no_auth: false,
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            max_in_flight: auth::DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// Opens everything from `config`, binds `opts.listen` and serves until `shutdown`.
pub async fn serve(
    config: Config,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let state = AppState::open(&config, opts.no_auth).await?;
    check_exposure(&state, &opts).await?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| AppError::usage(format!("cannot listen on {}: {e}", opts.listen)))?;
    serve_listener(state, listener, opts, shutdown).await
}

/// Refuses to serve a non-loopback address without authentication unless `--no-auth`.
async fn check_exposure(state: &AppState, opts: &ServeOptions) -> Result<(), AppError> {
    if opts.no_auth || opts.listen.ip().is_loopback() {
        return Ok(());
    }
    if auth::list_tokens(state.store.as_ref()).await?.is_empty() {
        return Err(AppError::usage(format!(
            "refusing to listen on {} without access tokens: anyone who can reach it could \
             read and write every knowledge base. Create a token with `kb token create --admin` \
             (or `--kb NAME`), or pass --no-auth to serve without authentication",
            opts.listen
        )));
    }
    Ok(())
}

/// Serves `state` on an already bound listener (tests bind `127.0.0.1:0`).
pub async fn serve_listener(
    mut state: AppState,
    listener: tokio::net::TcpListener,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::usage(format!("the listener has no address: {e}")))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = std::sync::Arc::new(stop_tx);
    let signal = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = signal.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    state.in_flight = std::sync::Arc::new(auth::InFlight::new(opts.max_in_flight));
    metrics::handle();
    let workers = state
        .services
        .start_workers(state.embed_workers, "serve", stop_rx.clone())
        .await;
    let gc = state
        .services
        .start_gc(kb_app::service::GC_EVERY, stop_rx.clone());
    let mcp_cancel = tokio_util::sync::CancellationToken::new();
    let app = router_with(state.clone(), &opts, mcp_cancel.clone());
    tracing::info!(%addr, backend = state.open.backend(), workers = workers.len(), "kb serve listening");
    let server = axum::serve(listener, app).with_graceful_shutdown(stopped(stop_rx.clone()));
    let mut server = tokio::spawn(async move { server.await });
    let finished_alone = tokio::select! {
        r = &mut server => Some(r),
        _ = stopped(stop_rx.clone()) => None,
    };
    // Open MCP streams end now, so the graceful shutdown does not wait on them.
    mcp_cancel.cancel();
    let result = match finished_alone {
        Some(r) => r,
        None => match tokio::time::timeout(opts.shutdown_grace, &mut server).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(grace = ?opts.shutdown_grace, "requests still running after the grace period; closing them");
                server.abort();
                Ok(Ok(()))
            }
        },
    };
    // Stop the workers (each finishes its current batch) whether the server stopped on
    // request or failed.
    let _ = stop_tx.send(true);
    kb_app::join_workers(workers).await;
    let _ = gc.await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(AppError::usage(format!("the HTTP server failed: {e}"))),
        Err(e) => Err(AppError::usage(format!("the HTTP server task failed: {e}"))),
    }
}

/// The HTTP surface with the default limits.
pub fn router(state: AppState) -> Router {
    router_with(
        state,
        &ServeOptions::default(),
        tokio_util::sync::CancellationToken::new(),
    )
}

/// Numbers requests for `x-request-id` when the client sends none.
#[derive(Clone, Default)]
struct Counter(std::sync::Arc<AtomicU64>);

impl MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _req: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        HeaderValue::from_str(&format!("req-{n}"))
            .ok()
            .map(RequestId::new)
    }
}

/// The routes behind the bearer tokens: the router is built from this table, and the
/// OpenAPI test asks it which paths exist.
pub fn api_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    use axum::routing::post;
    use routes::*;
    vec![
        ("/v1/kbs", get(list_kbs).post(create_kb)),
        ("/v1/kbs/{kb}", get(get_kb).delete(delete_kb)),
        ("/v1/kbs/{kb}/entries", get(list_entries).post(upsert_batch)),
        (
            "/v1/kbs/{kb}/entries/{*rest}",
            get(entry_get)
                .put(entry_put)
                .delete(entry_delete)
                .post(entry_post),
        ),
        ("/v1/kbs/{kb}/search", get(search_kb)),
        ("/v1/kbs/{kb}/tags", get(tags)),
        ("/v1/kbs/{kb}/timeline", get(timeline)),
        ("/v1/kbs/{kb}/graph", get(kb_graph)),
        ("/v1/kbs/{kb}/stars", get(stars_kb)),
        ("/v1/kbs/{kb}/settings", get(kb_settings_get)),
        (
            "/v1/kbs/{kb}/settings/{*key}",
            get(kb_settings_get)
                .put(kb_settings_put)
                .delete(kb_settings_delete),
        ),
        (
            "/v1/kbs/{kb}/collections",
            get(collections_list).post(collection_create),
        ),
        (
            "/v1/kbs/{kb}/collections/{*rest}",
            get(collection_get)
                .put(collection_put)
                .delete(collection_delete),
        ),
        ("/v1/search", get(search_all)),
        ("/v1/stars", get(stars_all)),
        ("/v1/settings", get(global_settings)),
        (
            "/v1/settings/{*key}",
            get(global_setting_get)
                .put(global_setting_put)
                .delete(global_setting_delete),
        ),
        ("/v1/gc", post(gc)),
        ("/v1/queue", get(queue)),
        ("/v1/queue/requeue", post(requeue)),
        ("/metrics", get(metrics::render)),
    ]
}

/// The routes anyone may call: the page, health, and the API's description.
pub fn open_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/", get(page::index)),
        ("/page.js", get(page::script)),
        ("/page.css", get(page::style)),
        ("/healthz", get(health::healthz)),
        ("/readyz", get(health::readyz)),
        ("/v1/openapi.json", get(openapi::serve)),
    ]
}

fn router_with(
    state: AppState,
    opts: &ServeOptions,
    mcp_cancel: tokio_util::sync::CancellationToken,
) -> Router {
    metrics::handle();
    let v1 = api_routes()
        .into_iter()
        .fold(Router::new(), |r, (path, methods)| r.route(path, methods))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    let mcp = Router::new()
        .nest_service(
            "/mcp",
            kb_mcp::http_service(
                mcp::server(&state),
                mcp_cancel,
                opts.listen.ip().is_loopback(),
                opts.body_limit,
            ),
        )
        .layer(middleware::from_fn(mcp::attach_access))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    open_routes()
        .into_iter()
        .fold(Router::new(), |r, (path, methods)| r.route(path, methods))
        .merge(v1)
        .merge(mcp)
        .fallback(|| async { ApiError::from_status(StatusCode::NOT_FOUND) })
        .with_state(state)
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(opts.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            opts.request_timeout,
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(metrics::track))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map(|m| m.as_str().to_owned())
                        .unwrap_or_default();
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    // The route pattern, not the path: paths hold entry ids and queries.
                    tracing::info_span!("request", id = %id, method = %req.method(), route = %route)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(Counter::default()))
}

/// Gives responses made outside the handlers (405, 413, 504, …) the API's error shape.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let mut fixed = ApiError::from_status(status).into_response();
        if let Some(allow) = resp.headers().get(header::ALLOW) {
            fixed.headers_mut().insert(header::ALLOW, allow.clone());
        }
        return fixed;
    }
    resp
}
