//! One error type for the application layer. Every variant's `Display` is a sentence a
//! user can act on; driver text stays in `source` (and storage errors never carry it).

use std::path::PathBuf;

use embed::EmbedError;
use search_hybrid::SearchError;
use storage_core::StorageError;

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// A configuration value is missing, unknown or of the wrong type.
    #[error("{}{}{message}", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default(), key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
    Config {
        file: Option<PathBuf>,
        key: Option<String>,
        message: String,
    },
    /// A read-only command found no store where the configuration points.
    #[error(
        "no store at {}: run `kb init` or `kb sync DIR` first, or point --db / KB_DATABASE_URL at an existing store",
        path.display()
    )]
    NoStore { path: PathBuf },
    /// The command cannot go on as asked (which KB, which file, …).
    #[error("{message}")]
    Usage { message: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Search(SearchError),
}

impl From<SearchError> for AppError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Storage(s) => Self::Storage(s),
            SearchError::Embed(e) => Self::Embed(e),
            other => Self::Search(other),
        }
    }
}

impl AppError {
    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage {
            message: message.into(),
        }
    }
    pub fn config(file: Option<PathBuf>, key: Option<&str>, message: impl Into<String>) -> Self {
        Self::Config {
            file,
            key: key.map(str::to_owned),
            message: message.into(),
        }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// What to do next, when there is more to say than the message.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Storage(StorageError::Unavailable { .. }) => Some(
                "start the database server, or check the URL given by --db, KB_DATABASE_URL, \
                 DATABASE_URL or kb.toml",
            ),
            Self::Storage(StorageError::ModelMismatch { .. })
            | Self::Search(SearchError::ModelMismatch { .. }) => Some(
                "configure the model the store was embedded with, or run `kb reembed --reset` \
                 to replace every vector with the configured model's",
            ),
            Self::Embed(EmbedError::ModelMissing { .. }) => Some(
                "keyword search works without the model; `--no-embed` skips embedding in \
                 `kb sync`",
            ),
            _ => None,
        }
    }
}
