//! The MCP server: capabilities, who may see which tool, and how a failure becomes a tool
//! error.

use kb_app::Services;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode,
    Implementation, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use storage_core::{Filter, StorageError};

use crate::access::McpAccess;

/// Tools that change the store: not even listed for a caller that may only read.
pub(crate) const WRITE_TOOLS: &[&str] = &[
    "write",
    "delete",
    "link",
    "claim_task",
    "update_task_status",
    "create_scratch_kb",
];
/// Tools that create KBs: listed only for a caller that may.
pub(crate) const ADMIN_TOOLS: &[&str] = &["create_scratch_kb"];

/// How a [`KbMcp`] is set up.
#[derive(Debug, Clone)]
pub struct McpOptions {
    /// The KB a tool works on when the agent names none (`default_kb` in kb.toml).
    pub default_kb: Option<String>,
    /// Access of a call that carries none of its own: every call over stdio. Over HTTP
    /// each request carries its token's access, and this is [`McpAccess::none`].
    pub access: McpAccess,
}

/// One MCP server over the application's store, searcher and embedder. Cheap to clone.
#[derive(Clone)]
pub struct KbMcp {
    pub(crate) services: Services,
    pub(crate) options: McpOptions,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for KbMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KbMcp")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl KbMcp {
    pub fn new(services: Services, options: McpOptions) -> Self {
        Self {
            services,
            options,
            tool_router: Self::tool_router(),
        }
    }

    /// The caller's access: the one `kb serve` attached to the HTTP request, else this
    /// server's own.
    pub(crate) fn access(&self, ctx: &RequestContext<RoleServer>) -> McpAccess {
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<McpAccess>())
            .cloned()
            .unwrap_or_else(|| self.options.access.clone())
    }

    fn offers(name: &str, access: &McpAccess) -> bool {
        (access.write || !WRITE_TOOLS.contains(&name))
            && (access.admin || !ADMIN_TOOLS.contains(&name))
    }

    /// The KB a tool works on: the one named (if the caller may read it), else the
    /// configured default, else the caller's only KB, else the store's only KB.
    pub(crate) async fn kb_for(
        &self,
        named: Option<&str>,
        access: &McpAccess,
    ) -> Result<String, ToolError> {
        let kb = self.choose_kb(named, access).await?;
        if self.services.store.get_kb(&kb).await?.is_none() {
            return Err(ToolError::new(format!("knowledge base {kb} not found")));
        }
        Ok(kb)
    }

    /// [`kb_for`](Self::kb_for), for a tool that writes: a KB the caller may only read
    /// is refused with a message saying so.
    pub(crate) async fn writable_kb(
        &self,
        named: Option<&str>,
        access: &McpAccess,
    ) -> Result<String, ToolError> {
        let kb = self.kb_for(named, access).await?;
        if !access.can_write(&kb) {
            return Err(ToolError::new(format!(
                "this session may only read knowledge base {kb}"
            )));
        }
        Ok(kb)
    }

    async fn choose_kb(
        &self,
        named: Option<&str>,
        access: &McpAccess,
    ) -> Result<String, ToolError> {
        if let Some(k) = named {
            return if access.can_read(k) {
                Ok(k.to_owned())
            } else {
                Err(ToolError::new(format!("knowledge base {k} not found")))
            };
        }
        if let Some(k) = &self.options.default_kb {
            if access.can_read(k) {
                return Ok(k.clone());
            }
        }
        if let Some([only]) = access.kbs.as_deref() {
            return Ok(only.clone());
        }
        let kbs: Vec<String> = self
            .services
            .store
            .list_kbs()
            .await?
            .into_iter()
            .map(|k| k.name)
            .filter(|k| access.can_read(k))
            .collect();
        match kbs.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(ToolError::new(
                "there is no knowledge base yet: create one with create_scratch_kb, or ask the user to run `kb kb create NAME`",
            )),
            many => Err(ToolError::new(format!(
                "name the knowledge base with the `kb` argument: one of {}",
                many.join(", ")
            ))),
        }
    }

    /// The KBs a cross-KB read covers: the named one, or every KB the caller may read
    /// (an empty list in a filter means every KB, so a caller with none gets `None`).
    pub(crate) fn read_scope(
        &self,
        named: Option<&str>,
        access: &McpAccess,
    ) -> Result<Option<Filter>, ToolError> {
        let mut f = Filter::new();
        match (named, &access.kbs) {
            (Some(k), _) if !access.can_read(k) => {
                return Err(ToolError::new(format!("knowledge base {k} not found")))
            }
            (Some(k), _) => f.kbs = vec![k.to_owned()],
            (None, Some(list)) if list.is_empty() => return Ok(None),
            (None, Some(list)) => f.kbs = list.clone(),
            (None, None) => {}
        }
        Ok(Some(f))
    }
}

