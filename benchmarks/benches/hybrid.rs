//! Search-layer latency over 10,000 entries with 384-d vectors, on both backends: the
//! `Searcher` in keyword, semantic and hybrid mode (RRF and convex), against the store
//! calls it makes. The query vector comes from the corpus (a fixed embedder), so this
//! measures search and fusion, not the model; `cargo bench -p embed` measures the model.
//!
//! Run with `cargo xtask bench hybrid` (provisions Postgres unless `KB_BENCH_PG_URL` is set).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use conformance::corpus::{Corpus, DIMENSION};
use criterion::{criterion_group, criterion_main, Criterion};
use embed::Embedder;
use search_hybrid::{Fusion, SearchConfig, SearchMode, SearchRequest, Searcher};
use storage_core::*;
use storage_postgres::{PgConfig, PgStore};
use storage_sqlite::{SqliteConfig, SqliteStore};

const ENTRIES: usize = 10_000;
const BATCH: usize = 1_000;

/// Returns one corpus query vector for every text.
#[derive(Debug)]
struct CorpusQuery(Vec<f32>);

#[async_trait]
impl Embedder for CorpusQuery {
    fn model_id(&self) -> &str {
        "bench"
    }
    fn dimension(&self) -> usize {
        DIMENSION
    }
    fn max_input_tokens(&self) -> usize {
        256
    }
    async fn embed(&self, texts: &[String]) -> embed::Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|_| self.0.clone()).collect())
    }
}

async fn load(store: &dyn Store, corpus: &Corpus) {
    store
        .create_kb(&NewKnowledgeBase::persistent("bench"))
        .await
        .unwrap();
    store
        .ensure_embedding_space(&EmbeddingSpace::new("bench", DIMENSION))
        .await
        .unwrap();
    let entries = corpus.entries("bench", ENTRIES);
    for (b, chunk) in entries.chunks(BATCH).enumerate() {
        store.upsert_entries(chunk).await.unwrap();
        let items: Vec<(EntryKey, Vec<f32>)> = chunk
            .iter()
            .enumerate()
            .map(|(i, e)| (e.key(), corpus.vector(b * BATCH + i)))
            .collect();
        store.put_vectors(&items).await.unwrap();
    }
    // What autovacuum does shortly after a load: planner statistics for the new rows.
    store.optimize().await.unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let corpus = Corpus::new(42);
    // Two frequent-ish words: a few hundred matches, like a real two-word query.
    let query = format!("{} OR {}", corpus.word(30), corpus.word(31));
    let embedder: Arc<dyn Embedder> = Arc::new(CorpusQuery(corpus.query_vector(7, 1)));
    let sqlite: Arc<dyn Store> = Arc::new(
        rt.block_on(async { SqliteStore::open(SqliteConfig::temporary()).await.unwrap() }),
    );
    rt.block_on(load(sqlite.as_ref(), &corpus));
    let mut backends = vec![("sqlite", sqlite)];
    match std::env::var("KB_BENCH_PG_URL") {
        Ok(url) if !url.is_empty() => {
            let pg: Arc<dyn Store> = Arc::new(rt.block_on(async {
                let mut c = PgConfig::new(url);
                c.statement_timeout = Duration::from_secs(600);
                PgStore::open_for_test_with(c).await.unwrap()
            }));
            rt.block_on(load(pg.as_ref(), &corpus));
            backends.push(("postgres", pg));
        }
        _ => {
            eprintln!("KB_BENCH_PG_URL not set: SQLite only (`cargo xtask bench hybrid` runs both)")
        }
    }
    let mut g = c.benchmark_group("hybrid_10k");
    g.sample_size(30);
    for (name, store) in &backends {
        let cases = [
            ("keyword", SearchMode::Keyword, Fusion::default()),
            ("semantic", SearchMode::Semantic, Fusion::default()),
            ("hybrid_rrf", SearchMode::Hybrid, Fusion::default()),
            ("hybrid_convex", SearchMode::Hybrid, Fusion::Convex),
        ];
        for (case, mode, fusion) in cases {
            let searcher = rt
                .block_on(Searcher::new(
                    store.clone(),
                    embedder.clone(),
                    SearchConfig {
                        fusion,
                        ..Default::default()
                    },
                ))
                .unwrap();
            let req = SearchRequest::new(query.clone(), mode).filter(Filter::new().limit(10));
            let n = rt.block_on(searcher.search(&req)).unwrap().hits.len();
            assert_eq!(n, 10, "{name}/{case} returns a full page");
            g.bench_function(format!("{name}/{case}"), |b| {
                b.to_async(&rt).iter(|| searcher.search(&req))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
