//! Time-bounded fuzzing of what callers control most directly: query text, the tokenizer
//! every index uses, and entries, filters and semantic queries as they arrive in JSON.
//! Each target draws fresh random inputs (a new seed per round) until its budget is
//! spent: `KB_FUZZ_SECS` seconds (CI sets it; a plain `cargo test` spends 2). Any panic
//! fails the run, and proptest shrinks the input that caused it.
//!
//! proptest rather than `cargo fuzz`: libFuzzer needs a nightly compiler, and the
//! properties below (round trips, idempotence) are easier to state as strategies.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use storage_core::*;

fn budget() -> Duration {
    let secs = std::env::var("KB_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs.max(0.1))
}

/// Cases per round (each round has a fresh random seed).
const ROUND: u32 = 64;

/// Runs `test` on inputs of `strategy`, round after round, until the budget is spent;
/// returns how many inputs were tried.
fn fuzz<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) -> u64 {
    let deadline = Instant::now() + budget();
    let mut tried = 0u64;
    while Instant::now() < deadline {
        let config = Config {
            cases: ROUND,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{e}");
        }
        tried += u64::from(ROUND);
    }
    tried
}

/// Query-shaped text: operators, quotes, stars and parentheses among words of several
/// scripts, any characters at all, deep nesting, or text near the length limit.
fn query_text() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("AND".to_owned()),
        Just("OR".to_owned()),
        Just("NOT".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("\"".to_owned()),
        Just("*".to_owned()),
        Just("-".to_owned()),
        "[a-zé東京дом0-9]{1,6}",
        "\\PC{1,4}",
        any::<char>().prop_map(String::from),
    ];
    prop_oneof![
        4 => proptest::collection::vec(atom, 0..40).prop_map(|a| a.join(" ")),
        2 => proptest::collection::vec(any::<char>(), 0..80).prop_map(String::from_iter),
        1 => (0usize..200, "[a-z ()\"*|-]{0,12}")
            .prop_map(|(d, inner)| format!("{}{inner}{}", "(".repeat(d), ")".repeat(d))),
        1 => "[a-z ]{1950,2100}",
    ]
}

#[test]
fn the_query_parser_never_panics_and_its_canonical_text_round_trips() {
    let tried = fuzz(query_text(), |q| {
        if let Ok(node) = parse_query(&q) {
            let again = parse_query(&node.to_string());
            prop_assert_eq!(again.ok(), Some(node), "canonical text of {:?}", q);
        }
        if let Some(free) = any_words_query(&q) {
            prop_assert!(parse_query(&free).is_ok(), "free text {q:?} gave {free:?}");
        }
        Ok(())
    });
    eprintln!("query parser: {tried} inputs");
}

#[test]
fn tokens_are_folded_spans_on_character_boundaries() {
    let text = prop_oneof![
        proptest::collection::vec(any::<char>(), 0..200).prop_map(String::from_iter),
        "(\\PC|[\u{300}-\u{36f}]){0,200}",
    ];
    let tried = fuzz(text, |t| {
        let mut previous_end = 0;
        let mut from_spans = Vec::new();
        let mut bad = None;
        text::for_each_token_span(&t, |token, span| {
            if t.get(span.clone()).is_none() || span.start < previous_end || token.is_empty() {
                bad = Some(format!("bad span {span:?} of {token:?} in {t:?}"));
                return false;
            }
            previous_end = span.end;
            from_spans.push(token.to_owned());
            true
        });
        if let Some(bad) = bad {
            return Err(TestCaseError::fail(bad));
        }
        let tokens: Vec<String> = text::tokens(&t).collect();
        prop_assert_eq!(&tokens, &from_spans);
        // Folding is idempotent: the tokens of the tokens are the tokens.
        let again: Vec<String> = text::tokens(&tokens.join(" ")).collect();
        prop_assert_eq!(again, tokens);
        Ok(())
    });
    eprintln!("tokenizer: {tried} inputs");
}

/// JSON values of any shape, with the field names entries, filters and queries use.
fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    const KEYS: [&str; 26] = [
        "kb",
        "id",
        "title",
        "body",
        "summary",
        "tags",
        "links",
        "sources",
        "metadata",
        "importance",
        "status",
        "assignee",
        "entry_type",
        "expires_at",
        "target",
        "url",
        "limit",
        "offset",
        "vector",
        "k",
        "min_score",
        "filter",
        "kbs",
        "note",
        "relation",
        "x",
    ];
    let key = proptest::sample::select(&KEYS[..]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}|[\\x00-\\x1f/ .a-z]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..10).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

#[test]
fn entries_filters_and_queries_from_any_json_validate_without_panicking() {
    let tried = fuzz(json(), |v| {
        let mut entry = v.clone();
        if let Some(o) = entry.as_object_mut() {
            // Required fields present, so validation is reached more often.
            o.entry("kb").or_insert("k".into());
            o.entry("id").or_insert("e".into());
        }
        if let Ok(e) = serde_json::from_value::<NewEntry>(entry) {
            if let Ok(valid) = e.normalized() {
                prop_assert_eq!(valid.normalized().ok(), Some(valid.clone()), "idempotent");
            }
        }
        if let Ok(f) = serde_json::from_value::<Filter>(v.clone()) {
            let _ = f.validate();
        }
        if let Ok(q) = serde_json::from_value::<SemanticQuery>(v) {
            let _ = q.validate();
        }
        Ok(())
    });
    eprintln!("entries: {tried} inputs");
}
