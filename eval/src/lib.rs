//! Retrieval evaluation on judged collections in the BEIR layout: `corpus.jsonl`
//! (`_id`, `title`, `text`), `queries.jsonl` (`_id`, `text`), `qrels.tsv` (header
//! `query-id  corpus-id  score`; score > 0 = relevant, graded).
//!
//! [`evaluate`] imports a collection into a fresh store, embeds it when a semantic mode
//! is asked for, runs every judged query through the [`Searcher`] in each mode and
//! reports nDCG@10, Recall@100, MRR@10 ([`metrics`], trec_eval's definitions) and p50
//! latency. Query ids and document ids are separate namespaces: a document is never
//! dropped because its id equals the query's.

pub mod metrics;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use embed::{EmbedWorker, Embedder, WorkerConfig};
use search_hybrid::{SearchConfig, SearchMode, SearchRequest, Searcher};
use serde::Serialize;
use storage_core::{Filter, NewEntry, NewKnowledgeBase, Store};

use crate::metrics::Judgements;

const KB: &str = "eval";

#[derive(Debug, Clone)]
pub struct Doc {
    pub id: String,
    pub title: String,
    pub text: String,
}

/// A judged collection.
#[derive(Debug, Clone)]
pub struct Collection {
    pub name: String,
    pub docs: Vec<Doc>,
    /// Judged queries only (at least one judgement > 0), in file order.
    pub queries: Vec<(String, String)>,
    pub qrels: HashMap<String, Judgements>,
}

fn read_jsonl(path: &Path) -> Result<Vec<serde_json::Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("could not read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{}:{}: not JSON: {e}", path.display(), i + 1))
        })
        .collect()
}

fn field(v: &serde_json::Value, name: &str, path: &Path) -> Result<String, String> {
    match &v[name] {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Null if name != "_id" => Ok(String::new()),
        _ => Err(format!(
            "{}: a record has no string {name:?}",
            path.display()
        )),
    }
}

