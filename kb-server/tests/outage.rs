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

mod common;

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

/// A configuration whose Postgres is reached through [`proxy`], in a schema of its own.
async fn proxied_config(
    test: &str,
) -> (
    Config,
    u16,
    String,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
    tempfile::TempDir,
) {
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
    pg.schema = format!("kbsrv_{test}_{}", std::process::id());
    pg.connection_timeout = Duration::from_secs(2);
    (config, port, host_port, stop, task, dir)
}

#[tokio::test]
async fn readyz_and_requests_report_an_outage_and_recover() {
    let (config, port, host_port, stop, task, _dir) = proxied_config("outage").await;
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

/// What the load saw through an outage.
#[derive(Default)]
struct Tally {
    /// Writes answered 2xx: id → body.
    acked: std::collections::BTreeMap<String, String>,
    /// Requests answered 503/504 (the outage), and the slowest of them.
    refused: usize,
    slowest_refusal: Duration,
    /// Anything else: a status the outage must not produce.
    unexpected: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_under_load_fails_fast_recovers_and_loses_no_acknowledged_write() {
    use std::sync::{Arc, Mutex};
    let (config, port, host_port, stop, task, _dir) = proxied_config("outageload").await;
    let state = AppState::open(&config, false).await.unwrap();
    state
        .store
        .create_kb(&NewKnowledgeBase::persistent("k"))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let opts = kb_server::ServeOptions {
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let server = tokio::spawn(kb_server::serve_listener(state, listener, opts, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    // 16 writers and 16 searchers, through the whole outage.
    let tally = Arc::new(Mutex::new(Tally::default()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let (http, base, tally, done) =
                (http.clone(), base.clone(), tally.clone(), done.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let started = Instant::now();
                    let (resp, write) = if c % 2 == 0 {
                        let id = format!("w{c}/{n}");
                        let body = format!("note {n} of writer {c}");
                        let r = http
                            .put(format!("{base}/v1/kbs/k/entries/{id}"))
                            .json(&serde_json::json!({"title": "t", "body": body}))
                            .send()
                            .await;
                        (r, Some((id, body)))
                    } else {
                        let r = http
                            .get(format!("{base}/v1/kbs/k/search?q=note+writer&mode=hybrid"))
                            .send()
                            .await;
                        (r, None)
                    };
                    let took = started.elapsed();
                    let status = resp.map(|r| r.status().as_u16());
                    {
                        let mut t = tally.lock().unwrap();
                        match status {
                            Ok(200..=299) => {
                                if let Some((id, body)) = write {
                                    t.acked.insert(id, body);
                                }
                            }
                            Ok(503 | 504) => {
                                t.refused += 1;
                                t.slowest_refusal = t.slowest_refusal.max(took);
                            }
                            Ok(s) => t.unexpected.push(format!("{s}")),
                            Err(e) => t.unexpected.push(format!("{e}")),
                        }
                    }
                    // A refused client backs off a little, as a real one would.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    let ready = |http: reqwest::Client, base: String| async move {
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };

    tokio::time::sleep(Duration::from_secs(3)).await;
    let acked_before = tally.lock().unwrap().acked.len();
    assert!(acked_before > 0, "no write went through before the outage");
    // Postgres goes away for 4 seconds.
    stop.send(true).unwrap();
    task.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ready(http.clone(), base.clone()).await,
        503,
        "/readyz during the outage"
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let refused = tally.lock().unwrap().refused;
    assert!(refused > 0, "nothing was refused during the outage");
    // It comes back on the same port; the server recovers by itself.
    let (_, stop_again, _task) = proxy(port, host_port).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready(http.clone(), base.clone()).await != 200 {
        assert!(Instant::now() < deadline, "the server never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let acked_at_recovery = tally.lock().unwrap().acked.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    assert!(
        tally.unexpected.is_empty(),
        "answers the outage must not give: {:?}",
        &tally.unexpected[..tally.unexpected.len().min(5)]
    );
    assert!(
        tally.acked.len() > acked_at_recovery,
        "no write went through after the recovery"
    );
    // Failing fast: no refused request waited past the request timeout and a margin.
    assert!(
        tally.slowest_refusal < Duration::from_secs(7),
        "a refused request took {:?}",
        tally.slowest_refusal
    );

    // Every write acknowledged before, during or after is there, as written, and the
    // embedding worker resumed: the queue drains.
    common::check_acknowledged(&http, &base, "k", &tally.acked).await;
    common::queue_drains(&http, &base, Duration::from_secs(90)).await;
    println!(
        "outage under load: {} writes acknowledged ({acked_before} before the cut, {acked_at_recovery} by the recovery), {} requests refused with 503/504, slowest refusal {:?}",
        tally.acked.len(),
        tally.refused,
        tally.slowest_refusal
    );
    let _ = stop_server.send(());
    server.await.unwrap().unwrap();
    let _ = stop_again.send(true);
}
