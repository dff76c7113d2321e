//! The tools' arguments. Their doc comments become the JSON schema's descriptions, which
//! is what an agent reads to call a tool right; unknown fields are refused so a typo is an
//! error the agent sees rather than an argument silently dropped.

use rmcp::schemars::{self, JsonSchema};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ModeArg {
    /// Words and phrases (BM25): exact terms, names, identifiers.
    Keyword,
    /// Meaning (embeddings): paraphrases, questions.
    Semantic,
    /// Both, fused: the best default.
    #[default]
    Hybrid,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchArgs {
    /// What to look for. Keyword syntax: words (all must match), "a phrase", a OR b,
    /// -excluded, prefix*.
    pub query: String,
    /// keyword, semantic or hybrid (default hybrid; keyword when the server has no model).
    #[serde(default)]
    pub mode: Option<ModeArg>,
    /// Knowledge base to search; every one you may read when omitted.
    #[serde(default)]
    pub kb: Option<String>,
    /// Only entries of this type (note, task, memory, …).
    #[serde(default, rename = "type")]
    pub entry_type: Option<String>,
    /// Only entries carrying every one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Number of hits, 1 to 50 (default 10).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GetArgs {
    /// Entry ids to read (1 to 50).
    pub ids: Vec<String>,
    /// Their knowledge base (the default one when omitted).
    #[serde(default)]
    pub kb: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecentArgs {
    /// Knowledge base; every one you may read when omitted.
    #[serde(default)]
    pub kb: Option<String>,
    /// Only entries of this type.
    #[serde(default, rename = "type")]
    pub entry_type: Option<String>,
    /// Number of entries, 1 to 50 (default 20).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkArg {
    /// Id of the entry linked to.
    pub target: String,
    /// Its knowledge base, when not the linking entry's own.
    #[serde(default)]
    pub kb: Option<String>,
    /// Kind of link (default "related"), e.g. depends_on, supersedes.
    #[serde(default)]
    pub relation: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WriteArgs {
    /// Knowledge base (the default one when omitted).
    #[serde(default)]
    pub kb: Option<String>,
    /// Entry id. Omit to create a new entry (an id is made from the title); give an
    /// existing id to update it: fields you leave out keep their values.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    /// Markdown text.
    #[serde(default)]
    pub body: Option<String>,
    /// One or two sentences; searched and shown in results.
    #[serde(default)]
    pub summary: Option<String>,
    /// Tags, hierarchical with / (project/kb).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Entry type (default note), e.g. memory, task, decision.
    #[serde(default, rename = "type")]
    pub entry_type: Option<String>,
    /// Any JSON object.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// Higher is more important (default 0).
    #[serde(default)]
    pub importance: Option<i32>,
    /// Workflow status, e.g. open for a task another agent may claim.
    #[serde(default)]
    pub status: Option<String>,
    /// A date the entry is about, YYYY-MM-DD (shown by recent and timelines).
    #[serde(default)]
    pub date: Option<String>,
    /// Links to other entries (replace the entry's links when given).
    #[serde(default)]
    pub links: Option<Vec<LinkArg>>,
    /// Forget the entry this many seconds from now (a memory that should fade); 0 makes
    /// it permanent again. Expired entries vanish from every tool before they are deleted.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyArgs {
    /// Entry id.
    pub id: String,
    /// Its knowledge base (the default one when omitted).
    #[serde(default)]
    pub kb: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkArgs {
    /// The entry the link starts from.
    pub from: String,
    /// The entry it points to (need not exist yet).
    pub to: String,
    /// Knowledge base of `from` (the default one when omitted).
    #[serde(default)]
    pub kb: Option<String>,
    /// Knowledge base of `to`, when it differs.
    #[serde(default)]
    pub to_kb: Option<String>,
    /// Kind of link (default related).
    #[serde(default)]
    pub relation: Option<String>,
    /// Why they are linked.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RelatedArgs {
    /// Entry id.
    pub id: String,
    #[serde(default)]
    pub kb: Option<String>,
    /// Link hops to walk, 1 to 3 (default 1).
    #[serde(default)]
    pub depth: Option<u32>,
    /// Number of similar entries, 0 to 50 (default 5).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimArgs {
    /// The task's entry id.
    pub id: String,
    /// Who claims it (an agent or person name).
    pub assignee: String,
    #[serde(default)]
    pub kb: Option<String>,
    /// The status it must have now (default open).
    #[serde(default)]
    pub from: Option<String>,
    /// The status it moves to (default in_progress).
    #[serde(default)]
    pub to: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusArgs {
    /// The task's entry id.
    pub id: String,
    /// The holder: only the assignee that claimed the task may move it on.
    pub assignee: String,
    /// The new status, e.g. done, blocked, open (to hand it back).
    pub status: String,
    #[serde(default)]
    pub kb: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScratchArgs {
    /// Seconds until the KB and everything in it is deleted, 1 to 2592000 (default 3600).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Name (letters, digits, - and _); made up when omitted.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoArgs {}
