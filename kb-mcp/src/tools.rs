//! The tools, each with its arguments' schema (from the types below: their doc comments
//! are what the agent reads) and a description an agent can act on.

use chrono::{NaiveDate, Utc};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use search_hybrid::{SearchMode, SearchRequest};
use serde_json::{json, Value};
use storage_core::prelude::*;
use storage_core::{
    ClaimOutcome, Entry, EntryKey, GraphQuery, Link, NewEntry, NewKnowledgeBase, SortField,
    SortOrder, StorageError,
};

use crate::args::*;
use crate::server::{respond, KbMcp, ToolError};

/// Longest search query, in bytes (the HTTP API's limit).
pub(crate) const MAX_QUERY_BYTES: usize = 4096;
/// Most hits or entries one call returns.
pub(crate) const MAX_LIMIT: u32 = 50;
/// Most ids one `get` reads.
pub(crate) const MAX_GET: usize = 50;
/// Longest TTL of a scratch KB: 30 days.
pub(crate) const MAX_SCRATCH_TTL: u64 = 30 * 24 * 3600;

type Outcome = Result<Value, ToolError>;

fn limit(given: Option<u32>, default: u32, min: u32) -> Result<usize, ToolError> {
    let n = given.unwrap_or(default);
    if n < min || n > MAX_LIMIT {
        return Err(ToolError::new(format!(
            "limit must be from {min} to {MAX_LIMIT}, not {n}"
        )));
    }
    Ok(n as usize)
}

/// Entries that came from a file of a synced folder are the file's: a change made here
/// would be undone by the next `kb sync`, so it is refused (see the README).
fn check_not_file_backed(e: &Entry) -> Result<(), ToolError> {
    match &e.source_path {
        Some(p) => Err(ToolError::new(format!(
            "{} comes from the file {p} of a synced folder; edit the file instead (changes made here would be undone by the next sync)",
            e.key()
        ))),
        None => Ok(()),
    }
}

fn brief(e: &Entry) -> Value {
    json!({
        "kb": e.kb, "id": e.id, "title": e.title, "type": e.entry_type, "tags": e.tags,
        "summary": e.summary, "status": e.status, "assignee": e.assignee,
        "updated_at": e.updated_at, "date": e.date,
    })
}

