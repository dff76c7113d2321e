//! `kb`: sync folders of markdown notes into SQLite or Postgres, search them, and keep
//! them in shape. Argument parsing, output and exit codes only; everything else is
//! `kb-app`.
//!
//! Exit codes: 0 done; 1 done, but not everything (files that failed to sync, a claim
//! lost, a verification that found differences); 2 an error (bad configuration or
//! arguments, database unreachable, …).

mod admin;
mod args;
mod output;
mod progress;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use storage_core::prelude::*;

use clap::Parser;
use kb_app::{
    choose_kb, embedding, export, import, sync, AppError, Config, ConfigOverrides, EmbedderChoice,
    OpenMode, OpenStore,
};
use search_hybrid::{SearchMode, SearchRequest};
use storage_core::{ClaimOutcome, EntryKey, Filter, LifecycleFilter, SortField, SortOrder};

use crate::args::{Cli, Command, IndexCommand};
use crate::output::Out;
use crate::progress::Bar;

/// What a command ends with.
enum Done {
    Ok,
    /// Done, but not all of it (exit 1).
    Partial,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server logs its requests (info) by default; other commands only warnings.
    let serving = matches!(cli.command, Command::Serve { .. });
    init_logging(
        cli.verbose + u8::from(serving && cli.verbose == 0),
        cli.quiet,
    );
    let out = Out::new(cli.json, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let verbose = cli.verbose;
    match runtime.block_on(run(cli, &out)) {
        Ok(Done::Ok) => ExitCode::SUCCESS,
        Ok(Done::Partial) => ExitCode::from(1),
        Err(e) => {
            out.error(&e, verbose > 0);
            ExitCode::from(2)
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

async fn open(
    cli_db: Option<&str>,
    cli: &Globals,
    mode: OpenMode,
) -> Result<(Config, OpenStore), AppError> {
    let config = Config::load(&ConfigOverrides {
        db: cli_db.map(str::to_owned),
        config: cli.config.clone(),
        cwd: None,
    })?;
    let store = OpenStore::open(&config.database, mode).await?;
    Ok((config, store))
}

struct Globals {
    db: Option<String>,
    config: Option<PathBuf>,
}

async fn run(cli: Cli, out: &Out) -> Result<Done, AppError> {
    let g = Globals {
        db: cli.db.clone(),
        config: cli.config.clone(),
    };
    let db = g.db.as_deref();
    let bar = || Bar::new(!out.quiet && !out.json);
    match cli.command {
        Command::Init { dir, kb } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            std::fs::create_dir_all(&dir).map_err(|e| AppError::io(&dir, e))?;
            let file = dir.join(kb_app::config::CONFIG_FILE);
            let wrote_config = !file.exists();
            if wrote_config {
                let kb_name = kb.as_deref().unwrap_or("notes");
                storage_core::validate_name("knowledge base name", kb_name)?;
                let text = kb_app::config::TEMPLATE.replace(
                    "default_kb = \"notes\"",
                    &format!("default_kb = \"{kb_name}\""),
                );
                std::fs::write(&file, text).map_err(|e| AppError::io(&file, e))?;
            }
            let config = Config::load(&ConfigOverrides {
                db: db.map(str::to_owned),
                config: Some(dir.clone()),
                cwd: None,
            })?;
            let store = OpenStore::open(&config.database, OpenMode::Create).await?;
            let kb_name = kb
                .or(config.default_kb.clone())
                .unwrap_or_else(|| "notes".into());
            sync::ensure_kb(store.store().as_ref(), &kb_name).await?;
            out.value(
                &serde_json::json!({
                    "config": file.display().to_string(),
                    "config_written": wrote_config,
                    "database": store.location(),
                    "kb": kb_name,
                }),
                || {
                    format!(
                        "{} {}\nstore at {}, knowledge base {kb_name}\nnext: kb sync FOLDER",
                        if wrote_config {
                            "wrote"
                        } else {
                            "kept existing"
                        },
                        file.display(),
                        store.location()
                    )
                },
            );
            Ok(Done::Ok)
        }
        Command::Sync(args)
        | Command::Index {
            command: IndexCommand::Sync(args),
        } => {
            let (config, store) = open(
                db,
                &g,
                if args.dry_run {
                    OpenMode::Existing
                } else {
                    OpenMode::Create
                },
            )
            .await?;
            let s = store.store();
            let kb = match args.kb.as_deref().or(config.default_kb.as_deref()) {
                Some(k) => k.to_owned(),
                None => match s.list_kbs().await?.as_slice() {
                    [only] => only.name.clone(),
                    _ => folder_kb_name(&args.dir)?,
                },
            };
            let opts = sync::SyncOptions {
                dry_run: args.dry_run,
                force: args.force,
                batch_size: config.batch_size,
            };
            let report = sync::sync_folder(s.as_ref(), &kb, &args.dir, &opts, &bar()).await?;
            out.sync_report(&report);
            let mut done = if report.failed.is_empty() {
                Done::Ok
            } else {
                Done::Partial
            };
            if !args.dry_run && !args.no_embed {
                embed_after_write(&store, &config, out).await?;
            }
            if args.watch && !args.dry_run {
                let shutdown = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                out.note(&format!("watching {} (Ctrl-C stops)", args.dir.display()));
                let embedder = if args.no_embed {
                    None
                } else {
                    optional_embedder(&config, out).await
                };
                kb_app::watch::watch_folder(
                    s.clone(),
                    &kb,
                    &args.dir,
                    &opts,
                    embedder,
                    |r| match r {
                        Ok(report) => out.sync_report(&report),
                        Err(e) => out.error(&e, false),
                    },
                    shutdown,
                )
                .await?;
                done = Done::Ok;
            }
            Ok(done)
        }
        Command::Export { dir, kb } => {
            let (config, store) = open(db, &g, OpenMode::Existing).await?;
            let s = store.store();
            let kb = choose_kb(s.as_ref(), kb.as_deref(), &config).await?;
            let r = export::export_kb(s.as_ref(), &kb, &dir, &bar()).await?;
            out.value(&r, || {
                format!("wrote {} files of {} to {}", r.written, r.kb, r.dir)
            });
            Ok(Done::Ok)
        }
        Command::Import { file, kb, no_embed } => {
            let (config, store) = open(db, &g, OpenMode::Create).await?;
            let s = store.store();
            let kb = match kb.as_deref().or(config.default_kb.as_deref()) {
                Some(k) => k.to_owned(),
                None => choose_kb(s.as_ref(), None, &config)
                    .await
                    .or_else(|_| folder_kb_name(&file))?,
            };
            let r = import::import_jsonl(s.as_ref(), &kb, &file, config.batch_size, &bar()).await?;
            out.value(&r, || {
                let mut t = format!("imported {} entries into {}", r.imported, r.kb);
                for f in &r.failed {
                    t.push_str(&format!("\n{}:{}: {}", file.display(), f.line, f.reason));
                }
                if !r.failed.is_empty() {
                    t.push_str(&format!("\n{} lines failed", r.failed.len()));
                }
                t
            });
            if !no_embed {
                embed_after_write(&store, &config, out).await?;
            }
            Ok(if r.failed.is_empty() {
                Done::Ok
            } else {
                Done::Partial
            })
        }
        Command::Search(a) => {
            let (config, store) = open(db, &g, OpenMode::Existing).await?;
            let mode: SearchMode = a.mode.parse().map_err(AppError::usage)?;
            let searcher = embedding::searcher(store.store(), &config.embedder, mode).await?;
            let mut filter = Filter::new().limit(a.limit).offset(a.offset);
            filter.kbs = a.kb.clone();
            filter.entry_types = a.entry_type.clone();
            if let Some(t) = &a.tag {
                filter = filter.tag_prefix(t);
            }
            let mut req = SearchRequest::new(a.query.clone(), mode).filter(filter);
            if a.any {
                req = req.any_words();
            }
            let res = searcher.search(&req).await?;
            out.search(&a.query, &res, a.explain);
            Ok(Done::Ok)
        }
        Command::Get { id, kb } => {
            let (config, store) = open(db, &g, OpenMode::Existing).await?;
            let s = store.store();
            let kb = choose_kb(s.as_ref(), kb.as_deref(), &config).await?;
            let e = s
                .get_entry(&EntryKey::new(&kb, &id))
                .await?
                .ok_or_else(|| AppError::NotFound {
                    what: format!("entry {kb}/{id}"),
                })?;
            out.value(&e, || {
                let rel = e
                    .source_path
                    .clone()
                    .unwrap_or_else(|| format!("{}.md", e.id));
                export::render(&e, &rel)
            });
            Ok(Done::Ok)
        }
        Command::List(a) => {
            let (config, store) = open(db, &g, OpenMode::Existing).await?;
            let s = store.store();
            let mut f = Filter::new().limit(a.limit).offset(a.offset);
            if let Some(kb) = a.kb.as_deref().or(config.default_kb.as_deref()) {
                f = f.kb(kb);
            }
            f.entry_types = a.entry_type;
            f.statuses = a.status;
            if let Some(t) = &a.tag {
                f = f.tag_prefix(t);
            }
            if let Some(p) = &a.path {
                f = f.path_prefix(p);
            }
            if a.all {
                f = f.lifecycle(LifecycleFilter::Any);
            }
            let field = match a.sort.as_str() {
                "created" => SortField::Created,
                "title" => SortField::Title,
                "date" => SortField::Date,
                "importance" => SortField::Importance,
                _ => SortField::Updated,
            };
            f = f.sort(
                field,
                if a.asc {
                    SortOrder::Asc
                } else {
                    SortOrder::Desc
                },
            );
            let total = s.count_entries(&f).await?;
            let entries = s.list_entries(&f).await?;
            out.entries(&entries, total);
            Ok(Done::Ok)
        }
        Command::Put { file, kb, id, ttl } => {
            let (config, store) = open(db, &g, OpenMode::Create).await?;
            let s = store.store();
            let kb = choose_kb(s.as_ref(), kb.as_deref(), &config).await?;
            let (name, text) = match file.as_deref() {
                None => ("stdin".to_owned(), read_stdin()?),
                Some(p) if p.as_os_str() == "-" => ("stdin".to_owned(), read_stdin()?),
                Some(p) => (
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    std::fs::read_to_string(p).map_err(|e| AppError::io(p, e))?,
                ),
            };
            if name == "stdin" && id.is_none() && !text.trim_start().starts_with("---") {
                return Err(AppError::usage(
                    "an entry read from stdin needs --id or an `id:` in its frontmatter",
                ));
            }
            let mut entry = kb_app::markdown::standalone_entry(&kb, &name, &text, id.as_deref())
                .map_err(|e| {
                    AppError::usage(match e.line {
                        Some(l) => format!("{name}:{l}: {}", e.message),
                        None => format!("{name}: {}", e.message),
                    })
                })?;
            if let Some(ttl) = ttl {
                entry = entry.ttl(admin::parse_ttl(&ttl)?);
            }
            if s.get_kb(&kb).await?.is_none() {
                return Err(AppError::NotFound {
                    what: format!("knowledge base {kb}"),
                });
            }
            let stored = s.upsert_entry(&entry).await?;
            out.value(&stored, || format!("wrote {}/{}", stored.kb, stored.id));
            Ok(Done::Ok)
        }
        Command::Rm { id, kb } => {
            let (config, store) = open(db, &g, OpenMode::Existing).await?;
            let s = store.store();
            let kb = choose_kb(s.as_ref(), kb.as_deref(), &config).await?;
            let removed = s.delete_entry(&EntryKey::new(&kb, &id)).await?;
            if !removed {
                return Err(AppError::NotFound {
                    what: format!("entry {kb}/{id}"),
                });
            }
            out.value(
                &serde_json::json!({"kb": kb, "id": id, "deleted": true}),
                || format!("deleted {kb}/{id}"),
            );
            Ok(Done::Ok)
        }
        Command::Backlinks { id, kb } => {
            let (config, store) = open(db, &g, OpenMode::Existing).await?;
            let s = store.store();
            let kb = choose_kb(s.as_ref(), kb.as_deref(), &config).await?;
            let links = s.backlinks(&EntryKey::new(&kb, &id)).await?;
            let keys: Vec<EntryKey> = links.iter().map(|b| b.source.clone()).collect();
            let titles: std::collections::HashMap<EntryKey, String> = s
                .get_entries(&keys)
                .await?
                .into_iter()
                .map(|e| (e.key(), e.title))
                .collect();
            out.backlinks(&kb, &id, &links, &titles);
            Ok(Done::Ok)
        }
        Command::Timeline {
            kb,
            from,
            to,
            limit,
        } => {
            let (config, store) = open(db, &g, OpenMode::Existing).await?;
            let s = store.store();
            let mut f = Filter::new().limit(limit).date_range(from, to);
            if let Some(kb) = kb.as_deref().or(config.default_kb.as_deref()) {
                f = f.kb(kb);
            }
            let entries = s.timeline(&f).await?;
            out.timeline(&entries);
            Ok(Done::Ok)
        }
        Command::Reembed { kb, reset, workers } => embed(&g, out, Some((kb, reset)), workers).await,
        Command::Embed { workers } => embed(&g, out, None, workers).await,
        Command::Claim {
            id,
            kb,
            from,
            to,
            assignee,
        } => {
            let (config, store) = open(db, &g, OpenMode::Existing).await?;
            let s = store.store();
            let kb = choose_kb(s.as_ref(), kb.as_deref(), &config).await?;
            let expected = (from != "none").then_some(from.as_str());
            let outcome = s
                .claim(&EntryKey::new(&kb, &id), expected, &to, &assignee)
                .await?;
            match outcome {
                ClaimOutcome::Claimed(e) => {
                    out.value(&serde_json::json!({"won": true, "kb": kb, "id": id, "status": e.status, "assignee": e.assignee}),
                        || format!("claimed {kb}/{id}: {from} → {to}, assigned to {assignee}"));
                    Ok(Done::Ok)
                }
                ClaimOutcome::NotInExpectedState {
                    current_status,
                    assignee: holder,
                } => {
                    out.value(&serde_json::json!({"won": false, "kb": kb, "id": id, "status": current_status, "assignee": holder}),
                        || format!("lost: {kb}/{id} is {} (held by {})",
                            current_status.as_deref().unwrap_or("without status"),
                            holder.as_deref().unwrap_or("nobody")));
                    Ok(Done::Partial)
                }
                ClaimOutcome::NotFound => Err(AppError::NotFound {
                    what: format!("entry {kb}/{id}"),
                }),
            }
        }
        command => admin::run(command, &g, out).await,
    }
}

fn read_stdin() -> Result<String, AppError> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| AppError::io("stdin", e))?;
    Ok(s)
}

/// A KB name from a folder or file name (`My Notes/` → `My-Notes`).
fn folder_kb_name(dir: &std::path::Path) -> Result<String, AppError> {
    let abs = std::fs::canonicalize(dir).map_err(|e| AppError::io(dir, e))?;
    let stem = abs
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "notes".into());
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_start_matches(['.', '-']).to_owned();
    Ok(if name.is_empty() {
        "notes".into()
    } else {
        name
    })
}

