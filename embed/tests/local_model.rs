//! The local all-MiniLM-L6-v2 against reference numbers from sentence-transformers
//! (fixtures/minilm_reference.json; fixtures/make_minilm_reference.py says how they were
//! made). Skipped with a message when the model is not installed, unless
//! KB_REQUIRE_MODEL=1 (set by `cargo xtask ci`, which fetches it first).

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use embed::{default_model_dir, EmbedError, Embedder, LocalEmbedder, MINILM_MODEL_ID};
use serde_json::Value;

fn model() -> Option<LocalEmbedder> {
    let dir = default_model_dir();
    match LocalEmbedder::load(&dir) {
        Ok(m) => Some(m),
        Err(EmbedError::ModelMissing { .. })
            if std::env::var("KB_REQUIRE_MODEL").as_deref() != Ok("1") =>
        {
            eprintln!(
                "skipping: no model at {} (run `cargo xtask fetch-model`)",
                dir.display()
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn reference() -> (Vec<String>, Vec<Vec<f32>>) {
    let v: Value = serde_json::from_str(include_str!("fixtures/minilm_reference.json")).unwrap();
    let sentences = serde_json::from_value(v["sentences"].clone()).unwrap();
    let vectors = serde_json::from_value(v["vectors"].clone()).unwrap();
    (sentences, vectors)
}

#[tokio::test]
async fn embeddings_match_the_reference_implementation() {
    let Some(m) = model() else { return };
    assert_eq!(m.model_id(), MINILM_MODEL_ID);
    assert_eq!(m.dimension(), 384);
    assert_eq!(m.max_input_tokens(), 254);
    let (sentences, expected) = reference();
    // In one padded batch and one at a time: padding must not change a vector.
    let batch = m.embed(&sentences).await.unwrap();
    for (i, (got, want)) in batch.iter().zip(&expected).enumerate() {
        let c = cos(got, want);
        assert!(c >= 0.999, "sentence {i} {:?}: cosine {c}", sentences[i]);
        let norm = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "L2-normalised: {norm}");
    }
    let single = m.embed(&sentences[..1]).await.unwrap();
    assert!(cos(&single[0], &expected[0]) >= 0.999);
}

#[tokio::test]
async fn paraphrases_are_closer_than_unrelated_sentences() {
    let Some(m) = model() else { return };
    let s = |t: &str| t.to_owned();
    let v = m
        .embed(&[
            s("The cat sits on the mat."),
            s("A cat is sitting on a rug."),
            s("Quarterly revenue grew by twelve percent."),
            s("How do I reset my password?"),
            s("Steps to recover a forgotten login credential"),
            s("I love pasta"),
        ])
        .await
        .unwrap();
    assert!(cos(&v[0], &v[1]) > cos(&v[0], &v[2]) + 0.3);
    assert!(cos(&v[3], &v[4]) > cos(&v[3], &v[5]));
    assert!(cos(&v[3], &v[4]) > cos(&v[3], &v[0]));
}

#[tokio::test]
async fn long_input_is_truncated_not_rejected_and_tokens_are_counted() {
    let Some(m) = model() else { return };
    let long = "storage engines and search ".repeat(400);
    assert!(m.count_tokens(&long) > 1000, "{}", m.count_tokens(&long));
    assert_eq!(m.count_tokens("hello world"), 2);
    let v = m.embed(&[long]).await.unwrap();
    assert_eq!(v[0].len(), 384);
    assert!(m.embed(&[]).await.unwrap().is_empty());
}

#[test]
fn a_missing_model_says_how_to_install_it() {
    let err = LocalEmbedder::load("/nonexistent/model/dir").unwrap_err();
    assert!(matches!(err, EmbedError::ModelMissing { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("cargo xtask fetch-model") && msg.contains("/nonexistent/model/dir"),
        "{msg}"
    );
}
