//! One error type for every embedder, with messages a user can act on. Transport and
//! library error text is kept as `source`, never in `Display`.

use std::path::PathBuf;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The local model's files are not there.
    #[error(
        "no embedding model at {}: run `cargo xtask fetch-model` to install all-MiniLM-L6-v2 \
         there, or set KB_MODEL_DIR to a directory holding model.safetensors, tokenizer.json \
         and config.json",
        dir.display()
    )]
    ModelMissing { dir: PathBuf },
    /// The model files exist but could not be loaded or run.
    #[error("embedding model {model}: {message}")]
    Model {
        model: String,
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The embedder configuration is wrong (unknown provider, missing URL, bad number).
    #[error("embedding configuration: {message}")]
    Config { message: String },
    /// The provider could not be reached at all.
    #[error("could not reach the embedding provider at {url} — is it running?")]
    Unreachable {
        url: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The provider did not answer in time (after retries).
    #[error("the embedding provider at {url} did not answer within {after:?}")]
    Timeout { url: String, after: Duration },
    /// The provider answered with an error status (after retries, for 429 and 5xx).
    #[error("the embedding provider at {url} answered HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    /// The provider answered something that is not a batch of embeddings.
    #[error("the embedding provider answered unexpectedly: {message}")]
    InvalidResponse { message: String },
    /// Vectors of the wrong length: the configured dimension is not the model's.
    #[error(
        "{model} returned {actual}-dimensional vectors, but {expected} dimensions are configured"
    )]
    DimensionMismatch {
        model: String,
        expected: usize,
        actual: usize,
    },
}

impl EmbedError {
    /// Whether trying again later may succeed (the queue retries these).
    pub fn is_transient(&self) -> bool {
        match self {
            EmbedError::Unreachable { .. } | EmbedError::Timeout { .. } => true,
            EmbedError::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}