/// Opens the embedder for background use; when it cannot be opened, says why once.
async fn optional_embedder(config: &Config, out: &Out) -> Option<Arc<dyn embed::Embedder>> {
    match embedding::open_embedder(&config.embedder).await {
        Ok(e) => e,
        Err(e) => {
            out.warn(&format!("not embedding: {e}"));
            None
        }
    }
}

/// Queue depth above which embedding runs as a bulk load.
const BULK_EMBED: u64 = 5_000;

/// After a write: embeds what was queued, so semantic and hybrid search work at once.
async fn embed_after_write(store: &OpenStore, config: &Config, out: &Out) -> Result<(), AppError> {
    if matches!(config.embedder, EmbedderChoice::None) {
        return Ok(());
    }
    let s = store.store();
    let q = s.queue_stats().await?;
    if q.pending == 0 {
        return Ok(());
    }
    let embedder = embedding::open_embedder(&config.embedder)
        .await?
        .expect("configured");
    // A large first embedding builds the vector index once afterwards (Postgres).
    let rebuild = if q.pending > BULK_EMBED {
        store.begin_bulk_load().await?
    } else {
        false
    };
    let stats = embedding::embed_queue(
        s,
        embedder,
        embedding::default_workers(),
        &Bar::new(!out.quiet && !out.json),
    )
    .await?;
    if q.pending > BULK_EMBED {
        store.finish_bulk_load(rebuild).await?;
    }
    out.note(&format!(
        "embedded {} entries ({} passages){}",
        stats.embedded,
        stats.passages,
        if stats.gave_up > 0 {
            format!(", {} given up (see kb status)", stats.gave_up)
        } else {
            String::new()
        }
    ));
    Ok(())
}

