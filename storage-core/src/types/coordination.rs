//! Claims and compare-and-set outcomes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::*;
use crate::error::{Result, StorageError};

/// Checks the arguments of [`claim`](crate::Store::claim) with the rule
/// [`NewEntry::normalized`] applies to status and assignee, so a claimed entry can always
/// be upserted again; the new status must also be non-empty.
pub fn validate_claim(new_status: &str, assignee: &str) -> Result<()> {
    if new_status.is_empty() {
        return Err(StorageError::invalid_input(
            "the new status must be non-empty text",
        ));
    }
    validate_short("status", new_status)?;
    validate_short("assignee", assignee)
}

/// Result of an atomic status claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimOutcome {
    /// The entry had the expected status; it now has the new status and assignee.
    Claimed(Box<Entry>),
    /// Someone else got there first; this is what the entry holds now.
    NotInExpectedState {
        /// The entry's status now.
        current_status: Option<String>,
        /// The entry's assignee now.
        assignee: Option<String>,
    },
    /// The entry does not exist.
    NotFound,
}

/// Result of a compare-and-set on one metadata path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CasOutcome {
    /// The value at the path was the expected one and is now the new one.
    Swapped,
    /// The value at the path was not the expected one; `current` is what is there
    /// (`None` when the path is absent).
    Mismatch {
        /// The value at the path now.
        current: Option<Value>,
    },
    /// The entry does not exist.
    NotFound,
}