/// A failure the agent reads as the tool's result (`isError: true`).
#[derive(Debug)]
pub(crate) struct ToolError(pub String);

impl ToolError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl From<StorageError> for ToolError {
    /// What the agent may read: the protocol's own messages for what the caller can fix,
    /// a fixed sentence (and a log line) for what it cannot. Driver text never passes.
    fn from(e: StorageError) -> Self {
        match &e {
            StorageError::NotFound { .. }
            | StorageError::AlreadyExists { .. }
            | StorageError::Conflict { .. }
            | StorageError::InvalidInput { .. }
            | StorageError::InvalidQuery { .. }
            | StorageError::DimensionMismatch { .. }
            | StorageError::ModelMismatch { .. } => Self(e.to_string()),
            StorageError::Aborted { .. } => Self(
                "the write was aborted by a concurrent one and nothing was written; call the tool again"
                    .into(),
            ),
            StorageError::Unavailable { .. } | StorageError::Timeout { .. } => {
                tracing::warn!(error = %e, "storage unavailable during an MCP call");
                Self("the database is unavailable right now; try again shortly".into())
            }
            _ => {
                tracing::error!(error = %e, "storage error during an MCP call");
                Self("internal error in the knowledge base server".into())
            }
        }
    }
}

impl From<search_hybrid::SearchError> for ToolError {
    fn from(e: search_hybrid::SearchError) -> Self {
        match e {
            search_hybrid::SearchError::Storage(s) => s.into(),
            other => {
                tracing::warn!(error = %other, "search failed during an MCP call");
                Self(format!(
                    "the search could not run: {}",
                    safe_search_error(&other)
                ))
            }
        }
    }
}

fn safe_search_error(e: &search_hybrid::SearchError) -> String {
    match e {
        search_hybrid::SearchError::ModelMismatch { .. } => e.to_string(),
        _ => "the embedding model failed on the query; use mode keyword".into(),
    }
}

/// A tool's outcome as MCP carries it.
pub(crate) fn respond(r: Result<serde_json::Value, ToolError>) -> CallToolResult {
    match r {
        Ok(v) => CallToolResult::structured(v),
        Err(ToolError(msg)) => CallToolResult::error(vec![ContentBlock::text(msg)]),
    }
}

const INSTRUCTIONS: &str = "\
A knowledge base used as long-term memory. Entries have an id, a title, a markdown body, tags, \
a type and metadata, and live in named knowledge bases (kb). Use `search` before `write` to \
avoid duplicates; `get` reads entries in full; `recent` shows what changed last. `write` with \
an existing id updates only the fields given. `link` connects entries; `backlinks` and \
`related` walk the graph. For coordination, `claim_task` moves a task from one status to \
another for exactly one caller; `update_task_status` lets the holder move it on. \
`create_scratch_kb` makes a knowledge base that is deleted after its TTL. Entries are also \
resources: kb://KB/ID.";

impl ServerHandler for KbMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new("kb", env!("CARGO_PKG_VERSION")).with_title("kb knowledge base"),
        )
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let access = self.access(&ctx);
        let mut tools: Vec<Tool> = self
            .tool_router
            .list_all()
            .into_iter()
            .filter(|t| Self::offers(&t.name, &access))
            .collect();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tool_router.get(name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let access = self.access(&ctx);
        if !self.tool_router.has_route(&request.name) || !Self::offers(&request.name, &access) {
            let why = if self.tool_router.has_route(&request.name) {
                format!("the tool {} is not available with this access: it writes, and this session may only read", request.name)
            } else {
                format!("there is no tool named {}", request.name)
            };
            return Ok(CallToolResult::error(vec![ContentBlock::text(why)]).into());
        }
        let call = ToolCallContext::new(self, request, ctx);
        match self.tool_router.call(call).await {
            // Arguments that do not fit the schema are the agent's to fix: a tool error
            // it can read, as the specification asks, not a protocol error.
            Err(e) if e.code == ErrorCode::INVALID_PARAMS => {
                Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "invalid arguments: {}",
                    e.message
                ))])
                .into())
            }
            other => other,
        }
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        crate::resources::list(self, request, &self.access(&ctx)).await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            crate::resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        crate::resources::read(self, &request.uri, &self.access(&ctx))
            .await
            .map(Into::into)
    }
}
