//! Embedding models behind one trait, and what turns a store's embedding queue into vectors.
//!
//! - [`Embedder`] is the trait: model id, dimension, token window, batch `embed`.
//! - [`LocalEmbedder`] runs all-MiniLM-L6-v2 on the CPU with candle (`cargo xtask
//!   fetch-model` installs it); [`OpenAiEmbedder`] and [`OllamaEmbedder`] call HTTP
//!   providers; [`HashingEmbedder`] is a lexical stand-in for tests.
//! - [`split_passages`] cuts long text into passages that fit the model's window.
//! - [`EmbedWorker`] drains the store's embedding queue in batches.
//! - [`EmbedderConfig`] opens the configured embedder from the environment.

mod config;
mod error;
mod hashing;
mod http;
mod local;
mod passages;
mod worker;

use async_trait::async_trait;
use storage_core::EmbeddingSpace;

pub use config::{default_model_dir, EmbedderConfig, EmbedderKind};
pub use error::EmbedError;
pub use hashing::HashingEmbedder;
pub use http::{HttpConfig, OllamaEmbedder, OpenAiEmbedder};
pub use local::{LocalEmbedder, MINILM_MODEL_ID};
pub use passages::{split_passages, PassageConfig};
pub use worker::{EmbedWorker, Progress, RunStats, WorkerConfig};

pub type Result<T, E = EmbedError> = std::result::Result<T, E>;

/// A text embedding model.
///
/// Vectors are compared by cosine similarity; implementations may return them
/// unnormalised. Inputs longer than [`max_input_tokens`](Self::max_input_tokens) are
/// truncated by the model, so callers split long text with [`split_passages`] first.
#[async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// Identifies the model; stored as the embedding space's model, so vectors of
    /// different models are never mixed.
    fn model_id(&self) -> &str;
    fn dimension(&self) -> usize;
    /// The model's input window in tokens, special tokens excluded.
    fn max_input_tokens(&self) -> usize;
    /// How many tokens `text` becomes (special tokens excluded). The default estimates
    /// four bytes per token, a fair figure for English with BPE vocabularies.
    fn count_tokens(&self, text: &str) -> usize {
        text.len().div_ceil(4)
    }
    /// One vector per text, in order, each of [`dimension`](Self::dimension) floats.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;

    /// The store embedding space this model writes.
    fn space(&self) -> EmbeddingSpace {
        EmbeddingSpace::new(self.model_id(), self.dimension())
    }
}

/// Embeds one text.
pub async fn embed_one(embedder: &dyn Embedder, text: &str) -> Result<Vec<f32>> {
    let mut v = embedder.embed(&[text.to_owned()]).await?;
    v.pop().ok_or_else(|| EmbedError::InvalidResponse {
        message: "the model returned no vector".into(),
    })
}

/// Checks a batch's vectors: one per input, each of the model's dimension and finite.
pub(crate) fn check_output(
    model: &str,
    dimension: usize,
    inputs: usize,
    vectors: &[Vec<f32>],
) -> Result<()> {
    if vectors.len() != inputs {
        return Err(EmbedError::InvalidResponse {
            message: format!(
                "{model} returned {} vectors for {inputs} inputs",
                vectors.len()
            ),
        });
    }
    for v in vectors {
        if v.len() != dimension {
            return Err(EmbedError::DimensionMismatch {
                model: model.to_owned(),
                expected: dimension,
                actual: v.len(),
            });
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(EmbedError::InvalidResponse {
                message: format!("{model} returned a vector with NaN or infinite values"),
            });
        }
    }
    Ok(())
}
