//! A corpus of hostile and malformed requests, table-driven, on each backend: every one
//! gets its 4xx in the error shape (no SQL, driver text or path in it), the server stays
//! up, and nothing is written.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::json;
use storage_core::prelude::*;
use storage_core::{Filter, NewEntry, NewKnowledgeBase};

mod common;
use common::*;

/// One hostile request and the statuses it may get (search strings may also be valid
/// queries that find nothing: 200 is right for them, as long as nothing else happens).
struct Case {
    name: &'static str,
    method: Method,
    uri: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    expect: &'static [u16],
}

fn case(
    name: &'static str,
    method: Method,
    uri: impl Into<String>,
    body: impl Into<Vec<u8>>,
    expect: &'static [u16],
) -> Case {
    Case {
        name,
        method,
        uri: uri.into(),
        content_type: Some("application/json"),
        body: body.into(),
        expect,
    }
}

fn search(name: &'static str, q: &str, expect: &'static [u16]) -> Case {
    let q: String = percent_encode(q);
    case(
        name,
        Method::GET,
        format!("/v1/kbs/k/search?mode=keyword&q={q}"),
        Vec::new(),
        expect,
    )
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn corpus() -> Vec<Case> {
    let put = |name, body: Vec<u8>, expect| {
        case(name, Method::PUT, "/v1/kbs/k/entries/victim", body, expect)
    };
    let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
    vec![
        // Injection strings: plain text to the query language, never SQL.
        search("sql injection", "'; DROP TABLE entries; --", &[200, 400]),
        search(
            "sql union",
            "x' UNION SELECT * FROM kb_settings --",
            &[200, 400],
        ),
        search(
            "fts5 syntax",
            "title:secret NEAR(a b, 2) {body}: ^x*",
            &[200, 400],
        ),
        search("fts5 unbalanced quote", "\"never closed", &[200, 400]),
        search("tsquery syntax", "a & !b | c:* <-> d", &[200, 400]),
        search("nested parentheses", &"(".repeat(5000), &[400]),
        search(
            "nested parentheses, closed",
            &format!("{}x{}", "(".repeat(3000), ")".repeat(3000)),
            &[400],
        ),
        search("query past the length limit", &"word ".repeat(1000), &[400]),
        search("only operators", "AND OR NOT", &[200, 400]),
        case(
            "sql in a path",
            Method::GET,
            "/v1/kbs/k'%20OR%201=1--/entries",
            Vec::new(),
            &[404],
        ),
        case(
            "sql in an id",
            Method::GET,
            "/v1/kbs/k/entries/x'%20OR%20'1'='1",
            Vec::new(),
            &[404],
        ),
        case(
            "sql in a kb name",
            Method::POST,
            "/v1/kbs",
            json(json!({"name": "k'; DROP TABLE entries; --"})),
            &[422],
        ),
        // Sizes.
        put(
            "a 10 MB body",
            json(json!({"title": "big", "body": "x".repeat(10 << 20)})),
            &[413, 422],
        ),
        put("a 20 MB request", vec![b' '; 20 << 20], &[413]),
        put("an id of 1000 characters", Vec::new(), &[]),
        case(
            "a batch past its limit",
            Method::POST,
            "/v1/kbs/k/entries",
            json(json!((0..10_001)
                .map(|i| json!({"id": format!("b{i}")}))
                .collect::<Vec<_>>())),
            &[422],
        ),
        put(
            "a million tags",
            json(
                json!({"title": "t", "tags": (0..1_000_000).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
            ),
            &[413, 422],
        ),
        // Numbers.
        put(
            "NaN importance",
            b"{\"title\": \"t\", \"importance\": NaN}".to_vec(),
            &[400],
        ),
        put(
            "huge importance",
            b"{\"title\": \"t\", \"importance\": 1e400}".to_vec(),
            &[400, 422],
        ),
        put(
            "importance past i32",
            json(json!({"title": "t", "importance": 1u64 << 40})),
            &[422],
        ),
        case(
            "negative limit",
            Method::GET,
            "/v1/kbs/k/entries?limit=-1",
            Vec::new(),
            &[400],
        ),
        case(
            "huge limit",
            Method::GET,
            "/v1/kbs/k/entries?limit=99999999999999999999999",
            Vec::new(),
            &[400],
        ),
        case(
            "huge offset in search",
            Method::GET,
            "/v1/kbs/k/search?q=a&offset=18446744073709551615",
            Vec::new(),
            &[400],
        ),
        case(
            "k past its limit",
            Method::GET,
            "/v1/kbs/k/entries/e/similar?k=1000000",
            Vec::new(),
            &[400],
        ),
        case(
            "graph depth past its limit",
            Method::GET,
            "/v1/kbs/k/entries/e/graph?depth=4294967296",
            Vec::new(),
            &[400],
        ),
        // Encodings and shapes.
        put(
            "invalid UTF-8 body",
            b"{\"title\": \"\xff\xfe\"}".to_vec(),
            &[400],
        ),
        case(
            "invalid UTF-8 in the query string",
            Method::GET,
            "/v1/kbs/k/search?q=%FF%FE",
            Vec::new(),
            &[400],
        ),
        case(
            "invalid UTF-8 in the path",
            Method::GET,
            "/v1/kbs/k/entries/%FF",
            Vec::new(),
            &[400],
        ),
        put("truncated JSON", b"{\"title\": ".to_vec(), &[400]),
        put(
            "JSON nested 100000 deep",
            format!(
                "{{\"metadata\": {}{}}}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            )
            .into_bytes(),
            &[400, 422],
        ),
        put("a JSON array for an object", b"[1, 2]".to_vec(), &[422]),
        put(
            "an unknown field",
            json(json!({"title": "t", "titel": "t"})),
            &[422],
        ),
        put(
            "a NUL in the title",
            json(json!({"title": "a\u{0}b"})),
            &[422],
        ),
        put(
            "a tag of control characters",
            json(json!({"title": "t", "tags": ["\u{1}\u{2}"]})),
            &[422],
        ),
        put(
            "a link to an invalid KB",
            json(json!({"title": "t", "links": [{"target": "x", "target_kb": "../etc"}]})),
            &[422],
        ),
        Case {
            content_type: Some("text/plain"),
            ..put(
                "the wrong content type",
                json(json!({"title": "t"})),
                &[415],
            )
        },
        Case {
            content_type: None,
            ..put("no content type", json(json!({"title": "t"})), &[415])
        },
        case(
            "an unknown query parameter",
            Method::GET,
            "/v1/kbs/k/entries?limt=5",
            Vec::new(),
            &[400],
        ),
        case(
            "an unknown mode",
            Method::GET,
            "/v1/kbs/k/search?q=a&mode=fuzzy",
            Vec::new(),
            &[400],
        ),
        case(
            "a date that is not one",
            Method::GET,
            "/v1/kbs/k/entries?from=2024-13-45",
            Vec::new(),
            &[400],
        ),
        case(
            "a claim without assignee",
            Method::POST,
            "/v1/kbs/k/entries/e/claim",
            json(json!({"to": "doing"})),
            &[422],
        ),
        case(
            "an empty setting key",
            Method::PUT,
            "/v1/kbs/k/settings/",
            json(json!({"value": 1})),
            &[404, 405, 422],
        ),
        case(
            "a setting key of 300 bytes",
            Method::PUT,
            format!("/v1/kbs/k/settings/{}", "k".repeat(300)),
            json(json!({"value": 1})),
            &[422],
        ),
    ]
}

#[tokio::test]
async fn hostile_requests_get_their_4xx_and_write_nothing() {
    for b in backends("badinput") {
        let (state, app) = app_for(&b).await;
        let n = b.name;
        let store = state.store.clone();
        store
            .create_kb(&NewKnowledgeBase::persistent("k"))
            .await
            .unwrap();
        store
            .upsert_entry(&NewEntry::new("k", "e").title("existing").body("a body"))
            .await
            .unwrap();
        let before = store
            .get_entry(&storage_core::EntryKey::new("k", "e"))
            .await
            .unwrap()
            .unwrap();

        for mut c in corpus() {
            if c.name == "an id of 1000 characters" {
                c.uri = format!("/v1/kbs/k/entries/{}", "i".repeat(1000));
                c.body = serde_json::to_vec(&json!({"title": "t"})).unwrap();
                c.expect = &[422];
            }
            let mut req = Request::builder().method(c.method.clone()).uri(&c.uri);
            if let Some(ct) = c.content_type {
                req = req.header(header::CONTENT_TYPE, ct);
            }
            let resp = app
                .clone()
                .oneshot_raw(req.body(Body::from(c.body)).unwrap())
                .await;
            let (status, text) = resp;
            assert!(
                c.expect.contains(&status.as_u16()),
                "{n}: {}: got {status}, expected one of {:?}: {text}",
                c.name,
                c.expect
            );
            if !status.is_success() {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("{n}: {}: not the error shape: {text}", c.name));
                assert!(
                    v["error"]["kind"].is_string() && v["error"]["message"].is_string(),
                    "{n}: {}: {text}",
                    c.name
                );
                for leak in [
                    "SELECT", "sqlite", "postgres", "tokio", "SQLSTATE", "panicked", ".rs:",
                ] {
                    assert!(
                        !text.contains(leak),
                        "{n}: {}: the answer shows {leak:?}: {text}",
                        c.name
                    );
                }
            }
        }

        // Still up, nothing written, the existing entry untouched.
        assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
        assert_eq!(
            store.count_entries(&Filter::new().kb("k")).await.unwrap(),
            1,
            "{n}: something was written"
        );
        let kbs: Vec<String> = store
            .list_kbs()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(kbs, ["k"], "{n}");
        let after = store.get_entry(&before.key()).await.unwrap().unwrap();
        assert_eq!(after, before, "{n}");
        let r = get(&app, "/v1/kbs/k/search?q=body&mode=keyword").await;
        assert_eq!(
            r.json["hits"][0]["id"], "e",
            "{n}: search still works: {}",
            r.json
        );
    }
}

/// Sends a request and returns the status and body text, whatever the body is.
trait OneshotRaw {
    async fn oneshot_raw(self, req: Request<Body>) -> (StatusCode, String);
}

impl OneshotRaw for axum::Router {
    async fn oneshot_raw(self, req: Request<Body>) -> (StatusCode, String) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let resp = self.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}
