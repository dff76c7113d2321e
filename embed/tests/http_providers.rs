//! The HTTP providers against a local mock server: batching, retries on 429/5xx,
//! recovery, immediate failure on client errors, wrong dimensions, timeouts, refused
//! connections.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use embed::{EmbedError, Embedder, HttpConfig, OllamaEmbedder, OpenAiEmbedder};
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn config(url: &str, dim: usize) -> HttpConfig {
    let mut c = HttpConfig::new(url, "test-model", dim);
    c.backoff = Duration::from_millis(5);
    c.max_retries = 3;
    c.timeout = Duration::from_secs(5);
    c
}

/// A vector per input, derived from the input's length, so order can be checked.
fn vector_for(text: &str, dim: usize) -> Vec<f32> {
    (0..dim).map(|i| (text.len() + i) as f32).collect()
}

fn inputs(req: &Request) -> Vec<String> {
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    serde_json::from_value(body["input"].clone()).unwrap()
}

/// OpenAI-style answer, items deliberately in reverse order (the API may reorder).
fn openai_answer(dim: usize) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync {
    move |req: &Request| {
        let data: Vec<Value> = inputs(req)
            .iter()
            .enumerate()
            .rev()
            .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vector_for(t, dim)}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": data}))
    }
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| "x".repeat(i + 1)).collect()
}

#[tokio::test]
async fn openai_batches_requests_and_keeps_input_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .and(header("authorization", "Bearer sk-test"))
        .respond_with(openai_answer(3))
        .expect(3)
        .mount(&server)
        .await;
    let mut c = config(&server.uri(), 3);
    c.batch_size = 2;
    c.api_key = Some("sk-test".into());
    let e = OpenAiEmbedder::new(c).unwrap();
    assert_eq!(e.model_id(), "openai:test-model");
    let t = texts(5);
    let v = e.embed(&t).await.unwrap();
    assert_eq!(v.len(), 5);
    for (text, vec) in t.iter().zip(&v) {
        assert_eq!(vec, &vector_for(text, 3));
    }
    let sent: Vec<usize> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| inputs(r).len())
        .collect();
    assert_eq!(sent, [2, 2, 1]);
}

#[tokio::test]
async fn a_server_that_fails_then_recovers_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("overloaded"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(json!({"error": {"message": "slow down"}})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(openai_answer(4))
        .mount(&server)
        .await;
    let e = OpenAiEmbedder::new(config(&server.uri(), 4)).unwrap();
    let v = e.embed(&texts(2)).await.unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}

#[tokio::test]
async fn retries_are_bounded_and_the_last_error_is_reported() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"message": "model crashed"}})),
        )
        .mount(&server)
        .await;
    let e = OpenAiEmbedder::new(config(&server.uri(), 4)).unwrap();
    let err = e.embed(&texts(1)).await.unwrap_err();
    assert!(
        matches!(err, EmbedError::Http { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("model crashed"), "{err}");
    assert!(err.is_transient());
    // One attempt plus max_retries (3).
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}

#[tokio::test]
async fn client_errors_fail_at_once_with_the_providers_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": {"message": "input too long for model"}})),
        )
        .mount(&server)
        .await;
    let e = OpenAiEmbedder::new(config(&server.uri(), 4)).unwrap();
    let err = e.embed(&texts(1)).await.unwrap_err();
    assert!(
        matches!(err, EmbedError::Http { status: 400, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("input too long for model"));
    assert!(!err.is_transient());
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_wrong_dimension_is_reported_not_stored() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(openai_answer(8))
        .mount(&server)
        .await;
    let e = OpenAiEmbedder::new(config(&server.uri(), 4)).unwrap();
    let err = e.embed(&texts(2)).await.unwrap_err();
    match &err {
        EmbedError::DimensionMismatch {
            expected, actual, ..
        } => assert_eq!((*expected, *actual), (4, 8)),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("8-dimensional"), "{err}");
}

#[tokio::test]
async fn ollama_uses_api_embed() {
    let server = MockServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    Mock::given(method("POST"))
        .and(path("/api/embed"))
        .respond_with(move |req: &Request| {
            seen.fetch_add(1, Ordering::SeqCst);
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            assert_eq!(body["model"], "nomic");
            let v: Vec<Vec<f32>> = inputs(req).iter().map(|t| vector_for(t, 2)).collect();
            ResponseTemplate::new(200).set_body_json(json!({"model": "nomic", "embeddings": v}))
        })
        .mount(&server)
        .await;
    let mut c = config(&server.uri(), 2);
    c.model = "nomic".into();
    let e = OllamaEmbedder::new(c).unwrap();
    assert_eq!(e.model_id(), "ollama:nomic");
    let t = texts(3);
    assert_eq!(e.embed(&t).await.unwrap()[2], vector_for(&t[2], 2));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_malformed_body_is_an_invalid_response() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"unexpected": true})))
        .mount(&server)
        .await;
    let e = OllamaEmbedder::new(config(&server.uri(), 2)).unwrap();
    let err = e.embed(&texts(1)).await.unwrap_err();
    assert!(matches!(err, EmbedError::InvalidResponse { .. }), "{err:?}");
}

#[tokio::test]
async fn slow_servers_time_out_and_dead_ones_are_unreachable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": []}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let mut c = config(&server.uri(), 2);
    c.timeout = Duration::from_millis(100);
    c.max_retries = 1;
    let err = OpenAiEmbedder::new(c)
        .unwrap()
        .embed(&texts(1))
        .await
        .unwrap_err();
    assert!(matches!(err, EmbedError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("did not answer"), "{err}");

    // Nothing listens on port 1.
    let mut c = config("http://127.0.0.1:1", 2);
    c.max_retries = 1;
    let err = OpenAiEmbedder::new(c)
        .unwrap()
        .embed(&texts(1))
        .await
        .unwrap_err();
    assert!(matches!(err, EmbedError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

/// Provider errors end up in the queue's `last_error` and in search responses: the
/// credentials a base URL may carry (user info, a `?key=` query) never appear in them.
#[tokio::test]
async fn error_messages_never_show_credentials_of_the_provider_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "bad input"})))
        .mount(&server)
        .await;
    let with_secrets = |base: &str| {
        let (scheme, rest) = base.split_once("://").unwrap();
        format!("{scheme}://bob:s3cret@{rest}")
    };
    let mut c = config(&with_secrets(&server.uri()), 2);
    c.max_retries = 0;
    let err = OpenAiEmbedder::new(c)
        .unwrap()
        .embed(&texts(1))
        .await
        .unwrap_err();
    assert!(matches!(err, EmbedError::Http { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("bob"),
        "{shown}"
    );

    let mut c = config(&with_secrets("http://127.0.0.1:1"), 2);
    c.max_retries = 0;
    let err = OllamaEmbedder::new(c)
        .unwrap()
        .embed(&texts(1))
        .await
        .unwrap_err();
    assert!(matches!(err, EmbedError::Unreachable { .. }), "{err:?}");
    let mut shown = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        shown.push_str(&s.to_string());
        source = s.source();
    }
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("127.0.0.1:1"), "{shown}");
}
