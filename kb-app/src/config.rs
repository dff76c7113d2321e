//! Configuration, one way for every command and front end:
//! `--db URL`, else `KB_DATABASE_URL`, else `DATABASE_URL`, else `kb.toml` (in the current
//! directory or the one `--config` names), else the SQLite file `.kb/index.db`.
//!
//! `kb.toml` is parsed by the `toml` crate, then `${VAR}` / `${VAR:-default}` are expanded
//! in every string value, then the table is deserialised with unknown keys refused;
//! `serde_path_to_error` names the key of a bad value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use embed::{EmbedderConfig, EmbedderKind, HttpConfig};
use serde::Deserialize;
use storage_postgres::PgConfig;

use crate::error::{AppError, Result};

/// The name of the configuration file looked for in the current directory.
pub const CONFIG_FILE: &str = "kb.toml";
/// Where the default SQLite store lives, relative to the current directory.
pub const DEFAULT_SQLITE_PATH: &str = ".kb/index.db";

/// What the caller (a command line, a server) says before any file is read.
#[derive(Debug, Clone, Default)]
pub struct ConfigOverrides {
    /// `--db`.
    pub db: Option<String>,
    /// `--config`: a file, or a directory holding `kb.toml`.
    pub config: Option<PathBuf>,
    /// The directory relative paths are resolved against (default: the process's).
    pub cwd: Option<PathBuf>,
}

/// Where entries are stored.
#[derive(Debug, Clone)]
pub enum DatabaseConfig {
    Sqlite {
        path: PathBuf,
        pool_size: Option<u32>,
        busy_timeout: Option<Duration>,
        /// `None`: the backend's default (every commit on disk).
        durability: Option<storage_sqlite::Durability>,
    },
    Postgres(Box<PgConfig>),
}

impl DatabaseConfig {
    /// `sqlite`, `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
    /// The location for messages: the file, or the URL without its password.
    pub fn display_location(&self) -> String {
        match self {
            Self::Sqlite { path, .. } => format!("sqlite:{}", path.display()),
            Self::Postgres(pg) => {
                let url = storage_postgres::redact(&pg.url);
                if pg.schema == "public" {
                    url
                } else {
                    format!("{url} (schema {})", pg.schema)
                }
            }
        }
    }
}