/// A readable id from a title: `lower-case-words-` and a random suffix so two memories of
/// the same title do not overwrite each other.
fn new_id(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.chars().count() >= 48 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "note" } else { slug };
    format!("{slug}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

fn invalid(e: StorageError) -> ToolError {
    let s = e.to_string();
    ToolError(
        s.strip_prefix("invalid input: ")
            .map(str::to_owned)
            .unwrap_or(s),
    )
}

#[tool_router(vis = "pub(crate)")]
impl KbMcp {
    #[tool(
        description = "Search the knowledge base. Returns ids, titles, scores and snippets, best first; read full entries with `get`.",
        annotations(read_only_hint = true)
    )]
    async fn search(
        &self,
        Parameters(a): Parameters<SearchArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(self.do_search(a, &ctx).await)
    }

    async fn do_search(&self, a: SearchArgs, ctx: &RequestContext<RoleServer>) -> Outcome {
        let access = self.access(ctx);
        if a.query.trim().is_empty() {
            return Err(ToolError::new("query is empty"));
        }
        if a.query.len() > MAX_QUERY_BYTES {
            return Err(ToolError::new(format!(
                "the query is {} bytes; at most {MAX_QUERY_BYTES} are allowed",
                a.query.len()
            )));
        }
        let mode = match a.mode {
            Some(ModeArg::Keyword) => SearchMode::Keyword,
            Some(ModeArg::Semantic) => SearchMode::Semantic,
            Some(ModeArg::Hybrid) => SearchMode::Hybrid,
            // Without a model, the default falls back to what works.
            None if self.services.semantic_unavailable.is_some() => SearchMode::Keyword,
            None => SearchMode::Hybrid,
        };
        if mode != SearchMode::Keyword {
            if let Some(why) = &self.services.semantic_unavailable {
                return Err(ToolError::new(format!(
                    "semantic and hybrid search are not available: {why}; use mode keyword"
                )));
            }
        }
        let Some(mut f) = self.read_scope(a.kb.as_deref(), &access)? else {
            return Ok(json!({ "query": a.query, "hits": [] }));
        };
        f.entry_types = a.entry_type.into_iter().collect();
        f.tags = a.tags;
        f.limit = Some(limit(a.limit, 10, 1)?);
        let req = SearchRequest::new(a.query.clone(), mode).filter(f);
        let res = self.services.searcher.search(&req).await?;
        let hits: Vec<Value> = res
            .hits
            .iter()
            .map(|h| kb_app::embedding::hit_json(h, false))
            .collect();
        Ok(json!({
            "query": a.query, "mode": res.mode, "degraded": res.degraded, "hits": hits,
        }))
    }

    #[tool(
        description = "Read entries in full (body, tags, links, metadata) by id.",
        annotations(read_only_hint = true)
    )]
    async fn get(
        &self,
        Parameters(a): Parameters<GetArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(self.do_get(a, &ctx).await)
    }

    async fn do_get(&self, a: GetArgs, ctx: &RequestContext<RoleServer>) -> Outcome {
        let access = self.access(ctx);
        if a.ids.is_empty() || a.ids.len() > MAX_GET {
            return Err(ToolError::new(format!(
                "ids must hold 1 to {MAX_GET} ids, not {}",
                a.ids.len()
            )));
        }
        let kb = self.kb_for(a.kb.as_deref(), &access).await?;
        let keys: Vec<EntryKey> = a.ids.iter().map(|id| EntryKey::new(&kb, id)).collect();
        let found = self.services.store.get_entries(&keys).await?;
        let missing: Vec<&String> = a
            .ids
            .iter()
            .filter(|id| !found.iter().any(|e| &e.id == *id))
            .collect();
        Ok(json!({ "kb": kb, "entries": found, "missing": missing }))
    }

    #[tool(
        description = "The most recently written entries, newest first.",
        annotations(read_only_hint = true)
    )]
    async fn recent(
        &self,
        Parameters(a): Parameters<RecentArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(self.do_recent(a, &ctx).await)
    }

    async fn do_recent(&self, a: RecentArgs, ctx: &RequestContext<RoleServer>) -> Outcome {
        let access = self.access(ctx);
        let Some(mut f) = self.read_scope(a.kb.as_deref(), &access)? else {
            return Ok(json!({ "entries": [] }));
        };
        f.entry_types = a.entry_type.into_iter().collect();
        f.limit = Some(limit(a.limit, 20, 1)?);
        f.sort.field = SortField::Updated;
        f.sort.order = SortOrder::Desc;
        let entries = self.services.store.list_entries(&f).await?;
        Ok(json!({ "entries": entries.iter().map(brief).collect::<Vec<_>>() }))
    }

    #[tool(
        description = "Create or update an entry (a memory, a note, a task). Without an id a new entry is created and its id returned; with an existing id only the fields given change. Validation errors explain what to fix.",
        annotations(destructive_hint = false)
    )]
    async fn write(
        &self,
        Parameters(a): Parameters<WriteArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(self.do_write(a, &ctx).await)
    }

    async fn do_write(&self, a: WriteArgs, ctx: &RequestContext<RoleServer>) -> Outcome {
        let access = self.access(ctx);
        let kb = self.writable_kb(a.kb.as_deref(), &access).await?;
        let existing = match &a.id {
            Some(id) => {
                self.services
                    .store
                    .get_entry(&EntryKey::new(&kb, id))
                    .await?
            }
            None => None,
        };
        let created = existing.is_none();
        let mut e = match &existing {
            Some(old) => {
                check_not_file_backed(old)?;
                old.to_new()
            }
            None => {
                if a.title.as_deref().unwrap_or("").trim().is_empty()
                    && a.body.as_deref().unwrap_or("").trim().is_empty()
                {
                    return Err(ToolError::new(
                        "a new entry needs a title or a body (or give the id of an entry to update)",
                    ));
                }
                let id =
                    a.id.clone()
                        .unwrap_or_else(|| new_id(a.title.as_deref().unwrap_or("")));
                let mut e = NewEntry::new(&kb, id);
                e.entry_type = "memory".into();
                e
            }
        };
        if let Some(v) = a.title {
            e.title = v;
        }
        if let Some(v) = a.body {
            e.body = v;
        }
        if let Some(v) = a.summary {
            e.summary = v;
        }
        if let Some(v) = a.tags {
            e.tags = v;
        }
        if let Some(v) = a.entry_type {
            e.entry_type = v;
        }
        if let Some(v) = a.metadata {
            e.metadata = v;
        }
        if let Some(v) = a.importance {
            e.importance = v;
        }
        if let Some(v) = a.status {
            e.status = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(d) = a.date {
            e.date =
                Some(NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|_| {
                    ToolError::new(format!("date {d:?} is not a date (YYYY-MM-DD)"))
                })?);
        }
        if let Some(links) = a.links {
            e.links = links
                .into_iter()
                .map(|l| {
                    let mut link = Link::to(l.target);
                    if let Some(r) = l.relation {
                        link = link.relation(r);
                    }
                    link.target_kb = l.kb;
                    link
                })
                .collect();
        }
        match a.ttl_seconds {
            None => {}
            Some(0) => e.expires_at = None,
            Some(secs) => e = e.ttl(kb_app::input::ttl_duration(secs)),
        }
        e.normalized().map_err(invalid)?;
        let stored = self.services.store.upsert_entry(&e).await?;
        Ok(json!({
            "kb": stored.kb, "id": stored.id, "created": created,
            "updated_at": stored.updated_at, "expires_at": stored.expires_at,
            "uri": crate::resources::uri(&stored.kb, &stored.id),
        }))
    }

    #[tool(
        description = "Delete an entry, with its vector, stars and collection memberships. Links to it from other entries stay (they then point at a missing entry).",
        annotations(destructive_hint = true)
    )]
    async fn delete(
        &self,
        Parameters(a): Parameters<KeyArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(self.do_delete(a, &ctx).await)
    }

    async fn do_delete(&self, a: KeyArgs, ctx: &RequestContext<RoleServer>) -> Outcome {
        let access = self.access(ctx);
        let kb = self.writable_kb(a.kb.as_deref(), &access).await?;
        let key = EntryKey::new(&kb, &a.id);
        let Some(e) = self.services.store.get_entry(&key).await? else {
            return Err(ToolError::new(format!("entry {key} not found")));
        };
        check_not_file_backed(&e)?;
        let deleted = self.services.store.delete_entry(&key).await?;
        Ok(json!({ "kb": kb, "id": a.id, "deleted": deleted }))
    }

    #[tool(
        description = "Add a link from one entry to another (kept if it is already there).",
        annotations(destructive_hint = false, idempotent_hint = true)
    )]
    async fn link(
        &self,
        Parameters(a): Parameters<LinkArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(self.do_link(a, &ctx).await)
    }

    async fn do_link(&self, a: LinkArgs, ctx: &RequestContext<RoleServer>) -> Outcome {
        let access = self.access(ctx);
        let kb = self.writable_kb(a.kb.as_deref(), &access).await?;
        if let Some(t) = &a.to_kb {
            if !access.can_read(t) {
                return Err(ToolError::new(format!("knowledge base {t} not found")));
            }
        }
        let from = EntryKey::new(&kb, &a.from);
        let Some(e) = self.services.store.get_entry(&from).await? else {
            return Err(ToolError::new(format!("entry {from} not found")));
        };
        check_not_file_backed(&e)?;
        let mut link = Link::to(&a.to);
        if let Some(r) = a.relation {
            link = link.relation(r);
        }
        link.target_kb = a.to_kb.filter(|t| *t != kb);
        link.note = a.note;
        let mut new = e.to_new();
        let added = !new
            .links
            .iter()
            .any(|l| l.target_key(&kb) == link.target_key(&kb) && l.relation == link.relation);
        if added {
            new.links.push(link.clone());
            new.normalized().map_err(invalid)?;
            self.services.store.upsert_entry(&new).await?;
        }
        let target = link.target_key(&kb);
        let target_exists = self.services.store.get_entry(&target).await?.is_some();
        Ok(json!({
            "from": from, "to": target, "relation": link.relation, "added": added,
            "target_exists": target_exists,
        }))
    }

    #[tool(
        description = "Links around an entry: the entries linking to it (backlinks) and those it links to (outlinks).",
        annotations(read_only_hint = true)
    )]
    async fn backlinks(
        &self,
        Parameters(a): Parameters<KeyArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(self.do_backlinks(a, &ctx).await)
    }

    async fn do_backlinks(&self, a: KeyArgs, ctx: &RequestContext<RoleServer>) -> Outcome {
        let access = self.access(ctx);
        let kb = self.kb_for(a.kb.as_deref(), &access).await?;
        let key = EntryKey::new(&kb, &a.id);
        let store = &self.services.store;
        let Some(_) = store.get_entry(&key).await? else {
            return Err(ToolError::new(format!("entry {key} not found")));
        };
        // Links from KBs the caller cannot read would reveal them.
        let backlinks: Vec<_> = store
            .backlinks(&key)
            .await?
            .into_iter()
            .filter(|b| access.can_read(&b.source.kb))
            .collect();
        let outlinks: Vec<_> = store
            .outlinks(&key)
            .await?
            .into_iter()
            .filter(|l| access.can_read(&l.target_key(&kb).kb))
            .collect();
        Ok(json!({ "kb": kb, "id": a.id, "backlinks": backlinks, "outlinks": outlinks }))
    }

    #[tool(
        description = "What is related to an entry: its link-graph neighbourhood and the entries most similar in meaning.",
        annotations(read_only_hint = true)
    )]
    async fn related(
        &self,
        Parameters(a): Parameters<RelatedArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(self.do_related(a, &ctx).await)
    }

    async fn do_related(&self, a: RelatedArgs, ctx: &RequestContext<RoleServer>) -> Outcome {
        let access = self.access(ctx);
        let kb = self.kb_for(a.kb.as_deref(), &access).await?;
        let depth = a.depth.unwrap_or(1);
        if !(1..=3).contains(&depth) {
            return Err(ToolError::new(format!(
                "depth must be from 1 to 3, not {depth}"
            )));
        }
        let k = limit(a.limit, 5, 0)?;
        let key = EntryKey::new(&kb, &a.id);
        let store = &self.services.store;
        let mut q = GraphQuery::new(key.clone(), depth);
        q.max_nodes = 50;
        q.kbs = access.kbs.clone().unwrap_or_default();
        let graph = match store.neighbourhood(&q).await {
            Err(StorageError::NotFound { .. }) => {
                return Err(ToolError::new(format!("entry {key} not found")))
            }
            other => other?,
        };
        let mut scope = self.read_scope(None, &access)?.unwrap_or_default();
        scope.limit = None;
        let (similar, note) = if k == 0 {
            (Vec::new(), None)
        } else {
            match store.similar(&key, k, &scope).await {
                Ok(hits) => (hits, None),
                Err(StorageError::NotFound { .. }) => (
                    Vec::new(),
                    Some("the entry has no vector yet (it is embedded in the background)"),
                ),
                Err(e) => return Err(e.into()),
            }
        };
        let similar: Vec<Value> = similar
            .iter()
            .map(|h| json!({ "kb": h.entry.kb, "id": h.entry.id, "title": h.entry.title, "score": h.score }))
            .collect();
        Ok(json!({ "graph": graph, "similar": similar, "note": note }))
    }

    #[tool(
        description = "Claim a task for yourself: moves the entry from status `from` (default open) to `to` (default in_progress) and records the assignee, only if nobody else did first. Returns won: true, or won: false with the current status and holder.",
        annotations(destructive_hint = false)
    )]
    async fn claim_task(
        &self,
        Parameters(a): Parameters<ClaimArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(self.do_claim(a, &ctx).await)
    }

    async fn do_claim(&self, a: ClaimArgs, ctx: &RequestContext<RoleServer>) -> Outcome {
        let access = self.access(ctx);
        let kb = self.writable_kb(a.kb.as_deref(), &access).await?;
        let key = EntryKey::new(&kb, &a.id);
        let from = a.from.unwrap_or_else(|| "open".into());
        let to = a.to.unwrap_or_else(|| "in_progress".into());
        let outcome = self
            .services
            .store
            .claim(&key, Some(&from), &to, &a.assignee)
            .await
            .map_err(invalid_or)?;
        claim_json(&key, outcome)
    }

    #[tool(
        description = "Move a task you hold (claimed with claim_task) to a new status, e.g. done or blocked; open hands it back.",
        annotations(destructive_hint = false)
    )]
    async fn update_task_status(
        &self,
        Parameters(a): Parameters<StatusArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(self.do_status(a, &ctx).await)
    }

    async fn do_status(&self, a: StatusArgs, ctx: &RequestContext<RoleServer>) -> Outcome {
        let access = self.access(ctx);
        let kb = self.writable_kb(a.kb.as_deref(), &access).await?;
        let key = EntryKey::new(&kb, &a.id);
        let store = &self.services.store;
        let Some(e) = store.get_entry(&key).await? else {
            return Err(ToolError::new(format!("entry {key} not found")));
        };
        if e.assignee.as_deref() != Some(a.assignee.as_str()) {
            return Err(ToolError::new(format!(
                "{key} is held by {}, not {}: claim it first with claim_task",
                e.assignee.as_deref().unwrap_or("nobody"),
                a.assignee
            )));
        }
        // Compare-and-set on the status read above: a concurrent change makes this lose.
        let outcome = store
            .claim(&key, e.status.as_deref(), &a.status, &a.assignee)
            .await
            .map_err(invalid_or)?;
        let v = claim_json(&key, outcome)?;
        if v["won"] == json!(false) {
            return Err(ToolError::new(format!(
                "{key} changed while updating it (now {}); read it again",
                v["status"]
            )));
        }
        Ok(v)
    }

    #[tool(
        description = "Create a scratch knowledge base for this run: it and everything in it are deleted once its TTL has passed.",
        annotations(destructive_hint = false)
    )]
    async fn create_scratch_kb(
        &self,
        Parameters(a): Parameters<ScratchArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(self.do_scratch(a, &ctx).await)
    }

    async fn do_scratch(&self, a: ScratchArgs, ctx: &RequestContext<RoleServer>) -> Outcome {
        let access = self.access(ctx);
        if !access.admin {
            return Err(ToolError::new(
                "this session may not create knowledge bases",
            ));
        }
        let ttl = a.ttl_seconds.unwrap_or(3600);
        if !(1..=MAX_SCRATCH_TTL).contains(&ttl) {
            return Err(ToolError::new(format!(
                "ttl_seconds must be from 1 to {MAX_SCRATCH_TTL}, not {ttl}"
            )));
        }
        let name = a
            .name
            .unwrap_or_else(|| format!("scratch-{:08x}", rand::random::<u32>()));
        let mut new = NewKnowledgeBase::ephemeral(&name, chrono::Duration::seconds(ttl as i64));
        if let Some(d) = a.description {
            new = new.description(d);
        }
        new.validate().map_err(invalid)?;
        let kb = self.services.store.create_kb(&new).await?;
        Ok(json!({ "kb": kb.name, "expires_at": kb.expires_at }))
    }

    #[tool(
        description = "The knowledge bases you may use, with their entry counts.",
        annotations(read_only_hint = true)
    )]
    async fn list_kbs(
        &self,
        Parameters(_a): Parameters<NoArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(self.do_list_kbs(&ctx).await)
    }

    async fn do_list_kbs(&self, ctx: &RequestContext<RoleServer>) -> Outcome {
        let access = self.access(ctx);
        let store = &self.services.store;
        let mut out = Vec::new();
        for kb in store.list_kbs().await? {
            if !access.can_read(&kb.name) {
                continue;
            }
            let n = store
                .count_entries(&storage_core::Filter::new().kb(&kb.name))
                .await?;
            out.push(json!({
                "kb": kb.name, "description": kb.description, "entries": n,
                "expires_at": kb.expires_at,
                "writable": access.can_write(&kb.name),
                "default": self.options.default_kb.as_deref() == Some(kb.name.as_str()),
            }));
        }
        Ok(json!({ "kbs": out, "now": Utc::now() }))
    }
}

fn invalid_or(e: StorageError) -> ToolError {
    match e {
        e @ StorageError::InvalidInput { .. } => invalid(e),
        e => e.into(),
    }
}

fn claim_json(key: &EntryKey, outcome: ClaimOutcome) -> Outcome {
    match outcome {
        ClaimOutcome::Claimed(e) => Ok(json!({
            "won": true, "kb": e.kb, "id": e.id, "status": e.status, "assignee": e.assignee,
        })),
        ClaimOutcome::NotInExpectedState {
            current_status,
            assignee,
        } => Ok(json!({
            "won": false, "kb": key.kb, "id": key.id, "status": current_status,
            "holder": assignee,
        })),
        ClaimOutcome::NotFound => Err(ToolError::new(format!("entry {key} not found"))),
    }
}