impl Collection {
    pub fn load(dir: &Path) -> Result<Self, String> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "collection".into());
        let corpus = dir.join("corpus.jsonl");
        let docs = read_jsonl(&corpus)?
            .iter()
            .map(|v| {
                Ok(Doc {
                    id: field(v, "_id", &corpus)?,
                    title: field(v, "title", &corpus)?,
                    text: field(v, "text", &corpus)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let qpath = dir.join("qrels.tsv");
        let qtext = std::fs::read_to_string(&qpath)
            .map_err(|e| format!("could not read {}: {e}", qpath.display()))?;
        let mut qrels: HashMap<String, Judgements> = HashMap::new();
        for (i, line) in qtext.lines().enumerate() {
            let cols: Vec<&str> = line.split('\t').collect();
            if i == 0 && cols.first() == Some(&"query-id") {
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            let [q, d, s] = cols[..] else {
                return Err(format!(
                    "{}:{}: expected 3 tab-separated columns",
                    qpath.display(),
                    i + 1
                ));
            };
            let score: i32 = s.trim().parse().map_err(|_| {
                format!(
                    "{}:{}: score {s:?} is not an integer",
                    qpath.display(),
                    i + 1
                )
            })?;
            qrels
                .entry(q.to_owned())
                .or_default()
                .insert(d.to_owned(), score);
        }
        let qfile = dir.join("queries.jsonl");
        let queries = read_jsonl(&qfile)?
            .iter()
            .map(|v| Ok((field(v, "_id", &qfile)?, field(v, "text", &qfile)?)))
            .collect::<Result<Vec<_>, String>>()?
            .into_iter()
            .filter(|(id, _)| qrels.get(id).is_some_and(|j| j.values().any(|&g| g > 0)))
            .collect();
        Ok(Self {
            name,
            docs,
            queries,
            qrels,
        })
    }
}

/// One mode's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ModeReport {
    #[serde(rename = "ndcg@10")]
    pub ndcg10: f64,
    #[serde(rename = "recall@100")]
    pub recall100: f64,
    #[serde(rename = "mrr@10")]
    pub mrr10: f64,
    pub p50_ms: f64,
    pub queries: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub collection: String,
    pub backend: String,
    pub modes: BTreeMap<String, ModeReport>,
    /// Top-100 document ids per mode and query id (for comparing backends).
    #[serde(skip)]
    pub rankings: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

pub fn mode_name(m: SearchMode) -> &'static str {
    match m {
        SearchMode::Keyword => "keyword",
        SearchMode::Semantic => "semantic",
        SearchMode::Hybrid => "hybrid",
    }
}

/// Imports `collection` into `store` (which must be empty), embeds it with `embedder`
/// when a mode needs vectors — or copies the passages from `vectors_from`, a store the
/// same collection was already embedded into with the same embedder — and evaluates
/// every mode.
pub async fn evaluate(
    collection: &Collection,
    store: Arc<dyn Store>,
    backend: &str,
    embedder: Arc<dyn Embedder>,
    modes: &[SearchMode],
    config: SearchConfig,
    vectors_from: Option<Arc<dyn Store>>,
) -> Result<Report, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    store
        .create_kb(&NewKnowledgeBase::persistent(KB))
        .await
        .map_err(|e| err(&e))?;
    let t = Instant::now();
    let entries: Vec<NewEntry> = collection
        .docs
        .iter()
        .map(|d| NewEntry::new(KB, &d.id).title(&d.title).body(&d.text))
        .collect();
    for chunk in entries.chunks(1000) {
        store.upsert_entries(chunk).await.map_err(|e| err(&e))?;
    }
    eprintln!(
        "imported {} documents in {:.1}s",
        entries.len(),
        t.elapsed().as_secs_f64()
    );
    if let (true, Some(src)) = (
        modes.iter().any(|m| *m != SearchMode::Keyword),
        &vectors_from,
    ) {
        let t = Instant::now();
        store
            .ensure_embedding_space(&embedder.space())
            .await
            .map_err(|e| err(&e))?;
        let mut copied = 0;
        for chunk in entries.chunks(500) {
            let mut batch = Vec::new();
            for e in chunk {
                let key = e.key();
                let passages = src.get_passages(&key).await.map_err(|e| err(&e))?;
                if !passages.is_empty() {
                    batch.push(storage_core::EntryPassages {
                        key,
                        passages: passages
                            .into_iter()
                            .map(|p| storage_core::PassageVector {
                                text: p.text,
                                vector: p.vector,
                            })
                            .collect(),
                    });
                }
            }
            copied += batch.len();
            store.put_passages(&batch).await.map_err(|e| err(&e))?;
        }
        eprintln!(
            "copied the passages of {copied} documents from the first backend in {:.1}s",
            t.elapsed().as_secs_f64()
        );
    } else if modes.iter().any(|m| *m != SearchMode::Keyword) {
        let t = Instant::now();
        let worker = EmbedWorker::new(
            store.clone(),
            embedder.clone(),
            WorkerConfig {
                batch_size: 64,
                ..WorkerConfig::default()
            },
        )
        .await
        .map_err(|e| err(&e))?;
        let stats = worker.drain().await.map_err(|e| err(&e))?;
        eprintln!(
            "embedded {} documents ({} passages) with {} in {:.1}s",
            stats.embedded,
            stats.passages,
            embedder.model_id(),
            t.elapsed().as_secs_f64()
        );
    }
    // What autovacuum would do shortly after a bulk load; measured latencies are then
    // those of a settled store, not of the first minute after an import.
    store.optimize().await.map_err(|e| err(&e))?;
    let searcher = Searcher::new(store.clone(), embedder, config)
        .await
        .map_err(|e| err(&e))?;
    let mut report = Report {
        collection: collection.name.clone(),
        backend: backend.to_owned(),
        modes: BTreeMap::new(),
        rankings: BTreeMap::new(),
    };
    for &mode in modes {
        let (mut ndcg, mut recall, mut mrr) = (0.0, 0.0, 0.0);
        let mut latencies = Vec::with_capacity(collection.queries.len());
        let mut rankings = BTreeMap::new();
        for (qid, text) in &collection.queries {
            let req = SearchRequest::new(text.clone(), mode)
                .filter(Filter::new().limit(100))
                .any_words();
            let t = Instant::now();
            let res = searcher.search(&req).await.map_err(|e| err(&e))?;
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            let ranking: Vec<String> = res.hits.into_iter().map(|h| h.entry.id).collect();
            let judged = &collection.qrels[qid];
            ndcg += metrics::ndcg_at(&ranking, judged, 10);
            recall += metrics::recall_at(&ranking, judged, 100);
            mrr += metrics::mrr_at(&ranking, judged, 10);
            rankings.insert(qid.clone(), ranking);
        }
        let n = collection.queries.len().max(1) as f64;
        report.modes.insert(
            mode_name(mode).to_owned(),
            ModeReport {
                ndcg10: ndcg / n,
                recall100: recall / n,
                mrr10: mrr / n,
                p50_ms: metrics::p50(&mut latencies),
                queries: collection.queries.len(),
            },
        );
        report.rankings.insert(mode_name(mode).to_owned(), rankings);
    }
    Ok(report)
}

impl Report {
    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} on {}\n{:<9} {:>8} {:>10} {:>7} {:>8} {:>8}\n",
            self.collection,
            self.backend,
            "mode",
            "nDCG@10",
            "Recall@100",
            "MRR@10",
            "p50 ms",
            "queries"
        );
        for (mode, r) in &self.modes {
            out.push_str(&format!(
                "{mode:<9} {:>8.4} {:>10.4} {:>7.4} {:>8.2} {:>8}\n",
                r.ndcg10, r.recall100, r.mrr10, r.p50_ms, r.queries
            ));
        }
        out
    }
}

/// Mean top-10 overlap per mode between two reports of the same collection.
pub fn top10_overlap(a: &Report, b: &Report) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (mode, ra) in &a.rankings {
        let Some(rb) = b.rankings.get(mode) else {
            continue;
        };
        let n = ra.len().max(1) as f64;
        let sum: f64 = ra
            .iter()
            .map(|(q, x)| rb.get(q).map_or(0.0, |y| metrics::overlap_at(x, y, 10)))
            .sum();
        out.insert(mode.clone(), sum / n);
    }
    out
}
