//! `kb`: sync folders of markdown notes into SQLite or Postgres, search them, and keep
//! them in shape. Argument parsing, output and exit codes only; everything else is
//! `kb-app`.
//!
//! Exit codes: 0 done; 1 done, but not everything (files that failed to sync, a claim
//! lost, a verification that found differences); 2 an error (bad configuration or
//! arguments, database unreachable, …).

mod output;
mod progress;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use kb_app::{
    choose_kb, embedding, export, import, migrate, status, sync, AppError, Config, ConfigOverrides,
    EmbedderChoice, OpenMode, OpenStore,
};
use search_hybrid::{SearchMode, SearchRequest};
use storage_core::{
    ClaimOutcome, EntryKey, Filter, LifecycleFilter, NewKnowledgeBase, SortField, SortOrder,
};

use crate::output::Out;
use crate::progress::Bar;

#[derive(Parser)]
#[command(
    name = "kb",
    version,
    about = "Storage and search for knowledge bases and agent memory"
)]
struct Cli {
    /// Database: sqlite:PATH, a file path, or postgres://… (default: KB_DATABASE_URL,
    /// DATABASE_URL, kb.toml, then .kb/index.db).
    #[arg(long, global = true, value_name = "URL")]
    db: Option<String>,
    /// Configuration file, or a folder holding kb.toml (default: ./kb.toml).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// One JSON object on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Print only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// More detail: causes of errors, log lines (-vv for debug logs).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the store and a commented kb.toml.
    Init {
        /// Folder to initialise (default: the current one).
        dir: Option<PathBuf>,
        /// Also create this knowledge base (default: notes).
        #[arg(long)]
        kb: Option<String>,
    },
    /// Sync a folder of markdown notes into a knowledge base.
    Sync(SyncArgs),
    /// Index commands (`kb index sync` is `kb sync`).
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Write every entry of a KB as a markdown file with frontmatter.
    Export {
        dir: PathBuf,
        #[arg(long)]
        kb: Option<String>,
    },
    /// Import a JSONL file (BEIR-style {"_id","title","text"} lines).
    Import {
        file: PathBuf,
        #[arg(long)]
        kb: Option<String>,
        /// Leave the embedding queue for `kb embed` or a server's worker.
        #[arg(long)]
        no_embed: bool,
    },
    /// Search entries.
    Search(SearchArgs),
    /// Show one entry.
    Get {
        id: String,
        #[arg(long)]
        kb: Option<String>,
    },
    /// List entries.
    List(ListArgs),
    /// Write one entry from a markdown file (with frontmatter) or stdin (`-`).
    Put {
        /// A markdown file, or `-` for stdin (default).
        file: Option<PathBuf>,
        #[arg(long)]
        kb: Option<String>,
        /// Id when the frontmatter has none (default: the file name).
        #[arg(long)]
        id: Option<String>,
    },
    /// Delete one entry.
    Rm {
        id: String,
        #[arg(long)]
        kb: Option<String>,
    },
    /// Entries linking to an entry.
    Backlinks {
        id: String,
        #[arg(long)]
        kb: Option<String>,
    },
    /// Dated entries, oldest first.
    Timeline {
        #[arg(long)]
        kb: Option<String>,
        /// From this date (YYYY-MM-DD).
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Up to this date (YYYY-MM-DD).
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Embed every queued entry.
    Embed {
        /// Concurrent workers (default: one per core, at most 4).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Embed every entry again (all of them, or one KB's), e.g. after changing the
    /// passage settings or when vectors look stale.
    Reembed {
        #[arg(long)]
        kb: Option<String>,
        /// The store holds another model's vectors: forget them all and embed every entry
        /// with the configured model (every KB; stop servers' workers first).
        #[arg(long)]
        reset: bool,
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Atomically move a task from one status to another and assign it.
    Claim {
        id: String,
        #[arg(long)]
        kb: Option<String>,
        /// Expected current status (`none` for no status).
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// The assignee.
        #[arg(long = "as", value_name = "NAME")]
        assignee: String,
    },
    /// Knowledge bases.
    Kb {
        #[command(subcommand)]
        command: KbCommand,
    },
    /// Remove expired ephemeral knowledge bases.
    Gc,
    /// Copy every KB, entry, setting, star, collection and vector to another store.
    Migrate {
        #[arg(long, value_name = "URL")]
        from: String,
        #[arg(long, value_name = "URL")]
        to: String,
        /// Compare both stores afterwards (counts, checksums, vectors bit for bit).
        #[arg(long)]
        verify: bool,
    },
    /// Backend, versions, embedding space, counts, queue and pool.
    Status,
    /// Serve the HTTP JSON API (with the background embedding workers) until Ctrl-C or SIGTERM.
    Serve {
        /// Address to listen on. A non-loopback address needs an access token (`kb token
        /// create`) or --no-auth.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Serve without authentication, even on a non-loopback address.
        #[arg(long)]
        no_auth: bool,
    },
    /// Access tokens for `kb serve`.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it once (only its hash is stored).
    Create {
        /// A knowledge base the token may use (repeat for several).
        #[arg(long)]
        kb: Vec<String>,
        /// Read and write (default: read only).
        #[arg(long)]
        write: bool,
        /// Everything, on every knowledge base.
        #[arg(long, conflicts_with_all = ["kb", "write"])]
        admin: bool,
        /// A name to recognise it by in `kb token list`.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List tokens (ids, scopes, knowledge bases; never the tokens).
    List,
    /// Revoke a token by the id `kb token list` shows.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum IndexCommand {
    Sync(SyncArgs),
}

#[derive(Args)]
struct SyncArgs {
    /// The folder of markdown notes.
    dir: PathBuf,
    /// Knowledge base (default: kb.toml's default_kb, the only KB, or the folder's name).
    #[arg(long)]
    kb: Option<String>,
    /// Keep syncing as files change, until Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// Show what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Leave the embedding queue for `kb embed` or a server's worker.
    #[arg(long)]
    no_embed: bool,
    /// Sync even though the KB was synced from another folder.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct SearchArgs {
    query: String,
    #[arg(long, default_value = "hybrid", value_parser = ["keyword", "semantic", "hybrid"])]
    mode: String,
    #[arg(long)]
    kb: Vec<String>,
    #[arg(long = "type")]
    entry_type: Vec<String>,
    /// A tag or a tag prefix (`topic` matches `topic/rust`).
    #[arg(long)]
    tag: Option<String>,
    #[arg(long, default_value_t = 10)]
    limit: usize,
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Show each leg's rank and score.
    #[arg(long)]
    explain: bool,
    /// Match any of the words (free text) instead of the query language.
    #[arg(long)]
    any: bool,
}

#[derive(Args)]
struct ListArgs {
    #[arg(long)]
    kb: Option<String>,
    #[arg(long = "type")]
    entry_type: Vec<String>,
    /// A tag or a tag prefix.
    #[arg(long)]
    tag: Option<String>,
    #[arg(long)]
    status: Vec<String>,
    /// Only entries whose file is under this folder.
    #[arg(long)]
    path: Option<String>,
    #[arg(long, value_parser = ["updated", "created", "title", "date", "importance"], default_value = "updated")]
    sort: String,
    #[arg(long)]
    asc: bool,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Archived entries too.
    #[arg(long)]
    all: bool,
}

#[derive(Subcommand)]
enum KbCommand {
    /// Create a knowledge base.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Removed by `kb gc` once its TTL has passed.
        #[arg(long)]
        ephemeral: bool,
        /// Time to live of an ephemeral KB (e.g. 1h, 30m, 7d).
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// List knowledge bases.
    List,
    /// Delete a knowledge base with everything in it.
    Rm { name: String },
}

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
        Command::Put { file, kb, id } => {
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
            let entry = kb_app::markdown::standalone_entry(&kb, &name, &text, id.as_deref())
                .map_err(|e| {
                    AppError::usage(match e.line {
                        Some(l) => format!("{name}:{l}: {}", e.message),
                        None => format!("{name}: {}", e.message),
                    })
                })?;
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
        Command::Reembed { kb, reset, workers } => {
            let (config, store) = open(db, &g, OpenMode::Existing).await?;
            let Some(embedder) = embedding::open_embedder(&config.embedder).await? else {
                return Err(AppError::usage(
                    "embedder.provider is \"none\": nothing to embed with",
                ));
            };
            let s = store.store();
            let mut filter = Filter::new().lifecycle(LifecycleFilter::Any);
            if let Some(kb) = &kb {
                filter = filter.kb(kb);
            }
            let queued =
                embedding::requeue_all(s.clone(), embedder.as_ref(), &filter, reset).await?;
            out.note(&format!("queued {queued} entries"));
            let stats = embedding::embed_queue(
                s,
                embedder,
                workers.unwrap_or_else(embedding::default_workers),
                &bar(),
            )
            .await?;
            out.value(
                &serde_json::json!({
                    "queued": queued, "embedded": stats.embedded, "passages": stats.passages,
                    "retrying": stats.retrying, "gave_up": stats.gave_up,
                }),
                || {
                    format!(
                        "re-embedded {} entries ({} passages)",
                        stats.embedded, stats.passages
                    )
                },
            );
            Ok(if stats.gave_up > 0 {
                Done::Partial
            } else {
                Done::Ok
            })
        }
        Command::Embed { workers } => {
            let (config, store) = open(db, &g, OpenMode::Existing).await?;
            let Some(embedder) = embedding::open_embedder(&config.embedder).await? else {
                return Err(AppError::usage(
                    "embedder.provider is \"none\": nothing to embed with",
                ));
            };
            let stats = embedding::embed_queue(
                store.store(),
                embedder,
                workers.unwrap_or_else(embedding::default_workers),
                &bar(),
            )
            .await?;
            out.value(
                &serde_json::json!({
                    "embedded": stats.embedded, "passages": stats.passages,
                    "retrying": stats.retrying, "gave_up": stats.gave_up,
                }),
                || {
                    format!(
                        "embedded {} entries ({} passages){}",
                        stats.embedded,
                        stats.passages,
                        if stats.gave_up > 0 {
                            format!(", {} given up", stats.gave_up)
                        } else {
                            String::new()
                        }
                    )
                },
            );
            Ok(if stats.gave_up > 0 {
                Done::Partial
            } else {
                Done::Ok
            })
        }
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
        Command::Kb { command } => {
            let mode = if matches!(command, KbCommand::Create { .. }) {
                OpenMode::Create
            } else {
                OpenMode::Existing
            };
            let (_config, store) = open(db, &g, mode).await?;
            let s = store.store();
            match command {
                KbCommand::Create {
                    name,
                    description,
                    ephemeral,
                    ttl,
                } => {
                    let new = if ephemeral {
                        let d = humantime::parse_duration(&ttl).map_err(|e| {
                            AppError::usage(format!("--ttl {ttl:?}: {e} (write e.g. 30m, 1h, 7d)"))
                        })?;
                        let d = chrono::Duration::from_std(d)
                            .map_err(|_| AppError::usage(format!("--ttl {ttl:?} is too long")))?;
                        NewKnowledgeBase::ephemeral(&name, d)
                    } else {
                        NewKnowledgeBase::persistent(&name)
                    }
                    .description(description);
                    let kb = s.create_kb(&new).await?;
                    out.value(&kb, || match kb.expires_at {
                        Some(t) => format!("created {} (expires {})", kb.name, t.to_rfc3339()),
                        None => format!("created {}", kb.name),
                    });
                }
                KbCommand::List => {
                    let kbs = s.list_kbs().await?;
                    let mut rows = Vec::new();
                    for kb in &kbs {
                        let n = s.count_entries(&Filter::new().kb(&kb.name)).await?;
                        rows.push((kb.clone(), n));
                    }
                    out.kbs(&rows);
                }
                KbCommand::Rm { name } => {
                    if !s.delete_kb(&name).await? {
                        return Err(AppError::NotFound {
                            what: format!("knowledge base {name}"),
                        });
                    }
                    out.value(&serde_json::json!({"deleted": name}), || {
                        format!("deleted {name}")
                    });
                }
            }
            Ok(Done::Ok)
        }
        Command::Gc => {
            let (_config, store) = open(db, &g, OpenMode::Existing).await?;
            let removed = store.store().gc_expired(chrono::Utc::now()).await?;
            out.value(&serde_json::json!({"removed": removed}), || {
                if removed.is_empty() {
                    "nothing expired".to_owned()
                } else {
                    removed
                        .iter()
                        .map(|r| format!("removed {} ({} entries)", r.name, r.entries))
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            });
            Ok(Done::Ok)
        }
        Command::Migrate { from, to, verify } => {
            let base = Config::load(&ConfigOverrides {
                db: Some(from.clone()),
                config: g.config.clone(),
                cwd: None,
            })?;
            let target_cfg = Config::load(&ConfigOverrides {
                db: Some(to.clone()),
                config: g.config.clone(),
                cwd: None,
            })?;
            let source = OpenStore::open(&base.database, OpenMode::Existing).await?;
            let target = OpenStore::open(&target_cfg.database, OpenMode::Create).await?;
            let report = migrate::migrate(&source, &target, base.batch_size, &bar()).await?;
            let checked = match verify {
                true => Some(migrate::verify(&source, &target).await?),
                false => None,
            };
            out.value(
                &serde_json::json!({"migrate": report, "verify": checked}),
                || {
                    let mut t = report.summary();
                    if let Some(v) = &checked {
                        t.push('\n');
                        t.push_str(&v.summary());
                    }
                    t
                },
            );
            Ok(match checked {
                Some(v) if !v.equal => Done::Partial,
                _ => Done::Ok,
            })
        }
        Command::Status => {
            let (config, store) = open(db, &g, OpenMode::Existing).await?;
            let r = status::status(&store, &config).await?;
            out.status(&r);
            Ok(Done::Ok)
        }
        Command::Serve { listen, no_auth } => {
            let config = Config::load(&ConfigOverrides {
                db: db.map(str::to_owned),
                config: g.config.clone(),
                cwd: None,
            })?;
            let opts = kb_server::ServeOptions {
                listen,
                no_auth,
                ..Default::default()
            };
            out.note(&format!(
                "serving {} on http://{listen} (Ctrl-C stops)",
                config.database.display_location()
            ));
            kb_server::serve(config, opts, shutdown_signal()).await?;
            Ok(Done::Ok)
        }
        Command::Token { command } => {
            let (_config, store) = open(db, &g, OpenMode::Create).await?;
            let s = store.store();
            match command {
                TokenCommand::Create {
                    kb,
                    write,
                    admin,
                    name,
                } => {
                    let scope = match (admin, write) {
                        (true, _) => kb_server::auth::Scope::Admin,
                        (false, true) => kb_server::auth::Scope::ReadWrite,
                        (false, false) => kb_server::auth::Scope::Read,
                    };
                    if !admin && kb.is_empty() {
                        return Err(AppError::usage(
                            "name the knowledge bases the token may use with --kb NAME (or --admin for all)",
                        ));
                    }
                    let (record, token) =
                        kb_server::auth::create_token(s.as_ref(), scope, &kb, &name).await?;
                    out.value(
                        &serde_json::json!({"token": token, "id": record.id(), "scope": record.scope, "kbs": record.kbs, "name": record.name}),
                        || {
                            format!(
                                "{token}\ncreated token {} ({}{}); it is shown only now, keep it safe",
                                record.id(),
                                record.scope,
                                if record.kbs.is_empty() {
                                    String::new()
                                } else {
                                    format!(" on {}", record.kbs.join(", "))
                                }
                            )
                        },
                    );
                }
                TokenCommand::List => {
                    let tokens = kb_server::auth::list_tokens(s.as_ref()).await?;
                    let rows: Vec<_> = tokens
                        .iter()
                        .map(|t| serde_json::json!({"id": t.id(), "scope": t.scope, "kbs": t.kbs, "name": t.name, "created_at": t.created_at}))
                        .collect();
                    out.value(&serde_json::json!({"tokens": rows}), || {
                        if tokens.is_empty() {
                            return "no tokens (kb serve on a loopback address is open to every local user)".to_owned();
                        }
                        tokens
                            .iter()
                            .map(|t| {
                                format!(
                                    "{}  {:<10} {:<20} {}  {}",
                                    t.id(),
                                    t.scope.to_string(),
                                    if t.kbs.is_empty() { "*".to_owned() } else { t.kbs.join(",") },
                                    t.created_at.format("%Y-%m-%d %H:%M"),
                                    t.name
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    });
                }
                TokenCommand::Revoke { id } => {
                    if !kb_server::auth::revoke_token(s.as_ref(), &id).await? {
                        return Err(AppError::NotFound {
                            what: format!("token {id}"),
                        });
                    }
                    out.value(&serde_json::json!({"revoked": id}), || {
                        format!("revoked {id}")
                    });
                }
            }
            Ok(Done::Ok)
        }
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
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

#[allow(dead_code)]
fn is_tty() -> bool {
    std::io::stdout().is_terminal()
}
