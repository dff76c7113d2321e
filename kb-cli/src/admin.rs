//! The commands that administer a store rather than its entries: knowledge bases, GC,
//! migration, status, the server and its tokens.

use kb_app::{migrate, status, AppError, Config, ConfigOverrides, OpenMode, OpenStore};
use storage_core::{Filter, NewKnowledgeBase};

use crate::args::{Command, KbCommand, TokenCommand};
use crate::output::Out;
use crate::progress::Bar;
use crate::{open, Done, Globals};

pub(crate) async fn run(command: Command, g: &Globals, out: &Out) -> Result<Done, AppError> {
    let db = g.db.as_deref();
    let bar = || Bar::new(!out.quiet && !out.json);
    match command {
        Command::Kb { command } => {
            let mode = if matches!(command, KbCommand::Create { .. }) {
                OpenMode::Create
            } else {
                OpenMode::Existing
            };
            let (_config, store) = open(db, g, mode).await?;
            let s = store.store();
            match command {
                KbCommand::Create {
                    name,
                    description,
                    ephemeral,
                    ttl,
                } => {
                    let new = if ephemeral {
                        NewKnowledgeBase::ephemeral(&name, parse_ttl(&ttl)?)
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
            let (_config, store) = open(db, g, OpenMode::Existing).await?;
            let report = store.store().gc_expired(chrono::Utc::now()).await?;
            out.value(
                &serde_json::json!({"removed": report.kbs, "expired_entries": report.entries}),
                || {
                    if report.is_empty() {
                        return "nothing expired".to_owned();
                    }
                    let mut lines: Vec<String> = report
                        .kbs
                        .iter()
                        .map(|r| format!("removed {} ({} entries)", r.name, r.entries))
                        .collect();
                    if report.entries > 0 {
                        lines.push(format!("removed {} expired entries", report.entries));
                    }
                    lines.join("\n")
                },
            );
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
            let (config, store) = open(db, g, OpenMode::Existing).await?;
            let r = status::status(&store, &config).await?;
            out.status(&r);
            Ok(Done::Ok)
        }
        Command::Serve {
            listen,
            no_auth,
            max_in_flight,
            request_timeout,
        } => {
            let config = Config::load(&ConfigOverrides {
                db: db.map(str::to_owned),
                config: g.config.clone(),
                cwd: None,
            })?;
            let opts = kb_server::ServeOptions {
                listen,
                no_auth,
                max_in_flight,
                request_timeout: std::time::Duration::from_secs(request_timeout.max(1)),
                ..Default::default()
            };
            out.note(&format!(
                "serving {} on http://{listen} (Ctrl-C stops)",
                config.database.display_location()
            ));
            kb_server::serve(config, opts, shutdown_signal()).await?;
            Ok(Done::Ok)
        }
        Command::Mcp { read_only } => {
            let config = Config::load(&ConfigOverrides {
                db: db.map(str::to_owned),
                config: g.config.clone(),
                cwd: None,
            })?;
            // stdout carries the protocol: everything for people goes to the log (stderr).
            let services = kb_app::Services::open(&config).await?;
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let workers = services
                .start_workers(config.embed_workers, "mcp", stop_rx.clone())
                .await;
            let gc = services.start_gc(kb_app::service::GC_EVERY, stop_rx);
            let access = if read_only {
                kb_mcp::McpAccess::read_only()
            } else {
                kb_mcp::McpAccess::full()
            };
            let server = kb_mcp::KbMcp::new(
                services,
                kb_mcp::McpOptions {
                    default_kb: config.default_kb.clone(),
                    access,
                },
            );
            let served = tokio::select! {
                r = kb_mcp::serve_stdio(server) => r,
                _ = shutdown_signal() => Ok(()),
            };
            let _ = stop_tx.send(true);
            kb_app::join_workers(workers).await;
            let _ = gc.await;
            served?;
            Ok(Done::Ok)
        }
        Command::Token { command } => {
            let (_config, store) = open(db, g, OpenMode::Create).await?;
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
        _ => unreachable!("entry commands are run by main"),
    }
}

/// A `--ttl` value (`30m`, `1h`, `7d`).
pub(crate) fn parse_ttl(ttl: &str) -> Result<chrono::Duration, AppError> {
    let d = humantime::parse_duration(ttl)
        .map_err(|e| AppError::usage(format!("--ttl {ttl:?}: {e} (write e.g. 30m, 1h, 7d)")))?;
    chrono::Duration::from_std(d).map_err(|_| AppError::usage(format!("--ttl {ttl:?} is too long")))
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
