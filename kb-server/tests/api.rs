//! The HTTP API in-process (`tower::ServiceExt::oneshot` on the router) and over a real
//! listener on 127.0.0.1:0, on SQLite and — with the `postgres-tests` feature and
//! `KB_PG_URL` — on Postgres, each test in its own schema. Embeddings use the lexical
//! `hashing` embedder, so no model is needed.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use std::time::{Duration, Instant};
use storage_core::prelude::*;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use kb_server::auth::{create_token, Scope};
use kb_server::{AppState, ServeOptions};
use serde_json::{json, Value};
use storage_core::{NewEntry, NewKnowledgeBase};
use tower::ServiceExt;

mod common;
use common::*;

#[tokio::test]
async fn crud_round_trip_with_etag_and_304() {
    for b in backends("crud") {
        let (_state, app) = app_for(&b).await;
        let n = b.name;
        let r = call(
            &app,
            Method::POST,
            "/v1/kbs",
            None,
            Some(json!({"name": "notes", "description": "d"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "[{n}] {}", r.json);
        let r = call(
            &app,
            Method::POST,
            "/v1/kbs",
            None,
            Some(json!({"name": "notes"})),
        )
        .await;
        assert_eq!(
            (r.status, kind(&r)),
            (StatusCode::CONFLICT, "already_exists"),
            "[{n}]"
        );

        // An id with a slash, written with the slash as is.
        let put = call(
            &app,
            Method::PUT,
            "/v1/kbs/notes/entries/glossary/wal",
            None,
            Some(json!({"title": "Write-ahead log", "body": "The WAL records changes first.", "tags": ["db/storage"], "date": "2024-03-01"})),
        )
        .await;
        assert_eq!(put.status, StatusCode::OK, "[{n}] {}", put.json);
        assert_eq!(put.json["id"], "glossary/wal");
        let etag = put.headers[header::ETAG].to_str().unwrap().to_owned();

        // Read back, with the slash and percent-encoded.
        for uri in [
            "/v1/kbs/notes/entries/glossary/wal",
            "/v1/kbs/notes/entries/glossary%2Fwal",
        ] {
            let r = get(&app, uri).await;
            assert_eq!(r.status, StatusCode::OK, "[{n}] {uri}");
            assert_eq!(r.json["title"], "Write-ahead log");
            assert_eq!(r.headers[header::ETAG].to_str().unwrap(), etag);
        }
        let mut req = Request::get("/v1/kbs/notes/entries/glossary/wal")
            .header(header::IF_NONE_MATCH, &etag)
            .body(Body::empty())
            .unwrap();
        let r = send(&app, req).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "[{n}]");
        assert_eq!(r.json, Value::Null);
        req = Request::get("/v1/kbs/notes/entries/glossary/wal")
            .header(header::IF_NONE_MATCH, "\"something-else\"")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.status, StatusCode::OK);

        // Batch upsert; one entry links to the glossary note, one is a task.
        let r = call(
            &app,
            Method::POST,
            "/v1/kbs/notes/entries",
            None,
            Some(json!([
                {"id": "howto/recover", "title": "Recover", "body": "Replay the log.", "links": [{"target": "glossary/wal"}], "tags": ["db/ops"]},
                {"id": "task-1", "entry_type": "task", "title": "Upgrade", "status": "open"},
            ])),
        )
        .await;
        assert_eq!(
            (r.status, r.json["written"].clone()),
            (StatusCode::OK, json!(2)),
            "[{n}] {}",
            r.json
        );

        let r = get(
            &app,
            "/v1/kbs/notes/entries?tag_prefix=db&sort=title&order=asc",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "[{n}] {}", r.json);
        assert_eq!(r.json["total"], 2);
        assert_eq!(r.json["entries"][0]["id"], "howto/recover");
        let r = get(&app, "/v1/kbs/notes/entries?type=task&status=open").await;
        assert_eq!(r.json["total"], 1, "[{n}] {}", r.json);
        assert_eq!(r.json["entries"][0]["id"], "task-1");
        let r = get(&app, "/v1/kbs/notes/entries?limit=1&offset=1").await;
        assert_eq!(
            (
                r.json["total"].clone(),
                r.json["entries"].as_array().unwrap().len()
            ),
            (json!(3), 1)
        );

        let r = get(&app, "/v1/kbs/notes/entries/glossary/wal/backlinks").await;
        assert_eq!(r.status, StatusCode::OK, "[{n}] {}", r.json);
        assert_eq!(r.json["backlinks"][0]["source"]["id"], "howto/recover");
        let r = get(&app, "/v1/kbs/notes/entries/howto/recover/outlinks").await;
        assert_eq!(
            r.json["outlinks"][0]["target"], "glossary/wal",
            "[{n}] {}",
            r.json
        );
        let r = get(&app, "/v1/kbs/notes/tags").await;
        let tags: Vec<&str> = r.json["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tag"].as_str().unwrap())
            .collect();
        assert_eq!(tags, ["db/ops", "db/storage"], "[{n}]");
        let r = get(&app, "/v1/kbs/notes/timeline?from=2024-01-01").await;
        assert_eq!(
            r.json["entries"].as_array().unwrap().len(),
            1,
            "[{n}] {}",
            r.json
        );

        // A claim changes status, so the ETag changes and the old tag no longer matches.
        let task = get(&app, "/v1/kbs/notes/entries/task-1").await;
        let r = call(
            &app,
            Method::POST,
            "/v1/kbs/notes/entries/task-1/claim",
            None,
            Some(json!({"from": "open", "to": "doing", "assignee": "ann"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "[{n}] {}", r.json);
        assert_eq!(r.json["assignee"], "ann");
        assert_ne!(r.headers[header::ETAG], task.headers[header::ETAG]);

        // An id ending in a sub-resource word is reachable percent-encoded.
        let r = call(
            &app,
            Method::PUT,
            "/v1/kbs/notes/entries/odd%2Fclaim",
            None,
            Some(json!({"title": "odd"})),
        )
        .await;
        assert_eq!(
            (r.status, r.json["id"].clone()),
            (StatusCode::OK, json!("odd/claim")),
            "[{n}] {}",
            r.json
        );

        // Bad parameters name themselves.
        let r = get(&app, "/v1/kbs/notes/entries?tagg=x").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(
            r.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("tagg"),
            "{}",
            r.json
        );
        let r = get(&app, "/v1/kbs/notes/entries?limit=-1").await;
        assert!(
            r.status == StatusCode::BAD_REQUEST
                && r.json["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("limit")
        );
        let r = get(&app, "/v1/kbs/notes/entries?limit=100000").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "page size cap");

        // Delete, then it is gone; a KB delete removes the rest.
        let r = call(
            &app,
            Method::DELETE,
            "/v1/kbs/notes/entries/glossary/wal",
            None,
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "[{n}] {}", r.json);
        let r = get(&app, "/v1/kbs/notes/entries/glossary/wal").await;
        assert_eq!((r.status, kind(&r)), (StatusCode::NOT_FOUND, "not_found"));
        let r = call(
            &app,
            Method::DELETE,
            "/v1/kbs/notes/entries/glossary/wal",
            None,
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = get(&app, "/v1/kbs/notes").await;
        assert_eq!(r.json["entries"], 3, "[{n}] {}", r.json);
        let r = call(&app, Method::DELETE, "/v1/kbs/notes", None, None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = get(&app, "/v1/kbs/notes/entries").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn strict_json_names_the_unknown_field() {
    for b in backends("strict") {
        let (_state, app) = app_for(&b).await;
        call(
            &app,
            Method::POST,
            "/v1/kbs",
            None,
            Some(json!({"name": "k"})),
        )
        .await;
        let cases = [
            (
                Method::PUT,
                "/v1/kbs/k/entries/e",
                json!({"title": "t", "titel": "typo"}),
                "titel",
            ),
            (
                Method::POST,
                "/v1/kbs/k/entries",
                json!([{"id": "a"}, {"id": "b", "bodyy": "x"}]),
                "bodyy",
            ),
            (
                Method::POST,
                "/v1/kbs",
                json!({"name": "x", "ttl": 5}),
                "ttl",
            ),
            (
                Method::POST,
                "/v1/kbs/k/entries/e/claim",
                json!({"from": "a", "to": "b", "assignee": "c", "force": true}),
                "force",
            ),
        ];
        for (method, uri, body, field) in cases {
            let r = call(&app, method, uri, None, Some(body)).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "[{}] {uri}: {}",
                b.name,
                r.json
            );
            assert_eq!(kind(&r), "invalid_json");
            let msg = r.json["error"]["message"].as_str().unwrap();
            assert!(msg.contains(field), "{uri}: {msg}");
        }
        // Nothing was written by the refused batch.
        let r = get(&app, "/v1/kbs/k/entries").await;
        assert_eq!(r.json["total"], 0);
        // Not JSON at all, and JSON of the wrong shape.
        let req = Request::put("/v1/kbs/k/entries/e")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"title\": "))
            .unwrap();
        let r = send(&app, req).await;
        assert_eq!(
            (r.status, kind(&r)),
            (StatusCode::BAD_REQUEST, "invalid_json")
        );
        let r = call(
            &app,
            Method::PUT,
            "/v1/kbs/k/entries/e",
            None,
            Some(json!({"importance": "high"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        // Invalid content for the store (an id mismatch, a control character in a tag).
        let r = call(
            &app,
            Method::PUT,
            "/v1/kbs/k/entries/e",
            None,
            Some(json!({"id": "other"})),
        )
        .await;
        assert_eq!(
            (r.status, kind(&r)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input")
        );
        let r = call(
            &app,
            Method::PUT,
            "/v1/kbs/k/entries/e",
            None,
            Some(json!({"tags": ["a\u{1}b"]})),
        )
        .await;
        assert_eq!(
            (r.status, kind(&r)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
            "{}",
            r.json
        );
    }
}

#[tokio::test]
async fn oversized_body_is_413_and_malformed_query_is_invalid_query() {
    for b in backends("limits") {
        let (_state, app) = app_for(&b).await;
        call(
            &app,
            Method::POST,
            "/v1/kbs",
            None,
            Some(json!({"name": "k"})),
        )
        .await;
        let big = json!({"body": "x".repeat(20 * 1024 * 1024)});
        let bytes = serde_json::to_vec(&big).unwrap();
        // With a Content-Length (refused up front) and without one (refused while reading).
        for with_length in [true, false] {
            let mut req = Request::put("/v1/kbs/k/entries/big")
                .header(header::CONTENT_TYPE, "application/json");
            if with_length {
                req = req.header(header::CONTENT_LENGTH, bytes.len());
            }
            let r = send(&app, req.body(Body::from(bytes.clone())).unwrap()).await;
            assert_eq!(
                r.status,
                StatusCode::PAYLOAD_TOO_LARGE,
                "[{}] length header {with_length}",
                b.name
            );
            assert_eq!(kind(&r), "payload_too_large");
        }
        assert_eq!(
            get(&app, "/v1/kbs/k/entries/big").await.status,
            StatusCode::NOT_FOUND
        );

        call(
            &app,
            Method::PUT,
            "/v1/kbs/k/entries/e",
            None,
            Some(json!({"title": "hello"})),
        )
        .await;
        for mode in ["keyword", "hybrid"] {
            let r = get(&app, &format!("/v1/kbs/k/search?q=((((&mode={mode}")).await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "[{}] {mode}: {}",
                b.name,
                r.json
            );
            assert_eq!(kind(&r), "invalid_query");
            let r = get(&app, &format!("/v1/search?q=%22unclosed&mode={mode}")).await;
            assert_eq!(kind(&r), "invalid_query", "{}", r.json);
        }
        let r = get(&app, "/v1/kbs/k/search?q=hello&mode=fuzzy").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fuzzy"));
        let r = get(&app, &format!("/v1/kbs/k/search?q={}", "a".repeat(5000))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "query length limit");
        let r = get(&app, "/v1/kbs/k/search?q=hello&limit=1000").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "search page cap");
        let r = get(&app, "/v1/kbs/k/search").await;
        assert!(r.json["error"]["message"].as_str().unwrap().contains("`q`"));
        // Unknown routes and methods answer in the same shape.
        let r = get(&app, "/nowhere").await;
        assert_eq!((r.status, kind(&r)), (StatusCode::NOT_FOUND, "not_found"));
        let r = call(&app, Method::PATCH, "/v1/kbs", None, None).await;
        assert_eq!(
            (r.status, kind(&r)),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
        );
    }
}

#[tokio::test]
async fn claim_race_has_exactly_one_winner() {
    for b in backends("claim") {
        let (state, app) = app_for(&b).await;
        state
            .store
            .create_kb(&NewKnowledgeBase::persistent("k"))
            .await
            .unwrap();
        state
            .store
            .upsert_entry(&NewEntry::new("k", "task").entry_type("task").status("open"))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let r = call(
                    &app,
                    Method::POST,
                    "/v1/kbs/k/entries/task/claim",
                    None,
                    Some(json!({"from": "open", "to": "in-progress", "assignee": format!("agent-{i}")})),
                )
                .await;
                (r.status, r.json)
            }));
        }
        let mut won = Vec::new();
        let mut lost = Vec::new();
        for t in tasks {
            let (status, body) = t.await.unwrap();
            match status {
                StatusCode::OK => won.push(body),
                StatusCode::CONFLICT => lost.push(body),
                other => panic!("[{}] unexpected {other}: {body}", b.name),
            }
        }
        assert_eq!((won.len(), lost.len()), (1, 49), "[{}]", b.name);
        let winner = won[0]["assignee"].as_str().unwrap();
        for l in &lost {
            assert_eq!(l["error"]["kind"], "claim_lost");
            assert_eq!(l["error"]["assignee"], winner);
            assert!(l["error"]["message"].as_str().unwrap().contains(winner));
        }
    }
}

#[tokio::test]
async fn token_scopes_isolate_knowledge_bases() {
    for b in backends("tokens") {
        let (state, app) = app_for(&b).await;
        let s = state.store.clone();
        for kb in ["a", "b"] {
            s.create_kb(&NewKnowledgeBase::persistent(kb))
                .await
                .unwrap();
            s.upsert_entries(&[
                NewEntry::new(kb, "doc/one")
                    .title(format!("shared word in {kb}"))
                    .tags(["t"])
                    .date(chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()),
                NewEntry::new(kb, "task")
                    .status("open")
                    .link(storage_core::Link::to("doc/one")),
            ])
            .await
            .unwrap();
        }
        // A cross-KB link from b into a: a's backlinks must not reveal it to a's token.
        s.upsert_entry(
            &NewEntry::new("b", "spy")
                .title("x")
                .link(storage_core::Link::to("doc/one").in_kb("a")),
        )
        .await
        .unwrap();
        let (_, rw_a) = create_token(s.as_ref(), Scope::ReadWrite, &["a".into()], "rw-a")
            .await
            .unwrap();
        let (_, ro_a) = create_token(s.as_ref(), Scope::Read, &["a".into()], "ro-a")
            .await
            .unwrap();
        let (_, admin) = create_token(s.as_ref(), Scope::Admin, &[], "admin")
            .await
            .unwrap();
        let (rw_a, ro_a, admin) = (rw_a.as_str(), ro_a.as_str(), admin.as_str());

        let routes = |kb: &str| -> Vec<(Method, String, Option<Value>)> {
            let e = format!("/v1/kbs/{kb}/entries");
            vec![
                (Method::GET, format!("/v1/kbs/{kb}"), None),
                (Method::GET, e.clone(), None),
                (Method::GET, format!("{e}/doc/one"), None),
                (Method::GET, format!("{e}/doc/one/backlinks"), None),
                (Method::GET, format!("{e}/task/outlinks"), None),
                (
                    Method::GET,
                    format!("/v1/kbs/{kb}/search?q=shared&mode=keyword"),
                    None,
                ),
                (
                    Method::GET,
                    format!("/v1/kbs/{kb}/search?q=shared&mode=hybrid"),
                    None,
                ),
                (
                    Method::GET,
                    format!("/v1/kbs/{kb}/search?q=shared&mode=semantic"),
                    None,
                ),
                (Method::GET, format!("/v1/kbs/{kb}/tags"), None),
                (Method::GET, format!("/v1/kbs/{kb}/timeline"), None),
                (Method::PUT, format!("{e}/new"), Some(json!({"title": "n"}))),
                (Method::POST, e.clone(), Some(json!([{"id": "batch"}]))),
                (
                    Method::POST,
                    format!("{e}/task/claim"),
                    Some(json!({"from": "open", "to": "doing", "assignee": "x"})),
                ),
                (Method::DELETE, format!("{e}/doc/one"), None),
                (Method::DELETE, format!("/v1/kbs/{kb}"), None),
            ]
        };
        let n = b.name;
        // Another KB does not exist for a token of `a`, whatever the route (and a KB that
        // really does not exist answers the same).
        for token in [rw_a, ro_a] {
            for kb in ["b", "missing"] {
                for (m, uri, body) in routes(kb) {
                    let r = call(&app, m.clone(), &uri, Some(token), body).await;
                    assert_eq!(
                        r.status,
                        StatusCode::NOT_FOUND,
                        "[{n}] {m} {uri}: {}",
                        r.json
                    );
                }
            }
        }
        // No token, or a bad one: 401 everywhere (health stays open).
        for token in [
            None,
            Some("kb_0000000000000000000000000000000000000000000000000000000000000000"),
            Some("garbage"),
        ] {
            for (m, uri, body) in routes("a").into_iter().chain(routes("b")) {
                let r = call(&app, m.clone(), &uri, token, body).await;
                assert_eq!(
                    (r.status, kind(&r)),
                    (StatusCode::UNAUTHORIZED, "unauthorized"),
                    "[{n}] {m} {uri}"
                );
                assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
            }
            let r = call(&app, Method::GET, "/v1/search?q=shared", token, None).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
        // A read token may read its KB but not write it (403, not 404: it knows the KB).
        for (m, uri, body) in routes("a") {
            let r = call(&app, m.clone(), &uri, Some(ro_a), body).await;
            let expected = if m == Method::GET {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(r.status, expected, "[{n}] read token {m} {uri}: {}", r.json);
        }
        // Backlinks leave out the link from b.
        let r = call(
            &app,
            Method::GET,
            "/v1/kbs/a/entries/doc/one/backlinks",
            Some(ro_a),
            None,
        )
        .await;
        let sources: Vec<&str> = r.json["backlinks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["source"]["kb"].as_str().unwrap())
            .collect();
        assert_eq!(sources, ["a"], "[{n}] {}", r.json);
        let r = call(
            &app,
            Method::GET,
            "/v1/kbs/a/entries/doc/one/backlinks",
            Some(admin),
            None,
        )
        .await;
        assert_eq!(r.json["backlinks"].as_array().unwrap().len(), 2);
        // Search across KBs and the KB list show only what the token may read.
        let r = call(
            &app,
            Method::GET,
            "/v1/search?q=shared&mode=keyword",
            Some(ro_a),
            None,
        )
        .await;
        let kbs: Vec<&str> = r.json["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["kb"].as_str().unwrap())
            .collect();
        assert_eq!(kbs, ["a"], "[{n}] {}", r.json);
        let r = call(
            &app,
            Method::GET,
            "/v1/search?q=shared&mode=keyword&kb=b",
            Some(ro_a),
            None,
        )
        .await;
        assert_eq!(r.json["hits"], json!([]), "[{n}] asking for b explicitly");
        let r = call(
            &app,
            Method::GET,
            "/v1/search?q=shared&mode=keyword",
            Some(admin),
            None,
        )
        .await;
        assert_eq!(r.json["hits"].as_array().unwrap().len(), 2);
        let r = call(&app, Method::GET, "/v1/kbs", Some(ro_a), None).await;
        assert_eq!(r.json["kbs"].as_array().unwrap().len(), 1);
        assert_eq!(r.json["kbs"][0]["name"], "a");
        // The read-write token writes its KB; creating KBs is for admins.
        let r = call(
            &app,
            Method::PUT,
            "/v1/kbs/a/entries/new",
            Some(rw_a),
            Some(json!({"title": "n"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "[{n}] {}", r.json);
        let r = call(
            &app,
            Method::POST,
            "/v1/kbs",
            Some(rw_a),
            Some(json!({"name": "c"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = call(
            &app,
            Method::POST,
            "/v1/kbs",
            Some(admin),
            Some(json!({"name": "c"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
        // A revoked token stops working at once.
        let list = kb_server::auth::list_tokens(s.as_ref()).await.unwrap();
        let ro = list.iter().find(|t| t.name == "ro-a").unwrap();
        assert!(kb_server::auth::revoke_token(s.as_ref(), ro.id())
            .await
            .unwrap());
        let r = call(&app, Method::GET, "/v1/kbs/a", Some(ro_a), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        // No response carries a token or a hash.
        assert!(!r.json.to_string().contains(&ro.hash));
    }
}

#[tokio::test]
async fn non_loopback_without_tokens_refuses_to_start() {
    for b in backends("exposure") {
        let opts = ServeOptions {
            listen: "0.0.0.0:0".parse().unwrap(),
            ..Default::default()
        };
        let err = kb_server::serve(b.config.clone(), opts, async {})
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("--no-auth") && msg.contains("kb token create"),
            "[{}] {msg}",
            b.name
        );
    }
}

/// A real server on 127.0.0.1:0 with its embedding worker: an entry written over HTTP
/// becomes findable by keyword at once and by hybrid search once the worker embedded it;
/// /readyz reports the store; shutdown stops everything.
#[tokio::test]
async fn served_over_tcp_with_worker_keyword_hybrid_and_readyz() {
    for b in backends("served") {
        assert_eq!(b.config.embed_workers, 1);
        let Served { base, stop, server } = serve(&b).await;
        let http = reqwest::Client::new();
        let n = b.name;

        let r = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let ready: Value = r.json().await.unwrap();
        assert_eq!(ready["status"], "ready", "[{n}] {ready}");
        assert!(ready["schema_version"].as_u64().unwrap() > 0);
        assert_eq!(ready["backend"], n);
        assert_eq!(ready["embedder"]["ready"], true);
        assert!(ready["pool"]["max_size"].as_u64().unwrap() > 0);

        let r = http
            .post(format!("{base}/v1/kbs"))
            .json(&json!({"name": "notes"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = http
            .put(format!("{base}/v1/kbs/notes/entries/adr/postgres"))
            .json(&json!({"title": "Postgres over MongoDB", "body": "We chose a relational database for the metadata service."}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers().get("x-request-id").is_some(),
            "request ids are propagated"
        );

        let r: Value = http
            .get(format!(
                "{base}/v1/kbs/notes/search?q=relational&mode=keyword"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["hits"][0]["id"], "adr/postgres", "[{n}] {r}");
        assert!(r["hits"][0]["highlights"]
            .as_array()
            .is_some_and(|h| !h.is_empty()));

        // The worker embeds the entry; then hybrid search runs both legs.
        let deadline = Instant::now() + Duration::from_secs(30);
        let hybrid = loop {
            let r: Value = http
                .get(format!(
                    "{base}/v1/search?q=relational%20database&mode=hybrid&explain=true"
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if r["legs"].as_array().is_some_and(|l| l.len() == 2) {
                break r;
            }
            assert!(
                Instant::now() < deadline,
                "[{n}] the worker never embedded the entry: {r}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(hybrid["hits"][0]["id"], "adr/postgres", "[{n}] {hybrid}");
        assert!(
            hybrid["hits"][0]["explanation"]["semantic"].is_object(),
            "{hybrid}"
        );
        let semantic: Value = http
            .get(format!(
                "{base}/v1/kbs/notes/search?q=relational%20database&mode=semantic"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            semantic["hits"][0]["id"], "adr/postgres",
            "[{n}] {semantic}"
        );
        // The worker's throughput is in /metrics (counters shared by the process's servers).
        let metrics = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let passages = metrics
            .lines()
            .find_map(|l| l.strip_prefix("kb_embed_passages_total "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        assert!(passages.is_some_and(|p| p >= 1.0), "[{n}] {metrics}");

        stop.send(()).unwrap();
        let done = tokio::time::timeout(Duration::from_secs(20), server).await;
        assert!(
            matches!(done, Ok(Ok(Ok(())))),
            "[{n}] the server did not shut down cleanly"
        );
        assert!(
            http.get(format!("{base}/healthz")).send().await.is_err(),
            "stopped accepting"
        );
    }
}

/// Open access ends once a token exists (within the 2 s cache), without a restart;
/// `--no-auth` keeps everything open even with tokens.
#[tokio::test]
async fn first_token_closes_open_access_and_no_auth_keeps_it_open() {
    for b in backends("openness") {
        let (state, app) = app_for(&b).await;
        state
            .store
            .create_kb(&NewKnowledgeBase::persistent("k"))
            .await
            .unwrap();
        assert_eq!(get(&app, "/v1/kbs/k").await.status, StatusCode::OK);
        create_token(state.store.as_ref(), Scope::Read, &["k".into()], "")
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while get(&app, "/v1/kbs/k").await.status != StatusCode::UNAUTHORIZED {
            assert!(Instant::now() < deadline, "[{}] still open", b.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let open = kb_server::router(AppState::open(&b.config, true).await.unwrap());
        assert_eq!(
            get(&open, "/v1/kbs/k").await.status,
            StatusCode::OK,
            "[{}] --no-auth",
            b.name
        );
    }
}

#[tokio::test]
async fn entries_written_with_a_ttl_fade_from_reads_and_lists() {
    for b in backends("ttl") {
        let (_state, app) = app_for(&b).await;
        let n = b.name;
        let r = call(
            &app,
            Method::POST,
            "/v1/kbs",
            None,
            Some(json!({"name": "mem"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "[{n}] {}", r.json);
        let r = call(
            &app,
            Method::PUT,
            "/v1/kbs/mem/entries/later",
            None,
            Some(json!({"title": "Later", "ttl_seconds": 3600})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "[{n}] {}", r.json);
        let expires = r.json["expires_at"].as_str().expect("expires_at returned");
        let at = chrono::DateTime::parse_from_rfc3339(expires).unwrap();
        let left = at.signed_duration_since(chrono::Utc::now()).num_seconds();
        assert!((3590..=3600).contains(&left), "[{n}] {left}");
        let r = call(
            &app,
            Method::PUT,
            "/v1/kbs/mem/entries/gone",
            None,
            Some(json!({"title": "Gone", "expires_at": "2020-01-01T00:00:00Z"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "[{n}] {}", r.json);
        assert_eq!(
            get(&app, "/v1/kbs/mem/entries/gone").await.status,
            StatusCode::NOT_FOUND,
            "[{n}]"
        );
        let list = get(&app, "/v1/kbs/mem/entries").await;
        assert_eq!(list.json["total"], 1, "[{n}] {}", list.json);
        assert_eq!(list.json["entries"][0]["id"], "later", "[{n}]");
    }
}

/// Headless Chromium (`KB_CHROMIUM`, else `chromium` on PATH), or `None` with a message;
/// `KB_REQUIRE_BROWSER=1` (set by `cargo xtask ci`, which installs it) makes a missing
/// browser a failure.
fn chromium() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("KB_CHROMIUM")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("chromium"))
                    .find(|c| c.is_file())
            })
        });
    if path.is_none() {
        assert!(
            std::env::var("KB_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "KB_REQUIRE_BROWSER=1 but no chromium: install it (apt-get install chromium)"
        );
        eprintln!("skipping: no chromium (set KB_CHROMIUM or install it)");
    }
    path
}

/// Waits until `condition` (a JavaScript expression) is true in the page, or fails
/// naming `what`.
async fn wait_for(page: &chromiumoxide::Page, condition: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ok = page
            .evaluate(format!("Boolean({condition})"))
            .await
            .ok()
            .and_then(|r| r.into_value::<bool>().ok())
            .unwrap_or(false);
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "the page never showed {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The page's HTML under `selector`.
async fn html_of(page: &chromiumoxide::Page, selector: &str) -> String {
    page.find_element(selector)
        .await
        .unwrap()
        .inner_html()
        .await
        .unwrap()
        .unwrap_or_default()
}

/// The search page in a real browser, driven over the DevTools protocol as a visitor
/// would: type a query, pick keyword mode, submit; the expected entry comes first with
/// its highlighted snippet; open it (the body rendered from markdown, raw HTML as text,
/// its tags and backlinks); follow the backlink. Any console error or uncaught exception
/// fails the test, and a screenshot of the entry view is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_page_finds_and_shows_entries_in_a_browser() {
    use chromiumoxide::cdp::js_protocol::runtime::{EventConsoleApiCalled, EventExceptionThrown};
    use futures_util::StreamExt;
    let Some(executable) = chromium() else { return };
    for b in backends("page") {
        let Served { base, stop, server } = serve(&b).await;
        let http = reqwest::Client::new();
        let n = b.name;
        let r = http
            .post(format!("{base}/v1/kbs"))
            .json(&json!({"name": "notes"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        for (id, body) in [
            (
                "adr/postgres",
                json!({"title": "Postgres over MongoDB", "tags": ["area/db"],
                  "body": "## Decision\n\nWe chose a **relational** database.\n\n<script>alert(1)</script>"}),
            ),
            (
                "meeting/kickoff",
                json!({"title": "Kickoff", "body": "Agreed on storage.",
                  "links": [{"target": "adr/postgres", "relation": "decided"}]}),
            ),
        ] {
            let r = http
                .put(format!("{base}/v1/kbs/notes/entries/{id}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "[{n}] {}", r.status());
        }
        let page = http.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");

        let profile = tempfile::tempdir().unwrap();
        let config = chromiumoxide::BrowserConfig::builder()
            .chrome_executable(&executable)
            .user_data_dir(profile.path())
            .no_sandbox()
            .window_size(1100, 800)
            .arg("--disable-gpu")
            .build()
            .unwrap();
        let (mut browser, mut handler) = chromiumoxide::Browser::launch(config).await.unwrap();
        let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
        let page = browser.new_page("about:blank").await.unwrap();
        // Console errors and uncaught exceptions, as the page reports them.
        let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let mut console = page
            .event_listener::<EventConsoleApiCalled>()
            .await
            .unwrap();
        let mut thrown = page.event_listener::<EventExceptionThrown>().await.unwrap();
        let seen = errors.clone();
        tokio::spawn(async move {
            while let Some(e) = console.next().await {
                let v = serde_json::to_value(&*e).unwrap_or_default();
                if v["type"] == "error" || v["type"] == "assert" {
                    seen.lock().unwrap().push(v["args"].to_string());
                }
            }
        });
        let seen = errors.clone();
        tokio::spawn(async move {
            while let Some(e) = thrown.next().await {
                let v = serde_json::to_value(&*e).unwrap_or_default();
                seen.lock().unwrap().push(v["exceptionDetails"].to_string());
            }
        });
        // The listener hears errors: a probe on the blank page is caught (then cleared).
        page.evaluate("console.error('kb-probe')").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("kb-probe"))
        {
            assert!(Instant::now() < deadline, "console errors are not observed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        errors.lock().unwrap().clear();

        // Type a query, switch to keyword, submit.
        page.goto(format!("{base}/")).await.unwrap();
        wait_for(&page, "document.getElementById('q')", "the search box").await;
        page.find_element("#q")
            .await
            .unwrap()
            .click()
            .await
            .unwrap()
            .type_str("relational")
            .await
            .unwrap();
        page.evaluate("document.getElementById('mode').value = 'keyword'")
            .await
            .unwrap();
        page.find_element("#search button")
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&page, "document.querySelector('#results li.hit')", "a hit").await;
        let first = html_of(&page, "#results li.hit").await;
        assert!(
            first.contains("Postgres over MongoDB"),
            "[{n}] first hit: {first}"
        );
        assert!(first.contains("<mark>relational</mark>"), "[{n}] {first}");
        let status = html_of(&page, "#status").await;
        assert!(status.contains("1 result"), "[{n}] {status}");

        // Open it.
        page.find_element("#results li.hit a.title")
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(
            &page,
            "!document.getElementById('entry').hidden && document.querySelector('#entry h2')",
            "the entry",
        )
        .await;
        wait_for(
            &page,
            "document.getElementById('entry').textContent.includes('Backlinks')",
            "its backlinks",
        )
        .await;
        let entry = html_of(&page, "#entry").await;
        assert!(
            entry.contains("<h2>Postgres over MongoDB</h2>"),
            "[{n}] {entry}"
        );
        assert!(
            entry.contains("<h2>Decision</h2>"),
            "[{n}] markdown not rendered: {entry}"
        );
        assert!(
            entry.contains("<strong>relational</strong>"),
            "[{n}] {entry}"
        );
        assert!(
            entry.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "[{n}] raw HTML must show as text: {entry}"
        );
        assert!(entry.contains("area/db"), "[{n}] {entry}");
        let shot =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("search-page-{n}.png"));
        page.save_screenshot(
            chromiumoxide::page::ScreenshotParams::builder().build(),
            &shot,
        )
        .await
        .unwrap();
        assert!(
            std::fs::metadata(&shot).unwrap().len() > 1000,
            "[{n}] empty screenshot"
        );
        println!("[{n}] screenshot of the entry view: {}", shot.display());

        // Follow the backlink to the meeting that links here.
        page.find_element("#entry a[href*='meeting']")
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&page, "document.querySelector('#entry h2') && document.querySelector('#entry h2').textContent === 'Kickoff'", "the linking entry").await;
        let entry = html_of(&page, "#entry").await;
        assert!(entry.contains("Agreed on storage."), "[{n}] {entry}");

        let errors = errors.lock().unwrap().clone();
        assert!(
            errors.is_empty(),
            "[{n}] the page logged errors: {errors:?}"
        );
        browser.close().await.unwrap();
        let _ = browser.wait().await;
        events.abort();
        stop.send(()).unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(20), server).await;
    }
}

/// The text of `uri` (for non-JSON responses), with its status.
async fn text(app: &Router, uri: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder().uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// `/metrics` counts requests by route pattern (not path) and status, shows the pool and
/// the queue, and needs an admin token once tokens exist.
#[tokio::test]
async fn metrics_count_requests_by_route_and_show_the_pool_to_admins() {
    for b in backends("metrics") {
        let (state, app) = app_for(&b).await;
        let n = b.name;
        let r = call(
            &app,
            Method::POST,
            "/v1/kbs",
            None,
            Some(json!({"name": "mx"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "[{n}]");
        assert_eq!(
            get(&app, "/v1/kbs/mx/entries/nope").await.status,
            StatusCode::NOT_FOUND
        );
        let (status, body) = text(&app, "/metrics", None).await;
        assert_eq!(status, StatusCode::OK, "[{n}] {body}");
        let counted = |route: &str, status: &str| {
            body.lines().any(|l| {
                l.starts_with("kb_http_requests_total{")
                    && l.contains(&format!("route=\"{route}\""))
                    && l.contains(&format!("status=\"{status}\""))
            })
        };
        assert!(counted("/v1/kbs", "201"), "[{n}] {body}");
        assert!(
            counted("/v1/kbs/{kb}/entries/{*rest}", "404"),
            "[{n}] {body}"
        );
        assert!(
            !body.contains("nope"),
            "[{n}] paths must not reach the labels: {body}"
        );
        assert!(
            body.contains("kb_http_request_duration_seconds_bucket{"),
            "[{n}] {body}"
        );
        assert!(body.contains("kb_pool_max_connections "), "[{n}] {body}");
        assert!(
            body.contains("kb_embedding_queue{state=\"pending\"}"),
            "[{n}] {body}"
        );
        assert!(body.contains("kb_database_up 1"), "[{n}] {body}");

        let s = state.store.clone();
        let (_, read) = create_token(s.as_ref(), Scope::Read, &["mx".into()], "r")
            .await
            .unwrap();
        let (_, admin) = create_token(s.as_ref(), Scope::Admin, &[], "a")
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while text(&app, "/metrics", None).await.0 != StatusCode::UNAUTHORIZED {
            assert!(Instant::now() < deadline, "[{n}] /metrics still open");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            text(&app, "/metrics", Some(&read)).await.0,
            StatusCode::FORBIDDEN,
            "[{n}]"
        );
        assert_eq!(
            text(&app, "/metrics", Some(&admin)).await.0,
            StatusCode::OK,
            "[{n}]"
        );
    }
}
