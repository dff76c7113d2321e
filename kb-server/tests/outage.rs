//! A database outage, on Postgres (feature `postgres-tests`, `KB_PG_URL`): the server
//! reaches Postgres through a TCP proxy in this test, which is cut and restored. While it
//! is cut, `/readyz` answers 503 within its timeout and requests fail fast with 503/504 in
//! the error shape, naming no host; once it is back the same server answers again.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.
#![cfg(feature = "postgres-tests")]

use std::time::{Duration, Instant};
use storage_core::prelude::*;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kb_app::{Config, ConfigOverrides, DatabaseConfig};
use kb_server::AppState;
use serde_json::Value;
use storage_core::{NewEntry, NewKnowledgeBase};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// A TCP forwarder on `127.0.0.1:port` to `upstream`; sending `true` closes the listener and
/// every forwarded connection.
async fn proxy(
    port: u16,
    upstream: String,
) -> (u16, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_reuseaddr(true).unwrap();
    sock.bind(([127, 0, 0, 1], port).into()).unwrap();
    let listener = sock.listen(64).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut stop = rx.clone();
        let mut conns = Vec::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut client, _)) = accepted else { continue };
                    let upstream = upstream.clone();
                    let mut stop = rx.clone();
                    conns.push(tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = stop.wait_for(|s| *s) => {}
                        }
                    }));
                }
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        drop(listener);
        for c in conns {
            let _ = c.await;
        }
    });
    (port, tx, task)
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let resp = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        started.elapsed(),
    )
}

#[tokio::test]
async fn readyz_and_requests_report_an_outage_and_recover() {
    std::env::set_var("KB_EMBEDDER", "hashing");
    let url = storage_postgres::require_test_url();
    // postgres://user@host:port/db → host:port, and the same URL through the proxy.
    let after_scheme = url.split_once("://").unwrap().1;
    let authority = after_scheme.split('/').next().unwrap();
    let host_port = authority.rsplit('@').next().unwrap().to_owned();
    let (port, stop, task) = proxy(0, host_port.clone()).await;
    let proxied = url.replacen(&host_port, &format!("127.0.0.1:{port}"), 1);

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load(&ConfigOverrides {
        db: Some(proxied),
        config: None,
        cwd: Some(dir.path().to_owned()),
    })
    .unwrap();
    let DatabaseConfig::Postgres(pg) = &mut config.database else {
        panic!("not a Postgres URL");
    };
    pg.schema = format!("kbsrv_outage_{}", std::process::id());
    pg.connection_timeout = Duration::from_secs(2);
    let state = AppState::open(&config, false).await.unwrap();
    state
        .store
        .create_kb(&NewKnowledgeBase::persistent("k"))
        .await
        .unwrap();
    state
        .store
        .upsert_entry(&NewEntry::new("k", "e").title("t"))
        .await
        .unwrap();
    let app = kb_server::router(state);
    assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);
    assert_eq!(get(&app, "/v1/kbs/k/entries/e").await.0, StatusCode::OK);

    // Cut the database off.
    stop.send(true).unwrap();
    task.await.unwrap();
    let (status, body, took) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert!(took < Duration::from_secs(4), "readyz took {took:?}");
    let (status, body, took) = get(&app, "/v1/kbs/k/entries/e").await;
    assert!(
        status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::GATEWAY_TIMEOUT,
        "{status}: {body}"
    );
    assert!(["unavailable", "timeout"].contains(&body["error"]["kind"].as_str().unwrap()));
    assert!(took < Duration::from_secs(6), "a request hung for {took:?}");
    for text in [body.to_string(), get(&app, "/readyz").await.1.to_string()] {
        assert!(
            !text.contains("127.0.0.1")
                && !text.contains(&port.to_string())
                && !text.contains("postgres://"),
            "a response names the database: {text}"
        );
    }

    // Bring it back on the same port: the same server recovers by itself.
    let (_, stop, _task) = proxy(port, host_port).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body, _) = get(&app, "/readyz").await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body, _) = get(&app, "/v1/kbs/k/entries/e").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["title"], "t");
    let _ = stop.send(true);
}