/// Which embedder to run; `None` turns embedding off (keyword search only).
#[derive(Debug, Clone)]
pub enum EmbedderChoice {
    None,
    Use(EmbedderConfig),
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    /// Where the database choice came from (`--db`, `KB_DATABASE_URL`, a file, the default).
    pub database_source: String,
    pub embedder: EmbedderChoice,
    /// The KB commands use when none is named.
    pub default_kb: Option<String>,
    /// The `kb.toml` that was read, if any.
    pub file: Option<PathBuf>,
    /// Entries written per transaction by sync, import and migrate.
    pub batch_size: usize,
    /// Embedding workers a server runs (the CLI runs one while it embeds).
    pub embed_workers: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    default_kb: Option<String>,
    #[serde(default)]
    database: FileDatabase,
    #[serde(default)]
    sqlite: FileSqlite,
    #[serde(default)]
    postgres: FilePostgres,
    #[serde(default)]
    embedder: FileEmbedder,
    #[serde(default)]
    sync: FileSync,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSqlite {
    pool_size: Option<u32>,
    busy_timeout_secs: Option<u64>,
    durability: Option<FileDurability>,
}

/// `[sqlite] durability`: `full` (the default) or `normal`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FileDurability {
    Full,
    Normal,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePostgres {
    schema: Option<String>,
    pool_max_size: Option<u32>,
    pool_min_idle: Option<u32>,
    connect_timeout_secs: Option<u64>,
    statement_timeout_secs: Option<u64>,
    ef_search: Option<u32>,
    hnsw_m: Option<u32>,
    hnsw_ef_construction: Option<u32>,
    text_search_config: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEmbedder {
    provider: Option<Provider>,
    model_dir: Option<PathBuf>,
    url: Option<String>,
    model: Option<String>,
    dimension: Option<usize>,
    api_key: Option<String>,
    timeout_secs: Option<u64>,
    batch: Option<usize>,
    workers: Option<usize>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Provider {
    Local,
    Openai,
    Ollama,
    Hashing,
    None,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSync {
    batch_size: Option<usize>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Resolves the configuration from the overrides, the environment and `kb.toml`.
    pub fn load(overrides: &ConfigOverrides) -> Result<Self> {
        let cwd = match &overrides.cwd {
            Some(c) => c.clone(),
            None => std::env::current_dir().map_err(|e| AppError::io(".", e))?,
        };
        let file_path = match &overrides.config {
            Some(p) => {
                let p = cwd.join(p);
                let p = if p.is_dir() { p.join(CONFIG_FILE) } else { p };
                if !p.is_file() {
                    return Err(AppError::config(
                        Some(p),
                        None,
                        "no such configuration file",
                    ));
                }
                Some(p)
            }
            None => Some(cwd.join(CONFIG_FILE)).filter(|p| p.is_file()),
        };
        let file = match &file_path {
            Some(p) => read_file_config(p)?,
            None => FileConfig::default(),
        };
        // Relative paths in kb.toml are relative to the file's directory.
        let file_dir = file_path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cwd.clone());

        let (url, source, base) = if let Some(db) = &overrides.db {
            (db.clone(), "--db".to_owned(), cwd.clone())
        } else if let Some(u) = env("KB_DATABASE_URL") {
            (u, "KB_DATABASE_URL".into(), cwd.clone())
        } else if let Some(u) = env("DATABASE_URL") {
            (u, "DATABASE_URL".into(), cwd.clone())
        } else if let Some(u) = file.database.url.clone().filter(|u| !u.trim().is_empty()) {
            let src = format!(
                "{} (database.url)",
                file_path
                    .as_deref()
                    .unwrap_or(Path::new(CONFIG_FILE))
                    .display()
            );
            (u, src, file_dir.clone())
        } else {
            (
                format!("sqlite:{DEFAULT_SQLITE_PATH}"),
                "default".into(),
                cwd.clone(),
            )
        };
        let database = parse_database(&url, &base, &file, file_path.as_deref(), &source)?;
        let embedder = embedder_choice(&file.embedder, &file_dir, file_path.as_deref())?;
        if let Some(kb) = &file.default_kb {
            storage_core::validate_name("knowledge base name", kb).map_err(|e| {
                AppError::config(file_path.clone(), Some("default_kb"), e.to_string())
            })?;
        }
        let batch_size = file.sync.batch_size.unwrap_or(500);
        if batch_size == 0 || batch_size > 10_000 {
            return Err(AppError::config(
                file_path,
                Some("sync.batch_size"),
                "expected a number from 1 to 10000",
            ));
        }
        Ok(Self {
            database,
            database_source: source,
            embedder,
            default_kb: env("KB_DEFAULT_KB").or(file.default_kb),
            file: file_path,
            batch_size,
            embed_workers: file.embedder.workers.unwrap_or(1),
        })
    }
}

fn read_file_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| AppError::io(path, e))?;
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        AppError::config(Some(path.to_owned()), None, e.to_string().trim().to_owned())
    })?;
    for (key, value) in table.iter_mut() {
        interpolate(value, key, path)?;
    }
    let de = toml::Value::Table(table);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = (key != ".").then_some(key);
        AppError::config(
            Some(path.to_owned()),
            key.as_deref(),
            e.into_inner().to_string(),
        )
    })
}

