//! Configuration of the Postgres backend.

use std::time::Duration;

use storage_core::{EmbeddingSpace, Result, StorageError};

/// The default text search configuration: Porter stemming without stopwords and with
/// accents folded — the token stream of SQLite's FTS5 `porter unicode61
/// remove_diacritics 2`, so both backends' BM25 sees the same terms. Not a Postgres
/// configuration name: the store builds it from Postgres' snowball `porter` stemmer.
pub(crate) const PORTER_CONFIG: &str = "porter";

/// The variables a Postgres URL for tests, benches and project tasks is read from, in
/// order: the library's own `KB_PG_URL` (see [`PgConfig::from_env`]), then `DATABASE_URL`.
const URL_VARS: [&str; 2] = ["KB_PG_URL", "DATABASE_URL"];

/// Names used before there was one variable; still read, with a deprecation line.
const DEPRECATED_URL_VARS: [&str; 2] = ["KB_TEST_PG_URL", "KB_BENCH_PG_URL"];

/// The Postgres URL that tests and benches run against, from [`URL_VARS`] (or a
/// deprecated name, with a line on stderr saying so); `None` when none is set.
///
/// For test and bench harnesses only: a library user passes a URL or calls
/// [`PgConfig::from_env`].
pub fn test_url() -> Option<String> {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(url) = URL_VARS.iter().find_map(|n| set(n)) {
        return Some(url);
    }
    DEPRECATED_URL_VARS.iter().find_map(|name| {
        let url = set(name)?;
        eprintln!("note: {name} is deprecated; set KB_PG_URL instead");
        Some(url)
    })
}

/// [`test_url`], or a panic that says how to get a server: for test harnesses that were
/// asked (by the `postgres-tests` feature) to run against Postgres.
pub fn require_test_url() -> String {
    test_url().unwrap_or_else(|| {
        panic!(
            "no Postgres URL: set KB_PG_URL (or DATABASE_URL), or run `cargo xtask \
             test-postgres`, which provisions a throwaway server"
        )
    })
}

/// How to reach Postgres and how to lay out and tune the schema.
///
/// `Debug` never shows the password of the URL.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/db` or libpq key-value text (also read from
    /// `DATABASE_URL`). TLS as libpq spells it: `sslmode=disable|prefer|require|
    /// verify-ca|verify-full` (default `prefer`) and `sslrootcert=PATH` (the CA
    /// certificate file) or `sslrootcert=system` (the public web roots).
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

/// The connection string with every password replaced by `***`, for messages and logs.
///
/// Both forms tokio-postgres accepts are covered: a URL, whose password may sit in the
/// user info (`postgres://u:secret@h/db`) or in the query string
/// (`postgres://u@h/db?password=secret`), and libpq key-value text, where spaces may
/// surround `=` (`password = secret`) and a value may be single-quoted
/// (`password='a b'`, with `\'` and `\\` escapes). Malformed text is redacted too
/// (it is what the "URL is not valid" error shows), erring towards hiding more.
pub fn redact(conn: &str) -> String {
    if let Some(scheme_end) = conn.find("://") {
        redact_url(conn, scheme_end + 3)
    } else {
        redact_key_values(conn)
    }
}

/// `rest_start`: where the text after `scheme://` begins.
fn redact_url(url: &str, rest_start: usize) -> String {
    let rest = &url[rest_start..];
    // User info ends at the last `@` (a password with an unescaped `@` stays hidden).
    let url = match rest.rfind('@') {
        Some(at) if rest[..at].contains(':') => {
            let colon = rest.find(':').expect("checked above");
            format!(
                "{}{}:***{}",
                &url[..rest_start],
                &rest[..colon],
                &rest[at..]
            )
        }
        _ => url.to_owned(),
    };
    // Query parameters: `password=` after `?` or `&`, up to the next `&` or `#`.
    let mut out = String::with_capacity(url.len());
    let mut pos = 0;
    while let Some(found) = url[pos..].find("password=") {
        let key = pos + found;
        let value = key + "password=".len();
        out.push_str(&url[pos..value]);
        if matches!(url[..key].chars().last(), Some('?' | '&')) {
            let end = url[value..]
                .find(['&', '#'])
                .map_or(url.len(), |e| value + e);
            out.push_str("***");
            pos = end;
        } else {
            pos = value;
        }
    }
    out.push_str(&url[pos..]);
    out
}

