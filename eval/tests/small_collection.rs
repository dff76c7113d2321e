//! The harness end to end on a tiny judged collection written here: loading, the
//! query/document id namespaces, metrics, and the JSON shape.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use std::sync::Arc;

use embed::HashingEmbedder;
use eval::{evaluate, Collection};
use search_hybrid::{SearchConfig, SearchMode};

fn write_collection(dir: &std::path::Path) {
    let docs = [
        (
            "1",
            "Wing flutter",
            "flutter of swept wings at transonic speed",
        ),
        ("2", "Heat transfer", "heat conduction in composite slabs"),
        (
            "3",
            "Boundary layers",
            "laminar boundary layer separation on a flat plate",
        ),
        (
            "4",
            "Slab cooling",
            "transient heat flow through slabs and plates",
        ),
        ("5", "", ""),
    ];
    let corpus: String = docs
        .iter()
        .map(|(id, t, x)| format!("{{\"_id\": \"{id}\", \"title\": \"{t}\", \"text\": \"{x}\"}}\n"))
        .collect();
    std::fs::write(dir.join("corpus.jsonl"), corpus).unwrap();
    // Query "1" is about flutter, and document "1" is its answer: same id, different things.
    std::fs::write(
        dir.join("queries.jsonl"),
        "{\"_id\": \"1\", \"text\": \"WING FLUTTER\"}\n\
         {\"_id\": \"2\", \"text\": \"heat conduction in slabs\"}\n\
         {\"_id\": \"3\", \"text\": \"unjudged query\"}\n\
         {\"_id\": \"4\", \"text\": \"only judged not relevant\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("qrels.tsv"),
        "query-id\tcorpus-id\tscore\n1\t1\t1\n2\t2\t2\n2\t4\t1\n2\t3\t0\n4\t3\t0\n",
    )
    .unwrap();
}

#[tokio::test]
async fn keyword_evaluation_on_a_tiny_collection() {
    let dir = tempfile::tempdir().unwrap();
    write_collection(dir.path());
    let c = Collection::load(dir.path()).unwrap();
    assert_eq!(c.docs.len(), 5);
    assert_eq!(
        c.queries.iter().map(|q| q.0.as_str()).collect::<Vec<_>>(),
        ["1", "2"],
        "only queries with a relevant judgement count"
    );
    let store = Arc::new(
        storage_sqlite::SqliteStore::open(storage_sqlite::SqliteConfig::temporary())
            .await
            .unwrap(),
    );
    let report = evaluate(
        &c,
        store,
        "sqlite",
        Arc::new(HashingEmbedder::new(16)),
        &[SearchMode::Keyword, SearchMode::Hybrid],
        SearchConfig::default(),
        None,
    )
    .await
    .unwrap();
    let kw = report.modes["keyword"];
    assert_eq!(kw.queries, 2);
    // Query 1 finds document 1 first (an upper-case query; ids never clash).
    let q1 = &report.rankings["keyword"]["1"];
    assert_eq!(q1[0], "1");
    // Query 2: doc 2 (gain 2) first and doc 4 (gain 1) found → nDCG 1 when 2 precedes 4
    // and nothing judged relevant is ranked below an irrelevant doc.
    let q2 = &report.rankings["keyword"]["2"];
    assert_eq!(q2[0], "2", "{q2:?}");
    assert!(q2.contains(&"4".to_owned()));
    assert_eq!(kw.recall100, 1.0);
    assert_eq!(kw.mrr10, 1.0);
    assert!(kw.ndcg10 > 0.9, "{kw:?}");
    let json = serde_json::to_value(&report).unwrap();
    for key in ["ndcg@10", "recall@100", "mrr@10", "p50_ms", "queries"] {
        assert!(json["modes"]["keyword"][key].is_number(), "{key}: {json}");
    }
    assert_eq!(
        json["collection"],
        dir.path().file_name().unwrap().to_str().unwrap()
    );
    assert_eq!(json["backend"], "sqlite");
}

#[test]
fn a_broken_collection_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let err = Collection::load(dir.path()).unwrap_err();
    assert!(err.contains("corpus.jsonl"), "{err}");
    write_collection(dir.path());
    std::fs::write(
        dir.path().join("qrels.tsv"),
        "query-id\tcorpus-id\tscore\n1\t1\n",
    )
    .unwrap();
    let err = Collection::load(dir.path()).unwrap_err();
    assert!(err.contains("qrels.tsv:2"), "{err}");
}