/// Expands `${VAR}` and `${VAR:-default}` in every string of `value`.
fn interpolate(value: &mut toml::Value, key: &str, file: &Path) -> Result<()> {
    match value {
        toml::Value::String(s) => {
            *s = expand(s).map_err(|m| AppError::config(Some(file.to_owned()), Some(key), m))?
        }
        toml::Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                interpolate(v, &format!("{key}[{i}]"), file)?;
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                interpolate(v, &format!("{key}.{k}"), file)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The two forms of the seed's YAML: `${VAR}` (an error when unset) and
/// `${VAR:-default}`. Hand-written because shell-expansion crates also expand bare `$VAR`
/// and `~`, which would corrupt passwords that contain `$`; `$$` stays a literal `$`.
pub fn expand(s: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
            let expr = &inner[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!(
                    "${{{expr}}} is not a variable reference: use ${{NAME}} or ${{NAME:-default}}"
                ));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} for a fallback)"
                    ))
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn parse_database(
    url: &str,
    base: &Path,
    file: &FileConfig,
    file_path: Option<&Path>,
    source: &str,
) -> Result<DatabaseConfig> {
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut pg = PgConfig::new(url);
        let p = &file.postgres;
        let bad = |key: &str, msg: &str| {
            AppError::config(file_path.map(Path::to_path_buf), Some(key), msg.to_owned())
        };
        if let Some(s) = env("KB_PG_SCHEMA").or_else(|| p.schema.clone()) {
            let ok = s.len() <= 63
                && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(bad(
                    "postgres.schema",
                    "expected a lower-case identifier matching ^[a-z_][a-z0-9_]{0,62}$",
                ));
            }
            pg.schema = s;
        }
        if let Some(n) = p.pool_max_size {
            if n == 0 {
                return Err(bad(
                    "postgres.pool_max_size",
                    "expected a number of at least 1",
                ));
            }
            pg.pool_max_size = n;
        }
        if let Some(n) = p.pool_min_idle {
            pg.pool_min_idle = Some(n);
        }
        if let Some(s) = p.connect_timeout_secs {
            pg.connection_timeout = Duration::from_secs(s.max(1));
        }
        if let Some(s) = p.statement_timeout_secs {
            pg.statement_timeout = Duration::from_secs(s.max(1));
        }
        if let Some(n) = p.ef_search {
            pg.ef_search = n.max(1);
        }
        if let Some(n) = p.hnsw_m {
            pg.hnsw_m = n.max(2);
        }
        if let Some(n) = p.hnsw_ef_construction {
            pg.hnsw_ef_construction = n.max(4);
        }
        if let Some(t) = &p.text_search_config {
            pg.text_search_config = t.clone();
        }
        return Ok(DatabaseConfig::Postgres(Box::new(pg)));
    }
    let path = if let Some(p) = url.strip_prefix("sqlite://") {
        p
    } else if let Some(p) = url.strip_prefix("sqlite:") {
        p
    } else if url.contains("://") {
        return Err(AppError::config(
            None,
            Some(source),
            format!(
                "{:?} is not a database URL kb knows: use sqlite:PATH, a file path, or postgres://…",
                storage_postgres::redact(url)
            ),
        ));
    } else {
        url
    };
    if path.is_empty() {
        return Err(AppError::config(
            None,
            Some(source),
            "the SQLite path is empty",
        ));
    }
    Ok(DatabaseConfig::Sqlite {
        path: base.join(path),
        pool_size: file.sqlite.pool_size,
        busy_timeout: file.sqlite.busy_timeout_secs.map(Duration::from_secs),
        durability: file.sqlite.durability.map(|d| match d {
            FileDurability::Full => storage_sqlite::Durability::Full,
            FileDurability::Normal => storage_sqlite::Durability::Normal,
        }),
    })
}

