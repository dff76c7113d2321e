//! HNSW recall@10 against exact search, and its latency, over `ef_search` — on the
//! synthetic corpus and on real embeddings (MiniLM vectors of a real collection).

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use storage_core::prelude::*;
use storage_core::{NewEntry, SemanticQuery};
use storage_postgres::{PgConfig, PgStore};

use super::measure::percentile;
use crate::K;

/// The `ef_search` values of the curve.
pub(super) const EF_SEARCH: [u32; 5] = [20, 40, 80, 160, 320];

#[derive(Debug, Clone, Serialize)]
pub struct RecallRow {
    /// `synthetic` or `real` (the name of the collection is in `collection`).
    pub corpus: &'static str,
    pub collection: String,
    pub vectors: usize,
    /// `sqlite` (exact search, the reference) or `postgres` (HNSW).
    pub backend: &'static str,
    pub ef_search: Option<u32>,
    pub recall10: f64,
    pub p50_ms: f64,
}

/// The curve for the vectors already in `sqlite` and `pg` (the same entries in both).
pub(super) async fn curve(
    corpus: &'static str,
    collection: &str,
    vectors: usize,
    sqlite: &Arc<dyn Store>,
    pg: &PgStore,
    url: &str,
    queries: &[Vec<f32>],
) -> Vec<RecallRow> {
    let mut rows = Vec::new();
    let (exact, p50) = timed(sqlite.as_ref(), queries).await;
    rows.push(RecallRow {
        corpus,
        collection: collection.into(),
        vectors,
        backend: "sqlite",
        ef_search: None,
        recall10: 1.0,
        p50_ms: p50,
    });
    for ef in EF_SEARCH {
        let mut config = PgConfig::new(url).schema(pg.schema());
        config.ef_search = ef;
        config.pool_max_size = 2;
        let store = PgStore::open(config)
            .await
            .expect("reopen the bench schema");
        let (got, p50) = timed(&store, queries).await;
        let found: usize = got
            .iter()
            .zip(&exact)
            .map(|(g, want)| g.iter().filter(|id| want.contains(id)).count())
            .sum();
        let recall10 = found as f64 / (K * queries.len()) as f64;
        eprintln!("  recall {collection} ef_search {ef}: {recall10:.3} at p50 {p50:.2} ms");
        rows.push(RecallRow {
            corpus,
            collection: collection.into(),
            vectors,
            backend: "postgres",
            ef_search: Some(ef),
            recall10,
            p50_ms: p50,
        });
    }
    rows
}

/// The top-10 ids of every query, and the median latency (after one warm-up pass).
async fn timed(store: &dyn Store, queries: &[Vec<f32>]) -> (Vec<Vec<String>>, f64) {
    for q in queries.iter().take(10) {
        store
            .semantic_search(&SemanticQuery::new(q.clone(), K))
            .await
            .expect("warm-up semantic search");
    }
    let mut times = Vec::with_capacity(queries.len());
    let mut ids = Vec::with_capacity(queries.len());
    for q in queries {
        let t = Instant::now();
        let hits = store
            .semantic_search(&SemanticQuery::new(q.clone(), K))
            .await
            .expect("semantic search");
        times.push(t.elapsed());
        ids.push(hits.into_iter().map(|h| h.entry.id).collect());
    }
    times.sort();
    (ids, percentile(&times, 0.5))
}

/// A real collection with MiniLM vectors of its documents and queries.
pub(super) struct RealCorpus {
    pub name: String,
    pub entries: Vec<NewEntry>,
    pub vectors: Vec<Vec<f32>>,
    pub queries: Vec<Vec<f32>>,
}

/// Reads `collection` (BEIR layout) under `datasets` and embeds it with the model in
/// `model_dir`, or reads the vectors from `cache` when an earlier run embedded them.
pub(super) async fn real_corpus(
    datasets: &Path,
    collection: &str,
    model_dir: &Path,
    cache: &Path,
) -> Result<RealCorpus, String> {
    let dir = datasets.join(collection);
    let docs = read_jsonl(&dir.join("corpus.jsonl"))?;
    let queries = read_jsonl(&dir.join("queries.jsonl"))?;
    let entries: Vec<NewEntry> = docs
        .iter()
        .map(|d| {
            NewEntry::new("bench", format!("d{}", d.id))
                .title(d.title.clone())
                .body(d.text.clone())
        })
        .collect();
    let file = cache.join(format!("{collection}-minilm-v1.f32"));
    let total = docs.len() + queries.len();
    let vectors = match read_cache(&file, total) {
        Some(v) => v,
        None => {
            let model = embed::LocalEmbedder::load(model_dir)
                .map_err(|e| format!("cannot load the embedding model: {e}"))?;
            let texts: Vec<String> = docs
                .iter()
                .map(|d| format!("{}\n{}", d.title, d.text))
                .chain(queries.iter().map(|q| q.text.clone()))
                .collect();
            let start = Instant::now();
            let mut out = Vec::with_capacity(total);
            for (i, chunk) in texts.chunks(64).enumerate() {
                out.extend(
                    embed::Embedder::embed(&model, chunk)
                        .await
                        .map_err(|e| format!("embedding {collection}: {e}"))?,
                );
                if i % 20 == 0 {
                    eprintln!(
                        "  embedding {collection}: {}/{total} in {:.0} s",
                        out.len(),
                        start.elapsed().as_secs_f64()
                    );
                }
            }
            write_cache(&file, &out)?;
            out
        }
    };
    let mut vectors = vectors;
    let query_vectors = vectors.split_off(docs.len());
    Ok(RealCorpus {
        name: collection.into(),
        entries,
        vectors,
        queries: query_vectors,
    })
}

struct Doc {
    id: String,
    title: String,
    text: String,
}

fn read_jsonl(path: &Path) -> Result<Vec<Doc>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::BufReader::new(f)
        .lines()
        .filter(|l| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .map(|l| {
            let l = l.map_err(|e| format!("{}: {e}", path.display()))?;
            let v: serde_json::Value =
                serde_json::from_str(&l).map_err(|e| format!("{}: {e}", path.display()))?;
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            Ok(Doc {
                id: s("_id"),
                title: s("title"),
                text: s("text"),
            })
        })
        .collect()
}

/// The cache: the vector count and dimension as little-endian u32, then the floats.
fn read_cache(path: &Path, want: usize) -> Option<Vec<Vec<f32>>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .read_to_end(&mut bytes)
        .ok()?;
    let word = |i: usize| u32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap());
    if bytes.len() < 8 || word(0) as usize != want {
        return None;
    }
    let dim = word(1) as usize;
    if bytes.len() != 8 + want * dim * 4 {
        return None;
    }
    let floats: Vec<f32> = bytes[8..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    Some(floats.chunks(dim).map(<[f32]>::to_vec).collect())
}

fn write_cache(path: &Path, vectors: &[Vec<f32>]) -> Result<(), String> {
    let dim = vectors.first().map_or(0, Vec::len);
    let mut bytes = Vec::with_capacity(8 + vectors.len() * dim * 4);
    bytes.extend((vectors.len() as u32).to_le_bytes());
    bytes.extend((dim as u32).to_le_bytes());
    for v in vectors {
        for x in v {
            bytes.extend(x.to_le_bytes());
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}
