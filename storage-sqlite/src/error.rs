//! The one place where rusqlite and r2d2 errors become [`StorageError`] kinds.
//! Driver text is kept only as the error's `source`, never in its message.

use rusqlite::ErrorCode;
use storage_core::StorageError;

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
                return StorageError::Conflict {
                    message: "the write violates a uniqueness or reference constraint".into(),
                }
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
