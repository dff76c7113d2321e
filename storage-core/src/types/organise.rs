//! Settings and collections.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};

/// Where a setting lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingScope {
    /// The whole store.
    Global,
    /// One knowledge base.
    Kb(String),
}

impl SettingScope {
    /// The KB column both backends store a setting under: `""` for global settings.
    pub fn kb_key(&self) -> &str {
        match self {
            SettingScope::Global => "",
            SettingScope::Kb(kb) => kb,
        }
    }
}

/// Longest setting key, in bytes.
pub const MAX_SETTING_KEY_BYTES: usize = 256;

/// Rejects a setting key that is empty, longer than [`MAX_SETTING_KEY_BYTES`] or holds
/// control characters.
pub fn validate_setting_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_SETTING_KEY_BYTES || key.chars().any(char::is_control) {
        return Err(StorageError::invalid_input(
            "setting keys are 1-256 characters without control characters",
        ));
    }
    Ok(())
}

/// Rejects a collection whose name is not a valid name, or whose description holds a NUL
/// or is longer than [`MAX_DESCRIPTION_BYTES`](crate::MAX_DESCRIPTION_BYTES).
pub fn validate_collection(name: &str, description: &str) -> Result<()> {
    super::validation::validate_name("collection name", name)?;
    super::validation::check_description("collection description", description)
}

/// A named, ordered list of entries of one KB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Collection {
    /// The KB the collection belongs to.
    pub kb: String,
    /// The collection's name, unique within its KB.
    pub name: String,
    /// What the collection is for, in words.
    pub description: String,
    /// Number of member entries.
    pub size: u64,
}
