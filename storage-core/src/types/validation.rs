//! Checks every backend applies to ids, names and JSON before writing.

use serde_json::Value;

use super::*;
use crate::error::{Result, StorageError};

pub(super) fn check_len(what: &str, s: &str, max: usize) -> Result<()> {
    if s.len() > max {
        return Err(StorageError::invalid_input(format!(
            "{what} is {} bytes, more than the limit of {max}",
            s.len()
        )));
    }
    Ok(())
}

/// Bounds the length of a list an entry or a call carries.
pub(super) fn check_count(what: &str, n: usize, max: usize) -> Result<()> {
    if n > max {
        return Err(StorageError::invalid_input(format!(
            "{n} {what}, more than the limit of {max}"
        )));
    }
    Ok(())
}

/// The size of one `upsert_entries` call, checked by every backend before it starts.
pub fn check_batch(entries: &[NewEntry]) -> Result<()> {
    check_count("entries in one write", entries.len(), MAX_ENTRIES_PER_BATCH)
}

/// Longest description of a KB or a collection, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;

/// A description: at most [`MAX_DESCRIPTION_BYTES`], no NUL.
pub(super) fn check_description(what: &str, s: &str) -> Result<()> {
    check_no_nul(what, s)?;
    if s.len() > MAX_DESCRIPTION_BYTES {
        return Err(StorageError::invalid_input(format!(
            "{what} is {} bytes; at most {MAX_DESCRIPTION_BYTES} are allowed",
            s.len()
        )));
    }
    Ok(())
}

/// Rejects text containing NUL (`\0`). Postgres cannot store it in `text` or `jsonb`
/// (`\u0000`) while SQLite can, so without this rule the same write succeeded on one
/// backend and failed with an engine error on the other.
pub(super) fn check_no_nul(what: &str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(StorageError::invalid_input(format!(
            "{what} contains a NUL character (\\0), which is not allowed in stored text"
        )));
    }
    Ok(())
}

/// [`check_no_nul`] for every object key and string in a JSON value (the value of a
/// metadata compare-and-set, a setting); `what` names the value.
pub fn check_json_text(what: &str, v: &Value) -> Result<()> {
    check_json_at(what, &mut String::new(), v)
}

/// [`check_json_text`] of a value found at the dotted `path`, which messages name.
pub(super) fn check_json_at(what: &str, path: &mut String, v: &Value) -> Result<()> {
    match v {
        Value::String(s) if path.is_empty() => check_no_nul(&format!("{what} value"), s),
        Value::String(s) => check_no_nul(&format!("{what} value at {path:?}"), s),
        Value::Array(items) => items.iter().try_for_each(|i| check_json_at(what, path, i)),
        Value::Object(m) => {
            for (k, v) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                check_no_nul(&format!("{what} key {path:?}"), k)?;
                check_json_at(what, path, v)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

pub(super) fn validate_short(what: &str, s: &str) -> Result<()> {
    check_len(what, s, MAX_SHORT_FIELD_BYTES)?;
    if s.chars().any(|c| c.is_control()) {
        return Err(StorageError::invalid_input(format!(
            "{what} {s:?} contains a control character"
        )));
    }
    Ok(())
}

/// Entry ids: non-empty, no control characters, at most 512 bytes, no leading/trailing space.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(StorageError::invalid_input("entry id must not be empty"));
    }
    if id.trim() != id {
        return Err(StorageError::invalid_input(format!(
            "entry id {id:?} has leading or trailing whitespace"
        )));
    }
    validate_short("entry id", id)
}

/// Knowledge base names and collection names: 1–128 chars of `[A-Za-z0-9_.-]`, not
/// starting with `.` or `-`. Strict so names are safe in paths, URLs and config files.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(StorageError::invalid_input(format!(
            "{what} {name:?} is not valid: use 1-128 characters from A-Z a-z 0-9 _ - . \
             and do not start with '.' or '-'"
        )))
    }
}
