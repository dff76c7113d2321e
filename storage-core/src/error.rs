//! One error type for every backend, with kinds that say what went wrong for the caller,
//! never which driver said it.
//!
//! Backends map their driver's codes into these kinds in one private module each
//! (`storage-sqlite/src/error.rs`, …). The `Display` text of every variant is written by
//! this crate or by the backend's mapping code — driver messages are kept only as
//! `source` for logs, so they never reach a user through `to_string()`.

use std::error::Error as StdError;

/// Boxed driver error, kept for logs and `Error::source()`.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Result alias used throughout the protocol.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The kinds of integrity constraint an engine enforces, as both backends name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    /// A unique or primary key.
    Unique,
    /// A foreign key: the referenced row does not exist.
    ForeignKey,
    /// A NOT NULL column.
    NotNull,
    /// A CHECK constraint.
    Check,
}

/// Every failure a storage backend can report.
///
/// Match on the kind, never on the message: messages are for humans and may change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The named thing does not exist (a knowledge base, an entry, a collection…).
    #[error("{what} not found")]
    NotFound {
        /// What was not found, in words (`entry kb/id`).
        what: String,
        /// The driver's error, kept for logs; never shown to users.
        #[source]
        source: Option<BoxError>,
    },

    /// Creating something that already exists.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What already exists, in words.
        what: String,
        /// The driver's error, kept for logs; never shown to users.
        #[source]
        source: Option<BoxError>,
    },

    /// The write raced with another writer or violates a constraint between records.
    #[error("conflict: {message}")]
    Conflict {
        /// What conflicted, in words.
        message: String,
        /// The driver's error, kept for logs; never shown to users.
        #[source]
        source: Option<BoxError>,
    },

    /// The database aborted the transaction because of a concurrent one (a deadlock or a
    /// serialization failure); nothing was written, and the same call can simply be retried.
    #[error("the write was aborted by a concurrent one; nothing was written, retry it: {message}")]
    Aborted {
        /// Why the transaction was aborted, in words (`deadlock detected`).
        message: String,
        /// The driver's error, kept for logs; never shown to users.
        #[source]
        source: Option<BoxError>,
    },

    /// The caller passed a value the protocol does not accept (bad id, oversized field…).
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong with the input, in words.
        message: String,
        /// The driver's error, kept for logs; never shown to users.
        #[source]
        source: Option<BoxError>,
    },

    /// A search query could not be parsed. `position` is a character offset into the query.
    #[error("invalid query at position {position}: {message}")]
    InvalidQuery {
        /// What is wrong with the query, in words.
        message: String,
        /// Character offset of the error in the query.
        position: usize,
    },

    /// A vector's length differs from the store's embedding dimension.
    #[error(
        "embedding dimension mismatch: the store holds {expected}-dimensional vectors but got {actual}; \
         use an embedding model with {expected} dimensions, or re-embed the store into a new one"
    )]
    DimensionMismatch {
        /// The store's dimension.
        expected: usize,
        /// The vector's length.
        actual: usize,
    },

    /// The store was built with another embedding model or dimension than the one configured.
    #[error(
        "embedding model mismatch: the store was embedded with {stored_model} ({stored_dimension} dims) \
         but {requested_model} ({requested_dimension} dims) was configured; configure {stored_model}, \
         or clear the vectors and re-embed with the new model"
    )]
    ModelMismatch {
        /// The model the store's vectors come from.
        stored_model: String,
        /// The dimension of the store's vectors.
        stored_dimension: usize,
        /// The model that was configured.
        requested_model: String,
        /// The dimension that was configured.
        requested_dimension: usize,
    },

    /// The backend cannot be reached right now; retrying later may succeed.
    #[error("storage unavailable: {message} ({hint})")]
    Unavailable {
        /// What cannot be reached, in words.
        message: String,
        /// What the user can do about it (`check the user and password in the URL`).
        hint: String,
        /// The driver's error, kept for logs; never shown to users.
        #[source]
        source: Option<BoxError>,
    },

    /// The operation did not finish in time (pool wait, lock wait, statement timeout).
    #[error("storage timed out: {message}")]
    Timeout {
        /// What did not finish in time, in words.
        message: String,
        /// The driver's error, kept for logs; never shown to users.
        #[source]
        source: Option<BoxError>,
    },

    /// Anything else the backend reported. The message is the backend crate's own words;
    /// the driver's error is kept only as the source.
    #[error("storage backend error: {message}")]
    Backend {
        /// What failed, in the backend crate's own words.
        message: String,
        /// The driver's error, kept for logs; never shown to users.
        #[source]
        source: Option<BoxError>,
    },
}

impl StorageError {
    /// `NotFound` without a source; `what` names the missing thing.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound {
            what: what.into(),
            source: None,
        }
    }
    /// `AlreadyExists` without a source; `what` names the existing thing.
    pub fn already_exists(what: impl Into<String>) -> Self {
        Self::AlreadyExists {
            what: what.into(),
            source: None,
        }
    }
    /// `InvalidInput` without a source.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput {
            message: message.into(),
            source: None,
        }
    }
    /// `Conflict` without a source.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
            source: None,
        }
    }
    /// `InvalidQuery` at character offset `position`.
    pub fn invalid_query(message: impl Into<String>, position: usize) -> Self {
        Self::InvalidQuery {
            message: message.into(),
            position,
        }
    }
    /// A missing knowledge base, worded the same on every backend.
    pub fn kb_not_found(kb: &str) -> Self {
        Self::not_found(format!("knowledge base {kb:?}"))
    }
    /// A missing entry.
    pub fn entry_not_found(key: &crate::EntryKey) -> Self {
        Self::not_found(format!("entry {key}"))
    }
    /// A missing collection.
    pub fn collection_not_found(kb: &str, name: &str) -> Self {
        Self::not_found(format!("collection {name:?} in knowledge base {kb:?}"))
    }
    /// Vectors written before any embedding space was fixed.
    pub fn no_embedding_space() -> Self {
        Self::invalid_input(
            "no embedding space is set: call ensure_embedding_space (or configure the \
             embedding model) before storing vectors",
        )
    }
    /// `Backend` with the backend's own message and the driver's error as the source.
    pub fn backend(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The one mapping of an engine's constraint failure to a kind, by what the
    /// constraint means, used by every backend: a duplicate key is `AlreadyExists`, a
    /// reference to a missing row is `NotFound`, a missing or out-of-range value is
    /// `InvalidInput`. The driver's error is kept as the source.
    pub fn constraint(kind: ConstraintKind, source: impl Into<BoxError>) -> Self {
        let source = Some(source.into());
        match kind {
            ConstraintKind::Unique => Self::AlreadyExists {
                what: "a record with the same key".into(),
                source,
            },
            ConstraintKind::ForeignKey => Self::NotFound {
                what: "a record the write refers to".into(),
                source,
            },
            ConstraintKind::NotNull => Self::InvalidInput {
                message: "a required value is missing".into(),
                source,
            },
            ConstraintKind::Check => Self::InvalidInput {
                message: "a value is outside the range the store accepts".into(),
                source,
            },
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::Timeout { .. } | Self::Aborted { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_retryable_and_conflicts_are_not() {
        let aborted = StorageError::Aborted {
            message: "deadlock".into(),
            source: None,
        };
        assert!(aborted.is_retryable());
        assert!(aborted.to_string().contains("retry"));
        assert!(!StorageError::conflict("a lease is held").is_retryable());
        assert!(!StorageError::invalid_input("bad").is_retryable());
    }
}
