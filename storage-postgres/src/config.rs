//! Configuration of the Postgres backend.

use std::time::Duration;

use storage_core::{EmbeddingSpace, Result, StorageError};

/// How to reach Postgres and how to lay out and tune the schema.
///
/// `Debug` never shows the password of the URL.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/db` (also read from `DATABASE_URL`).
    pub url: String,
    /// Schema holding every table. Must match `^[a-z_][a-z0-9_]{0,62}$`.
    pub schema: String,
    pub pool_max_size: u32,
    pub pool_min_idle: Option<u32>,
    /// How long a caller waits for a free connection before `Timeout`.
    pub connection_timeout: Duration,
    /// Idle connections above `pool_min_idle` are closed after this.
    pub idle_timeout: Option<Duration>,
    /// Server-side limit per statement; exceeded statements end with `Timeout`.
    pub statement_timeout: Duration,
    /// Text search configuration the full-text index is built with, fixed when the schema
    /// is created. The default, `porter`, is Porter stemming without stopwords — the same
    /// terms as SQLite's index, so both backends rank alike; any name in `pg_ts_config`
    /// (e.g. `english`, which also drops stopwords) is accepted instead.
    pub text_search_config: String,
    /// BM25 term-frequency saturation (default 1.2, SQLite FTS5's fixed value).
    pub bm25_k1: f64,
    /// BM25 length normalisation, 0–1 (default 0.75, SQLite FTS5's fixed value).
    pub bm25_b: f64,
    /// When set, opening checks (or fixes) the store's embedding space.
    pub embedding: Option<EmbeddingSpace>,
    /// HNSW graph degree: higher means better recall, more memory, slower builds.
    pub hnsw_m: u32,
    /// HNSW build-time candidate list: higher means better recall and slower builds.
    pub hnsw_ef_construction: u32,
    /// HNSW query-time candidate list (`SET LOCAL hnsw.ef_search`): recall vs latency.
    pub ef_search: u32,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("pool_max_size", &self.pool_max_size)
            .field("text_search_config", &self.text_search_config)
            .field("embedding", &self.embedding)
            .field("hnsw_m", &self.hnsw_m)
            .field("hnsw_ef_construction", &self.hnsw_ef_construction)
            .field("ef_search", &self.ef_search)
            .finish_non_exhaustive()
    }
}

/// The URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    // postgres://user:secret@host/db → postgres://user:***@host/db
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        if let Some(at) = rest.rfind('@') {
            let creds = &rest[..at];
            if let Some(colon) = creds.find(':') {
                return format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &rest[at..]
                );
            }
        }
    }
    // key=value form: password=secret
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl PgConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: "public".into(),
            pool_max_size: 16,
            pool_min_idle: Some(1),
            connection_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(300)),
            statement_timeout: Duration::from_secs(30),
            text_search_config: crate::schema::PORTER_CONFIG.into(),
            bm25_k1: 1.2,
            bm25_b: 0.75,
            embedding: None,
            hnsw_m: 16,
            hnsw_ef_construction: 64,
            ef_search: 100,
        }
    }

    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    pub fn embedding(mut self, space: EmbeddingSpace) -> Self {
        self.embedding = Some(space);
        self
    }

    /// Reads `KB_PG_URL` or `DATABASE_URL`, and the optional `KB_PG_SCHEMA`,
    /// `KB_PG_POOL_MAX`, `KB_PG_TEXT_SEARCH_CONFIG`, `KB_PG_EF_SEARCH`, `KB_PG_BM25_K1`,
    /// `KB_PG_BM25_B`.
    pub fn from_env() -> Result<Self> {
        let url = std::env::var("KB_PG_URL")
            .or_else(|_| std::env::var("DATABASE_URL"))
            .map_err(|_| {
                StorageError::invalid_input(
                    "no Postgres URL: set KB_PG_URL or DATABASE_URL (see .env.example)",
                )
            })?;
        let mut c = Self::new(url);
        if let Ok(s) = std::env::var("KB_PG_SCHEMA") {
            c.schema = s;
        }
        if let Ok(v) = std::env::var("KB_PG_TEXT_SEARCH_CONFIG") {
            c.text_search_config = v;
        }
        let num = |name: &str| -> Result<Option<u32>> {
            match std::env::var(name) {
                Ok(v) => v.parse().map(Some).map_err(|_| {
                    StorageError::invalid_input(format!("{name}={v:?} is not a positive integer"))
                }),
                Err(_) => Ok(None),
            }
        };
        if let Some(n) = num("KB_PG_POOL_MAX")? {
            c.pool_max_size = n.max(1);
        }
        if let Some(n) = num("KB_PG_EF_SEARCH")? {
            c.ef_search = n.max(1);
        }
        let real = |name: &str| -> Result<Option<f64>> {
            match std::env::var(name) {
                Ok(v) => v.trim().parse().map(Some).map_err(|_| {
                    StorageError::invalid_input(format!("{name}={v:?} is not a number"))
                }),
                Err(_) => Ok(None),
            }
        };
        if let Some(k1) = real("KB_PG_BM25_K1")? {
            c.bm25_k1 = k1;
        }
        if let Some(b) = real("KB_PG_BM25_B")? {
            c.bm25_b = b;
        }
        Ok(c)
    }

    /// Checks the settings that end up inside SQL text.
    pub fn validate(&self) -> Result<()> {
        validate_identifier("schema", &self.schema)?;
        validate_identifier("text search configuration", &self.text_search_config)?;
        if !(2..=100).contains(&self.hnsw_m) || !(4..=1000).contains(&self.hnsw_ef_construction) {
            return Err(StorageError::invalid_input(
                "hnsw_m must be 2-100 and hnsw_ef_construction 4-1000",
            ));
        }
        if !(1..=1000).contains(&self.ef_search) {
            return Err(StorageError::invalid_input("ef_search must be 1-1000"));
        }
        if !(0.0..=100.0).contains(&self.bm25_k1) || !(0.0..=1.0).contains(&self.bm25_b) {
            return Err(StorageError::invalid_input(
                "bm25_k1 must be 0-100 and bm25_b 0-1",
            ));
        }
        Ok(())
    }
}

/// Identifiers interpolated into SQL (schema, text search configuration) must match
/// `^[a-z_][a-z0-9_]{0,62}$`; they are also double-quoted where they appear.
pub fn validate_identifier(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StorageError::invalid_input(format!(
            "{what} {s:?} is not valid: use 1-63 characters from a-z 0-9 _, not starting with a digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_redact_hide_passwords() {
        let c = PgConfig::new("postgres://ana:s3cret@db.example:5432/kb");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(dbg.contains("ana:***@db.example"));
        assert_eq!(
            redact("host=x password=hunter2 user=y"),
            "host=x password=*** user=y"
        );
    }

    #[test]
    fn identifiers_are_strict() {
        for ok in ["public", "kb_test_1", "_x"] {
            validate_identifier("schema", ok).unwrap();
        }
        for bad in [
            "",
            "Public",
            "1abc",
            "a-b",
            "a\"b",
            "x; drop",
            &"a".repeat(64),
        ] {
            assert!(validate_identifier("schema", bad).is_err(), "{bad}");
        }
    }
}