fn embedder_choice(f: &FileEmbedder, dir: &Path, file: Option<&Path>) -> Result<EmbedderChoice> {
    // The environment (KB_EMBEDDER, KB_EMBED_*) wins over the file, as for the database.
    let from_env =
        |e: embed::EmbedError| AppError::config(None, Some("KB_EMBEDDER"), e.to_string());
    let provider = match env("KB_EMBEDDER").as_deref() {
        Some("none") => Provider::None,
        Some(_) => {
            return EmbedderConfig::from_env()
                .map(EmbedderChoice::Use)
                .map_err(from_env)
        }
        None => f.provider.unwrap_or(Provider::Local),
    };
    let bad = |key: &str, msg: &str| {
        AppError::config(file.map(Path::to_path_buf), Some(key), msg.to_owned())
    };
    let mut cfg = EmbedderConfig::default();
    match provider {
        Provider::None => return Ok(EmbedderChoice::None),
        Provider::Local => {
            cfg.kind = EmbedderKind::Local;
            if env("KB_MODEL_DIR").is_none() {
                if let Some(d) = &f.model_dir {
                    cfg.model_dir = dir.join(d);
                }
            }
        }
        Provider::Hashing => {
            cfg.kind = EmbedderKind::Hashing;
            if let Some(d) = f.dimension {
                cfg.hashing_dimension = d.max(1);
            }
        }
        Provider::Openai | Provider::Ollama => {
            cfg.kind = if provider == Provider::Openai {
                EmbedderKind::OpenAi
            } else {
                EmbedderKind::Ollama
            };
            let url = f.url.clone().unwrap_or_else(|| {
                if provider == Provider::Openai {
                    "https://api.openai.com".into()
                } else {
                    "http://localhost:11434".into()
                }
            });
            let model = f.model.clone().ok_or_else(|| {
                bad(
                    "embedder.model",
                    "required for HTTP providers (e.g. text-embedding-3-small, nomic-embed-text)",
                )
            })?;
            let dimension = f.dimension.ok_or_else(|| {
                bad(
                    "embedder.dimension",
                    "required for HTTP providers (the model's vector length, e.g. 1536)",
                )
            })?;
            let mut http = HttpConfig::new(url, model, dimension);
            http.api_key = f.api_key.clone().or_else(|| env("OPENAI_API_KEY"));
            if let Some(s) = f.timeout_secs {
                http.timeout = Duration::from_secs(s.max(1));
            }
            if let Some(b) = f.batch {
                http.batch_size = b.max(1);
            }
            cfg.http = Some(http);
        }
    }
    Ok(EmbedderChoice::Use(cfg))
}

/// The commented `kb.toml` that `kb init` writes.
pub const TEMPLATE: &str = r#"# kb configuration. Every command reads this file from the current directory
# (or the one --config names). --db, KB_DATABASE_URL and DATABASE_URL override
# database.url. ${VAR} and ${VAR:-default} are replaced from the environment.

# The knowledge base commands use when --kb is not given.
default_kb = "notes"

[database]
# sqlite:PATH (relative to this file) or postgres://user:password@host:5432/db
url = "${KB_DATABASE_URL:-sqlite:.kb/index.db}"

[sqlite]
# pool_size = 8
# busy_timeout_secs = 5
# "full": every acknowledged write survives a power loss (the default). "normal": faster
# single writes, but a power loss can lose the last ones; fine for a KB rebuilt by sync.
# durability = "full"

[postgres]
# schema = "public"
# pool_max_size = 16
# connect_timeout_secs = 10
# statement_timeout_secs = 30
# ef_search = 100

[embedder]
# local (all-MiniLM-L6-v2 on the CPU), openai, ollama, hashing (tests), or none
provider = "local"
# model_dir = "~/.cache/kb/models/all-MiniLM-L6-v2"
# For openai / ollama:
# url = "https://api.openai.com"
# model = "text-embedding-3-small"
# dimension = 1536
# api_key = "${OPENAI_API_KEY}"
# Background embedding workers run by `kb serve` (0 turns them off).
# workers = 1

[sync]
# Entries written per transaction.
# batch_size = 500
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_replaces_set_variables_and_defaults() {
        std::env::set_var("KB_TEST_EXPAND_A", "alpha");
        std::env::remove_var("KB_TEST_EXPAND_UNSET");
        assert_eq!(expand("x${KB_TEST_EXPAND_A}y").unwrap(), "xalphay");
        assert_eq!(expand("${KB_TEST_EXPAND_UNSET:-dflt}").unwrap(), "dflt");
        assert_eq!(expand("pa$$word$x").unwrap(), "pa$word$x");
        assert!(expand("${KB_TEST_EXPAND_UNSET}")
            .unwrap_err()
            .contains("not set"));
        assert!(expand("${unclosed").is_err());
        assert!(expand("${1BAD}").is_err());
    }

    fn load_file(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
        Config::load(&ConfigOverrides {
            db: None,
            config: None,
            cwd: Some(dir.path().to_owned()),
        })
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_file_and_key() {
        let e = load_file("[database]\nurll = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("kb.toml") && e.contains("database") && e.contains("urll"),
            "{e}"
        );
        let e = load_file("[postgres]\npool_max_size = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("postgres.pool_max_size") && e.contains("u32"),
            "{e}"
        );
        let e = load_file("[embedder]\nprovider = \"magic\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("embedder.provider") && e.contains("local"),
            "{e}"
        );
    }
}
