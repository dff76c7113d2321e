//! `kb import FILE.jsonl`: BEIR-style lines `{"_id", "title", "text"}`, plus any entry
//! field (`tags`, `type`, `summary`, `metadata`, …), streamed in batches.

use std::io::BufRead;
use std::path::Path;

use serde::Serialize;
use storage_core::{NewEntry, Store};

use crate::error::{AppError, Result};
use crate::input::EntryInput;
use crate::sync::ensure_kb;
use crate::Progress;

#[derive(Debug, Clone, Serialize)]
pub struct LineFailure {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub kb: String,
    pub imported: u64,
    pub failed: Vec<LineFailure>,
    pub elapsed_ms: u64,
}

/// Imports `path` into `kb` (created if missing). Bad lines are reported by number and
/// skipped; good lines are written in batches of `batch_size`, one transaction each.
pub async fn import_jsonl(
    store: &dyn Store,
    kb: &str,
    path: &Path,
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let started = std::time::Instant::now();
    storage_core::validate_name("knowledge base name", kb)?;
    let file = std::fs::File::open(path).map_err(|e| AppError::io(path, e))?;
    let total = file.metadata().map(|m| m.len()).ok();
    ensure_kb(store, kb).await?;
    let mut reader = std::io::BufReader::new(file);
    let mut report = ImportReport {
        kb: kb.to_owned(),
        imported: 0,
        failed: Vec::new(),
        elapsed_ms: 0,
    };
    progress.start("importing", total);
    let mut batch: Vec<NewEntry> = Vec::with_capacity(batch_size);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| AppError::io(path, e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        progress.advance(n as u64);
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim(),
            Err(_) => {
                report.failed.push(LineFailure {
                    line: line_no,
                    reason: "not valid UTF-8".into(),
                });
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        match parse_line(kb, text) {
            Ok(e) => batch.push(e),
            Err(reason) => report.failed.push(LineFailure {
                line: line_no,
                reason,
            }),
        }
        if batch.len() >= batch_size.max(1) {
            store.upsert_entries(&batch).await?;
            report.imported += batch.len() as u64;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        store.upsert_entries(&batch).await?;
        report.imported += batch.len() as u64;
    }
    if report.imported > 1_000 {
        store.optimize().await?;
    }
    progress.finish();
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

fn parse_line(kb: &str, text: &str) -> std::result::Result<NewEntry, String> {
    let line: EntryInput = serde_json::from_str(text).map_err(|e| {
        let msg = e.to_string();
        msg.split(" at line ").next().unwrap_or(&msg).to_owned()
    })?;
    if line.kb.as_deref().is_some_and(|k| k != kb) {
        return Err(format!(
            "`kb` {:?} differs from the KB imported into ({kb})",
            line.kb
        ));
    }
    let id = line.id.clone().ok_or("missing field `_id`")?;
    // Validated here so one bad line cannot fail its whole batch.
    line.into_entry(kb, id)
        .normalized()
        .map_err(|err| err.to_string())
}
