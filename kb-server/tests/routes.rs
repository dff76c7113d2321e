//! The routes beyond entries and search — graph, similar, stars, metadata compare-and-set,
//! settings, collections, GC and the queue — on each backend; the OpenAPI document
//! against the router; token scopes on every documented route; the per-caller limit.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use kb_server::auth::{create_token, Scope};
use serde_json::{json, Value};
use storage_core::prelude::*;
use storage_core::{Link, NewEntry, NewKnowledgeBase};

mod common;
use common::*;

/// A KB `k` with three linked notes (`a` → `b` → `c`) and their vectors (the hashing
/// embedder), so graph and similar have something to find.
async fn seeded(b: &Backend) -> (kb_server::AppState, axum::Router) {
    let (state, app) = app_for(b).await;
    let store = &state.store;
    store
        .create_kb(&NewKnowledgeBase::persistent("k"))
        .await
        .unwrap();
    store
        .upsert_entries(&[
            NewEntry::new("k", "a")
                .title("Apples")
                .body("apples and pears")
                .link(Link::to("b")),
            NewEntry::new("k", "b")
                .title("Pears")
                .body("pears and plums")
                .link(Link::to("c")),
            NewEntry::new("k", "notes/c")
                .title("Plums")
                .body("plums alone"),
            NewEntry::new("k", "c").title("Cherries").body("cherries"),
        ])
        .await
        .unwrap();
    let embedder = state.embedder.clone().unwrap();
    for id in ["a", "b", "c", "notes/c"] {
        let e = store
            .get_entry(&storage_core::EntryKey::new("k", id))
            .await
            .unwrap()
            .unwrap();
        let v = embedder
            .embed(std::slice::from_ref(&e.body))
            .await
            .unwrap()
            .remove(0);
        store.put_vector(&e.key(), &v).await.unwrap();
    }
    (state, app)
}

async fn put(app: &axum::Router, uri: &str, body: Option<Value>) -> Resp {
    call(app, Method::PUT, uri, None, body).await
}
async fn post(app: &axum::Router, uri: &str, body: Value) -> Resp {
    call(app, Method::POST, uri, None, Some(body)).await
}
async fn delete(app: &axum::Router, uri: &str) -> Resp {
    call(app, Method::DELETE, uri, None, None).await
}