/// libpq key-value text: `key = value` pairs separated by whitespace, where a value is
/// either a run of non-space characters or single-quoted with backslash escapes.
fn redact_key_values(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let skip_space = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            out.push(b[i] as char);
            i += 1;
            continue;
        }
        // A key: up to whitespace or '='.
        let key_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        let is_password = &text[key_start..i] == "password";
        let eq = skip_space(i);
        if eq >= b.len() || b[eq] != b'=' {
            // Not a pair (malformed): keep the word and go on.
            out.push_str(&text[key_start..i]);
            continue;
        }
        let value_start = skip_space(eq + 1);
        // The value: quoted (up to the closing unescaped quote) or up to whitespace.
        let mut j = value_start;
        if j < b.len() && b[j] == b'\'' {
            j += 1;
            while j < b.len() && b[j] != b'\'' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            j = (j + 1).min(b.len());
        } else {
            while j < b.len() && !b[j].is_ascii_whitespace() {
                j += 1;
            }
        }
        out.push_str(&text[key_start..value_start]);
        if is_password {
            out.push_str("***");
        } else {
            out.push_str(&text[value_start..j]);
        }
        i = j;
    }
    out
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
            text_search_config: PORTER_CONFIG.into(),
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

    /// Every way to write a password is hidden, and the rest of the text is kept.
    #[test]
    fn redact_hides_every_form_of_password() {
        for (input, expected) in [
            // URL user info (also with an unescaped '@' or ':' in the password).
            ("postgres://u:pw@h/db", "postgres://u:***@h/db"),
            (
                "postgresql://u:p@ss:w@h:5432/db",
                "postgresql://u:***@h:5432/db",
            ),
            // Password in the query string, first, middle and last.
            (
                "postgres://u@h/db?password=x",
                "postgres://u@h/db?password=***",
            ),
            (
                "postgres://u@h/db?sslmode=disable&password=s3cr%20t&application_name=a",
                "postgres://u@h/db?sslmode=disable&password=***&application_name=a",
            ),
            (
                "postgres://h/db?password=x#frag",
                "postgres://h/db?password=***#frag",
            ),
            (
                "postgres://u:a@h/db?password=b",
                "postgres://u:***@h/db?password=***",
            ),
            // A query password with an '@' in it.
            (
                "postgres://u@h/db?password=x@y",
                "postgres://u@h/db?password=***",
            ),
            // Key-value: plain, spaced, quoted, escaped quotes, last, and only pair.
            (
                "host=x password=hunter2 user=y",
                "host=x password=*** user=y",
            ),
            (
                "host=x password = hunter2 user=y",
                "host=x password = *** user=y",
            ),
            ("host=x password= hunter2", "host=x password= ***"),
            ("password ='a b' host=x", "password =*** host=x"),
            (r"password='it\'s a b' user=y", "password=*** user=y"),
            (r"password='back\\' user=y", "password=*** user=y"),
            ("password='unterminated user=y", "password=***"),
            ("user=password host=h", "user=password host=h"),
            ("passwordx=1 host=h", "passwordx=1 host=h"),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
        for secret in ["pw", "hunter2", "s3cr", "a b", "back", "unterminated"] {
            for form in [
                format!("postgres://u:{secret}@h/db"),
                format!("postgres://u@h/db?password={secret}"),
                format!("host=h password = '{secret}'"),
            ] {
                assert!(
                    !redact(&form).contains(secret),
                    "{form} -> {}",
                    redact(&form)
                );
            }
        }
    }

    /// The "URL is not valid" error shows the URL redacted (an unknown parameter makes
    /// tokio-postgres reject this one before any connection is tried).
    #[tokio::test]
    async fn an_invalid_url_error_hides_the_password() {
        for url in [
            "postgres://u@h/db?password=s3cret&bogus=1",
            "postgres://u:s3cret@h/db?bogus=1",
        ] {
            let err = crate::PgStore::open(PgConfig::new(url)).await.unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, StorageError::InvalidInput { .. }), "{err:?}");
            assert!(
                msg.contains("is not valid") && msg.contains("bogus"),
                "{msg}"
            );
            assert!(!msg.contains("s3cret"), "{msg}");
        }
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
