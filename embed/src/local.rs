//! all-MiniLM-L6-v2 on the CPU with candle: the sentence-transformers recipe (BERT, mean
//! pooling over the attention mask, L2 normalisation), offline from a model directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::{check_output, EmbedError, Embedder, Result};

/// The model id stored in the embedding space for this model.
pub const MINILM_MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The files a model directory must hold.
const REQUIRED_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// Sentence-transformers' `max_seq_length` for this model when the directory has no
/// `sentence_bert_config.json` (the model's positions go to 512, it was trained on 256).
const DEFAULT_MAX_SEQ_LENGTH: usize = 256;

/// A local BERT sentence-embedding model (all-MiniLM-L6-v2 and its relatives).
#[derive(Clone)]
pub struct LocalEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    model: BertModel,
    tokenizer: Tokenizer,
    model_id: String,
    dimension: usize,
    /// Including `[CLS]` and `[SEP]`.
    max_seq_length: usize,
    dir: PathBuf,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("model_id", &self.inner.model_id)
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl LocalEmbedder {
    /// Loads the model from `dir` (blocking: reads ~90 MB). `ModelMissing` names the
    /// command that installs it when a file is absent.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_as(dir, MINILM_MODEL_ID)
    }

    /// Loads a BERT-family sentence-transformers model under another model id.
    pub fn load_as(dir: impl AsRef<Path>, model_id: &str) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if REQUIRED_FILES.iter().any(|f| !dir.join(f).is_file()) {
            return Err(EmbedError::ModelMissing { dir });
        }
        let fail = |what: &str, e: Box<dyn std::error::Error + Send + Sync>| EmbedError::Model {
            model: model_id.to_owned(),
            message: format!("{what} in {}", dir.display()),
            source: Some(e),
        };
        let config: BertConfig = serde_json::from_str(
            &std::fs::read_to_string(dir.join("config.json"))
                .map_err(|e| fail("could not read config.json", e.into()))?,
        )
        .map_err(|e| fail("config.json is not a BERT configuration", e.into()))?;
        let max_seq_length = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v.get("max_seq_length")?.as_u64())
            .map_or(DEFAULT_MAX_SEQ_LENGTH, |n| n as usize)
            .min(config.max_position_embeddings);
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| fail("could not load tokenizer.json", e))?;
        // As sentence-transformers calls it: truncate to max_seq_length, pad to the
        // longest input of the batch (the file's own settings pad everything to 128).
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                ..Default::default()
            }))
            .map_err(|e| fail("bad truncation settings", e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        let device = Device::Cpu;
        // SAFETY: the weights file is memory-mapped read-only; like every mmap it must not
        // be modified while loaded, which `cargo xtask fetch-model` never does in place.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[dir.join("model.safetensors")],
                DType::F32,
                &device,
            )
        }
        .map_err(|e| fail("could not read model.safetensors", e.into()))?;
        let model = BertModel::load(vb, &config)
            .map_err(|e| fail("model.safetensors does not match config.json", e.into()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                model_id: model_id.to_owned(),
                dimension: config.hidden_size,
                max_seq_length,
                dir,
            }),
        })
    }

    /// Embeds a batch on the calling thread (CPU-bound: call from `spawn_blocking`).
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        let fail = |what: &str, e: Box<dyn std::error::Error + Send + Sync>| EmbedError::Model {
            model: inner.model_id.clone(),
            message: what.to_owned(),
            source: Some(e),
        };
        let encodings = inner
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| fail("tokenisation failed", e))?;
        let rows = encodings.len();
        let len = encodings[0].get_ids().len();
        let mut ids = Vec::with_capacity(rows * len);
        let mut mask = Vec::with_capacity(rows * len);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let device = &inner.model.device;
            let ids = Tensor::from_vec(ids, (rows, len), device)?;
            let mask = Tensor::from_vec(mask, (rows, len), device)?;
            let type_ids = ids.zeros_like()?;
            let hidden = inner.model.forward(&ids, &type_ids, Some(&mask))?;
            // Mean over real tokens only: padding positions are masked out of the sum.
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
            mean.broadcast_div(&norms)?.to_vec2::<f32>()
        };
        let vectors = run().map_err(|e| fail("inference failed", e.into()))?;
        check_output(&inner.model_id, inner.dimension, texts.len(), &vectors)?;
        Ok(vectors)
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model_id(&self) -> &str {
        &self.inner.model_id
    }
    fn dimension(&self) -> usize {
        self.inner.dimension
    }
    fn max_input_tokens(&self) -> usize {
        self.inner.max_seq_length - 2
    }
    fn count_tokens(&self, text: &str) -> usize {
        // Without special tokens and without truncation: the tokenizer's own count.
        match self.inner.tokenizer.encode_fast(text, false) {
            Ok(e) => {
                e.get_ids().len()
                    + e.get_overflowing()
                        .iter()
                        .map(|o| o.get_ids().len())
                        .sum::<usize>()
            }
            Err(_) => text.len().div_ceil(4),
        }
    }
    /// Sorts the batch by length and runs it as one sub-batch per core, concurrently.
    /// One forward pass keeps only about 1.2 of 2 cores busy (the matrix products are
    /// parallel, the layer norms, softmax and GELU between them are not), so two passes
    /// side by side fill the gaps; sorting first gives each sub-batch texts of similar
    /// length, so less padding is computed.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let parts = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(texts.len())
            .max(1);
        let per = texts.len().div_ceil(parts).max(1);
        let tasks: Vec<_> = order
            .chunks(per)
            .map(|idx| {
                let this = self.clone();
                let part: Vec<String> = idx.iter().map(|&i| texts[i].clone()).collect();
                tokio::task::spawn_blocking(move || this.embed_blocking(&part))
            })
            .collect();
        let mut sorted = Vec::with_capacity(texts.len());
        for task in tasks {
            let vectors = task.await.map_err(|e| EmbedError::Model {
                model: self.inner.model_id.clone(),
                message: "the embedding task panicked".into(),
                source: Some(e.into()),
            })??;
            sorted.extend(vectors);
        }
        // Back to the caller's order.
        let mut out = vec![Vec::new(); texts.len()];
        for (vector, &i) in sorted.into_iter().zip(&order) {
            out[i] = vector;
        }
        Ok(out)
    }
}
