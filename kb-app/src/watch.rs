//! `kb sync --watch`: file events (the `notify` crate, debounced) trigger the same
//! incremental sync; embedding follows each sync that wrote something.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use embed::Embedder;
use notify_debouncer_full::notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use storage_core::Store;

use crate::error::{AppError, Result};
use crate::sync::{sync_folder, SyncOptions, SyncReport};
use crate::NoProgress;

/// Whether a changed path can change the KB: a markdown file, or a folder (renamed or
/// removed with its notes), outside hidden folders (so the store's own `.kb/` files, which
/// every sync writes, never trigger another sync).
fn relevant(root: &Path, p: &Path) -> bool {
    let rel = p.strip_prefix(root).unwrap_or(p);
    if rel
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
    {
        return false;
    }
    match p.extension().and_then(|e| e.to_str()) {
        Some(e) => e.eq_ignore_ascii_case("md") || e.eq_ignore_ascii_case("markdown"),
        None => true,
    }
}

/// Syncs `root` into `kb` whenever its files change, until `shutdown` completes. Each
/// sync's result goes to `on_report`; a failed sync is reported and watching goes on.
pub async fn watch_folder(
    store: Arc<dyn Store>,
    kb: &str,
    root: &Path,
    opts: &SyncOptions,
    embedder: Option<Arc<dyn Embedder>>,
    mut on_report: impl FnMut(Result<SyncReport>),
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let root = std::fs::canonicalize(root).map_err(|e| AppError::io(root, e))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<DebounceEventResult>();
    let mut debouncer = new_debouncer(Duration::from_millis(300), None, move |res| {
        let _ = tx.send(res);
    })
    .map_err(|e| AppError::usage(format!("cannot watch {}: {e}", root.display())))?;
    debouncer
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|e| AppError::usage(format!("cannot watch {}: {e}", root.display())))?;
    tokio::pin!(shutdown);
    loop {
        let events = tokio::select! {
            _ = &mut shutdown => break,
            ev = rx.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
        };
        let touched = match events {
            Ok(evs) => evs
                .iter()
                .any(|e| e.paths.iter().any(|p| relevant(&root, p))),
            Err(_) => true,
        };
        if !touched {
            continue;
        }
        let result = sync_folder(store.as_ref(), kb, &root, opts, &NoProgress).await;
        let wrote = result.as_ref().is_ok_and(|r| r.changed());
        on_report(result);
        if let (true, Some(e)) = (wrote, &embedder) {
            if let Err(err) = crate::embedding::embed_queue(
                store.clone(),
                e.clone(),
                crate::embedding::default_workers(),
                &NoProgress,
            )
            .await
            {
                on_report(Err(err));
            }
        }
    }
    drop(debouncer);
    Ok(())
}
