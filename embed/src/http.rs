//! HTTP embedding providers: OpenAI-compatible `/v1/embeddings` and Ollama `/api/embed`.
//!
//! Both send batches of at most `batch_size` inputs, time out each request, and retry
//! 429, 5xx, timeouts and refused connections with exponential backoff (via `backon`) a
//! bounded number of times; other statuses fail at once with the provider's message.

use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{check_output, EmbedError, Embedder, Result};

/// Settings shared by the HTTP providers.
///
/// `Debug` shows neither the API key nor credentials in the base URL.
#[derive(Clone)]
pub struct HttpConfig {
    /// Base URL, e.g. `https://api.openai.com` or `http://localhost:11434`.
    pub base_url: String,
    /// The provider's model name, sent with every request.
    pub model: String,
    /// Expected vector length; every response is checked against it.
    pub dimension: usize,
    /// Bearer token (OpenAI-compatible only).
    pub api_key: Option<String>,
    pub timeout: Duration,
    /// Retries after the first attempt, for transient failures only.
    pub max_retries: usize,
    /// First backoff delay; doubled per retry, with jitter.
    pub backoff: Duration,
    pub batch_size: usize,
    /// The model's input window in tokens.
    pub max_input_tokens: usize,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("base_url", &shown_url(&self.base_url))
            .field("model", &self.model)
            .field("dimension", &self.dimension)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl HttpConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>, dimension: usize) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            model: model.into(),
            dimension,
            api_key: None,
            timeout: Duration::from_secs(30),
            max_retries: 4,
            backoff: Duration::from_millis(250),
            batch_size: 64,
            max_input_tokens: 512,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Flavour {
    OpenAi,
    Ollama,
}

#[derive(Debug, Clone)]
struct HttpEmbedder {
    config: HttpConfig,
    client: reqwest::Client,
    flavour: Flavour,
    model_id: String,
}

impl HttpEmbedder {
    fn new(config: HttpConfig, flavour: Flavour) -> Result<Self> {
        if config.dimension == 0 || config.batch_size == 0 {
            return Err(EmbedError::Config {
                message: "dimension and batch size must be positive".into(),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| EmbedError::Config {
                message: format!("could not build an HTTP client: {e}"),
            })?;
        let model_id = match flavour {
            Flavour::OpenAi => format!("openai:{}", config.model),
            Flavour::Ollama => format!("ollama:{}", config.model),
        };
        Ok(Self {
            config,
            client,
            flavour,
            model_id,
        })
    }

    fn url(&self) -> String {
        match self.flavour {
            Flavour::OpenAi => format!("{}/v1/embeddings", self.config.base_url),
            Flavour::Ollama => format!("{}/api/embed", self.config.base_url),
        }
    }

    /// One request for one batch, without retries.
    async fn request(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let url = self.url();
        let shown = shown_url(&url);
        let body = json!({ "model": self.config.model, "input": texts });
        let mut req = self.client.post(&url).json(&body);
        if let (Flavour::OpenAi, Some(key)) = (self.flavour, &self.config.api_key) {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(|e| self.transport(&shown, e))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(EmbedError::Http {
                url: shown,
                status: status.as_u16(),
                message: provider_message(&text),
            });
        }
        let value: Value = resp.json().await.map_err(|e| self.transport(&shown, e))?;
        let vectors = match self.flavour {
            Flavour::OpenAi => parse_openai(value)?,
            Flavour::Ollama => parse_ollama(value)?,
        };
        check_output(&self.model_id, self.config.dimension, texts.len(), &vectors)?;
        Ok(vectors)
    }

    /// `url` is the [`shown_url`]; reqwest's error text names the full URL, so it is
    /// kept only as the source (never displayed by the front ends, which print the
    /// message).
    fn transport(&self, url: &str, e: reqwest::Error) -> EmbedError {
        if e.is_timeout() {
            EmbedError::Timeout {
                url: url.to_owned(),
                after: self.config.timeout,
            }
        } else if e.is_decode() {
            EmbedError::InvalidResponse {
                message: "the body is not the JSON this provider sends".into(),
            }
        } else {
            EmbedError::Unreachable {
                url: url.to_owned(),
                source: Some(e.without_url().into()),
            }
        }
    }

    async fn embed_all(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.backoff)
            .with_max_delay(self.config.backoff * 32)
            .with_max_times(self.config.max_retries)
            .with_jitter();
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.config.batch_size) {
            let vectors = (|| self.request(batch))
                .retry(backoff)
                .when(EmbedError::is_transient)
                .notify(|e, after| {
                    tracing::warn!(error = %e, retry_in = ?after, "embedding request failed; retrying")
                })
                .await?;
            out.extend(vectors);
        }
        Ok(out)
    }
}

