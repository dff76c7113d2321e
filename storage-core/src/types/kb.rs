//! Knowledge bases and what GC removes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::*;
use crate::error::Result;

/// A named container of entries. Deleting it deletes everything in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KnowledgeBase {
    /// The KB's name, unique in the store.
    pub name: String,
    /// What the KB holds, in words.
    pub description: String,
    /// `None` for a persistent KB; for an ephemeral one, the instant after which
    /// [`gc_expired`](crate::Store::gc_expired) removes it.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the KB was created.
    pub created_at: DateTime<Utc>,
}

impl KnowledgeBase {
    /// Whether the KB expires.
    pub fn is_ephemeral(&self) -> bool {
        self.expires_at.is_some()
    }
}

/// What to create: a persistent KB, or an ephemeral one with an expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewKnowledgeBase {
    /// The name of the KB to create.
    pub name: String,
    /// What the KB holds, in words.
    #[serde(default)]
    pub description: String,
    /// When set, the KB is ephemeral and expires at this instant.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewKnowledgeBase {
    /// A persistent KB without a description.
    pub fn persistent(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            expires_at: None,
        }
    }
    /// An ephemeral KB that expires `ttl` from now.
    pub fn ephemeral(name: impl Into<String>, ttl: chrono::Duration) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            expires_at: Some(expiry_after(Utc::now(), ttl)),
        }
    }
    /// Sets the description.
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }
    /// Rejects a malformed name, or a description with a NUL character or longer than
    /// [`MAX_DESCRIPTION_BYTES`].
    pub fn validate(&self) -> Result<()> {
        validate_name("knowledge base name", &self.name)?;
        check_description("knowledge base description", &self.description)
    }
}

/// `now + ttl`, saturating where `+` would panic (past chrono's range): a ttl too long
/// to represent means "as late as possible", one too negative "already expired".
pub(super) fn expiry_after(now: DateTime<Utc>, ttl: chrono::Duration) -> DateTime<Utc> {
    now.checked_add_signed(ttl)
        .unwrap_or(if ttl > chrono::Duration::zero() {
            DateTime::<Utc>::MAX_UTC
        } else {
            now
        })
}

/// An expired KB `gc_expired` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RemovedKnowledgeBase {
    /// The KB's name.
    pub name: String,
    /// Number of entries it held.
    pub entries: u64,
}

/// What `gc_expired` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GcReport {
    /// Expired KBs, ordered by name, each with the number of entries it held.
    pub kbs: Vec<RemovedKnowledgeBase>,
    /// Expired entries of KBs that remain.
    pub entries: u64,
}

impl GcReport {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.kbs.is_empty() && self.entries == 0
    }
}
