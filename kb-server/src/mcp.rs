//! The MCP endpoint at `/mcp` (streamable HTTP): the same server `kb mcp` runs over
//! stdio, behind the same bearer tokens and KB scopes as the JSON API. A read token sees
//! no write tools; a token scoped to KBs sees nothing of the others.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use kb_mcp::{KbMcp, McpAccess, McpOptions};

use crate::auth::{Access, Scope};
use crate::state::AppState;

/// The MCP server over the state's services. Calls without access attached are refused
/// everything ([`McpAccess::none`]); [`attach_access`] attaches it to every request.
pub fn server(state: &AppState) -> KbMcp {
    KbMcp::new(
        state.services.clone(),
        McpOptions {
            default_kb: state.default_kb.clone(),
            access: McpAccess::none(),
        },
    )
}

/// What a caller's [`Access`] allows over MCP.
pub fn mcp_access(access: &Access) -> McpAccess {
    match access {
        Access::Open => McpAccess::full(),
        Access::Token(t) => match t.scope {
            Scope::Admin => McpAccess::full(),
            Scope::ReadWrite => McpAccess {
                kbs: Some(t.kbs.clone()),
                write: true,
                admin: false,
            },
            Scope::Read => McpAccess {
                kbs: Some(t.kbs.clone()),
                write: false,
                admin: false,
            },
        },
    }
}

/// Middleware after [`crate::auth::authenticate`]: turns the request's `Access` into the
/// `McpAccess` the MCP tools read from the request's extensions.
pub async fn attach_access(mut req: Request, next: Next) -> Response {
    let access = req
        .extensions()
        .get::<Access>()
        .map(mcp_access)
        .unwrap_or_else(McpAccess::none);
    req.extensions_mut().insert(access);
    next.run(req).await
}
