//! The one place where rusqlite and r2d2 errors become [`StorageError`] kinds.
//! Driver text is kept only as the error's `source`, never in its message.

use rusqlite::{ffi, ErrorCode};
use storage_core::{ConstraintKind, StorageError};

pub(crate) fn map_sqlite(e: rusqlite::Error) -> StorageError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return StorageError::Timeout {
                    message: "the SQLite database stayed locked by another writer longer than \
                              busy_timeout"
                        .into(),
                    source: Some(Box::new(e)),
                }
            }
            ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly => {
                return StorageError::Unavailable {
                    message: "could not open the SQLite database file for writing".into(),
                    hint: "check that the directory exists and is writable".into(),
                    source: Some(Box::new(e)),
                }
            }
            ErrorCode::DiskFull => {
                return StorageError::Unavailable {
                    message: "the disk holding the SQLite database is full".into(),
                    hint: "free disk space and retry".into(),
                    source: Some(Box::new(e)),
                }
            }
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
                return StorageError::backend(
                    "the file is not a valid SQLite database (or is corrupt)",
                    e,
                )
            }
            ErrorCode::ConstraintViolation => {
                let kind = match f.extended_code {
                    ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                        ConstraintKind::Unique
                    }
                    ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ConstraintKind::ForeignKey,
                    ffi::SQLITE_CONSTRAINT_NOTNULL => ConstraintKind::NotNull,
                    ffi::SQLITE_CONSTRAINT_CHECK => ConstraintKind::Check,
                    _ => {
                        return StorageError::Conflict {
                            message: "the write violates a constraint between records".into(),
                            source: Some(Box::new(e)),
                        }
                    }
                };
                return StorageError::constraint(kind, e);
            }
            ErrorCode::TooBig => {
                return StorageError::invalid_input("a value is larger than SQLite accepts")
            }
            _ => {}
        }
    }
    StorageError::backend("SQLite operation failed", e)
}

pub(crate) fn map_pool(e: r2d2::Error) -> StorageError {
    StorageError::Timeout {
        message: "no SQLite connection became free within the pool's connection timeout".into(),
        source: Some(Box::new(e)),
    }
}

pub(crate) fn map_json(e: serde_json::Error) -> StorageError {
    StorageError::backend("stored JSON could not be decoded", e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each constraint kind maps to the kind of error it means, with the driver's error
    /// kept as the source and out of the message.
    #[test]
    fn constraint_failures_map_by_meaning() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE p (k TEXT PRIMARY KEY);
             CREATE TABLE t (k TEXT UNIQUE, n INTEGER NOT NULL CHECK (n >= 0),
                             p TEXT REFERENCES p(k));
             INSERT INTO p VALUES ('a');
             INSERT INTO t VALUES ('x', 1, 'a');",
        )
        .unwrap();
        let fail = |sql: &str| map_sqlite(c.execute(sql, []).unwrap_err());
        let unique = fail("INSERT INTO t VALUES ('x', 1, NULL)");
        assert!(
            matches!(unique, StorageError::AlreadyExists { .. }),
            "{unique:?}"
        );
        let pk = fail("INSERT INTO p VALUES ('a')");
        assert!(matches!(pk, StorageError::AlreadyExists { .. }), "{pk:?}");
        let fk = fail("INSERT INTO t VALUES ('y', 1, 'missing')");
        assert!(matches!(fk, StorageError::NotFound { .. }), "{fk:?}");
        let not_null = fail("INSERT INTO t VALUES ('z', NULL, NULL)");
        assert!(
            matches!(not_null, StorageError::InvalidInput { .. }),
            "{not_null:?}"
        );
        let check = fail("INSERT INTO t VALUES ('w', -1, NULL)");
        assert!(
            matches!(check, StorageError::InvalidInput { .. }),
            "{check:?}"
        );
        for e in [unique, pk, fk, not_null, check] {
            assert!(
                std::error::Error::source(&e).is_some(),
                "{e:?} lost its source"
            );
            assert!(!e.to_string().contains("constraint failed"), "{e}");
        }
    }
}