/// The provider URL as messages show it: no user info (`https://user:key@host`) and no
/// query string (`?key=…`), where credentials sit. The messages end up in the queue's
/// `last_error` and in search responses, which other users may read.
fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "the configured provider URL".into(),
    }
}

/// The error message inside a provider's error body (`{"error": {"message": …}}` or
/// `{"error": "…"}`), else the body's first 200 characters.
fn provider_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        let e = &v["error"];
        if let Some(m) = e["message"].as_str().or_else(|| e.as_str()) {
            return m.to_owned();
        }
    }
    body.chars().take(200).collect()
}

fn parse_openai(value: Value) -> Result<Vec<Vec<f32>>> {
    #[derive(Deserialize)]
    struct Item {
        index: usize,
        embedding: Vec<f32>,
    }
    #[derive(Deserialize)]
    struct Body {
        data: Vec<Item>,
    }
    let mut body: Body =
        serde_json::from_value(value).map_err(|_| EmbedError::InvalidResponse {
            message: "expected {\"data\": [{\"index\", \"embedding\"}, …]}".into(),
        })?;
    // The API may return items in any order; `index` says which input each belongs to.
    body.data.sort_by_key(|i| i.index);
    Ok(body.data.into_iter().map(|i| i.embedding).collect())
}

fn parse_ollama(value: Value) -> Result<Vec<Vec<f32>>> {
    #[derive(Deserialize)]
    struct Body {
        embeddings: Vec<Vec<f32>>,
    }
    let body: Body = serde_json::from_value(value).map_err(|_| EmbedError::InvalidResponse {
        message: "expected {\"embeddings\": [[…], …]}".into(),
    })?;
    Ok(body.embeddings)
}

macro_rules! provider {
    ($(#[$doc:meta])* $name:ident, $flavour:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(HttpEmbedder);

        impl $name {
            pub fn new(config: HttpConfig) -> Result<Self> {
                HttpEmbedder::new(config, $flavour).map(Self)
            }
        }

        #[async_trait]
        impl Embedder for $name {
            fn model_id(&self) -> &str {
                &self.0.model_id
            }
            fn dimension(&self) -> usize {
                self.0.config.dimension
            }
            fn max_input_tokens(&self) -> usize {
                self.0.config.max_input_tokens
            }
            async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
                self.0.embed_all(texts).await
            }
        }
    };
}

provider!(
    /// An OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, Azure-style gateways,
    /// vLLM, LM Studio, llama.cpp server…). Model id `openai:<model>`.
    OpenAiEmbedder,
    Flavour::OpenAi
);
provider!(
    /// Ollama's batch `/api/embed` endpoint. Model id `ollama:<model>`.
    OllamaEmbedder,
    Flavour::Ollama
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_carry_no_credentials() {
        assert_eq!(
            shown_url("https://bob:s3cret@api.example.com/v1/embeddings?key=abc#x"),
            "https://api.example.com/v1/embeddings"
        );
        assert_eq!(
            shown_url("http://127.0.0.1:11434/api/embed"),
            "http://127.0.0.1:11434/api/embed"
        );
        assert_eq!(shown_url("not a url"), "the configured provider URL");
    }

    #[test]
    fn debug_shows_no_key_and_no_url_credentials() {
        let mut c = HttpConfig::new("https://bob:s3cret@api.example.com", "m", 3);
        c.api_key = Some("sk-live-123".into());
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("sk-live"),
            "{shown}"
        );
        assert!(shown.contains("api.example.com"), "{shown}");
    }
}
