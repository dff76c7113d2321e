//! `kb mcp`: a knowledge-base store as agent memory over the Model Context Protocol.
//!
//! [`KbMcp`] is one MCP server (the official Rust SDK, `rmcp`) over the application's
//! [`Services`](kb_app::Services): tools to search, read, write, link and coordinate
//! tasks, and every entry as a `kb://KB/ID` resource. [`serve_stdio`] runs it for a
//! desktop agent that spawns `kb mcp`; [`http_service`] is the streamable HTTP endpoint
//! `kb serve` mounts at `/mcp`, where each request's [`McpAccess`] comes from its bearer
//! token.
//!
//! Tools hold no storage logic of their own beyond composing `Store` calls; every
//! failure comes back as a tool error (`isError`) the agent can read and act on, never
//! as a crash, and never with driver text.

mod access;
mod args;
mod resources;
mod server;
mod tools;

pub use access::McpAccess;
pub use server::{KbMcp, McpOptions};

use kb_app::AppError;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServiceExt;

/// Serves MCP on stdin/stdout until the client closes stdin.
pub async fn serve_stdio(server: KbMcp) -> Result<(), AppError> {
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| AppError::usage(format!("the MCP session could not start: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| AppError::usage(format!("the MCP session failed: {e}")))?;
    Ok(())
}

/// The streamable HTTP endpoint, as a tower service to mount (`/mcp`). `loopback_only`
/// keeps the SDK's `Host` check (DNS-rebinding protection for a server on localhost);
/// a server on a public address is protected by its tokens instead.
pub fn http_service(
    server: KbMcp,
    cancel: tokio_util::sync::CancellationToken,
    loopback_only: bool,
    body_limit: usize,
) -> StreamableHttpService<KbMcp, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(cancel)
        .with_max_request_body_bytes(body_limit);
    if !loopback_only {
        config = config.disable_allowed_hosts();
    }
    StreamableHttpService::new(
        move || Ok(server.clone()),
        LocalSessionManager::default().into(),
        config,
    )
}
