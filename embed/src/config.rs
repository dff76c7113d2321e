//! Choosing and opening an embedder from configuration (environment variables; the CLI
//! and server fill the same struct from their own config files).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::{
    EmbedError, Embedder, HashingEmbedder, HttpConfig, LocalEmbedder, OllamaEmbedder,
    OpenAiEmbedder, Result,
};

/// Which embedder to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedderKind {
    /// all-MiniLM-L6-v2 on the CPU (the default; `cargo xtask fetch-model` installs it).
    Local,
    OpenAi,
    Ollama,
    /// Lexical test stand-in, not semantic.
    Hashing,
}

#[derive(Debug, Clone)]
pub struct EmbedderConfig {
    pub kind: EmbedderKind,
    /// For `Local`.
    pub model_dir: PathBuf,
    /// For `OpenAi` and `Ollama`.
    pub http: Option<HttpConfig>,
    /// For `Hashing`.
    pub hashing_dimension: usize,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            kind: EmbedderKind::Local,
            model_dir: default_model_dir(),
            http: None,
            hashing_dimension: 384,
        }
    }
}

/// Where the local model lives: `KB_MODEL_DIR`, else `$XDG_CACHE_HOME/kb/models/all-MiniLM-L6-v2`,
/// else `~/.cache/kb/models/all-MiniLM-L6-v2` (where `cargo xtask fetch-model` puts it).
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KB_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("kb").join("models").join("all-MiniLM-L6-v2")
}

impl EmbedderConfig {
    /// Reads `KB_EMBEDDER` (`local` | `openai` | `ollama` | `hashing`, default `local`),
    /// `KB_MODEL_DIR`, and for HTTP providers `KB_EMBED_URL`, `KB_EMBED_MODEL`,
    /// `KB_EMBED_DIMENSION`, `KB_EMBED_API_KEY` (or `OPENAI_API_KEY`),
    /// `KB_EMBED_TIMEOUT_SECS`, `KB_EMBED_BATCH`.
    pub fn from_env() -> Result<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let kind = match var("KB_EMBEDDER").as_deref().map(str::trim) {
            None | Some("local") => EmbedderKind::Local,
            Some("openai") => EmbedderKind::OpenAi,
            Some("ollama") => EmbedderKind::Ollama,
            Some("hashing") => EmbedderKind::Hashing,
            Some(other) => {
                return Err(EmbedError::Config {
                    message: format!(
                        "KB_EMBEDDER={other:?} is not one of local, openai, ollama, hashing"
                    ),
                })
            }
        };
        let number = |k: &str| -> Result<Option<usize>> {
            var(k)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| EmbedError::Config {
                        message: format!("{k}={v:?} is not a whole number"),
                    })
                })
                .transpose()
        };
        let mut cfg = EmbedderConfig {
            kind,
            ..Default::default()
        };
        if let Some(d) = number("KB_EMBED_DIMENSION")? {
            cfg.hashing_dimension = d;
        }
        if matches!(kind, EmbedderKind::OpenAi | EmbedderKind::Ollama) {
            let default_url = match kind {
                EmbedderKind::Ollama => Some("http://localhost:11434".to_owned()),
                _ => Some("https://api.openai.com".to_owned()),
            };
            let url = var("KB_EMBED_URL").or(default_url).expect("default");
            let model = var("KB_EMBED_MODEL").ok_or_else(|| EmbedError::Config {
                message: "KB_EMBED_MODEL is required for HTTP embedders (e.g. \
                          text-embedding-3-small, nomic-embed-text)"
                    .into(),
            })?;
            let dimension = number("KB_EMBED_DIMENSION")?.ok_or_else(|| EmbedError::Config {
                message: "KB_EMBED_DIMENSION is required for HTTP embedders (the model's \
                          vector length, e.g. 1536)"
                    .into(),
            })?;
            let mut http = HttpConfig::new(url, model, dimension);
            http.api_key = var("KB_EMBED_API_KEY").or_else(|| var("OPENAI_API_KEY"));
            if let Some(s) = number("KB_EMBED_TIMEOUT_SECS")? {
                http.timeout = Duration::from_secs(s as u64);
            }
            if let Some(b) = number("KB_EMBED_BATCH")? {
                http.batch_size = b.max(1);
            }
            cfg.http = Some(http);
        }
        Ok(cfg)
    }

    /// Opens the embedder. Loading the local model reads ~90 MB: call it once at start-up
    /// (from `spawn_blocking` inside a runtime).
    pub fn open(&self) -> Result<Arc<dyn Embedder>> {
        let http = || {
            self.http.clone().ok_or_else(|| EmbedError::Config {
                message: "HTTP embedder without URL, model and dimension".into(),
            })
        };
        Ok(match self.kind {
            EmbedderKind::Local => Arc::new(LocalEmbedder::load(&self.model_dir)?),
            EmbedderKind::OpenAi => Arc::new(OpenAiEmbedder::new(http()?)?),
            EmbedderKind::Ollama => Arc::new(OllamaEmbedder::new(http()?)?),
            EmbedderKind::Hashing => Arc::new(HashingEmbedder::new(self.hashing_dimension.max(1))),
        })
    }
}
