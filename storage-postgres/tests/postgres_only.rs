//! Postgres-only behaviour: index use (EXPLAIN), error messages for an unreachable
//! server or missing extension, pool exhaustion, filtered HNSW returning k rows, upgrades
//! of a populated schema.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use std::time::Duration;

use benchmarks::Corpus;
use serde_json::Value;
use storage_core::*;
use storage_postgres::{PgConfig, PgStore};

fn test_url() -> String {
    storage_postgres::require_test_url()
}

/// The plan of a keyword search for a page of 10, and the indexes it uses.
async fn keyword_plan(store: &PgStore, query: &str) -> (Value, Vec<String>) {
    let plan = store
        .explain_search(query, &Filter::new().limit(10))
        .await
        .unwrap();
    let mut names = Vec::new();
    index_names(&plan, &mut names);
    (plan, names)
}

/// Every index name appearing anywhere in an EXPLAIN (FORMAT JSON) plan.
fn index_names(plan: &Value, out: &mut Vec<String>) {
    match plan {
        Value::Object(m) => {
            if let Some(Value::String(n)) = m.get("Index Name") {
                out.push(n.clone());
            }
            m.values().for_each(|v| index_names(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| index_names(v, out)),
        _ => {}
    }
}

/// Tables read by a sequential scan anywhere in a plan.
fn seq_scans(plan: &Value, out: &mut Vec<String>) {
    match plan {
        Value::Object(m) => {
            if m.get("Node Type") == Some(&Value::String("Seq Scan".into())) {
                if let Some(Value::String(n)) = m.get("Relation Name") {
                    out.push(n.clone());
                }
            }
            m.values().for_each(|v| seq_scans(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| seq_scans(v, out)),
        _ => {}
    }
}

async fn loaded(n: usize, dim: usize, ef_search: u32) -> PgStore {
    let mut config = PgConfig::new(test_url());
    config.ef_search = ef_search;
    let store = PgStore::open_for_test_with(config).await.expect("open");
    store
        .create_kb(&NewKnowledgeBase::persistent("bench"))
        .await
        .unwrap();
    store
        .ensure_embedding_space(&EmbeddingSpace::new("corpus", dim))
        .await
        .unwrap();
    let corpus = Corpus::new(7);
    let entries = corpus.entries("bench", n);
    for chunk in entries.chunks(1000) {
        store.upsert_entries(chunk).await.unwrap();
    }
    let vectors: Vec<(EntryKey, Vec<f32>)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.key(), corpus.vector(i)[..dim].to_vec()))
        .collect();
    for chunk in vectors.chunks(1000) {
        store.put_vectors(chunk).await.unwrap();
    }
    // What autovacuum does shortly after a load: flush the GIN pending list and give the
    // planner real statistics. (VACUUM cannot share a transaction, hence two calls.)
    let (client, conn) = tokio_postgres::connect(&test_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for table in ["entries", "vectors"] {
        client
            .batch_execute(&format!("VACUUM ANALYZE {}.{table}", store.schema()))
            .await
            .unwrap();
    }

    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyword_and_semantic_queries_use_their_indexes() {
    // pgvector's cost model grows with ef_search: at 3,000 rows the planner (rightly)
    // prefers an exact scan at ef_search 100 and the index at 40. Bigger tables use the
    // index at any setting.
    let store = loaded(3000, 384, 40).await;
    let corpus = Corpus::new(7);
    // Every keyword query reads its terms' blocks by the primary key and checks its
    // best candidates by the doc index; none scans the entries.
    let and = format!("{} {}", corpus.word(300), corpus.word(400));
    let phrase = format!("\"{} {}\"", corpus.word(300), corpus.word(400));
    let prefix = format!("{}*", &corpus.word(300)[..3]);
    for q in [corpus.word(1700), &and, &phrase, &prefix] {
        let (plan, names) = keyword_plan(&store, q).await;
        assert!(
            names.iter().any(|n| n == "term_blocks_pkey")
                && names.iter().any(|n| n == "entries_doc"),
            "{q:?}: the plan does not read blocks and docs by index: {plan}"
        );
        let mut scans = Vec::new();
        seq_scans(&plan, &mut scans);
        assert!(
            !scans.iter().any(|t| t == "entries" || t == "term_blocks"),
            "{q:?}: the plan scans a table: {plan}"
        );
    }

    let q = SemanticQuery::new(corpus.query_vector(3, 1), 10)
        .filter(Filter::new().lifecycle(LifecycleFilter::Any));
    let plan = store.explain_semantic(&q).await.unwrap();
    let mut names = Vec::new();
    index_names(&plan, &mut names);
    assert!(
        names.iter().any(|n| n == "vectors_hnsw"),
        "semantic plan does not use the HNSW index: {plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_filter_on_a_large_table_still_returns_k() {
    // ef_search 40 so the planner takes the HNSW index and the filter hits its limits.
    let store = loaded(3000, 64, 40).await;
    let corpus = Corpus::new(7);
    // ~1% selectivity: one tag out of 200, on entries mostly far from the query.
    let entries = store.list_entries(&Filter::new().limit(1)).await.unwrap();
    let tag = entries[0].tags[0].clone();
    let matching = store
        .count_entries(&Filter::new().tag(tag.clone()))
        .await
        .unwrap() as usize;
    assert!(matching >= 10, "{matching}");
    let q = SemanticQuery::new(corpus.query_vector(50, 9)[..64].to_vec(), 10)
        .filter(Filter::new().tag(tag));
    let hits = store.semantic_search(&q).await.unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
}

#[tokio::test]
async fn unreachable_server_is_unavailable_with_host_and_port() {
    // Port 1 on loopback: nothing listens there.
    let mut config = PgConfig::new("postgres://kb:secret@127.0.0.1:1/kb");
    config.connection_timeout = Duration::from_secs(3);
    let err = PgStore::open(config).await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("could not connect to Postgres at 127.0.0.1:1"),
        "{msg}"
    );
    assert!(msg.contains("is it running?"), "{msg}");
    assert!(!msg.contains("secret"), "{msg}");
}

#[tokio::test]
async fn malformed_url_is_invalid_input_without_the_password() {
    let err = PgStore::open(PgConfig::new("postgres://kb:hunter2@host:notaport/db"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"));
}

#[tokio::test]
async fn bad_schema_or_text_search_config_is_rejected() {
    let err = PgStore::open(PgConfig::new(test_url()).schema("Bad-Name"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }), "{err:?}");
    let mut c = PgConfig::new(test_url()).schema("kb_test_badcfg");
    c.text_search_config = "klingon".into();
    let err = PgStore::open(c).await.unwrap_err();
    assert!(err.to_string().contains("klingon"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_times_out_instead_of_hanging() {
    let schema = format!("kb_test_pool_{}", std::process::id());
    let mut c = PgConfig::new(test_url()).schema(schema.clone());
    c.pool_max_size = 1;
    c.connection_timeout = Duration::from_millis(300);
    let store = PgStore::open(c).await.unwrap();
    // Another session locks `entries`, so a count holds the pool's only connection.
    let (client, conn) = tokio_postgres::connect(&test_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {schema}.entries IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .unwrap();
    let holder = {
        let s = store.clone();
        tokio::spawn(async move { s.count_entries(&Filter::new()).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = std::time::Instant::now();
    let err = store.list_kbs().await.unwrap_err();
    assert!(matches!(err, StorageError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(5));
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(holder.await.unwrap().unwrap(), 0);
    assert!(store.list_kbs().await.unwrap().is_empty());
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn two_stores_opening_one_schema_at_once_both_migrate_cleanly() {
    let schema = format!("kb_test_race_{}", std::process::id());
    let a = PgStore::open(PgConfig::new(test_url()).schema(schema.clone()));
    let b = PgStore::open(PgConfig::new(test_url()).schema(schema.clone()));
    let (a, b) = tokio::join!(a, b);
    let (a, b) = (a.unwrap(), b.unwrap());
    a.create_kb(&NewKnowledgeBase::persistent("x"))
        .await
        .unwrap();
    assert!(b.get_kb("x").await.unwrap().is_some());
    assert_eq!(
        a.health().await.unwrap().schema_version,
        b.health().await.unwrap().schema_version
    );
    let (client, conn) = tokio_postgres::connect(&test_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// A store written by version 5 (postings per term and entry, a generated tsvector, a
/// GIN index) is converted by migration 6 to blocks: its entries score as the same
/// entries written by this version, and edits and deletes after the upgrade keep the
/// frequencies right.
#[tokio::test]
async fn upgrading_a_version_5_store_converts_its_postings_to_blocks() {
    let entries: Vec<NewEntry> = (0..30)
        .map(|i| {
            let body = if i % 3 == 0 {
                "apple pie"
            } else {
                "plain bread"
            };
            NewEntry::new("k", format!("e{i}"))
                .title(format!("t{i} apples"))
                .tags(["fruit/red"])
                .body(body)
        })
        .collect();
    let fresh = PgStore::open_for_test(&test_url()).await.unwrap();
    fresh
        .create_kb(&NewKnowledgeBase::persistent("k"))
        .await
        .unwrap();
    fresh.upsert_entries(&entries).await.unwrap();

    let (mut client, conn) = tokio_postgres::connect(&test_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let schema = format!("kb_test_v5_{}", std::process::id());
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
    storage_postgres::create_schema_at_version(&mut client, &schema, 5)
        .await
        .unwrap();
    // What version 5 wrote for these entries (its triggers fill postings and counts).
    client
        .batch_execute(&format!(
            "SET search_path = {schema}, public;
             INSERT INTO kbs VALUES ('k', '', NULL, now());
             INSERT INTO entries (kb, id, entry_type, title, summary, body, tags_text, tags, links,
                 sources, metadata, importance, lifecycle, created_at, updated_at, content_hash,
                 text_hash)
             SELECT 'k', 'e' || i, 'note', 't' || i || ' apples', '',
                 CASE WHEN i % 3 = 0 THEN 'apple pie' ELSE 'plain bread' END, 'fruit/red',
                 '[\"fruit/red\"]', '[]', '[]', '{{}}', 0, 'active', now(), now(), '', ''
             FROM generate_series(0, 29) i;
             RESET search_path;"
        ))
        .await
        .unwrap();
    let upgraded = PgStore::open(PgConfig::new(test_url()).schema(&schema))
        .await
        .unwrap();
    assert_eq!(
        upgraded.health().await.unwrap().schema_version,
        storage_postgres::SCHEMA_VERSION
    );
    let scores = |h: Vec<SearchHit>| -> Vec<(String, f64)> {
        h.into_iter().map(|h| (h.entry.id, h.score)).collect()
    };
    for q in [
        "apple OR bread",
        "apple",
        "\"plain bread\"",
        "fruit",
        "appl*",
    ] {
        let before = scores(fresh.search(q, &Filter::new()).await.unwrap());
        let after = scores(upgraded.search(q, &Filter::new()).await.unwrap());
        assert!(!before.is_empty(), "{q}");
        assert_eq!(after, before, "{q}");
    }
    // Edits and deletes after the upgrade take the converted postings out.
    let edit = [NewEntry::new("k", "e0").title("t0").body("plain bread")];
    for store in [&fresh, &upgraded] {
        store.upsert_entries(&edit).await.unwrap();
        store.delete_entry(&EntryKey::new("k", "e1")).await.unwrap();
    }
    for q in ["apple OR bread", "pie"] {
        let before = scores(fresh.search(q, &Filter::new()).await.unwrap());
        let after = scores(upgraded.search(q, &Filter::new()).await.unwrap());
        assert_eq!(after, before, "{q}");
    }
    drop(upgraded);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// A store written before CJK characters became tokens of their own (schema version 6,
/// where `東京` inside a sentence was part of one long token) is re-analysed by the
/// upgrade: the word is found, and every score equals a store written by this build.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgrading_a_version_6_store_reanalyses_its_cjk_entries() {
    let entries = [
        NewEntry::new("k", "ja")
            .title("日記 notes")
            .body("私は東京に住んでいます"),
        NewEntry::new("k", "en")
            .title("notes")
            .body("plain english notes"),
    ];
    let fresh = PgStore::open_for_test(&test_url()).await.unwrap();
    let schema = format!("kb_test_v6_{}", std::process::id());
    let old = PgStore::open(PgConfig::new(test_url()).schema(&schema))
        .await
        .unwrap();
    for store in [&fresh, &old] {
        store
            .create_kb(&NewKnowledgeBase::persistent("k"))
            .await
            .unwrap();
        store.upsert_entries(&entries).await.unwrap();
    }
    let written = old
        .get_entry(&EntryKey::new("k", "ja"))
        .await
        .unwrap()
        .unwrap();
    drop(old);
    let (client, conn) = tokio_postgres::connect(&test_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // What version 6 kept for the Japanese entry: the run of kana and kanji as one
    // token, the corpus totals and frequencies moved by the triggers and the blocks.
    client
        .batch_execute(&format!(
            "SET search_path = {schema}, public;
             UPDATE entries SET doc = nextval('entry_docs'), terms = NULL, doc_len = 3,
                 tsv = '日記:1A note:2A 私は東京に住んでいます:4'::tsvector WHERE id = 'ja';
             INSERT INTO term_blocks (term, n, docs, tfs, dls)
                 SELECT t, 1, ARRAY[(SELECT doc FROM entries WHERE id = 'ja')], ARRAY[tf], ARRAY[3]
                 FROM (VALUES ('日記', 2::real), ('note', 2), ('私は東京に住んでいます', 1)) v(t, tf);
             ALTER TABLE embed_queue DROP COLUMN lease;
             DROP SEQUENCE embed_leases;
             DELETE FROM schema_version WHERE version >= 7;
             RESET search_path;"
        ))
        .await
        .unwrap();
    let upgraded = PgStore::open(PgConfig::new(test_url()).schema(&schema))
        .await
        .unwrap();
    assert_eq!(
        upgraded.health().await.unwrap().schema_version,
        storage_postgres::SCHEMA_VERSION
    );
    let scores = |h: Vec<SearchHit>| -> Vec<(String, f64)> {
        h.into_iter().map(|h| (h.entry.id, h.score)).collect()
    };
    for q in ["東京", "住んで", "notes", "日記 OR english", "\"私は東京\""] {
        let before = scores(fresh.search(q, &Filter::new()).await.unwrap());
        let after = scores(upgraded.search(q, &Filter::new()).await.unwrap());
        assert!(!before.is_empty(), "{q}");
        assert_eq!(after, before, "{q}");
    }
    // Re-analysis is invisible to readers: the entry is as it was written.
    let after = upgraded
        .get_entry(&EntryKey::new("k", "ja"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after, written);
    drop(upgraded);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// Two writers upserting the same keys in opposite orders, many times: rows are locked in
/// key order, so neither deadlocks (before, Postgres aborted one with 40P01).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_with_the_same_keys_in_opposite_orders_never_deadlock() {
    let store = std::sync::Arc::new(PgStore::open_for_test(&test_url()).await.unwrap());
    store
        .create_kb(&NewKnowledgeBase::persistent("dl"))
        .await
        .unwrap();
    let keys: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
    let mut tasks = Vec::new();
    for reverse in [false, true] {
        let store = store.clone();
        let mut keys = keys.clone();
        if reverse {
            keys.reverse();
        }
        tasks.push(tokio::spawn(async move {
            for round in 0..40 {
                let batch: Vec<NewEntry> = keys
                    .iter()
                    .map(|k| {
                        NewEntry::new("dl", k)
                            .title(format!("{k} round {round} {reverse}"))
                            .body("shared words here")
                    })
                    .collect();
                store.upsert_entries(&batch).await?;
            }
            Ok::<_, StorageError>(())
        }));
    }
    for t in tasks {
        t.await
            .unwrap()
            .expect("no deadlock between opposite-order batches");
    }
}

/// A database in the C locale cannot classify non-ASCII letters; text is analysed in the
/// client, so words with accents, Cyrillic, Greek and CJK are found there as in any
/// other database (before, `Crème brûlée Дом` was indexed as `Cr me br l e`).
#[tokio::test]
async fn a_database_in_the_c_locale_finds_words_of_every_script() {
    let url = test_url();
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let db = format!("kb_c_locale_{}", std::process::id());
    // One statement per call: a multi-statement string runs as one transaction, and
    // CREATE/DROP DATABASE refuse to run inside one.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {db} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
        ))
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    let store = PgStore::open(PgConfig::new(format!("{base}/{db}")))
        .await
        .unwrap();
    store
        .create_kb(&NewKnowledgeBase::persistent("k"))
        .await
        .unwrap();
    store
        .upsert_entries(&[NewEntry::new("k", "e")
            .title("Crème brûlée")
            .body("Дом ΣΟΦΙΑ 東京 naïve")])
        .await
        .unwrap();
    let mut found = Vec::new();
    for q in [
        "creme",
        "BRÛLÉE",
        "дом",
        "σοφια",
        "東京",
        "naive",
        "\"creme brulee\"",
        "до*",
        "дон*",
    ] {
        let hits = store.search(q, &Filter::new()).await.unwrap();
        found.push((q, hits.len()));
    }
    drop(store);
    admin
        // FORCE: the store's pool may still be closing its connections.
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
    assert_eq!(
        found,
        [
            ("creme", 1),
            ("BRÛLÉE", 1),
            ("дом", 1),
            ("σοφια", 1),
            ("東京", 1),
            ("naive", 1),
            ("\"creme brulee\"", 1),
            ("до*", 1),
            ("дон*", 0),
        ]
    );
}

/// Concurrent single-entry upserts are written together (entries/combine.rs); each
/// writer still gets its own entry back, and an error reaches only the writer that
/// caused it: the notes for a KB that does not exist fail, the others in the same
/// moment are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_single_upserts_each_get_their_own_result() {
    let store = std::sync::Arc::new(PgStore::open_for_test(&test_url()).await.unwrap());
    store
        .create_kb(&NewKnowledgeBase::persistent("notes"))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..96)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let kb = if i % 8 == 0 { "missing" } else { "notes" };
                let e = NewEntry::new(kb, format!("n{i}"))
                    .title(format!("note {i}"))
                    .body(format!("shared words and word{i}"));
                (i, store.upsert_entry(&e).await)
            })
        })
        .collect();
    for t in tasks {
        let (i, r) = t.await.unwrap();
        if i % 8 == 0 {
            assert!(
                matches!(r, Err(StorageError::NotFound { .. })),
                "note {i}: {r:?}"
            );
        } else {
            let e = r.unwrap_or_else(|e| panic!("note {i}: {e}"));
            assert_eq!(
                (e.id.as_str(), e.title.as_str()),
                (&*format!("n{i}"), &*format!("note {i}"))
            );
        }
    }
    let hits = store
        .search("shared", &Filter::new().kb("notes").limit(200))
        .await
        .unwrap();
    assert_eq!(hits.len(), 84, "every note of the existing KB, searchable");
}

/// A writer that gives up (its future dropped while its note waits) strands nobody:
/// the notes queued with it are still written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_single_upsert_strands_no_other_writer() {
    let store = std::sync::Arc::new(PgStore::open_for_test(&test_url()).await.unwrap());
    store
        .create_kb(&NewKnowledgeBase::persistent("notes"))
        .await
        .unwrap();
    for round in 0..20 {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let e = NewEntry::new("notes", format!("r{round}-{i}")).body("words");
                    store.upsert_entry(&e).await
                })
            })
            .collect();
        // Every other writer gives up at once.
        for (i, t) in tasks.into_iter().enumerate() {
            if i % 2 == 0 {
                t.abort();
            } else {
                tokio::time::timeout(Duration::from_secs(30), t)
                    .await
                    .expect("a writer was stranded")
                    .unwrap()
                    .unwrap();
            }
        }
    }
}
