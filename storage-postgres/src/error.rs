//! The one place where tokio-postgres and bb8 errors become [`StorageError`] kinds, by
//! SQLSTATE. Driver text is kept only as the error's `source`, never in its message.

use storage_core::{ConstraintKind, StorageError};
use tokio_postgres::error::SqlState;

/// Maps a driver error; `endpoint` (`host:port`) names the server in connection errors.
pub(crate) fn map_pg(e: tokio_postgres::Error, endpoint: &str) -> StorageError {
    let Some(code) = e.code().cloned() else {
        // No SQLSTATE: the connection itself failed (refused, reset, closed, TLS…) — or
        // the client could not encode or decode a value, which is a bug, not an outage.
        if let Some(reason) = crate::tls::handshake_failure(&e) {
            return StorageError::Unavailable {
                message: format!("could not connect to Postgres at {endpoint}: {reason}"),
                hint: "check sslmode and sslrootcert in the URL (README, section Postgres)".into(),
                source: Some(Box::new(e)),
            };
        }
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        if e.is_closed() || io || std::error::Error::source(&e).is_none() {
            return unavailable(endpoint, Some(Box::new(e)));
        }
        return StorageError::Backend {
            message: "the Postgres client could not convert a value".into(),
            source: Some(Box::new(e)),
        };
    };
    let c = code.code();
    match code {
        SqlState::UNIQUE_VIOLATION => StorageError::constraint(ConstraintKind::Unique, e),
        SqlState::FOREIGN_KEY_VIOLATION => StorageError::constraint(ConstraintKind::ForeignKey, e),
        SqlState::NOT_NULL_VIOLATION => StorageError::constraint(ConstraintKind::NotNull, e),
        SqlState::CHECK_VIOLATION => StorageError::constraint(ConstraintKind::Check, e),
        SqlState::QUERY_CANCELED => StorageError::Timeout {
            message: "the statement ran longer than statement_timeout".into(),
            source: Some(Box::new(e)),
        },
        SqlState::LOCK_NOT_AVAILABLE => StorageError::Timeout {
            message: "a row or table lock could not be taken in time".into(),
            source: Some(Box::new(e)),
        },
        SqlState::T_R_SERIALIZATION_FAILURE | SqlState::T_R_DEADLOCK_DETECTED => {
            StorageError::Aborted {
                message: if code == SqlState::T_R_DEADLOCK_DETECTED {
                    "deadlock detected".into()
                } else {
                    "serialization failure".into()
                },
                source: Some(Box::new(e)),
            }
        }
        SqlState::TOO_MANY_CONNECTIONS => StorageError::Unavailable {
            message: format!("Postgres at {endpoint} has no free connection slots"),
            hint: "lower pool_max_size or raise max_connections".into(),
            source: Some(Box::new(e)),
        },
        SqlState::INVALID_PASSWORD | SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            StorageError::Unavailable {
                message: format!("Postgres at {endpoint} refused the credentials"),
                hint: "check the user and password in the URL".into(),
                source: Some(Box::new(e)),
            }
        }
        SqlState::INVALID_CATALOG_NAME => StorageError::Unavailable {
            message: format!("the database in the URL does not exist on {endpoint}"),
            hint: "create it (createdb) or fix the URL".into(),
            source: Some(Box::new(e)),
        },
        SqlState::ADMIN_SHUTDOWN | SqlState::CRASH_SHUTDOWN | SqlState::CANNOT_CONNECT_NOW => {
            unavailable(endpoint, Some(Box::new(e)))
        }
        _ if c.starts_with("08") => unavailable(endpoint, Some(Box::new(e))),
        _ if c.starts_with("22") => StorageError::InvalidInput {
            message: "a value was rejected by Postgres (out of range or malformed)".into(),
            source: Some(Box::new(e)),
        },
        _ => StorageError::backend(format!("Postgres operation failed (SQLSTATE {c})"), e),
    }
}

pub(crate) fn unavailable(endpoint: &str, source: Option<storage_core::BoxError>) -> StorageError {
    StorageError::Unavailable {
        message: format!("could not connect to Postgres at {endpoint} — is it running?"),
        hint: "see README, section Postgres".into(),
        source,
    }
}

pub(crate) fn map_pool(e: bb8::RunError<tokio_postgres::Error>, endpoint: &str) -> StorageError {
    match e {
        bb8::RunError::User(e) => map_pg(e, endpoint),
        bb8::RunError::TimedOut => StorageError::Timeout {
            message: "no Postgres connection became free within the pool's connection timeout"
                .into(),
            source: None,
        },
    }
}

pub(crate) fn map_json(e: serde_json::Error) -> StorageError {
    StorageError::backend("stored JSON could not be decoded", e)
}
