//! What the server tests share: the backends to run on, requests in-process, a served
//! listener.

#![allow(dead_code)] // Each test file uses part of it.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use kb_app::{Config, ConfigOverrides, DatabaseConfig};
use kb_server::{AppState, ServeOptions};
use serde_json::Value;
use tower::ServiceExt;

/// One backend to run a test on.
pub(crate) struct Backend {
    pub(crate) name: &'static str,
    pub(crate) config: Config,
    pub(crate) _dir: tempfile::TempDir,
}

pub(crate) fn backends(test: &str) -> Vec<Backend> {
    // The same value in every test, so setting it from parallel tests is harmless.
    std::env::set_var("KB_EMBEDDER", "hashing");
    let load = |db: String, dir: &tempfile::TempDir| {
        Config::load(&ConfigOverrides {
            db: Some(db),
            config: None,
            cwd: Some(dir.path().to_owned()),
        })
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = load(
        format!("sqlite:{}", dir.path().join("index.db").display()),
        &dir,
    );
    let mut out = vec![Backend {
        name: "sqlite",
        config: sqlite,
        _dir: dir,
    }];
    if cfg!(feature = "postgres-tests") {
        let url = storage_postgres::require_test_url();
        let dir = tempfile::tempdir().unwrap();
        let mut config = load(url, &dir);
        // Set the schema on the config, not through KB_PG_SCHEMA: tests run in parallel.
        let DatabaseConfig::Postgres(pg) = &mut config.database else {
            panic!("KB_PG_URL is not a postgres:// URL");
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        pg.schema = format!("kbsrv_{test}_{}_{nanos}", std::process::id());
        out.push(Backend {
            name: "postgres",
            config,
            _dir: dir,
        });
    }
    out
}

pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) json: Value,
}

pub(crate) async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&b).unwrap())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    send(app, req).await
}

pub(crate) async fn send(app: &Router, req: Request<Body>) -> Resp {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    Resp {
        status,
        headers,
        json,
    }
}

pub(crate) fn get<'a>(app: &'a Router, uri: &str) -> impl std::future::Future<Output = Resp> + 'a {
    let uri = uri.to_owned();
    async move { call(app, Method::GET, &uri, None, None).await }
}

pub(crate) fn kind(r: &Resp) -> &str {
    r.json["error"]["kind"].as_str().unwrap_or("")
}

pub(crate) async fn app_for(b: &Backend) -> (AppState, Router) {
    let state = AppState::open(&b.config, false).await.unwrap();
    let app = kb_server::router(state.clone());
    (state, app)
}

/// A server on 127.0.0.1:0 with its workers, stopped by sending on `stop`.
pub(crate) struct Served {
    pub(crate) base: String,
    pub(crate) stop: tokio::sync::oneshot::Sender<()>,
    pub(crate) server: tokio::task::JoinHandle<Result<(), kb_app::AppError>>,
}

pub(crate) async fn serve(b: &Backend) -> Served {
    let state = AppState::open(&b.config, false).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kb_server::serve_listener(
        state,
        listener,
        ServeOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));
    Served { base, stop, server }
}

/// Every acknowledged write (id → body) of KB `kb` reads back as written, over HTTP.
pub(crate) async fn check_acknowledged(
    http: &reqwest::Client,
    base: &str,
    kb: &str,
    acked: &std::collections::BTreeMap<String, String>,
) {
    let ids: Vec<_> = acked.iter().collect();
    for chunk in ids.chunks(50) {
        let checks = chunk.iter().map(|(id, body)| async move {
            let r = http
                .get(format!("{base}/v1/kbs/{kb}/entries/{id}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{id} was acknowledged and is missing");
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["body"].as_str(), Some(body.as_str()), "{id}");
        });
        futures_util::future::join_all(checks).await;
    }
}

/// Waits until the server's embedding queue has nothing pending or in progress, and
/// returns its last state; fails after `within`.
pub(crate) async fn queue_drains(
    http: &reqwest::Client,
    base: &str,
    within: std::time::Duration,
) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let q: Value = http
            .get(format!("{base}/v1/queue"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if q["pending"] == 0 && q["in_progress"] == 0 {
            return q;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queue did not drain: {q}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