#[tokio::test]
async fn graph_similar_stars_and_metadata_compare_and_set() {
    for b in backends("related") {
        let (_state, app) = seeded(&b).await;
        let n = b.name;

        // Graph: one hop from b reaches a (backlink) and c (outlink); without backlinks only c.
        let r = get(&app, "/v1/kbs/k/entries/b/graph?depth=1").await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.json);
        let ids: BTreeSet<&str> = r.json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["key"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, BTreeSet::from(["a", "b", "c"]), "{n}");
        let r = get(&app, "/v1/kbs/k/entries/b/graph?backlinks=false").await;
        assert_eq!(
            r.json["nodes"].as_array().unwrap().len(),
            2,
            "{n}: {}",
            r.json
        );
        assert_eq!(
            get(&app, "/v1/kbs/k/entries/b/graph?depth=9").await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            get(&app, "/v1/kbs/k/entries/zz/graph").await.status,
            StatusCode::NOT_FOUND
        );
        // The KB's shape: b and c are linked once each; notes/c is an orphan.
        let r = get(&app, "/v1/kbs/k/graph").await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.json);
        let orphans: Vec<&str> = r.json["orphans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap())
            .collect();
        assert_eq!(orphans, ["notes/c"], "{n}");

        // Similar: b's nearest are the entries sharing its words, never b itself.
        let r = get(&app, "/v1/kbs/k/entries/b/similar?k=2").await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.json);
        let hits = r.json["similar"].as_array().unwrap();
        assert_eq!(hits.len(), 2, "{n}");
        assert!(hits.iter().all(|h| h["id"] != "b"), "{n}: {}", r.json);
        let near: BTreeSet<&str> = hits.iter().map(|h| h["id"].as_str().unwrap()).collect();
        assert_eq!(near, BTreeSet::from(["a", "notes/c"]), "{n}: {}", r.json);
        // An entry without a vector is 409, a missing one 404.
        put(
            &app,
            "/v1/kbs/k/entries/fresh",
            Some(json!({"title": "fresh"})),
        )
        .await;
        let r = get(&app, "/v1/kbs/k/entries/fresh/similar").await;
        assert_eq!(
            (r.status, kind(&r)),
            (StatusCode::CONFLICT, "not_embedded"),
            "{n}"
        );
        assert_eq!(
            get(&app, "/v1/kbs/k/entries/zz/similar").await.status,
            StatusCode::NOT_FOUND
        );

        // Stars, in starring order; an id with a slash; unstarring twice is 404.
        assert_eq!(
            put(&app, "/v1/kbs/k/entries/notes/c/star", None)
                .await
                .status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            put(&app, "/v1/kbs/k/entries/a/star", None).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            put(&app, "/v1/kbs/k/entries/notes/c/star", None)
                .await
                .status,
            StatusCode::NO_CONTENT
        );
        let r = get(&app, "/v1/kbs/k/stars").await;
        let starred: Vec<&str> = r.json["starred"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap())
            .collect();
        assert_eq!(starred, ["notes/c", "a"], "{n}");
        assert_eq!(
            get(&app, "/v1/stars").await.json["starred"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            delete(&app, "/v1/kbs/k/entries/a/star").await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            delete(&app, "/v1/kbs/k/entries/a/star").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            put(&app, "/v1/kbs/k/entries/zz/star", None).await.status,
            StatusCode::NOT_FOUND
        );

        // Metadata compare-and-set: absent → 1 wins once; the loser sees the value.
        let cas = json!({"path": "review.state", "new": "done"});
        let r = post(&app, "/v1/kbs/k/entries/a/metadata", cas.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.json);
        assert_eq!(r.json["swapped"], true);
        let r = post(&app, "/v1/kbs/k/entries/a/metadata", cas).await;
        assert_eq!(
            (r.status, kind(&r)),
            (StatusCode::CONFLICT, "cas_mismatch"),
            "{n}"
        );
        assert_eq!(r.json["error"]["current"], "done");
        assert_eq!(r.json["error"]["present"], true);
        // A JSON null is a value, not absence.
        let r = post(
            &app,
            "/v1/kbs/k/entries/a/metadata",
            json!({"path": "x", "expected": null, "new": 1}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{n}: {}", r.json);
        assert_eq!(r.json["error"]["present"], false);
        let r = post(
            &app,
            "/v1/kbs/k/entries/a/metadata",
            json!({"path": "review.state", "expected": "done", "new": "open"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.json);
        let e = get(&app, "/v1/kbs/k/entries/a").await;
        assert_eq!(e.json["metadata"]["review"]["state"], "open", "{n}");
        let r = post(
            &app,
            "/v1/kbs/k/entries/zz/metadata",
            json!({"path": "x", "new": 1}),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = post(
            &app,
            "/v1/kbs/k/entries/a/metadata",
            json!({"path": "x", "new": 1, "nope": 2}),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{n}: unknown field"
        );
    }
}

#[tokio::test]
async fn settings_and_collections_round_trip() {
    for b in backends("organise") {
        let (state, app) = seeded(&b).await;
        let n = b.name;

        // KB settings: keys with slashes, any JSON value, 404 once deleted.
        let r = put(
            &app,
            "/v1/kbs/k/settings/ui/theme",
            Some(json!({"value": {"dark": true}})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.json);
        let r = get(&app, "/v1/kbs/k/settings/ui%2Ftheme").await;
        assert_eq!(r.json["value"]["dark"], true, "{n}: {}", r.json);
        let r = get(&app, "/v1/kbs/k/settings").await;
        assert_eq!(
            r.json["settings"],
            json!({"ui/theme": {"dark": true}}),
            "{n}"
        );
        assert_eq!(
            delete(&app, "/v1/kbs/k/settings/ui/theme").await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            get(&app, "/v1/kbs/k/settings/ui/theme").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            put(&app, "/v1/kbs/nokb/settings/x", Some(json!({"value": 1})))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            put(&app, "/v1/kbs/k/settings/x", Some(json!({"valeu": 1})))
                .await
                .status,
            StatusCode::UNPROCESSABLE_ENTITY
        );

        // Global settings never show or take token records.
        create_token(state.store.as_ref(), Scope::Admin, &[], "t")
            .await
            .unwrap();
        let (_admin, token) = create_token(state.store.as_ref(), Scope::Admin, &[], "admin")
            .await
            .unwrap();
        let t = Some(token.as_str());
        let r = call(
            &app,
            Method::PUT,
            "/v1/settings/site.name",
            t,
            Some(json!({"value": "mine"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.json);
        let r = call(&app, Method::GET, "/v1/settings", t, None).await;
        assert_eq!(
            r.json["settings"],
            json!({"site.name": "mine"}),
            "{n}: token records leak"
        );
        let r = call(
            &app,
            Method::PUT,
            "/v1/settings/kb.tokens.0123",
            t,
            Some(json!({"value": {}})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{n}");
        let r = call(
            &app,
            Method::GET,
            &format!("/v1/settings/kb.tokens.{}", _admin.id()),
            t,
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{n}");

        // Collections: create, order, move, remove, delete; entries stay.
        let r = call(
            &app,
            Method::POST,
            "/v1/kbs/k/collections",
            t,
            Some(json!({"name": "reading", "description": "to read"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{n}: {}", r.json);
        let r = call(
            &app,
            Method::POST,
            "/v1/kbs/k/collections",
            t,
            Some(json!({"name": "reading"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{n}");
        for id in ["a", "notes/c", "b"] {
            let r = call(
                &app,
                Method::PUT,
                &format!("/v1/kbs/k/collections/reading/entries/{id}"),
                t,
                None,
            )
            .await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{n} {id}: {}", r.json);
        }
        let r = call(
            &app,
            Method::PUT,
            "/v1/kbs/k/collections/reading/entries/b?position=0",
            t,
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{n}");
        let r = call(&app, Method::GET, "/v1/kbs/k/collections/reading", t, None).await;
        assert_eq!(
            r.json["entries"],
            json!(["b", "a", "notes/c"]),
            "{n}: {}",
            r.json
        );
        assert_eq!(r.json["size"], 3);
        let r = call(
            &app,
            Method::DELETE,
            "/v1/kbs/k/collections/reading/entries/notes/c",
            t,
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{n}");
        let r = call(&app, Method::GET, "/v1/kbs/k/collections", t, None).await;
        assert_eq!(r.json["collections"][0]["size"], 2, "{n}: {}", r.json);
        let r = call(
            &app,
            Method::DELETE,
            "/v1/kbs/k/collections/reading",
            t,
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{n}");
        let r = call(&app, Method::GET, "/v1/kbs/k/collections/reading", t, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{n}");
        assert_eq!(
            call(&app, Method::GET, "/v1/kbs/k/entries/a", t, None)
                .await
                .status,
            StatusCode::OK
        );
        let r = call(
            &app,
            Method::GET,
            "/v1/kbs/k/collections/bad%20name",
            t,
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{n}");
    }
}

#[tokio::test]
async fn gc_and_the_queue_are_for_admins() {
    for b in backends("admin") {
        let (state, app) = seeded(&b).await;
        let n = b.name;
        let store = state.store.as_ref();
        store
            .create_kb(&NewKnowledgeBase::ephemeral(
                "scratch",
                chrono::Duration::milliseconds(1),
            ))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        store
            .upsert_entry(&NewEntry::new("k", "queued").title("q"))
            .await
            .unwrap();
        let (_, admin) = create_token(store, Scope::Admin, &[], "admin")
            .await
            .unwrap();
        let (_, writer) = create_token(store, Scope::ReadWrite, &["k".into()], "w")
            .await
            .unwrap();
        for (method, uri, body) in [
            (Method::POST, "/v1/gc", None),
            (Method::GET, "/v1/queue", None),
            (Method::POST, "/v1/queue/requeue", Some(json!({}))),
        ] {
            let r = call(&app, method.clone(), uri, Some(&writer), body.clone()).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{n} {uri}: {}", r.json);
        }
        let r = call(&app, Method::GET, "/v1/queue", Some(&admin), None).await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.json);
        // The seeded entries' vectors were stored directly, so their queue items wait
        // for a worker too: four of them and the new entry.
        assert_eq!(r.json["pending"], 5, "{n}: {}", r.json);
        let r = call(
            &app,
            Method::POST,
            "/v1/queue/requeue",
            Some(&admin),
            Some(json!({"kbs": ["k"], "all": true})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.json);
        assert_eq!(
            r.json["queued"], 5,
            "{n}: every active entry of k: {}",
            r.json
        );
        let r = call(&app, Method::POST, "/v1/gc", Some(&admin), None).await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.json);
        assert_eq!(r.json["kbs"][0]["name"], "scratch", "{n}: {}", r.json);
    }
}

/// Fills a documented path's parameters with sample values.
fn concrete(path: &str, kb: &str) -> String {
    path.replace("{kb}", kb)
        .replace("{id}", "notes/c")
        .replace("{key}", "ui/theme")
        .replace("{name}", "reading")
}

/// A body each documented write takes, so that a request gets past its JSON extractor
/// to the access check.
fn sample_body(method: &str, path: &str) -> Option<Value> {
    Some(match (method, path) {
        ("post", "/v1/kbs") => json!({"name": "newkb"}),
        ("post", "/v1/kbs/{kb}/entries") => json!([{"id": "x", "title": "x"}]),
        ("put", "/v1/kbs/{kb}/entries/{id}") => json!({"title": "c"}),
        ("post", p) if p.ends_with("/claim") => json!({"to": "doing", "assignee": "me"}),
        ("post", p) if p.ends_with("/metadata") => json!({"path": "p", "new": 1}),
        ("put", p) if p.contains("/settings/") => json!({"value": 1}),
        ("post", "/v1/kbs/{kb}/collections") => json!({"name": "other"}),
        ("post", "/v1/queue/requeue") => json!({}),
        _ => return None,
    })
}

/// Methods the router answers at `path` (its 405 lists them in `Allow`).
async fn allowed(app: &axum::Router, path: &str) -> BTreeSet<String> {
    let req = Request::builder()
        .method(Method::PATCH)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let r = send(app, req).await;
    assert_eq!(
        r.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{path}: no route ({})",
        r.json
    );
    r.headers
        .get(header::ALLOW)
        .unwrap()
        .to_str()
        .unwrap()
        .split(',')
        .map(|m| m.trim().to_lowercase())
        .filter(|m| m != "head")
        .collect()
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document() {
    let b = backends("openapi").remove(0);
    let (_state, app) = app_for(&b).await;
    let r = get(&app, "/v1/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.json["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        r.json["openapi"]
    );
    let paths = r.json["paths"].as_object().unwrap();
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (p.clone(), m.clone()))
        })
        .filter(|(_, m)| m != "parameters")
        .collect();

    // Every route the router has, with every method it answers, is documented: a
    // wildcard route by some documented path below it.
    let routes: Vec<&str> = kb_server::api_routes()
        .iter()
        .chain(kb_server::open_routes().iter())
        .map(|(p, _)| *p)
        .filter(|p| p.starts_with("/v1") || ["/metrics", "/healthz", "/readyz"].contains(p))
        .collect();
    for route in routes {
        let (prefix, wildcard) = match route.split_once("{*") {
            Some((prefix, _)) => (prefix, true),
            None => (route, false),
        };
        let sample = if wildcard {
            format!("{}x", concrete(prefix, "k"))
        } else {
            concrete(route, "k")
        };
        for method in allowed(&app, &sample).await {
            let found = documented.iter().any(|(p, m)| {
                *m == method
                    && if wildcard {
                        p.starts_with(prefix)
                    } else {
                        p == route
                    }
            });
            assert!(
                found,
                "{method} {route} is served but not in /v1/openapi.json"
            );
        }
    }
    // And every documented operation is served.
    for (path, method) in &documented {
        let methods = allowed(&app, &concrete(path, "k")).await;
        assert!(
            methods.contains(method),
            "{method} {path} is documented but not served ({methods:?})"
        );
    }
    // Request bodies name their schemas.
    let put = &paths["/v1/kbs/{kb}/entries/{id}"]["put"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert_eq!(put["$ref"], "#/components/schemas/EntryInput", "{put}");
}

#[tokio::test]
async fn a_token_reaches_only_its_knowledge_bases_on_every_documented_route() {
    for b in backends("scopes") {
        let (state, app) = seeded(&b).await;
        let n = b.name;
        let store = state.store.as_ref();
        store
            .create_kb(&NewKnowledgeBase::persistent("other"))
            .await
            .unwrap();
        store
            .upsert_entry(
                &NewEntry::new("other", "notes/c")
                    .title("secret")
                    .tags(["s"]),
            )
            .await
            .unwrap();
        store
            .create_collection("other", "reading", "")
            .await
            .unwrap();
        let (_, mine) = create_token(store, Scope::ReadWrite, &["k".into()], "mine")
            .await
            .unwrap();
        let doc = kb_server::openapi::document();
        let mut checked = 0;
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let body = sample_body(method, path);
                let is_open = ops[method]["security"] == json!([{}]);
                if path.contains("{kb}") {
                    // The other KB does not exist for this token: 404, the same as a
                    // missing KB, whatever the route.
                    let r = call(
                        &app,
                        m.clone(),
                        &concrete(path, "other"),
                        Some(&mine),
                        body.clone(),
                    )
                    .await;
                    assert_eq!(
                        r.status,
                        StatusCode::NOT_FOUND,
                        "{n} {method} {path} on another KB: {}",
                        r.json
                    );
                    assert!(
                        !r.json.to_string().contains("secret"),
                        "{n} {method} {path}"
                    );
                    // Its own KB: never 401, and a 404 is about the entry, not the KB.
                    let r = call(
                        &app,
                        m.clone(),
                        &concrete(path, "k"),
                        Some(&mine),
                        body.clone(),
                    )
                    .await;
                    assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{n} {method} {path}");
                    if r.status == StatusCode::NOT_FOUND {
                        assert!(
                            !r.json["error"]["message"]
                                .as_str()
                                .unwrap()
                                .contains("knowledge base k"),
                            "{n} {method} {path}: {}",
                            r.json
                        );
                    }
                } else if !is_open && path.starts_with("/v1") {
                    // Routes across KBs never show the other KB's content.
                    let uri = if path.ends_with("/search") {
                        format!("{path}?q=secret")
                    } else {
                        concrete(path, "k")
                    };
                    let r = call(&app, m.clone(), &uri, Some(&mine), body.clone()).await;
                    assert!(
                        !r.json.to_string().contains("\"other\""),
                        "{n} {method} {path}: {}",
                        r.json
                    );
                }
                if !is_open {
                    let uri = concrete(path, "k");
                    for token in [
                        None,
                        Some("kb_0000000000000000000000000000000000000000000000000000000000000000"),
                    ] {
                        let r = call(&app, m.clone(), &uri, token, body.clone()).await;
                        assert_eq!(
                            r.status,
                            StatusCode::UNAUTHORIZED,
                            "{n} {method} {path} with {token:?}"
                        );
                    }
                }
                checked += 1;
            }
        }
        assert!(checked >= 40, "{n}: only {checked} operations checked");
    }
}

#[tokio::test]
async fn a_caller_past_its_in_flight_limit_gets_429() {
    let b = backends("limit").remove(0);
    let (mut state, _) = app_for(&b).await;
    state
        .store
        .create_kb(&NewKnowledgeBase::persistent("k"))
        .await
        .unwrap();
    state.in_flight = std::sync::Arc::new(kb_server::auth::InFlight::new(1));
    let app = kb_server::router(state);
    // A request whose body never finishes holds the caller's one place.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = Body::from_stream(tokio_stream_from(rx));
    let held = Request::put("/v1/kbs/k/entries/slow")
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap();
    let slow = tokio::spawn({
        let app = app.clone();
        async move { send(&app, held).await }
    });
    tx.send(Ok(b"{\"title\":".to_vec())).await.unwrap();
    // The first chunk taken from the channel means the handler is reading the body, so
    // the request holds its place.
    for _ in 0..500 {
        if tx.capacity() == tx.max_capacity() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        tx.capacity(),
        tx.max_capacity(),
        "the held request never read its body"
    );
    let second = get(&app, "/v1/kbs/k").await;
    assert_eq!(
        second.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        second.json
    );
    assert_eq!(kind(&second), "too_many_requests");
    assert_eq!(second.headers[header::RETRY_AFTER], "1");
    // Once it finishes, the caller is served again.
    tx.send(Ok(b"\"done\"}".to_vec())).await.unwrap();
    drop(tx);
    assert_eq!(slow.await.unwrap().status, StatusCode::OK);
    assert_eq!(get(&app, "/v1/kbs/k").await.status, StatusCode::OK);
}

/// The receiving half of a channel as a stream of body chunks.
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
