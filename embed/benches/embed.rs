//! Embedding throughput of the local all-MiniLM-L6-v2 on this machine's CPU: sentences
//! per second at batch sizes 1, 8 and 32, and passages per second for long documents
//! (split to the model's 254-token window, then embedded 32 at a time).
//!
//! Needs the model (`cargo xtask fetch-model`); prints a note and measures nothing without.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use embed::{default_model_dir, split_passages, Embedder, LocalEmbedder, PassageConfig};

const SENTENCES: [&str; 8] = [
    "The cat sits on the mat near the window.",
    "Quarterly revenue grew by twelve percent compared with last year.",
    "How do I reset my password if I no longer have access to my email?",
    "Postgres uses a write-ahead log to make committed transactions durable.",
    "Rain is expected tomorrow with strong winds along the coast.",
    "The library opens at nine and closes at six on weekdays.",
    "Vector search finds passages whose meaning is close to the question.",
    "A small team builds a storage layer for knowledge bases and agent memory.",
];

fn bench(c: &mut Criterion) {
    let model = match LocalEmbedder::load(default_model_dir()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipping the embedding bench: {e}");
            return;
        }
    };
    let mut g = c.benchmark_group("minilm");
    g.sample_size(10);
    for batch in [1usize, 8, 32] {
        let texts: Vec<String> = (0..batch)
            .map(|i| SENTENCES[i % SENTENCES.len()].to_owned())
            .collect();
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("sentences/batch{batch}"), |b| {
            b.iter(|| model.embed_blocking(&texts).unwrap())
        });
    }
    // A ~2,000-word document: several full-window passages.
    let doc: String = (0..250)
        .map(|i| format!("{} ", SENTENCES[i % SENTENCES.len()]))
        .collect();
    let passages = split_passages(
        &doc,
        PassageConfig::for_window(model.max_input_tokens()),
        &|t| model.count_tokens(t),
    );
    eprintln!("long document: {} passages of ≤ 254 tokens", passages.len());
    g.throughput(Throughput::Elements(passages.len() as u64));
    g.bench_function("passages/long_document_batch32", |b| {
        b.iter(|| {
            for chunk in passages.chunks(32) {
                model.embed_blocking(chunk).unwrap();
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("split/long_document", |b| {
        b.iter(|| {
            split_passages(&doc, PassageConfig::for_window(254), &|t| {
                model.count_tokens(t)
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