/// `kb embed` (what is queued) and `kb reembed` (`requeue`: every entry of one KB or all,
/// resetting the store's model when asked).
async fn embed(
    g: &Globals,
    out: &Out,
    requeue: Option<(Option<String>, bool)>,
    workers: Option<usize>,
) -> Result<Done, AppError> {
    let (config, store) = open(g.db.as_deref(), g, OpenMode::Existing).await?;
    let Some(embedder) = embedding::open_embedder(&config.embedder).await? else {
        return Err(AppError::usage(
            "embedder.provider is \"none\": nothing to embed with",
        ));
    };
    let s = store.store();
    let mut queued = None;
    if let Some((kb, reset)) = requeue {
        let mut filter = Filter::new().lifecycle(LifecycleFilter::Any);
        if let Some(kb) = &kb {
            filter = filter.kb(kb);
        }
        let n = embedding::requeue_all(s.clone(), embedder.as_ref(), &filter, reset).await?;
        out.note(&format!("queued {n} entries"));
        queued = Some(n);
    }
    let workers = workers.unwrap_or_else(embedding::default_workers);
    let stats =
        embedding::embed_queue(s, embedder, workers, &Bar::new(!out.quiet && !out.json)).await?;
    let mut json = serde_json::json!({
        "embedded": stats.embedded, "passages": stats.passages,
        "retrying": stats.retrying, "gave_up": stats.gave_up,
    });
    if let Some(n) = queued {
        json["queued"] = n.into();
    }
    out.value(&json, || {
        format!(
            "{} {} entries ({} passages){}",
            if queued.is_some() {
                "re-embedded"
            } else {
                "embedded"
            },
            stats.embedded,
            stats.passages,
            if stats.gave_up > 0 {
                format!(", {} given up", stats.gave_up)
            } else {
                String::new()
            }
        )
    });
    Ok(if stats.gave_up > 0 {
        Done::Partial
    } else {
        Done::Ok
    })
}
